#include "service/jobs/grid_job.h"

#include <cmath>
#include <fstream>

#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "engine/generate.h"
#include "engine/sampling/samplers.h"
#include "service/errors.h"
#include "service/jobs/compute.h"
#include "service/library/lora_library.h"
#include "service/library/model_registry.h"
#include "studio/grid.h"
#include "studio/infotext.h"

namespace kiln::service {
namespace fs = std::filesystem;
using protocol::ErrorCode;

namespace {

[[noreturn]] void invalid(const std::string& message) { throw ServiceError(ErrorCode::InvalidParams, "lora.grid: " + message); }

struct GridPlan {
  LoraEntry lora;
  std::string model;                      // registry name or path
  std::vector<std::string> prompts;       // one or two
  std::string negative;
  std::vector<double> strengths;
  std::vector<std::pair<std::string, fs::path>> columns;  // label, file
  int64_t seed = 1234;
  int steps = 20, width = 512, height = 512, clip_skip = 1;
  double cfg = 7;
  std::string sampler = "Euler a";
  fs::path out;
};

// The LoRA's own training config, when Kiln trained it: the base model and the resolution.
nlohmann::json training_config(const LoraEntry& lora) {
  if (!lora.config) return nullptr;
  std::ifstream in(*lora.config);
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  return j.is_discarded() ? nlohmann::json() : j;
}

std::string format_strength(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

GridPlan plan_grid(const Json& p, LoraLibrary& loras, ModelRegistry& models) {
  GridPlan g;
  g.lora = loras.get(p.at("lora").get<std::string>());
  const nlohmann::json trained = training_config(g.lora);

  g.model = p.value("model", trained.is_object() ? trained.value("pretrained_model_name_or_path", "") : "");
  if (g.model.empty()) invalid("this LoRA was not trained by Kiln, so give the base model to draw it on ('model')");
  models.resolve(g.model);  // NotFound with the registry's message

  std::string prompt = p.value("prompt", "");
  if (prompt.empty()) {
    const auto& words = g.lora.info.value("trigger_words", nlohmann::json::array());
    if (words.empty() || !words.front().is_string()) invalid("give a 'prompt' (the LoRA names no trigger word)");
    prompt = words.front().get<std::string>();
  }
  g.prompts.push_back(prompt);
  if (p.contains("prompt2") && !p.at("prompt2").get<std::string>().empty()) g.prompts.push_back(p.at("prompt2"));
  g.negative = p.value("negative", "");

  if (p.contains("strengths")) {
    for (const Json& s : p.at("strengths")) {
      if (!s.is_number() || !std::isfinite(s.get<double>()) || std::abs(s.get<double>()) > 4)
        invalid("each of 'strengths' must be a number between -4 and 4");
      g.strengths.push_back(s.get<double>());
    }
  } else {
    for (int i = 1; i <= 10; ++i) g.strengths.push_back(i / 10.0);
  }
  if (g.strengths.empty() || g.strengths.size() > 20) invalid("give 1 to 20 strengths");

  // Columns: the epoch files asked for (all by default), then the final file.
  std::vector<int> wanted;
  if (p.contains("epochs") && p.at("epochs").is_array())
    for (const Json& e : p.at("epochs")) wanted.push_back(e.get<int>());
  else if (p.contains("epochs") && p.at("epochs") != "all")
    invalid("'epochs' must be \"all\" or a list of epoch numbers");
  for (const LoraEpochFile& f : g.lora.epochs) {
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), f.epoch) == wanted.end()) continue;
    char label[16];
    std::snprintf(label, sizeof label, "%06d", f.epoch);
    g.columns.emplace_back(label, f.path);
  }
  for (int e : wanted)
    if (std::none_of(g.lora.epochs.begin(), g.lora.epochs.end(), [e](const LoraEpochFile& f) { return f.epoch == e; }))
      invalid("the LoRA '" + g.lora.name + "' has no file for epoch " + std::to_string(e));
  // After "use this epoch" the final file is a copy of an epoch file already in the columns.
  if (g.lora.final_file && wanted.empty() && !g.lora.chosen_epoch) g.columns.emplace_back("final", *g.lora.final_file);
  if (g.columns.empty()) invalid("the LoRA '" + g.lora.name + "' has no files to compare");
  if (g.columns.size() * g.strengths.size() * g.prompts.size() > 400)
    invalid("that grid would have more than 400 images; pick fewer epochs or strengths");

  // The training resolution ("512,512" in config.json) is the natural size of the cells.
  long long default_w = 512, default_h = 512;
  if (trained.is_object() && trained.value("resolution", Json()).is_string()) {
    const std::string reso = trained.at("resolution");
    if (std::sscanf(reso.c_str(), "%lld,%lld", &default_w, &default_h) == 1)
      default_h = default_w;
  }
  g.width = static_cast<int>(p.value("width", static_cast<int64_t>(default_w)));
  g.height = static_cast<int>(p.value("height", static_cast<int64_t>(default_h)));
  if (g.width % 8 || g.height % 8 || g.width < 64 || g.height < 64 || g.width > 2048 || g.height > 2048)
    invalid("width and height must be multiples of 8 between 64 and 2048");
  g.seed = p.value("seed", int64_t{1234});
  if (g.seed < 0) invalid("'seed' must be 0 or more: one fixed seed makes the cells comparable");
  g.steps = static_cast<int>(p.value("steps", 20));
  if (g.steps < 1 || g.steps > 150) invalid("'steps' must be between 1 and 150");
  g.cfg = p.value("cfg", 7.0);
  g.sampler = p.value("sampler", std::string("Euler a"));
  const auto names = engine::sampling::sampler_names();
  if (std::find(names.begin(), names.end(), g.sampler) == names.end()) invalid("unknown sampler '" + g.sampler + "'");
  g.clip_skip = static_cast<int>(p.value("clip_skip", trained.is_object() && trained.value("clip_skip", Json()).is_number()
                                                        ? trained.at("clip_skip").get<int>() : 1));
  const std::string out = p.value("out", "");
  if (!out.empty() && !fs::path(out).is_absolute()) invalid("'out' must be an absolute path");
  g.out = out.empty() ? g.lora.folder / "grid.png" : fs::path(out);
  return g;
}

cv::Mat bgr_of(const torch::Tensor& rgb) {
  const auto t = rgb.contiguous();
  cv::Mat view(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8UC3, t.data_ptr<uint8_t>());
  cv::Mat bgr;
  cv::cvtColor(view, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

}  // namespace

void validate_grid_params(const Json& params, LoraLibrary& loras, ModelRegistry& models) { plan_grid(params, loras, models); }

JobType make_grid_job_type(Compute& compute, ModelRegistry& models, LoraLibrary& loras) {
  JobType type;
  type.name = "lora.grid";
  type.priority = JobPriority::Interactive;
  type.resumable = false;
  type.validate = [&models, &loras](const Json& params) { plan_grid(params, loras, models); };
  type.run = [&compute, &models, &loras](JobContext& ctx) -> Json {
    const GridPlan g = plan_grid(ctx.params(), loras, models);
    const ModelEntry model = models.resolve(g.model);
    ctx.report(0, 0, "loading " + model.name);
    const auto loaded = compute.models.get(model.path);

    studio::GridSpec spec;
    for (const auto& [label, file] : g.columns) spec.column_labels.push_back(label);
    const int64_t total = static_cast<int64_t>(g.columns.size() * g.strengths.size() * g.prompts.size());
    int64_t done = 0;
    for (std::size_t pi = 0; pi < g.prompts.size(); ++pi) {
      for (double strength : g.strengths) {
        spec.row_labels.push_back(format_strength(strength) + (g.prompts.size() > 1 ? " / prompt " + std::to_string(pi + 1) : ""));
        std::vector<cv::Mat> row;
        for (const auto& [label, file] : g.columns) {
          ctx.checkpoint();
          engine::GenerateRequest request;
          request.prompt = g.prompts[pi];
          request.negative_prompt = g.negative;
          request.clip_skip = g.clip_skip;
          request.params.width = g.width;
          request.params.height = g.height;
          request.params.steps = g.steps;
          request.params.cfg_scale = g.cfg;
          request.params.sampler = g.sampler;
          request.params.seed = g.seed;
          request.params.preview_every = 0;
          engine::lora::LoraRequest lora;
          lora.path = file;
          lora.multiplier = strength;
          request.loras.push_back(lora);
          engine::sampling::PipelineHooks hooks;
          hooks.cancelled = [&ctx] { return ctx.stop_requested(); };
          const auto out = engine::generate_images(*loaded, request, hooks);
          row.push_back(bgr_of(out.result.images.at(0)));
          ++done;
          ctx.report(done, total, "epoch " + label + " at strength " + format_strength(strength));
        }
        spec.cells.push_back(std::move(row));
      }
    }
    loaded->loras.clear();
    spec.column_title = "epoch";
    spec.row_title = "strength";
    spec.title = g.lora.name + ": \"" + g.prompts.front() + "\"" + (g.prompts.size() > 1 ? " / \"" + g.prompts[1] + "\"" : "") +
                 "  seed " + std::to_string(g.seed);
    studio::GenerationInfo info;
    info.prompt = g.prompts.front();
    info.negative_prompt = g.negative;
    info.steps = g.steps;
    info.sampler = g.sampler;
    info.cfg_scale = g.cfg;
    info.seed = g.seed;
    info.width = g.width;
    info.height = g.height;
    info.model = model.name;
    info.clip_skip = g.clip_skip;
    std::string strengths;
    for (double s : g.strengths) strengths += (strengths.empty() ? "" : ", ") + format_strength(s);
    std::string columns;
    for (const auto& c : g.columns) columns += (columns.empty() ? "" : ", ") + c.first;
    info.extra = {{"X Type", "LoRA file"}, {"X Values", columns}, {"Y Type", "LoRA strength"}, {"Y Values", strengths}};
    fs::create_directories(g.out.parent_path());
    studio::write_grid(g.out, spec, {{"parameters", studio::format_infotext(info)}});
    spdlog::info("job {}: validation grid of {} written to {}", ctx.id(), g.lora.name, g.out.string());
    return {{"png", g.out.string()}, {"lora", g.lora.name}, {"columns", spec.column_labels}, {"rows", spec.row_labels},
            {"seed", g.seed}, {"prompt", g.prompts.front()}};
  };
  return type;
}

}  // namespace kiln::service
