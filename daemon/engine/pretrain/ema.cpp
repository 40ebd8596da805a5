#include "engine/pretrain/ema.h"

#include <torch/torch.h>

#include <algorithm>

#include "engine/error.h"

namespace kiln::engine::pretrain {

Ema::Ema(const torch::nn::Module& module, double decay) : decay_(decay) {
  torch::NoGradGuard no_grad;
  for (const auto& p : module.named_parameters(/*recurse=*/true))
    shadow_.emplace_back(p.key(), p.value().detach().to(torch::kFloat32).clone());
}

void Ema::update(const torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  const double n = static_cast<double>(updates_);
  const double d = std::min(decay_, (1.0 + n) / (10.0 + n));
  const auto params = module.named_parameters(/*recurse=*/true);
  if (params.size() != shadow_.size())
    throw Error(ErrorKind::Internal, "EMA: the module has other parameters than when the average began");
  size_t i = 0;
  for (const auto& p : params) {
    auto& s = shadow_[i++].second;
    s.mul_(d).add_(p.value().detach().to(torch::kFloat32), 1.0 - d);
  }
  ++updates_;
}

void Ema::copy_to(torch::nn::Module& module) const {
  torch::NoGradGuard no_grad;
  auto params = module.named_parameters(/*recurse=*/true);
  for (const auto& [name, value] : shadow_) {
    auto* p = params.find(name);
    if (!p) throw Error(ErrorKind::Internal, "EMA: the module has no parameter " + name);
    p->copy_(value);
  }
}

std::vector<std::pair<std::string, torch::Tensor>> Ema::state(const std::string& prefix) const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [name, value] : shadow_) out.emplace_back(prefix + name, value);
  out.emplace_back(prefix + "__updates__", torch::tensor({updates_}, torch::kInt64));
  return out;
}

void Ema::load_state(const std::map<std::string, torch::Tensor>& tensors, const std::string& prefix) {
  torch::NoGradGuard no_grad;
  for (auto& [name, value] : shadow_) {
    const auto it = tensors.find(prefix + name);
    if (it == tensors.end() || it->second.sizes() != value.sizes())
      throw Error(ErrorKind::BadFormat, "the resume state's EMA lacks " + name + " or has another shape for it");
    value.copy_(it->second);
  }
  const auto it = tensors.find(prefix + "__updates__");
  if (it == tensors.end()) throw Error(ErrorKind::BadFormat, "the resume state's EMA has no update count");
  updates_ = it->second.item<int64_t>();
}

}  // namespace kiln::engine::pretrain
