#include "engine/lora/train_benchmark.h"

#include <torch/torch.h>

#include <chrono>

#include "engine/device.h"
#include "engine/lora/network.h"
#include "engine/lora/trainer.h"
#include "engine/memory.h"
#include "engine/text/conditioning_sdxl.h"

namespace kiln::engine::lora {

TrainBenchmarkResult benchmark_train(const models::StableDiffusion& model, const TrainBenchmarkRun& run) {
  TrainBenchmarkResult r;
  r.run = run;
  r.device = describe_device(model.device);
  NetworkOptions net_options;
  net_options.dim = run.rank;
  net_options.alpha = run.alpha;
  net_options.text_encoder = run.train_text_encoder;
  auto network = LoraNetwork::create(model, net_options, /*seed=*/1);
  for (const auto& p : network->parameters()) r.lora_parameters += p.numel();

  TrainerOptions o;
  o.learning_rate = 1e-4;
  o.optimizer.type = run.optimizer;
  o.gradient_checkpointing = run.gradient_checkpointing;
  o.seed = 1;
  LoraTrainer trainer(model, *network, o);

  const int64_t B = run.batch_size;
  auto gen = at::detail::createCPUGenerator(7);
  TrainBatch batch;
  if (run.cache_latents)
    batch.latents = torch::randn({B, 4, run.height / 8, run.width / 8}, gen, torch::kFloat32);
  else
    batch.images = torch::rand({B, 3, run.height, run.width}, gen, torch::kFloat32) * 2 - 1;
  // A caption of ordinary length: BOS, 20 tokens, EOS padding.
  batch.input_ids = torch::full({B, 77}, 49407, torch::kLong);
  batch.input_ids.narrow(1, 0, 1).fill_(49406);
  batch.input_ids.narrow(1, 1, 20).copy_(torch::randint(300, 40000, {B, 20}, gen, torch::kLong));
  if (model.traits().size_conditioning) {
    // SDXL: the second encoder's 0-padded ids and each image's size conditioning.
    batch.input_ids_2 = zero_after_first_eos(batch.input_ids);
    batch.size_conditioning = torch::tensor({run.height, run.width, int64_t{0}, int64_t{0}, run.height, run.width},
                                            torch::kFloat32)
                                  .repeat({B, 1});
  }

  r.rss_before_bytes = current_rss_bytes();
  reset_peak_rss();
  reset_peak_device_bytes(model.device);
  using clock = std::chrono::steady_clock;
  auto timed_step = [&] {
    const auto t0 = clock::now();
    const auto res = trainer.step(batch);
    if (model.device.device.is_cuda()) torch::cuda::synchronize();
    r.losses.push_back(res.loss);
    return std::chrono::duration<double>(clock::now() - t0).count();
  };
  r.warmup_seconds = timed_step();
  for (int i = 0; i < run.steps; ++i) r.step_seconds.push_back(timed_step());
  r.peak_rss_bytes = peak_rss_bytes();
  r.peak_device_bytes = peak_device_bytes(model.device);
  double sum = 0;
  for (double s : r.step_seconds) sum += s;
  r.mean_step_seconds = r.step_seconds.empty() ? r.warmup_seconds : sum / static_cast<double>(r.step_seconds.size());
  r.optimizer_state_bytes = trainer.optimizer().state_bytes();
  if (run.profile) {
    OpProfile profile;
    trainer.step(batch);
    r.step_profile = profile.stop();
  }
  return r;
}

nlohmann::json to_json(const TrainBenchmarkResult& r) {
  const double mib = 1 << 20;
  nlohmann::json j = {{"model", r.run.model},
          {"device", r.device},
          {"width", r.run.width},
          {"height", r.run.height},
          {"batch_size", r.run.batch_size},
          {"rank", r.run.rank},
          {"optimizer", r.run.optimizer},
          {"gradient_checkpointing", r.run.gradient_checkpointing},
          {"cache_latents", r.run.cache_latents},
          {"train_text_encoder", r.run.train_text_encoder},
          {"lora_parameters", r.lora_parameters},
          {"optimizer_state_mib", double(r.optimizer_state_bytes) / mib},
          {"warmup_step_seconds", r.warmup_seconds},
          {"step_seconds", r.step_seconds},
          {"mean_step_seconds", r.mean_step_seconds},
          {"rss_before_mib", double(r.rss_before_bytes) / mib},
          {"peak_rss_mib", double(r.peak_rss_bytes) / mib},
          {"losses", r.losses}};
  if (r.peak_device_bytes) j["peak_device_mib"] = double(*r.peak_device_bytes) / mib;
  if (r.step_profile) j["step_profile"] = to_json(*r.step_profile, 40);
  return j;
}

}  // namespace kiln::engine::lora
