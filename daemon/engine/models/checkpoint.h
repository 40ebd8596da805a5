#pragma once
// Gradient checkpointing: run a block without keeping its activations for backward, and run it
// again during backward to get them. LibTorch's C++ API has no torch.utils.checkpoint, so this is
// a custom autograd function. It trades one extra forward per block for activation memory.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <functional>
#include <vector>

namespace kiln::engine::models {

using CheckpointedFn = std::function<torch::Tensor(const std::vector<torch::Tensor>& inputs)>;

// fn(inputs) with its intermediate tensors freed at once. `params` are the tensors fn reads
// besides `inputs` that may need gradients (LoRA weights inside the block): the result requires
// grad when any input or param does, and backward hands their gradients on like any other op.
// fn must be deterministic (no dropout) since backward recomputes it. Without grad mode, fn runs
// directly.
torch::Tensor checkpointed(const CheckpointedFn& fn, const std::vector<torch::Tensor>& inputs,
                           const std::vector<torch::Tensor>& params);

// Every tensor inside `module` (its parameters and its layers' adapters) that requires grad.
std::vector<torch::Tensor> tensors_needing_grad(const torch::nn::Module& module);

}  // namespace kiln::engine::models
