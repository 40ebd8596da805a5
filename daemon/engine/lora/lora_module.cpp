#include "engine/lora/lora_module.h"

#include <torch/torch.h>

namespace kiln::engine::lora {

LoraModule::LoraModule(std::string name, torch::Tensor down, torch::Tensor up, double alpha, ConvGeometry geometry)
    : name_(std::move(name)), down_(std::move(down)), up_(std::move(up)), alpha_(alpha), geometry_(geometry) {}

torch::Tensor LoraModule::forward(const torch::Tensor& x) const {
  // Trained weights stay float32 while a half-precision model runs: cast on the way (differentiably).
  const bool cast = down_.scalar_type() != x.scalar_type();
  const auto down = cast ? down_.to(x.scalar_type()) : down_;
  const auto up = cast ? up_.to(x.scalar_type()) : up_;
  torch::Tensor h;
  if (geometry_.conv) {
    h = at::conv2d(x, down, {}, {geometry_.stride, geometry_.stride}, {geometry_.padding, geometry_.padding});
    h = at::conv2d(h, up);
  } else {
    h = at::linear(at::linear(x, down), up);
  }
  return h * (multiplier_ * scale());
}

torch::Tensor LoraModule::delta_weight() const {
  torch::NoGradGuard no_grad;
  const auto down = down_.to(torch::kFloat32), up = up_.to(torch::kFloat32);
  const double s = multiplier_ * scale();
  if (down.dim() == 2) return torch::mm(up.flatten(1), down) * s;
  // ΔW[o, i, :, :] = Σ_r up[o, r] · down[r, i, :, :]
  const auto merged = torch::mm(up.flatten(1), down.flatten(1)) * s;
  return merged.view({up.size(0), down.size(1), down.size(2), down.size(3)});
}

}  // namespace kiln::engine::lora
