#include "engine/models/stable_diffusion.h"

#include <torch/torch.h>

#include "engine/io/safetensors.h"

namespace kiln::engine::models {

StableDiffusion StableDiffusion::load(const WeightView& text_encoder, const WeightView& unet, const WeightView& vae,
                                      const DeviceChoice& device) {
  StableDiffusion sd;
  sd.device = device;
  sd.text_encoder = load_clip_text(text_encoder, device);
  sd.unet = load_unet(unet, device);
  sd.vae = load_vae(vae, device);
  return sd;
}

StableDiffusion StableDiffusion::load_single_file(const std::filesystem::path& path, const DeviceChoice& device) {
  auto file = SafeTensorsFile::open(path);
  return load(view_of_safetensors(file, "cond_stage_model.transformer.", "text encoder"),
              view_of_safetensors(file, "model.diffusion_model.", "UNet"),
              view_of_safetensors(file, "first_stage_model.", "VAE"), device);
}

StableDiffusion make_sd15_random(const DeviceChoice& device, uint64_t seed) {
  const auto options = parameter_options(device);
  StableDiffusion sd;
  sd.device = device;
  sd.text_encoder = ClipTextModel(ClipTextConfig::sd15(), options);
  sd.unet = UNetModel(UNetConfig::sd15(), options);
  sd.vae = AutoencoderKL(VaeConfig::sd15(), options);
  randomize_weights(*sd.text_encoder, seed);
  randomize_weights(*sd.unet, seed + 1);
  randomize_weights(*sd.vae, seed + 2);
  sd.text_encoder->eval();
  sd.unet->eval();
  sd.vae->eval();
  return sd;
}

}  // namespace kiln::engine::models
