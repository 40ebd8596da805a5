#pragma once
// Loaded models stay in memory between requests, up to a byte budget; the least recently used
// goes first. Used only from the device worker thread (no locking needed, none done).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "engine/device.h"
#include "engine/lora/lora_apply.h"
#include "engine/models/stable_diffusion.h"

namespace kiln::engine {

// A model in memory with the LoRAs currently applied to it (switching LoRAs never reloads it).
struct LoadedModel {
  explicit LoadedModel(models::StableDiffusion m) : model(std::move(m)), loras(model) {}
  models::StableDiffusion model;
  lora::LoraStack loras;
};

class ModelCache {
 public:
  explicit ModelCache(DeviceChoice device, int64_t budget_bytes);

  // The model at `path` (a .safetensors file or a diffusers folder), loading it on a miss.
  // `key` distinguishes special models (e.g. "sd15-random") that have no file.
  std::shared_ptr<LoadedModel> get(const std::filesystem::path& path);
  std::shared_ptr<LoadedModel> get_or_make(
      const std::string& key, const std::function<models::StableDiffusion()>& make);

  void clear();
  std::size_t size() const { return entries_.size(); }
  int64_t bytes() const;
  const DeviceChoice& device() const { return device_; }

  // Bytes of every parameter and buffer of a loaded model.
  static int64_t model_bytes(const models::StableDiffusion& model);

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<LoadedModel> model;
    int64_t bytes = 0;
  };
  void make_room(int64_t incoming);

  DeviceChoice device_;
  int64_t budget_;
  std::list<Entry> entries_;  // most recently used first
};

}  // namespace kiln::engine
