// kiln shot: a product shot — a scene generated around a product cut-out whose opaque pixels stay
// exactly as they are.
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <utility>

#include "cli/commands/commands.h"
#include "cli/commands/generation_options.h"
#include "cli/commands/job_watch.h"
#include "cli/image_files.h"
#include "cli/output.h"
#include "protocol/methods.h"

namespace kiln::cli {

std::string model_reference(const std::string& value);  // commands/models.cpp

namespace {
namespace fs = std::filesystem;

struct ShotArgs {
  std::string product, prompt, negative, model, size, at, sampler = "Euler a", out, scene_out;
  std::optional<double> fill, scale;
  int edge = 4, count = 1, steps = 20;
  double harmonize = 0, cfg = 7;
  int64_t seed = -1;
  std::vector<std::string> loras;
  bool json = false;
};

// "768x512" → {768, 512}
std::pair<int, int> parse_size(const std::string& text) {
  int w = 0, h = 0;
  char x = 0, rest = 0;
  std::istringstream in(text);
  if (!(in >> w >> x >> h) || (x != 'x' && x != 'X') || (in >> rest) || w <= 0 || h <= 0)
    throw CLI::ValidationError("--size", "'" + text + "' is not WIDTHxHEIGHT, e.g. 768x512");
  if (w % 8 || h % 8) throw CLI::ValidationError("--size", "width and height must be multiples of 8 (64 is best), got " + text);
  return {w, h};
}

// "12,40" → {12, 40}
std::pair<int, int> parse_point(const std::string& text) {
  int x = 0, y = 0;
  char comma = 0, rest = 0;
  std::istringstream in(text);
  if (!(in >> x >> comma >> y) || comma != ',' || (in >> rest))
    throw CLI::ValidationError("--at", "'" + text + "' is not X,Y (the product's top-left corner in pixels), e.g. 120,200");
  return {x, y};
}

// Without --model: a registered inpainting model if there is one, else the only registered model.
std::string default_model(Client& client) {
  const Json models = client.call(protocol::method::kModelsList).at("models");
  for (const Json& m : models)
    if (m.value("inpainting", false)) return m.at("name");
  if (models.size() == 1) return models[0].at("name");
  if (models.empty()) throw CLI::ValidationError("--model", "no model is registered: add one with `kiln models add PATH` or pass --model PATH");
  std::string names;
  for (const Json& m : models) names += (names.empty() ? "" : ", ") + m.value("name", "");
  throw CLI::ValidationError("--model", "several models are registered (" + names + "); choose one with --model");
}
}  // namespace

void add_shot_command(CLI::App& app, const GlobalOptions& global, CommandResult& result) {
  auto a = std::make_shared<ShotArgs>();
  auto* cmd = app.add_subcommand("shot", "a product shot: a scene generated around a product cut-out, its pixels kept exactly");
  cmd->add_option("--product", a->product, "the product cut-out: an image with alpha (PNG, WebP, TIFF)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--prompt", a->prompt, "the scene; <lora:NAME:W> and trigger words work as in generate")->required();
  cmd->add_option("--negative", a->negative, "negative prompt");
  cmd->add_option("--model", a->model, "registered model name or checkpoint path (default: a registered inpainting model)");
  cmd->add_option("--size", a->size, "output WIDTHxHEIGHT, multiples of 8 (default: the model's, 512x512 SD1.x / 1024x1024 SDXL)");
  cmd->add_option("--fill", a->fill, "automatic placement: the product spans this fraction of the frame (default 0.5)")
      ->check(CLI::Range(0.01, 1.0));
  cmd->add_option("--at", a->at, "explicit placement: X,Y of the product's top-left corner in the output");
  cmd->add_option("--scale", a->scale, "with --at: the product's scale; 1 keeps its pixels 1:1 (default 1)")
      ->check(CLI::Range(0.01, 64.0));
  cmd->add_option("--edge", a->edge, "pixels of the product's edge repainted for shadow and transition")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  cmd->add_option("--count", a->count, "variations; variation k gets seed + k")->check(CLI::Range(1, 16))->capture_default_str();
  cmd->add_option("--harmonize", a->harmonize, "0..0.5: a light pass so light and colour fit (the product's interior is kept)")
      ->check(CLI::Range(0.0, 0.5))
      ->capture_default_str();
  cmd->add_option("--sampler", a->sampler, "Euler, Euler a, DPM++ 2M, DPM++ 2M Karras, DDIM")->capture_default_str();
  cmd->add_option("--steps", a->steps, "sampling steps")->check(CLI::Range(1, 500))->capture_default_str();
  cmd->add_option("--cfg", a->cfg, "guidance scale")->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed; -1 picks one")->capture_default_str();
  cmd->add_option("--lora", a->loras, "a LoRA of the library as NAME or NAME:WEIGHT (repeatable)");
  cmd->add_option("--out", a->out, "PNG to write (with --count: FILE-1.png, FILE-2.png, ...)")->required();
  cmd->add_option("--scene-out", a->scene_out, "also write the scene alone (what is behind the product)");
  cmd->add_flag("--json", a->json, "print the job's final record as JSON");
  cmd->callback([&global, &result, a] {
    if (a->scale && a->at.empty()) throw CLI::ValidationError("--scale", "--scale places the product explicitly: give --at X,Y too");
    if (a->fill && !a->at.empty()) throw CLI::ValidationError("--fill", "--fill is for automatic placement; leave it out with --at");
    std::optional<std::pair<int, int>> size;  // without --size the daemon uses the model's
    if (!a->size.empty()) size = parse_size(a->size);
    auto client = connect(global);
    Json params{{"model", a->model.empty() ? default_model(*client) : model_reference(a->model)},
                {"prompt", a->prompt},
                {"negative", a->negative},
                {"product_path", fs::absolute(a->product).lexically_normal().string()},
                {"edge", a->edge},
                {"count", a->count},
                {"harmonize", a->harmonize},
                {"sampler", a->sampler},
                {"steps", a->steps},
                {"cfg", a->cfg},
                {"seed", a->seed}};
    if (size) {
      params["width"] = size->first;
      params["height"] = size->second;
    }
    if (a->fill) params["fill"] = *a->fill;
    if (!a->at.empty()) {
      const auto [x, y] = parse_point(a->at);
      params["x"] = x;
      params["y"] = y;
      params["scale"] = a->scale.value_or(1.0);
    }
    if (!a->loras.empty()) params["loras"] = lora_params(a->loras);
    std::optional<ipc::ShmImage> product;
    if (client->is_remote()) {  // a remote daemon cannot read this machine's file: the cut-out goes as an image
      params.erase("product_path");
      product = load_image_file(*client, a->product, ImageRole::WithAlpha);
      params["product"] = protocol::to_json(product->ref());
    }
    const Json job = client->call(protocol::method::kShot, params);
    product.reset();
    Json final_record;
    result.exit_code = watch_job(*client, job.at("id"), false, &final_record);
    if (result.exit_code != kExitOk) return;
    const Json& r = final_record.at("result");
    const Json& images = r.at("images");
    for (std::size_t i = 0; i < images.size(); ++i) {
      const fs::path target = numbered(a->out, i, images.size());
      copy_output(*client, images[i].at("png").get<std::string>(), target);
      if (!a->scene_out.empty()) copy_output(*client, images[i].at("scene_png").get<std::string>(), numbered(a->scene_out, i, images.size()));
      if (!a->json) std::cout << "wrote " << target.string() << " (seed " << images[i].at("seed") << ")\n";
    }
    const Json& at = r.at("placement");
    if (!a->json) {
      std::cout << "the product is at x " << at.at("x") << ", y " << at.at("y") << ", scale " << at.at("scale").get<double>()
                << " (" << at.at("width") << "x" << at.at("height") << " px)\n";
      if (!r.at("model").value("inpainting", false))
        std::cout << "tip: an inpainting model (such as sd-v1-5-inpainting) paints scenes that fit better; "
                     "add one with `kiln models add`\n";
    }
    warn_about_applied(r);
    if (a->json) print_json(final_record);
  });
}

}  // namespace kiln::cli
