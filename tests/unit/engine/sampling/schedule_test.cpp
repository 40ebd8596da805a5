#include "engine/sampling/schedule.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "support/reference.h"

namespace kiln::test {
namespace {

using namespace engine::sampling;

double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  const auto a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  return ((a64 - b64).abs() / b64.abs().clamp_min(1e-12)).max().item<double>();
}

TEST(ScheduleTest, AlphasCumprodAndSigmasMatchReference) {
  const auto& ref = Reference::get();
  const auto& c = ref.case_by_id("schedule/alphas");
  const double tol = c.at("tolerance").at("max_abs");
  const auto& out = c.at("outputs");
  EXPECT_LE(max_abs_diff(alphas_cumprod_ldm(), ref.tensor(out.at("alphas_cumprod_ldm"))), tol);
  EXPECT_LE(max_abs_diff(alphas_cumprod_diffusers(), ref.tensor(out.at("alphas_cumprod_diffusers"))), tol);
  const auto schedule = DiscreteSchedule::sd();
  EXPECT_LE(max_abs_diff(schedule.sigmas(), ref.tensor(out.at("kdiff_sigmas"))), tol * 15);  // σ up to 14.6
  EXPECT_LE(max_rel_diff(schedule.sigmas(), ref.tensor(out.at("kdiff_sigmas"))), 1e-6);
  EXPECT_LE(max_abs_diff(schedule.log_sigmas(), ref.tensor(out.at("kdiff_log_sigmas"))), 1e-6);
  EXPECT_NEAR(schedule.sigma_min(), 0.0292, 1e-4);
  EXPECT_NEAR(schedule.sigma_max(), 14.6146, 1e-4);
}

TEST(ScheduleTest, SigmasAndTheirTimestepsMatchReference) {
  const auto& ref = Reference::get();
  const auto schedule = DiscreteSchedule::sd();
  int checked = 0;
  for (const auto* c : ref.cases_of_kind("sigmas")) {
    const std::string id = c->at("id");
    SCOPED_TRACE(id);
    const int64_t steps = c->at("inputs").at("steps");
    const double tol = c->at("tolerance").at("max_abs_relative");
    const bool karras = id.find("karras") != std::string::npos;
    const auto sigmas = karras ? schedule.karras_sigmas(steps) : schedule.default_sigmas(steps);
    const auto expected = ref.tensor(c->at("outputs").at("sigmas"));
    ASSERT_EQ(sigmas.size(0), steps + 1);
    EXPECT_EQ(sigmas[-1].item<float>(), 0.f);
    EXPECT_LE(max_rel_diff(sigmas.narrow(0, 0, steps), expected.narrow(0, 0, steps)), tol);
    const auto t = schedule.sigma_to_t(sigmas.narrow(0, 0, steps));
    const auto expected_t = ref.tensor(c->at("outputs").at("timesteps_for_unet"));
    EXPECT_LE(max_abs_diff(t, expected_t), 999 * tol);
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

TEST(ScheduleTest, SigmaToTInvertsTToSigma) {
  const auto schedule = DiscreteSchedule::sd();
  const auto t = torch::tensor({0.f, 1.f, 321.75f, 500.5f, 998.25f, 999.f});
  EXPECT_LE(max_abs_diff(schedule.sigma_to_t(schedule.t_to_sigma(t)), t), 2e-3);
  // Beyond the trained range t clamps to the ends.
  EXPECT_FLOAT_EQ(schedule.sigma_to_t(torch::tensor({1e-4f})).item<float>(), 0.f);
  EXPECT_FLOAT_EQ(schedule.sigma_to_t(torch::tensor({100.f})).item<float>(), 999.f);
}

TEST(ScheduleTest, DdimTimestepsAreExact) {
  const auto& ref = Reference::get();
  int checked = 0;
  for (const auto* c : ref.cases_of_kind("ddim_timesteps")) {
    SCOPED_TRACE(c->at("id").get<std::string>());
    const int64_t steps = c->at("inputs").at("steps");
    EXPECT_EQ(ddim_timesteps(steps), c->at("expected").at("timesteps").get<std::vector<int64_t>>());
    const auto stored = ref.tensor(c->at("outputs").at("timesteps"));
    EXPECT_TRUE(torch::equal(torch::tensor(ddim_timesteps(steps)), stored));
    ++checked;
  }
  EXPECT_EQ(checked, 2);
  EXPECT_THROW(ddim_timesteps(0), engine::Error);
  EXPECT_THROW(ddim_timesteps(1001), engine::Error);
}

TEST(ScheduleTest, KarrasEndsAtTheModelsRange) {
  const auto schedule = DiscreteSchedule::sd();
  const auto s = schedule.karras_sigmas(5);
  EXPECT_NEAR(s[0].item<double>(), schedule.sigma_max(), 1e-5);
  EXPECT_NEAR(s[4].item<double>(), schedule.sigma_min(), 1e-6);
  EXPECT_TRUE((s.narrow(0, 0, 4) > s.narrow(0, 1, 4)).all().item<bool>());
  EXPECT_THROW(schedule.default_sigmas(0), engine::Error);
}

}  // namespace
}  // namespace kiln::test
