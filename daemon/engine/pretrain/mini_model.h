#pragma once
// Kiln Mini's networks at small widths: the SD1.x architecture (LDM AutoencoderKL, UNetModel and a
// Hugging Face CLIPTextModel), built empty and initialised for training from scratch.
//
// Every width must keep what SD1.x loaders infer from the shapes: GroupNorm(32) everywhere, so VAE
// and UNet widths are multiples of 32; the UNet has 8 heads per attention (SD1.x's fixed count, so
// widths are multiples of 8); the text encoder has 64-wide heads (width a multiple of 64, not 1024,
// which loaders take for SD2.x), 77 positions and CLIP's 49,408-token vocabulary.
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "engine/models/clip_text.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"

namespace kiln::engine::pretrain {

struct MiniConfig {
  models::VaeConfig vae;
  models::UNetConfig unet;
  models::ClipTextConfig text;

  // The sizes chosen by measurement (mini/README.md): VAE 32·(1,2,2,4), one ResBlock per level;
  // UNet 64·(1,2,2), two ResBlocks per level, attention at the two lower levels; text encoder 128
  // wide (2 heads), 4 layers, MLP 512.
  static MiniConfig defaults();
  // Throws Error(InvalidArgument) naming the width that breaks an SD1.x rule above.
  void validate() const;
  nlohmann::json to_json() const;
  static MiniConfig from_json(const nlohmann::json& j);
};

// Parameters for training from scratch (float32, CPU unless `options` says otherwise), seeded:
//   weights N(0, 1/fan_in), biases 0, norm scales 1;
//   CLIP token embeddings N(0, 0.02²), position embeddings N(0, 0.01²) (CLIP's own init);
//   the UNet's zero_module layers of LDM start at zero: each ResBlock's out_layers.3, each
//   SpatialTransformer's proj_out and the final out.2, so every block starts as the identity.
// requires_grad is switched on for every parameter.
models::AutoencoderKL make_vae(const models::VaeConfig& config, uint64_t seed,
                               const torch::TensorOptions& options = {});
models::UNetModel make_unet(const models::UNetConfig& config, uint64_t seed, const torch::TensorOptions& options = {});
models::ClipTextModel make_text_encoder(const models::ClipTextConfig& config, uint64_t seed,
                                        const torch::TensorOptions& options = {});

// The initialisation above over any module (parameter names decide the rule).
void init_for_training(torch::nn::Module& module, uint64_t seed);
void set_trainable(torch::nn::Module& module, bool trainable);
int64_t parameter_count(const torch::nn::Module& module);

// A generator for step `step` of a run seeded `seed` (SplitMix64 of both): every random draw of a
// step comes from it, so a resumed run draws exactly what an uninterrupted one would.
at::Generator step_generator(uint64_t seed, int64_t step, uint64_t stream = 0);

}  // namespace kiln::engine::pretrain
