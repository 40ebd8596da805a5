#pragma once
// Noise schedules of SD1.x: the training betas, k-diffusion's sigma view of them (what A1111's
// samplers use) and diffusers' DDIM timesteps.
#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace kiln::engine::sampling {

// "scaled_linear": betas = linspace(√start, √end, steps)².
struct BetaSchedule {
  int64_t train_steps = 1000;
  double beta_start = 0.00085;
  double beta_end = 0.012;
};

// As LDM/A1111 build it: float64 betas and cumprod, stored as float32 [train_steps].
torch::Tensor alphas_cumprod_ldm(const BetaSchedule& betas = {});
// As diffusers schedulers and kohya training build it: float32 throughout.
torch::Tensor alphas_cumprod_diffusers(const BetaSchedule& betas = {});

// k-diffusion's CompVisDenoiser view: sigma_i = √((1 − ᾱ_i)/ᾱ_i) for each training timestep i,
// with log-sigma interpolation between them. All tensors float32 on the CPU.
class DiscreteSchedule {
 public:
  explicit DiscreteSchedule(const torch::Tensor& alphas_cumprod);
  static DiscreteSchedule sd();  // from alphas_cumprod_ldm()

  const torch::Tensor& sigmas() const { return sigmas_; }
  const torch::Tensor& log_sigmas() const { return log_sigmas_; }
  double sigma_min() const;
  double sigma_max() const;

  // Fractional timestep for each sigma (inverse of t_to_sigma); any shape.
  torch::Tensor sigma_to_t(const torch::Tensor& sigma) const;
  torch::Tensor t_to_sigma(const torch::Tensor& t) const;

  // A1111 "Automatic": t = linspace(T−1, 0, steps) mapped to sigmas, then a final 0 (steps+1 values).
  torch::Tensor default_sigmas(int64_t steps) const;
  // Karras et al. between sigma_min and sigma_max, then a final 0.
  torch::Tensor karras_sigmas(int64_t steps, double rho = 7.0) const;

 private:
  torch::Tensor sigmas_, log_sigmas_;
};

// (sigma_max^(1/ρ) + i/(n−1)·(sigma_min^(1/ρ) − sigma_max^(1/ρ)))^ρ for i < n, then 0. float32.
torch::Tensor karras_sigmas(int64_t steps, double sigma_min, double sigma_max, double rho = 7.0);

// diffusers DDIMScheduler, "leading" spacing: (arange(steps)·(train_steps // steps)) reversed + offset.
std::vector<int64_t> ddim_timesteps(int64_t steps, int64_t train_steps = 1000, int64_t offset = 1);

}  // namespace kiln::engine::sampling
