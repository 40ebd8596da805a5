#pragma once
// Applying kohya LoRAs to a loaded model for generation: A1111's <lora:name:multiplier> (or
// <lora:name:te:unet>), several at once. Each LoRA adds its own low-rank path to the layers it
// names, y = W·x + b + Σ_k m_k·(α_k/r_k)·up_k(down_k(x)); the base weights are never touched, so
// changing LoRAs between requests costs only reading the (small) LoRA files.
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/lora/network.h"

namespace kiln::engine::lora {

struct LoraRequest {
  std::filesystem::path path;
  double multiplier = 1.0;
  std::optional<double> text_encoder_multiplier;  // default: multiplier
  std::optional<double> unet_multiplier;          // default: multiplier
};

// Reads `file`, builds its modules for `model` and attaches them with `multiplier`. The returned
// network detaches when destroyed. Throws as LoraFile::read and LoraNetwork::from_file do.
std::unique_ptr<LoraNetwork> apply_lora(const models::StableDiffusion& model, const LoraFile& file,
                                        double multiplier = 1.0, ApplyReport* report = nullptr);

// The LoRAs active on one model, kept between requests. Not thread-safe: use it from the thread
// that runs the model, between generations.
class LoraStack {
 public:
  explicit LoraStack(models::StableDiffusion model) : model_(std::move(model)) {}

  // Makes exactly `requests` active, in that order: files already loaded (same path, size and
  // modification time) are reused and only their multipliers change; the rest are detached and
  // dropped. On an error nothing changes. Returns one report per request.
  std::vector<ApplyReport> set(const std::vector<LoraRequest>& requests);
  void clear();  // the base model again, bit for bit
  size_t size() const { return active_.size(); }

 private:
  struct Loaded {
    std::string key;  // path + size + mtime
    std::unique_ptr<LoraNetwork> network;
    ApplyReport report;
  };
  models::StableDiffusion model_;
  std::vector<Loaded> active_;
};

}  // namespace kiln::engine::lora
