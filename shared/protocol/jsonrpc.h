#pragma once
// JSON-RPC 2.0 messages: decoding with precise errors, and encoding.
// Kiln accepts single messages only (no batches) and by-name params only (an object).
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "protocol/errors.h"

namespace kiln::protocol {

using Json = nlohmann::json;

struct RpcError {
  ErrorCode code = ErrorCode::InternalError;
  std::string message;
  Json data;  // null when absent
};

struct Request {
  Json id;  // integer or string
  std::string method;
  Json params = Json::object();
};

struct Notification {
  std::string method;
  Json params = Json::object();
};

struct Response {
  Json id;  // null when the request's id could not be read
  std::optional<Json> result;
  std::optional<RpcError> error;
};

using Message = std::variant<Request, Notification, Response>;

// Why a frame could not be decoded, and the id to answer with (null when unknown).
struct DecodeError {
  RpcError error;
  Json id;
};

// Parses one frame's payload. Invalid UTF-8 and invalid JSON give ParseError; valid JSON of
// the wrong shape gives InvalidRequest (or InvalidParams for non-object params).
std::variant<Message, DecodeError> decode_message(std::string_view payload);
// The same for JSON already parsed (a remote message whose "attachments" member was taken out).
std::variant<Message, DecodeError> decode_json_message(const Json& message);
// Parses a frame's payload like decode_message; nullopt (and `error`) when it is not JSON.
std::optional<Json> parse_payload(std::string_view payload, DecodeError& error);

std::string encode(const Request& request);
std::string encode(const Notification& notification);
std::string encode(const Response& response);

Response make_result(Json id, Json result);
Response make_error(Json id, ErrorCode code, std::string message, Json data = nullptr);

}  // namespace kiln::protocol
