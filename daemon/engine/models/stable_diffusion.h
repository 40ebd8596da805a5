#pragma once
// The three networks of a Stable Diffusion 1.x checkpoint, loaded together.
#include <cstdint>
#include <filesystem>

#include "engine/device.h"
#include "engine/models/clip_text.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"
#include "engine/models/weights.h"

namespace kiln::engine {
class Checkpoint;
}

namespace kiln::engine::models {

struct StableDiffusion {
  ClipTextModel text_encoder{nullptr};
  UNetModel unet{nullptr};
  AutoencoderKL vae{nullptr};
  DeviceChoice device;

  // Each component from its own weights (names without the component prefix).
  static StableDiffusion load(const WeightView& text_encoder, const WeightView& unet, const WeightView& vae,
                              const DeviceChoice& device);
  // An opened checkpoint (single file or diffusers folder).
  static StableDiffusion load(const Checkpoint& checkpoint, const DeviceChoice& device);
  // Opens and loads a .safetensors checkpoint or a diffusers folder.
  static StableDiffusion open(const std::filesystem::path& path, const DeviceChoice& device);

  double latent_scale() const { return vae->config().scaling_factor; }
  // An inpainting checkpoint: its UNet takes the latent plus a mask and a masked-image latent.
  bool inpainting() const { return unet->config().in_channels == 9; }
};

// A full-size SD1.5 architecture (UNet 320·(1,2,4,4), context 768; CLIP ViT-L 768×12; VAE
// 128·(1,2,4,4)) with seeded random weights, for benchmarks without a model file.
StableDiffusion make_sd15_random(const DeviceChoice& device, uint64_t seed = 0);

}  // namespace kiln::engine::models
