#pragma once
// The resume state of a from-scratch run: one .safetensors file (written atomically: temporary
// file, fsync, rename) holding the model, its EMA and the optimizer's moments as named float32
// tensors, with a JSON description (stage, step, sizes, options) in the metadata. Random draws are
// derived from (seed, step) (see step_generator), so the step is the whole RNG state.
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/types.h>

namespace kiln::engine::pretrain {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

struct TrainState {
  nlohmann::json meta;
  std::map<std::string, torch::Tensor> tensors;  // CPU copies
};

void save_train_state(const std::filesystem::path& path, const NamedTensors& tensors, const nlohmann::json& meta);
// Error(NotFound) / Error(BadFormat) naming the file.
TrainState load_train_state(const std::filesystem::path& path);

// A module's parameters as "<prefix><name>", and back (Error(BadFormat) for a missing or misshapen one).
NamedTensors parameters_state(const torch::nn::Module& module, const std::string& prefix);
void load_parameters_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& tensors,
                           const std::string& prefix);

// The tensors named "<prefix>…", with the prefix taken off (an optimizer's part of a state).
std::map<std::string, torch::Tensor> strip_prefix(const std::map<std::string, torch::Tensor>& tensors,
                                                  const std::string& prefix);

// Appends `more` to `into`.
void append(NamedTensors& into, NamedTensors more);

}  // namespace kiln::engine::pretrain
