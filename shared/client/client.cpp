#include "client/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "client/daemon_launcher.h"
#include "ipc/framed_connection.h"
#include "ipc/paths.h"
#include "protocol/image_ref.h"
#include "protocol/jsonrpc.h"
#include "protocol/methods.h"
#include "protocol/version.h"

namespace kiln {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using protocol::ErrorCode;

struct Client::Impl : std::enable_shared_from_this<Impl> {
  ClientOptions options;
  fs::path socket_path;
  std::string socket_path_string;

  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;

  std::shared_ptr<ipc::ShmPool> pool = std::make_shared<ipc::ShmPool>();

  // Requests are written straight from the calling thread on a duplicate of the socket's
  // descriptor (the background thread only reads): a request costs no thread hand-off.
  std::mutex write_mutex;
  int write_fd = -1;

  mutable std::mutex mutex;  // guards everything below
  std::shared_ptr<ipc::FramedConnection> connection;
  std::map<int64_t, Callback> pending;
  int64_t next_id = 1;
  std::map<int, NotificationHandler> handlers;
  int next_token = 1;
  DisconnectHandler on_disconnect;
  Json server_info = Json::object();
  bool is_connected = false;

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

  void on_frame(const std::string& payload) {
    auto decoded = protocol::decode_message(payload);
    auto* message = std::get_if<protocol::Message>(&decoded);
    if (!message) return;  // a daemon never sends garbage; nothing useful to do with it
    if (auto* response = std::get_if<protocol::Response>(message)) {
      if (!response->id.is_number_integer()) return;
      Callback done;
      {
        std::lock_guard lock(mutex);
        auto it = pending.find(response->id.get<int64_t>());
        if (it == pending.end()) return;  // a call that timed out
        done = std::move(it->second);
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
    std::map<int64_t, Callback> failed;
    DisconnectHandler notify;
    {
      std::lock_guard lock(mutex);
      failed.swap(pending);
      is_connected = false;
      connection.reset();
      notify = on_disconnect;
    }
    for (auto& [id, done] : failed) done(std::nullopt, RpcError(ErrorCode::ConnectionLost, "connection to kilnd lost: " + reason));
    if (notify) notify(reason);
  }

  // Returns the request id, or 0 when not connected (then `done` has already run).
  int64_t send_request(const std::string& method, const Json& params, Callback done) {
    std::shared_ptr<ipc::FramedConnection> conn;
    int64_t id = 0;
    {
      std::lock_guard lock(mutex);
      conn = connection;
      if (conn) {
        id = next_id++;
        pending.emplace(id, std::move(done));
      }
    }
    if (!conn) {
      done(std::nullopt, RpcError(ErrorCode::ConnectionLost, "not connected to kilnd"));
      return 0;
    }
    if (!write_frame(ipc::encode_frame(protocol::encode(protocol::Request{id, method, params})))) {
      Callback failed;
      {
        std::lock_guard lock(mutex);
        auto it = pending.find(id);
        if (it != pending.end()) {
          failed = std::move(it->second);
          pending.erase(it);
        }
      }
      if (failed) failed(std::nullopt, RpcError(ErrorCode::ConnectionLost, "connection to kilnd lost while sending " + method));
      return 0;
    }
    return id;
  }

  Json call_sync(const std::string& method, const Json& params, std::chrono::milliseconds timeout) {
    if (thread.joinable() && std::this_thread::get_id() == thread.get_id())
      throw std::logic_error("kiln::Client::call must not be used inside a client callback; use call_async");
    auto promise = std::make_shared<std::promise<Json>>();
    std::future<Json> future = promise->get_future();
    const int64_t id = send_request(method, params, [promise](std::optional<Json> result, std::optional<RpcError> error) {
      if (error) promise->set_exception(std::make_exception_ptr(*error));
      else promise->set_value(std::move(*result));
    });
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
  impl_->socket_path = ipc::resolve_socket_path(impl_->options.socket_path);
  impl_->socket_path_string = impl_->socket_path.string();
}

Client::~Client() { close(); }

void Client::connect() {
  close();
  impl_->start_thread();
  ipc::LocalSocket socket = impl_->open_socket();
  {
    std::lock_guard lock(impl_->write_mutex);
    impl_->write_fd = ::fcntl(socket.native_handle(), F_DUPFD_CLOEXEC, 0);
    if (impl_->write_fd < 0) throw ConnectionError(std::string("cannot duplicate the socket: ") + std::strerror(errno));
  }
  auto conn = std::make_shared<ipc::FramedConnection>(std::move(socket));
  std::weak_ptr<Impl> weak = impl_;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->connection = conn;
    impl_->is_connected = true;
  }
  conn->start({[weak](std::string payload) {
                 if (auto self = weak.lock()) self->on_frame(payload);
               },
               nullptr,
               [weak](const std::string& reason) {
                 if (auto self = weak.lock()) self->on_close(reason);
               }});
  Json hello{{"client", impl_->options.client_name},
             {"protocol", protocol::kProtocolVersion},
             {"min_protocol", protocol::kMinProtocolVersion}};
  try {
    Json info = impl_->call_sync(protocol::method::kHello, hello, std::chrono::milliseconds(10000));
    std::lock_guard lock(impl_->mutex);
    impl_->server_info = std::move(info);
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
  ipc::ShmImage image = ipc::ShmImage::open(protocol::image_ref_from_json(image_ref));
  image.remove();
  return image;
}

}  // namespace kiln
