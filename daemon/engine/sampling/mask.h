#pragma once
// Inpainting masks the way A1111 treats them (no OpenCV here: the engine works on tensors).
// Masks are float [H, W] in [0, 1]; 1 = repaint, 0 = keep.
#include <torch/types.h>

namespace kiln::engine::sampling {

// uint8 [H, W] or [H, W, C] (first channel; >0 is partly repainted) → float [H, W].
torch::Tensor mask_from_image(const torch::Tensor& mask_u8);

// A1111 "Mask blur": Gaussian with σ = blur and a kernel of 2·⌊2.5σ + 0.5⌋ + 1 taps, mirrored edges.
torch::Tensor blur_mask(const torch::Tensor& mask, double blur);

// A1111 "fill" masked content: the repaint area takes colours spread in from the kept surroundings
// (premultiplied-alpha blurs at radii 256, 64, 16, 4, 2, 0 laid over each other). uint8 [H, W, 3].
torch::Tensor fill_masked(const torch::Tensor& image_u8, const torch::Tensor& mask);

// The repaint mask at latent size [1, 1, h, w]: area-averaged, then rounded to 0/1 as A1111 does.
torch::Tensor latent_repaint_mask(const torch::Tensor& mask, int64_t h, int64_t w);

// Pastes the generated pixels over the original through the blurred mask (A1111's overlay, whose
// mask is doubled and clipped so the seam leans to the new content). uint8 [H, W, 3] each.
torch::Tensor overlay(const torch::Tensor& generated_u8, const torch::Tensor& original_u8, const torch::Tensor& mask);

}  // namespace kiln::engine::sampling
