#pragma once
// kohya-format LoRA files (what A1111, ComfyUI and Civitai use for SD1.x): per module
//   <name>.lora_down.weight  [r, in] or [r, in, kh, kw]
//   <name>.lora_up.weight    [out, r] or [out, r, 1, 1]
//   <name>.alpha             scalar; absent → alpha = r (scale 1)
// with <name> = "lora_unet_…" / "lora_te_…" (see targets.h) and kohya's "ss_*" training metadata.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include "engine/io/model_family.h"

namespace kiln::engine::lora {

struct LoraModuleWeights {
  std::string name;    // "lora_unet_down_blocks_0_attentions_0_proj_in"
  torch::Tensor down;  // as stored (CPU, file dtype)
  torch::Tensor up;
  double alpha = 0;    // the file's alpha, or the rank when the file has none
  bool has_alpha = false;

  int64_t rank() const { return down.size(0); }
  bool is_conv() const { return down.dim() == 4; }
  bool is_conv3x3() const { return down.dim() == 4 && (down.size(2) > 1 || down.size(3) > 1); }
};

struct LoraFile {
  std::filesystem::path path;                  // empty for in-memory files
  std::map<std::string, std::string> metadata;  // "__metadata__"
  std::vector<LoraModuleWeights> modules;       // sorted by name
  std::vector<std::string> stray_keys;          // tensors that belong to no LoRA module
  ModelFamily family = ModelFamily::Unknown;    // inferred from names and widths

  // Throws Error: NotFound; BadFormat (not safetensors, an up without its down, ranks that
  // disagree); Unsupported (a LyCORIS LoHa/LoKr/OFT, DoRA or Tucker file, a diffusers/PEFT-format
  // file, or pickled .pt/.ckpt), each saying what the file is.
  static LoraFile read(const std::filesystem::path& path);
  static LoraFile from_tensors(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                               std::map<std::string, std::string> metadata, const std::string& display_name);
};

// What the LoRA library shows about a file; reads the header and the alpha scalars only.
struct LoraInfo {
  std::filesystem::path path;
  uint64_t file_size = 0;
  ModelFamily family = ModelFamily::Unknown;
  std::string base_model_version;  // ss_base_model_version, else inferred ("sd_v1", "sd_v2", "sdxl_base_v1-0")
  int64_t rank = 0;                // the most common rank of Linear / 1×1 modules (kohya network_dim)
  double alpha = 0;                // the most common alpha of those
  int64_t conv_rank = 0;           // the same for 3×3 modules (kohya conv_dim); 0 without
  double conv_alpha = 0;
  bool has_conv = false;           // has 3×3 (LoCon) modules
  int64_t text_encoder_modules = 0, unet_modules = 0, conv_modules = 0;
  std::string title;               // modelspec.title, ss_output_name, else the file name
  std::string model_hash;          // sshs_model_hash (sd-webui-additional-networks), when the file has it
  std::string legacy_hash;         // sshs_legacy_hash
  std::map<std::string, std::string> metadata;           // every metadata entry
  std::vector<std::pair<std::string, int64_t>> tags;     // ss_tag_frequency summed over folders, most used first
  std::vector<std::string> trigger_words;  // kohya folder names "<repeats>_<trigger>", then tags on every image
};

LoraInfo read_lora_info(const std::filesystem::path& path);
nlohmann::json to_json(const LoraInfo& info);

// The family a set of LoRA tensor names and shapes belongs to (SDXL: lora_te1_/lora_te2_ or a
// 2048-wide cross-attention; SD2.x: 1024-wide text encoder or context; SD1.x: 768).
ModelFamily lora_family(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes);

}  // namespace kiln::engine::lora
