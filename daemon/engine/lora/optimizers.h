#pragma once
// Optimizers for LoRA training, named by kohya's --optimizer_type (case-insensitive):
//   "AdamW"        torch.optim.AdamW (decoupled weight decay; default weight_decay 0.01)
//   "AdamW8bit"    AdamW with block-wise 8-bit moments in the manner of bitsandbytes (see below)
//   "Lion"         lion_pytorch.Lion (betas 0.9/0.99, weight_decay 0 by default)
//   "SGDNesterov"  torch.optim.SGD(momentum 0.9, nesterov=True)
// Each reads the gradients in the parameters' .grad() and updates them in place, like torch.
//
// AdamW8bit keeps both moments of every tensor with ≥ 4096 elements as uint8 codes of a signed /
// unsigned dynamic-exponent table (Dettmers et al., "8-bit Optimizers via Block-wise
// Quantization"), with one float32 scale (absmax) per block of 2048 values: 2 bytes + 8/2048 per
// element instead of AdamW's 8. Smaller tensors keep float32 moments, as bitsandbytes does. The
// update itself is AdamW's in float32 on the dequantised moments. It is not bit-compatible with
// bitsandbytes' CUDA kernels.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace kiln::engine::lora {

struct ParamGroup {
  std::string name;  // "text_encoder", "unet"
  std::vector<torch::Tensor> params;
  double lr = 1e-4;  // the group's base lr; the schedule's factor multiplies it
};

struct OptimizerOptions {
  std::string type = "AdamW";
  // Negative: the optimizer's own default (AdamW/AdamW8bit 0.01, Lion 0, SGDNesterov 0).
  double weight_decay = -1;
  double beta1 = -1, beta2 = -1;  // AdamW 0.9/0.999, Lion 0.9/0.99
  double eps = 1e-8;
  double momentum = 0.9;  // SGDNesterov
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // One update with every group at its current lr. Parameters without a gradient are skipped.
  virtual void step() = 0;
  void zero_grad();  // drops the gradients (torch set_to_none)

  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  double lr(size_t group) const { return lrs_.at(group); }
  void set_lr(size_t group, double lr) { lrs_.at(group) = lr; }

  // The optimizer state for resuming: named CPU tensors (the step counts included).
  virtual std::vector<std::pair<std::string, torch::Tensor>> state() const = 0;
  // Restores state(); Error(InvalidArgument) when it does not fit these parameters.
  virtual void load_state(const std::map<std::string, torch::Tensor>& state) = 0;
  // Bytes held by the state tensors (moments, codes, scales).
  virtual int64_t state_bytes() const = 0;
  // What kohya writes as ss_optimizer: the Python class path ("torch.optim.adamw.AdamW").
  virtual std::string kohya_name() const = 0;

 protected:
  explicit Optimizer(std::vector<ParamGroup> groups);
  std::vector<ParamGroup> groups_;
  std::vector<double> lrs_;
};

// Error(InvalidArgument) for an unknown type, listing the known ones.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerOptions& options, std::vector<ParamGroup> groups);
const std::vector<std::string>& optimizer_types();

// The 8-bit machinery, exposed for tests: the 256-entry code table, and block-wise quantisation.
torch::Tensor dynamic_code(bool is_signed);  // sorted float32 [256] in [-1, 1] or [0, 1]
struct Quantized {
  torch::Tensor codes;   // uint8, same shape as the input
  torch::Tensor absmax;  // float32 [blocks]
};
Quantized quantize_blockwise(const torch::Tensor& x, const torch::Tensor& code, int64_t block = 2048);
torch::Tensor dequantize_blockwise(const Quantized& q, const torch::Tensor& code, int64_t block = 2048);

}  // namespace kiln::engine::lora
