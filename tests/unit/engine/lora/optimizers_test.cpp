#include "engine/lora/optimizers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "support/reference.h"

namespace kiln::test {
namespace {

using namespace engine::lora;

// One scalar parameter p = 1 with gradient 0.5 every step, lr 0.1.
std::vector<double> scalar_run(const std::string& type, int steps) {
  auto p = torch::ones({1}, torch::kFloat64).requires_grad_(true);
  OptimizerOptions o;
  o.type = type;
  auto opt = make_optimizer(o, {{"all", {p}, 0.1}});
  std::vector<double> values;
  for (int i = 0; i < steps; ++i) {
    p.mutable_grad() = torch::full({1}, 0.5, torch::kFloat64);
    opt->step();
    opt->zero_grad();
    EXPECT_FALSE(p.grad().defined());
    values.push_back(p.item<double>());
  }
  return values;
}

TEST(OptimizersTest, HandComputedUpdates) {
  // AdamW: decay 1 → 0.999; m̂ = 0.5, v̂ = 0.25 → step lr·0.5/(0.5 + 1e-8).
  const auto adamw = scalar_run("AdamW", 1);
  EXPECT_NEAR(adamw[0], 0.999 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-15);
  // Lion: sign(0.1·0.5) = 1 → 1 − 0.1; then m = 0.01·0.5, next direction sign(0.9·0.005 + 0.1·0.5) = 1.
  const auto lion = scalar_run("lion", 2);
  EXPECT_NEAR(lion[0], 0.9, 1e-15);
  EXPECT_NEAR(lion[1], 0.8, 1e-15);
  // SGD Nesterov, momentum 0.9: buf 0.5, step 0.5 + 0.45; then buf 0.95, step 0.5 + 0.855.
  const auto sgd = scalar_run("SGDNesterov", 2);
  EXPECT_NEAR(sgd[0], 1 - 0.1 * 0.95, 1e-15);
  EXPECT_NEAR(sgd[1], 1 - 0.1 * 0.95 - 0.1 * 1.355, 1e-15);
  EXPECT_THROW(scalar_run("DAdaptation", 1), engine::Error);
}

TEST(OptimizersTest, SkipsParametersWithoutGradients) {
  auto a = torch::ones({3}).requires_grad_(true), b = torch::ones({3}).requires_grad_(true);
  auto opt = make_optimizer({}, {{"g", {a, b}, 0.1}});
  a.mutable_grad() = torch::ones({3});
  opt->step();
  EXPECT_TRUE(torch::equal(b, torch::ones({3})));
  EXPECT_FALSE(torch::equal(a, torch::ones({3})));
  const auto state = opt->state();
  const auto steps = std::find_if(state.begin(), state.end(), [](const auto& kv) { return kv.first == "steps"; });
  ASSERT_NE(steps, state.end());
  EXPECT_TRUE(torch::equal(steps->second, torch::tensor({1, 0}, torch::kInt64)));
}

TEST(OptimizersTest, StateRoundTripContinuesIdentically) {
  for (const std::string type : {"AdamW", "AdamW8bit", "Lion", "SGDNesterov"}) {
    SCOPED_TRACE(type);
    auto gen = at::detail::createCPUGenerator(3);
    auto p1 = torch::randn({64, 80}, gen).requires_grad_(true);  // 5120 elements: 8-bit state
    auto p2 = p1.detach().clone().requires_grad_(true);
    OptimizerOptions o;
    o.type = type;
    auto a = make_optimizer(o, {{"g", {p1}, 1e-2}});
    auto b = make_optimizer(o, {{"g", {p2}, 1e-2}});
    const auto g1 = torch::randn({64, 80}, gen), g2 = torch::randn({64, 80}, gen);
    p1.mutable_grad() = g1.clone();
    a->step();
    std::map<std::string, torch::Tensor> saved;
    for (const auto& [k, v] : a->state()) saved[k] = v.clone();
    {
      torch::NoGradGuard ng;
      p2.copy_(p1);
    }
    b->load_state(saved);
    p1.mutable_grad() = g2.clone();
    p2.mutable_grad() = g2.clone();
    a->step();
    b->step();
    EXPECT_TRUE(torch::equal(p1, p2));
  }
}

TEST(OptimizersTest, BlockwiseQuantisationIsAccurateAndSmall) {
  const auto sc = dynamic_code(true), uc = dynamic_code(false);
  ASSERT_EQ(sc.numel(), 256);
  ASSERT_EQ(uc.numel(), 256);
  EXPECT_EQ(sc.max().item<float>(), 1.0f);
  EXPECT_LT(sc.min().item<float>(), -0.99f);
  EXPECT_EQ(uc.min().item<float>(), 0.0f);
  EXPECT_EQ(uc.max().item<float>(), 1.0f);
  EXPECT_TRUE(torch::all(sc.narrow(0, 1, 255) > sc.narrow(0, 0, 255)).item<bool>()) << "sorted, no duplicates";

  auto gen = at::detail::createCPUGenerator(5);
  const auto x = torch::randn({5000}, gen) * 1e-3;  // 3 blocks, the last one partial
  const auto q = quantize_blockwise(x, sc);
  EXPECT_EQ(q.codes.scalar_type(), torch::kUInt8);
  EXPECT_EQ(q.absmax.numel(), 3);
  const auto y = dequantize_blockwise(q, sc);
  // Relative to each block's absmax, the largest values get ~1% steps, small ones coarser ones.
  const auto err = (y - x).abs() / q.absmax.repeat_interleave(2048).narrow(0, 0, 5000);
  EXPECT_LE(err.max().item<double>(), 0.06);
  EXPECT_LE(err.mean().item<double>(), 0.01);
  const auto twice = dequantize_blockwise(quantize_blockwise(y, sc), sc);
  EXPECT_LE(((twice - y).abs() / q.absmax.repeat_interleave(2048).narrow(0, 0, 5000)).max().item<double>(), 0.06);
}

TEST(OptimizersTest, AdamW8bitConvergesLikeAdamWInAQuarterOfTheMemory) {
  // Least squares: find W [64, 128] with W·X = Y.
  auto gen = at::detail::createCPUGenerator(11);
  const auto X = torch::randn({128, 256}, gen), W_true = torch::randn({64, 128}, gen) * 0.1;
  const auto Y = W_true.mm(X);
  auto run = [&](const std::string& type, int64_t* state_bytes) {
    auto W = torch::zeros({64, 128}).requires_grad_(true);
    OptimizerOptions o;
    o.type = type;
    o.weight_decay = 0;
    auto opt = make_optimizer(o, {{"w", {W}, 1e-2}});
    double loss = 0;
    for (int i = 0; i < 300; ++i) {
      auto l = (W.mm(X) - Y).pow(2).mean();
      l.backward();
      opt->step();
      opt->zero_grad();
      loss = l.item<double>();
    }
    *state_bytes = opt->state_bytes();
    return loss;
  };
  int64_t bytes32 = 0, bytes8 = 0;
  const double start = Y.pow(2).mean().item<double>();
  const double l32 = run("AdamW", &bytes32), l8 = run("AdamW8bit", &bytes8);
  // Both fit the data to far below float32 noise of the start; the 8-bit moments cost little.
  EXPECT_LT(l32, start * 1e-8);
  EXPECT_LT(l8, start * 1e-8);
  EXPECT_EQ(bytes32, 64 * 128 * 8);
  EXPECT_EQ(bytes8, 64 * 128 * 2 + 4 * 2 * 4);  // codes + one float per 2048-block per moment
  std::cout << "[ measured ] least squares after 300 steps: AdamW " << l32 << " (" << bytes32
            << " B state), AdamW8bit " << l8 << " (" << bytes8 << " B state), start " << start << "\n";
}

}  // namespace
}  // namespace kiln::test
