#pragma once
// Measures generation speed and memory: per-step time of the guided UNet (batch [cond, uncond]),
// text encoding and VAE decode times, and peak resident memory. Used by bench/bench_generate and,
// later, `kiln bench generate`.
#include <cstdint>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/models/stable_diffusion.h"
#include "engine/op_profile.h"

namespace kiln::engine::sampling {

struct BenchmarkRun {
  std::string model;  // a label: "sd15-tiny", "sd15-random"
  int64_t width = 512, height = 512;
  int steps = 4;
  std::string sampler = "Euler a";
  int batch_size = 1;
  int decode_repeats = 2;  // warm VAE decodes after the generation, timed like diffusers' (median)
  bool profile = false;    // per-operator profiles of one guided UNet pass and one warm decode
};

struct BenchmarkResult {
  BenchmarkRun run;
  std::string device;       // describe_device()
  double load_seconds = 0;  // filled by the caller that loaded or built the model
  double text_encoder_seconds = 0;
  std::vector<double> step_seconds;  // one UNet pass (cond + uncond) plus the sampler update each
  double mean_step_seconds = 0;      // over the steps after the first (warm-up), or the only one
  double decode_first_seconds = 0;  // the generation's own decode (cold: first-use costs included)
  double decode_seconds = 0;        // median of the warm decodes (the first one's when there are none)
  double total_seconds = 0;
  int64_t rss_before_bytes = 0;  // resident memory once the model is loaded
  int64_t peak_rss_bytes = 0;    // highest resident memory during the run (Linux; 0 elsewhere)
  std::optional<int64_t> peak_device_bytes;  // highest GPU tensor memory during the run (CUDA)
  std::optional<OpProfileResult> step_profile, decode_profile;  // with BenchmarkRun::profile
};

// Generates one batch with `model` as a user would (prompt states from the model's own text encoder
// for an empty prompt). Resets the process's peak-RSS mark first where the OS allows.
BenchmarkResult benchmark_generate(const models::StableDiffusion& model, const BenchmarkRun& run);

nlohmann::json to_json(const BenchmarkResult& result);

}  // namespace kiln::engine::sampling
