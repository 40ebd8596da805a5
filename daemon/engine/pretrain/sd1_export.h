#pragma once
// Kiln Mini as one single-file SD1.x checkpoint (the LDM layout that A1111, ComfyUI and diffusers'
// from_single_file read): "model.diffusion_model.*" (UNet), "first_stage_model.*" (VAE),
// "cond_stage_model.transformer.text_model.*" (CLIP text encoder) plus its position_ids buffer,
// float16 by default.
//
// The latent scale: SD1.x files do not record the VAE's scaling factor; every SD1.x loader
// (Kiln's families.h included) assumes 0.18215. So the trained VAE is rescaled before export
// (rescale_latents) until its latent means have a std of 1/0.18215 ≈ 5.49, and the standard factor
// then gives the UNet unit-variance latents, exactly as with SD's own VAE.
#include <filesystem>
#include <map>
#include <string>

#include "engine/models/clip_text.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"
#include "engine/pretrain/train_state.h"

namespace kiln::engine::pretrain {

constexpr double kSd1LatentScale = 0.18215;

// The std of the VAE's posterior means over `images` [B, 3, H, W] in [-1, 1].
double latent_std(const models::AutoencoderKL& vae, const torch::Tensor& images);

// Multiplies the latent by `factor` without changing what the autoencoder does: the mean rows of
// quant_conv by factor (its log-variance rows' bias by 2·ln factor) and post_quant_conv's input
// weights by 1/factor. Encode → decode gives the same images; only the latent's scale changes.
void rescale_latents(models::AutoencoderKL& vae, double factor);

// The three networks' parameters under the LDM single-file names, converted to `dtype`.
NamedTensors sd1_checkpoint_tensors(const models::ClipTextModel& text_encoder, const models::UNetModel& unet,
                                    const models::AutoencoderKL& vae, torch::Dtype dtype = torch::kFloat16);

// Writes them (atomically) as one .safetensors file with `metadata` in its header.
void save_sd1_checkpoint(const std::filesystem::path& path, const models::ClipTextModel& text_encoder,
                         const models::UNetModel& unet, const models::AutoencoderKL& vae,
                         const std::map<std::string, std::string>& metadata = {},
                         torch::Dtype dtype = torch::kFloat16);

}  // namespace kiln::engine::pretrain
