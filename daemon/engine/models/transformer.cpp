#include "engine/models/transformer.h"

#include <torch/torch.h>

#include "engine/models/attention.h"

namespace kiln::engine::models {

CrossAttentionImpl::CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t head_dim,
                                       const torch::TensorOptions& o)
    : heads_(heads) {
  const int64_t inner = heads * head_dim;
  to_q_ = add(*this, "to_q", Linear(query_dim, inner, false, o));
  to_k_ = add(*this, "to_k", Linear(context_dim, inner, false, o));
  to_v_ = add(*this, "to_v", Linear(context_dim, inner, false, o));
  to_out_ = add(*add_container(*this, "to_out"), "0", Linear(inner, query_dim, true, o));
}

torch::Tensor CrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context) const {
  const auto& ctx = context.defined() ? context : x;
  const int64_t B = x.size(0);
  auto split = [&](const torch::Tensor& t) { return t.view({B, t.size(1), heads_, -1}).transpose(1, 2); };
  auto out = attention(split(to_q_->forward(x)), split(to_k_->forward(ctx)), split(to_v_->forward(ctx)));
  return to_out_->forward(out.transpose(1, 2).reshape({B, x.size(1), -1}));
}

FeedForwardImpl::FeedForwardImpl(int64_t dim, int64_t inner, const torch::TensorOptions& o) {
  auto net = add_container(*this, "net");
  proj_ = add(*add_container(*net, "0"), "proj", Linear(dim, inner * 2, true, o));
  out_ = add(*net, "2", Linear(inner, dim, true, o));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) const {
  auto halves = proj_->forward(x).chunk(2, -1);
  return out_->forward(halves[0] * torch::gelu(halves[1]));
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(int64_t dim, int64_t context_dim, int64_t heads, int64_t head_dim,
                                                     const torch::TensorOptions& o) {
  attn1_ = add(*this, "attn1", CrossAttention(dim, dim, heads, head_dim, o));
  ff_ = add(*this, "ff", FeedForward(dim, dim * 4, o));
  attn2_ = add(*this, "attn2", CrossAttention(dim, context_dim, heads, head_dim, o));
  norm1_ = add(*this, "norm1", LayerNorm(dim, 1e-5, o));
  norm2_ = add(*this, "norm2", LayerNorm(dim, 1e-5, o));
  norm3_ = add(*this, "norm3", LayerNorm(dim, 1e-5, o));
}

torch::Tensor BasicTransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& context) const {
  auto h = x + attn1_->forward(norm1_->forward(x));
  h = h + attn2_->forward(norm2_->forward(h), context);
  return h + ff_->forward(norm3_->forward(h));
}

SpatialTransformerImpl::SpatialTransformerImpl(const SpatialTransformerConfig& c, const torch::TensorOptions& o)
    : linear_(c.linear_projection) {
  const int64_t inner = c.heads * c.head_dim;
  norm_ = add(*this, "norm", GroupNorm(c.norm_groups, c.channels, 1e-6, o));
  if (linear_) {
    linear_in_ = add(*this, "proj_in", Linear(c.channels, inner, true, o));
    linear_out_ = add(*this, "proj_out", Linear(inner, c.channels, true, o));
  } else {
    conv_in_ = add(*this, "proj_in", Conv2d(c.channels, inner, 1, 1, 0, o));
    conv_out_ = add(*this, "proj_out", Conv2d(inner, c.channels, 1, 1, 0, o));
  }
  auto blocks = add_container(*this, "transformer_blocks");
  for (int64_t i = 0; i < c.depth; ++i)
    blocks_.push_back(
        add(*blocks, std::to_string(i), BasicTransformerBlock(inner, c.context_dim, c.heads, c.head_dim, o)));
}

torch::Tensor SpatialTransformerImpl::forward(const torch::Tensor& x, const torch::Tensor& context) const {
  const int64_t B = x.size(0), H = x.size(2), W = x.size(3);
  auto h = norm_->forward(x);
  // [B, C, H, W] → tokens [B, H·W, C]
  if (linear_) {
    h = linear_in_->forward(h.flatten(2).transpose(1, 2));
  } else {
    h = conv_in_->forward(h);
    h = h.flatten(2).transpose(1, 2);
  }
  for (const auto& block : blocks_) h = block->forward(h, context);
  if (linear_) {
    h = linear_out_->forward(h).transpose(1, 2).reshape({B, -1, H, W});
  } else {
    h = conv_out_->forward(h.transpose(1, 2).reshape({B, -1, H, W}));
  }
  return h + x;
}

}  // namespace kiln::engine::models
