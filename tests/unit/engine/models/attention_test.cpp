#include "engine/models/attention.h"

#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "support/reference.h"

namespace kiln::test {
namespace {

using engine::models::attention;
using engine::models::chunked_attention;

// Straightforward float64 softmax(q kᵀ/√d) v.
torch::Tensor naive(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal) {
  auto s =
      torch::matmul(q.to(torch::kFloat64), k.to(torch::kFloat64).transpose(-1, -2)) / std::sqrt(double(q.size(-1)));
  if (causal) s.masked_fill_(torch::ones({q.size(2), k.size(2)}, torch::kBool).triu(1), -INFINITY);
  return torch::matmul(s.softmax(-1), v.to(torch::kFloat64)).to(torch::kFloat32);
}

struct Inputs {
  torch::Tensor q, k, v;
};
Inputs make(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D) {
  torch::manual_seed(7);
  return {torch::randn({B, H, Tq, D}), torch::randn({B, H, Tk, D}), torch::randn({B, H, Tk, D + 3})};
}

TEST(AttentionTest, EveryChunkingPathMatchesTheNaiveResult) {
  const auto in = make(2, 3, 50, 20, 8);
  const auto expected = naive(in.q, in.k, in.v, false);
  const int64_t row = 20 * 4 * 2;  // bytes of one query row's scores and softmax
  for (int64_t budget : {int64_t{1} << 30, row * 2 * 3 * 50, row * 50 * 2, row * 50, row * 7, row, int64_t{1}}) {
    SCOPED_TRACE(budget);
    EXPECT_LE(max_abs_diff(chunked_attention(in.q, in.k, in.v, false, budget), expected), 1e-5);
  }
}

TEST(AttentionTest, CausalMaskHoldsAcrossQueryChunks) {
  const auto in = make(1, 2, 33, 33, 16);
  const auto expected = naive(in.q, in.k, in.v, true);
  for (int64_t budget : {int64_t{1} << 30, int64_t{33 * 4 * 2 * 5}, int64_t{1}}) {
    SCOPED_TRACE(budget);
    EXPECT_LE(max_abs_diff(chunked_attention(in.q, in.k, in.v, true, budget), expected), 1e-5);
  }
  EXPECT_LE(max_abs_diff(attention(in.q, in.k, in.v, true), expected), 1e-5);
  // The first query sees only the first key.
  EXPECT_LE(max_abs_diff(attention(in.q, in.k, in.v, true).select(2, 0), in.v.select(2, 0)), 1e-6);
}

TEST(AttentionTest, AcceptsNonContiguousHeads) {
  // [B, T, H, D] transposed to [B, H, T, D], as the models pass them.
  torch::manual_seed(3);
  auto q = torch::randn({2, 40, 4, 8}).transpose(1, 2);
  auto k = torch::randn({2, 12, 4, 8}).transpose(1, 2);
  auto v = torch::randn({2, 12, 4, 8}).transpose(1, 2);
  EXPECT_LE(max_abs_diff(attention(q, k, v), naive(q, k, v, false)), 1e-5);
  EXPECT_LE(max_abs_diff(chunked_attention(q, k, v, false, 1000), naive(q, k, v, false)), 1e-5);
}

int64_t proc_status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == field + ":") {
      int64_t kib = 0;
      in >> kib;
      return kib;
    }
    in.ignore(1 << 12, '\n');
  }
  return -1;
}

// The 512×512 SD1.5 case: 4096 queries and keys, 8 heads. Unchunked, the scores and their softmax
// take 1 GiB at once; with a 32 MiB budget the peak must stay a small fraction of that (glibc keeps
// some freed chunks resident, so allow a few hundred MiB, not the budget exactly).
TEST(AttentionTest, ChunkingBoundsPeakMemory) {
  std::ofstream clear("/proc/self/clear_refs");
  if (!clear || proc_status_kib("VmHWM") < 0) GTEST_SKIP() << "needs Linux /proc to measure peak memory";
  torch::manual_seed(1);
  const auto q = torch::randn({1, 8, 4096, 40}), k = torch::randn({1, 8, 4096, 40}), v = torch::randn({1, 8, 4096, 40});
  const int64_t unchunked_mib = (int64_t{8} * 4096 * 4096 * 4 * 2) >> 20;
  clear << "5" << std::flush;  // restart the peak from the current resident size
  const int64_t before = proc_status_kib("VmRSS");
  const auto out = chunked_attention(q, k, v, false, int64_t{32} << 20);
  const int64_t growth_mib = (proc_status_kib("VmHWM") - before) / 1024;
  EXPECT_LT(growth_mib, unchunked_mib / 4) << "peak grew by " << growth_mib << " MiB";
  // Spot-check a few rows against the naive result.
  const auto rows = torch::tensor({0L, 1234L, 4095L});
  const auto expected = naive(q.index_select(2, rows), k, v, false);
  EXPECT_LE(max_abs_diff(out.index_select(2, rows), expected), 1e-5);
}

// Training: the lean attention's own backward pass against autograd through the float64 formula,
// for every way of chunking (whole, groups of heads, slices of queries, one row at a time).
TEST(AttentionTest, LeanAttentionGradientsMatchAutograd) {
  const auto in = make(2, 3, 50, 20, 8);
  torch::manual_seed(11);
  const auto weight = torch::randn({2, 3, 50, 11});
  auto leaf = [](const torch::Tensor& t, torch::ScalarType dtype) {
    return t.to(dtype).detach().requires_grad_(true);
  };
  auto q64 = leaf(in.q, torch::kFloat64), k64 = leaf(in.k, torch::kFloat64), v64 = leaf(in.v, torch::kFloat64);
  auto s = torch::matmul(q64, k64.transpose(-1, -2)) / std::sqrt(8.0);
  (torch::matmul(s.softmax(-1), v64) * weight.to(torch::kFloat64)).sum().backward();

  const int64_t row = 20 * 4 * 2 * 2;  // one query row's probabilities and their gradient
  for (int64_t budget : {int64_t{1} << 30, row * 50 * 2, row * 7, int64_t{1}}) {
    SCOPED_TRACE(budget);
    auto q = leaf(in.q, torch::kFloat32), k = leaf(in.k, torch::kFloat32), v = leaf(in.v, torch::kFloat32);
    auto out = engine::models::memory_lean_attention(q, k, v, budget);
    EXPECT_LE(max_abs_diff(out, naive(in.q, in.k, in.v, false)), 1e-5);
    (out * weight).sum().backward();
    EXPECT_LE(max_abs_diff(q.grad(), q64.grad().to(torch::kFloat32)), 1e-5);
    EXPECT_LE(max_abs_diff(k.grad(), k64.grad().to(torch::kFloat32)), 1e-5);
    EXPECT_LE(max_abs_diff(v.grad(), v64.grad().to(torch::kFloat32)), 1e-5);
  }
}

// Under autograd, attention() keeps q, k, v and the output for backward, not the 512 MiB of
// probabilities of a 512² SD1.5 self-attention (8 heads × 4096 × 4096 fp32).
TEST(AttentionTest, TrainingKeepsNoProbabilityMatrixForBackward) {
  std::ofstream clear("/proc/self/clear_refs");
  if (!clear || proc_status_kib("VmHWM") < 0) GTEST_SKIP() << "needs Linux /proc to measure peak memory";
  const auto old = engine::models::attention_budget_bytes();
  engine::models::set_attention_budget_bytes(int64_t{16} << 20);
  torch::manual_seed(2);
  auto q = torch::randn({1, 8, 4096, 40}).requires_grad_(true);
  auto k = torch::randn({1, 8, 4096, 40}).requires_grad_(true);
  auto v = torch::randn({1, 8, 4096, 40}).requires_grad_(true);
  clear << "5" << std::flush;
  const int64_t before = proc_status_kib("VmRSS");
  auto out = attention(q, k, v);
  out.sum().backward();
  const int64_t peak_growth_mib = (proc_status_kib("VmHWM") - before) / 1024;
  engine::models::set_attention_budget_bytes(old);
  EXPECT_LT(peak_growth_mib, 160) << "forward and backward grew the peak by " << peak_growth_mib << " MiB";
  EXPECT_TRUE(q.grad().defined() && k.grad().defined() && v.grad().defined());
  EXPECT_TRUE(torch::isfinite(q.grad()).all().item<bool>());
}

TEST(AttentionTest, BudgetMustBePositiveAndIsKept) {
  const auto old = engine::models::attention_budget_bytes();
  EXPECT_THROW(engine::models::set_attention_budget_bytes(0), engine::Error);
  engine::models::set_attention_budget_bytes(12345);
  EXPECT_EQ(engine::models::attention_budget_bytes(), 12345);
  engine::models::set_attention_budget_bytes(old);
}

}  // namespace
}  // namespace kiln::test
