#pragma once
// Access to the reference fixtures (../shared/fixtures copied into tests/fixtures): the tiny SD1.5
// model, reference.json's cases and the tensors of reference.safetensors.
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "engine/io/safetensors.h"

namespace kiln::test {

// $KILN_FIXTURES_DIR if set, else the fixtures folder of the source tree.
std::filesystem::path fixtures_dir();
std::filesystem::path sd15_tiny_dir();
std::filesystem::path sd15_inpaint_tiny_dir();
std::filesystem::path sdxl_tiny_dir();

class Reference {
 public:
  static const Reference& get();  // sd15-tiny's, loaded once per test program
  // The reference of another fixture folder ("sd15-inpaint-tiny"), loaded once per test program.
  static const Reference& get(const std::string& fixture);

  const nlohmann::json& json() const { return json_; }
  const nlohmann::json& case_by_id(const std::string& id) const;  // fails the test if absent
  std::vector<const nlohmann::json*> cases_of_kind(const std::string& kind) const;
  // A tensor of reference.safetensors, as a float32/int64/uint8 CPU tensor.
  torch::Tensor tensor(const std::string& name) const;
  // Accepts {"tensor": name} objects as they appear in case inputs/outputs.
  torch::Tensor tensor(const nlohmann::json& ref) const;

 private:
  nlohmann::json json_;
  std::shared_ptr<const engine::SafeTensorsFile> tensors_;
};

// max |a - b| as a double (shapes must match; a test failure otherwise).
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace kiln::test
