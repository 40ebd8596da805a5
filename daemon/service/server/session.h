#pragma once
// One client connection: the hello handshake, request dispatch, and the job notifications the
// client subscribed to. A session's failure never affects another.
//
// Remote sessions (TLS) also: check the token in hello (nothing else is served before it),
// refuse what their token may not do, take the images and files a request carries as binary
// frames into blocks and files of this machine, and send the images an answer or a notification
// names after it.
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <boost/asio/steady_timer.hpp>

#include "ipc/attachments.h"
#include "ipc/framed_connection.h"
#include "ipc/shm_image.h"
#include "protocol/errors.h"
#include "protocol/methods.h"
#include "service/server/dispatcher.h"

namespace kiln::service {

// What a remote session's token allows.
struct RemoteGrant {
  std::string token_id, token_name;
  bool read_only = false;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(uint64_t id, std::shared_ptr<ipc::FramedConnection> connection, const Dispatcher& dispatcher,
          Services& services, std::function<void(uint64_t)> on_closed);
  ~Session();

  void start();
  void close(const std::string& reason);
  void close_after_writes(const std::string& reason);
  void notify(const std::string& method, const nlohmann::json& params);  // thread-safe

  uint64_t id() const { return id_; }
  const std::string& client_name() const { return client_; }
  int protocol_version() const { return protocol_; }
  void set_hello(std::string client, int protocol);

  void subscribe(const std::optional<std::string>& job_id);
  void unsubscribe(const std::optional<std::string>& job_id);
  bool wants_job(const std::string& job_id) const;

  bool is_remote() const { return connection_->is_remote(); }
  const std::string& peer() const { return connection_->peer(); }
  const std::optional<RemoteGrant>& grant() const { return grant_; }  // on the session's strand
  bool uses_token(const std::string& token_id) const;                 // thread-safe
  // Remote sessions: the listener's accounting of connections not yet authenticated.
  void set_on_authenticated(std::function<void()> settle) { settle_ = std::move(settle); }

  // A client's image block, through this session's mappings kept between requests: a client
  // reusing its blocks costs no fresh mapping (see ipc::ShmMappings). For remote sessions, the
  // block an attachment of this request arrived in.
  ipc::ShmImage open_client_image(const protocol::ImageRef& ref, ipc::ShmImage::Access access);
  // files.upload: the file that came with the request being handled (moved away by the handler).
  std::optional<std::filesystem::path> uploaded_file() const { return upload_; }
  // files.download: the file to send after the answer.
  void send_file_with_answer(std::filesystem::path path) { download_ = std::move(path); }

 private:
  struct Received;  // the attachments of the request being assembled or handled
  void on_frame(const std::string& payload);
  void on_binary(const std::string& payload);
  void handle_message(const nlohmann::json& message, Received* received);
  bool authenticate(const nlohmann::json& id, const nlohmann::json& params);
  std::optional<protocol::RpcError> check_access(const protocol::MethodSpec& spec, const nlohmann::json& params) const;
  void begin_attachments(nlohmann::json message);
  void fail_attachments(const nlohmann::json& id, const std::string& problem);
  void send_remote(nlohmann::json message, Received* received, bool answer);
  void on_frame_error(const std::string& problem);
  void on_close(const std::string& reason);
  void reply_error(const nlohmann::json& id, protocol::ErrorCode code, const std::string& message,
                   const nlohmann::json& data = nullptr);
  void reply_error_and_close(const nlohmann::json& id, protocol::ErrorCode code, const std::string& message);

  uint64_t id_;
  std::shared_ptr<ipc::FramedConnection> connection_;
  const Dispatcher& dispatcher_;
  Services& services_;
  std::function<void(uint64_t)> on_closed_;
  std::string client_ = "?";
  int protocol_ = 0;  // 0 until hello

  mutable std::mutex subscriptions_mutex_;
  bool all_jobs_ = false;
  std::set<std::string> jobs_;

  ipc::ShmMappings mappings_{8, 2ull << 30};

  // Remote sessions.
  std::optional<RemoteGrant> grant_;
  std::string token_id_;  // guarded by subscriptions_mutex_, for uses_token
  std::function<void()> settle_;
  bool compress_ = false;
  std::unique_ptr<boost::asio::steady_timer> hello_timer_;
  std::shared_ptr<ipc::ShmPool> pool_;  // blocks for arriving images, reused between requests
  std::unique_ptr<Received> incoming_;
  Received* current_ = nullptr;          // the request being handled
  std::optional<std::filesystem::path> upload_, download_;
  std::mutex sent_mutex_;
  std::map<std::string, std::chrono::steady_clock::time_point> sent_;  // blocks already sent to the client
};

}  // namespace kiln::service
