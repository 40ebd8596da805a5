#include "engine/models/unet_blocks.h"

#include <torch/torch.h>

#include <cmath>

namespace kiln::engine::models {

torch::Tensor timestep_embedding(const torch::Tensor& timesteps, int64_t dim) {
  const int64_t half = dim / 2;
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(timesteps.device());
  auto freqs = torch::exp(torch::arange(half, opts) * -std::log(10000.0) / static_cast<double>(half));
  auto args = timesteps.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);
  auto emb = torch::cat({torch::cos(args), torch::sin(args)}, 1);
  if (dim % 2) emb = torch::constant_pad_nd(emb, {0, 1});
  return emb;
}

ResBlockImpl::ResBlockImpl(int64_t in, int64_t out, int64_t emb_dim, int64_t groups, const torch::TensorOptions& o) {
  auto in_layers = add_container(*this, "in_layers");
  in_norm_ = add(*in_layers, "0", GroupNorm(groups, in, 1e-5, o));
  in_conv_ = add(*in_layers, "2", Conv2d(in, out, 3, 1, 1, o));
  emb_proj_ = add(*add_container(*this, "emb_layers"), "1", Linear(emb_dim, out, true, o));
  auto out_layers = add_container(*this, "out_layers");
  out_norm_ = add(*out_layers, "0", GroupNorm(groups, out, 1e-5, o));
  out_conv_ = add(*out_layers, "3", Conv2d(out, out, 3, 1, 1, o));
  if (in != out) skip_ = add(*this, "skip_connection", Conv2d(in, out, 1, 1, 0, o));
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& emb) const {
  auto h = in_conv_->forward(in_norm_->forward_silu(x));
  h.add_(emb_proj_->forward(torch::silu(emb)).unsqueeze(-1).unsqueeze(-1));
  h = out_conv_->forward(out_norm_->forward_silu(h));
  return h.add_(skip_ ? skip_->forward(x) : x);
}

DownsampleImpl::DownsampleImpl(int64_t channels, const torch::TensorOptions& o) {
  op_ = add(*this, "op", Conv2d(channels, channels, 3, 2, 1, o));
}

torch::Tensor DownsampleImpl::forward(const torch::Tensor& x) const {
  return op_->forward(x);
}

UpsampleImpl::UpsampleImpl(int64_t channels, const torch::TensorOptions& o) {
  conv_ = add(*this, "conv", Conv2d(channels, channels, 3, 1, 1, o));
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x, torch::IntArrayRef size) const {
  return conv_->forward(at::upsample_nearest2d(x, size));
}

}  // namespace kiln::engine::models
