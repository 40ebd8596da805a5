#include "engine/models/attention.h"

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

TEST(AttentionTest, BudgetMustBePositiveAndIsKept) {
  const auto old = engine::models::attention_budget_bytes();
  EXPECT_THROW(engine::models::set_attention_budget_bytes(0), engine::Error);
  engine::models::set_attention_budget_bytes(12345);
  EXPECT_EQ(engine::models::attention_budget_bytes(), 12345);
  engine::models::set_attention_budget_bytes(old);
}

}  // namespace
}  // namespace kiln::test
