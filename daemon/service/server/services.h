#pragma once
// The daemon-wide pieces a request handler may use.
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

namespace kiln::studio {
class DatasetStore;
}  // namespace kiln::studio

namespace kiln::service {

class Scheduler;
class ImageLeases;
class LoraLibrary;
class ModelRegistry;
class RemoteAccess;
class Server;

struct DaemonInfo {
  std::string version;
  std::string device;  // human description of the compute device
  std::filesystem::path socket_path;
  std::filesystem::path data_dir;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

struct Services {
  Scheduler& scheduler;
  ImageLeases& leases;
  DaemonInfo& info;
  ModelRegistry& models;
  LoraLibrary& loras;
  studio::DatasetStore& datasets;           // <data dir>/datasets; folder(name) is kohya's train_data_dir
  Server* server = nullptr;                 // set once the server exists
  std::function<void()> request_shutdown;   // stops the daemon gracefully (asynchronously)
  RemoteAccess* remote = nullptr;           // tokens and the TLS listener's state (service/remote)
};

}  // namespace kiln::service
