#include "engine/models/stable_diffusion.h"

#include <torch/torch.h>

#include "engine/io/checkpoint.h"

namespace kiln::engine::models {

StableDiffusion StableDiffusion::load(const WeightView& text_encoder, const WeightView& unet, const WeightView& vae,
                                      const DeviceChoice& device) {
  if (device.device.is_cpu()) use_all_cpu_cores();
  StableDiffusion sd;
  sd.device = device;
  sd.text_encoder = load_clip_text(text_encoder, device);
  sd.unet = load_unet(unet, device);
  sd.vae = load_vae(vae, device);
  return sd;
}

StableDiffusion StableDiffusion::load(const Checkpoint& checkpoint, const DeviceChoice& device) {
  const auto& te = checkpoint.text_encoder();
  const auto& unet = checkpoint.unet();
  const auto& vae = checkpoint.vae();
  return load(WeightView::of(te, te.component()), WeightView::of(unet, unet.component()),
              WeightView::of(vae, vae.component()), device);
}

StableDiffusion StableDiffusion::open(const std::filesystem::path& path, const DeviceChoice& device) {
  return load(*Checkpoint::open(path), device);
}

StableDiffusion make_sd15_random(const DeviceChoice& device, uint64_t seed) {
  if (device.device.is_cpu()) use_all_cpu_cores();
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
