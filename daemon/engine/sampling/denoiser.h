#pragma once
// Classifier-free guidance around the eps-predicting UNet, as A1111's CFGDenoiser drives it:
// one UNet batch [cond…, uncond…], then D = d_uncond + (d_cond − d_uncond)·cfg_scale.
#include <torch/types.h>

#include "engine/models/unet.h"
#include "engine/sampling/schedule.h"

namespace kiln::engine::sampling {

struct Conditioning {
  torch::Tensor cond;    // [B or 1, T, C] (or [T, C]): prompt states
  torch::Tensor uncond;  // [B or 1, T', C] (or [T', C]): negative prompt states
  // When T ≠ T', A1111 runs cond and uncond as two UNet passes, unless its "pad prompt/negative
  // prompt" option pads the shorter with copies of the empty prompt's states ([77, C]): pass those
  // here to get that behaviour (one batched pass). Left undefined: two passes.
  torch::Tensor pad_chunk;
  // SDXL: the UNet's vector y for each ([B or 1, adm] or [adm]); undefined for SD1.x.
  torch::Tensor cond_vector, uncond_vector;
};

class CfgDenoiser {
 public:
  // Conditioning is broadcast to `batch` images and moved to the UNet's device and dtype once.
  CfgDenoiser(models::UNetModel unet, const DiscreteSchedule& schedule, const Conditioning& conditioning,
              double cfg_scale, int64_t batch);

  // k-diffusion denoiser (CompVisDenoiser): c_in = 1/√(σ²+1), t = sigma_to_t(σ),
  // d = x − σ·UNet(x·c_in, t), then CFG. x float32 [B, C, h, w]; σ holds a float32 value.
  torch::Tensor denoise(const torch::Tensor& x, double sigma) const;
  // diffusers-style guided eps at an integer timestep: e_u + cfg·(e_c − e_u).
  torch::Tensor eps(const torch::Tensor& x, double t) const;

  // Inpainting: after each denoise(), denoised·(1 − keep) + init·keep (A1111's mask blend).
  void set_blend(torch::Tensor init_latent, torch::Tensor keep_mask);
  // Inpainting checkpoints: [1, 5, h, w] appended to every UNet input after the (scaled) latent, the
  // same for the cond and uncond halves (sampling/inpainting_model.h builds it).
  void set_image_conditioning(const torch::Tensor& image_conditioning);

 private:
  // UNet eps for the same x under cond and under uncond, float32: {eps_cond, eps_uncond}.
  std::pair<torch::Tensor, torch::Tensor> both(const torch::Tensor& x_in, double t) const;

  models::UNetModel unet_;
  DiscreteSchedule schedule_;
  torch::Tensor cond_, uncond_;
  torch::Tensor cond_y_, uncond_y_;  // SDXL, [B, adm] in the UNet's dtype
  double cfg_scale_;
  torch::Tensor init_, keep_, repaint_;
  torch::Tensor image_conditioning_;  // UNet dtype and device
};

}  // namespace kiln::engine::sampling
