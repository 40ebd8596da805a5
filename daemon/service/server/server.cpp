#include "service/server/server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "ipc/framed_connection.h"
#include "ipc/paths.h"
#include "protocol/methods.h"
#include "service/server/session.h"

namespace kiln::service {
namespace fs = std::filesystem;
namespace asio = boost::asio;
using Json = nlohmann::json;

void ensure_private_directory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create directory " + dir.string() + ": " + ec.message());
  struct stat st{};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error(dir.string() + " is not a directory");
  if (st.st_uid != ::getuid())
    throw std::runtime_error(dir.string() + " belongs to another user; Kiln will not put its socket or data there");
  if ((st.st_mode & 0777) != 0700 && ::chmod(dir.c_str(), 0700) != 0)
    throw std::runtime_error("cannot make " + dir.string() + " private (chmod 700)");
}

Server::Server(asio::io_context& io, fs::path socket_path, const Dispatcher& dispatcher, Services& services,
               ipc::ConnectionLimits limits)
    : io_(io), socket_path_(std::move(socket_path)), dispatcher_(dispatcher), services_(services), limits_(limits), acceptor_(io) {}

Server::~Server() { stop(); }

void Server::use_activated_socket(int fd) { activated_fd_ = fd; }

void Server::start() {
  if (activated_fd_ >= 0) {
    acceptor_.assign(asio::local::stream_protocol(), activated_fd_);
    accept_next();
    return;
  }
  if (std::string problem = ipc::check_socket_path(socket_path_); !problem.empty()) throw std::runtime_error(problem);
  ensure_private_directory(socket_path_.parent_path());
  // The caller holds the instance lock, so a socket file left here is stale.
  std::error_code ec;
  fs::remove(socket_path_, ec);
  asio::local::stream_protocol::endpoint endpoint(socket_path_.string());
  acceptor_.open(endpoint.protocol());
  // umask makes the socket 0600 from the moment it exists; chmod is belt and braces.
  const mode_t old_mask = ::umask(0177);
  boost::system::error_code bind_ec;
  acceptor_.bind(endpoint, bind_ec);
  ::umask(old_mask);
  if (bind_ec) throw std::runtime_error("cannot listen on " + socket_path_.string() + ": " + bind_ec.message());
  ::chmod(socket_path_.c_str(), 0600);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  accept_next();
}

void Server::accept_next() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, ipc::LocalSocket socket) {
    if (stopped_) return;
    if (!ec) {
      adopt(std::make_shared<ipc::FramedConnection>(std::move(socket), limits_));
    } else if (ec != asio::error::operation_aborted) {
      spdlog::warn("accept failed: {}", ec.message());
    }
    accept_next();
  });
}

void Server::adopt(std::shared_ptr<ipc::FramedConnection> connection, std::function<void()> settle) {
  const uint64_t id = next_session_id_++;
  auto session = std::make_shared<Session>(id, std::move(connection), dispatcher_, services_, [this](uint64_t closed) {
    std::lock_guard lock(mutex_);
    sessions_.erase(closed);
  });
  if (settle) session->set_on_authenticated(std::move(settle));
  {
    std::lock_guard lock(mutex_);
    sessions_[id] = session;
  }
  session->start();
}

std::size_t Server::close_sessions_of_token(const std::string& token_id) {
  std::vector<std::shared_ptr<Session>> targets;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, weak] : sessions_)
      if (auto s = weak.lock(); s && s->uses_token(token_id)) targets.push_back(std::move(s));
  }
  for (auto& s : targets) s->close("its token was revoked");
  return targets.size();
}

std::size_t Server::remote_session_count() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (auto& [id, weak] : sessions_)
    if (auto s = weak.lock(); s && s->is_remote()) ++n;
  return n;
}

void Server::stop_accepting() {
  if (stopped_.exchange(true)) return;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  if (activated_fd_ >= 0) return;  // systemd's socket file: it stays for the next activation
  std::error_code ec;
  fs::remove(socket_path_, ec);
}

void Server::stop() {
  stop_accepting();
  std::map<uint64_t, std::weak_ptr<Session>> sessions;
  {
    std::lock_guard lock(mutex_);
    sessions = sessions_;
  }
  for (auto& [id, weak] : sessions)
    if (auto s = weak.lock()) s->close_after_writes("the daemon is shutting down");
}

void Server::publish_job(const JobRecord& record, bool state_changed, const std::optional<protocol::ImageRef>& preview) {
  Json params{{"job", to_json(record)}};
  if (preview) params["preview"] = protocol::to_json(*preview);
  const char* method = state_changed ? protocol::notification::kJobState : protocol::notification::kJobProgress;
  std::vector<std::shared_ptr<Session>> targets;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, weak] : sessions_)
      if (auto s = weak.lock(); s && s->wants_job(record.id)) targets.push_back(std::move(s));
  }
  for (auto& s : targets) s->notify(method, params);
}

std::size_t Server::session_count() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

}  // namespace kiln::service
