// bench_train: LoRA training speed and memory, as JSON on stdout.
//   sd15-tiny   the reference fixture model (tiny widths), 64×64
//   sd15-random a full-size SD1.5 architecture with random weights, 512×512 (no download needed)
//   sdxl-random with --full sdxl: a full-size SDXL architecture with random weights, 1024×1024,
//               U-Net only (kohya's SDXL default)
// Each model runs with and without gradient checkpointing, with cached latents and with the VAE
// encoding the pixels every step (--checkpointing on|off and --latents cached|encoded pick one).
// Every configuration runs in its own child process, so that its peak resident memory is its own.
// Usage: bench_train [--device cpu|cuda|auto] [--precision auto|fp32|fp16|bf16] [--tiny PATH] [--size PX]
//                    [--steps N] [--rank R] [--batch B] [--optimizer NAME] [--full sd15|sdxl]
//                    [--checkpointing both|on|off] [--latents both|cached|encoded] [--no-tiny] [--no-full]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/device.h"
#include "engine/error.h"
#include "engine/lora/train_benchmark.h"
#include "engine/models/stable_diffusion.h"

namespace {

using kiln::engine::lora::TrainBenchmarkRun;

struct Settings {
  std::string device = "auto", precision = "auto", tiny = KILN_BENCH_TINY_MODEL, full = "sd15";
};

// Runs one configuration in a child process and returns its JSON (or an error object).
nlohmann::json run_isolated(const Settings& s, const TrainBenchmarkRun& run, bool full_size) {
  int fds[2];
  if (pipe(fds) != 0) return {{"error", "pipe failed"}};
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    nlohmann::json out;
    try {
      const auto choice = kiln::engine::choose_device(s.device, s.precision);
      kiln::engine::use_all_cpu_cores();
      const auto t = std::chrono::steady_clock::now();
      const auto model = !full_size         ? kiln::engine::models::StableDiffusion::open(s.tiny, choice)
                         : s.full == "sdxl" ? kiln::engine::models::make_sdxl_random(choice, 0)
                                            : kiln::engine::models::make_sd15_random(choice, 0);
      const double load = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
      out = kiln::engine::lora::to_json(kiln::engine::lora::benchmark_train(model, run));
      out["load_seconds"] = load;
    } catch (const std::exception& e) {
      out = {{"model", run.model}, {"error", e.what()}};
    }
    const std::string text = out.dump();
    if (write(fds[1], text.data(), text.size()) < 0) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (text.empty())
    return {{"model", run.model}, {"error", "the benchmark process died (status " + std::to_string(status) + ")"}};
  return nlohmann::json::parse(text);
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  int64_t size = 0, rank = 32, batch = 1;  // size 0: the full model's own (512 or 1024)
  std::string checkpointing = "both", latents = "both";
  int steps = 2;
  std::string optimizer = "AdamW";
  bool run_tiny = true, run_full = true;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw kiln::engine::Error(kiln::engine::ErrorKind::InvalidArgument, a + " needs a value");
        return argv[++i];
      };
      if (a == "--device")
        s.device = value();
      else if (a == "--precision")
        s.precision = value();
      else if (a == "--tiny")
        s.tiny = value();
      else if (a == "--size")
        size = std::stoll(value());
      else if (a == "--steps")
        steps = std::stoi(value());
      else if (a == "--rank")
        rank = std::stoll(value());
      else if (a == "--batch")
        batch = std::stoll(value());
      else if (a == "--optimizer")
        optimizer = value();
      else if (a == "--full")
        s.full = value();
      else if (a == "--checkpointing")
        checkpointing = value();
      else if (a == "--latents")
        latents = value();
      else if (a == "--no-tiny")
        run_tiny = false;
      else if (a == "--no-full")
        run_full = false;
      else {
        std::cerr << "unknown option " << a << " (see the comment at the top of bench_train.cpp)\n";
        return 2;
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_train: " << e.what() << "\n";
    return 2;
  }
  if (s.full != "sd15" && s.full != "sdxl") {
    std::cerr << "bench_train: --full takes sd15 or sdxl\n";
    return 2;
  }
  const bool xl = s.full == "sdxl";
  nlohmann::json out = nlohmann::json::array();
  for (const bool full : {false, true}) {
    if ((full && !run_full) || (!full && !run_tiny)) continue;
    for (const bool cached : {true, false}) {
      if ((cached && latents == "encoded") || (!cached && latents == "cached")) continue;
      for (const bool ckpt : {false, true}) {
        if ((ckpt && checkpointing == "off") || (!ckpt && checkpointing == "on")) continue;
        TrainBenchmarkRun run;
        run.model = full ? (xl ? "sdxl-random" : "sd15-random") : "sd15-tiny";
        run.width = run.height = full ? (size > 0 ? size : (xl ? 1024 : 512)) : 64;
        run.train_text_encoder = !(full && xl);  // kohya's SDXL guides: the U-Net only
        run.batch_size = batch;
        run.steps = full ? steps : 5;
        run.rank = rank;
        run.alpha = static_cast<double>(rank) / 2;
        run.gradient_checkpointing = ckpt;
        run.cache_latents = cached;
        run.optimizer = optimizer;
        out.push_back(run_isolated(s, run, full));
        std::cerr << out.back().dump() << "\n";
      }
    }
  }
  std::cout << out.dump(2) << "\n";
  return 0;
}
