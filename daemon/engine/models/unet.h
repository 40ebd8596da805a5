#pragma once
// The Stable Diffusion UNet (LDM / sgm openaimodel.py UNetModel; parameters named as in single-file
// checkpoints under "model.diffusion_model.": input_blocks.N.M…, middle_block…, output_blocks…,
// time_embed…, out…, and SDXL's label_emb…). SD1.x and SDXL are the same class with other widths,
// depths per level and an extra input: SDXL adds label_emb(y) to the time embedding, where y is
// the pooled text and the Fourier-embedded image sizes.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <vector>

#include "engine/device.h"
#include "engine/models/layers.h"
#include "engine/models/transformer.h"
#include "engine/models/unet_blocks.h"
#include "engine/models/weights.h"

namespace kiln::engine::models {

struct UNetConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  int64_t model_channels = 320;
  std::vector<int64_t> channel_mult{1, 2, 4, 4};
  std::vector<bool> attention{true, true, true, false};  // per level
  int64_t num_res_blocks = 2;
  int64_t transformer_depth = 1;    // transformer blocks per SpatialTransformer…
  std::vector<int64_t> level_depths;  // …or per level (SDXL 0, 2, 10); empty: transformer_depth everywhere
  int64_t middle_depth = -1;          // the middle block's; -1: that of the last level (sgm's default)
  int64_t context_dim = 768;
  int64_t num_heads = 8;       // SD1.x: a fixed head count…
  int64_t head_channels = -1;  // …SD2.x and SDXL: fixed 64-channel heads (num_heads then unused)
  bool linear_projection = false;
  int64_t norm_groups = 32;
  int64_t adm_in_channels = 0;  // SDXL: the width of y (label_emb); 0: no such input

  static UNetConfig sd15() { return {}; }
  // SDXL 1.0 base: 320·(1, 2, 4), no attention at the first level, depths 2 and 10 (middle 10),
  // context 2048, 64-channel heads, linear projections, y of 2816 = 1280 pooled + 6·256 sizes.
  static UNetConfig sdxl();
  // Reads every width, depth and the block layout from the tensor shapes and names. Heads are the
  // one thing shapes cannot tell: 64-channel heads for a 1024-wide context (SD2.x) and for UNets
  // with label_emb (SDXL); otherwise 8 heads (SD1.x).
  static UNetConfig infer(const WeightIndex& weights);

  int64_t heads_for(int64_t channels) const;
  int64_t depth_at(size_t level) const;  // transformer blocks at `level` (where it has attention)
  int64_t depth_middle() const;
};

class UNetModelImpl : public torch::nn::Module {
 public:
  UNetModelImpl(const UNetConfig& config, const torch::TensorOptions& options);

  // x [B, in, h, w]; timesteps: [B] or a single value (fractional allowed); context [B, T, ctx];
  // y [B, adm_in_channels] for SDXL (required there, refused elsewhere).
  // Returns eps [B, out, h, w]. h and w need not be multiples of 8: upsampling follows the skips.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& timesteps, const torch::Tensor& context,
                        const torch::Tensor& y = {}) const;

  // Training: recompute each input/middle/output block during backward instead of keeping its
  // activations (less memory, about one more forward of time). Only acts under grad mode.
  void set_gradient_checkpointing(bool on) { checkpointing_ = on; }
  bool gradient_checkpointing() const { return checkpointing_; }

  const UNetConfig& config() const { return config_; }
  torch::Device device() const { return conv_in_->weight.device(); }
  torch::Dtype dtype() const { return conv_in_->weight.scalar_type(); }

 private:
  // One entry of input_blocks / output_blocks: a conv, or ResBlock [+ transformer] [+ up/down].
  struct Block {
    ResBlock res{nullptr};
    SpatialTransformer attn{nullptr};
    Downsample down{nullptr};
    Upsample up{nullptr};
  };
  torch::Tensor run(const Block& b, torch::Tensor h, const torch::Tensor& emb, const torch::Tensor& context,
                    torch::IntArrayRef up_size) const;
  // run(), or run() under gradient checkpointing when it is on and grad mode is enabled.
  torch::Tensor run_block(const Block& b, const torch::Tensor& h, const torch::Tensor& emb, const torch::Tensor& context,
                          torch::IntArrayRef up_size) const;
  torch::Tensor run_middle(const torch::Tensor& h, const torch::Tensor& emb, const torch::Tensor& context) const;

  UNetConfig config_;
  bool checkpointing_ = false;
  Linear time_in_{nullptr}, time_out_{nullptr};
  Linear label_in_{nullptr}, label_out_{nullptr};
  Conv2d conv_in_{nullptr};
  std::vector<Block> input_;
  Block mid_;
  ResBlock mid_res2_{nullptr};
  std::vector<Block> output_;
  GroupNorm out_norm_{nullptr};
  Conv2d out_conv_{nullptr};
};
TORCH_MODULE(UNetModel);

// Builds the UNet from `weights` (architecture inferred from them) on `choice`.
UNetModel load_unet(const WeightView& weights, const DeviceChoice& choice);

}  // namespace kiln::engine::models
