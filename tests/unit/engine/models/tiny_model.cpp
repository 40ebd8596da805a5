#include "unit/engine/models/tiny_model.h"

#include "support/reference.h"

namespace kiln::test {

const engine::models::StableDiffusion& tiny_sd() {
  static const auto model = [] {
    return engine::models::StableDiffusion::open(sd15_tiny_dir() / "model.safetensors", {});
  }();
  return model;
}

const engine::models::StableDiffusion& tiny_sdxl(Layout layout) {
  static const auto single = engine::models::StableDiffusion::open(sdxl_tiny_dir() / "model.safetensors", {});
  if (layout == Layout::SingleFile) return single;
  static const auto diffusers = engine::models::StableDiffusion::open(sdxl_tiny_dir() / "diffusers", {});
  return diffusers;
}

std::string layout_name(Layout layout) { return layout == Layout::SingleFile ? "single_file" : "diffusers"; }

}  // namespace kiln::test
