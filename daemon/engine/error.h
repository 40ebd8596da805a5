#pragma once
// Errors the engine reports. Each carries a kind the service maps to a protocol error code,
// and a message written for the user: what went wrong, with which file, and what to do.
#include <stdexcept>
#include <string>

namespace kiln::engine {

enum class ErrorKind {
  InvalidArgument,  // a parameter out of range or malformed (size not a multiple of 8, unknown sampler)
  NotFound,         // a file or component that is not there
  BadFormat,        // a file that exists but is corrupt, truncated or not what it claims
  Unsupported,      // valid input Kiln does not handle (yet), e.g. a pickled .ckpt or an SDXL file
  Cancelled,        // the caller asked to stop
  OutOfMemory,      // the device ran out of memory
  Internal,
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

const char* to_string(ErrorKind kind);

}  // namespace kiln::engine
