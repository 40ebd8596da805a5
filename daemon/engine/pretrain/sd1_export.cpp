#include "engine/pretrain/sd1_export.h"

#include <torch/torch.h>

#include <cmath>

#include "engine/error.h"
#include "engine/io/safetensors.h"

namespace kiln::engine::pretrain {

double latent_std(const models::AutoencoderKL& vae, const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  return vae->encode(images.to(vae->dtype())).mean.to(torch::kFloat32).std().item<double>();
}

void rescale_latents(models::AutoencoderKL& vae, double factor) {
  if (!(factor > 0) || !std::isfinite(factor))
    throw Error(ErrorKind::InvalidArgument, "the latent rescale factor must be positive and finite");
  torch::NoGradGuard no_grad;
  auto params = vae->named_parameters(/*recurse=*/true);
  auto* qw = params.find("quant_conv.weight");
  auto* qb = params.find("quant_conv.bias");
  auto* pw = params.find("post_quant_conv.weight");
  if (!qw || !qb || !pw) throw Error(ErrorKind::Internal, "the VAE has no quant_conv / post_quant_conv");
  const int64_t z = vae->config().embed_dim;
  qw->narrow(0, 0, z).mul_(factor);            // mean rows
  qb->narrow(0, 0, z).mul_(factor);
  qb->narrow(0, z, z).add_(2.0 * std::log(factor));  // log-variance rows: var scales by factor²
  pw->mul_(1.0 / factor);                      // [out, in, 1, 1]: every input channel
}

NamedTensors sd1_checkpoint_tensors(const models::ClipTextModel& text_encoder, const models::UNetModel& unet,
                                    const models::AutoencoderKL& vae, torch::Dtype dtype) {
  NamedTensors out;
  const auto add = [&](const torch::nn::Module& m, const std::string& prefix) {
    for (const auto& p : m.named_parameters(/*recurse=*/true))
      out.emplace_back(prefix + p.key(), p.value().detach().to(torch::kCPU).to(dtype).contiguous());
  };
  add(*unet, "model.diffusion_model.");
  add(*vae, "first_stage_model.");
  add(*text_encoder, "cond_stage_model.transformer.");
  // The buffer SD1.x files carry (int64, as in SD's own v1-5 file): older CLIP loaders expect it.
  out.emplace_back("cond_stage_model.transformer.text_model.embeddings.position_ids",
                   torch::arange(text_encoder->config().max_positions, torch::kInt64).view({1, -1}));
  return out;
}

void save_sd1_checkpoint(const std::filesystem::path& path, const models::ClipTextModel& text_encoder,
                         const models::UNetModel& unet, const models::AutoencoderKL& vae,
                         const std::map<std::string, std::string>& metadata, torch::Dtype dtype) {
  save_safetensors(path, sd1_checkpoint_tensors(text_encoder, unet, vae, dtype), metadata);
}

}  // namespace kiln::engine::pretrain
