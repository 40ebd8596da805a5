// bench_generate: generation speed and memory of the engine, as JSON on stdout.
//   sd15-tiny   the reference fixture model (tiny widths), 64×64
//   sd15-random a full-size SD1.5 architecture with random weights, 512×512 (no download needed)
//   sdxl-random with --full sdxl: a full-size SDXL architecture (2.6 G UNet, both text encoders)
//               with random weights, 1024×1024
// The full-size case is the one ../shared/refbench/perf/side_by_side.sh runs beside diffusers: the
// guided UNet step (batch [cond, uncond]) and the median of warm VAE decodes. `--profile` adds
// per-operator tables (LibTorch's profiler) of one UNet pass and one decode, on stderr and in the JSON.
#include <CLI/CLI.hpp>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/device.h"
#include "engine/models/stable_diffusion.h"
#include "engine/sampling/benchmark.h"

namespace {
using kiln::engine::sampling::BenchmarkResult;
using kiln::engine::sampling::BenchmarkRun;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void print_profiles(const BenchmarkResult& r) {
  if (r.step_profile)
    std::cerr << "== " << r.run.model << ": one guided UNet pass\n" << kiln::engine::format_table(*r.step_profile);
  if (r.decode_profile)
    std::cerr << "== " << r.run.model << ": one VAE decode\n" << kiln::engine::format_table(*r.decode_profile);
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Generation speed and memory of Kiln's engine (JSON on stdout)"};
  std::string device = "auto", precision = "auto", tiny = KILN_BENCH_TINY_MODEL, sampler = "Euler a", full = "sd15";
  int tiny_steps = 8, full_steps = 3, decode_repeats = 2;
  int64_t size = 0;  // 0: the full model's own (512 or 1024)
  bool no_tiny = false, no_full = false, profile = false;
  app.add_option("--device", device, "cpu, cuda or auto")->capture_default_str();
  app.add_option("--precision", precision, "auto, fp32, fp16 or bf16")->capture_default_str();
  app.add_option("--tiny", tiny, "the tiny model file")->capture_default_str();
  app.add_option("--tiny-steps", tiny_steps)->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--full-steps", full_steps)->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--full", full, "the full-size architecture")->check(CLI::IsMember({"sd15", "sdxl"}))->capture_default_str();
  app.add_option("--size", size, "the full model's side in pixels (default: its own, 512 or 1024)")->check(CLI::Range(0, 4096));
  app.add_option("--sampler", sampler)->capture_default_str();
  app.add_option("--decode-repeats", decode_repeats, "warm VAE decodes after the run (median reported)")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  app.add_flag("--no-tiny", no_tiny, "skip the tiny model");
  app.add_flag("--no-full", no_full, "skip the full-size model");
  app.add_flag("--profile", profile, "per-operator profiles of one UNet pass and one decode");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto choice = kiln::engine::choose_device(device, precision);
    kiln::engine::use_all_cpu_cores();
    nlohmann::json out = nlohmann::json::array();
    if (!no_tiny) {
      const auto t = std::chrono::steady_clock::now();
      const auto model = kiln::engine::models::StableDiffusion::open(tiny, choice);
      const double load = seconds_since(t);
      auto r = kiln::engine::sampling::benchmark_generate(
          model, BenchmarkRun{"sd15-tiny", 64, 64, tiny_steps, sampler, 1, decode_repeats, profile});
      r.load_seconds = load;
      print_profiles(r);
      out.push_back(kiln::engine::sampling::to_json(r));
    }
    if (!no_full) {
      const bool xl = full == "sdxl";
      const auto t = std::chrono::steady_clock::now();
      const auto model = xl ? kiln::engine::models::make_sdxl_random(choice, 0) : kiln::engine::models::make_sd15_random(choice, 0);
      const double load = seconds_since(t);
      const int64_t side = size > 0 ? size : model.traits().default_size;
      auto r = kiln::engine::sampling::benchmark_generate(
          model, BenchmarkRun{xl ? "sdxl-random" : "sd15-random", side, side, full_steps, sampler, 1, decode_repeats, profile});
      r.load_seconds = load;
      print_profiles(r);
      out.push_back(kiln::engine::sampling::to_json(r));
    }
    std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bench_generate: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
