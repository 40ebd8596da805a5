#pragma once
// The layers of a model that LoRA modules can attach to, under kohya's names ('.' → '_'):
//   SD1.x  "lora_te_" + the Hugging Face CLIP path, "lora_unet_" + the diffusers module path;
//   SDXL   "lora_te1_" / "lora_te2_" + the Hugging Face CLIP paths of both encoders (kohya loads
//          OpenCLIP bigG as CLIPTextModelWithProjection), "lora_unet_" + the SGM (LDM) module path,
//          as kohya's sdxl_original_unet names it.
// Each layer also answers to the other UNet naming (some converters write it). The engine's
// modules carry LDM names; io/key_map.h translates them.
#include <optional>
#include <string>
#include <vector>

#include "engine/models/layers.h"
#include "engine/models/stable_diffusion.h"

namespace kiln::engine::lora {

enum class Component { TextEncoder, UNet };
const char* to_string(Component c);  // "text encoder", "UNet"

struct LoraLayer {
  std::string kohya_name;      // what kohya writes: SD1 "lora_unet_down_blocks_0_attentions_0_proj_in"
  std::string ldm_kohya_name;  // the other UNet naming ("lora_unet_input_blocks_1_1_proj_in" for SD1;
                               // the diffusers one for SDXL); TE: same as kohya_name
  std::string path;            // the engine's module path: "input_blocks.1.1.proj_in"
  std::string diffusers_path;  // "down_blocks.0.attentions.0.proj_in"; TE: the HF path
  Component component = Component::UNet;
  models::Linear linear{nullptr};  // exactly one of linear / conv is set
  models::Conv2d conv{nullptr};
  int64_t in = 0, out = 0;
  int64_t kernel = 1, stride = 1, padding = 0;  // conv only

  bool is_conv() const { return !conv.is_empty(); }
  bool is_conv3x3() const { return is_conv() && kernel > 1; }
  models::Adaptable& adaptable() const;
  const torch::Tensor& weight() const;
};

// Every Linear and Conv2d of the text encoder(s), then of the UNet, in module order.
std::vector<LoraLayer> lora_layers(const models::StableDiffusion& model);

// kohya's default targets (networks/lora.py create_modules) for a layer:
//   UNet inside a Transformer2DModel: every Linear and 1×1 conv (proj_in/out, attn1/attn2
//     to_q/k/v/out.0, ff.net.0.proj, ff.net.2) at the linear rank;
//   with conv_dim, also inside ResnetBlock2D / Downsample2D / Upsample2D: 3×3 convs at the conv
//     rank, Linear (time_emb_proj) and 1×1 convs (conv_shortcut) at the linear rank;
//   text encoder CLIPAttention / CLIPMLP: q/k/v/out_proj, fc1, fc2.
enum class TargetRank { None, Linear, Conv };
TargetRank kohya_default_target(const LoraLayer& layer, bool with_conv);

}  // namespace kiln::engine::lora
