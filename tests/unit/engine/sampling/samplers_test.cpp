#include "engine/sampling/samplers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/sampling/schedule.h"
#include "support/reference.h"

namespace kiln::test {
namespace {

using namespace engine::sampling;

TEST(SamplerTest, NamesResolveAsInA1111) {
  EXPECT_EQ(sampler_by_name("Euler").kind, SamplerKind::Euler);
  EXPECT_EQ(sampler_by_name("Euler a").kind, SamplerKind::EulerAncestral);
  EXPECT_EQ(sampler_by_name("euler A").kind, SamplerKind::EulerAncestral);
  const auto karras = sampler_by_name("DPM++ 2M Karras");
  EXPECT_EQ(karras.kind, SamplerKind::DpmPP2M);
  EXPECT_EQ(karras.schedule, SigmaSchedule::Karras);
  EXPECT_EQ(sampler_by_name("DPM++ 2M").schedule, SigmaSchedule::Default);
  EXPECT_EQ(sampler_by_name("DDIM").kind, SamplerKind::Ddim);
  EXPECT_EQ(sampler_names().size(), 5u);
}

TEST(SamplerTest, UnknownNameListsTheValidOnes) {
  try {
    sampler_by_name("Heun++");
    FAIL() << "expected an error";
  } catch (const engine::Error& e) {
    EXPECT_EQ(e.kind(), engine::ErrorKind::InvalidArgument);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("Heun++"), std::string::npos) << msg;
    for (const auto& n : sampler_names()) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

// With a denoiser that always answers c, every sampler must land exactly on c at σ = 0.
TEST(SamplerTest, ConstantDenoiserConvergesToIt) {
  const auto sigmas = DiscreteSchedule::sd().default_sigmas(6);
  const auto c = torch::full({1, 4, 2, 2}, 0.25f);
  const Denoiser model = [&c](const torch::Tensor&, double) { return c; };
  const auto x0 = torch::randn({1, 4, 2, 2}) * 14.6;
  int calls = 0;
  const StepCallback count = [&calls](int step, int total, const torch::Tensor&, const torch::Tensor&) {
    EXPECT_EQ(step, calls);
    EXPECT_EQ(total, 6);
    ++calls;
  };
  EXPECT_LE(max_abs_diff(sample_euler(model, x0, sigmas, count), c), 1e-6);
  EXPECT_EQ(calls, 6);
  EXPECT_LE(max_abs_diff(sample_dpmpp_2m(model, x0, sigmas), c), 1e-6);
  int draws = 0;
  const NoiseSource noise = [&draws] {
    ++draws;
    return torch::randn({1, 4, 2, 2});
  };
  EXPECT_LE(max_abs_diff(sample_euler_ancestral(model, x0, sigmas, noise), c), 1e-6);
  EXPECT_EQ(draws, 5);  // no noise on the final step to σ = 0
}

TEST(SamplerTest, EulerTakesTheLinearStep) {
  // D = 0 → x scales by σ_{i+1}/σ_i each step.
  const auto sigmas = torch::tensor({4.f, 2.f, 1.f});
  const Denoiser zero = [](const torch::Tensor& x, double) { return torch::zeros_like(x); };
  const auto x = sample_euler(zero, torch::ones({1}) * 4, sigmas);
  EXPECT_FLOAT_EQ(x.item<float>(), 1.f);
}

TEST(SamplerTest, DdimWithExactEpsRecoversTheCleanLatent) {
  // x_t = √ᾱ·x0 + √(1−ᾱ)·ε with a model that knows ε: DDIM ends at √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε at ᾱ[0].
  const auto ac = alphas_cumprod_diffusers();
  const auto clean = torch::randn({1, 4, 3, 3}), eps = torch::randn({1, 4, 3, 3});
  const auto ts = ddim_timesteps(10);
  const float a = ac[ts[0]].item<float>();
  const auto x = clean * std::sqrt(a) + eps * std::sqrt(1 - a);
  const EpsModel model = [&eps](const torch::Tensor&, int64_t) { return eps; };
  const float a0 = ac[0].item<float>();
  const auto expected = clean * std::sqrt(a0) + eps * std::sqrt(1 - a0);
  EXPECT_LE(max_abs_diff(sample_ddim(model, x, ts, 100, ac), expected), 1e-5);
}

}  // namespace
}  // namespace kiln::test
