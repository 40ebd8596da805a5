#include "engine/io/model_family.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace kiln::engine {

namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }
bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

bool any_starts_with(const std::vector<TensorInfo>& tensors, const char* prefix) {
  for (const auto& t : tensors)
    if (starts_with(t.name, prefix)) return true;
  return false;
}

const TensorInfo* find(const std::vector<TensorInfo>& tensors, const std::string& name) {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

// Input channels of a conv weight [out, in, kh, kw]; 0 when absent or not a conv.
int64_t in_channels(const std::vector<TensorInfo>& tensors, const std::string& name) {
  const TensorInfo* t = find(tensors, name);
  return t && t->shape.size() == 4 ? t->shape[1] : 0;
}

// For a file with no full model in it: what it most likely is, as "a LoRA" etc.
std::string what_else(const std::vector<TensorInfo>& tensors) {
  bool lora = false, embedding = false, controlnet = false, vae = false, diffusers_unet = false, text_encoder = false;
  for (const auto& t : tensors) {
    const std::string& n = t.name;
    lora = lora || starts_with(n, "lora_") || contains(n, ".lora_down.") || contains(n, ".lora_up.") ||
           contains(n, ".lora_A.") || contains(n, ".lora_B.") || contains(n, ".hada_w") || contains(n, ".lokr_w");
    embedding = embedding || n == "emb_params" || starts_with(n, "string_to_param") || n == "clip_l" || n == "clip_g";
    controlnet = controlnet || starts_with(n, "control_model.") || contains(n, "input_hint_block") ||
                 starts_with(n, "controlnet_");
    vae = vae || starts_with(n, "encoder.down") || starts_with(n, "decoder.up") || starts_with(n, "first_stage_model.");
    diffusers_unet = diffusers_unet || starts_with(n, "down_blocks.") || starts_with(n, "mid_block.");
    text_encoder = text_encoder || starts_with(n, "text_model.") || starts_with(n, "cond_stage_model.");
  }
  if (lora) return "a LoRA (add it under LoRAs, not as a model)";
  if (embedding) return "a textual-inversion embedding, not a model";
  if (controlnet) return "a ControlNet, not a model";
  if (diffusers_unet) return "a single diffusers UNet file (open the diffusers folder that holds model_index.json instead)";
  if (vae) return "a VAE on its own, not a full model";
  if (text_encoder) return "a text encoder on its own, not a full model";
  if (tensors.empty()) return "an empty safetensors file";
  return "not a Stable Diffusion model";
}

}  // namespace

int64_t native_size_from_modelspec(const std::string& resolution) {
  const auto x = resolution.find('x');
  if (x == std::string::npos || x == 0 || x + 1 >= resolution.size() || resolution.size() > 12) return 0;
  int64_t side[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    const std::string part = k == 0 ? resolution.substr(0, x) : resolution.substr(x + 1);
    for (char ch : part)
      if (ch < '0' || ch > '9') return 0;
    side[k] = std::stoll(part);
  }
  const int64_t s = std::min(side[0], side[1]);
  return s >= 8 && s <= 16384 ? s : 0;
}

std::string ModelInfo::describe() const {
  std::string s = to_string(family);
  if (inpainting) s += " inpainting";
  else if (unet_in_channels != 0 && unet_in_channels != 4) s += " (" + std::to_string(unet_in_channels) + "-channel UNet input)";
  return s + " (" + layout + ")";
}

ModelInfo detect_single_file(const std::vector<TensorInfo>& tensors, const std::string& file) {
  ModelInfo info;
  info.layout = "single-file";
  const bool has_unet = any_starts_with(tensors, "model.diffusion_model.");
  if (!has_unet)
    throw Error(ErrorKind::BadFormat, "'" + file + "' is not a Stable Diffusion checkpoint: it looks like " +
                                          what_else(tensors) + ".");

  info.unet_in_channels = in_channels(tensors, "model.diffusion_model.input_blocks.0.0.weight");
  info.inpainting = info.unet_in_channels == 9;
  if (any_starts_with(tensors, "conditioner.embedders.") || any_starts_with(tensors, "model.diffusion_model.label_emb."))
    info.family = ModelFamily::SDXL;
  else if (any_starts_with(tensors, "cond_stage_model.model."))  // OpenCLIP ViT-H
    info.family = ModelFamily::SD2;
  else if (info.unet_in_channels != 0 && any_starts_with(tensors, "cond_stage_model.transformer."))  // HF CLIP
    info.family = ModelFamily::SD1;
  // Otherwise Unknown: a diffusion model without an SD-style UNet or text encoder (SD3, Flux, ...).
  return info;
}

ModelInfo detect_diffusers(const nlohmann::json& model_index, const std::vector<TensorInfo>& unet_tensors,
                           const nlohmann::json& text_encoder_config, bool has_text_encoder_2) {
  ModelInfo info;
  info.layout = "diffusers";
  info.unet_in_channels = in_channels(unet_tensors, "conv_in.weight");
  info.inpainting = info.unet_in_channels == 9;

  const std::string pipeline = model_index.is_object() ? model_index.value("_class_name", "") : "";
  const std::string activation = text_encoder_config.is_object() ? text_encoder_config.value("hidden_act", "") : "";
  const TensorInfo* proj_in = find(unet_tensors, "down_blocks.0.attentions.0.proj_in.weight");

  if (has_text_encoder_2 || contains(pipeline, "XL") || any_starts_with(unet_tensors, "add_embedding."))
    info.family = ModelFamily::SDXL;
  else if (activation == "gelu" || (proj_in && proj_in->shape.size() == 2))  // OpenCLIP text tower; linear proj_in
    info.family = ModelFamily::SD2;
  else if (info.unet_in_channels != 0 && proj_in)
    info.family = ModelFamily::SD1;
  return info;
}

}  // namespace kiln::engine
