#pragma once
// Which model a checkpoint holds, read from its tensor names and shapes (never from the file name).
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "engine/io/families.h"
#include "engine/io/safetensors.h"

namespace kiln::engine {

struct ModelInfo {
  ModelFamily family = ModelFamily::Unknown;
  bool inpainting = false;       // UNet input conv takes 9 channels (latent + mask + masked image)
  int64_t unet_in_channels = 0;  // 4 for ordinary models, 9 for inpainting, 8 for instruct-pix2pix
  std::string layout;            // "single-file" or "diffusers"
  // The side it was trained at when the file says so (ModelSpec "modelspec.resolution", e.g.
  // "64x64" in Kiln Mini); 0: the family's (FamilyTraits::default_size).
  int64_t native_size = 0;
  std::string describe() const;  // "SD1.x (single-file)", "SD1.x inpainting (diffusers)"
};

// A single-file checkpoint (LDM key layout). Throws Error(BadFormat) naming `file` when the tensors
// are not a full model at all (a LoRA, an embedding, a VAE or one diffusers component on its own),
// saying what the file appears to be instead.
ModelInfo detect_single_file(const std::vector<TensorInfo>& tensors, const std::string& file);

// The short side of a ModelSpec resolution ("64x64", "1024x768"); 0 for anything else.
int64_t native_size_from_modelspec(const std::string& resolution);

// A diffusers folder: model_index.json, the UNet tensors and the text encoder's config.json
// (an empty object when absent), and whether a second text encoder folder exists.
ModelInfo detect_diffusers(const nlohmann::json& model_index, const std::vector<TensorInfo>& unet_tensors,
                           const nlohmann::json& text_encoder_config, bool has_text_encoder_2);

}  // namespace kiln::engine
