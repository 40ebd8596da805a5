#include "engine/sampling/benchmark.h"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <numeric>

#include "engine/conditioning.h"
#include "engine/memory.h"
#include "engine/sampling/pipeline.h"

namespace kiln::engine::sampling {

namespace {
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Forces queued device work to finish so wall-clock times mean something on GPUs too.
void sync(const torch::Tensor& t) {
  (void)t.sum().item<double>();
}

}  // namespace

BenchmarkResult benchmark_generate(const models::StableDiffusion& model, const BenchmarkRun& run) {
  BenchmarkResult r;
  r.run = run;
  r.device = describe_device(model.device);
  r.rss_before_bytes = current_rss_bytes();
  reset_peak_rss();
  reset_peak_device_bytes(model.device);
  const auto start = Clock::now();

  Conditioning cond;
  {
    // An empty prompt and negative prompt, conditioned by the model family's rules.
    c10::InferenceMode inference;
    const auto t = Clock::now();
    PromptOptions options;
    options.width = run.width;
    options.height = run.height;
    const auto prompt = encode_prompt(model, "", options);
    options.negative = true;
    const auto negative = encode_prompt(model, "", options);
    sync(negative.context);
    r.text_encoder_seconds = seconds_since(t);
    cond.cond = prompt.context;
    cond.uncond = negative.context;
    cond.cond_vector = prompt.vector;
    cond.uncond_vector = negative.vector;
  }

  GenerationParams p;
  p.width = run.width;
  p.height = run.height;
  p.steps = run.steps;
  p.sampler = run.sampler;
  p.batch_size = run.batch_size;
  p.seed = 1;
  p.preview_every = 0;
  auto last = Clock::now();
  PipelineHooks hooks;
  hooks.on_step = [&](const Progress& progress) {
    sync(progress.denoised);
    r.step_seconds.push_back(seconds_since(last));
    last = Clock::now();
  };
  const auto generated = generate(model, cond, p, hooks);
  r.decode_first_seconds = r.decode_seconds = seconds_since(last);
  r.total_seconds = seconds_since(start);

  // Warm decodes of the same latent, as diffusers' benchmark times them (after a first, untimed one).
  {
    c10::InferenceMode inference;
    const auto latent = generated.latents.narrow(0, 0, 1).to(model.device.device) / model.latent_scale();
    std::vector<double> warm;
    for (int i = 0; i < run.decode_repeats; ++i) {
      const auto t = Clock::now();
      sync(model.vae->decode(latent));
      warm.push_back(seconds_since(t));
    }
    if (!warm.empty()) {
      std::sort(warm.begin(), warm.end());
      r.decode_seconds = warm[warm.size() / 2];
    }
    if (run.profile) {
      OpProfile profile;
      sync(model.vae->decode(latent));
      r.decode_profile = profile.stop();

      // One guided UNet pass: the batch [cond, uncond] a sampler step runs.
      const auto x = at::cat({latent, latent}) * model.latent_scale();
      auto batched = [](const torch::Tensor& c) { return c.dim() == 2 ? c.unsqueeze(0) : c; };
      const auto context = at::cat({batched(cond.cond), batched(cond.uncond)}).to(x.device(), x.dtype());
      const auto t = torch::full({2}, 500.0, x.options());
      const auto vector = cond.cond_vector.defined()
                              ? at::cat({batched(cond.cond_vector), batched(cond.uncond_vector)}).to(x.device(), x.dtype())
                              : torch::Tensor();
      sync(model.unet->forward(x, t, context, vector));  // warm, like the steps were
      OpProfile step_profile;
      sync(model.unet->forward(x, t, context, vector));
      r.step_profile = step_profile.stop();
    }
  }
  r.peak_rss_bytes = peak_rss_bytes();
  r.peak_device_bytes = peak_device_bytes(model.device);

  const auto& s = r.step_seconds;
  if (s.size() > 1)
    r.mean_step_seconds = std::accumulate(s.begin() + 1, s.end(), 0.0) / double(s.size() - 1);
  else if (!s.empty())
    r.mean_step_seconds = s.front();
  return r;
}

nlohmann::json to_json(const BenchmarkResult& r) {
  nlohmann::json j = {{"model", r.run.model},
          {"device", r.device},
          {"width", r.run.width},
          {"height", r.run.height},
          {"steps", r.run.steps},
          {"sampler", r.run.sampler},
          {"batch_size", r.run.batch_size},
          {"load_seconds", r.load_seconds},
          {"text_encoder_seconds", r.text_encoder_seconds},
          {"step_seconds", r.step_seconds},
          {"mean_step_seconds", r.mean_step_seconds},
          {"decode_first_seconds", r.decode_first_seconds},
          {"decode_seconds", r.decode_seconds},
          {"total_seconds", r.total_seconds},
          {"rss_before_mib", double(r.rss_before_bytes) / (1 << 20)},
          {"peak_rss_mib", double(r.peak_rss_bytes) / (1 << 20)}};
  if (r.step_profile) j["step_profile"] = to_json(*r.step_profile);
  if (r.decode_profile) j["decode_profile"] = to_json(*r.decode_profile);
  if (r.peak_device_bytes) j["peak_device_mib"] = double(*r.peak_device_bytes) / (1 << 20);
  if (!r.step_seconds.empty() && r.mean_step_seconds > 0) j["iterations_per_second"] = 1.0 / r.mean_step_seconds;
  return j;
}

}  // namespace kiln::engine::sampling
