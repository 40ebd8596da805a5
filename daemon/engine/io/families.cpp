#include "engine/io/families.h"

namespace kiln::engine {

namespace {

// OpenAI CLIP's BOS/EOS ids; "!" (0) is what OpenCLIP's tokenizer pads with.
constexpr int64_t kEos = 49407;

FamilyTraits sd1() {
  FamilyTraits t;
  t.family = ModelFamily::SD1;
  t.text_encoders = {{"cond_stage_model.transformer.", false, "text_encoder", "lora_te_", ClipActivation::ByWidth, kEos}};
  return t;  // every other value is the struct's default: SD1.x is the reference row
}

// SDXL 1.0 (and Pony, Illustrious and the other models built on it): generative-models' layout
// (sgm GeneralConditioner: CLIP ViT-L in Hugging Face names, OpenCLIP ViT-bigG in OpenCLIP's own),
// A1111's sd_models_xl.py conditioning, diffusers' VAE config (scaling_factor 0.13025,
// force_upcast), kohya's sdxl_train_network.py names and metadata.
FamilyTraits sdxl() {
  FamilyTraits t;
  t.family = ModelFamily::SDXL;
  t.text_encoders = {
      {"conditioner.embedders.0.transformer.", false, "text_encoder", "lora_te1_", ClipActivation::QuickGelu, kEos},
      {"conditioner.embedders.1.model.", true, "text_encoder_2", "lora_te2_", ClipActivation::Gelu, 0},
  };
  t.size_conditioning = true;
  t.clip_skip = false;
  t.latent_scale = 0.13025;
  t.vae_in_float32 = true;
  t.default_size = 1024;
  t.kohya_unet_ldm_names = true;
  t.kohya_base_model_version = "sdxl_base_v1-0";
  t.modelspec_architecture = "stable-diffusion-xl-v1-base/lora";
  t.modelspec_implementation = "https://github.com/Stability-AI/generative-models";
  t.train_text_encoder = false;
  t.gradient_checkpointing = true;
  t.train_memory_scale = 4.0;  // four times the pixels of 512², and a UNet three times as large
  return t;
}

}  // namespace

const char* to_string(ModelFamily family) {
  switch (family) {
    case ModelFamily::SD1: return "SD1.x";
    case ModelFamily::SD2: return "SD2.x";
    case ModelFamily::SDXL: return "SDXL";
    case ModelFamily::Unknown: return "unknown";
  }
  return "unknown";
}

ModelFamily family_from_string(const std::string& name) {
  for (ModelFamily f : {ModelFamily::SD1, ModelFamily::SD2, ModelFamily::SDXL})
    if (name == to_string(f)) return f;
  return ModelFamily::Unknown;
}

const FamilyTraits& family_traits(ModelFamily family) {
  static const FamilyTraits kSd1 = sd1(), kSdxl = sdxl();
  return family == ModelFamily::SDXL ? kSdxl : kSd1;
}

}  // namespace kiln::engine
