#include "engine/models/vae.h"

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/models/attention.h"

namespace kiln::engine::models {

VaeConfig VaeConfig::infer(const WeightIndex& w) {
  VaeConfig c;
  c.channels = w.dim("encoder.conv_in.weight", 0);
  c.in_channels = w.dim("encoder.conv_in.weight", 1);
  c.out_channels = w.dim("decoder.conv_out.weight", 0);
  const int64_t levels = w.count("encoder.down.", ".block.0.conv1.weight");
  if (levels == 0) throw Error(ErrorKind::BadFormat, "the VAE encoder has no down blocks; this is not an SD VAE");
  c.num_res_blocks = w.count("encoder.down.0.block.", ".conv1.weight");
  c.channel_mult.clear();
  for (int64_t i = 0; i < levels; ++i) {
    const int64_t width = w.dim("encoder.down." + std::to_string(i) + ".block.0.conv2.weight", 0);
    if (width % c.channels != 0)
      throw Error(ErrorKind::BadFormat,
                  "VAE level width " + std::to_string(width) + " is not a multiple of " + std::to_string(c.channels));
    c.channel_mult.push_back(width / c.channels);
  }
  c.z_channels = w.dim("decoder.conv_in.weight", 1);
  c.embed_dim = w.dim("post_quant_conv.weight", 1);
  if (w.dim("encoder.conv_out.weight", 0) != 2 * c.z_channels)
    throw Error(ErrorKind::BadFormat, "the VAE encoder does not output a mean and a log-variance per latent channel");
  return c;
}

VaeResBlockImpl::VaeResBlockImpl(int64_t in, int64_t out, int64_t groups, const torch::TensorOptions& o) {
  norm1_ = add(*this, "norm1", GroupNorm(groups, in, 1e-6, o));
  conv1_ = add(*this, "conv1", Conv2d(in, out, 3, 1, 1, o));
  norm2_ = add(*this, "norm2", GroupNorm(groups, out, 1e-6, o));
  conv2_ = add(*this, "conv2", Conv2d(out, out, 3, 1, 1, o));
  if (in != out) shortcut_ = add(*this, "nin_shortcut", Conv2d(in, out, 1, 1, 0, o));
}

torch::Tensor VaeResBlockImpl::forward(const torch::Tensor& x) const {
  auto h = conv1_->forward(norm1_->forward_silu(x));
  h = conv2_->forward(norm2_->forward_silu(h));
  // In place on the fresh conv output (addition's backward needs neither operand).
  return h.add_(shortcut_ ? shortcut_->forward(x) : x);
}

VaeAttentionImpl::VaeAttentionImpl(int64_t ch, int64_t groups, const torch::TensorOptions& o) {
  norm_ = add(*this, "norm", GroupNorm(groups, ch, 1e-6, o));
  q_ = add(*this, "q", Conv2d(ch, ch, 1, 1, 0, o));
  k_ = add(*this, "k", Conv2d(ch, ch, 1, 1, 0, o));
  v_ = add(*this, "v", Conv2d(ch, ch, 1, 1, 0, o));
  proj_out_ = add(*this, "proj_out", Conv2d(ch, ch, 1, 1, 0, o));
}

torch::Tensor VaeAttentionImpl::forward(const torch::Tensor& x) const {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto h = norm_->forward(x);
  // [B, C, H, W] → one head of H·W tokens: [B, 1, H·W, C]
  auto tokens = [&](const torch::Tensor& t) { return t.flatten(2).transpose(1, 2).unsqueeze(1); };
  auto a = attention(tokens(q_->forward(h)), tokens(k_->forward(h)), tokens(v_->forward(h)));
  a = a.squeeze(1).transpose(1, 2).reshape({B, C, H, W});
  return proj_out_->forward(a).add_(x);
}

void VaeMid::build(torch::nn::Module& parent, int64_t ch, int64_t groups, const torch::TensorOptions& o) {
  auto mid = add_container(parent, "mid");
  block_1 = add(*mid, "block_1", VaeResBlock(ch, ch, groups, o));
  attn_1 = add(*mid, "attn_1", VaeAttention(ch, groups, o));
  block_2 = add(*mid, "block_2", VaeResBlock(ch, ch, groups, o));
}

torch::Tensor VaeMid::forward(const torch::Tensor& x) const {
  return block_2->forward(attn_1->forward(block_1->forward(x)));
}

VaeEncoderImpl::VaeEncoderImpl(const VaeConfig& c, const torch::TensorOptions& o) {
  conv_in_ = add(*this, "conv_in", Conv2d(c.in_channels, c.channels, 3, 1, 1, o));
  auto down = add_container(*this, "down");
  int64_t ch = c.channels;
  for (size_t i = 0; i < c.channel_mult.size(); ++i) {
    auto level_mod = add_container(*down, std::to_string(i));
    auto blocks = add_container(*level_mod, "block");
    Level level;
    for (int64_t j = 0; j < c.num_res_blocks; ++j) {
      const int64_t out = c.channels * c.channel_mult[i];
      level.blocks.push_back(add(*blocks, std::to_string(j), VaeResBlock(ch, out, c.norm_groups, o)));
      ch = out;
    }
    if (i + 1 != c.channel_mult.size())
      level.downsample = add(*add_container(*level_mod, "downsample"), "conv", Conv2d(ch, ch, 3, 2, 0, o));
    levels_.push_back(std::move(level));
  }
  mid_.build(*this, ch, c.norm_groups, o);
  norm_out_ = add(*this, "norm_out", GroupNorm(c.norm_groups, ch, 1e-6, o));
  conv_out_ = add(*this, "conv_out", Conv2d(ch, 2 * c.z_channels, 3, 1, 1, o));
}

torch::Tensor VaeEncoderImpl::forward(const torch::Tensor& x) const {
  auto h = conv_in_->forward(x);
  for (const auto& level : levels_) {
    for (const auto& b : level.blocks) h = b->forward(h);
    // LDM pads right and bottom only before its stride-2, unpadded convolution.
    if (level.downsample) h = level.downsample->forward(torch::constant_pad_nd(h, {0, 1, 0, 1}));
  }
  h = mid_.forward(h);
  return conv_out_->forward(norm_out_->forward_silu(h));
}

VaeDecoderImpl::VaeDecoderImpl(const VaeConfig& c, const torch::TensorOptions& o) {
  const size_t n = c.channel_mult.size();
  int64_t ch = c.channels * c.channel_mult.back();
  conv_in_ = add(*this, "conv_in", Conv2d(c.z_channels, ch, 3, 1, 1, o));
  mid_.build(*this, ch, c.norm_groups, o);
  auto up = add_container(*this, "up");
  levels_.resize(n);
  std::vector<std::shared_ptr<torch::nn::Module>> level_mods;
  for (size_t i = 0; i < n; ++i) level_mods.push_back(add_container(*up, std::to_string(i)));
  for (size_t i = n; i-- > 0;) {
    auto blocks = add_container(*level_mods[i], "block");
    for (int64_t j = 0; j <= c.num_res_blocks; ++j) {
      const int64_t out = c.channels * c.channel_mult[i];
      levels_[i].blocks.push_back(add(*blocks, std::to_string(j), VaeResBlock(ch, out, c.norm_groups, o)));
      ch = out;
    }
    if (i != 0)
      levels_[i].upsample = add(*add_container(*level_mods[i], "upsample"), "conv", Conv2d(ch, ch, 3, 1, 1, o));
  }
  norm_out_ = add(*this, "norm_out", GroupNorm(c.norm_groups, ch, 1e-6, o));
  conv_out_ = add(*this, "conv_out", Conv2d(ch, c.out_channels, 3, 1, 1, o));
}

torch::Tensor VaeDecoderImpl::forward(const torch::Tensor& z) const {
  auto h = mid_.forward(conv_in_->forward(z));
  for (size_t i = levels_.size(); i-- > 0;) {
    for (const auto& b : levels_[i].blocks) h = b->forward(h);
    if (levels_[i].upsample)
      h = levels_[i].upsample->forward(at::upsample_nearest2d(h, {h.size(2) * 2, h.size(3) * 2}));
  }
  return conv_out_->forward(norm_out_->forward_silu(h));
}

AutoencoderKLImpl::AutoencoderKLImpl(const VaeConfig& c, const torch::TensorOptions& o) : config_(c) {
  encoder_ = add(*this, "encoder", VaeEncoder(c, o));
  decoder_ = add(*this, "decoder", VaeDecoder(c, o));
  quant_conv_ = add(*this, "quant_conv", Conv2d(2 * c.z_channels, 2 * c.embed_dim, 1, 1, 0, o));
  post_quant_conv_ = add(*this, "post_quant_conv", Conv2d(c.embed_dim, c.z_channels, 1, 1, 0, o));
}

LatentDistribution AutoencoderKLImpl::encode(const torch::Tensor& image) const {
  if (image.dim() != 4 || image.size(1) != config_.in_channels || image.size(2) % 8 || image.size(3) % 8)
    throw Error(ErrorKind::InvalidArgument,
                "the VAE encodes images of shape [batch, 3, height, width] with height "
                "and width multiples of 8");
  auto moments = quant_conv_->forward(encoder_->forward(image.to(device(), dtype())));
  auto parts = moments.chunk(2, 1);
  return {parts[0], parts[1].clamp(-30.0, 20.0)};
}

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor& latent) const {
  return decoder_->forward(post_quant_conv_->forward(latent.to(device(), dtype())));
}

AutoencoderKL load_vae(const WeightView& weights, const DeviceChoice& choice, double scaling_factor) {
  const WeightIndex index(weights);
  VaeConfig config = VaeConfig::infer(index);
  config.scaling_factor = scaling_factor;
  AutoencoderKL model(config, parameter_options(choice));
  load_weights(*model, weights);
  model->eval();
  return model;
}

}  // namespace kiln::engine::models
