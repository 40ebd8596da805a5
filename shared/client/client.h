#pragma once
// kiln::Client — the one C++ API every front end uses (the CLI, the Python binding behind the
// Krita and Blender plugins, the Photoshop bridge). It connects to kilnd (starting it when none
// runs), performs the hello handshake, and offers synchronous and asynchronous calls,
// notification callbacks and shared-memory images.
//
// The daemon may be local (a Unix socket) or remote (kiln+tls://host:port, chosen by
// ClientOptions::remote, else $KILN_REMOTE; see client/remotes.h). The API is the same: over TLS
// the images named in a request travel after it as binary frames, and those a reply or a
// notification names arrive the same way into local blocks of this process, so create_image,
// take_image and ShmImage::open work as they do locally. upload_file / download_file move files
// (they copy, or pass the path, when the daemon is local).
//
// Threads: one background thread owns the socket. Async callbacks and notification handlers run
// on it: keep them short and hand work to your UI thread (the plugins do). Sync calls may be made
// from any thread, but not from inside a callback.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "ipc/shm_image.h"
#include "protocol/errors.h"

namespace kiln {

using Json = nlohmann::json;

// An error answer from the daemon (or ConnectionLost / Timeout raised by the client).
class RpcError : public std::runtime_error {
 public:
  RpcError(protocol::ErrorCode code, const std::string& message, Json data = nullptr)
      : std::runtime_error(message), code_(code), data_(std::move(data)) {}
  protocol::ErrorCode code() const { return code_; }
  const Json& data() const { return data_; }

 private:
  protocol::ErrorCode code_;
  Json data_;
};

// The daemon cannot be reached or started.
class ConnectionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ClientOptions {
  // A remote daemon: a saved remote's name or "kiln+tls://host:port". Empty: $KILN_REMOTE when no
  // socket_path is given, else the local daemon.
  std::string remote;
  std::string token;              // for an address: else $KILN_TOKEN, else the saved remote at that address
  std::string config_dir;         // saved remotes and pins (empty: $KILN_CONFIG_DIR, else ~/.config/kiln)
  std::string expect_fingerprint; // first contact: the certificate fingerprint the daemon must show
  std::string compression = "zstd";  // remote images both ways: "zstd" or "none" (default: $KILN_COMPRESSION, else zstd)
  std::chrono::milliseconds connect_timeout{10000};  // remote: TCP connect and TLS handshake
  std::string socket_path;        // empty: $KILN_SOCKET, else the per-user default
  std::string data_dir;           // handed to a daemon this client starts (empty: its default)
  std::string client_name = "kiln-client";
  bool autostart = true;          // start kilnd when none answers
  std::string daemon_executable;  // empty: $KILN_DAEMON, beside this program, then $PATH
  std::chrono::milliseconds start_timeout{20000};
};

class Client {
 public:
  using Callback = std::function<void(std::optional<Json> result, std::optional<RpcError> error)>;
  using NotificationHandler = std::function<void(const std::string& method, const Json& params)>;
  using DisconnectHandler = std::function<void(const std::string& reason)>;

  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects and says hello. Throws ConnectionError or RpcError. Calling it again reconnects.
  void connect();
  void close();
  bool connected() const;
  const Json& server_info() const;  // the hello result: daemon version, protocol, device, ...
  const std::string& socket_path() const;  // the socket, or kiln+tls://host:port for a remote daemon
  bool is_remote() const;
  std::string server_fingerprint() const;  // remote: the daemon's certificate fingerprint

  // A file of this machine for a method that takes a path: uploaded to a remote daemon (the
  // answer is the path there); for a local daemon, the file's absolute path. `folder`: the
  // folder name of an earlier upload's path, to keep files side by side (an image and its
  // caption file). Throws.
  std::string upload_file(const std::string& local_path, const std::string& folder = "");
  // A file the daemon named (an output PNG, a LoRA file) to `local_path`: downloaded from a
  // remote daemon, copied from a local one. Throws.
  void download_file(const std::string& daemon_path, const std::string& local_path);

  // Blocks until the answer comes; throws RpcError. timeout 0 = wait as long as it takes.
  Json call(const std::string& method, const Json& params = Json::object(),
            std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // Returns at once; `done` runs on the client thread with a result or an error.
  void call_async(const std::string& method, const Json& params, Callback done);

  int add_notification_handler(NotificationHandler handler);  // returns a token
  void remove_notification_handler(int token);
  void set_disconnect_handler(DisconnectHandler handler);

  // An image block owned by this client: fill its pixels, pass `to_json(image.ref())` as a
  // parameter, keep the ShmImage alive until the answer arrives. Blocks of finished requests are
  // reused (a fresh 64 MB block costs ~30 ms to allocate and zero), so pass one as `into` to
  // receive results without the daemon creating blocks. Dropping the ShmImage recycles it; the
  // idle ones are removed when the Client is destroyed.
  ipc::ShmImage create_image(const protocol::ImageDesc& desc);
  // Takes over an image block the daemon returned: opens and validates it and removes its name,
  // so it disappears as soon as the returned mapping is dropped.
  ipc::ShmImage take_image(const Json& image_ref);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace kiln
