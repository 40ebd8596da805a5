#pragma once
// Training the autoencoder from scratch. SD's VAE used an L1 + LPIPS + patch-GAN objective with a
// KL weight of 1e-6 on summed terms; Kiln has neither LPIPS nor a GAN, so the objective is
//   L1 + MSE + edge (L1 of the horizontal and vertical pixel differences, for sharp edges)
//   + kl_weight · KL(q(z|x) ‖ N(0, 1))
// with every term a mean over elements (pixels for the reconstruction terms, latent elements for
// the KL). The latent is sampled from the posterior while training (as LDM does), its mean used
// for validation. The KL weight only bounds the latents' scale here; the unit scale the UNet wants
// comes afterwards from rescale_latents (sd1_export.h).
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "engine/lora/optimizers.h"
#include "engine/models/vae.h"
#include "engine/pretrain/train_state.h"

namespace kiln::engine::pretrain {

struct VaeTrainOptions {
  double lr = 1e-3;
  int64_t warmup_steps = 100;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;
  double l1_weight = 1.0;
  double mse_weight = 1.0;
  double edge_weight = 0.5;
  double kl_weight = 1e-4;
  uint64_t seed = 0;
};

struct VaeLosses {
  double total = 0, l1 = 0, mse = 0, edge = 0, kl = 0;
  double grad_norm = 0;   // before clipping (training steps only)
  double latent_std = 0;  // std of the posterior means over the batch
};

class VaeTrainer {
 public:
  VaeTrainer(models::AutoencoderKL vae, const VaeTrainOptions& options);

  // One optimizer step on images [B, 3, H, W] float in [-1, 1] (H, W multiples of 8).
  VaeLosses step(const torch::Tensor& images);
  // The losses with z = posterior mean, no gradients; the model is unchanged.
  VaeLosses evaluate(const torch::Tensor& images) const;

  int64_t steps_done() const { return step_; }
  const models::AutoencoderKL& vae() const { return vae_; }
  const VaeTrainOptions& options() const { return options_; }

  // "vae.<param>" and "opt.<state>" tensors; with the step in the caller's metadata.
  NamedTensors state() const;
  void load_state(const std::map<std::string, torch::Tensor>& tensors, int64_t step);

 private:
  models::AutoencoderKL vae_;
  VaeTrainOptions options_;
  std::unique_ptr<lora::Optimizer> optimizer_;
  int64_t step_ = 0;
};

}  // namespace kiln::engine::pretrain
