#pragma once
// Training the UNet and the CLIP text encoder together from scratch on a trained, frozen VAE, as
// SD1.x was trained: latents = posterior sample · scaling_factor; t uniform in 0..999 of SD's
// scaled-linear schedule (sampling::alphas_cumprod_ldm, the schedule Kiln samples with);
// x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε; loss = MSE(ε̂, ε). A caption is replaced by the empty prompt
// ([BOS] + [EOS]·76, what an empty negative prompt encodes to) with probability caption_dropout, so
// classifier-free guidance works. AdamW (two groups: UNet, text encoder), linear warm-up, gradient
// clipping over both networks, and an EMA of both (the exported weights).
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "engine/lora/optimizers.h"
#include "engine/models/clip_text.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"
#include "engine/pretrain/ema.h"
#include "engine/pretrain/train_state.h"

namespace kiln::engine::pretrain {

struct DiffusionTrainOptions {
  double unet_lr = 5e-4;
  double text_lr = 5e-4;
  int64_t warmup_steps = 200;
  double weight_decay = 0.01;
  double max_grad_norm = 1.0;
  double caption_dropout = 0.1;
  double ema_decay = 0.999;
  uint64_t seed = 0;
};

struct DiffusionStep {
  double loss = 0;
  double grad_norm = 0;  // before clipping
};

class DiffusionTrainer {
 public:
  // The VAE is frozen (eval mode, no gradients); its config's scaling_factor scales the latents.
  DiffusionTrainer(models::UNetModel unet, models::ClipTextModel text_encoder, models::AutoencoderKL vae,
                   const DiffusionTrainOptions& options);

  // One optimizer step: images [B, 3, H, W] float in [-1, 1]; ids [B, 77] int64 token ids.
  DiffusionStep step(const torch::Tensor& images, const torch::Tensor& ids);
  // The same step on latents already scaled (x_0), e.g. a fixed batch in tests.
  DiffusionStep step_latents(const torch::Tensor& latents, const torch::Tensor& ids);
  // Mean eps loss with the current (not EMA) weights, no caption dropout, posterior means, and
  // timesteps spread evenly over 0..999 with noise from `seed`: comparable between calls.
  double evaluate(const torch::Tensor& images, const torch::Tensor& ids, uint64_t seed) const;
  // The same on latents already scaled.
  double evaluate_latents(const torch::Tensor& latents, const torch::Tensor& ids, uint64_t seed) const;
  // Posterior mean (or a sample, with gen) · scaling_factor, without gradients.
  torch::Tensor encode(const torch::Tensor& images, at::Generator* gen) const;

  int64_t steps_done() const { return step_; }
  const models::UNetModel& unet() const { return unet_; }
  const models::ClipTextModel& text_encoder() const { return text_encoder_; }
  const models::AutoencoderKL& vae() const { return vae_; }
  const Ema& unet_ema() const { return unet_ema_; }
  const Ema& text_ema() const { return text_ema_; }
  const DiffusionTrainOptions& options() const { return options_; }

  // "unet.", "te.", "ema.unet.", "ema.te.", "opt." tensors (the VAE is saved once, on its own).
  NamedTensors state() const;
  void load_state(const std::map<std::string, torch::Tensor>& tensors, int64_t step);

 private:
  torch::Tensor eps_loss(const torch::Tensor& x0, const torch::Tensor& ids, const torch::Tensor& t,
                         const torch::Tensor& noise) const;

  models::UNetModel unet_;
  models::ClipTextModel text_encoder_;
  models::AutoencoderKL vae_;
  DiffusionTrainOptions options_;
  torch::Tensor alphas_cumprod_;  // float32 [1000]
  torch::Tensor empty_ids_;       // [77] int64
  std::unique_ptr<lora::Optimizer> optimizer_;
  Ema unet_ema_, text_ema_;
  int64_t step_ = 0;
};

}  // namespace kiln::engine::pretrain
