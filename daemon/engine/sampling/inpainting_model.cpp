#include "engine/sampling/inpainting_model.h"

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/sampling/mask.h"

namespace kiln::engine::sampling {

namespace {
torch::Tensor encode(const models::StableDiffusion& model, const torch::Tensor& image) {
  return (model.vae->encode(image).mean.to(torch::kFloat32) * model.latent_scale()).to(model.unet->device());
}
}  // namespace

torch::Tensor inpainting_conditioning(const models::StableDiffusion& model, const torch::Tensor& source,
                                      const torch::Tensor& mask_u8, double mask_weight, int64_t height, int64_t width) {
  if (height % 8 || width % 8) throw Error(ErrorKind::InvalidArgument, "the image size must be a multiple of 8");
  const int64_t h = height / 8, w = width / 8;
  const auto device = model.unet->device();
  if (!source.defined()) {
    // A1111 txt2img_image_conditioning: ones·0.5 through images_tensor_to_samples (2x − 1 = 0),
    // then a mask channel of 1.0 in front.
    const auto grey = encode(model, torch::zeros({1, 3, height, width}, torch::kFloat32));
    return torch::cat({torch::ones({1, 1, h, w}, grey.options()), grey}, 1);
  }
  if (source.dim() != 4 || source.size(2) != height || source.size(3) != width)
    throw Error(ErrorKind::InvalidArgument, "the source image must be [1, 3, height, width]");
  const auto full_mask = mask_u8.defined() ? conditioning_mask(mask_u8).to(source.device())
                                           : torch::ones({1, 1, height, width}, source.options());
  // Contiguous, as the reference encodes it: a grey image is flat, and the VAE's GroupNorms amplify
  // the rounding of another memory layout's summation order.
  const auto masked = torch::lerp(source, source * (1 - full_mask), mask_weight).contiguous();
  const auto latent = encode(model, masked);
  // F.interpolate(mask, size=(h, w)) in its default nearest mode: pixel [8i, 8j].
  const auto latent_mask = full_mask.index({torch::indexing::Slice(), torch::indexing::Slice(),
                                            torch::indexing::Slice(torch::indexing::None, torch::indexing::None, 8),
                                            torch::indexing::Slice(torch::indexing::None, torch::indexing::None, 8)});
  return torch::cat({latent_mask.to(device, torch::kFloat32), latent}, 1);
}

}  // namespace kiln::engine::sampling
