#pragma once
// Inpainting masks the way A1111 treats them. A1111 keeps masks as 8-bit PIL images from start to
// end, and its rounding decides which latent cells are repainted, so this module works on bytes too:
// uint8 [H, W], 255 = repaint, 0 = keep. No OpenCV here: the engine works on tensors.
#include <torch/types.h>

namespace kiln::engine::sampling {

// uint8 [H, W] or [H, W, C] (first channel) → uint8 [H, W]; throws on anything else.
torch::Tensor mask_channel(const torch::Tensor& mask_u8);

// A1111 "Mask blur": a Gaussian with σ = blur and 2·⌊2.5σ + 0.5⌋ + 1 taps, mirrored edges, the
// result rounded back to bytes (cv2.GaussianBlur on an 8-bit image). blur 0 returns the mask.
torch::Tensor blur_mask(const torch::Tensor& mask_u8, double blur);

// A1111 "fill" masked content: the repaint area takes colours spread in from the kept surroundings
// (premultiplied-alpha blurs at radii 256, 64, 16, 4, 2, 0 laid over each other). uint8 [H, W, 3].
torch::Tensor fill_masked(const torch::Tensor& image_u8, const torch::Tensor& mask_u8);

// Pillow's Image.resize(size, BICUBIC) of an 8-bit single-channel image, bit for bit: separable
// a = −0.5 cubic stretched by the scale (antialiased), horizontal pass first, 22-bit fixed point,
// each pass rounded and clipped to bytes. uint8 [H, W] → uint8 [out_h, out_w].
torch::Tensor resize_bicubic_pillow(const torch::Tensor& image_u8, int64_t out_h, int64_t out_w);

// The latent cells A1111 repaints ("nmask"): the mask resized to latent size with Pillow's bicubic,
// then rounded (≥ 128 → 1). float32 [1, 1, h, w], 1 = repaint.
torch::Tensor latent_repaint_mask(const torch::Tensor& mask_u8, int64_t h, int64_t w);

// The mask an inpainting UNet sees (A1111 inpainting_image_conditioning): the full-resolution mask
// rounded to 0/1 (≥ 128 → 1), float32 [1, 1, H, W]. Its latent-size channel is the nearest sample
// (pixel [8i, 8j]), which is not the same cells as latent_repaint_mask.
torch::Tensor conditioning_mask(const torch::Tensor& mask_u8);

// A1111's final overlay: the original pasted back over the generated image through the mask doubled
// and clipped (so the seam leans to the new content), with Pillow's integer alpha arithmetic: 0 in
// the mask gives the original pixel exactly, ≥ 128 the generated one. uint8 [H, W, 3] each.
torch::Tensor overlay(const torch::Tensor& generated_u8, const torch::Tensor& original_u8, const torch::Tensor& mask_u8);

}  // namespace kiln::engine::sampling
