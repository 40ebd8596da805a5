#include "protocol/jsonrpc.h"

namespace kiln::protocol {
namespace {

DecodeError fail(ErrorCode code, std::string message, Json id = nullptr) {
  return DecodeError{RpcError{code, std::move(message), nullptr}, std::move(id)};
}

bool valid_id(const Json& id) { return id.is_string() || id.is_number_integer() || id.is_number_unsigned(); }

std::variant<Message, DecodeError> decode_response(const Json& j) {
  Json id = j.at("id");
  if (!id.is_null() && !valid_id(id))
    return fail(ErrorCode::InvalidRequest, "a response id must be an integer, a string or null");
  const bool has_result = j.contains("result"), has_error = j.contains("error");
  if (has_result == has_error)
    return fail(ErrorCode::InvalidRequest, "a response must have exactly one of 'result' and 'error'", id);
  Response r{id, std::nullopt, std::nullopt};
  if (has_result) {
    r.result = j.at("result");
    return Message{std::move(r)};
  }
  const Json& e = j.at("error");
  if (!e.is_object() || !e.contains("code") || !e.at("code").is_number_integer() || !e.contains("message") ||
      !e.at("message").is_string())
    return fail(ErrorCode::InvalidRequest, "a response error must be an object with an integer 'code' and a string 'message'", id);
  r.error = RpcError{static_cast<ErrorCode>(e.at("code").get<int>()), e.at("message").get<std::string>(),
                     e.value("data", Json())};
  return Message{std::move(r)};
}

}  // namespace

std::optional<Json> parse_payload(std::string_view payload, DecodeError& error) {
  try {
    // nlohmann's parser rejects ill-formed UTF-8 inside strings, so this also checks the encoding.
    return Json::parse(payload.begin(), payload.end());
  } catch (const Json::exception& e) {
    // parse_error for malformed text, out_of_range for numbers too large to hold (1e9999): both
    // are the client's fault, and neither may escape (a throw here would end the daemon).
    std::string what = e.what();
    const bool utf8 = what.find("UTF-8") != std::string::npos || what.find("utf-8") != std::string::npos;
    error = fail(ErrorCode::ParseError, std::string(utf8 ? "frame is not valid UTF-8: " : "frame is not valid JSON: ") + what);
    return std::nullopt;
  }
}

std::variant<Message, DecodeError> decode_message(std::string_view payload) {
  DecodeError error;
  std::optional<Json> j = parse_payload(payload, error);
  if (!j) return error;
  return decode_json_message(*j);
}

std::variant<Message, DecodeError> decode_json_message(const Json& j) {
  if (j.is_array()) return fail(ErrorCode::InvalidRequest, "batch requests are not supported; send one message per frame");
  if (!j.is_object()) return fail(ErrorCode::InvalidRequest, "a JSON-RPC message must be a JSON object");

  Json id = j.contains("id") ? j.at("id") : Json();
  Json reply_id = valid_id(id) ? id : Json();
  auto version = j.find("jsonrpc");
  if (version == j.end() || *version != "2.0")
    return fail(ErrorCode::InvalidRequest, "missing or wrong \"jsonrpc\": it must be \"2.0\"", reply_id);

  if (!j.contains("method")) {
    if (j.contains("id")) return decode_response(j);
    return fail(ErrorCode::InvalidRequest, "a message needs a 'method' (request) or an 'id' (response)");
  }
  const Json& method = j.at("method");
  if (!method.is_string() || method.get_ref<const std::string&>().empty())
    return fail(ErrorCode::InvalidRequest, "'method' must be a non-empty string", reply_id);
  if (j.contains("id") && !valid_id(id))
    return fail(ErrorCode::InvalidRequest, "'id' must be an integer or a string");

  Json params = Json::object();
  if (auto p = j.find("params"); p != j.end()) {
    if (p->is_array())
      return fail(ErrorCode::InvalidParams, "positional params are not supported; pass 'params' as an object", reply_id);
    if (!p->is_object()) return fail(ErrorCode::InvalidParams, "'params' must be an object", reply_id);
    params = *p;
  }
  if (j.contains("id")) return Message{Request{id, method.get<std::string>(), std::move(params)}};
  return Message{Notification{method.get<std::string>(), std::move(params)}};
}

namespace {
// Replaces ill-formed UTF-8 (e.g. from a file name) instead of throwing while sending.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }
}  // namespace

std::string encode(const Request& request) {
  return dump(Json{{"jsonrpc", "2.0"}, {"id", request.id}, {"method", request.method}, {"params", request.params}});
}

std::string encode(const Notification& notification) {
  return dump(Json{{"jsonrpc", "2.0"}, {"method", notification.method}, {"params", notification.params}});
}

std::string encode(const Response& response) {
  Json j{{"jsonrpc", "2.0"}, {"id", response.id}};
  if (response.error) {
    Json e{{"code", static_cast<int>(response.error->code)}, {"message", response.error->message}};
    if (!response.error->data.is_null()) e["data"] = response.error->data;
    j["error"] = std::move(e);
  } else {
    j["result"] = response.result.value_or(Json::object());
  }
  return dump(j);
}

Response make_result(Json id, Json result) { return Response{std::move(id), std::move(result), std::nullopt}; }

Response make_error(Json id, ErrorCode code, std::string message, Json data) {
  return Response{std::move(id), std::nullopt, RpcError{code, std::move(message), std::move(data)}};
}

}  // namespace kiln::protocol
