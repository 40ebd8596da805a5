#pragma once
// A real kilnd process for integration tests, in its own temporary socket and data folders,
// plus a raw socket for playing a hostile or broken client.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/client.h"

namespace kiln::test {

class DaemonProcess {
 public:
  // Starts kilnd and waits until it answers. `extra_args` go on its command line.
  explicit DaemonProcess(std::vector<std::string> extra_args = {}, const std::string& name = "d");
  // Reuses the folders of an earlier daemon (to test restarts).
  DaemonProcess(const DaemonProcess& previous_life, std::vector<std::string> extra_args);
  ~DaemonProcess();

  void start();
  int terminate(std::chrono::seconds limit = std::chrono::seconds(30));  // SIGTERM, wait; returns exit status
  void kill9();
  bool running() const;
  pid_t pid() const { return pid_; }

  std::unique_ptr<Client> client(const std::string& name = "test") const;
  const std::filesystem::path& socket() const { return socket_; }
  const std::filesystem::path& data_dir() const { return data_; }
  const std::filesystem::path& root() const { return root_; }
  void keep_folders() { keep_ = true; }

 private:
  std::filesystem::path root_, socket_, data_;
  std::vector<std::string> args_;
  mutable pid_t pid_ = -1;
  bool keep_ = false;
};

// A raw connection that speaks (or abuses) the frame protocol directly.
class RawSocket {
 public:
  explicit RawSocket(const std::filesystem::path& socket);
  ~RawSocket();
  void send_bytes(const std::string& bytes);
  void send_frame(const std::string& payload);
  void send_json(const nlohmann::json& message);
  // The next frame's payload, or nothing if the peer closed or `limit` passed.
  std::optional<std::string> read_frame(std::chrono::milliseconds limit = std::chrono::milliseconds(5000));
  std::optional<nlohmann::json> read_json(std::chrono::milliseconds limit = std::chrono::milliseconds(5000));
  // True when the peer closed the connection (EOF) within `limit`.
  bool closed_by_peer(std::chrono::milliseconds limit = std::chrono::milliseconds(5000));
  nlohmann::json call(const std::string& method, const nlohmann::json& params = nlohmann::json::object());
  void hello();
  void close();

 private:
  bool read_exact(char* out, std::size_t n, std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  int next_id_ = 1;
};

std::string kilnd_path();
std::string kiln_cli_path();
// Names of this user's Kiln blocks whose creator is `pid`.
std::vector<std::string> shm_blocks_of(pid_t pid);

// Runs a command line, returns (exit status, stdout).
std::pair<int, std::string> run_command(const std::vector<std::string>& argv,
                                        const std::vector<std::pair<std::string, std::string>>& env = {});

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::milliseconds(10000)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

}  // namespace kiln::test
