#include "engine/sampling/denoiser.h"

#include <torch/torch.h>

#include <cmath>

#include "engine/error.h"

namespace kiln::engine::sampling {

namespace {
torch::Tensor to_batch(torch::Tensor c, int64_t batch, const char* what) {
  if (!c.defined()) throw Error(ErrorKind::InvalidArgument, std::string("the ") + what + " conditioning is missing");
  if (c.dim() == 2) c = c.unsqueeze(0);
  if (c.dim() != 3 || (c.size(0) != 1 && c.size(0) != batch))
    throw Error(
        ErrorKind::InvalidArgument,
        std::string("the ") + what + " conditioning must have shape [tokens, channels] or [batch, tokens, channels]");
  return c.size(0) == batch ? c : c.expand({batch, c.size(1), c.size(2)});
}

// y [adm] or [B or 1, adm] → [B, adm]; undefined stays undefined.
torch::Tensor vector_batch(torch::Tensor y, int64_t batch, const char* what) {
  if (!y.defined()) return y;
  if (y.dim() == 1) y = y.unsqueeze(0);
  if (y.dim() != 2 || (y.size(0) != 1 && y.size(0) != batch))
    throw Error(ErrorKind::InvalidArgument, std::string("the ") + what + " vector must have shape [width] or [batch, width]");
  return y.size(0) == batch ? y : y.expand({batch, y.size(1)});
}

// Appends copies of `chunk` [77, C] to `c` [B, T, C].
torch::Tensor pad_with(const torch::Tensor& c, const torch::Tensor& chunk, int64_t repeats) {
  const auto block = chunk.reshape({1, -1, c.size(2)}).to(c.device(), c.scalar_type());
  return torch::cat({c, block.repeat({c.size(0), repeats, 1})}, 1);
}
}  // namespace

CfgDenoiser::CfgDenoiser(models::UNetModel unet, const DiscreteSchedule& schedule, const Conditioning& g,
                         double cfg_scale, int64_t batch)
    : unet_(std::move(unet)), schedule_(schedule), cfg_scale_(cfg_scale) {
  const auto device = unet_->device();
  const auto dtype = unet_->dtype();
  cond_ = to_batch(g.cond, batch, "prompt").to(device, dtype);
  uncond_ = to_batch(g.uncond, batch, "negative prompt").to(device, dtype);
  if (cond_.size(2) != unet_->config().context_dim || uncond_.size(2) != unet_->config().context_dim)
    throw Error(ErrorKind::InvalidArgument,
                "the conditioning is " + std::to_string(cond_.size(2)) + " wide but this UNet expects " +
                    std::to_string(unet_->config().context_dim) + "; it was made by a different text encoder");
  const int64_t adm = unet_->config().adm_in_channels;
  if ((adm > 0) != (g.cond_vector.defined() && g.uncond_vector.defined()))
    throw Error(ErrorKind::InvalidArgument, adm > 0 ? "this SDXL UNet needs the prompt's size-and-pooled-text vectors"
                                                    : "this UNet takes no conditioning vector (that is SDXL's)");
  if (adm > 0) {
    cond_y_ = vector_batch(g.cond_vector, batch, "prompt").to(device, dtype);
    uncond_y_ = vector_batch(g.uncond_vector, batch, "negative prompt").to(device, dtype);
    if (cond_y_.size(1) != adm || uncond_y_.size(1) != adm)
      throw Error(ErrorKind::InvalidArgument, "the conditioning vector is " + std::to_string(cond_y_.size(1)) +
                                                  " wide but this UNet expects " + std::to_string(adm));
  }
  if (g.pad_chunk.defined() && cond_.size(1) != uncond_.size(1)) {
    const int64_t chunk = g.pad_chunk.numel() / cond_.size(2);
    const int64_t repeats = (cond_.size(1) - uncond_.size(1)) / chunk;
    if (repeats > 0) uncond_ = pad_with(uncond_, g.pad_chunk, repeats);
    if (repeats < 0) cond_ = pad_with(cond_, g.pad_chunk, -repeats);
  }
}

void CfgDenoiser::set_blend(torch::Tensor init_latent, torch::Tensor keep_mask) {
  init_ = std::move(init_latent);
  keep_ = std::move(keep_mask);
  repaint_ = 1 - keep_;
}

void CfgDenoiser::set_image_conditioning(const torch::Tensor& image_conditioning) {
  const int64_t expected = unet_->config().in_channels - unet_->config().out_channels;
  if (!image_conditioning.defined() || image_conditioning.dim() != 4 || image_conditioning.size(1) != expected)
    throw Error(ErrorKind::InvalidArgument, "this UNet takes " + std::to_string(expected) +
                                                " channels of image conditioning besides the latent");
  image_conditioning_ = image_conditioning.to(unet_->device(), unet_->dtype());
}

std::pair<torch::Tensor, torch::Tensor> CfgDenoiser::both(const torch::Tensor& x_in, double t) const {
  const int64_t B = x_in.size(0);
  auto x = x_in.to(unet_->dtype());
  if (image_conditioning_.defined())
    x = torch::cat({x, image_conditioning_.expand({B, -1, -1, -1})}, 1);
  else if (unet_->config().in_channels != x.size(1))
    throw Error(ErrorKind::InvalidArgument, "this UNet takes " + std::to_string(unet_->config().in_channels) +
                                                " input channels; an inpainting model needs its image conditioning");
  const auto ts = torch::full({1}, t, torch::kFloat32);
  const torch::Tensor y = cond_y_.defined() ? torch::cat({cond_y_, uncond_y_}) : torch::Tensor();
  if (cond_.size(1) == uncond_.size(1)) {
    const auto eps = unet_->forward(torch::cat({x, x}), ts, torch::cat({cond_, uncond_}), y).to(torch::kFloat32);
    return {eps.narrow(0, 0, B), eps.narrow(0, B, B)};
  }
  return {unet_->forward(x, ts, cond_, cond_y_).to(torch::kFloat32),
          unet_->forward(x, ts, uncond_, uncond_y_).to(torch::kFloat32)};
}

torch::Tensor CfgDenoiser::denoise(const torch::Tensor& x, double sigma) const {
  const auto s = torch::full({1}, sigma, torch::kFloat32);
  const double c_in = (1 / (s * s + 1).pow(0.5)).item<double>();
  const double t = schedule_.sigma_to_t(s).item<double>();
  const auto [eps_c, eps_u] = both(x * c_in, t);
  const auto d_c = x + eps_c * -sigma;
  const auto d_u = x + eps_u * -sigma;
  auto denoised = d_u + (d_c - d_u) * cfg_scale_;
  if (keep_.defined()) denoised = denoised * repaint_ + init_ * keep_;
  return denoised;
}

torch::Tensor CfgDenoiser::eps(const torch::Tensor& x, double t) const {
  const auto [eps_c, eps_u] = both(x, t);
  return eps_u + (eps_c - eps_u) * cfg_scale_;
}

}  // namespace kiln::engine::sampling
