#include "engine/sampling/schedule.h"

#include <torch/torch.h>

#include <cmath>

#include "engine/error.h"

namespace kiln::engine::sampling {

namespace {
void check_steps(int64_t steps) {
  if (steps < 1) throw Error(ErrorKind::InvalidArgument, "the number of steps must be at least 1");
}

torch::Tensor scaled_linear_betas(const BetaSchedule& b, torch::Dtype dtype) {
  return torch::linspace(std::sqrt(b.beta_start), std::sqrt(b.beta_end), b.train_steps, dtype).pow(2);
}
}  // namespace

torch::Tensor alphas_cumprod_ldm(const BetaSchedule& b) {
  return torch::cumprod(1.0 - scaled_linear_betas(b, torch::kFloat64), 0).to(torch::kFloat32);
}

torch::Tensor alphas_cumprod_diffusers(const BetaSchedule& b) {
  return torch::cumprod(1.0 - scaled_linear_betas(b, torch::kFloat32), 0);
}

DiscreteSchedule::DiscreteSchedule(const torch::Tensor& alphas_cumprod) {
  const auto ac = alphas_cumprod.to(torch::kCPU, torch::kFloat32);
  sigmas_ = ((1 - ac) / ac).pow(0.5);
  log_sigmas_ = sigmas_.log();
}

DiscreteSchedule DiscreteSchedule::sd() {
  return DiscreteSchedule(alphas_cumprod_ldm());
}

double DiscreteSchedule::sigma_min() const {
  return sigmas_[0].item<double>();
}
double DiscreteSchedule::sigma_max() const {
  return sigmas_[-1].item<double>();
}

torch::Tensor DiscreteSchedule::sigma_to_t(const torch::Tensor& sigma) const {
  const int64_t n = log_sigmas_.size(0);
  const auto s = sigma.to(torch::kCPU, torch::kFloat32).reshape({-1});
  const auto log_sigma = s.log();
  // low = the last index whose log-sigma is ≤ log(sigma); log_sigmas rise with t.
  const auto below = log_sigmas_.unsqueeze(1).le(log_sigma.unsqueeze(0)).sum(0);
  const auto low_idx = (below - 1).clamp(0, n - 2);
  const auto high_idx = low_idx + 1;
  const auto low = log_sigmas_.index_select(0, low_idx), high = log_sigmas_.index_select(0, high_idx);
  const auto w = ((low - log_sigma) / (low - high)).clamp(0, 1);
  return ((1 - w) * low_idx + w * high_idx).view(sigma.sizes());
}

torch::Tensor DiscreteSchedule::t_to_sigma(const torch::Tensor& t) const {
  const auto tf = t.to(torch::kCPU, torch::kFloat32);
  const auto low = tf.floor().to(torch::kLong), high = tf.ceil().to(torch::kLong);
  const auto w = tf.frac();
  const auto log_sigma = (1 - w) * log_sigmas_.index({low}) + w * log_sigmas_.index({high});
  return log_sigma.exp();
}

torch::Tensor DiscreteSchedule::default_sigmas(int64_t steps) const {
  check_steps(steps);
  const auto t = torch::linspace(static_cast<double>(sigmas_.size(0) - 1), 0.0, steps, torch::kFloat32);
  return torch::cat({t_to_sigma(t), torch::zeros({1})});
}

torch::Tensor DiscreteSchedule::karras_sigmas(int64_t steps, double rho) const {
  return sampling::karras_sigmas(steps, sigma_min(), sigma_max(), rho);
}

torch::Tensor karras_sigmas(int64_t steps, double sigma_min, double sigma_max, double rho) {
  check_steps(steps);
  const auto ramp = torch::linspace(0, 1, steps, torch::kFloat32);
  // Endpoints in double and the ramp in float32, as k-diffusion computes them.
  const double min_inv_rho = std::pow(sigma_min, 1.0 / rho), max_inv_rho = std::pow(sigma_max, 1.0 / rho);
  const auto sigmas = (ramp * (min_inv_rho - max_inv_rho) + max_inv_rho).pow(rho);
  return torch::cat({sigmas, torch::zeros({1})});
}

std::vector<int64_t> ddim_timesteps(int64_t steps, int64_t train_steps, int64_t offset) {
  check_steps(steps);
  if (steps > train_steps)
    throw Error(ErrorKind::InvalidArgument, "DDIM can take at most " + std::to_string(train_steps) + " steps");
  const int64_t ratio = train_steps / steps;
  std::vector<int64_t> t(steps);
  for (int64_t i = 0; i < steps; ++i) t[i] = (steps - 1 - i) * ratio + offset;
  return t;
}

}  // namespace kiln::engine::sampling
