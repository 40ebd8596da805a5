#include "service/server/session.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/interprocess/file_mapping.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <spdlog/spdlog.h>

#include "protocol/jsonrpc.h"
#include "protocol/methods.h"
#include "service/errors.h"
#include "service/images/image_leases.h"
#include "service/remote/remote_access.h"

namespace kiln::service {

using protocol::ErrorCode;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {
constexpr auto kResendAfter = std::chrono::seconds(60);  // a remote client keeps its copies longer (client.cpp)

std::string seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", ms.count() / 1000.0);
  return buf;
}

bool looks_like_path(const Json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    return s.find('/') != std::string::npos || s.find('\\') != std::string::npos || (!s.empty() && s.front() == '~');
  }
  if (v.is_array())
    for (const Json& e : v)
      if (looks_like_path(e)) return true;
  return false;
}
}  // namespace

// The attachments of one remote request.
struct Session::Received {
  Json message;  // the request, without its manifest
  std::unique_ptr<ipc::AttachmentReceiver> receiver;
  struct Image {
    std::string client_name;  // the name the client's JSON uses
    ipc::ShmImage block;      // where its pixels are here
    bool blank = false;       // a result block: sent back after the answer
  };
  std::vector<Image> images;
  std::optional<fs::path> file;
  int file_fd = -1;

  void close_file() {
    if (file_fd >= 0) {
      ::fsync(file_fd);
      ::close(file_fd);
    }
    file_fd = -1;
  }
  ~Received() {
    close_file();
    if (file) {
      std::error_code ec;
      fs::remove(*file, ec);  // a handler that keeps it moved it away
    }
  }
};

Session::Session(uint64_t id, std::shared_ptr<ipc::FramedConnection> connection, const Dispatcher& dispatcher,
                 Services& services, std::function<void(uint64_t)> on_closed)
    : id_(id), connection_(std::move(connection)), dispatcher_(dispatcher), services_(services), on_closed_(std::move(on_closed)) {
  if (connection_->is_remote()) pool_ = std::make_shared<ipc::ShmPool>(4, 1ull << 30);
}

Session::~Session() = default;

void Session::start() {
  auto self = shared_from_this();
  if (is_remote()) {
    // A remote connection must sign in promptly: a handshake timeout covers TLS, this one hello.
    const auto limit = services_.remote ? services_.remote->settings().handshake_timeout : std::chrono::milliseconds(10000);
    hello_timer_ = std::make_unique<boost::asio::steady_timer>(connection_->strand(), limit);
    hello_timer_->async_wait([self, limit](const boost::system::error_code& ec) {
      if (ec || self->grant_) return;
      spdlog::warn("remote: closed {}: no hello with a token within {} s", self->peer(), seconds(limit));
      self->connection_->close("no hello with a token in time");
    });
  }
  connection_->start({[self](std::string payload) { self->on_frame(payload); },
                      [self](std::string payload) { self->on_binary(payload); },
                      [self](const std::string& problem) { self->on_frame_error(problem); },
                      [self](const std::string& reason) { self->on_close(reason); }});
}

void Session::close(const std::string& reason) { connection_->close(reason); }
void Session::close_after_writes(const std::string& reason) { connection_->close_after_writes(reason); }

void Session::notify(const std::string& method, const Json& params) {
  if (is_remote()) {
    if (!grant_) return;
    try {
      send_remote(Json{{"jsonrpc", "2.0"}, {"method", method}, {"params", params}}, nullptr, false);
    } catch (const std::exception& e) {
      spdlog::warn("session {} ({}): cannot send a {} notification: {}", id_, client_, method, e.what());
    }
    return;
  }
  connection_->send(protocol::encode(protocol::Notification{method, params}));
}

void Session::set_hello(std::string client, int protocol) {
  client_ = std::move(client);
  protocol_ = protocol;
}

void Session::subscribe(const std::optional<std::string>& job_id) {
  std::lock_guard lock(subscriptions_mutex_);
  if (job_id) jobs_.insert(*job_id);
  else all_jobs_ = true;
}

void Session::unsubscribe(const std::optional<std::string>& job_id) {
  std::lock_guard lock(subscriptions_mutex_);
  if (job_id) {
    jobs_.erase(*job_id);
  } else {
    all_jobs_ = false;
    jobs_.clear();
  }
}

bool Session::wants_job(const std::string& job_id) const {
  std::lock_guard lock(subscriptions_mutex_);
  return all_jobs_ || jobs_.count(job_id) > 0;
}

bool Session::uses_token(const std::string& token_id) const {
  std::lock_guard lock(subscriptions_mutex_);
  return !token_id_.empty() && token_id_ == token_id;
}

ipc::ShmImage Session::open_client_image(const protocol::ImageRef& ref, ipc::ShmImage::Access access) {
  if (current_)
    for (auto& image : current_->images)
      if (image.block.name() == ref.shm) {
        const auto& d = image.block.desc();
        if (d.width != ref.desc.width || d.height != ref.desc.height || d.channels != ref.desc.channels ||
            d.dtype != ref.desc.dtype || d.stride != ref.desc.stride)
          throw ipc::ImageError("image '" + ref.shm + "' is not of the size its reference says");
        return image.block.share(access);
      }
  return mappings_.open(ref, access);
}

void Session::reply_error(const Json& id, ErrorCode code, const std::string& message, const Json& data) {
  connection_->send(protocol::encode(protocol::make_error(id, code, message, data)));
}

void Session::reply_error_and_close(const Json& id, ErrorCode code, const std::string& message) {
  connection_->send_then_close(protocol::encode(protocol::make_error(id, code, message)));
}

void Session::on_frame(const std::string& payload) {
  // Defence in depth: nothing a client sends may throw out of here into the I/O thread.
  try {
    if (incoming_) {
      const Json id = incoming_->message.value("id", Json());
      fail_attachments(id, "a message arrived before the binary frames the previous one announced");
      return;
    }
    protocol::DecodeError error;
    std::optional<Json> message = protocol::parse_payload(payload, error);
    if (!message) {
      spdlog::debug("session {} ({}): bad message: {}", id_, client_, error.error.message);
      reply_error(error.id, error.error.code, error.error.message);
      return;
    }
    if (is_remote() && message->is_object() && message->contains(ipc::kAttachmentsKey)) {
      begin_attachments(std::move(*message));
      return;
    }
    handle_message(*message, nullptr);
  } catch (const std::exception& e) {
    spdlog::error("session {} ({}): unexpected error handling a frame: {}; closing it", id_, client_, e.what());
    connection_->close("internal error");
  }
}

void Session::on_binary(const std::string& payload) {
  try {
    if (!incoming_) {
      reply_error_and_close(nullptr, ErrorCode::AttachmentError, "a binary frame that no message announced; the connection is closed");
      return;
    }
    incoming_->receiver->feed(payload);
    if (!incoming_->receiver->complete()) return;
    std::unique_ptr<Received> received = std::move(incoming_);
    connection_->set_expecting_more(false);
    received->close_file();
    handle_message(received->message, received.get());
  } catch (const ipc::AttachmentError& e) {
    fail_attachments(incoming_ ? incoming_->message.value("id", Json()) : Json(), e.what());
  } catch (const std::exception& e) {
    spdlog::error("session {} ({}): unexpected error taking an attachment: {}; closing it", id_, client_, e.what());
    connection_->close("internal error");
  }
}

void Session::fail_attachments(const Json& id, const std::string& problem) {
  spdlog::warn("remote: {} ({}): {}; closing the connection", peer(), client_, problem);
  incoming_.reset();
  connection_->set_expecting_more(false);
  const Json reply_id = id.is_string() || id.is_number_integer() ? id : Json();
  reply_error_and_close(reply_id, ErrorCode::AttachmentError, problem + "; the connection is closed");
}

void Session::begin_attachments(Json message) {
  const Json id = message.value("id", Json());
  if (!grant_) {
    reply_error_and_close(id.is_string() || id.is_number_integer() ? id : Json(), ErrorCode::Unauthorized,
                          "send hello with your token before anything else; the connection is closed");
    return;
  }
  const Json manifest = std::move(message[ipc::kAttachmentsKey]);
  message.erase(ipc::kAttachmentsKey);
  auto received = std::make_unique<Received>();
  received->message = std::move(message);
  std::vector<ipc::AttachmentReceiver::Sink> sinks;
  try {
    ipc::AttachmentLimits limits;
    limits.max_total_bytes = services_.remote ? services_.remote->settings().max_upload_bytes : 0;
    std::vector<ipc::ManifestEntry> entries = ipc::parse_manifest(manifest, limits);
    for (const ipc::ManifestEntry& e : entries) {
      ipc::AttachmentReceiver::Sink sink;
      if (e.kind == ipc::Attachment::Kind::Image) {
        ipc::ShmImage block = ipc::ShmImage::create(e.desc, pool_);
        if (!e.blank) sink.data = block.data();
        received->images.push_back({e.name, std::move(block), e.blank});
      } else {
        if (received->file) throw ipc::AttachmentError("a request carries at most one file");
        received->file = services_.remote->incoming_file_path();
        received->file_fd = ::open(received->file->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (received->file_fd < 0) throw std::runtime_error("cannot store an upload: " + std::string(std::strerror(errno)));
        Received* r = received.get();
        sink.write = [r](const uint8_t* data, std::size_t size) {
          std::size_t done = 0;
          while (done < size) {
            const ssize_t n = ::write(r->file_fd, data + done, size - done);
            if (n <= 0) throw ipc::AttachmentError("the daemon cannot store the upload: " + std::string(std::strerror(errno)));
            done += static_cast<std::size_t>(n);
          }
        };
      }
      sinks.push_back(std::move(sink));
    }
    received->receiver = std::make_unique<ipc::AttachmentReceiver>(std::move(entries), std::move(sinks));
  } catch (const ipc::AttachmentError& e) {
    fail_attachments(id, e.what());
    return;
  } catch (const ipc::ImageError& e) {
    fail_attachments(id, std::string("an image attachment: ") + e.what());
    return;
  }
  if (received->receiver->complete()) {
    received->close_file();
    handle_message(received->message, received.get());
    return;
  }
  incoming_ = std::move(received);
  connection_->set_expecting_more(true);
}

bool Session::authenticate(const Json& id, const Json& params) {
  RemoteAccess* remote = services_.remote;
  if (!remote) {
    reply_error_and_close(id, ErrorCode::Unauthorized, "this daemon takes no remote clients");
    return false;
  }
  const std::string address = address_of_peer(peer());
  if (auto wait = remote->throttle().wait_left(address)) {
    spdlog::warn("remote: refused {} without looking at its token: too many failed attempts from {} (the next is allowed in {} s)",
                 peer(), address, seconds(*wait));
    reply_error_and_close(id, ErrorCode::Unauthorized,
                          "too many failed attempts from " + address + "; wait " + seconds(*wait) + " s before trying again");
    return false;
  }
  const std::string token = params.value("token", "");
  std::optional<TokenInfo> info;
  if (!token.empty()) info = remote->tokens().verify(token);
  if (!info) {
    const auto failure = remote->throttle().failed(address);
    spdlog::warn("remote: refused {}: {} (failed attempt {} from {}; it now waits {} s)", peer(),
                 token.empty() ? "no token" : "wrong or revoked token", failure.count, address, seconds(failure.delay));
    reply_error_and_close(
        id, ErrorCode::Unauthorized,
        token.empty() ? "this daemon needs a token: the hello of a remote client must carry one. Save it with `kiln remote add "
                        "NAME HOST:PORT --token T` (tokens are made on the daemon's machine with `kiln remote token create`)"
                      : "this token is not valid here: it is wrong, or it was revoked. Ask the daemon's owner for a new one "
                        "(`kiln remote token create` on the daemon's machine)");
    return false;
  }
  grant_ = RemoteGrant{info->id, info->name, info->read_only};
  {
    std::lock_guard lock(subscriptions_mutex_);
    token_id_ = info->id;
  }
  compress_ = params.value("compression", "none") == "zstd";
  if (hello_timer_) hello_timer_->cancel();
  spdlog::info("remote: {} signed in with token '{}' ({})", peer(), info->name, info->read_only ? "read-only" : "full access");
  if (settle_) {
    settle_();
    settle_ = nullptr;
  }
  return true;
}

std::optional<protocol::RpcError> Session::check_access(const protocol::MethodSpec& spec, const Json& params) const {
  using protocol::Access;
  const std::string method = spec.name;
  auto forbidden = [](std::string message) { return protocol::RpcError{ErrorCode::Forbidden, std::move(message), nullptr}; };
  if (!is_remote()) {
    if (spec.access == Access::Remote)
      return protocol::RpcError{ErrorCode::InvalidRequest,
                                method + " is for remote clients; over the local socket, pass the file's path instead", nullptr};
    return std::nullopt;
  }
  if (spec.access == Access::Local)
    return forbidden(method + " can only be used on the daemon's own machine (over its local socket), not by remote clients");
  if (spec.access == Access::Write && grant_->read_only)
    return forbidden("token '" + grant_->token_name + "' is read-only: it can generate and read, but not call " + method +
                     " (training, adding, changing, deleting and shutting down need a full token; the daemon's owner makes "
                     "one with `kiln remote token create`)");
  for (const protocol::ParamSpec& p : spec.params) {
    auto it = params.find(p.name);
    if (it == params.end()) continue;
    if (p.flags & protocol::kDaemonOutPath)
      return forbidden(method + ": '" + p.name + "' names a file to write on the daemon's machine, which remote clients cannot "
                       "do; leave it out and download the result (kiln loras export, files.download)");
    if ((p.flags & protocol::kDaemonPath) && grant_->read_only && looks_like_path(*it))
      return forbidden(method + ": '" + p.name + "' names a file on the daemon's machine; token '" + grant_->token_name +
                       "' is read-only and may use names only (a registered model, a LoRA of the library)");
  }
  return std::nullopt;
}

void Session::handle_message(const Json& message, Received* received) {
  auto decoded = protocol::decode_json_message(message);
  if (auto* bad = std::get_if<protocol::DecodeError>(&decoded)) {
    spdlog::debug("session {} ({}): bad message: {}", id_, client_, bad->error.message);
    reply_error(bad->id, bad->error.code, bad->error.message);
    return;
  }
  auto& decoded_message = std::get<protocol::Message>(decoded);
  auto* request = std::get_if<protocol::Request>(&decoded_message);
  if (!request) return;  // clients send no notifications or responses we act on

  const protocol::MethodSpec* spec = protocol::find_method(request->method);
  const Handler* handler = spec ? dispatcher_.find(request->method) : nullptr;
  if (!spec || !handler) {
    reply_error(request->id, ErrorCode::MethodNotFound, "unknown method '" + request->method.substr(0, 100) + "'");
    return;
  }
  if (protocol_ == 0 && !spec->before_hello) {
    if (is_remote() && !grant_)
      reply_error_and_close(request->id, ErrorCode::HelloRequired,
                            "call 'hello' with your token first; nothing else is served before it. The connection is closed");
    else
      reply_error(request->id, ErrorCode::HelloRequired, "call 'hello' first, to agree the protocol version");
    return;
  }
  if (auto problem = protocol::validate_params(*spec, request->params)) {
    if (is_remote() && !grant_) reply_error_and_close(request->id, problem->code, problem->message);
    else reply_error(request->id, problem->code, problem->message);
    return;
  }
  if (is_remote() && !grant_ && !authenticate(request->id, request->params)) return;
  if (auto denied = check_access(*spec, request->params)) {
    spdlog::info("session {} ({}): refused {}: {}", id_, client_, request->method, denied->message);
    reply_error(request->id, denied->code, denied->message);
    return;
  }
  Json params = request->params;
  if (is_remote()) {
    // Images of a remote client are the blocks its attachments arrived in; a name of this
    // machine's blocks from a remote client is never opened.
    std::string missing;
    ipc::for_each_image_ref(params, [&](Json& ref) {
      const std::string name = ref["shm"].get<std::string>();
      if (received)
        for (const auto& image : received->images)
          if (image.client_name == name) {
            ref["shm"] = image.block.name();
            return;
          }
      if (missing.empty()) missing = name;
    });
    if (!missing.empty()) {
      reply_error(request->id, ErrorCode::InvalidParams,
                  request->method + ": image '" + missing.substr(0, 100) +
                      "' did not come with the request; a remote client's images travel with it as attachments "
                      "(kiln::Client sends them)");
      return;
    }
  }
  upload_ = received && received->file ? received->file : std::nullopt;
  download_.reset();
  current_ = received;
  try {
    Call call{params, *this, services_};
    Json result = (*handler)(call);
    current_ = nullptr;
    upload_.reset();
    if (is_remote())
      send_remote(Json{{"jsonrpc", "2.0"}, {"id", request->id}, {"result", std::move(result)}}, received, true);
    else
      connection_->send(protocol::encode(protocol::make_result(request->id, std::move(result))));
  } catch (...) {
    current_ = nullptr;
    upload_.reset();
    download_.reset();
    MappedError e = map_current_exception();
    if (e.code == ErrorCode::InternalError) spdlog::error("{} from {} failed: {}", request->method, client_, e.message);
    reply_error(request->id, e.code, e.message, e.data);
  }
}

// A message to a remote client, with the pixels of the images it names (the ones the daemon
// handed out, or the client's own result blocks) and the file of a download following it.
void Session::send_remote(Json message, Received* received, bool answer) {
  std::vector<ipc::Attachment> attachments;
  std::set<std::string> attached;
  std::vector<std::pair<std::size_t, std::size_t>> returned;  // (attachment, received image): result blocks sent back
  const auto now = std::chrono::steady_clock::now();
  auto attach_image = [&](const std::string& wire_name, const ipc::ShmImage& block) {
    ipc::Attachment a;
    a.kind = ipc::Attachment::Kind::Image;
    a.name = wire_name;
    a.desc = block.desc();
    a.bytes = block.data_size();
    auto keep = std::make_shared<ipc::ShmImage>(block.share());
    a.data = static_cast<const ipc::ShmImage&>(*keep).data();
    a.keep = keep;
    attachments.push_back(std::move(a));
  };
  ipc::for_each_image_ref(message, [&](Json& ref) {
    const std::string name = ref["shm"].get<std::string>();
    if (received)
      for (std::size_t i = 0; i < received->images.size(); ++i) {
        const auto& image = received->images[i];
        if (image.block.name() != name) continue;
        ref["shm"] = image.client_name;
        if (image.blank && attached.insert(image.client_name).second) {
          attach_image(image.client_name, image.block);
          returned.emplace_back(attachments.size() - 1, i);
        }
        return;
      }
    if (attached.count(name) || !services_.leases.contains(name)) return;
    {
      std::lock_guard lock(sent_mutex_);
      for (auto it = sent_.begin(); it != sent_.end();) it = now - it->second > kResendAfter ? sent_.erase(it) : std::next(it);
      if (sent_.count(name)) return;  // the client has its copy
    }
    try {
      const ipc::ShmImage block = ipc::ShmImage::open(name);
      attach_image(name, block);
      attached.insert(name);
    } catch (const ipc::ImageError&) {
      return;  // gone already: the client's open fails the way a local one would
    }
    {
      std::lock_guard lock(sent_mutex_);
      sent_[name] = now;
    }
    services_.leases.release_to_remote(id_, name);
  });
  // A result block goes back to this session's pool only once its pixels are written out: the
  // frames keep the owning block, not just a view, so the next request cannot reuse it early.
  for (const auto& [a, i] : returned) attachments[a].keep = std::make_shared<ipc::ShmImage>(std::move(received->images[i].block));
  if (answer && download_) {
    namespace bip = boost::interprocess;
    ipc::Attachment file;
    file.kind = ipc::Attachment::Kind::File;
    file.name = download_->filename().string();
    file.bytes = fs::file_size(*download_);
    if (file.bytes > 0) {
      bip::file_mapping mapping(download_->c_str(), bip::read_only);
      auto region = std::make_shared<bip::mapped_region>(mapping, bip::read_only);
      file.data = static_cast<const uint8_t*>(region->get_address());
      file.keep = region;
    }
    attachments.push_back(std::move(file));
    download_.reset();
  }
  ipc::OutgoingMessage out;
  if (!attachments.empty()) {
    ipc::EncodedAttachments encoded = ipc::encode_attachments(attachments, compress_ ? ipc::Compression::Zstd : ipc::Compression::None);
    message[ipc::kAttachmentsKey] = std::move(encoded.manifest);
    out.binary = std::move(encoded.frames);
  }
  out.json = message.dump(-1, ' ', false, Json::error_handler_t::replace);
  connection_->send_message(std::move(out));
}

void Session::on_frame_error(const std::string& problem) {
  spdlog::warn("session {} ({}, {}): {}; closing it", id_, client_, peer(), problem);
  connection_->send_then_close(protocol::encode(
      protocol::make_error(nullptr, ErrorCode::FrameTooLarge, problem + "; the connection is closed")));
}

void Session::on_close(const std::string& reason) {
  spdlog::debug("session {} ({}) closed: {}", id_, client_, reason);
  if (hello_timer_) hello_timer_->cancel();
  if (settle_) {
    settle_();
    settle_ = nullptr;
  }
  incoming_.reset();
  services_.leases.session_closed(id_);
  if (on_closed_) on_closed_(id_);
}

}  // namespace kiln::service
