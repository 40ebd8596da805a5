#pragma once
// One LoRA module as kohya's networks/lora.py runs it: an added low-rank path beside a frozen
// Linear or Conv2d, y = W·x + b + multiplier · (alpha / rank) · up(down(x)).
//   Linear       down [r, in],         up [out, r]
//   Conv2d       down [r, in, kh, kw], up [out, r, 1, 1]; down uses the base conv's stride and
//                padding (3×3 "LoCon" and 1×1 projections alike)
#include <torch/types.h>

#include <string>
#include <vector>

#include "engine/models/layers.h"

namespace kiln::engine::lora {

struct ConvGeometry {
  bool conv = false;  // false: a Linear target
  int64_t stride = 1, padding = 0;
};

class LoraModule : public models::LayerAdapter {
 public:
  // `down`/`up` are used as given (device, dtype, requires_grad): training passes leaf tensors.
  LoraModule(std::string name, torch::Tensor down, torch::Tensor up, double alpha, ConvGeometry geometry);

  torch::Tensor forward(const torch::Tensor& x) const override;
  std::vector<torch::Tensor> tensors() const override { return {down_, up_}; }

  const std::string& name() const { return name_; }
  const torch::Tensor& down() const { return down_; }
  const torch::Tensor& up() const { return up_; }
  double alpha() const { return alpha_; }
  int64_t rank() const { return down_.size(0); }
  double scale() const { return alpha_ / static_cast<double>(rank()); }
  bool is_conv() const { return geometry_.conv; }
  bool is_conv3x3() const { return geometry_.conv && down_.dim() == 4 && down_.size(2) > 1; }

  // A1111's <lora:name:multiplier>; set between forward passes only.
  double multiplier() const { return multiplier_; }
  void set_multiplier(double m) { multiplier_ = m; }

  // ΔW = multiplier · scale · up @ down in the base layer's weight shape (float32): what a merge
  // would add (for tests and tools; the forward never materialises it).
  torch::Tensor delta_weight() const;

 private:
  std::string name_;
  torch::Tensor down_, up_;
  double alpha_;
  ConvGeometry geometry_;
  double multiplier_ = 1.0;
};

}  // namespace kiln::engine::lora
