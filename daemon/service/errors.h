#pragma once
// ServiceError: an error answer to a request, with its protocol code. Handlers throw it; the
// dispatcher turns it (and engine errors, and anything unexpected) into a JSON-RPC error.
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "protocol/errors.h"

namespace kiln::service {

class ServiceError : public std::runtime_error {
 public:
  ServiceError(protocol::ErrorCode code, const std::string& message, nlohmann::json data = nullptr)
      : std::runtime_error(message), code_(code), data_(std::move(data)) {}
  protocol::ErrorCode code() const { return code_; }
  const nlohmann::json& data() const { return data_; }

 private:
  protocol::ErrorCode code_;
  nlohmann::json data_;
};

// Maps the exception being handled (call inside a catch block) to a protocol code and message.
struct MappedError {
  protocol::ErrorCode code;
  std::string message;
  nlohmann::json data;
};
MappedError map_current_exception();

}  // namespace kiln::service
