#pragma once
// Measures LoRA training speed and memory: time per optimizer step (forward + backward + update)
// and peak resident memory, with or without gradient checkpointing, with cached latents or with
// the VAE encoding the pixels every step. Used by bench/bench_train and, later, `kiln bench train`.
#include <cstdint>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/models/stable_diffusion.h"
#include "engine/op_profile.h"

namespace kiln::engine::lora {

struct TrainBenchmarkRun {
  std::string model;  // a label: "sd15-tiny", "sd15-random"
  int64_t width = 512, height = 512;
  int64_t batch_size = 1;
  int steps = 3;  // measured steps; one more runs first as a warm-up
  int64_t rank = 32;
  double alpha = 16;
  bool gradient_checkpointing = false;
  bool cache_latents = true;  // false: the VAE encodes the pixels in every step
  bool train_text_encoder = true;
  std::string optimizer = "AdamW";
  bool profile = false;  // a per-operator profile of one more step, after the measured ones
};

struct TrainBenchmarkResult {
  TrainBenchmarkRun run;
  std::string device;
  int64_t lora_parameters = 0;            // trainable elements
  int64_t optimizer_state_bytes = 0;
  double warmup_seconds = 0;              // the first step
  std::vector<double> step_seconds;
  double mean_step_seconds = 0;
  int64_t rss_before_bytes = 0;           // resident memory with the model loaded
  int64_t peak_rss_bytes = 0;             // highest resident memory during the steps (Linux)
  std::optional<int64_t> peak_device_bytes;  // highest GPU tensor memory during the steps (CUDA)
  std::vector<double> losses;
  std::optional<OpProfileResult> step_profile;  // with TrainBenchmarkRun::profile
};

// Trains a fresh LoRA on `model` with random latents/pixels and captions for the run's steps,
// then detaches it again. Resets the process's peak-RSS mark first where the OS allows.
TrainBenchmarkResult benchmark_train(const models::StableDiffusion& model, const TrainBenchmarkRun& run);

nlohmann::json to_json(const TrainBenchmarkResult& result);

}  // namespace kiln::engine::lora
