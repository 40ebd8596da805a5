#include "unit/engine/lora/lora_test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <random>

#include "support/reference.h"

namespace kiln::test {

namespace fs = std::filesystem;

fs::path lora_fixture(const std::string& file) { return sd15_tiny_dir() / file; }

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() / ("kiln-lora-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

torch::Tensor unet_eps_t500(const engine::models::StableDiffusion& model) {
  torch::NoGradGuard no_grad;
  const auto& ref = Reference::get();
  const auto& c = ref.case_by_id("unet/t500");
  const auto latent = ref.tensor(c.at("inputs").at("latent"));
  const auto context = ref.tensor(c.at("inputs").at("context"));
  return model.unet->forward(latent, torch::tensor({500.0}), context.dim() == 2 ? context.unsqueeze(0) : context);
}

torch::Tensor text_states(const engine::models::StableDiffusion& model, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  return model.text_encoder->encode(ids.view({1, -1}))[0];
}

}  // namespace kiln::test
