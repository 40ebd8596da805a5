// kiln bench generate: generation speed and peak memory, measured by the daemon on its device.
#include <iostream>
#include <optional>

#include "cli/commands/commands.h"
#include "cli/commands/job_watch.h"
#include "cli/output.h"
#include "protocol/methods.h"

namespace kiln::cli {

std::string model_reference(const std::string& value);  // commands/models.cpp

void add_bench_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result) {
  auto* bench = app.add_subcommand("bench", "measure Kiln's speed");
  bench->require_subcommand(1);
  add_bench_ipc_command(*bench, global, result);
  add_bench_generate_command(*bench, global, result);
  add_bench_train_command(*bench, global, result);
}

void add_bench_generate_command(CLI::App& bench, const GlobalOptions& global, CommandResult& result) {
  struct Args {
    std::string model = "sd15-random", sampler = "Euler a";
    std::optional<int> width, height;  // unset: the model's size (512² SD1.x, 1024² SDXL)
    int steps = 4;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = bench.add_subcommand("generate", "per-step time and peak memory of generation on the daemon's device");
  cmd->add_option("--model", a->model,
                  "sd15-random (full-size SD1.5, random weights), sdxl-random (full-size SDXL), a model name or a path")
      ->capture_default_str();
  cmd->add_option("--width", a->width, "default: the model's (512 SD1.x, 1024 SDXL)");
  cmd->add_option("--height", a->height, "default: the model's (512 SD1.x, 1024 SDXL)");
  cmd->add_option("--steps", a->steps)->check(CLI::Range(1, 100))->capture_default_str();
  cmd->add_option("--sampler", a->sampler)->capture_default_str();
  cmd->add_flag("--json", a->json, "print the measurements as JSON");
  cmd->callback([&global, &result, a] {
    auto client = connect(global);
    const bool random = a->model == "sd15-random" || a->model == "sdxl-random";
    Json params{{"model", random ? a->model : model_reference(a->model)}, {"steps", a->steps}, {"sampler", a->sampler}};
    if (a->width) params["width"] = *a->width;
    if (a->height) params["height"] = *a->height;
    const Json job = client->call(protocol::method::kBenchGenerate, params);
    Json record;
    result.exit_code = watch_job(*client, job.at("id"), false, &record);
    if (result.exit_code != kExitOk) return;
    const Json& r = record.at("result");
    if (a->json) {
      print_json(r);
      return;
    }
    char line[512];
    std::snprintf(line, sizeof line,
                  "%s at %dx%d, %d steps of %s on %s\n"
                  "  load %.1f s   text encoder %.2f s   per step %.3f s   VAE decode %.2f s (first %.2f s)   total %.1f s\n"
                  "  resident memory %s after load, %s at peak\n",
                  a->model.c_str(), r.value("width", 0), r.value("height", 0), a->steps, a->sampler.c_str(),
                  r.value("device", "?").c_str(),
                  r.value("load_seconds", 0.0), r.value("text_encoder_seconds", 0.0), r.value("mean_step_seconds", 0.0),
                  r.value("decode_seconds", 0.0), r.value("decode_first_seconds", 0.0), r.value("total_seconds", 0.0),
                  format_bytes(r.value("rss_before_mib", 0.0) * 1048576).c_str(),
                  format_bytes(r.value("peak_rss_mib", 0.0) * 1048576).c_str());
    std::cout << line;
  });
}

}  // namespace kiln::cli
