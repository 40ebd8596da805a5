// kiln train: a LoRA training on the daemon, followed with a progress bar; kiln grid: the
// validation grid of a trained LoRA (epochs × strengths).
#include <filesystem>
#include <iostream>
#include <sstream>

#include "cli/commands/commands.h"
#include "cli/commands/job_watch.h"
#include "cli/commands/transfers.h"
#include "cli/output.h"
#include "protocol/methods.h"

namespace kiln::cli {

std::string model_reference(const std::string& value);  // commands/models.cpp

namespace {
namespace fs = std::filesystem;

struct TrainArgs {
  std::string base, data, dataset, name, preset, config;
  std::vector<std::string> set;
  bool no_wait = false, json = false;
};

struct GridArgs {
  std::string lora, prompt, prompt2, negative, model, strengths, epochs = "all", out, sampler;
  std::optional<int64_t> seed;
  std::optional<int> steps, width, height;
  std::optional<double> cfg;
  bool json = false;
};

std::string absolute(const std::string& path) { return fs::absolute(path).lexically_normal().string(); }

std::vector<double> parse_numbers(const std::string& text, const std::string& option) {
  std::vector<double> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      std::size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (item.find_first_not_of(" ", used) != std::string::npos) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw CLI::ValidationError(option, "'" + item + "' is not a number (give e.g. 0.2,0.4,0.6)");
    }
  }
  return out;
}

void print_train_result(const Json& result) {
  std::cout << "LoRA '" << result.value("lora", "") << "': " << result.value("epochs", 0) << " epochs, "
            << result.value("steps", 0) << " steps, final average loss " << result.value("final_loss_avg", 0.0) << "\n";
  for (const Json& f : result.value("files", Json::array())) std::cout << "  file    " << f.get<std::string>() << "\n";
  std::cout << "  loss    " << result.value("loss_curve", "") << "\n"
            << "  config  " << result.value("config", "") << "\n"
            << "  folder  " << result.value("folder", "") << "\n";
  for (const Json& w : result.value("warnings", Json::array())) std::cerr << "kiln: warning: " << w.get<std::string>() << "\n";
  std::cout << "Use it with <lora:" << result.value("lora", "") << ":0.8> in a prompt; compare epochs with `kiln grid --lora "
            << result.value("lora", "") << "`.\n";
}
}  // namespace

void add_train_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "train a LoRA (kohya-compatible) on the daemon, with live progress and samples");
  cmd->add_option("--base", a->base, "base model: a registered name or a checkpoint path")->required();
  auto* data = cmd->add_option("--data", a->data, "a kohya train_data_dir (N_name subfolders of images + captions)");
  auto* dataset = cmd->add_option("--dataset", a->dataset, "a Kiln dataset name (kiln dataset list)");
  data->excludes(dataset);
  cmd->add_option("--name", a->name, "the LoRA's name: files NAME-000001.safetensors ... NAME.safetensors")->required();
  cmd->add_option("--preset", a->preset, "product, character, anime, style or custom")
      ->check(CLI::IsMember({"product", "character", "anime", "style", "custom"}));
  cmd->add_option("--config", a->config, "a kohya TOML or a JSON config file")->check(CLI::ExistingFile);
  cmd->add_option("--set", a->set, "key=value in kohya's names, applied last (repeatable), e.g. --set network_dim=16");
  cmd->add_flag("--no-wait", a->no_wait, "queue the job, print its id and return");
  cmd->add_flag("--json", a->json, "print the final job record as JSON");
  cmd->callback([a, &global, &result] {
    if (a->data.empty() && a->dataset.empty()) throw CLI::ValidationError("--data", "give --data DIR or --dataset NAME");
    auto client = connect(global);
    Json params{{"base", model_reference(a->base)}, {"name", a->name}};
    if (!a->data.empty()) {
      // A kohya folder is the daemon machine's; locally, relative paths are made absolute here.
      if (client->is_remote() && !fs::path(a->data).is_absolute())
        throw CLI::ValidationError("--data", "with a remote daemon, --data names a folder on the daemon's machine: give its "
                                             "absolute path there, or use --dataset (kiln dataset create uploads pictures)");
      params["data"] = client->is_remote() ? a->data : absolute(a->data);
    }
    if (!a->dataset.empty()) params["dataset"] = a->dataset;
    if (!a->preset.empty()) params["preset"] = a->preset;
    if (!a->config.empty()) params["config_file"] = file_for_daemon(*client, a->config);  // uploaded to a remote daemon
    if (!a->set.empty()) params["set"] = a->set;
    const Json job = client->call(protocol::method::kTrain, params);
    const std::string id = job.at("id");
    if (a->no_wait) {
      if (a->json) print_json(job);
      else std::cout << "queued training job " << id << " (kiln jobs watch " << id << ")\n";
      return;
    }
    std::string last_sample;
    Json final_record;
    result.exit_code = watch_job(*client, id, false, &final_record, [&last_sample](const Json& record) {
      const std::string sample = record.at("progress").at("extra").value("last_sample", "");
      if (sample.empty() || sample == last_sample) return std::string();
      last_sample = sample;
      return "sample: " + sample;
    });
    if (a->json) print_json(final_record);
    else if (result.exit_code == kExitOk) print_train_result(final_record.at("result"));
  });

  auto g = std::make_shared<GridArgs>();
  auto* grid = app.add_subcommand("grid", "draw a LoRA's validation grid: its epoch files × strengths, one seed and prompt");
  grid->add_option("--lora", g->lora, "LoRA name (kiln loras list)")->required();
  grid->add_option("--prompt", g->prompt, "prompt (default: the LoRA's trigger word)");
  grid->add_option("--prompt2", g->prompt2, "a second prompt that changes hair, clothes or background (more rows)");
  grid->add_option("--negative", g->negative, "negative prompt");
  grid->add_option("--model", g->model, "base model (default: the one the LoRA was trained on)");
  grid->add_option("--seed", g->seed, "one seed for every cell (default 1234)");
  grid->add_option("--strengths", g->strengths, "comma-separated strengths (default 0.1,0.2,...,1.0)");
  grid->add_option("--epochs", g->epochs, "all, or comma-separated epoch numbers (e.g. 1,3,5)")->capture_default_str();
  grid->add_option("--steps", g->steps, "sampling steps (default 20)");
  grid->add_option("--cfg", g->cfg, "CFG scale (default 7)");
  grid->add_option("--sampler", g->sampler, "sampler (default Euler a)");
  grid->add_option("--width", g->width, "cell width (default: the training resolution)");
  grid->add_option("--height", g->height, "cell height (default: the training resolution)");
  grid->add_option("--out", g->out, "where to write the PNG (default: grid.png in the LoRA's folder)");
  grid->add_flag("--json", g->json, "print the final job record as JSON");
  grid->callback([g, &global, &result] {
    Json params{{"lora", g->lora}};
    if (!g->prompt.empty()) params["prompt"] = g->prompt;
    if (!g->prompt2.empty()) params["prompt2"] = g->prompt2;
    if (!g->negative.empty()) params["negative"] = g->negative;
    if (!g->model.empty()) params["model"] = model_reference(g->model);
    if (g->seed) params["seed"] = *g->seed;
    if (!g->strengths.empty()) params["strengths"] = parse_numbers(g->strengths, "--strengths");
    if (g->epochs != "all") {
      Json epochs = Json::array();
      for (double e : parse_numbers(g->epochs, "--epochs")) epochs.push_back(static_cast<int>(e));
      params["epochs"] = epochs;
    }
    if (g->steps) params["steps"] = *g->steps;
    if (g->cfg) params["cfg"] = *g->cfg;
    if (!g->sampler.empty()) params["sampler"] = g->sampler;
    if (g->width) params["width"] = *g->width;
    if (g->height) params["height"] = *g->height;
    auto client = connect(global);
    // A remote daemon writes the grid into the LoRA's folder there; it is downloaded to --out.
    if (!g->out.empty() && !client->is_remote()) params["out"] = absolute(g->out);
    const Json job = client->call(protocol::method::kLoraGrid, params);
    Json final_record;
    result.exit_code = watch_job(*client, job.at("id"), false, &final_record);
    if (result.exit_code == kExitOk && client->is_remote() && !g->out.empty()) {
      fetch_file(*client, final_record.at("result").value("png", ""), g->out);
      final_record["result"]["png"] = fs::absolute(g->out).string();
    }
    if (g->json) print_json(final_record);
    else if (result.exit_code == kExitOk) std::cout << "wrote " << final_record.at("result").value("png", "") << "\n";
  });
}

}  // namespace kiln::cli
