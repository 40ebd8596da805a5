#pragma once
// Stable Diffusion checkpoints as users have them:
//   * a single .safetensors file in the original (LDM / A1111 / Civitai) layout, with the prefixes
//     "model.diffusion_model." (UNet), "first_stage_model." (VAE) and the family's text encoder
//     prefixes (families.h: SD1.x "cond_stage_model.transformer."; SDXL
//     "conditioner.embedders.0.transformer." and the OpenCLIP "conditioner.embedders.1.model.");
//     other tensors (EMA copies, scheduler buffers) are ignored;
//   * a diffusers folder: model_index.json, unet/diffusion_pytorch_model.safetensors,
//     vae/diffusion_pytorch_model.safetensors, text_encoder/model.safetensors (and for SDXL
//     text_encoder_2/) (".fp16.safetensors" variants and sharded "*.safetensors.index.json"
//     accepted; full precision preferred).
// Either way each component comes out as a WeightSource under the LDM names (see weight_source.h),
// memory-mapped: opening reads only headers and configs.
//
// Pickled .ckpt/.pt/.bin files are refused, never unpickled: unpickling can run arbitrary code.
#include <filesystem>
#include <memory>
#include <vector>

#include "engine/io/model_family.h"
#include "engine/io/weight_source.h"

namespace kiln::engine {

class Checkpoint {
 public:
  // Opens an SD1.x or SDXL checkpoint: a .safetensors file, a diffusers folder, or that folder's
  // model_index.json. Throws Error with a message naming the file and what to do:
  //   NotFound     the path or a component (e.g. the diffusers vae/ folder) is missing
  //   BadFormat    corrupt or truncated, or not a checkpoint at all (a LoRA, a VAE on its own, ...)
  //   Unsupported  a pickled file, or a model family Kiln cannot run yet (SD2.x, instruct-pix2pix)
  static std::shared_ptr<const Checkpoint> open(const std::filesystem::path& path);

  // What `path` holds, whatever the family; reads headers only. Throws as open() does, except that
  // a recognised but unsupported family is reported, not refused.
  static ModelInfo inspect(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const ModelInfo& info() const { return info_; }
  const WeightSource& unet() const { return *unet_; }
  const WeightSource& vae() const { return *vae_; }
  const WeightSource& text_encoder() const { return *text_encoders_.front(); }
  // Every text encoder of the family's row (SD1.x one, SDXL two), under Hugging Face CLIP names;
  // SDXL's OpenCLIP ViT-bigG is renamed and its fused in_proj split (key_map.h) on the way.
  const std::vector<std::unique_ptr<WeightSource>>& text_encoders() const { return text_encoders_; }

  struct Parts;  // what the readers in checkpoint.cpp assemble
  ~Checkpoint();

 private:
  explicit Checkpoint(Parts parts);
  std::filesystem::path path_;
  ModelInfo info_;
  std::unique_ptr<WeightSource> unet_, vae_;
  std::vector<std::unique_ptr<WeightSource>> text_encoders_;
};

}  // namespace kiln::engine
