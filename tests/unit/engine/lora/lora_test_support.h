#pragma once
// Shared by the LoRA tests: fixture paths, a temporary folder, and the tiny model's reference
// UNet/text-encoder inputs.
#include <filesystem>
#include <string>

#include <torch/types.h>

#include "engine/models/stable_diffusion.h"

namespace kiln::test {

std::filesystem::path lora_fixture(const std::string& file);  // in sd15-tiny/

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// eps of `model`'s UNet for the unet/t500 reference inputs (base context), float32 [1, 4, 8, 8].
torch::Tensor unet_eps_t500(const engine::models::StableDiffusion& model);
// last_hidden_state [77, C] for the ids of a lora/* case.
torch::Tensor text_states(const engine::models::StableDiffusion& model, const torch::Tensor& ids);

}  // namespace kiln::test
