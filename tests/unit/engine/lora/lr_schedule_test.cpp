#include "engine/lora/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "engine/error.h"

namespace kiln::test {
namespace {

using namespace engine::lora;

constexpr double kPi = 3.14159265358979323846;

LrSchedule make(const std::string& name, int64_t warmup, int64_t total, int64_t cycles = 1, double power = 1.0) {
  LrScheduleOptions o;
  o.name = name;
  o.warmup_steps = warmup;
  o.training_steps = total;
  o.num_cycles = cycles;
  o.power = power;
  o.base_lr = 1e-4;
  return LrSchedule(o);
}

TEST(LrScheduleTest, ConstantAndWarmup) {
  const auto c = make("constant", 10, 100);
  for (int64_t s : {0, 5, 99, 500}) EXPECT_EQ(c.factor(s), 1.0);  // diffusers' constant ignores warmup
  const auto w = make("constant_with_warmup", 10, 100);
  EXPECT_EQ(w.factor(0), 0.0);
  EXPECT_EQ(w.factor(3), 0.3);
  EXPECT_EQ(w.factor(10), 1.0);
  EXPECT_EQ(w.factor(1000), 1.0);
}

TEST(LrScheduleTest, Linear) {
  const auto l = make("linear", 10, 110);
  EXPECT_EQ(l.factor(5), 0.5);
  EXPECT_EQ(l.factor(10), 1.0);
  EXPECT_DOUBLE_EQ(l.factor(35), 75.0 / 100.0);  // (110 − 35) / (110 − 10)
  EXPECT_EQ(l.factor(110), 0.0);
  EXPECT_EQ(l.factor(200), 0.0);
}

TEST(LrScheduleTest, Cosine) {
  const auto c = make("cosine", 0, 100);
  EXPECT_EQ(c.factor(0), 1.0);
  EXPECT_NEAR(c.factor(25), 0.5 * (1 + std::cos(kPi * 0.25)), 1e-15);
  EXPECT_NEAR(c.factor(50), 0.5, 1e-15);
  EXPECT_NEAR(c.factor(100), 0.0, 1e-15);
  const auto w = make("cosine", 20, 120);
  EXPECT_EQ(w.factor(10), 0.5);
  EXPECT_NEAR(w.factor(70), 0.5, 1e-15);
}

TEST(LrScheduleTest, CosineWithRestarts) {
  const auto c = make("cosine_with_restarts", 0, 100, 3);
  EXPECT_EQ(c.factor(0), 1.0);
  // Each third restarts: progress p, phase (3p mod 1).
  EXPECT_NEAR(c.factor(10), 0.5 * (1 + std::cos(kPi * std::fmod(3 * 0.10, 1.0))), 1e-15);
  EXPECT_NEAR(c.factor(40), 0.5 * (1 + std::cos(kPi * std::fmod(3 * 0.40, 1.0))), 1e-15);
  EXPECT_GT(c.factor(34), 0.99);  // just after a restart
  EXPECT_EQ(c.factor(100), 0.0);
  EXPECT_EQ(c.factor(150), 0.0);
}

TEST(LrScheduleTest, PolynomialEndsAtLrEnd) {
  const auto p = make("polynomial", 10, 110);
  const double lr = 1e-4, end = 1e-7;
  EXPECT_EQ(p.factor(4), 0.4);
  EXPECT_DOUBLE_EQ(p.factor(10), 1.0);
  EXPECT_DOUBLE_EQ(p.factor(60), ((lr - end) * 0.5 + end) / lr);
  EXPECT_DOUBLE_EQ(p.factor(110), end / lr);
  EXPECT_DOUBLE_EQ(p.factor(500), end / lr);
  const auto sq = make("polynomial", 0, 100, 1, 2.0);
  EXPECT_DOUBLE_EQ(sq.factor(50), ((lr - end) * 0.25 + end) / lr);
}

TEST(LrScheduleTest, WarmupRatioAndErrors) {
  EXPECT_EQ(resolve_warmup_steps(0.1, 1005), 100);  // int(0.1 · 1005)
  EXPECT_EQ(resolve_warmup_steps(50, 1000), 50);
  EXPECT_THROW(make("exponential", 0, 10), engine::Error);
  EXPECT_THROW(make("cosine", 0, 0), engine::Error);
  LrScheduleOptions o;
  o.name = "polynomial";
  o.training_steps = 10;
  o.base_lr = 1e-8;  // below lr_end
  EXPECT_THROW(LrSchedule{o}, engine::Error);
}

}  // namespace
}  // namespace kiln::test
