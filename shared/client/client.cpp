#include "client/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/interprocess/file_mapping.hpp>
#include <boost/interprocess/mapped_region.hpp>

#include "client/daemon_launcher.h"
#include "client/file_sink.h"
#include "client/remotes.h"
#include "ipc/attachments.h"
#include "ipc/framed_connection.h"
#include "ipc/paths.h"
#include "ipc/tls_stream.h"
#include "protocol/image_ref.h"
#include "protocol/jsonrpc.h"
#include "protocol/methods.h"
#include "protocol/version.h"

namespace kiln {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using protocol::ErrorCode;

namespace {
constexpr auto kMirrorTtl = std::chrono::minutes(5);
constexpr uint64_t kMirrorBytes = 1ull << 30;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// Where a remote connection goes and with which token; resolved from the options, the
// environment and the saved remotes.
struct RemoteTarget {
  std::string name;  // the saved remote's name, "" for an address
  RemoteAddress address;
  std::string token;
};

// What travels with one request besides its JSON (remote daemons only).
struct RequestExtras {
  std::vector<ipc::Attachment> files;
  std::string download_to;
};
}  // namespace

struct Client::Impl : std::enable_shared_from_this<Impl> {
  ClientOptions options;
  fs::path socket_path;
  std::string socket_path_string;

  // Remote daemons.
  bool remote = false;
  std::optional<RemoteTarget> target;
  std::string resolve_error;  // why the remote could not be resolved; thrown by connect()
  std::string fingerprint;
  ipc::Compression compression = ipc::Compression::Zstd;

  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;

  std::shared_ptr<ipc::ShmPool> pool = std::make_shared<ipc::ShmPool>();
  ipc::ShmMappings local_mappings{8, 2ull << 30};  // this process's blocks, for sending them to a remote daemon

  // Local daemons: requests are written straight from the calling thread on a duplicate of the
  // socket's descriptor (the background thread only reads): a request costs no thread hand-off.
  std::mutex write_mutex;
  int write_fd = -1;

  struct Pending {
    Callback done;
    std::map<std::string, ipc::ShmImage> result_blocks;  // remote: blocks of ours the daemon writes into
    std::string download_to;                             // remote: files.download's target
  };

  // A remote message whose binary frames are still arriving (client thread only).
  struct Incoming {
    nlohmann::json message;
    std::unique_ptr<ipc::AttachmentReceiver> receiver;
    std::map<std::string, std::string> rename;              // daemon block name → our copy's name
    std::vector<std::pair<std::string, ipc::ShmImage>> mirrors;  // our copies, by daemon name
    std::map<std::string, ipc::ShmImage> result_blocks;          // blocks of ours being filled
    std::unique_ptr<FileSink> file;
    bool file_done = false;
  };
  std::optional<Incoming> incoming;

  struct Mirror {
    ipc::ShmImage image;
    std::chrono::steady_clock::time_point expires;
  };

  mutable std::mutex mutex;  // guards everything below
  std::shared_ptr<ipc::FramedConnection> connection;
  std::map<int64_t, Pending> pending;
  int64_t next_id = 1;
  std::map<int, NotificationHandler> handlers;
  int next_token = 1;
  DisconnectHandler on_disconnect;
  Json server_info = Json::object();
  bool is_connected = false;
  std::map<std::string, Mirror> mirrors;  // remote: images the daemon sent, by its block name

  void start_thread() {
    if (thread.joinable()) return;
    io.restart();
    work.emplace(asio::make_work_guard(io));
    thread = std::thread([this] { io.run(); });
  }

  void stop_thread() {
    work.reset();
    io.stop();
    if (thread.joinable() && thread.get_id() != std::this_thread::get_id()) thread.join();
  }

  void resolve_remote() {
    std::string which = options.remote;
    if (which.empty() && options.socket_path.empty()) which = env("KILN_REMOTE");
    if (which.empty()) return;
    remote = true;
    try {
      RemoteConfig config(options.config_dir);
      RemoteTarget t;
      if (is_remote_url(which) || which.find(':') != std::string::npos) {
        t.address = parse_remote_address(which);
        t.token = options.token;
        if (t.token.empty()) t.token = env("KILN_TOKEN");
        if (t.token.empty())
          if (auto saved = config.find_by_address(t.address)) t.token = saved->token, t.name = saved->name;
      } else {
        auto saved = config.find(which);
        if (!saved)
          throw std::runtime_error("there is no saved remote called '" + which + "' in " + config.dir().string() +
                                   "; `kiln remote list` shows the saved ones, `kiln remote add NAME HOST:PORT --token T` adds one");
        t = RemoteTarget{saved->name, saved->address, options.token.empty() ? saved->token : options.token};
      }
      socket_path_string = t.address.url();
      target = std::move(t);
    } catch (const std::exception& e) {
      resolve_error = e.what();
      socket_path_string = which;
    }
    // KILN_COMPRESSION=none|zstd chooses for every client that left the default (the plugins too).
    std::string chosen = options.compression;
    if (chosen == "zstd" && !env("KILN_COMPRESSION").empty()) chosen = env("KILN_COMPRESSION");
    if (chosen == "none") compression = ipc::Compression::None;
  }

  // One attempt; returns the error code so the caller can decide whether to start the daemon.
  boost::system::error_code try_connect(ipc::LocalSocket& socket) {
    boost::system::error_code ec;
    socket.connect(asio::local::stream_protocol::endpoint(socket_path.string()), ec);
    return ec;
  }

  ipc::LocalSocket open_socket() {
    if (std::string problem = ipc::check_socket_path(socket_path); !problem.empty()) throw ConnectionError(problem);
    ipc::LocalSocket socket(io);
    boost::system::error_code ec = try_connect(socket);
    if (!ec) return socket;
    const bool absent = ec == boost::system::errc::no_such_file_or_directory || ec == boost::system::errc::connection_refused;
    if (!absent || !options.autostart)
      throw ConnectionError("cannot connect to kilnd at " + socket_path.string() + ": " + ec.message() +
                            (absent ? " (is the daemon running? `kiln daemon start` starts it)" : ""));

    fs::path exe = find_daemon_executable(options.daemon_executable);
    spawn_daemon(exe, socket_path, options.data_dir);
    const auto deadline = std::chrono::steady_clock::now() + options.start_timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ipc::LocalSocket retry(io);
      if (!try_connect(retry)) return retry;
    }
    fs::path log = (options.data_dir.empty() ? ipc::default_data_dir() : fs::path(options.data_dir)) / "logs" / "kilnd.log";
    throw ConnectionError("started " + exe.string() + " but it did not answer on " + socket_path.string() + " within " +
                          std::to_string(options.start_timeout.count() / 1000) + " s; its log is " + log.string());
  }

  // Runs an asynchronous operation on the client thread and waits for it, up to the connect timeout.
  template <class Start>
  boost::system::error_code wait_for(Start start, asio::ip::tcp::socket& socket, const char* what) {
    auto done = std::make_shared<std::promise<boost::system::error_code>>();
    auto future = done->get_future();
    start([done](const boost::system::error_code& ec) { done->set_value(ec); });
    if (future.wait_for(options.connect_timeout) != std::future_status::ready) {
      boost::system::error_code ignored;
      asio::post(io, [&socket] {
        boost::system::error_code e;
        socket.close(e);
      });
      future.wait();
      throw ConnectionError(std::string("cannot reach kilnd at ") + target->address.str() + ": no " + what + " within " +
                            std::to_string(options.connect_timeout.count() / 1000) + " s");
    }
    return future.get();
  }

  std::unique_ptr<ipc::ByteStream> open_remote() {
    if (!resolve_error.empty()) throw ConnectionError(resolve_error);
    const RemoteTarget& t = *target;
    if (t.token.empty())
      throw ConnectionError("no token for " + t.address.url() +
                            ": save it with `kiln remote add NAME " + t.address.str() +
                            " --token T`, or set KILN_TOKEN (tokens are made on the daemon's machine with "
                            "`kiln remote token create`)");
    auto context = ipc::make_client_tls_context();
    auto stream = std::make_unique<ipc::TlsSocket>(io, *context);
    boost::system::error_code ec;
    asio::ip::tcp::resolver resolver(io);
    const auto endpoints = resolver.resolve(t.address.host, std::to_string(t.address.port), ec);
    if (ec) throw ConnectionError("cannot find " + t.address.host + ": " + ec.message() + " (check the remote's address)");
    auto& tcp = stream->next_layer();
    ec = wait_for([&](auto handler) {
      asio::async_connect(tcp, endpoints, [handler](const boost::system::error_code& e, const asio::ip::tcp::endpoint&) { handler(e); });
    }, tcp, "answer");
    if (ec)
      throw ConnectionError("cannot connect to kilnd at " + t.address.str() + ": " + ec.message() +
                            " (is kilnd running there with --listen, and is the port open?)");
    tcp.set_option(asio::ip::tcp::no_delay(true), ec);
    ec = wait_for([&](auto handler) { stream->async_handshake(asio::ssl::stream_base::client, handler); }, tcp, "TLS handshake");
    if (ec)
      throw ConnectionError("no TLS connection to " + t.address.str() + ": " + ec.message() +
                            " (is that port kilnd's --listen port? it speaks only TLS 1.2 or newer)");
    fingerprint = ipc::peer_fingerprint(*stream);
    check_pin();
    return ipc::make_tls_stream(std::move(stream), std::move(context));
  }

  // Before anything is sent (the token above all): the certificate must be the pinned one.
  void check_pin() {
    const RemoteTarget& t = *target;
    RemoteConfig config(options.config_dir);
    if (auto pinned = config.pinned(t.address)) {
      if (!ipc::same_fingerprint(*pinned, fingerprint))
        throw ConnectionError(
            "the daemon at " + t.address.str() + " shows a different TLS certificate than the one pinned on first contact:\n"
            "  pinned: " + *pinned + "\n  now:    " + fingerprint +
            "\nNothing was sent to it. This happens when kilnd's certificate was replaced (a new data dir or --tls-cert), "
            "or when something else answers at that address. On the daemon's machine, `kiln remote token list` shows the "
            "fingerprint kilnd uses; if it is the new one above, re-pin with `kiln remote repin " +
            (t.name.empty() ? t.address.str() : t.name) + "`.");
      return;
    }
    if (!options.expect_fingerprint.empty() && !ipc::same_fingerprint(options.expect_fingerprint, fingerprint))
      throw ConnectionError("the daemon at " + t.address.str() + " shows the certificate " + fingerprint +
                            ", not the expected " + options.expect_fingerprint + "; nothing was sent to it");
  }

  void pin_after_hello() {
    if (!remote) return;
    RemoteConfig config(options.config_dir);
    if (!config.pinned(target->address)) config.pin(target->address, fingerprint);
  }

  // ------------------------------------------------------------------------------------------
  // Receiving.

  void on_frame(std::string payload) {
    if (incoming) {
      fail_connection("kilnd sent a message before the binary frames of the previous one");
      return;
    }
    protocol::DecodeError parse_error;
    std::optional<Json> parsed = protocol::parse_payload(payload, parse_error);
    if (!parsed) return;  // a daemon never sends garbage; nothing useful to do with it
    if (remote && parsed->is_object() && parsed->contains(ipc::kAttachmentsKey)) {
      try {
        begin_incoming(std::move(*parsed));
      } catch (const std::exception& e) {
        fail_connection(std::string("kilnd sent attachments this client cannot take: ") + e.what());
      }
      return;
    }
    if (remote) rename_known(*parsed, {});
    deliver(*parsed);
  }

  void on_binary(std::string payload) {
    if (!incoming) {
      fail_connection("kilnd sent a binary frame no message announced");
      return;
    }
    try {
      incoming->receiver->feed(payload);
    } catch (const std::exception& e) {
      fail_connection(std::string("an image or file from kilnd arrived damaged: ") + e.what());
      return;
    }
    if (incoming->receiver->complete()) finish_incoming();
  }

  void begin_incoming(Json message) {
    const Json manifest = std::move(message[ipc::kAttachmentsKey]);
    message.erase(ipc::kAttachmentsKey);
    ipc::AttachmentLimits limits;
    limits.max_total_bytes = 8ull << 30;
    std::vector<ipc::ManifestEntry> entries = ipc::parse_manifest(manifest, limits);
    Incoming in;
    in.message = std::move(message);
    std::vector<ipc::AttachmentReceiver::Sink> sinks;
    // A reply may fill blocks of ours that the request named as results, and a file download.
    std::string download_to;
    if (in.message.contains("id") && in.message["id"].is_number_integer() && !in.message.contains("method")) {
      std::lock_guard lock(mutex);
      auto it = pending.find(in.message["id"].get<int64_t>());
      if (it != pending.end()) {
        in.result_blocks = std::move(it->second.result_blocks);
        download_to = it->second.download_to;
      }
    }
    for (const ipc::ManifestEntry& e : entries) {
      ipc::AttachmentReceiver::Sink sink;
      if (e.kind == ipc::Attachment::Kind::File) {
        if (download_to.empty() || in.file) throw ipc::AttachmentError("a file nobody asked for");
        in.file = std::make_unique<FileSink>();
        in.file->open(download_to);
        FileSink* f = in.file.get();
        sink.write = [f](const uint8_t* data, std::size_t size) { f->write(data, size); };
      } else if (auto r = in.result_blocks.find(e.name); r != in.result_blocks.end()) {
        ipc::ShmImage& block = r->second;
        if (block.data_size() != e.bytes) throw ipc::AttachmentError("a result of another size than the block it fills");
        sink.data = block.data();
      } else {
        ipc::ShmImage copy = ipc::ShmImage::create(e.desc);
        sink.data = copy.data();
        in.rename[e.name] = copy.name();
        in.mirrors.emplace_back(e.name, std::move(copy));
      }
      sinks.push_back(std::move(sink));
    }
    in.receiver = std::make_unique<ipc::AttachmentReceiver>(std::move(entries), std::move(sinks));
    incoming = std::move(in);
    if (incoming->receiver->complete()) finish_incoming();
    else if (auto conn = current_connection()) conn->set_expecting_more(true);
  }

  void finish_incoming() {
    Incoming in = std::move(*incoming);
    incoming.reset();
    if (auto conn = current_connection()) conn->set_expecting_more(false);
    if (in.file) {
      try {
        in.file->finish();
      } catch (const std::exception& e) {
        fail_connection(e.what());
        return;
      }
    }
    {
      std::lock_guard lock(mutex);
      const auto now = std::chrono::steady_clock::now();
      for (auto& [daemon_name, copy] : in.mirrors) {
        mirrors.erase(daemon_name);
        mirrors.emplace(daemon_name, Mirror{std::move(copy), now + kMirrorTtl});
      }
      trim_mirrors(now);
    }
    rename_known(in.message, in.rename);
    deliver(in.message);
  }

  // The daemon's block names in a message become the names of our copies of them.
  void rename_known(Json& message, const std::map<std::string, std::string>& fresh) {
    std::lock_guard lock(mutex);
    ipc::for_each_image_ref(message, [&](Json& ref) {
      const std::string name = ref["shm"].get<std::string>();
      if (auto it = fresh.find(name); it != fresh.end()) ref["shm"] = it->second;
      else if (auto m = mirrors.find(name); m != mirrors.end()) ref["shm"] = m->second.image.name();
    });
  }

  void trim_mirrors(std::chrono::steady_clock::time_point now) {  // with mutex held
    uint64_t total = 0;
    for (auto it = mirrors.begin(); it != mirrors.end();) {
      if (it->second.expires < now) {
        it = mirrors.erase(it);
      } else {
        total += it->second.image.data_size();
        ++it;
      }
    }
    while (total > kMirrorBytes && !mirrors.empty()) {
      auto oldest = mirrors.begin();
      for (auto it = mirrors.begin(); it != mirrors.end(); ++it)
        if (it->second.expires < oldest->second.expires) oldest = it;
      total -= oldest->second.image.data_size();
      mirrors.erase(oldest);
    }
  }

  void deliver(const Json& parsed) {
    auto decoded = protocol::decode_json_message(parsed);
    auto* message = std::get_if<protocol::Message>(&decoded);
    if (!message) return;
    if (auto* response = std::get_if<protocol::Response>(message)) {
      if (!response->id.is_number_integer()) return;
      Callback done;
      {
        std::lock_guard lock(mutex);
        auto it = pending.find(response->id.get<int64_t>());
        if (it == pending.end()) return;  // a call that timed out
        done = std::move(it->second.done);
        pending.erase(it);
      }
      if (response->error)
        done(std::nullopt, RpcError(response->error->code, response->error->message, response->error->data));
      else
        done(response->result.value_or(Json::object()), std::nullopt);
    } else if (auto* note = std::get_if<protocol::Notification>(message)) {
      std::vector<NotificationHandler> copy;
      {
        std::lock_guard lock(mutex);
        for (auto& [token, handler] : handlers) copy.push_back(handler);
      }
      for (auto& handler : copy) handler(note->method, note->params);
    }
  }

  std::shared_ptr<ipc::FramedConnection> current_connection() {
    std::lock_guard lock(mutex);
    return connection;
  }

  void fail_connection(const std::string& reason) {
    incoming.reset();
    if (auto conn = current_connection()) conn->close(reason);
  }

  void close_write_fd() {
    std::lock_guard lock(write_mutex);
    if (write_fd >= 0) ::close(write_fd);
    write_fd = -1;
  }

  // Writes a whole frame; false when the connection is gone.
  bool write_frame(const std::string& frame) {
    std::lock_guard lock(write_mutex);
    if (write_fd < 0) return false;
    std::size_t done = 0;
    while (done < frame.size()) {
      const ssize_t n = ::send(write_fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{write_fd, POLLOUT, 0};
        if (::poll(&p, 1, 30000) <= 0) return false;  // a daemon that stops reading for 30 s is gone
      } else {
        return false;
      }
    }
    return true;
  }

  void on_close(const std::string& reason) {
    close_write_fd();
    incoming.reset();
    std::map<int64_t, Pending> failed;
    DisconnectHandler notify;
    {
      std::lock_guard lock(mutex);
      failed.swap(pending);
      is_connected = false;
      connection.reset();
      notify = on_disconnect;
    }
    for (auto& [id, p] : failed)
      p.done(std::nullopt, RpcError(ErrorCode::ConnectionLost, "connection to kilnd lost: " + reason));
    if (notify) notify(reason);
  }

  // ------------------------------------------------------------------------------------------
  // Sending.

  // The images a request names, to send after it: their pixels, or only their size for blocks
  // the daemon writes results into. Throws RpcError.
  std::vector<ipc::Attachment> image_attachments(const std::string& method, const Json& params,
                                                 std::map<std::string, ipc::ShmImage>& result_blocks) {
    std::set<std::string> result_params;
    if (const protocol::MethodSpec* spec = protocol::find_method(method))
      for (const auto& p : spec->params)
        if (p.flags & protocol::kResultImage) result_params.insert(p.name);
    std::vector<ipc::Attachment> out;
    std::set<std::string> seen;
    auto attach = [&](const Json& ref, bool result) {
      if (auto problem = protocol::check_image_ref(ref)) throw RpcError(ErrorCode::InvalidParams, method + ": " + *problem);
      const protocol::ImageRef r = protocol::image_ref_from_json(ref);
      if (!seen.insert(r.shm).second) return;
      try {
        ipc::ShmImage image = local_mappings.open(r, result ? ipc::ShmImage::Access::ReadWrite : ipc::ShmImage::Access::ReadOnly);
        ipc::Attachment a;
        a.kind = ipc::Attachment::Kind::Image;
        a.name = r.shm;
        a.desc = image.desc();
        a.bytes = image.data_size();
        a.blank = result;
        if (result) {
          result_blocks.emplace(r.shm, std::move(image));
        } else {
          auto keep = std::make_shared<ipc::ShmImage>(std::move(image));
          a.data = static_cast<const ipc::ShmImage&>(*keep).data();
          a.keep = keep;
        }
        out.push_back(std::move(a));
      } catch (const ipc::ImageError& e) {
        throw RpcError(ErrorCode::ImageError, method + ": " + e.what());
      }
    };
    if (params.is_object())
      for (const auto& [key, value] : params.items())
        if (result_params.count(key) && value.is_object() && value.contains("shm")) attach(value, true);
    ipc::for_each_image_ref(params, [&](const Json& ref) { attach(ref, false); });
    return out;
  }

  // Returns the request id, or 0 when it could not be sent (then `done` has already run).
  int64_t send_request(const std::string& method, const Json& params, Callback done, RequestExtras extras = {}) {
    std::shared_ptr<ipc::FramedConnection> conn;
    int64_t id = 0;
    {
      std::lock_guard lock(mutex);
      conn = connection;
      if (conn) id = next_id++;
    }
    if (!conn) {
      done(std::nullopt, RpcError(ErrorCode::ConnectionLost, "not connected to kilnd"));
      return 0;
    }
    if (remote) {
      Pending p;
      ipc::OutgoingMessage message;
      try {
        std::vector<ipc::Attachment> attachments = image_attachments(method, params, p.result_blocks);
        for (auto& f : extras.files) attachments.push_back(std::move(f));
        Json j{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}};
        if (!attachments.empty()) {
          ipc::EncodedAttachments encoded = ipc::encode_attachments(attachments, compression);
          j[ipc::kAttachmentsKey] = std::move(encoded.manifest);
          message.binary = std::move(encoded.frames);
        }
        message.json = j.dump(-1, ' ', false, Json::error_handler_t::replace);
      } catch (const RpcError& e) {
        done(std::nullopt, e);
        return 0;
      }
      p.done = std::move(done);
      p.download_to = std::move(extras.download_to);
      {
        std::lock_guard lock(mutex);
        pending.emplace(id, std::move(p));
      }
      conn->send_message(std::move(message));  // a closed connection fails the pending call
      return id;
    }
    {
      std::lock_guard lock(mutex);
      pending.emplace(id, Pending{std::move(done), {}, {}});
    }
    if (!write_frame(ipc::encode_frame(protocol::encode(protocol::Request{id, method, params})))) {
      Callback failed;
      {
        std::lock_guard lock(mutex);
        auto it = pending.find(id);
        if (it != pending.end()) {
          failed = std::move(it->second.done);
          pending.erase(it);
        }
      }
      if (failed) failed(std::nullopt, RpcError(ErrorCode::ConnectionLost, "connection to kilnd lost while sending " + method));
      return 0;
    }
    return id;
  }

  Json call_sync(const std::string& method, const Json& params, std::chrono::milliseconds timeout, RequestExtras extras = {}) {
    if (thread.joinable() && std::this_thread::get_id() == thread.get_id())
      throw std::logic_error("kiln::Client::call must not be used inside a client callback; use call_async");
    auto promise = std::make_shared<std::promise<Json>>();
    std::future<Json> future = promise->get_future();
    const int64_t id = send_request(method, params, [promise](std::optional<Json> result, std::optional<RpcError> error) {
      if (error) promise->set_exception(std::make_exception_ptr(*error));
      else promise->set_value(std::move(*result));
    }, std::move(extras));
    // Most answers arrive within tens of microseconds: poll briefly before sleeping on the
    // future, which saves a futex wake-up on the hot path.
    const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(60);
    while (future.wait_for(std::chrono::seconds(0)) != std::future_status::ready &&
           std::chrono::steady_clock::now() < spin_until)
      std::this_thread::yield();
    if (timeout.count() > 0 && future.wait_for(timeout) != std::future_status::ready) {
      std::lock_guard lock(mutex);
      pending.erase(id);
      throw RpcError(ErrorCode::Timeout, method + ": no answer from kilnd within " + std::to_string(timeout.count()) + " ms");
    }
    return future.get();
  }
};

Client::Client(ClientOptions options) : impl_(std::make_shared<Impl>()) {
  impl_->options = std::move(options);
  impl_->resolve_remote();
  if (!impl_->remote) {
    impl_->socket_path = ipc::resolve_socket_path(impl_->options.socket_path);
    impl_->socket_path_string = impl_->socket_path.string();
  }
}

Client::~Client() { close(); }

void Client::connect() {
  close();
  impl_->start_thread();
  std::shared_ptr<ipc::FramedConnection> conn;
  if (impl_->remote) {
    ipc::ConnectionLimits limits;
    limits.max_binary_frame_bytes = ipc::kMaxBinaryFrameBytes;
    limits.stall_timeout = std::chrono::milliseconds(60000);
    limits.max_outgoing_bytes = 1ull << 30;
    try {
      conn = std::make_shared<ipc::FramedConnection>(impl_->open_remote(), limits);
    } catch (...) {
      close();
      throw;
    }
  } else {
    ipc::LocalSocket socket = impl_->open_socket();
    {
      std::lock_guard lock(impl_->write_mutex);
      impl_->write_fd = ::fcntl(socket.native_handle(), F_DUPFD_CLOEXEC, 0);
      if (impl_->write_fd < 0) throw ConnectionError(std::string("cannot duplicate the socket: ") + std::strerror(errno));
    }
    conn = std::make_shared<ipc::FramedConnection>(std::move(socket));
  }
  std::weak_ptr<Impl> weak = impl_;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->connection = conn;
    impl_->is_connected = true;
  }
  conn->start({[weak](std::string payload) {
                 if (auto self = weak.lock()) self->on_frame(std::move(payload));
               },
               [weak](std::string payload) {
                 if (auto self = weak.lock()) self->on_binary(std::move(payload));
               },
               nullptr,
               [weak](const std::string& reason) {
                 if (auto self = weak.lock()) self->on_close(reason);
               }});
  Json hello{{"client", impl_->options.client_name},
             {"protocol", protocol::kProtocolVersion},
             {"min_protocol", protocol::kMinProtocolVersion}};
  if (impl_->remote) {
    hello["token"] = impl_->target->token;
    hello["compression"] = ipc::to_string(impl_->compression);
  }
  try {
    Json info = impl_->call_sync(protocol::method::kHello, hello, std::chrono::milliseconds(10000));
    impl_->pin_after_hello();
    std::lock_guard lock(impl_->mutex);
    impl_->server_info = std::move(info);
  } catch (const RpcError& e) {
    close();
    if (impl_->remote && e.code() == ErrorCode::ConnectionLost)
      throw ConnectionError("kilnd at " + impl_->target->address.str() + " closed the connection during the handshake: " + e.what());
    throw;
  } catch (...) {
    close();
    throw;
  }
}

void Client::close() {
  std::shared_ptr<ipc::FramedConnection> conn;
  {
    std::lock_guard lock(impl_->mutex);
    conn = impl_->connection;
  }
  if (conn) conn->close("client closed the connection");
  // Let the close run (it fails pending calls) before the thread stops.
  if (impl_->thread.joinable()) {
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard lock(impl_->mutex);
        if (!impl_->connection) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    impl_->stop_thread();
  }
  impl_->close_write_fd();
  std::lock_guard lock(impl_->mutex);
  impl_->connection.reset();
  impl_->is_connected = false;
}

bool Client::connected() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->is_connected;
}

const Json& Client::server_info() const { return impl_->server_info; }
const std::string& Client::socket_path() const { return impl_->socket_path_string; }
bool Client::is_remote() const { return impl_->remote; }
std::string Client::server_fingerprint() const { return impl_->fingerprint; }

Json Client::call(const std::string& method, const Json& params, std::chrono::milliseconds timeout) {
  return impl_->call_sync(method, params, timeout);
}

void Client::call_async(const std::string& method, const Json& params, Callback done) {
  impl_->send_request(method, params, std::move(done));
}

int Client::add_notification_handler(NotificationHandler handler) {
  std::lock_guard lock(impl_->mutex);
  const int token = impl_->next_token++;
  impl_->handlers.emplace(token, std::move(handler));
  return token;
}

void Client::remove_notification_handler(int token) {
  std::lock_guard lock(impl_->mutex);
  impl_->handlers.erase(token);
}

void Client::set_disconnect_handler(DisconnectHandler handler) {
  std::lock_guard lock(impl_->mutex);
  impl_->on_disconnect = std::move(handler);
}

ipc::ShmImage Client::create_image(const protocol::ImageDesc& desc) { return ipc::ShmImage::create(desc, impl_->pool); }

ipc::ShmImage Client::take_image(const Json& image_ref) {
  if (auto problem = protocol::check_image_ref(image_ref)) throw ipc::ImageError("bad image reference from kilnd: " + *problem);
  const protocol::ImageRef ref = protocol::image_ref_from_json(image_ref);
  if (impl_->remote) {
    // Our copy of a remote daemon's block: hand it over without mapping it again.
    std::lock_guard lock(impl_->mutex);
    for (auto it = impl_->mirrors.begin(); it != impl_->mirrors.end(); ++it) {
      if (it->second.image.name() != ref.shm) continue;
      ipc::ShmImage image = std::move(it->second.image);
      impl_->mirrors.erase(it);
      const auto& d = image.desc();
      if (d.width != ref.desc.width || d.height != ref.desc.height || d.channels != ref.desc.channels || d.dtype != ref.desc.dtype)
        throw ipc::ImageError("image '" + ref.shm + "' is not of the size the reference says");
      image.remove();
      return image;
    }
  }
  ipc::ShmImage image = ipc::ShmImage::open(ref);
  image.remove();
  return image;
}

std::string Client::upload_file(const std::string& local_path, const std::string& folder) {
  const fs::path path = fs::absolute(local_path).lexically_normal();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw std::runtime_error("cannot upload '" + local_path + "': not a file");
  if (!impl_->remote) return path.string();
  namespace bip = boost::interprocess;
  const uint64_t size = fs::file_size(path);
  ipc::Attachment file;
  file.kind = ipc::Attachment::Kind::File;
  file.name = path.filename().string();
  file.bytes = size;
  if (size > 0) {
    try {
      bip::file_mapping mapping(path.c_str(), bip::read_only);
      auto region = std::make_shared<bip::mapped_region>(mapping, bip::read_only);
      file.data = static_cast<const uint8_t*>(region->get_address());
      file.keep = region;
    } catch (const bip::interprocess_exception& e) {
      throw std::runtime_error("cannot read '" + local_path + "': " + e.what());
    }
  }
  RequestExtras extras;
  extras.files.push_back(std::move(file));
  Json params{{"name", path.filename().string()}};
  if (!folder.empty()) params["folder"] = folder;
  const Json answer = impl_->call_sync(protocol::method::kFilesUpload, params, std::chrono::milliseconds(0), std::move(extras));
  return answer.at("path").get<std::string>();
}

void Client::download_file(const std::string& daemon_path, const std::string& local_path) {
  const fs::path to = fs::absolute(local_path);
  if (!impl_->remote) {
    if (!to.parent_path().empty()) fs::create_directories(to.parent_path());
    fs::copy_file(daemon_path, to, fs::copy_options::overwrite_existing);
    return;
  }
  RequestExtras extras;
  extras.download_to = to.string();
  const Json answer =
      impl_->call_sync(protocol::method::kFilesDownload, {{"path", daemon_path}}, std::chrono::milliseconds(0), std::move(extras));
  std::error_code ec;
  const uint64_t expected = answer.value("bytes", uint64_t(0));
  if (!fs::exists(to, ec) || fs::file_size(to, ec) != expected)
    throw std::runtime_error("kilnd answered files.download for " + daemon_path + " without the whole file");
}

}  // namespace kiln
