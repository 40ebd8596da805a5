// Hostile and broken clients: each gets a clear error or a clean close, never a crash or hang,
// no shared-memory block is left behind, and every other client keeps being served.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "daemon_process.h"
#include "ipc/frame.h"
#include "ipc/shm_image.h"
#include "protocol/errors.h"
#include "protocol/methods.h"

using namespace kiln;
using namespace kiln::test;
using Json = nlohmann::json;
using protocol::ErrorCode;

namespace {

int error_code(const Json& reply) { return reply.at("error").at("code").get<int>(); }

class BadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { daemon_ = new DaemonProcess({"--stall-timeout-ms", "300", "--sweep-interval", "1"}, "bad"); }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }
  void TearDown() override {
    // After every abuse the daemon is alive and a well-behaved client is served.
    ASSERT_TRUE(daemon_->running());
    auto client = daemon_->client("bystander");
    EXPECT_EQ(client->call(protocol::method::kStatus).at("pid"), daemon_->pid());
  }
  static DaemonProcess* daemon_;
};
DaemonProcess* BadInput::daemon_ = nullptr;

}  // namespace

TEST_F(BadInput, OversizeFrameIsRefusedAndTheConnectionClosed) {
  RawSocket s(daemon_->socket());
  const uint32_t n = 100u << 20;  // announces 100 MiB, then sends junk
  std::string header = {char(n & 0xff), char((n >> 8) & 0xff), char((n >> 16) & 0xff), char(n >> 24)};
  s.send_bytes(header + std::string(4096, 'J'));
  auto reply = s.read_json();
  ASSERT_TRUE(reply);
  EXPECT_EQ(error_code(*reply), int(ErrorCode::FrameTooLarge));
  EXPECT_NE(reply->at("error").at("message").get<std::string>().find("104857600"), std::string::npos);
  EXPECT_TRUE(s.closed_by_peer());
}

TEST_F(BadInput, InvalidJsonAndUtf8GetParseErrorsAndTheConnectionStays) {
  RawSocket s(daemon_->socket());
  s.send_frame("{not json");
  auto a = s.read_json();
  ASSERT_TRUE(a);
  EXPECT_EQ(error_code(*a), int(ErrorCode::ParseError));
  EXPECT_TRUE(a->at("id").is_null());
  s.send_frame("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hel\xc3\x28lo\"}");
  auto b = s.read_json();
  ASSERT_TRUE(b);
  EXPECT_EQ(error_code(*b), int(ErrorCode::ParseError));
  EXPECT_NE(b->at("error").at("message").get<std::string>().find("UTF-8"), std::string::npos);
  s.send_frame(R"({"jsonrpc":"2.0","id":2,"method":"hello","params":{"client":"x","protocol":1e99999}})");
  auto c = s.read_json();
  ASSERT_TRUE(c) << "a number too large to hold must not kill the daemon";
  EXPECT_EQ(error_code(*c), int(ErrorCode::ParseError));
  s.hello();  // still usable
}

TEST_F(BadInput, WrongShapesUnknownMethodsAndParamTypes) {
  RawSocket s(daemon_->socket());
  s.send_json(Json::array({1, 2}));
  EXPECT_EQ(error_code(*s.read_json()), int(ErrorCode::InvalidRequest));
  s.send_json({{"jsonrpc", "2.0"}, {"id", 1}, {"method", 5}});
  EXPECT_EQ(error_code(*s.read_json()), int(ErrorCode::InvalidRequest));

  Json before_hello = s.call("status");
  EXPECT_EQ(error_code(before_hello), int(ErrorCode::HelloRequired));
  s.hello();
  Json unknown = s.call("models.frobnicate");
  EXPECT_EQ(error_code(unknown), int(ErrorCode::MethodNotFound));
  EXPECT_NE(unknown.at("error").at("message").get<std::string>().find("models.frobnicate"), std::string::npos);
  Json mistyped = s.call("jobs.get", {{"id", 42}});
  EXPECT_EQ(error_code(mistyped), int(ErrorCode::InvalidParams));
  EXPECT_EQ(error_code(s.call("jobs.get", Json::object())), int(ErrorCode::InvalidParams));
  EXPECT_EQ(error_code(s.call("jobs.list", {{"limit", "ten"}})), int(ErrorCode::InvalidParams));
  EXPECT_EQ(error_code(s.call("jobs.list", {{"state", "exploded"}})), int(ErrorCode::InvalidParams));
  EXPECT_EQ(error_code(s.call("jobs.simulate", {{"steps", -5}})), int(ErrorCode::InvalidParams));
  Json old_protocol = s.call("hello", {{"client", "x"}, {"protocol", 0}});
  EXPECT_EQ(error_code(old_protocol), int(ErrorCode::ProtocolMismatch));
  Json future_only = s.call("hello", {{"client", "x"}, {"protocol", 9}, {"min_protocol", 5}});
  EXPECT_EQ(error_code(future_only), int(ErrorCode::ProtocolMismatch));
  Json newer_client = s.call("hello", {{"client", "x"}, {"protocol", 7}, {"min_protocol", 1}});
  EXPECT_EQ(newer_client.at("result").at("protocol"), 1) << "a newer client falls back to what both speak";
}

TEST_F(BadInput, MissingImageBlocksAndLyingHeadersAreImageErrors) {
  auto client = daemon_->client();
  protocol::ImageRef ghost;
  ghost.shm = ipc::new_shm_name();
  ghost.desc.width = ghost.desc.height = 8;
  ghost.desc.stride = 32;
  try {
    client->call(protocol::method::kImageEcho, {{"image", protocol::to_json(ghost)}});
    FAIL() << "echo of a block that does not exist succeeded";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), ErrorCode::ImageError);
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  // A reference that claims more than the block holds.
  protocol::ImageDesc d;
  d.width = d.height = 16;
  ipc::ShmImage image = client->create_image(d);
  Json lie = protocol::to_json(image.ref());
  lie["height"] = 4096;
  EXPECT_THROW(client->call(protocol::method::kImageEcho, {{"image", lie}}), RpcError);
  // A name outside Kiln's namespace is never opened.
  Json escape = protocol::to_json(image.ref());
  escape["shm"] = "../../dev/zero";
  try {
    client->call(protocol::method::kImageEcho, {{"image", escape}});
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), ErrorCode::ImageError);
  }
  EXPECT_TRUE(shm_blocks_of(daemon_->pid()).empty()) << "a failed request leaves no block behind";
}

TEST_F(BadInput, TruncatedFrameThenCloseIsHarmless) {
  RawSocket s(daemon_->socket());
  std::string frame = ipc::encode_frame(R"({"jsonrpc":"2.0","id":1,"method":"hello","params":{"client":"x","protocol":1}})");
  s.send_bytes(frame.substr(0, frame.size() / 2));
  s.close();
}

TEST_F(BadInput, ClientThatStallsMidFrameIsCutOff) {
  RawSocket s(daemon_->socket());
  s.send_bytes(std::string("\x40\x00\x00\x00{\"jsonrpc\"", 14));
  EXPECT_TRUE(s.closed_by_peer(std::chrono::milliseconds(3000))) << "the stall timeout is 300 ms";
}

TEST_F(BadInput, ClientThatDisconnectsMidRequestLeavesNoBlock) {
  for (int i = 0; i < 5; ++i) {
    auto client = daemon_->client("quitter");
    protocol::ImageDesc d;
    d.width = d.height = 1024;
    ipc::ShmImage image = ipc::ShmImage::create(d);
    bool answered = false;
    client->call_async(protocol::method::kImageEcho, {{"image", protocol::to_json(image.ref())}},
                       [&](std::optional<Json>, std::optional<RpcError>) { answered = true; });
    client->close();  // gone before (or while) the daemon answers
  }
  EXPECT_TRUE(eventually([&] { return shm_blocks_of(daemon_->pid()).empty(); }))
      << "the daemon removes results that a departed client never took";
}

TEST_F(BadInput, ClientKilledMidTransferIsSweptAndForgotten) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    RawSocket s(daemon_->socket());
    s.hello();
    protocol::ImageDesc d;
    d.width = d.height = 2048;
    ipc::ShmImage image = ipc::ShmImage::create(d);
    image.disown();  // as if killed before it could clean up
    const std::string request = Json{{"jsonrpc", "2.0"}, {"id", 9}, {"method", "image.echo"},
                                     {"params", {{"image", protocol::to_json(image.ref())}}}}.dump();
    const std::string frame = ipc::encode_frame(request);
    s.send_bytes(frame.substr(0, frame.size() - 10));  // mid-transfer
    ::raise(SIGKILL);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_TRUE(eventually([&] { return shm_blocks_of(child).empty(); }, std::chrono::milliseconds(5000)))
      << "the daemon sweeps the blocks of dead clients (every second here)";
}
