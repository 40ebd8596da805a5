#include "engine/models/checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "support/reference.h"

namespace kiln::test {
namespace {

using engine::models::checkpointed;

TEST(GradientCheckpointTest, RecomputesInBackwardWithTheSameGradients) {
  auto gen = at::detail::createCPUGenerator(1);
  const auto w = torch::randn({8, 8}, gen).requires_grad_(true);  // a "LoRA weight" the block reads
  const auto x = torch::randn({4, 8}, gen).requires_grad_(true);
  const auto ctx = torch::randn({4, 8}, gen);                      // needs no gradient
  int calls = 0;
  auto block = [&](const std::vector<torch::Tensor>& in) {
    ++calls;
    return torch::tanh(in[0].mm(w) + in[1]).pow(2);
  };

  auto plain = block({x, ctx}).sum();
  auto grads = torch::autograd::grad({plain}, {x, w});
  calls = 0;
  auto out = checkpointed(block, {x, ctx}, {w});
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(out.requires_grad());
  auto again = torch::autograd::grad({out.sum()}, {x, w});
  EXPECT_EQ(calls, 2) << "backward ran the block again";
  EXPECT_LE(max_abs_diff(again[0], grads[0]), 1e-7);
  EXPECT_LE(max_abs_diff(again[1], grads[1]), 1e-7);

  // Only parameters need gradients (the UNet's first block: the noisy latents do not).
  const auto x_const = x.detach();
  auto only_w = checkpointed(block, {x_const, ctx}, {w});
  ASSERT_TRUE(only_w.requires_grad());
  only_w.sum().backward();
  ASSERT_TRUE(w.grad().defined());
  auto reference = torch::autograd::grad({block({x_const, ctx}).sum()}, {w});
  EXPECT_LE(max_abs_diff(w.grad(), reference[0]), 1e-7);

  torch::NoGradGuard no_grad;
  calls = 0;
  checkpointed(block, {x, ctx}, {w});
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace kiln::test
