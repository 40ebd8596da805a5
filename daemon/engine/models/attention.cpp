#include "engine/models/attention.h"

#include <torch/autograd.h>

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

namespace {

// Splits [BH, Tq] query rows into chunks whose [n, rows, Tk] score blocks fit `budget_bytes` and
// calls fn(head, heads, query, queries) for each.
template <class Fn>
void for_each_chunk(int64_t BH, int64_t Tq, int64_t Tk, int64_t element_size, int64_t budget_bytes, Fn&& fn) {
  const int64_t rows = std::max<int64_t>(1, budget_bytes / (Tk * element_size));
  if (rows >= Tq) {
    const int64_t group = std::min(BH, rows / Tq);
    for (int64_t h = 0; h < BH; h += group) fn(h, std::min(group, BH - h), int64_t{0}, Tq);
  } else {
    for (int64_t h = 0; h < BH; ++h)
      for (int64_t s = 0; s < Tq; s += rows) fn(h, int64_t{1}, s, std::min(rows, Tq - s));
  }
}

// Training attention that keeps only q, k, v and the output for the backward pass and recomputes
// the probabilities there, chunk by chunk. Autograd through bmm/softmax/bmm would keep every
// attention's whole probability matrix until backward: at 512² in SD1.5, 8 heads × 4096² fp32 =
// 512 MiB for each of the five full-resolution self-attentions of one image.
struct LeanAttention : torch::autograd::Function<LeanAttention> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, int64_t budget_bytes) {
    auto out = chunked_attention(q, k, v, /*causal=*/false, budget_bytes);
    ctx->save_for_backward({q, k, v, out});
    ctx->saved_data["budget"] = budget_bytes;
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3];
    const int64_t budget = ctx->saved_data["budget"].toInt();
    const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3);
    const int64_t Tk = k.size(2), Dv = v.size(3), BH = B * H;
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));

    const auto qs = q.reshape({BH, Tq, D}) * scale;
    const auto kf = k.reshape({BH, Tk, D});
    const auto vf = v.reshape({BH, Tk, Dv});
    const auto d_out = grads[0].reshape({BH, Tq, Dv});
    // Softmax backward needs rowsum(dO ⊙ O) per query: the probabilities' own term.
    const auto row_dot = (d_out * out.reshape({BH, Tq, Dv})).sum(-1, /*keepdim=*/true);

    auto dq = at::empty({BH, Tq, D}, q.options());
    auto dk = at::zeros({BH, Tk, D}, q.options());
    auto dv = at::zeros({BH, Tk, Dv}, q.options());
    // Two score-sized blocks live at once (probabilities and their gradient).
    for_each_chunk(BH, Tq, Tk, q.element_size() * 2, budget, [&](int64_t h, int64_t n, int64_t s, int64_t rows) {
      const auto q_c = qs.narrow(0, h, n).narrow(1, s, rows);
      const auto k_c = kf.narrow(0, h, n), v_c = vf.narrow(0, h, n);
      const auto do_c = d_out.narrow(0, h, n).narrow(1, s, rows);
      auto p = at::softmax(at::bmm(q_c, k_c.transpose(1, 2)), -1);
      dv.narrow(0, h, n).add_(at::bmm(p.transpose(1, 2), do_c));
      auto ds = at::bmm(do_c, v_c.transpose(1, 2));
      ds.sub_(row_dot.narrow(0, h, n).narrow(1, s, rows)).mul_(p);
      dq.narrow(0, h, n).narrow(1, s, rows).copy_(at::bmm(ds, k_c)).mul_(scale);
      dk.narrow(0, h, n).add_(at::bmm(ds.transpose(1, 2), q_c));
    });
    return {dq.view({B, H, Tq, D}), dk.view({B, H, Tk, D}), dv.view({B, H, Tk, Dv}), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor memory_lean_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    int64_t budget_bytes) {
  return LeanAttention::apply(q, k, v, budget_bytes);
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal) {
#if KILN_HAS_FUSED_SDPA
  // Fused kernels exist for CUDA, and for the CPU from 2.1; elsewhere (MPS, CPU on 2.0) SDPA would
  // build the full score matrix.
  if (q.is_cuda() || (q.is_cpu() && KILN_HAS_CPU_FLASH_SDPA))
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, causal);
#endif
  const bool training = torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (training && !causal) return memory_lean_attention(q, k, v, g_budget);
  return chunked_attention(q, k, v, causal, g_budget);
}

}  // namespace kiln::engine::models
