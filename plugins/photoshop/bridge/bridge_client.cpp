#include "bridge_client.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>
#include <vector>

#include "protocol/errors.h"

namespace kiln::ps {

using protocol::ErrorCode;

JsError to_js_error(const std::exception& e) {
  if (auto* rpc = dynamic_cast<const RpcError*>(&e)) return JsError(rpc->what(), static_cast<int>(rpc->code()), rpc->data());
  if (dynamic_cast<const ConnectionError*>(&e)) return JsError(e.what(), static_cast<int>(ErrorCode::ConnectionLost));
  if (auto* js = dynamic_cast<const JsError*>(&e)) return *js;
  if (dynamic_cast<const ipc::ImageError*>(&e)) return JsError(e.what(), static_cast<int>(ErrorCode::ImageError));
  return JsError(e.what());
}

namespace {

// Every live client, so an engine shutting down can close them all (see shutdown_all_clients).
std::mutex registry_mutex;
std::vector<std::weak_ptr<BridgeClient>>& registry() {
  static auto* clients = new std::vector<std::weak_ptr<BridgeClient>>();  // never destroyed: used at exit
  return *clients;
}

}  // namespace

void shutdown_all_clients() {
  std::vector<std::shared_ptr<BridgeClient>> live;
  {
    std::lock_guard lock(registry_mutex);
    for (auto& weak : registry())
      if (auto c = weak.lock()) live.push_back(std::move(c));
    registry().clear();
  }
  for (auto& c : live) {
    c->set_notification_callback(nullptr);
    c->set_disconnect_callback(nullptr);
    c->close();
  }
}

std::shared_ptr<BridgeClient> BridgeClient::create(ClientOptions options) {
  std::shared_ptr<BridgeClient> client(new BridgeClient(std::move(options)));
  std::lock_guard lock(registry_mutex);
  auto& all = registry();
  all.erase(std::remove_if(all.begin(), all.end(), [](const auto& w) { return w.expired(); }), all.end());
  all.push_back(client);
  return client;
}

BridgeClient::BridgeClient(ClientOptions options) : client_(std::make_unique<Client>(std::move(options))) {
  // The client thread calls these; they only queue work for the JavaScript thread.
  client_->add_notification_handler([this](const std::string& method, const Json& params) {
    std::shared_ptr<Callback> fn;
    {
      std::lock_guard lock(mutex_);
      fn = on_notification_;
    }
    if (fn) fn->call({method, params});
  });
  client_->set_disconnect_handler([this](const std::string& reason) {
    std::shared_ptr<Callback> fn;
    {
      std::lock_guard lock(mutex_);
      fn = on_disconnect_;
    }
    if (fn) fn->call({reason});
  });
}

BridgeClient::~BridgeClient() {
  join_connector();
  join_transfers(true);
  client_.reset();  // closes the socket and joins the client thread before the handlers above go
  std::error_code ec;  // the copies downloadFile made: read at once by the panel, no longer needed
  if (!download_dir_.empty()) std::filesystem::remove_all(download_dir_, ec);
}

void BridgeClient::join_connector() {
  std::thread t;
  {
    std::lock_guard lock(mutex_);
    t = std::move(connector_);
  }
  if (t.joinable()) {
    if (t.get_id() == std::this_thread::get_id()) t.detach();
    else t.join();
  }
}

void BridgeClient::connect(std::shared_ptr<Deferred> done) {
  {
    std::lock_guard lock(mutex_);
    if (connecting_) {
      done->reject(JsError("already connecting to kilnd; wait for that connection to finish"));
      return;
    }
    connecting_ = true;
  }
  join_connector();  // a finished earlier attempt
  std::lock_guard lock(mutex_);
  // Starting kilnd can take seconds: never on the JavaScript thread.
  connector_ = std::thread([this, done] {
    std::optional<JsError> error;
    Json info;
    try {
      client_->connect();
      info = client_->server_info();
    } catch (const std::exception& e) {
      error = to_js_error(e);
    }
    {
      std::lock_guard lock(mutex_);
      connecting_ = false;
    }
    if (error) done->reject(*error);
    else done->resolve(std::move(info));
  });
}

void BridgeClient::close() {
  join_connector();
  client_->close();  // a download in flight ends with a connection error
  join_transfers(true);
}

void BridgeClient::join_transfers(bool all) {
  std::list<Transfer> done;
  {
    std::lock_guard lock(mutex_);
    for (auto it = transfers_.begin(); it != transfers_.end();) {
      if (all || it->finished->load()) done.splice(done.end(), transfers_, it++);
      else ++it;
    }
  }
  for (Transfer& t : done)
    if (t.thread.joinable()) t.thread.join();
}

std::string BridgeClient::private_download_path(const std::string& daemon_path) {
  namespace fs = std::filesystem;
  std::lock_guard lock(mutex_);
  if (download_dir_.empty()) {
    std::random_device random;
    for (int attempt = 0; attempt < 8 && download_dir_.empty(); ++attempt) {
      char name[32];
      std::snprintf(name, sizeof name, "kiln-downloads-%08x%08x", random(), random());
      const fs::path dir = fs::temp_directory_path() / name;
      if (fs::create_directory(dir)) {
        fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
        download_dir_ = dir.string();
      }
    }
    if (download_dir_.empty()) throw JsError("cannot make a private folder for downloads in " + fs::temp_directory_path().string());
  }
  return (fs::path(download_dir_) / (std::to_string(downloads_++) + "-" + fs::path(daemon_path).filename().string())).string();
}

void BridgeClient::download_file(const std::string& daemon_path, const std::string& local_path, std::shared_ptr<Deferred> done) {
  join_transfers(false);
  std::string to = local_path;
  try {
    if (to.empty()) to = private_download_path(daemon_path);
  } catch (const std::exception& e) {
    done->reject(to_js_error(e));
    return;
  }
  auto finished = std::make_shared<std::atomic<bool>>(false);
  std::lock_guard lock(mutex_);
  transfers_.push_back({std::thread([this, daemon_path, to, done, finished] {
                          std::optional<JsError> error;
                          try {
                            client_->download_file(daemon_path, to);
                          } catch (const std::exception& e) {
                            error = to_js_error(e);
                          }
                          if (error) done->reject(*error);
                          else done->resolve(Json(to));
                          finished->store(true);
                        }),
                        finished});
}

bool BridgeClient::connected() const { return client_->connected(); }
Json BridgeClient::server_info() const { return client_->connected() ? client_->server_info() : Json::object(); }
std::string BridgeClient::socket_path() const { return client_->socket_path(); }

void BridgeClient::call(const std::string& method, const Json& params, std::shared_ptr<Deferred> done) {
  client_->call_async(method, params, [done](std::optional<Json> result, std::optional<RpcError> error) {
    if (error) done->reject(to_js_error(*error));
    else done->resolve(result ? std::move(*result) : Json::object());
  });
}

void BridgeClient::set_notification_callback(std::shared_ptr<Callback> fn) {
  std::lock_guard lock(mutex_);
  on_notification_ = std::move(fn);
}

void BridgeClient::set_disconnect_callback(std::shared_ptr<Callback> fn) {
  std::lock_guard lock(mutex_);
  on_disconnect_ = std::move(fn);
}

ipc::ShmImage BridgeClient::create_image(const protocol::ImageDesc& desc) { return client_->create_image(desc); }
ipc::ShmImage BridgeClient::take_image(const Json& ref) { return client_->take_image(ref); }

ipc::ShmImage& BridgeImage::image() {
  if (!image_) throw JsError("this Kiln image was released; it can no longer be read or written");
  return *image_;
}

}  // namespace kiln::ps
