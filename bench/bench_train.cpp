// bench_train: LoRA training speed and memory, as JSON on stdout.
//   sd15-tiny   the reference fixture model (tiny widths), 64×64
//   sd15-random a full-size SD1.5 architecture with random weights, 512×512 (no download needed)
//   sdxl-random with --full sdxl: a full-size SDXL architecture with random weights, 1024×1024,
//               U-Net only (kohya's SDXL default)
// By default each model runs the case ../shared/refbench/perf/side_by_side.sh runs beside kohya:
// cached latents, no gradient checkpointing, UNet + text-encoder LoRA. `--checkpointing both|on`
// and `--latents both|encoded` add the other configurations; `--profile` adds a per-operator table
// of one more step. Every configuration runs in its own child process, so that its peak resident
// memory is its own. `bench_train --help` lists the options.
#include <CLI/CLI.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/device.h"
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
      const auto result = kiln::engine::lora::benchmark_train(model, run);
      if (result.step_profile)
        std::cerr << "== " << run.model << ": one training step\n" << kiln::engine::format_table(*result.step_profile, 40);
      out = kiln::engine::lora::to_json(result);
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
  CLI::App app{"LoRA training speed and memory of Kiln's engine (JSON on stdout)"};
  Settings s;
  int64_t size = 0, rank = 32, batch = 1;  // size 0: the full model's own (512 or 1024)
  std::string checkpointing = "off", latents = "cached", optimizer = "AdamW";
  int steps = 2;
  bool no_tiny = false, no_full = false, profile = false;
  app.add_option("--device", s.device, "cpu, cuda or auto")->capture_default_str();
  app.add_option("--precision", s.precision, "auto, fp32, fp16 or bf16")->capture_default_str();
  app.add_option("--tiny", s.tiny, "the tiny model file")->capture_default_str();
  app.add_option("--full", s.full, "the full-size architecture")->check(CLI::IsMember({"sd15", "sdxl"}))->capture_default_str();
  app.add_option("--size", size, "the full model's side in pixels (default: its own, 512 or 1024)")->check(CLI::Range(0, 4096));
  app.add_option("--steps", steps, "measured steps of the full model, after one warm-up step")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--rank", rank)->check(CLI::Range(1, 1024))->capture_default_str();
  app.add_option("--batch", batch)->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--optimizer", optimizer)->capture_default_str();
  app.add_option("--checkpointing", checkpointing, "gradient checkpointing")
      ->check(CLI::IsMember({"off", "on", "both"}))
      ->capture_default_str();
  app.add_option("--latents", latents, "cached latents, or the VAE encoding pixels every step")
      ->check(CLI::IsMember({"cached", "encoded", "both"}))
      ->capture_default_str();
  app.add_flag("--no-tiny", no_tiny, "skip the tiny model");
  app.add_flag("--no-full", no_full, "skip the full-size model");
  app.add_flag("--profile", profile, "a per-operator profile of one more step");
  CLI11_PARSE(app, argc, argv);
  const bool run_tiny = !no_tiny, run_full = !no_full;
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
        run.profile = profile;
        out.push_back(run_isolated(s, run, full));
        std::cerr << out.back().dump() << "\n";
      }
    }
  }
  std::cout << out.dump(2) << "\n";
  return 0;
}
