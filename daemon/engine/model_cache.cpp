#include "engine/model_cache.h"

#include <spdlog/spdlog.h>

namespace kiln::engine {

ModelCache::ModelCache(DeviceChoice device, int64_t budget_bytes) : device_(device), budget_(budget_bytes) {}

int64_t ModelCache::model_bytes(const models::StableDiffusion& model) {
  int64_t total = 0;
  std::vector<const torch::nn::Module*> modules{model.unet.get(), model.vae.get()};
  for (const auto& te : model.text_encoders()) modules.push_back(te.get());
  for (const torch::nn::Module* m : modules) {
    for (const auto& p : m->parameters()) total += p.numel() * static_cast<int64_t>(p.element_size());
    for (const auto& b : m->buffers()) total += b.numel() * static_cast<int64_t>(b.element_size());
  }
  return total;
}

int64_t ModelCache::bytes() const {
  int64_t total = 0;
  for (const Entry& e : entries_) total += e.bytes;
  return total;
}

void ModelCache::make_room(int64_t incoming) {
  // Evict before loading, so two large models are never resident at once without need.
  while (!entries_.empty() && bytes() + incoming > budget_) {
    spdlog::info("unloading model {} to stay within the memory budget", entries_.back().key);
    entries_.pop_back();
  }
}

std::shared_ptr<LoadedModel> ModelCache::get_or_make(
    const std::string& key, const std::function<models::StableDiffusion()>& make) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->key != key) continue;
    entries_.splice(entries_.begin(), entries_, it);
    return entries_.front().model;
  }
  // The size is only known once loaded; assume the largest cached one to decide evictions.
  int64_t guess = 0;
  for (const Entry& e : entries_) guess = std::max(guess, e.bytes);
  make_room(guess);
  auto model = std::make_shared<LoadedModel>(make());
  const int64_t size = model_bytes(model->model);
  entries_.push_front(Entry{key, model, size});
  // Keep at least the model just loaded, even when it alone is over the budget.
  while (entries_.size() > 1 && bytes() > budget_) entries_.pop_back();
  return model;
}

std::shared_ptr<LoadedModel> ModelCache::get(const std::filesystem::path& path) {
  const std::string key = std::filesystem::absolute(path).lexically_normal().string();
  return get_or_make(key, [&] { return models::StableDiffusion::open(path, device_); });
}

void ModelCache::clear() { entries_.clear(); }

}  // namespace kiln::engine
