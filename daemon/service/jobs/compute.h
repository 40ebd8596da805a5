#pragma once
// What the device worker owns: the compute device and the models loaded on it. Only job code
// (which runs on the worker thread) touches `models` and `model_hashes`.
#include <map>
#include <string>

#include "engine/device.h"
#include "engine/model_cache.h"

namespace kiln::service {

struct Compute {
  Compute(engine::DeviceChoice device_choice, int64_t model_budget_bytes)
      : device(device_choice), models(device_choice, model_budget_bytes) {}
  engine::DeviceChoice device;
  engine::ModelCache models;
  std::map<std::string, std::string> model_hashes;  // path → sha256, for files not in the registry
};

}  // namespace kiln::service
