#include "unit/engine/models/tiny_model.h"

#include "support/reference.h"

namespace kiln::test {

const engine::models::StableDiffusion& tiny_sd() {
  static const auto model = [] {
    return engine::models::StableDiffusion::open(sd15_tiny_dir() / "model.safetensors", {});
  }();
  return model;
}

}  // namespace kiln::test
