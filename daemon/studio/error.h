#pragma once
// Errors the studio reports. Each carries a kind the service maps to a protocol error code, and a
// message written for the user: what went wrong, with which file or name, and what to do.
#include <stdexcept>
#include <string>

namespace kiln::studio {

enum class ErrorKind {
  InvalidArgument,  // a parameter out of range or malformed (unknown crop mode, zero-sized buffer)
  NotFound,         // a dataset, image, file or installed model that is not there
  BadFormat,        // a file that exists but cannot be decoded (corrupt PNG, truncated JPEG, bad CSV)
  Unsupported,      // valid input the studio does not handle (16-bit buffers, an ONNX layout it cannot run)
  InvalidName,      // a dataset/LoRA/model name a client sent that cannot become a folder name
  AlreadyExists,    // creating something whose name is taken
  Cancelled,        // the caller's cancellation check said stop
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

const char* to_string(ErrorKind kind);

}  // namespace kiln::studio
