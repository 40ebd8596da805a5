#include "engine/models/stable_diffusion.h"

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/io/checkpoint.h"

namespace kiln::engine::models {

namespace {
// SDXL's VAE overflows in half precision (diffusers force_upcast): it stays in float32 there.
DeviceChoice vae_device(const DeviceChoice& device, const FamilyTraits& family) {
  DeviceChoice d = device;
  if (family.vae_in_float32) d.dtype = torch::kFloat32;
  return d;
}
}  // namespace

StableDiffusion StableDiffusion::load(const std::vector<WeightView>& text_encoders, const WeightView& unet,
                                      const WeightView& vae, const DeviceChoice& device, ModelFamily family) {
  const FamilyTraits& traits = family_traits(family);
  if (text_encoders.size() != traits.text_encoders.size())
    throw Error(ErrorKind::Internal, std::string("a ") + to_string(family) + " model has " +
                                         std::to_string(traits.text_encoders.size()) + " text encoder(s), not " +
                                         std::to_string(text_encoders.size()));
  if (device.device.is_cpu()) use_all_cpu_cores();
  StableDiffusion sd;
  sd.device = device;
  sd.family = traits.family;
  sd.text_encoder = load_clip_text(text_encoders[0], device, traits.text_encoders[0].activation);
  if (text_encoders.size() > 1)
    sd.text_encoder_2 = load_clip_text(text_encoders[1], device, traits.text_encoders[1].activation);
  sd.unet = load_unet(unet, device);
  if (traits.size_conditioning != (sd.unet->config().adm_in_channels > 0))
    throw Error(ErrorKind::BadFormat, std::string("the UNet ") + (traits.size_conditioning ? "lacks" : "has") +
                                          " the size-conditioning input (label_emb) of " + to_string(family) +
                                          " models; the checkpoint mixes model families");
  sd.vae = load_vae(vae, vae_device(device, traits), traits.latent_scale);
  return sd;
}

StableDiffusion StableDiffusion::load(const WeightView& text_encoder, const WeightView& unet, const WeightView& vae,
                                      const DeviceChoice& device) {
  return load(std::vector<WeightView>{text_encoder}, unet, vae, device, ModelFamily::SD1);
}

StableDiffusion StableDiffusion::load(const Checkpoint& checkpoint, const DeviceChoice& device) {
  std::vector<WeightView> text_encoders;
  for (const auto& te : checkpoint.text_encoders()) text_encoders.push_back(WeightView::of(*te, te->component()));
  const auto& unet = checkpoint.unet();
  const auto& vae = checkpoint.vae();
  return load(text_encoders, WeightView::of(unet, unet.component()), WeightView::of(vae, vae.component()), device,
              checkpoint.info().family);
}

StableDiffusion StableDiffusion::open(const std::filesystem::path& path, const DeviceChoice& device) {
  return load(*Checkpoint::open(path), device);
}

std::vector<ClipTextModel> StableDiffusion::text_encoders() const {
  std::vector<ClipTextModel> out{text_encoder};
  if (!text_encoder_2.is_empty()) out.push_back(text_encoder_2);
  return out;
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

StableDiffusion make_sdxl_random(const DeviceChoice& device, uint64_t seed) {
  if (device.device.is_cpu()) use_all_cpu_cores();
  const FamilyTraits& traits = family_traits(ModelFamily::SDXL);
  const auto options = parameter_options(device);
  StableDiffusion sd;
  sd.device = device;
  sd.family = ModelFamily::SDXL;
  sd.text_encoder = ClipTextModel(ClipTextConfig::sd15(), options);
  sd.text_encoder_2 = ClipTextModel(ClipTextConfig::open_clip_bigg(), options);
  sd.unet = UNetModel(UNetConfig::sdxl(), options);
  VaeConfig vae = VaeConfig::sd15();
  vae.scaling_factor = traits.latent_scale;
  sd.vae = AutoencoderKL(vae, parameter_options(vae_device(device, traits)));
  randomize_weights(*sd.text_encoder, seed);
  randomize_weights(*sd.text_encoder_2, seed + 3);
  randomize_weights(*sd.unet, seed + 1);
  randomize_weights(*sd.vae, seed + 2);
  for (torch::nn::Module* m : std::vector<torch::nn::Module*>{sd.text_encoder.get(), sd.text_encoder_2.get(),
                                                              sd.unet.get(), sd.vae.get()})
    m->eval();
  return sd;
}

}  // namespace kiln::engine::models
