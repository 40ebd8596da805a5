#pragma once
// What both trainers do around an optimizer step: linear lr warm-up and gradient clipping.
#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace kiln::engine::pretrain {

// base · min(1, (step + 1) / warmup): linear warm-up, then constant (the EMA does the smoothing).
double warmup_lr(double base, int64_t step, int64_t warmup_steps);

// torch.nn.utils.clip_grad_norm_: scales every gradient so that the 2-norm of all of them is at
// most max_norm (≤ 0: no clipping). Returns the norm before clipping (NaN/inf: nothing scaled).
double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace kiln::engine::pretrain
