#pragma once
// One client connection: the hello handshake, request dispatch, and the job notifications the
// client subscribed to. A session's failure never affects another.
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "ipc/framed_connection.h"
#include "protocol/errors.h"
#include "service/server/dispatcher.h"

namespace kiln::service {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(uint64_t id, std::shared_ptr<ipc::FramedConnection> connection, const Dispatcher& dispatcher,
          Services& services, std::function<void(uint64_t)> on_closed);

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

 private:
  void on_frame(const std::string& payload);
  void handle_frame(const std::string& payload);
  void on_frame_error(const std::string& problem);
  void on_close(const std::string& reason);
  void reply_error(const nlohmann::json& id, protocol::ErrorCode code, const std::string& message,
                   const nlohmann::json& data = nullptr);

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
};

}  // namespace kiln::service
