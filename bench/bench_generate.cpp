// bench_generate: generation speed and memory of the engine, as JSON on stdout.
//   sd15-tiny   the reference fixture model (tiny widths), 64×64
//   sd15-random a full-size SD1.5 architecture with random weights, 512×512 (no download needed)
//   sdxl-random with --full sdxl: a full-size SDXL architecture (2.6 G UNet, both text encoders)
//               with random weights, 1024×1024
// Usage: bench_generate [--device cpu|cuda|auto] [--precision auto|fp32|fp16|bf16] [--tiny PATH]
//                       [--tiny-steps N] [--full-steps N] [--full sd15|sdxl] [--size PX] [--sampler NAME]
//                       [--no-tiny] [--no-full]
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/device.h"
#include "engine/error.h"
#include "engine/models/stable_diffusion.h"
#include "engine/sampling/benchmark.h"

namespace {
using kiln::engine::sampling::BenchmarkRun;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

int main(int argc, char** argv) {
  std::string device = "auto", precision = "auto", tiny = KILN_BENCH_TINY_MODEL, sampler = "Euler a";
  int tiny_steps = 8, full_steps = 3;
  int64_t size = 0;  // 0: the full model's own (512 or 1024)
  std::string full = "sd15";
  bool run_tiny = true, run_full = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw kiln::engine::Error(kiln::engine::ErrorKind::InvalidArgument, a + " needs a value");
      return argv[++i];
    };
    if (a == "--device")
      device = value();
    else if (a == "--precision")
      precision = value();
    else if (a == "--tiny")
      tiny = value();
    else if (a == "--tiny-steps")
      tiny_steps = std::stoi(value());
    else if (a == "--full-steps")
      full_steps = std::stoi(value());
    else if (a == "--size")
      size = std::stoll(value());
    else if (a == "--full")
      full = value();
    else if (a == "--sampler")
      sampler = value();
    else if (a == "--no-tiny")
      run_tiny = false;
    else if (a == "--no-full")
      run_full = false;
    else {
      std::cerr << "unknown option " << a << " (see the comment at the top of bench_generate.cpp)\n";
      return 2;
    }
  }
  try {
    const auto choice = kiln::engine::choose_device(device, precision);
    kiln::engine::use_all_cpu_cores();
    nlohmann::json out = nlohmann::json::array();
    if (run_tiny) {
      const auto t = std::chrono::steady_clock::now();
      const auto model = kiln::engine::models::StableDiffusion::open(tiny, choice);
      const double load = seconds_since(t);
      auto r =
          kiln::engine::sampling::benchmark_generate(model, BenchmarkRun{"sd15-tiny", 64, 64, tiny_steps, sampler});
      r.load_seconds = load;
      out.push_back(kiln::engine::sampling::to_json(r));
      std::cerr << out.back().dump() << "\n";
    }
    if (run_full) {
      if (full != "sd15" && full != "sdxl") throw std::runtime_error("--full takes sd15 or sdxl, not " + full);
      const bool xl = full == "sdxl";
      const auto t = std::chrono::steady_clock::now();
      const auto model = xl ? kiln::engine::models::make_sdxl_random(choice, 0) : kiln::engine::models::make_sd15_random(choice, 0);
      const double load = seconds_since(t);
      const int64_t side = size > 0 ? size : model.traits().default_size;
      auto r = kiln::engine::sampling::benchmark_generate(
          model, BenchmarkRun{xl ? "sdxl-random" : "sd15-random", side, side, full_steps, sampler});
      r.load_seconds = load;
      out.push_back(kiln::engine::sampling::to_json(r));
    }
    std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bench_generate: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
