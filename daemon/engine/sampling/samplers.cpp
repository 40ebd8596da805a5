#include "engine/sampling/samplers.h"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "engine/error.h"

namespace kiln::engine::sampling {

namespace {
const std::vector<SamplerSpec>& specs() {
  static const std::vector<SamplerSpec> all{
      {"Euler", SamplerKind::Euler, SigmaSchedule::Default},
      {"Euler a", SamplerKind::EulerAncestral, SigmaSchedule::Default},
      {"DPM++ 2M", SamplerKind::DpmPP2M, SigmaSchedule::Default},
      {"DPM++ 2M Karras", SamplerKind::DpmPP2M, SigmaSchedule::Karras},
      {"DDIM", SamplerKind::Ddim, SigmaSchedule::Default},
  };
  return all;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

int steps_of(const torch::Tensor& sigmas) {
  if (sigmas.dim() != 1 || sigmas.size(0) < 2)
    throw Error(ErrorKind::InvalidArgument, "a sampler needs at least two sigmas (one step)");
  return static_cast<int>(sigmas.size(0) - 1);
}

std::vector<double> to_vector(const torch::Tensor& sigmas) {
  const auto s = sigmas.to(torch::kCPU, torch::kFloat64).contiguous();
  return {s.data_ptr<double>(), s.data_ptr<double>() + s.numel()};
}
}  // namespace

SamplerSpec sampler_by_name(const std::string& name) {
  for (const auto& s : specs())
    if (lower(s.name) == lower(name)) return s;
  std::string valid;
  for (const auto& s : specs()) valid += (valid.empty() ? "" : ", ") + s.name;
  throw Error(ErrorKind::InvalidArgument, "unknown sampler '" + name + "'; use one of: " + valid);
}

std::vector<std::string> sampler_names() {
  std::vector<std::string> names;
  for (const auto& s : specs()) names.push_back(s.name);
  return names;
}

torch::Tensor sample_euler(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                           const StepCallback& on_step) {
  const int n = steps_of(sigmas);
  const auto s = to_vector(sigmas);
  for (int i = 0; i < n; ++i) {
    const auto denoised = model(x, s[i]);
    if (on_step) on_step(i, n, x, denoised);
    const auto d = (x - denoised) / s[i];
    x = x + d * (s[i + 1] - s[i]);
  }
  return x;
}

torch::Tensor sample_euler_ancestral(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                                     const NoiseSource& noise, const StepCallback& on_step) {
  const int n = steps_of(sigmas);
  const auto s = to_vector(sigmas);
  for (int i = 0; i < n; ++i) {
    const auto denoised = model(x, s[i]);
    if (on_step) on_step(i, n, x, denoised);
    // Split the step to s[i+1] into a deterministic part down to s_down and fresh noise of s_up (eta 1).
    const double from = s[i], to = s[i + 1];
    const double s_up = std::min(to, std::sqrt(to * to * (from * from - to * to) / (from * from)));
    const double s_down = std::sqrt(to * to - s_up * s_up);
    const auto d = (x - denoised) / from;
    x = x + d * (s_down - from);
    if (to > 0) x = x + noise() * s_up;
  }
  return x;
}

torch::Tensor sample_dpmpp_2m(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                              const StepCallback& on_step) {
  const int n = steps_of(sigmas);
  const auto s = to_vector(sigmas);
  auto lambda = [](double sigma) { return -std::log(sigma); };  // −log σ; +inf at σ = 0
  torch::Tensor old_denoised;
  for (int i = 0; i < n; ++i) {
    const auto denoised = model(x, s[i]);
    if (on_step) on_step(i, n, x, denoised);
    const double t = lambda(s[i]), t_next = lambda(s[i + 1]);
    const double h = t_next - t;
    const double ratio = s[i + 1] / s[i];  // σ(t_next)/σ(t)
    const double coef = -std::expm1(-h);   // 1 at σ_next = 0, where x becomes denoised
    if (!old_denoised.defined() || s[i + 1] == 0) {
      x = x * ratio + denoised * coef;
    } else {
      // Second order: extrapolate the denoised estimate from the previous step's.
      const double r = (t - lambda(s[i - 1])) / h;
      const auto denoised_d = denoised * (1 + 1 / (2 * r)) - old_denoised * (1 / (2 * r));
      x = x * ratio + denoised_d * coef;
    }
    old_denoised = denoised;
  }
  return x;
}

torch::Tensor sample_ddim(const EpsModel& eps_model, torch::Tensor x, const std::vector<int64_t>& timesteps,
                          int64_t stride, const torch::Tensor& alphas_cumprod, const StepCallback& on_step,
                          const LatentMap& blend_x0) {
  const auto ac = alphas_cumprod.to(torch::kCPU, torch::kFloat32).contiguous();
  const float* a = ac.data_ptr<float>();
  const int n = static_cast<int>(timesteps.size());
  for (int i = 0; i < n; ++i) {
    const int64_t t = timesteps[i], prev = t - stride;
    if (t < 0 || t >= ac.size(0))
      throw Error(ErrorKind::InvalidArgument, "DDIM timestep " + std::to_string(t) + " is outside the schedule");
    // float32 arithmetic on ᾱ like diffusers' tensors.
    const float a_t = a[t], a_prev = prev >= 0 ? a[prev] : a[0];
    const float beta_t = 1.0f - a_t;
    const auto eps = eps_model(x, t);
    auto x0 = (x - eps * std::sqrt(beta_t)) / std::sqrt(a_t);
    if (blend_x0) x0 = blend_x0(x0);
    if (on_step) on_step(i, n, x, x0);
    x = x0 * std::sqrt(a_prev) + eps * std::sqrt(1.0f - a_prev);
  }
  return x;
}

}  // namespace kiln::engine::sampling
