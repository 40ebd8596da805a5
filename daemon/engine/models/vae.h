#pragma once
// The KL autoencoder (LDM AutoencoderKL; parameters named as in single-file checkpoints under
// "first_stage_model.": encoder.…, decoder.…, quant_conv, post_quant_conv; the mid-block attention's
// q/k/v/proj_out are 1×1 convolutions).
#include <torch/nn/module.h>
#include <torch/types.h>

#include <vector>

#include "engine/device.h"
#include "engine/models/layers.h"
#include "engine/models/weights.h"

namespace kiln::engine::models {

struct VaeConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t channels = 128;
  std::vector<int64_t> channel_mult{1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  int64_t z_channels = 4;
  int64_t embed_dim = 4;
  int64_t norm_groups = 32;
  double scaling_factor = 0.18215;  // latents the samplers see = mean · scaling_factor

  static VaeConfig sd15() { return {}; }
  static VaeConfig infer(const WeightIndex& weights);
};

// norm1, conv1, norm2, conv2 (+ nin_shortcut when widths differ); GroupNorm eps 1e-6.
class VaeResBlockImpl : public torch::nn::Module {
 public:
  VaeResBlockImpl(int64_t in, int64_t out, int64_t groups, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;

 private:
  GroupNorm norm1_{nullptr}, norm2_{nullptr};
  Conv2d conv1_{nullptr}, conv2_{nullptr}, shortcut_{nullptr};
};
TORCH_MODULE(VaeResBlock);

// Single-head self-attention over the h·w positions.
class VaeAttentionImpl : public torch::nn::Module {
 public:
  VaeAttentionImpl(int64_t channels, int64_t groups, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;

 private:
  GroupNorm norm_{nullptr};
  Conv2d q_{nullptr}, k_{nullptr}, v_{nullptr}, proj_out_{nullptr};
};
TORCH_MODULE(VaeAttention);

struct VaeMid {
  VaeResBlock block_1{nullptr};
  VaeAttention attn_1{nullptr};
  VaeResBlock block_2{nullptr};
  void build(torch::nn::Module& parent, int64_t ch, int64_t groups, const torch::TensorOptions& o);
  torch::Tensor forward(const torch::Tensor& x) const;
};

class VaeEncoderImpl : public torch::nn::Module {
 public:
  VaeEncoderImpl(const VaeConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;  // → [B, 2·z, h, w] moments before quant_conv

 private:
  struct Level {
    std::vector<VaeResBlock> blocks;
    Conv2d downsample{nullptr};
  };
  Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  std::vector<Level> levels_;
  VaeMid mid_;
  GroupNorm norm_out_{nullptr};
};
TORCH_MODULE(VaeEncoder);

class VaeDecoderImpl : public torch::nn::Module {
 public:
  VaeDecoderImpl(const VaeConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& z) const;

 private:
  struct Level {
    std::vector<VaeResBlock> blocks;
    Conv2d upsample{nullptr};
  };
  Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  std::vector<Level> levels_;  // levels_[i] is the checkpoint's up.i; run from the last to 0
  VaeMid mid_;
  GroupNorm norm_out_{nullptr};
};
TORCH_MODULE(VaeDecoder);

struct LatentDistribution {
  torch::Tensor mean;    // [B, z, H/8, W/8], unscaled
  torch::Tensor logvar;  // clamped to [-30, 20]
};

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  AutoencoderKLImpl(const VaeConfig& config, const torch::TensorOptions& options);

  // image [B, 3, H, W] in [-1, 1] → posterior of the latent.
  LatentDistribution encode(const torch::Tensor& image) const;
  // latent [B, z, h, w], unscaled (divide sampler latents by scaling_factor first) → image,
  // roughly [-1, 1], unclamped.
  torch::Tensor decode(const torch::Tensor& latent) const;

  const VaeConfig& config() const { return config_; }
  torch::Device device() const { return quant_conv_->weight.device(); }
  torch::Dtype dtype() const { return quant_conv_->weight.scalar_type(); }

 private:
  VaeConfig config_;
  VaeEncoder encoder_{nullptr};
  VaeDecoder decoder_{nullptr};
  Conv2d quant_conv_{nullptr}, post_quant_conv_{nullptr};
};
TORCH_MODULE(AutoencoderKL);

// `scaling_factor` is the family's (families.h): files do not record it.
AutoencoderKL load_vae(const WeightView& weights, const DeviceChoice& choice, double scaling_factor = 0.18215);

}  // namespace kiln::engine::models
