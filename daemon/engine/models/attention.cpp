#include "engine/models/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "engine/compat.h"
#include "engine/error.h"

namespace kiln::engine::models {

namespace {
std::atomic<int64_t> g_budget{int64_t{256} << 20};

// Scores of the pre-scaled `q` [bh, n, D] against all keys, softmaxed, times `v`: [bh, n, Dv].
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& kt, const torch::Tensor& v, bool causal,
                     int64_t query_offset) {
  auto scores = at::bmm(q, kt);
  if (causal) {
    auto opts = q.options().dtype(torch::kLong);
    auto key_pos = at::arange(kt.size(2), opts).unsqueeze(0);
    auto query_pos = (at::arange(q.size(1), opts) + query_offset).unsqueeze(1);
    scores.masked_fill_(key_pos > query_pos, -std::numeric_limits<double>::infinity());
  }
  return at::bmm(at::softmax(scores, -1), v);
}
}  // namespace

void set_attention_budget_bytes(int64_t bytes) {
  if (bytes <= 0) throw Error(ErrorKind::InvalidArgument, "the attention memory budget must be positive");
  g_budget = bytes;
}

int64_t attention_budget_bytes() {
  return g_budget;
}

bool fused_attention_available(const torch::Device& device) {
  return KILN_HAS_FUSED_SDPA && (device.is_cuda() || (device.is_cpu() && KILN_HAS_CPU_FLASH_SDPA));
}

torch::Tensor chunked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                                int64_t budget_bytes) {
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3);
  const int64_t Tk = k.size(2), Dv = v.size(3), BH = B * H;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  // Scaling q (Tq·D values) is cheaper than scaling the scores (Tq·Tk).
  auto qf = q.reshape({BH, Tq, D}) * scale;
  auto kt = k.reshape({BH, Tk, D}).transpose(1, 2);
  auto vf = v.reshape({BH, Tk, Dv});

  // One "row" = the scores of one query of one head, plus its softmax.
  const int64_t row_bytes = Tk * static_cast<int64_t>(q.element_size()) * 2;
  const int64_t rows = std::max<int64_t>(1, budget_bytes / row_bytes);
  if (rows >= BH * Tq) return attend(qf, kt, vf, causal, 0).view({B, H, Tq, Dv});

  auto out = at::empty({BH, Tq, Dv}, q.options());
  if (rows >= Tq) {  // whole heads at a time
    const int64_t group = rows / Tq;
    for (int64_t h = 0; h < BH; h += group) {
      const int64_t n = std::min(group, BH - h);
      out.narrow(0, h, n).copy_(attend(qf.narrow(0, h, n), kt.narrow(0, h, n), vf.narrow(0, h, n), causal, 0));
    }
  } else {  // slices of queries across all heads
    const int64_t chunk = std::max<int64_t>(1, rows / BH);
    for (int64_t s = 0; s < Tq; s += chunk) {
      const int64_t n = std::min(chunk, Tq - s);
      out.narrow(1, s, n).copy_(attend(qf.narrow(1, s, n), kt, vf, causal, s));
    }
  }
  return out.view({B, H, Tq, Dv});
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal) {
#if KILN_HAS_FUSED_SDPA
  // Fused kernels exist for CUDA, and for the CPU from 2.1; elsewhere (MPS, CPU on 2.0) SDPA would
  // build the full score matrix.
  if (q.is_cuda() || (q.is_cpu() && KILN_HAS_CPU_FLASH_SDPA))
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, causal);
#endif
  return chunked_attention(q, k, v, causal, g_budget);
}

}  // namespace kiln::engine::models
