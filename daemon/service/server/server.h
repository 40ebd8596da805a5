#pragma once
// Listens on the daemon's Unix socket (directory 0700, socket 0600), creates a Session per
// connection and delivers job notifications to the sessions that subscribed.
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "ipc/framed_connection.h"
#include "protocol/image_ref.h"
#include "service/jobs/job_record.h"
#include "service/server/dispatcher.h"

namespace kiln::service {

class Session;

class Server {
 public:
  Server(boost::asio::io_context& io, std::filesystem::path socket_path, const Dispatcher& dispatcher, Services& services,
         ipc::ConnectionLimits limits = {});
  ~Server();

  // Creates the socket directory (0700) and the socket (0600) and starts accepting.
  // Throws std::runtime_error with a plain-language message.
  void start();
  // Accept on a socket systemd made and passed (kilnd.socket) instead of creating one in start();
  // systemd owns that socket file, so stopping leaves it in place. Call before start().
  void use_activated_socket(int fd);
  void stop_accepting();  // closes the listener and removes the socket file
  void stop();            // also closes every session, after what is queued for it went out

  void publish_job(const JobRecord& record, bool state_changed, const std::optional<protocol::ImageRef>& preview);
  std::size_t session_count() const;
  std::size_t remote_session_count() const;

  // Serves a connection accepted elsewhere (the TLS listener). `settle` runs once the session
  // has signed in or closed.
  void adopt(std::shared_ptr<ipc::FramedConnection> connection, std::function<void()> settle = nullptr);
  // Closes the sessions that signed in with this token (it was revoked); returns how many.
  std::size_t close_sessions_of_token(const std::string& token_id);

 private:
  void accept_next();

  boost::asio::io_context& io_;
  std::filesystem::path socket_path_;
  const Dispatcher& dispatcher_;
  Services& services_;
  ipc::ConnectionLimits limits_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  int activated_fd_ = -1;  // a socket passed by systemd, or -1
  mutable std::mutex mutex_;
  std::map<uint64_t, std::weak_ptr<Session>> sessions_;
  std::atomic<uint64_t> next_session_id_{1};
  std::atomic<bool> stopped_{false};
};

// Makes `dir` (and parents) and ensures it is ours and 0700. Throws std::runtime_error.
void ensure_private_directory(const std::filesystem::path& dir);

}  // namespace kiln::service
