#include "engine/lora/lora_apply.h"

#include <torch/torch.h>

#include "engine/error.h"

namespace kiln::engine::lora {

namespace fs = std::filesystem;

std::unique_ptr<LoraNetwork> apply_lora(const models::StableDiffusion& model, const LoraFile& file, double multiplier,
                                        ApplyReport* report) {
  auto net = LoraNetwork::from_file(model, file, report);
  net->set_multiplier(multiplier);
  net->attach();
  return net;
}

namespace {
std::string file_key(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) throw Error(ErrorKind::NotFound, "the LoRA file \"" + path.string() + "\" does not exist");
  const auto mtime = fs::last_write_time(path, ec).time_since_epoch().count();
  return fs::absolute(path).lexically_normal().string() + "|" + std::to_string(size) + "|" + std::to_string(mtime);
}
}  // namespace

std::vector<ApplyReport> LoraStack::set(const std::vector<LoraRequest>& requests) {
  // Load what is new before changing anything, so that an error leaves the stack as it was.
  std::vector<int> reuse(requests.size(), -1);
  std::vector<bool> taken(active_.size(), false);
  std::vector<Loaded> fresh(requests.size());
  for (size_t k = 0; k < requests.size(); ++k) {
    const std::string key = file_key(requests[k].path);
    for (size_t i = 0; i < active_.size() && reuse[k] < 0; ++i) {
      if (!taken[i] && active_[i].key == key) {
        reuse[k] = static_cast<int>(i);
        taken[i] = true;
      }
    }
    if (reuse[k] >= 0) continue;
    fresh[k].key = key;
    fresh[k].network = LoraNetwork::from_file(model_, LoraFile::read(requests[k].path), &fresh[k].report);
  }
  std::vector<Loaded> next;
  for (size_t k = 0; k < requests.size(); ++k)
    next.push_back(reuse[k] >= 0 ? std::move(active_[reuse[k]]) : std::move(fresh[k]));
  active_ = std::move(next);  // LoRAs no longer requested are destroyed, which detaches them
  std::vector<ApplyReport> reports;
  for (size_t k = 0; k < requests.size(); ++k) {
    const auto& req = requests[k];
    auto& net = *active_[k].network;
    net.set_multipliers(req.text_encoder_multiplier.value_or(req.multiplier), req.unet_multiplier.value_or(req.multiplier));
    net.attach();
    reports.push_back(active_[k].report);
  }
  return reports;
}

void LoraStack::clear() { active_.clear(); }

}  // namespace kiln::engine::lora
