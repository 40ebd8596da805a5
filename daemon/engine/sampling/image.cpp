#include "engine/sampling/image.h"

#include <torch/torch.h>

#include "engine/error.h"

namespace kiln::engine::sampling {

torch::Tensor image_to_model(const torch::Tensor& rgb) {
  if (rgb.dim() != 3 || rgb.size(2) != 3 || rgb.scalar_type() != torch::kUInt8)
    throw Error(ErrorKind::InvalidArgument, "an input image must be RGB bytes of shape [height, width, 3]");
  return (rgb.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32) / 255) * 2 - 1;
}

torch::Tensor model_to_image(const torch::Tensor& x, Quantize quantize) {
  auto img = (x.dim() == 4 ? x.squeeze(0) : x).to(torch::kCPU, torch::kFloat32);
  if (quantize == Quantize::Truncate) {
    img = ((img + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0;  // the uint8 cast truncates
  } else {
    img = (img / 2 + 0.5).clamp(0, 1).mul(255).round();
  }
  return img.permute({1, 2, 0}).to(torch::kUInt8).contiguous();
}

torch::Tensor latent_preview(const torch::Tensor& latent) {
  // Per-channel RGB contributions of the four SD1.x latent channels (the widely used "cheap
  // approximation" factors).
  static const float factors[4][3] = {
      {0.298f, 0.207f, 0.208f}, {0.187f, 0.286f, 0.173f}, {-0.158f, 0.189f, 0.264f}, {-0.184f, -0.271f, -0.473f}};
  const auto lat = (latent.dim() == 4 ? latent[0] : latent).to(torch::kCPU, torch::kFloat32);
  const auto m = torch::from_blob(const_cast<float*>(&factors[0][0]), {4, 3}, torch::kFloat32);
  const auto rgb = torch::einsum("chw,cr->rhw", {lat, m});
  return model_to_image(rgb, Quantize::Truncate);
}

}  // namespace kiln::engine::sampling
