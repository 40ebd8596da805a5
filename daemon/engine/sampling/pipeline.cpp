#include "engine/sampling/pipeline.h"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/sampling/image.h"
#include "engine/sampling/inpainting_model.h"
#include "engine/sampling/mask.h"
#include "engine/sampling/noise.h"
#include "engine/sampling/samplers.h"
#include "engine/sampling/schedule.h"

namespace kiln::engine::sampling {

namespace {
constexpr int64_t kMaxSide = 8192;

void require(bool ok, const std::string& message) {
  if (!ok) throw Error(ErrorKind::InvalidArgument, message);
}

// Circular padding in the UNet and the VAE for the lifetime of this object (tiling).
class CircularPadding {
 public:
  CircularPadding(const models::StableDiffusion& model, bool on) : model_(model), on_(on) {
    if (on_) set(true);
  }
  ~CircularPadding() {
    if (on_) set(false);
  }
  CircularPadding(const CircularPadding&) = delete;
  CircularPadding& operator=(const CircularPadding&) = delete;

 private:
  void set(bool on) const {
    models::set_circular_padding(*model_.unet.ptr(), on);
    models::set_circular_padding(*model_.vae.ptr(), on);
  }
  const models::StableDiffusion& model_;
  bool on_;
};

// What stays the same for every batch of one generation.
struct Plan {
  SamplerSpec sampler;
  DiscreteSchedule schedule = DiscreteSchedule::sd();
  torch::Tensor init_latent;  // [1, 4, h, w] float32 on the device (img2img), sampler scale
  torch::Tensor keep;         // [1, 1, h, w] 1 = keep the original (inpainting)
  torch::Tensor pixel_mask;   // uint8 [H, W] blurred repaint mask, for the final overlay
  torch::Tensor image_conditioning;  // [1, 5, h, w] for inpainting checkpoints
};

Plan make_plan(const models::StableDiffusion& model, const GenerationParams& p) {
  Plan plan;
  plan.sampler = sampler_by_name(p.sampler);
  if (!p.init_image.defined()) {
    if (model.inpainting()) plan.image_conditioning = inpainting_conditioning(model, {}, {}, 1.0, p.height, p.width);
    return plan;
  }
  const auto device = model.unet->device();
  auto image = p.init_image;
  if (p.mask.defined()) {
    plan.pixel_mask = blur_mask(mask_channel(p.mask), p.mask_blur);
    if (p.masked_content == MaskedContent::Fill) image = fill_masked(image, plan.pixel_mask);
    plan.keep = (1 - latent_repaint_mask(plan.pixel_mask, p.height / 8, p.width / 8)).to(device);
  }
  const auto source = image_to_model(image);
  const auto posterior = model.vae->encode(source);
  plan.init_latent = (posterior.mean.to(torch::kFloat32) * model.latent_scale()).to(device);
  if (model.inpainting())
    plan.image_conditioning =
        inpainting_conditioning(model, source, plan.pixel_mask, p.inpainting_mask_weight, p.height, p.width);
  return plan;
}

torch::Tensor run_kdiffusion(const Plan& plan, const GenerationParams& p, const Denoiser& model, ImageNoise& noise,
                             const torch::Tensor& first_noise, const StepCallback& on_step) {
  const auto sigmas = plan.sampler.schedule == SigmaSchedule::Karras ? plan.schedule.karras_sigmas(p.steps)
                                                                     : plan.schedule.default_sigmas(p.steps);
  torch::Tensor x, used = sigmas;
  if (plan.init_latent.defined()) {
    // A1111 img2img: run the last t_enc + 1 steps of the full schedule from the noised original.
    const auto t_enc = static_cast<int64_t>(std::min(p.denoising_strength, 0.999) * p.steps);
    used = sigmas.narrow(0, p.steps - t_enc - 1, t_enc + 2);
    x = plan.init_latent + first_noise * used[0].item<double>();
  } else {
    x = first_noise * sigmas[0].item<double>();
  }
  const auto device = first_noise.device();
  switch (plan.sampler.kind) {
    case SamplerKind::Euler: return sample_euler(model, x, used, on_step);
    case SamplerKind::EulerAncestral:
      return sample_euler_ancestral(
          model, x, used, [&noise, device] { return noise.next(device); }, on_step);
    case SamplerKind::DpmPP2M: return sample_dpmpp_2m(model, x, used, on_step);
    case SamplerKind::Ddim: break;
  }
  throw Error(ErrorKind::Internal, "sampler " + plan.sampler.name + " is not a k-diffusion sampler");
}

torch::Tensor run_ddim(const Plan& plan, const GenerationParams& p, const EpsModel& eps,
                       const torch::Tensor& first_noise, const StepCallback& on_step) {
  const auto ac = alphas_cumprod_diffusers();
  auto timesteps = ddim_timesteps(p.steps);
  const int64_t stride = 1000 / p.steps;
  if (!plan.init_latent.defined()) return sample_ddim(eps, first_noise, timesteps, stride, ac, on_step);

  // diffusers img2img: skip the first steps, noise the original to the first remaining timestep.
  const auto init_steps = std::min<int64_t>(static_cast<int64_t>(p.steps * p.denoising_strength), p.steps);
  timesteps.erase(timesteps.begin(), timesteps.begin() + (p.steps - init_steps));
  const auto init = plan.init_latent.expand_as(first_noise);
  if (timesteps.empty()) return init.clone();
  const float a = ac[timesteps.front()].item<float>();
  const auto x = init * std::sqrt(a) + first_noise * std::sqrt(1.0f - a);
  LatentMap blend;
  if (plan.keep.defined()) {
    const auto keep = plan.keep, repaint = 1 - plan.keep;
    blend = [init, keep, repaint](const torch::Tensor& x0) { return x0 * repaint + init * keep; };
  }
  return sample_ddim(eps, x, timesteps, stride, ac, on_step, blend);
}
}  // namespace

void validate(const GenerationParams& p) {
  require(p.width > 0 && p.height > 0 && p.width % 8 == 0 && p.height % 8 == 0,
          "width and height must be positive multiples of 8 (multiples of 64 work best), got " +
              std::to_string(p.width) + "×" + std::to_string(p.height));
  require(p.width <= kMaxSide && p.height <= kMaxSide,
          "width and height can be at most " + std::to_string(kMaxSide) + " pixels");
  require(p.steps >= 1 && p.steps <= 1000, "steps must be between 1 and 1000");
  require(p.batch_size >= 1 && p.batch_count >= 1, "batch size and batch count must be at least 1");
  require(p.cfg_scale >= 0, "the CFG scale cannot be negative");
  require(p.preview_every >= 0, "preview_every cannot be negative");
  sampler_by_name(p.sampler);
  if (p.init_image.defined()) {
    require(p.init_image.dim() == 3 && p.init_image.size(0) == p.height && p.init_image.size(1) == p.width &&
                p.init_image.size(2) == 3 && p.init_image.scalar_type() == torch::kUInt8,
            "the init image must be RGB bytes [height, width, 3] of the requested size " + std::to_string(p.width) +
                "×" + std::to_string(p.height) + "; resize it first");
    require(p.denoising_strength >= 0 && p.denoising_strength <= 1, "denoising strength must be between 0 and 1");
  }
  if (p.mask.defined()) {
    require(p.init_image.defined(), "a mask needs an init image to inpaint");
    require((p.mask.dim() == 2 || p.mask.dim() == 3) && p.mask.size(0) == p.height && p.mask.size(1) == p.width &&
                p.mask.scalar_type() == torch::kUInt8,
            "the mask must be bytes [height, width] the size of the init image");
    require(p.mask_blur >= 0, "mask blur cannot be negative");
    require(p.inpainting_mask_weight >= 0 && p.inpainting_mask_weight <= 1,
            "the inpainting mask weight must be between 0 and 1");
  }
}

GenerationResult generate(const models::StableDiffusion& model, const Conditioning& conditioning,
                          const GenerationParams& p, const PipelineHooks& hooks) {
  validate(p);
  c10::InferenceMode inference;
  const auto check_cancel = [&hooks] {
    if (hooks.cancelled && hooks.cancelled()) throw Error(ErrorKind::Cancelled, "generation cancelled");
  };
  check_cancel();
  const CircularPadding tiling(model, p.tiling);
  const Plan plan = make_plan(model, p);
  const auto device = model.unet->device();
  const int64_t h = p.height / 8, w = p.width / 8;
  CfgDenoiser denoiser(model.unet, plan.schedule, conditioning, p.cfg_scale, p.batch_size);
  if (plan.keep.defined()) denoiser.set_blend(plan.init_latent, plan.keep);
  if (plan.image_conditioning.defined()) denoiser.set_image_conditioning(plan.image_conditioning);
  // Cancellation is polled before every UNet pass, so a cancelled run wastes no step.
  const Denoiser denoise_fn = [&](const torch::Tensor& x, double sigma) {
    check_cancel();
    return denoiser.denoise(x, sigma);
  };
  const EpsModel eps_fn = [&](const torch::Tensor& x, int64_t t) {
    check_cancel();
    return denoiser.eps(x, static_cast<double>(t));
  };
  // DDIM reproduces the diffusers pipeline, which rounds to bytes; A1111 truncates.
  const auto quantize = plan.sampler.kind == SamplerKind::Ddim ? Quantize::Round : Quantize::Truncate;

  GenerationResult result;
  result.seed = resolve_seed(p.seed);
  std::vector<torch::Tensor> latents;
  for (int b = 0; b < p.batch_count; ++b) {
    check_cancel();
    std::vector<int64_t> seeds;
    for (int i = 0; i < p.batch_size; ++i) seeds.push_back(result.seed + int64_t{b} * p.batch_size + i);
    ImageNoise noise(seeds, {4, h, w});
    const auto first = noise.next(device);

    const StepCallback on_step = [&](int step, int total, const torch::Tensor& x, const torch::Tensor& denoised) {
      if (!hooks.on_step) return;
      Progress progress{step + 1, total, b, p.batch_count, x, denoised, {}};
      if (p.preview_every > 0 && (step + 1) % p.preview_every == 0) progress.preview = latent_preview(denoised[0]);
      hooks.on_step(progress);
    };
    auto x = plan.sampler.kind == SamplerKind::Ddim ? run_ddim(plan, p, eps_fn, first, on_step)
                                                    : run_kdiffusion(plan, p, denoise_fn, noise, first, on_step);
    if (plan.keep.defined()) x = x * (1 - plan.keep) + plan.init_latent * plan.keep;
    check_cancel();

    for (int i = 0; i < p.batch_size; ++i) {
      auto image = model_to_image(model.vae->decode(x.narrow(0, i, 1) / model.latent_scale()), quantize);
      if (plan.pixel_mask.defined()) image = overlay(image, p.init_image, plan.pixel_mask);
      result.images.push_back(image);
      result.seeds.push_back(seeds[i]);
    }
    latents.push_back(x.to(torch::kCPU));
  }
  result.latents = torch::cat(latents);
  return result;
}

}  // namespace kiln::engine::sampling
