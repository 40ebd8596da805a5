#pragma once
// Model families as a table of differences. Everything that differs between SD1.x and SDXL (which
// text encoders a checkpoint holds and under which names, how a prompt becomes the UNet's
// conditioning, the VAE's latent scale, the natural image size, how kohya names LoRA modules and
// what it writes into their metadata, the training defaults the guides give) is one row here; the
// code reads the row instead of asking "is this SDXL?". Plain C++ (no LibTorch): the service and
// the CLI read it too.
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::engine {

enum class ModelFamily { SD1, SD2, SDXL, Unknown };
const char* to_string(ModelFamily family);  // "SD1.x", "SD2.x", "SDXL", "unknown"
// The inverse of to_string(); Unknown for anything else.
ModelFamily family_from_string(const std::string& name);

// The MLP activation of a CLIP text tower. Shapes cannot tell them apart, so the family says.
enum class ClipActivation {
  ByWidth,    // SD1.x files: quick_gelu, except the 1024-wide OpenCLIP ViT-H of SD2.x (gelu)
  QuickGelu,  // OpenAI CLIP (x·sigmoid(1.702x))
  Gelu,       // OpenCLIP (exact, erf)
};

// One text encoder of a family: where its weights are and how the conditioning drives it.
struct TextEncoderSlot {
  const char* single_file_prefix;  // its tensors in a single-file checkpoint
  bool open_clip_names;            // stored as an OpenCLIP state dict (fused attn.in_proj, x @ text_projection)
  const char* diffusers_folder;    // "text_encoder", "text_encoder_2"
  const char* kohya_prefix;        // LoRA module names: "lora_te_", "lora_te1_", "lora_te2_"
  ClipActivation activation;
  int64_t pad_id;                  // what follows the first EOS in its 77 ids: EOS (49407) or "!" (0)
};

struct FamilyTraits {
  ModelFamily family = ModelFamily::Unknown;
  std::vector<TextEncoderSlot> text_encoders;  // in the order their states are concatenated

  // Conditioning. SD1: the last (or clip-skipped) layer of one encoder, final LayerNorm applied.
  // SDXL: the penultimate layers of both encoders without LayerNorm, concatenated, plus a vector
  // (the second encoder's pooled, projected output and the Fourier-embedded image sizes) that the
  // UNet adds to its time embedding.
  bool size_conditioning = false;
  bool clip_skip = true;  // A1111's "Clip skip" applies (SDXL always uses the penultimate layers)

  double latent_scale = 0.18215;  // the VAE's scaling factor
  bool vae_in_float32 = false;    // the VAE overflows in half precision (SDXL's; diffusers force_upcast)
  int64_t default_size = 512;     // the side A1111 and the guides generate and train at

  // kohya LoRA files: UNet modules under LDM/SGM names (SDXL: "lora_unet_input_blocks_4_1_...")
  // rather than diffusers names ("lora_unet_down_blocks_1_attentions_0_..."). Both are read either way.
  bool kohya_unet_ldm_names = false;
  const char* kohya_base_model_version = "sd_v1";  // ss_base_model_version
  const char* modelspec_architecture = "stable-diffusion-v1/lora";
  const char* modelspec_implementation = "diffusers";

  // Training defaults of the guides (the presets apply them on top of their own values).
  bool train_text_encoder = true;       // kohya's SDXL guides train the U-Net only
  bool gradient_checkpointing = false;  // SDXL: on, or a 1024² step does not fit in memory
  // The batch size for "auto" is chosen for free memory / this (SD1.5's rule at 512² is the unit).
  double train_memory_scale = 1.0;
};

// The row of `family`; SD2 and Unknown get SD1's row (callers refuse them where it matters).
const FamilyTraits& family_traits(ModelFamily family);

}  // namespace kiln::engine
