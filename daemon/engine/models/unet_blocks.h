#pragma once
// The UNet's convolutional pieces (LDM openaimodel.py layout): timestep embedding, ResBlock,
// Downsample, Upsample.
#include <torch/nn/module.h>
#include <torch/types.h>

#include "engine/models/layers.h"

namespace kiln::engine::models {

// Sinusoidal embedding of (possibly fractional) timesteps [B] → [B, dim] in float32:
// [cos(t·f_j), sin(t·f_j)] with f_j = exp(-ln(10000)·j/(dim/2)), cos first (LDM / diffusers with
// flip_sin_to_cos). Computed in float32 like the references.
torch::Tensor timestep_embedding(const torch::Tensor& timesteps, int64_t dim);

// in_layers (GroupNorm, SiLU, 3×3 conv) + emb_layers (SiLU, Linear) added per channel +
// out_layers (GroupNorm, SiLU, dropout, 3×3 conv), plus skip_connection (1×1 conv when widths differ).
class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in, int64_t out, int64_t emb_dim, int64_t groups, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb) const;

 private:
  GroupNorm in_norm_{nullptr}, out_norm_{nullptr};
  Conv2d in_conv_{nullptr}, out_conv_{nullptr}, skip_{nullptr};
  Linear emb_proj_{nullptr};
};
TORCH_MODULE(ResBlock);

// "op": 3×3 convolution with stride 2.
class DownsampleImpl : public torch::nn::Module {
 public:
  DownsampleImpl(int64_t channels, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;

 private:
  Conv2d op_{nullptr};
};
TORCH_MODULE(Downsample);

// Nearest-neighbour upsampling to `size` (twice the input for latents of 64-pixel multiples;
// the skip connection's size otherwise), then "conv" 3×3.
class UpsampleImpl : public torch::nn::Module {
 public:
  UpsampleImpl(int64_t channels, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, torch::IntArrayRef size) const;

 private:
  Conv2d conv_{nullptr};
};
TORCH_MODULE(Upsample);

}  // namespace kiln::engine::models
