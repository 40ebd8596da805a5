#pragma once
// The networks of a Stable Diffusion checkpoint, loaded together: SD1.x (one CLIP text encoder) or
// SDXL (CLIP ViT-L and OpenCLIP ViT-bigG). What differs between the families is their row in
// io/families.h; this struct holds the networks and that row.
#include <cstdint>
#include <filesystem>
#include <vector>

#include "engine/device.h"
#include "engine/io/families.h"
#include "engine/models/clip_text.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"
#include "engine/models/weights.h"

namespace kiln::engine {
class Checkpoint;
}

namespace kiln::engine::models {

struct StableDiffusion {
  ClipTextModel text_encoder{nullptr};    // the first (SD1.x: the only) text encoder
  ClipTextModel text_encoder_2{nullptr};  // SDXL's OpenCLIP ViT-bigG; empty otherwise
  UNetModel unet{nullptr};
  AutoencoderKL vae{nullptr};
  DeviceChoice device;
  ModelFamily family = ModelFamily::SD1;

  // Each component from its own weights (names without the component prefix). `text_encoders`
  // holds one view per encoder of the family's row.
  static StableDiffusion load(const std::vector<WeightView>& text_encoders, const WeightView& unet,
                              const WeightView& vae, const DeviceChoice& device, ModelFamily family);
  // SD1.x: one text encoder.
  static StableDiffusion load(const WeightView& text_encoder, const WeightView& unet, const WeightView& vae,
                              const DeviceChoice& device);
  // An opened checkpoint (single file or diffusers folder).
  static StableDiffusion load(const Checkpoint& checkpoint, const DeviceChoice& device);
  // Opens and loads a .safetensors checkpoint or a diffusers folder.
  static StableDiffusion open(const std::filesystem::path& path, const DeviceChoice& device);

  const FamilyTraits& traits() const { return family_traits(family); }
  // The encoders in the family's order (one or two), for code that treats them alike.
  std::vector<ClipTextModel> text_encoders() const;
  double latent_scale() const { return vae->config().scaling_factor; }
  // An inpainting checkpoint: its UNet takes the latent plus a mask and a masked-image latent.
  bool inpainting() const { return unet->config().in_channels == 9; }
};

// A full-size SD1.5 architecture (UNet 320·(1,2,4,4), context 768; CLIP ViT-L 768×12; VAE
// 128·(1,2,4,4)) with seeded random weights, for benchmarks without a model file.
StableDiffusion make_sd15_random(const DeviceChoice& device, uint64_t seed = 0);

// A full-size SDXL 1.0 architecture (UNetConfig::sdxl(), 2.6 G parameters; CLIP ViT-L and OpenCLIP
// ViT-bigG with its projection; the SD VAE with scale 0.13025) with seeded random weights.
StableDiffusion make_sdxl_random(const DeviceChoice& device, uint64_t seed = 0);

}  // namespace kiln::engine::models
