#pragma once
// Scaled dot-product attention, softmax(q·kᵀ/√d)·v, for every model in the engine.
// LibTorch 2.x on CUDA (and on the CPU from 2.1): the fused kernel (flash / memory-efficient, never
// materialises the scores). Otherwise (1.13, MPS): chunked_attention(), which never holds more score
// rows than a byte budget allows, so a 512×512 SD1.5 UNet (4096 queries × 4096 keys × 8 heads ×
// batch 2 = 1 GiB of fp32 scores per attention) runs in a few hundred MiB.
#include <torch/types.h>

#include <cstdint>

namespace kiln::engine::models {

// q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, Dv] (any strides) → [B, H, Tq, Dv].
// causal: query i sees keys j ≤ i (needs Tq == Tk). Under autograd (training) the portable path
// is memory_lean_attention(), which keeps no probability matrix for the backward pass.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal = false);

// The portable path: splits the work over heads, then over queries, so that the scores and their
// softmax together stay within `budget_bytes` (at least one query row of all heads at a time).
torch::Tensor chunked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                                int64_t budget_bytes);

// The same result with its own backward pass: only q, k, v and the output are kept for it, and the
// probabilities are recomputed chunk by chunk within `budget_bytes` (like chunked_attention). What
// attention() uses under autograd on the portable path; not causal.
torch::Tensor memory_lean_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    int64_t budget_bytes);

// Byte budget for chunked_attention's scores (default 256 MiB). Process-wide.
void set_attention_budget_bytes(int64_t bytes);
int64_t attention_budget_bytes();

// True when attention() uses LibTorch's fused kernel for tensors on `device`.
bool fused_attention_available(const torch::Device& device);

}  // namespace kiln::engine::models
