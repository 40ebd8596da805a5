#include "daemon_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>

#include "ipc/frame.h"
#include "ipc/shm_sweep.h"

namespace kiln::test {
namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string kilnd_path() { return KILN_TEST_KILND; }
std::string kiln_cli_path() { return KILN_TEST_KILN_CLI; }

namespace {
fs::path make_root(const std::string& name) {
  std::random_device rd;
  // Short: socket paths are limited to ~107 bytes.
  fs::path root = fs::temp_directory_path() / ("kt-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 100000));
  fs::remove_all(root);
  fs::create_directories(root);
  return root;
}
}  // namespace

DaemonProcess::DaemonProcess(std::vector<std::string> extra_args, const std::string& name)
    : root_(make_root(name)), socket_(root_ / "run" / "kilnd.sock"), data_(root_ / "data"), args_(std::move(extra_args)) {
  start();
}

DaemonProcess::DaemonProcess(const DaemonProcess& previous, std::vector<std::string> extra_args)
    : root_(previous.root_), socket_(previous.socket_), data_(previous.data_), args_(std::move(extra_args)) {
  start();
}

DaemonProcess::~DaemonProcess() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (!keep_) fs::remove_all(root_);
}

void DaemonProcess::start() {
  std::vector<std::string> argv{kilnd_path(), "--socket", socket_.string(), "--data-dir", data_.string(), "--quiet"};
  argv.insert(argv.end(), args_.begin(), args_.end());
  std::vector<char*> raw;
  for (auto& a : argv) raw.push_back(a.data());
  raw.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::execv(raw[0], raw.data());
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("kilnd exited during start-up with status " + std::to_string(WEXITSTATUS(status)));
    }
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (ok) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("kilnd did not start within 20 s");
}

bool DaemonProcess::running() const {
  if (pid_ <= 0) return false;
  // Reap it if it exited: a zombie still answers kill(pid, 0).
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == 0) return true;
  pid_ = -1;
  return false;
}

int DaemonProcess::terminate(std::chrono::seconds limit) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  throw std::runtime_error("kilnd did not stop within the limit after SIGTERM");
}

void DaemonProcess::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::unique_ptr<Client> DaemonProcess::client(const std::string& name) const {
  ClientOptions options;
  options.socket_path = socket_.string();
  options.client_name = name;
  options.autostart = false;
  auto c = std::make_unique<Client>(options);
  c->connect();
  return c;
}

RawSocket::RawSocket(const fs::path& socket) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("cannot connect to " + socket.string());
}

RawSocket::~RawSocket() { close(); }

void RawSocket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void RawSocket::send_bytes(const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error("send failed");
    done += static_cast<std::size_t>(n);
  }
}

void RawSocket::send_frame(const std::string& payload) { send_bytes(ipc::encode_frame(payload)); }
void RawSocket::send_json(const Json& message) { send_frame(message.dump()); }

bool RawSocket::read_exact(char* out, std::size_t n, std::chrono::steady_clock::time_point deadline) {
  std::size_t done = 0;
  while (done < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    const ssize_t got = ::recv(fd_, out + done, n - done, 0);
    if (got <= 0) return false;
    done += static_cast<std::size_t>(got);
  }
  return true;
}

std::optional<std::string> RawSocket::read_frame(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  unsigned char header[4];
  if (!read_exact(reinterpret_cast<char*>(header), 4, deadline)) return std::nullopt;
  const uint32_t n = header[0] | header[1] << 8 | header[2] << 16 | uint32_t(header[3]) << 24;
  std::string payload(n, '\0');
  if (!read_exact(payload.data(), n, deadline)) return std::nullopt;
  return payload;
}

std::optional<Json> RawSocket::read_json(std::chrono::milliseconds limit) {
  auto frame = read_frame(limit);
  if (!frame) return std::nullopt;
  return Json::parse(*frame);
}

bool RawSocket::closed_by_peer(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
    if (got == 0) return true;
    if (got < 0 && errno != EAGAIN && errno != EINTR) return true;  // reset counts as closed
  }
  return false;
}

Json RawSocket::call(const std::string& method, const Json& params) {
  send_json({{"jsonrpc", "2.0"}, {"id", next_id_++}, {"method", method}, {"params", params}});
  auto reply = read_json();
  if (!reply) throw std::runtime_error("no reply to " + method);
  return *reply;
}

void RawSocket::hello() {
  Json r = call("hello", {{"client", "raw-test"}, {"protocol", 1}});
  if (!r.contains("result")) throw std::runtime_error("hello failed: " + r.dump());
}

std::vector<std::string> shm_blocks_of(pid_t pid) {
  std::vector<std::string> out;
  for (const auto& b : ipc::list_shm_blocks())
    if (b.creator_pid == pid) out.push_back(b.name);
  return out;
}

std::pair<int, std::string> run_command(const std::vector<std::string>& argv,
                                        const std::vector<std::pair<std::string, std::string>>& env) {
  int out[2];
  if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, STDERR_FILENO);
    ::close(out[0]);
    for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> raw;
    std::vector<std::string> copy = argv;
    for (auto& a : copy) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execv(raw[0], raw.data());
    ::_exit(127);
  }
  ::close(out[1]);
  std::string output;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) output.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

}  // namespace kiln::test
