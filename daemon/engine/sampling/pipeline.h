#pragma once
// txt2img, img2img and inpainting with the A1111 semantics Kiln promises: same seed, same image.
// Inpainting checkpoints (9-channel UNet) run all three modes too, with A1111's image conditioning.
// The caller brings the text conditioning (daemon/engine/text builds it with A1111's rules, using
// models::text_encoder_fn as its encoder).
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/models/stable_diffusion.h"
#include "engine/sampling/denoiser.h"

namespace kiln::engine::sampling {

enum class MaskedContent {
  Original,  // start from the encoded original (A1111 "original")
  Fill,      // start from the original with the masked area filled from its surroundings ("fill")
};

struct GenerationParams {
  int64_t width = 512, height = 512;  // multiples of 8 (64 recommended)
  int steps = 20;
  double cfg_scale = 7.0;
  std::string sampler = "Euler a";  // see sampler_names()
  int64_t seed = -1;                // −1: pick one (reported in the result)
  int batch_size = 1;               // images per UNet pass
  int batch_count = 1;              // passes; image k overall gets seed + k

  // img2img when defined: uint8 [height, width, 3].
  torch::Tensor init_image;
  double denoising_strength = 0.75;

  // Inpainting when defined (needs init_image): uint8 [height, width] or [height, width, C]; white
  // (>0) is repainted.
  torch::Tensor mask;
  double mask_blur = 4;
  MaskedContent masked_content = MaskedContent::Original;
  // Inpainting checkpoints only (A1111 "Inpainting conditioning mask strength"): how much of the
  // repaint area the UNet's masked-image input hides, 0..1. 1 (default) hides it all.
  double inpainting_mask_weight = 1.0;

  // A1111 "Tiling": every padded UNet and VAE convolution wraps around, so the image tiles seamlessly
  // (textures). Only for this run: the model is shared and goes back to zero padding afterwards.
  bool tiling = false;

  int preview_every = 5;  // a preview every this many steps; 0 = none
};

struct Progress {
  int step = 0;   // steps done in this batch, 1..total
  int total = 0;  // steps of this batch
  int batch = 0;  // which batch, 0..batch_count−1
  int batch_count = 1;
  torch::Tensor latent;    // sampler state at the start of the step, float32 [batch_size, 4, h, w]
  torch::Tensor denoised;  // the guided estimate of the clean latent at that step
  torch::Tensor preview;   // uint8 [h, w, 3] of the first image every preview_every steps, else undefined
};

struct PipelineHooks {
  std::function<void(const Progress&)> on_step;
  // Polled between steps; returning true stops the run with Error(Cancelled).
  std::function<bool()> cancelled;
};

struct GenerationResult {
  std::vector<torch::Tensor> images;  // uint8 [height, width, 3] on the CPU, batch_count·batch_size of them
  std::vector<int64_t> seeds;         // per image
  torch::Tensor latents;              // final latents (sampler scale), float32 [n, 4, h, w] on the CPU
  int64_t seed = 0;                   // the first seed, resolved if −1 was asked
};

// Checks params against the model and throws Error(InvalidArgument) with a plain explanation.
void validate(const GenerationParams& params);

GenerationResult generate(const models::StableDiffusion& model, const Conditioning& conditioning,
                          const GenerationParams& params, const PipelineHooks& hooks = {});

}  // namespace kiln::engine::sampling
