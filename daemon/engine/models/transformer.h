#pragma once
// The UNet's text-conditioning blocks (LDM attention.py layout): SpatialTransformer →
// BasicTransformerBlock → self-attention, cross-attention, GEGLU feed-forward.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <vector>

#include "engine/models/layers.h"

namespace kiln::engine::models {

// to_q / to_k / to_v (no bias) and to_out.0. Self-attention when context is undefined.
class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t head_dim,
                     const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {}) const;

 private:
  int64_t heads_;
  Linear to_q_{nullptr}, to_k_{nullptr}, to_v_{nullptr}, to_out_{nullptr};
};
TORCH_MODULE(CrossAttention);

// ff.net.0.proj (GEGLU: one half gates the other through exact gelu) and ff.net.2.
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, int64_t inner, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;

 private:
  Linear proj_{nullptr}, out_{nullptr};
};
TORCH_MODULE(FeedForward);

class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  BasicTransformerBlockImpl(int64_t dim, int64_t context_dim, int64_t heads, int64_t head_dim,
                            const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context) const;

 private:
  CrossAttention attn1_{nullptr}, attn2_{nullptr};
  FeedForward ff_{nullptr};
  LayerNorm norm1_{nullptr}, norm2_{nullptr}, norm3_{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

struct SpatialTransformerConfig {
  int64_t channels = 320;
  int64_t heads = 8;
  int64_t head_dim = 40;
  int64_t depth = 1;
  int64_t context_dim = 768;
  bool linear_projection = false;  // SD2.x: proj_in/proj_out are Linear, not 1×1 convolutions
  int64_t norm_groups = 32;
};

// GroupNorm → proj_in → transformer blocks over the h·w tokens → proj_out, plus the residual.
class SpatialTransformerImpl : public torch::nn::Module {
 public:
  SpatialTransformerImpl(const SpatialTransformerConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context) const;

 private:
  bool linear_;
  GroupNorm norm_{nullptr};
  Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  Linear linear_in_{nullptr}, linear_out_{nullptr};
  std::vector<BasicTransformerBlock> blocks_;
};
TORCH_MODULE(SpatialTransformer);

}  // namespace kiln::engine::models
