#pragma once
// The extra UNet input of inpainting checkpoints (UNet with 9 input channels: the noisy latent, then
// this "image conditioning": the latent-size mask and the latent of the masked image), built as
// A1111 builds it for each mode (LDM conditioning_key "hybrid"; diffusers uses the same order).
#include <torch/types.h>

#include "engine/models/stable_diffusion.h"

namespace kiln::engine::sampling {

// float32 [1, 5, height/8, width/8] on the model's device: channel 0 the mask (1 = repaint), 1..4
// the VAE latent (posterior mean · scale) of the masked image.
//  - txt2img (`source` undefined): mask 1 everywhere, the latent of a mid-grey image.
//  - img2img (`source` defined, `mask_u8` undefined): the whole image counts as masked.
//  - inpainting: mask = the full-resolution mask rounded to 0/1, sampled nearest at latent size;
//    masked image = lerp(source, source·(1 − mask), mask_weight) (A1111 "inpainting conditioning
//    mask strength", 1 by default: the repaint area becomes mid grey).
// `source` is the image as the model sees it: float [1, 3, H, W] in [-1, 1]; `mask_u8` uint8 [H, W].
torch::Tensor inpainting_conditioning(const models::StableDiffusion& model, const torch::Tensor& source,
                                      const torch::Tensor& mask_u8, double mask_weight, int64_t height, int64_t width);

}  // namespace kiln::engine::sampling
