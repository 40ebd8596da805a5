#pragma once
// The bridge's objects over kiln::Client: a connection to kilnd and shared-memory images, as
// JavaScript holds them. Nothing here blocks the JavaScript thread for long: connecting (which
// may start kilnd and wait for it) runs on a thread of its own, calls are asynchronous, and
// replies and notifications go to Deferreds and Callbacks, which the glue delivers on the
// JavaScript thread.
#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "client/client.h"
#include "ipc/shm_image.h"
#include "js.h"

namespace kiln::ps {

// Turns what kiln::Client throws into the error JavaScript sees (message, daemon code, data).
JsError to_js_error(const std::exception& e);

class BridgeClient : public Object {
 public:
  static constexpr const char* kKind = "client";
  static std::shared_ptr<BridgeClient> create(ClientOptions options);
  ~BridgeClient() override;
  const char* kind() const override { return kKind; }

  // Connects (starting kilnd when allowed) on a thread of its own and settles `done` with the
  // hello result. Connecting again reconnects: a restarted daemon is picked up.
  void connect(std::shared_ptr<Deferred> done);
  void close();
  bool connected() const;
  Json server_info() const;
  std::string socket_path() const;

  // Sends a request; `done` is resolved with the result or rejected with the daemon's error.
  void call(const std::string& method, const Json& params, std::shared_ptr<Deferred> done);

  // A file the daemon named (a LoRA's grid, a training sample) to `local_path` on this machine,
  // on a thread of its own (a remote daemon's file crosses the network; a local one's is copied);
  // `done` is resolved with the local path. An empty local_path: a new file in a private folder
  // of this process (made 0700 under the system's temporary folder).
  void download_file(const std::string& daemon_path, const std::string& local_path, std::shared_ptr<Deferred> done);

  // fn(method, params) for every notification; fn(reason) when the connection drops. Null clears.
  void set_notification_callback(std::shared_ptr<Callback> fn);
  void set_disconnect_callback(std::shared_ptr<Callback> fn);

  ipc::ShmImage create_image(const protocol::ImageDesc& desc);
  ipc::ShmImage take_image(const Json& ref);

 private:
  explicit BridgeClient(ClientOptions options);
  void join_connector();
  void join_transfers(bool all);  // all: wait for running ones too; else only reap finished ones
  std::string private_download_path(const std::string& daemon_path);

  std::unique_ptr<Client> client_;
  mutable std::mutex mutex_;
  std::thread connector_;
  bool connecting_ = false;
  struct Transfer {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  std::list<Transfer> transfers_;  // downloads in flight (guarded by mutex_)
  std::string download_dir_;       // made on first use
  uint64_t downloads_ = 0;
  std::shared_ptr<Callback> on_notification_, on_disconnect_;
};

// A shared-memory image held by JavaScript: a block of the client's (writable, to send) or a
// daemon result mapped read-only. release() unmaps it before the garbage collector would.
class BridgeImage : public Object {
 public:
  static constexpr const char* kKind = "image";
  BridgeImage(ipc::ShmImage image, bool writable) : image_(std::move(image)), writable_(writable) {}
  const char* kind() const override { return kKind; }

  ipc::ShmImage& image();  // throws JsError once released
  bool writable() const { return writable_; }
  void release() { image_.reset(); }
  bool released() const { return !image_.has_value(); }

 private:
  std::optional<ipc::ShmImage> image_;
  bool writable_;
};

}  // namespace kiln::ps
