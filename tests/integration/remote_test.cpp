// The remote daemon on loopback: kilnd --listen 127.0.0.1:0 with tokens, kiln::Client over TLS,
// every attack the issue lists (each refused with a clear error while everyone else is served),
// images and files across, read-only tokens, pinning, restarts, and many clients at once.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "client/remotes.h"
#include "daemon_process.h"
#include "ipc/attachments.h"
#include "ipc/frame.h"
#include "ipc/shm_image.h"
#include "protocol/errors.h"
#include "protocol/jsonrpc.h"
#include "protocol/methods.h"

using namespace kiln;
using namespace kiln::test;
using Json = nlohmann::json;
using protocol::ErrorCode;
namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace ssl = asio::ssl;

namespace {

const std::vector<std::string> kListen = {"--listen", "127.0.0.1:0", "--remote-timeout-ms", "600", "--stall-timeout-ms", "600"};

uint16_t remote_port(const DaemonProcess& d) {
  const Json s = d.client()->call(protocol::method::kStatus);
  return parse_remote_address(s.at("remote").at("address").get<std::string>()).port;
}

std::string new_token(const DaemonProcess& d, bool read_only = false, const std::string& name = "") {
  Json params{{"read_only", read_only}};
  if (!name.empty()) params["name"] = name;
  return d.client()->call(protocol::method::kRemoteTokensCreate, params).at("token");
}

std::string log_of(const DaemonProcess& d) {
  std::ifstream in(d.data_dir() / "logs" / "kilnd.log");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

ClientOptions remote_options(uint16_t port, const std::string& token, const fs::path& config, const std::string& compression = "zstd") {
  ClientOptions o;
  o.remote = "kiln+tls://127.0.0.1:" + std::to_string(port);
  o.token = token;
  o.config_dir = config.string();
  o.compression = compression;
  o.client_name = "remote-test";
  o.autostart = false;
  o.connect_timeout = std::chrono::milliseconds(5000);
  return o;
}

int code_of(const Json& reply) { return reply.at("error").at("code").get<int>(); }
std::string message_of(const Json& reply) { return reply.at("error").at("message").get<std::string>(); }

// A plain TCP connection to the remote port (for clients that do not speak TLS).
class RawTcp {
 public:
  explicit RawTcp(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("cannot connect");
  }
  ~RawTcp() { ::close(fd_); }
  // Sends as much as the peer takes; false once it refused more.
  bool send_all(const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  }
  std::optional<std::string> read_frame(std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
    std::string buf;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (buf.size() >= 4) {
        const auto* u = reinterpret_cast<const unsigned char*>(buf.data());
        const uint32_t n = u[0] | u[1] << 8 | u[2] << 16 | uint32_t(u[3]) << 24;
        if (buf.size() >= 4 + n) return buf.substr(4, n);
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char chunk[4096];
      const ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
      if (got <= 0) return std::nullopt;
      buf.append(chunk, static_cast<std::size_t>(got));
    }
    return std::nullopt;
  }
  bool closed_by_peer(std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) return true;
    }
    return false;
  }

 private:
  int fd_ = -1;
};

// A TLS connection that can say hello, and then lie in every way a real client never would.
class RawTls {
 public:
  explicit RawTls(uint16_t port) : ctx_(ssl::context::tls_client), stream_(io_, ctx_) {
    ctx_.set_verify_mode(ssl::verify_none);
    asio::ip::tcp::endpoint e(asio::ip::make_address("127.0.0.1"), port);
    stream_.next_layer().connect(e);
    stream_.handshake(ssl::stream_base::client);
    timeval tv{0, 200 * 1000};
    ::setsockopt(stream_.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  bool send_bytes(const std::string& bytes) {
    boost::system::error_code ec;
    asio::write(stream_, asio::buffer(bytes), ec);
    return !ec;
  }
  bool send_json(const Json& j) { return send_bytes(ipc::encode_frame(j.dump())); }
  bool send_binary(const std::string& payload) { return send_bytes(ipc::binary_frame_word(payload.size()) + payload); }
  // The next JSON frame; nullopt when the peer closed or `limit` passed.
  std::optional<Json> read_json(std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (buf_.size() >= 4) {
        const auto* u = reinterpret_cast<const unsigned char*>(buf_.data());
        const uint32_t word = u[0] | u[1] << 8 | u[2] << 16 | uint32_t(u[3]) << 24;
        const uint32_t n = word & ~ipc::kBinaryFrameFlag;
        if (buf_.size() >= 4 + n) {
          std::string payload = buf_.substr(4, n);
          buf_.erase(0, 4 + n);
          if (word & ipc::kBinaryFrameFlag) continue;
          return Json::parse(payload);
        }
      }
      char chunk[65536];
      boost::system::error_code ec;
      const std::size_t got = stream_.read_some(asio::buffer(chunk), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again ||
          ec == boost::system::errc::resource_unavailable_try_again)
        continue;
      if (ec) return std::nullopt;
      buf_.append(chunk, got);
    }
    return std::nullopt;
  }
  bool closed_by_peer(std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      char chunk[65536];
      boost::system::error_code ec;
      stream_.read_some(asio::buffer(chunk), ec);
      if (ec && ec != asio::error::would_block && ec != asio::error::try_again &&
          ec != boost::system::errc::resource_unavailable_try_again)
        return true;
    }
    return false;
  }
  Json call(const std::string& method, const Json& params) {
    send_json({{"jsonrpc", "2.0"}, {"id", next_id_++}, {"method", method}, {"params", params}});
    auto reply = read_json();
    if (!reply) throw std::runtime_error("no reply to " + method);
    return *reply;
  }
  Json hello(const std::string& token) { return call("hello", {{"client", "raw-tls"}, {"protocol", 1}, {"token", token}}); }

 private:
  asio::io_context io_;
  ssl::context ctx_;
  ssl::stream<asio::ip::tcp::socket> stream_;
  std::string buf_;
  int next_id_ = 1;
};

std::vector<uint8_t> noise(std::size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) seed ^= seed << 13, seed ^= seed >> 17, seed ^= seed << 5, b = static_cast<uint8_t>(seed);
  return v;
}

ipc::ShmImage filled(Client& c, uint32_t w, uint32_t h, uint32_t channels, protocol::PixelType type, uint32_t seed) {
  protocol::ImageDesc d;
  d.width = w;
  d.height = h;
  d.channels = channels;
  d.dtype = type;
  ipc::ShmImage image = c.create_image(d);
  const auto bytes = noise(image.data_size(), seed);
  std::memcpy(image.data(), bytes.data(), bytes.size());
  return image;
}

bool same_pixels(const ipc::ShmImage& a, const ipc::ShmImage& b) {
  if (a.desc().width != b.desc().width || a.desc().height != b.desc().height || a.desc().channels != b.desc().channels) return false;
  const std::size_t row = a.desc().min_stride();
  for (uint32_t y = 0; y < a.desc().height; ++y)
    if (std::memcmp(a.row(y), b.row(y), row) != 0) return false;
  return true;
}

// One daemon listening on loopback, shared by the tests that cause no failed sign-ins.
class Remote : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new DaemonProcess(kListen, "rem");
    port_ = remote_port(*daemon_);
    token_ = new std::string(new_token(*daemon_, false, "laptop-1"));
    read_only_ = new std::string(new_token(*daemon_, true, "viewer"));
  }
  static void TearDownTestSuite() {
    delete daemon_;
    delete token_;
    delete read_only_;
  }
  void TearDown() override {
    // After every abuse the daemon is alive and serves a local and a remote client.
    ASSERT_TRUE(daemon_->running());
    EXPECT_EQ(daemon_->client("bystander")->call(protocol::method::kStatus).at("pid"), daemon_->pid());
    Client remote(remote_options(port_, *token_, config()));
    remote.connect();
    EXPECT_EQ(remote.call(protocol::method::kStatus).at("pid"), daemon_->pid());
  }
  static fs::path config() { return daemon_->root() / "client-config"; }
  static std::unique_ptr<Client> remote(const std::string& token, const std::string& compression = "zstd") {
    auto c = std::make_unique<Client>(remote_options(port_, token, config(), compression));
    c->connect();
    return c;
  }
  static DaemonProcess* daemon_;
  static uint16_t port_;
  static std::string* token_;
  static std::string* read_only_;
};
DaemonProcess* Remote::daemon_ = nullptr;
uint16_t Remote::port_ = 0;
std::string* Remote::token_ = nullptr;
std::string* Remote::read_only_ = nullptr;

}  // namespace

TEST_F(Remote, HelloOverTlsPinsTheCertificateAndImagesCrossBothWays) {
  for (const char* compression : {"none", "zstd"}) {
    auto c = remote(*token_, compression);
    EXPECT_TRUE(c->is_remote());
    EXPECT_EQ(c->server_info().at("remote").at("token"), "laptop-1");
    EXPECT_FALSE(c->server_info().at("remote").at("read_only").get<bool>());
    const std::string pinned = RemoteConfig(config()).pinned(parse_remote_address("127.0.0.1:" + std::to_string(port_))).value_or("");
    EXPECT_EQ(pinned, daemon_->client()->call(protocol::method::kStatus).at("remote").at("fingerprint"));
    EXPECT_EQ(c->server_fingerprint(), pinned);
    // Odd sizes, every channel count and sample type, into a block of ours and into a new one.
    for (auto [w, h, ch, type] : {std::tuple{333u, 211u, 4u, protocol::PixelType::U8}, std::tuple{17u, 5u, 1u, protocol::PixelType::U16},
                                  std::tuple{64u, 48u, 3u, protocol::PixelType::F32}, std::tuple{2048u, 1100u, 4u, protocol::PixelType::U8}}) {
      const ipc::ShmImage in = filled(*c, w, h, ch, type, w * 7 + ch);
      ipc::ShmImage into = c->create_image(in.desc());
      const Json r = c->call(protocol::method::kImageEcho, {{"image", protocol::to_json(in.ref())}, {"into", protocol::to_json(into.ref())}});
      EXPECT_EQ(r.at("image").at("shm"), into.name()) << "the answer names the caller's own block";
      EXPECT_TRUE(same_pixels(in, into)) << w << "x" << h << "x" << ch << " " << compression;
      const Json fresh = c->call(protocol::method::kImageEcho, {{"image", protocol::to_json(in.ref())}});
      const ipc::ShmImage back = c->take_image(fresh.at("image"));
      EXPECT_TRUE(same_pixels(in, back)) << "a result the daemon made arrives as a local block";
    }
  }
  EXPECT_TRUE(eventually([] { return shm_blocks_of(daemon_->pid()).empty(); }))
      << "the daemon keeps no block of a remote client's once it sent it";
}

TEST_F(Remote, ReadOnlyTokensGenerateAndReadButNeverChangeAnything) {
  auto c = remote(*read_only_);
  EXPECT_TRUE(c->server_info().at("remote").at("read_only").get<bool>());
  const Json methods = c->server_info().at("methods");
  EXPECT_EQ(std::find(methods.begin(), methods.end(), "train"), methods.end()) << "hello lists only what the token may call";
  EXPECT_NE(std::find(methods.begin(), methods.end(), "generate"), methods.end());
  for (const char* watch : {"train.history", "train.plan", "datasets.thumbnails"})  // looking at a training is reading
    EXPECT_NE(std::find(methods.begin(), methods.end(), watch), methods.end()) << watch;
  EXPECT_EQ(std::find(methods.begin(), methods.end(), "loras.use_epoch"), methods.end());
  EXPECT_NO_THROW(c->call(protocol::method::kLorasList));
  EXPECT_NO_THROW(c->call(protocol::method::kJobsList));
  const ipc::ShmImage in = filled(*c, 8, 8, 4, protocol::PixelType::U8, 3);
  EXPECT_NO_THROW(c->call(protocol::method::kImageEcho, {{"image", protocol::to_json(in.ref())}}));
  const std::vector<std::pair<std::string, Json>> refused = {
      {"train", {{"base", "tiny"}, {"dataset", "x"}}},
      {"loras.remove", {{"name", "x"}}},
      {"models.add", {{"path", "/tmp/x.safetensors"}}},
      {"shutdown", Json::object()},
      {"datasets.create", {{"name", "x"}}},
      {"jobs.cancel", {{"id", "x"}}},
      {"loras.use_epoch", {{"name", "x"}, {"epoch", 1}}},
      {"train.plan", {{"base", "/etc/passwd"}, {"dataset", "x"}}},
      {"generate", {{"model", "/etc/passwd"}, {"prompt", "x"}}}};
  for (const auto& [method, params] : refused) {
    try {
      c->call(method, params);
      ADD_FAILURE() << method << " was allowed with a read-only token";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), ErrorCode::Forbidden) << method << ": " << e.what();
      EXPECT_TRUE(std::string(e.what()).find("read-only") != std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(daemon_->running()) << "the read-only shutdown did nothing";
}

TEST_F(Remote, TokenManagementIsLocalAndFileTransferRemote) {
  auto c = remote(*token_);
  try {
    c->call(protocol::method::kRemoteTokensCreate, {{"name", "sneaky"}});
    ADD_FAILURE() << "a remote client made itself a token";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), ErrorCode::Forbidden);
    EXPECT_NE(std::string(e.what()).find("daemon's own machine"), std::string::npos) << e.what();
  }
  try {
    daemon_->client()->call(protocol::method::kFilesUpload, {{"name", "x"}});
    ADD_FAILURE();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidRequest);
    EXPECT_NE(std::string(e.what()).find("pass the file's path"), std::string::npos) << e.what();
  }
  // lora.grid's 'out' would write anywhere on the daemon's machine: never from a remote client.
  try {
    c->call(protocol::method::kLoraGrid, {{"lora", "x"}, {"out", "/tmp/grid.png"}});
    ADD_FAILURE();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), ErrorCode::Forbidden) << e.what();
  }
}

TEST_F(Remote, UploadsLandInTheDataDirAndOnlyResultsCanBeDownloaded) {
  auto c = remote(*token_);
  const fs::path local = daemon_->root() / "upload me.txt";
  std::ofstream(local) << "hello from the laptop";
  const std::string there = c->upload_file(local.string());
  EXPECT_EQ(fs::path(there).filename(), "upload me.txt");
  EXPECT_EQ(fs::weakly_canonical(there).string().rfind(fs::weakly_canonical(daemon_->data_dir() / "uploads").string(), 0), 0u);
  std::ifstream in(there);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "hello from the laptop");
  // A name is only ever a name: its last component, never a path out of the uploads folder.
  const fs::path odd = daemon_->root() / "odd.txt";
  std::ofstream(odd) << "x";
  RawTls raw(port_);
  ASSERT_TRUE(raw.hello(*token_).contains("result"));
  const Json dots = raw.call("files.upload", {{"name", ".."}});  // no attachment either
  EXPECT_TRUE(dots.contains("error"));
  // Downloads: results only, nothing of the daemon's secrets, no way out by '..' or links.
  const fs::path output = daemon_->data_dir() / "outputs" / "result.png";
  fs::create_directories(output.parent_path());
  std::ofstream(output) << "png bytes";
  fs::create_symlink(daemon_->data_dir() / "remote" / "tokens.json", daemon_->data_dir() / "outputs" / "link.png");
  const fs::path got = daemon_->root() / "got.png";
  c->download_file(output.string(), got.string());
  std::ifstream g(got);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(g), {}), "png bytes");
  for (const fs::path& secret : {daemon_->data_dir() / "remote" / "tokens.json", daemon_->data_dir() / "outputs" / "link.png",
                                 daemon_->data_dir() / "outputs" / ".." / "remote" / "tokens.json", fs::path("/etc/passwd"),
                                 daemon_->data_dir() / "logs" / "kilnd.log"}) {
    try {
      c->download_file(secret.string(), (daemon_->root() / "stolen").string());
      ADD_FAILURE() << secret << " was downloaded";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), ErrorCode::Forbidden) << secret << ": " << e.what();
    }
  }
  EXPECT_FALSE(fs::exists(daemon_->root() / "stolen"));
}

TEST_F(Remote, TokensAreKeptHashedAndPrivate) {
  const fs::path tokens = daemon_->data_dir() / "remote" / "tokens.json";
  std::ifstream in(tokens);
  const std::string text(std::istreambuf_iterator<char>(in), {});
  EXPECT_EQ(text.find(*token_), std::string::npos) << "a token in clear";
  EXPECT_EQ(text.find(token_->substr(5, 20)), std::string::npos);
  EXPECT_NE(text.find("laptop-1"), std::string::npos);
  for (const fs::path& p : {tokens, daemon_->data_dir() / "tls" / "kilnd-key.pem"}) {
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0) << p;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << p;
  }
  const Json listed = daemon_->client()->call(protocol::method::kRemoteTokensList);
  EXPECT_EQ(listed.dump().find(*token_), std::string::npos);
  EXPECT_EQ(listed.at("listener").at("fingerprint").get<std::string>().rfind("SHA256:", 0), 0u);
}

TEST_F(Remote, APlainTcpClientIsToldToUseTls) {
  RawTcp raw(port_);
  ASSERT_TRUE(raw.send_all(ipc::encode_frame(R"({"jsonrpc":"2.0","id":1,"method":"hello","params":{"client":"x","protocol":1}})")));
  auto frame = raw.read_frame();
  ASSERT_TRUE(frame) << "a plain client gets an answer it can read";
  const Json reply = Json::parse(*frame);
  EXPECT_NE(message_of(reply).find("speaks only TLS"), std::string::npos) << reply.dump();
  EXPECT_TRUE(raw.closed_by_peer());
}

TEST_F(Remote, AHundredMegabytesOfJunkEndOnlyThatConnection) {
  const std::string junk(1 << 20, 'J');
  {
    RawTcp raw(port_);  // plain junk: told and cut off long before 100 MB
    int sent = 0;
    while (sent < 100 && raw.send_all(junk)) ++sent;
    EXPECT_LT(sent, 100);
  }
  {
    RawTcp raw(port_);  // junk that starts like TLS: the handshake fails
    std::string tlsish = junk;
    tlsish[0] = 0x16;
    int sent = 0;
    while (sent < 100 && raw.send_all(tlsish)) ++sent;
    EXPECT_LT(sent, 100);
  }
  {
    RawTls raw(port_);  // inside TLS after signing in: a frame announcing 100 MB
    ASSERT_TRUE(raw.hello(*token_).contains("result"));
    const uint32_t n = 100u << 20;
    raw.send_bytes(std::string{char(n & 0xff), char((n >> 8) & 0xff), char((n >> 16) & 0xff), char(n >> 24)} + junk);
    auto reply = raw.read_json();
    ASSERT_TRUE(reply);
    EXPECT_EQ(code_of(*reply), int(ErrorCode::FrameTooLarge));
    EXPECT_TRUE(raw.closed_by_peer());
  }
}

TEST_F(Remote, AHandshakeNeverFinishedOrAHelloNeverSaidIsClosed) {
  RawTcp silent(port_);
  EXPECT_TRUE(silent.closed_by_peer(std::chrono::seconds(5))) << "no TLS handshake: closed after --remote-timeout-ms";
  RawTcp half(port_);
  ASSERT_TRUE(half.send_all(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)));  // a ClientHello begun
  EXPECT_TRUE(half.closed_by_peer(std::chrono::seconds(5)));
  RawTls quiet(port_);  // TLS done, then nothing
  EXPECT_TRUE(quiet.closed_by_peer(std::chrono::seconds(5)));
  EXPECT_NE(log_of(*daemon_).find("no TLS handshake within"), std::string::npos);
}

TEST_F(Remote, NothingButHelloBeforeSigningIn) {
  RawTls raw(port_);
  const Json r = raw.call("status", Json::object());
  EXPECT_EQ(code_of(r), int(ErrorCode::HelloRequired));
  EXPECT_TRUE(raw.closed_by_peer());
}

TEST_F(Remote, AttachmentsThatLieAreRefusedAndTheConnectionClosed) {
  const uint32_t side = 64;
  const auto pixels = noise(side * side * 4, 9);
  ipc::Attachment a;
  a.kind = ipc::Attachment::Kind::Image;
  a.name = "kiln.1000.1.00000000000000000000000000000001";
  a.desc.width = a.desc.height = side;
  a.desc.channels = 4;
  a.desc.stride = side * 4;
  a.bytes = pixels.size();
  a.data = pixels.data();
  const auto encoded = ipc::encode_attachments({a}, ipc::Compression::None);
  auto request = [&](int id) {
    Json ref = encoded.manifest[0]["image"];
    ref["shm"] = a.name;
    return Json{{"jsonrpc", "2.0"}, {"id", id}, {"method", "image.echo"}, {"params", {{"image", ref}}}, {"attachments", encoded.manifest}};
  };
  const std::string header = encoded.frames[0].owned.substr(4);  // the chunk header without the frame word
  const std::string body(reinterpret_cast<const char*>(pixels.data()), pixels.size());
  {
    RawTls raw(port_);  // an honest one first: the echo comes back
    ASSERT_TRUE(raw.hello(*token_).contains("result"));
    raw.send_json(request(2));
    raw.send_binary(header + body);
    auto reply = raw.read_json();
    ASSERT_TRUE(reply && reply->contains("result")) << (reply ? reply->dump() : "none");
  }
  {
    RawTls raw(port_);  // a chunk larger than announced
    ASSERT_TRUE(raw.hello(*token_).contains("result"));
    raw.send_json(request(2));
    std::string bigger = header;
    const uint32_t raw_size = pixels.size() + 4096;
    std::memcpy(&bigger[16], &raw_size, 4);
    raw.send_binary(bigger + body + std::string(4096, 'x'));
    auto reply = raw.read_json();
    ASSERT_TRUE(reply);
    EXPECT_EQ(code_of(*reply), int(ErrorCode::AttachmentError));
    EXPECT_EQ(reply->at("id"), 2);
    EXPECT_NE(message_of(*reply).find("larger than announced"), std::string::npos) << message_of(*reply);
    EXPECT_TRUE(raw.closed_by_peer());
  }
  {
    RawTls raw(port_);  // a chunk whose checksum does not match
    ASSERT_TRUE(raw.hello(*token_).contains("result"));
    raw.send_json(request(3));
    std::string damaged = body;
    damaged[100] ^= 1;
    raw.send_binary(header + damaged);
    auto reply = raw.read_json();
    ASSERT_TRUE(reply);
    EXPECT_EQ(code_of(*reply), int(ErrorCode::AttachmentError));
    EXPECT_NE(message_of(*reply).find("checksum"), std::string::npos) << message_of(*reply);
    EXPECT_TRUE(raw.closed_by_peer());
  }
  {
    RawTls raw(port_);  // a manifest that lies about the image's size
    ASSERT_TRUE(raw.hello(*token_).contains("result"));
    Json lying = request(4);
    lying["attachments"][0]["bytes"] = 999999999;
    raw.send_json(lying);
    auto reply = raw.read_json();
    ASSERT_TRUE(reply);
    EXPECT_EQ(code_of(*reply), int(ErrorCode::AttachmentError));
    EXPECT_TRUE(raw.closed_by_peer());
  }
  {
    RawTls raw(port_);  // binary frames no message announced, and a message cut short
    ASSERT_TRUE(raw.hello(*token_).contains("result"));
    raw.send_binary(header + body);
    auto reply = raw.read_json();
    ASSERT_TRUE(reply);
    EXPECT_EQ(code_of(*reply), int(ErrorCode::AttachmentError));
  }
  {
    RawTls raw(port_);
    ASSERT_TRUE(raw.hello(*token_).contains("result"));
    raw.send_json(request(5));  // and then nothing: cut off after the stall timeout
    EXPECT_TRUE(raw.closed_by_peer(std::chrono::seconds(5)));
  }
}

TEST_F(Remote, ARemoteClientCannotNameBlocksOfTheDaemonsMachine) {
  // A block that exists on the daemon's machine (a local client's): remote clients cannot reach it.
  auto local = daemon_->client();
  const ipc::ShmImage secret = filled(*local, 8, 8, 4, protocol::PixelType::U8, 77);
  RawTls raw(port_);
  ASSERT_TRUE(raw.hello(*token_).contains("result"));
  const Json r = raw.call("image.echo", {{"image", protocol::to_json(secret.ref())}});
  ASSERT_TRUE(r.contains("error")) << r.dump();
  EXPECT_EQ(code_of(r), int(ErrorCode::InvalidParams));
  EXPECT_NE(message_of(r).find("did not come with the request"), std::string::npos) << message_of(r);
}

TEST_F(Remote, ThirtyTwoRemoteClientsAndLocalOnesGetTheirOwnAnswers) {
  constexpr int kRemote = 32, kLocal = 4, kRequests = 200;
  std::atomic<int> wrong{0}, lost{0}, done{0};
  auto run = [&](std::unique_ptr<Client> c, int who) {
    std::vector<ipc::ShmImage> images;
    for (int i = 0; i < 4; ++i) images.push_back(filled(*c, 8, 4, 4, protocol::PixelType::U8, uint32_t(who * 1000 + i + 1)));
    std::atomic<int> pending{0};
    for (int i = 0; i < kRequests; ++i) {
      while (pending.load() >= 8) std::this_thread::yield();  // at most 8 in flight per client
      ++pending;
      const ipc::ShmImage& in = images[i % 4];
      const Json params = i % 2 ? Json{{"image", protocol::to_json(in.ref())}} : Json{{"id", "job-" + std::to_string(who) + "-" + std::to_string(i)}};
      const std::string method = i % 2 ? protocol::method::kImageEcho : protocol::method::kJobsGet;
      Client* client = c.get();
      c->call_async(method, params, [&, client, i, who, in_ref = in.ref()](std::optional<Json> result, std::optional<RpcError> error) {
        if (i % 2) {
          if (!result) {
            ++lost;
          } else {
            // The answer is this request's: its pixels are the ones this client sent.
            ipc::ShmImage back = client->take_image(result->at("image"));
            const ipc::ShmImage mine = ipc::ShmImage::open(in_ref);
            if (!same_pixels(back, mine)) ++wrong;
          }
        } else if (!error || error->code() != ErrorCode::NotFound ||
                   std::string(error->what()).find("job-" + std::to_string(who) + "-" + std::to_string(i) + "'") == std::string::npos) {
          ++wrong;  // the error must name this request's own job id
        }
        ++done;
        --pending;
      });
    }
    while (pending.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  // Connected one after another before the load starts: this test is about concurrent requests,
  // and 32 TLS handshakes at once on two busy cores can outlast the fixture's 600 ms sign-in limit
  // (a connection failing inside a thread would also end the process instead of failing the test).
  std::vector<std::unique_ptr<Client>> clients;
  for (int r = 0; r < kRemote; ++r) clients.push_back(remote(*token_));
  for (int l = 0; l < kLocal; ++l) clients.push_back(daemon_->client("local-" + std::to_string(l)));
  std::vector<std::thread> threads;
  for (int i = 0; i < kRemote + kLocal; ++i)
    threads.emplace_back([&, i] { run(std::move(clients[size_t(i)]), i < kRemote ? i : 100 + (i - kRemote)); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), (kRemote + kLocal) * kRequests);
  EXPECT_EQ(lost.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
}

// Sign-in failures slow their address down, so each of these tests has a daemon of its own.
class RemoteSignIn : public ::testing::Test {
 protected:
  void SetUp() override {
    // 1.5 s: the next attempt must reach the daemon within the wait, even on a loaded machine
    // (with 300 ms a TLS handshake on two busy cores sometimes took longer and signed in).
    daemon_ = std::make_unique<DaemonProcess>(std::vector<std::string>{"--listen", "127.0.0.1:0", "--auth-delay-ms", "1500"}, "rsi");
    port_ = remote_port(*daemon_);
    token_ = new_token(*daemon_);
  }
  std::unique_ptr<Client> remote(const std::string& token) {
    auto c = std::make_unique<Client>(remote_options(port_, token, daemon_->root() / "client-config"));
    c->connect();
    return c;
  }
  std::unique_ptr<DaemonProcess> daemon_;
  uint16_t port_ = 0;
  std::string token_;
};

TEST_F(RemoteSignIn, NoTokenIsRefusedAndLoggedWithTheAddress) {
  RawTls raw(port_);
  const Json r = raw.call("hello", {{"client", "x"}, {"protocol", 1}});
  EXPECT_EQ(code_of(r), int(ErrorCode::Unauthorized));
  EXPECT_NE(message_of(r).find("needs a token"), std::string::npos) << message_of(r);
  EXPECT_TRUE(raw.closed_by_peer());
  EXPECT_TRUE(eventually([&] { return log_of(*daemon_).find("refused 127.0.0.1:") != std::string::npos; }));
  EXPECT_NE(log_of(*daemon_).find("no token"), std::string::npos);
}

TEST_F(RemoteSignIn, AWrongTokenIsRefusedAndItsAddressSlowedDown) {
  try {
    remote("kiln_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    FAIL() << "a wrong token signed in";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unauthorized);
    EXPECT_NE(std::string(e.what()).find("not valid here"), std::string::npos) << e.what();
  }
  // Right away even the right token is refused unlooked-at: the address must wait.
  try {
    remote(token_);
    FAIL() << "no slow-down after a failed attempt";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unauthorized);
    EXPECT_NE(std::string(e.what()).find("too many failed attempts from 127.0.0.1"), std::string::npos) << e.what();
  }
  // The wait doubles with each failure; once it passed, the right token signs in.
  std::unique_ptr<Client> ok;
  EXPECT_TRUE(eventually([&] {
    try {
      ok = remote(token_);
      return true;
    } catch (const RpcError&) {
      return false;
    }
  }, std::chrono::seconds(10)));
  ASSERT_TRUE(ok);
  const std::string log = log_of(*daemon_);
  EXPECT_NE(log.find("wrong or revoked token (failed attempt 1 from 127.0.0.1"), std::string::npos) << log;
  EXPECT_NE(log.find("without looking at its token"), std::string::npos);
}

TEST_F(RemoteSignIn, ARevokedTokenIsRefusedAndItsSessionsClosed) {
  auto c = remote(token_);
  std::atomic<bool> dropped{false};
  c->set_disconnect_handler([&](const std::string&) { dropped = true; });
  const Json tokens = daemon_->client()->call(protocol::method::kRemoteTokensList).at("tokens");
  ASSERT_EQ(tokens.size(), 1u);
  const Json revoked = daemon_->client()->call(protocol::method::kRemoteTokensRevoke, {{"id", tokens[0].at("id")}});
  EXPECT_EQ(revoked.at("closed_sessions"), 1);
  EXPECT_TRUE(eventually([&] { return dropped.load(); })) << "a revoked token's session ends at once";
  try {
    remote(token_);
    FAIL() << "a revoked token signed in";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unauthorized);
  }
}

TEST(RemoteRestart, TheClientReconnectsAndAChangedCertificateIsRefused) {
  auto first = std::make_unique<DaemonProcess>(std::vector<std::string>{"--listen", "127.0.0.1:0"}, "rrs");
  const uint16_t port = remote_port(*first);
  const std::string token = new_token(*first);
  const fs::path config = first->root() / "client-config";
  const std::vector<std::string> same_port = {"--listen", "127.0.0.1:" + std::to_string(port)};
  Client c(remote_options(port, token, config));
  c.connect();
  const std::string pinned = c.server_fingerprint();
  std::atomic<bool> dropped{false};
  c.set_disconnect_handler([&](const std::string&) { dropped = true; });
  first->terminate();
  EXPECT_TRUE(eventually([&] { return dropped.load(); }));
  EXPECT_FALSE(c.connected());
  // The same daemon again (its data dir keeps its certificate): the client reconnects, the pin holds.
  auto again = std::make_unique<DaemonProcess>(*first, same_port);
  c.connect();
  EXPECT_EQ(c.server_fingerprint(), pinned);
  const ipc::ShmImage in = filled(c, 31, 7, 4, protocol::PixelType::U8, 5);
  EXPECT_TRUE(same_pixels(in, c.take_image(c.call(protocol::method::kImageEcho, {{"image", protocol::to_json(in.ref())}}).at("image"))));
  c.close();
  again->terminate();
  // Another daemon, another certificate, on the same port: refused before the token goes out.
  DaemonProcess impostor(same_port, "imp");
  try {
    c.connect();
    FAIL() << "a changed certificate was accepted";
  } catch (const ConnectionError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("different TLS certificate"), std::string::npos) << m;
    EXPECT_NE(m.find(pinned), std::string::npos) << m;
    EXPECT_NE(m.find("kiln remote repin"), std::string::npos) << m;
  }
  EXPECT_EQ(RemoteConfig(config).pinned(parse_remote_address("127.0.0.1:" + std::to_string(port))), pinned);
  const std::string log = log_of(impostor);
  EXPECT_EQ(log.find("refused"), std::string::npos) << "the impostor never saw a hello: " << log;
  EXPECT_EQ(log.find("signed in"), std::string::npos) << log;
}
