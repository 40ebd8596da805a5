#pragma once
// An exponential moving average of a module's parameters (float32 shadow copies, by parameter
// name), as the weights a from-scratch run keeps: w̄ ← d·w̄ + (1 − d)·w after each optimizer step,
// with d = min(decay, (1 + n)/(10 + n)) at update n so the early average is not the random init.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace kiln::engine::pretrain {

class Ema {
 public:
  Ema() = default;
  Ema(const torch::nn::Module& module, double decay);

  void update(const torch::nn::Module& module);
  // Copies the averaged weights into `module` (same architecture; any dtype and device).
  void copy_to(torch::nn::Module& module) const;

  double decay() const { return decay_; }
  int64_t updates() const { return updates_; }
  // Named CPU tensors for the resume state ("<name>" and "__updates__").
  std::vector<std::pair<std::string, torch::Tensor>> state(const std::string& prefix) const;
  // Restores state(); Error(BadFormat) when a parameter is missing or has another shape.
  void load_state(const std::map<std::string, torch::Tensor>& tensors, const std::string& prefix);

 private:
  double decay_ = 0.999;
  int64_t updates_ = 0;
  std::vector<std::pair<std::string, torch::Tensor>> shadow_;
};

}  // namespace kiln::engine::pretrain
