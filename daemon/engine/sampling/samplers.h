#pragma once
// The samplers Kiln offers, under A1111's names, and their update rules (k-diffusion v0.0.16 for
// Euler / Euler a / DPM++ 2M; diffusers' DDIMScheduler, eta 0, for DDIM).
#include <torch/types.h>

#include <functional>
#include <string>
#include <vector>

namespace kiln::engine::sampling {

enum class SamplerKind { Euler, EulerAncestral, DpmPP2M, Ddim };
enum class SigmaSchedule { Default, Karras };  // A1111 "Automatic" and "Karras"

struct SamplerSpec {
  std::string name;  // canonical A1111 name
  SamplerKind kind = SamplerKind::Euler;
  SigmaSchedule schedule = SigmaSchedule::Default;
};

// "Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DDIM" (case-insensitive). Unknown names throw
// Error(InvalidArgument) listing the valid ones.
SamplerSpec sampler_by_name(const std::string& name);
std::vector<std::string> sampler_names();

// D(x, σ): the guided denoised estimate. σ is a float32 value held in a double.
using Denoiser = std::function<torch::Tensor(const torch::Tensor& x, double sigma)>;
// The next ancestral noise, shaped like x.
using NoiseSource = std::function<torch::Tensor()>;
// Called once per step after the model ran: step index, total steps, x at the start of the step,
// and the denoised estimate. It may throw to stop (cancellation).
using StepCallback = std::function<void(int step, int total, const torch::Tensor& x, const torch::Tensor& denoised)>;

// sigmas: float32 CPU [n+1], the last 0 for a full run. x starts at noise·sigmas[0] (+ init for img2img).
torch::Tensor sample_euler(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                           const StepCallback& on_step = {});
torch::Tensor sample_euler_ancestral(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                                     const NoiseSource& noise, const StepCallback& on_step = {});
torch::Tensor sample_dpmpp_2m(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                              const StepCallback& on_step = {});

// DDIM, eta 0. eps(x, t) is the guided noise prediction. prev_t = t − stride (stride =
// train_steps // steps of the full schedule); ᾱ of a negative prev_t is ᾱ[0] (set_alpha_to_one false).
// blend_x0, when set, replaces each step's clean estimate (inpainting keeps the original there).
using EpsModel = std::function<torch::Tensor(const torch::Tensor& x, int64_t t)>;
using LatentMap = std::function<torch::Tensor(const torch::Tensor&)>;
torch::Tensor sample_ddim(const EpsModel& eps, torch::Tensor x, const std::vector<int64_t>& timesteps, int64_t stride,
                          const torch::Tensor& alphas_cumprod, const StepCallback& on_step = {},
                          const LatentMap& blend_x0 = {});

}  // namespace kiln::engine::sampling
