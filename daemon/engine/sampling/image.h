#pragma once
// Between pixels and model tensors: uint8 RGB images (HWC, as the service and PNG code hold them)
// and the VAE's float [-1, 1] NCHW images; cheap latent previews.
#include <torch/types.h>

namespace kiln::engine::sampling {

// uint8 [H, W, 3] → float32 [1, 3, H, W]: (u8/255)·2 − 1.
torch::Tensor image_to_model(const torch::Tensor& rgb);

enum class Quantize {
  Truncate,  // A1111: uint8(255·clamp((x+1)/2, 0, 1)), truncated toward zero
  Round,     // diffusers: round(255·clamp(x/2 + 0.5, 0, 1))
};
// float [3, H, W] (or [1, 3, H, W]) → uint8 [H, W, 3] on the CPU.
torch::Tensor model_to_image(const torch::Tensor& x, Quantize quantize = Quantize::Truncate);

// A fast RGB approximation of an SD1.x latent [4, h, w] (a fixed linear map per pixel, no VAE):
// uint8 [h, w, 3] for progress previews.
torch::Tensor latent_preview(const torch::Tensor& latent);

}  // namespace kiln::engine::sampling
