#include "protocol/jsonrpc.h"

#include <gtest/gtest.h>

using namespace kiln::protocol;

namespace {
DecodeError expect_error(std::string_view payload, ErrorCode code) {
  auto decoded = decode_message(payload);
  auto* error = std::get_if<DecodeError>(&decoded);
  EXPECT_NE(error, nullptr) << "decoded without error: " << payload;
  if (!error) return {};
  EXPECT_EQ(error->error.code, code) << error->error.message;
  EXPECT_FALSE(error->error.message.empty());
  return *error;
}

Message expect_message(std::string_view payload) {
  auto decoded = decode_message(payload);
  auto* error = std::get_if<DecodeError>(&decoded);
  EXPECT_EQ(error, nullptr) << (error ? error->error.message : "");
  return error ? Message{} : std::get<Message>(decoded);
}
}  // namespace

TEST(JsonRpc, RequestRoundTrip) {
  Request r{Json(42), "jobs.get", Json{{"id", "abc"}}};
  Message m = expect_message(encode(r));
  auto* back = std::get_if<Request>(&m);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->id, 42);
  EXPECT_EQ(back->method, "jobs.get");
  EXPECT_EQ(back->params, (Json{{"id", "abc"}}));
}

TEST(JsonRpc, StringIdsAndMissingParams) {
  Message m = expect_message(R"({"jsonrpc":"2.0","id":"x-1","method":"status"})");
  auto* r = std::get_if<Request>(&m);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->id, "x-1");
  EXPECT_TRUE(r->params.is_object() && r->params.empty());
}

TEST(JsonRpc, NotificationHasNoId) {
  Message m = expect_message(encode(Notification{"job.progress", Json{{"job", {{"id", "a"}}}}}));
  auto* n = std::get_if<Notification>(&m);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->method, "job.progress");
  EXPECT_EQ(n->params["job"]["id"], "a");
}

TEST(JsonRpc, ResultAndErrorResponsesRoundTrip) {
  Message ok = expect_message(encode(make_result(7, Json{{"a", 1}})));
  auto* r = std::get_if<Response>(&ok);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->id, 7);
  ASSERT_TRUE(r->result);
  EXPECT_EQ((*r->result)["a"], 1);
  EXPECT_FALSE(r->error);

  Message bad = expect_message(encode(make_error(8, ErrorCode::NotFound, "no job", Json{{"id", "q"}})));
  auto* e = std::get_if<Response>(&bad);
  ASSERT_NE(e, nullptr);
  ASSERT_TRUE(e->error);
  EXPECT_EQ(e->error->code, ErrorCode::NotFound);
  EXPECT_EQ(e->error->message, "no job");
  EXPECT_EQ(e->error->data["id"], "q");
}

TEST(JsonRpc, InvalidJsonIsParseError) {
  expect_error("{\"jsonrpc\":\"2.0\",", ErrorCode::ParseError);
  expect_error("", ErrorCode::ParseError);
  expect_error("nul", ErrorCode::ParseError);
}

TEST(JsonRpc, NumbersTooLargeToHoldAreParseErrorsNotCrashes) {
  // Found by protocol_fuzz (tests/fuzz/regressions/protocol/number-overflow): nlohmann throws
  // out_of_range, not parse_error, for these.
  expect_error("777778e2079848e29", ErrorCode::ParseError);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"jobs.list","params":{"limit":1e999}})", ErrorCode::ParseError);
}

TEST(JsonRpc, InvalidUtf8IsParseErrorThatSaysSo) {
  std::string payload = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"st\xff\xfe\"}";
  DecodeError e = expect_error(payload, ErrorCode::ParseError);
  EXPECT_NE(e.error.message.find("UTF-8"), std::string::npos) << e.error.message;
}

TEST(JsonRpc, WrongShapesAreInvalidRequests) {
  expect_error("[]", ErrorCode::InvalidRequest);                                           // batch
  expect_error("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}]", ErrorCode::InvalidRequest);
  expect_error("42", ErrorCode::InvalidRequest);
  expect_error("\"hello\"", ErrorCode::InvalidRequest);
  expect_error(R"({"id":1,"method":"status"})", ErrorCode::InvalidRequest);                // no jsonrpc
  expect_error(R"({"jsonrpc":"1.0","id":1,"method":"status"})", ErrorCode::InvalidRequest);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":7})", ErrorCode::InvalidRequest);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":""})", ErrorCode::InvalidRequest);
  expect_error(R"({"jsonrpc":"2.0","id":{"a":1},"method":"status"})", ErrorCode::InvalidRequest);
  expect_error(R"({"jsonrpc":"2.0","id":1.5,"method":"status"})", ErrorCode::InvalidRequest);
  expect_error(R"({"jsonrpc":"2.0"})", ErrorCode::InvalidRequest);
  expect_error(R"({"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"x"}})", ErrorCode::InvalidRequest);
  expect_error(R"({"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"x"}})", ErrorCode::InvalidRequest);
}

TEST(JsonRpc, NonObjectParamsAreInvalidParamsWithTheId) {
  DecodeError e = expect_error(R"({"jsonrpc":"2.0","id":5,"method":"status","params":[1,2]})", ErrorCode::InvalidParams);
  EXPECT_EQ(e.id, 5);
  expect_error(R"({"jsonrpc":"2.0","id":5,"method":"status","params":"x"})", ErrorCode::InvalidParams);
}

TEST(JsonRpc, EncodingReplacesIllFormedUtf8InsteadOfThrowing) {
  std::string bad_name = "file\xff.png";
  std::string out;
  EXPECT_NO_THROW(out = encode(make_error(1, ErrorCode::NotFound, "missing " + bad_name)));
  EXPECT_FALSE(std::holds_alternative<DecodeError>(decode_message(out)));
}
