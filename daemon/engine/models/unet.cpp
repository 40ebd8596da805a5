#include "engine/models/unet.h"

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/models/checkpoint.h"

namespace kiln::engine::models {

UNetConfig UNetConfig::infer(const WeightIndex& w) {
  UNetConfig c;
  c.model_channels = w.dim("input_blocks.0.0.weight", 0);
  c.in_channels = w.dim("input_blocks.0.0.weight", 1);
  c.out_channels = w.dim("out.2.weight", 0);
  c.channel_mult.clear();
  c.attention.clear();

  // Walk input_blocks: ResBlocks (with or without a transformer) grouped into levels by Downsamples.
  std::vector<int64_t> res_per_level{0};
  std::string first_attn;
  for (int64_t i = 1;; ++i) {
    const std::string p = "input_blocks." + std::to_string(i) + ".";
    if (w.has(p + "0.op.weight")) {
      res_per_level.push_back(0);
      continue;
    }
    if (!w.has(p + "0.out_layers.3.weight")) break;
    const int64_t width = w.dim(p + "0.out_layers.3.weight", 0);
    const bool attn = w.has(p + "1.proj_in.weight");
    if (res_per_level.back() == 0) {
      if (width % c.model_channels != 0)
        throw Error(ErrorKind::BadFormat, "UNet level width " + std::to_string(width) +
                                              " is not a multiple of the base width " +
                                              std::to_string(c.model_channels));
      c.channel_mult.push_back(width / c.model_channels);
      c.attention.push_back(attn);
    }
    if (attn && first_attn.empty()) first_attn = p + "1.";
    ++res_per_level.back();
  }
  if (c.channel_mult.empty() || res_per_level.size() != c.channel_mult.size())
    throw Error(ErrorKind::BadFormat, "the UNet's input blocks do not have the Stable Diffusion layout");
  c.num_res_blocks = res_per_level.front();
  for (auto n : res_per_level)
    if (n != c.num_res_blocks)
      throw Error(ErrorKind::BadFormat,
                  "the UNet has a different number of ResBlocks per level; Kiln reads SD1.x/SD2.x UNets");
  if (first_attn.empty()) first_attn = "middle_block.1.";
  c.transformer_depth = w.count(first_attn + "transformer_blocks.", ".norm1.weight");
  // Depth per level, from each level's first block with attention (input_blocks 1, 1 + (r+1), ...).
  for (size_t level = 0; level < c.channel_mult.size(); ++level) {
    const std::string p = "input_blocks." + std::to_string(1 + level * (c.num_res_blocks + 1)) + ".1.";
    c.level_depths.push_back(c.attention[level] ? w.count(p + "transformer_blocks.", ".norm1.weight") : 0);
  }
  c.middle_depth = w.count("middle_block.1.transformer_blocks.", ".norm1.weight");
  c.context_dim = w.dim(first_attn + "transformer_blocks.0.attn2.to_k.weight", 1);
  c.linear_projection = w.shape(first_attn + "proj_in.weight").size() == 2;
  if (w.has("label_emb.0.0.weight")) {
    c.adm_in_channels = w.dim("label_emb.0.0.weight", 1);
    c.head_channels = 64;  // sgm num_head_channels of every SDXL model
  }
  if (c.context_dim == 1024) c.head_channels = 64;
  c.norm_groups = 32;
  return c;
}

UNetConfig UNetConfig::sdxl() {
  UNetConfig c;
  c.model_channels = 320;
  c.channel_mult = {1, 2, 4};
  c.attention = {false, true, true};
  c.transformer_depth = 2;
  c.level_depths = {0, 2, 10};
  c.middle_depth = 10;
  c.context_dim = 2048;
  c.head_channels = 64;
  c.linear_projection = true;
  c.adm_in_channels = 2816;
  return c;
}

int64_t UNetConfig::heads_for(int64_t channels) const {
  return head_channels > 0 ? channels / head_channels : num_heads;
}

int64_t UNetConfig::depth_at(size_t level) const {
  return level < level_depths.size() ? level_depths[level] : transformer_depth;
}

int64_t UNetConfig::depth_middle() const {
  return middle_depth >= 0 ? middle_depth : depth_at(channel_mult.size() - 1);
}

UNetModelImpl::UNetModelImpl(const UNetConfig& c, const torch::TensorOptions& o) : config_(c) {
  const int64_t mc = c.model_channels, emb_dim = mc * 4;
  auto time_embed = add_container(*this, "time_embed");
  time_in_ = add(*time_embed, "0", Linear(mc, emb_dim, true, o));
  time_out_ = add(*time_embed, "2", Linear(emb_dim, emb_dim, true, o));
  if (c.adm_in_channels > 0) {  // sgm: label_emb = Sequential(Sequential(Linear, SiLU, Linear))
    auto label_emb = add_container(*add_container(*this, "label_emb"), "0");
    label_in_ = add(*label_emb, "0", Linear(c.adm_in_channels, emb_dim, true, o));
    label_out_ = add(*label_emb, "2", Linear(emb_dim, emb_dim, true, o));
  }

  auto transformer = [&](torch::nn::Module& parent, const std::string& name, int64_t ch, int64_t depth) {
    SpatialTransformerConfig t;
    t.channels = ch;
    t.heads = c.heads_for(ch);
    t.head_dim = ch / t.heads;
    t.depth = depth;
    t.context_dim = c.context_dim;
    t.linear_projection = c.linear_projection;
    t.norm_groups = c.norm_groups;
    return add(parent, name, SpatialTransformer(t, o));
  };

  auto inputs = add_container(*this, "input_blocks");
  conv_in_ = add(*add_container(*inputs, "0"), "0", Conv2d(c.in_channels, mc, 3, 1, 1, o));
  std::vector<int64_t> skip_widths{mc};
  int64_t ch = mc;
  const size_t levels = c.channel_mult.size();
  for (size_t level = 0; level < levels; ++level) {
    for (int64_t r = 0; r < c.num_res_blocks; ++r) {
      auto slot = add_container(*inputs, std::to_string(input_.size() + 1));
      Block b;
      b.res = add(*slot, "0", ResBlock(ch, mc * c.channel_mult[level], emb_dim, c.norm_groups, o));
      ch = mc * c.channel_mult[level];
      if (c.attention[level]) b.attn = transformer(*slot, "1", ch, c.depth_at(level));
      input_.push_back(b);
      skip_widths.push_back(ch);
    }
    if (level + 1 != levels) {
      auto slot = add_container(*inputs, std::to_string(input_.size() + 1));
      Block b;
      b.down = add(*slot, "0", Downsample(ch, o));
      input_.push_back(b);
      skip_widths.push_back(ch);
    }
  }

  auto middle = add_container(*this, "middle_block");
  mid_.res = add(*middle, "0", ResBlock(ch, ch, emb_dim, c.norm_groups, o));
  mid_.attn = transformer(*middle, "1", ch, c.depth_middle());
  mid_res2_ = add(*middle, "2", ResBlock(ch, ch, emb_dim, c.norm_groups, o));

  auto outputs = add_container(*this, "output_blocks");
  for (size_t level = levels; level-- > 0;) {
    for (int64_t r = 0; r <= c.num_res_blocks; ++r) {
      auto slot = add_container(*outputs, std::to_string(output_.size()));
      const int64_t skip = skip_widths.back();
      skip_widths.pop_back();
      Block b;
      b.res = add(*slot, "0", ResBlock(ch + skip, mc * c.channel_mult[level], emb_dim, c.norm_groups, o));
      ch = mc * c.channel_mult[level];
      int next = 1;
      if (c.attention[level]) b.attn = transformer(*slot, std::to_string(next++), ch, c.depth_at(level));
      if (level > 0 && r == c.num_res_blocks) b.up = add(*slot, std::to_string(next), Upsample(ch, o));
      output_.push_back(b);
    }
  }

  auto out = add_container(*this, "out");
  out_norm_ = add(*out, "0", GroupNorm(c.norm_groups, mc, 1e-5, o));
  out_conv_ = add(*out, "2", Conv2d(mc, c.out_channels, 3, 1, 1, o));
}

torch::Tensor UNetModelImpl::run(const Block& b, torch::Tensor h, const torch::Tensor& emb,
                                 const torch::Tensor& context, torch::IntArrayRef up_size) const {
  if (b.down) return b.down->forward(h);
  h = b.res->forward(h, emb);
  if (b.attn) h = b.attn->forward(h, context);
  if (b.up) h = b.up->forward(h, up_size);
  return h;
}

namespace {
bool checkpoint_now(bool on) { return on && torch::GradMode::is_enabled(); }

template <typename Holder>
void add_trainable(std::vector<torch::Tensor>& out, const Holder& module) {
  if (module.is_empty()) return;
  const auto p = tensors_needing_grad(*module);
  out.insert(out.end(), p.begin(), p.end());
}
}  // namespace

torch::Tensor UNetModelImpl::run_block(const Block& b, const torch::Tensor& h, const torch::Tensor& emb,
                                       const torch::Tensor& context, torch::IntArrayRef up_size) const {
  if (!checkpoint_now(checkpointing_)) return run(b, h, emb, context, up_size);
  std::vector<torch::Tensor> params;
  add_trainable(params, b.res);
  add_trainable(params, b.attn);
  add_trainable(params, b.down);
  add_trainable(params, b.up);
  const std::vector<int64_t> size(up_size.begin(), up_size.end());
  return checkpointed(
      [this, &b, size](const std::vector<torch::Tensor>& in) { return run(b, in[0], in[1], in[2], size); },
      {h, emb, context}, params);
}

torch::Tensor UNetModelImpl::run_middle(const torch::Tensor& h, const torch::Tensor& emb,
                                        const torch::Tensor& context) const {
  auto middle = [this](const std::vector<torch::Tensor>& in) {
    return mid_res2_->forward(run(mid_, in[0], in[1], in[2], {}), in[1]);
  };
  if (!checkpoint_now(checkpointing_)) return middle({h, emb, context});
  std::vector<torch::Tensor> params;
  add_trainable(params, mid_.res);
  add_trainable(params, mid_.attn);
  add_trainable(params, mid_res2_);
  return checkpointed(middle, {h, emb, context}, params);
}

torch::Tensor UNetModelImpl::forward(const torch::Tensor& x, const torch::Tensor& timesteps,
                                     const torch::Tensor& context, const torch::Tensor& y) const {
  const int64_t B = x.size(0);
  auto t = timesteps.reshape({-1});
  if (t.numel() == 1) t = t.expand({B});
  if (t.numel() != B)
    throw Error(ErrorKind::InvalidArgument,
                "the UNet got " + std::to_string(t.numel()) + " timesteps for a batch of " + std::to_string(B));
  if (context.dim() != 3 || context.size(0) != B || context.size(2) != config_.context_dim)
    throw Error(ErrorKind::InvalidArgument, "the UNet needs a text context of shape [" + std::to_string(B) +
                                                ", tokens, " + std::to_string(config_.context_dim) + "]");
  if (config_.adm_in_channels > 0 &&
      (!y.defined() || y.dim() != 2 || y.size(0) != B || y.size(1) != config_.adm_in_channels))
    throw Error(ErrorKind::InvalidArgument, "this SDXL UNet needs its size-and-pooled-text vector y of shape [" +
                                                std::to_string(B) + ", " + std::to_string(config_.adm_in_channels) + "]");
  if (config_.adm_in_channels == 0 && y.defined())
    throw Error(ErrorKind::InvalidArgument, "this UNet takes no conditioning vector y (that is SDXL's)");
  auto emb = timestep_embedding(t.to(x.device()), config_.model_channels).to(x.scalar_type());
  emb = time_out_->forward(torch::silu(time_in_->forward(emb)));
  if (label_in_) emb = emb + label_out_->forward(torch::silu(label_in_->forward(y.to(x.scalar_type()))));

  std::vector<torch::Tensor> skips;
  skips.reserve(input_.size() + 1);
  auto h = conv_in_->forward(x);
  skips.push_back(h);
  for (const auto& b : input_) {
    h = run_block(b, h, emb, context, {});
    skips.push_back(h);
  }
  h = run_middle(h, emb, context);
  for (const auto& b : output_) {
    h = torch::cat({h, skips.back()}, 1);
    skips.pop_back();
    // An upsample restores the size of the skip it will be joined with next.
    h = run_block(b, h, emb, context, b.up ? skips.back().sizes().slice(2) : torch::IntArrayRef{});
  }
  return out_conv_->forward(torch::silu(out_norm_->forward(h)));
}

UNetModel load_unet(const WeightView& weights, const DeviceChoice& choice) {
  const WeightIndex index(weights);
  UNetModel model(UNetConfig::infer(index), parameter_options(choice));
  load_weights(*model, weights);
  model->eval();
  return model;
}

}  // namespace kiln::engine::models
