#include "service/jobs/generation_support.h"

#include <algorithm>
#include <ctime>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "engine/sampling/samplers.h"
#include "service/errors.h"
#include "service/images/pixels.h"
#include "service/jobs/model_hash.h"
#include "service/library/file_hash.h"
#include "service/library/lora_library.h"
#include "service/library/model_registry.h"
#include "studio/png.h"

namespace kiln::service {
namespace fs = std::filesystem;
using protocol::ErrorCode;

namespace {

struct Reader {
  const Json& p;
  const std::string& method;

  [[noreturn]] void invalid(const std::string& message) const {
    throw ServiceError(ErrorCode::InvalidParams, method + ": " + message);
  }
  int64_t integer(const char* key, int64_t fallback, int64_t lo, int64_t hi) const {
    const int64_t v = p.value(key, fallback);
    if (v < lo || v > hi) invalid(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    return v;
  }
  double number(const char* key, double fallback, double lo, double hi) const {
    const double v = p.value(key, fallback);
    if (!(v >= lo && v <= hi)) invalid(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    return v;
  }
};

}  // namespace

engine::GenerateRequest parse_generation_params(const Json& p, const std::string& method) {
  const Reader read{p, method};
  engine::GenerateRequest r;
  r.prompt = p.value("prompt", "");
  r.negative_prompt = p.value("negative", "");
  r.clip_skip = static_cast<int>(read.integer("clip_skip", 1, 1, 12));
  auto& g = r.params;
  g.width = read.integer("width", 512, 8, 4096);
  g.height = read.integer("height", 512, 8, 4096);
  if (g.width % 8 || g.height % 8)
    read.invalid("width and height must be multiples of 8 (64 is best), got " + std::to_string(g.width) + "x" + std::to_string(g.height));
  g.steps = static_cast<int>(read.integer("steps", 20, 1, 500));
  g.cfg_scale = read.number("cfg", 7.0, 0.0, 100.0);
  g.sampler = p.value("sampler", std::string("Euler a"));
  const auto names = engine::sampling::sampler_names();
  if (std::find(names.begin(), names.end(), g.sampler) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    read.invalid("unknown sampler '" + g.sampler + "'; use one of: " + list);
  }
  g.seed = read.integer("seed", -1, -1, (int64_t{1} << 53));
  g.batch_size = static_cast<int>(read.integer("batch_size", 1, 1, 16));
  g.batch_count = static_cast<int>(read.integer("batch_count", 1, 1, 100));
  g.denoising_strength = read.number("strength", 0.75, 0.0, 1.0);
  g.mask_blur = read.number("mask_blur", 4, 0, 64);
  const std::string fill = p.value("inpaint_fill", std::string("original"));
  if (fill == "original") g.masked_content = engine::sampling::MaskedContent::Original;
  else if (fill == "fill") g.masked_content = engine::sampling::MaskedContent::Fill;
  else read.invalid("'inpaint_fill' must be \"original\" or \"fill\"");
  g.preview_every = static_cast<int>(read.integer("preview_every", 5, 0, 1000));
  g.tiling = p.value("tiling", false);
  for (const Json& l : p.value("loras", Json::array()))
    if (!l.is_object() || !l.contains("name") || !l.at("name").is_string() || (l.contains("weight") && !l.at("weight").is_number()) ||
        (l.contains("te") && !l.at("te").is_number()) || (l.contains("unet") && !l.at("unet").is_number()))
      read.invalid("each of 'loras' must be {\"name\": string, \"weight\"?: number, \"te\"?: number, \"unet\"?: number}");
  return r;
}

void fill_default_size(Json& params, const ModelRegistry& models) {
  if ((params.contains("width") && params.contains("height")) || !params.contains("model") || !params.at("model").is_string())
    return;
  try {
    const int64_t side = models.default_size_of(models.resolve(params.at("model").get<std::string>()));
    if (!params.contains("width")) params["width"] = side;
    if (!params.contains("height")) params["height"] = side;
  } catch (const std::exception&) {
    // An unknown model: the job's validation names it.
  }
}

std::vector<engine::lora::LoraRequest> lora_requests(const Json& p, LoraLibrary& loras, const std::string& method) {
  std::vector<engine::lora::LoraRequest> out;
  for (const Json& l : p.value("loras", Json::array())) {
    const std::string name = l.at("name");
    const auto file = loras.find_file(name);
    if (!file) throw ServiceError(ErrorCode::NotFound, method + ": no LoRA named '" + name + "' (`kiln loras list` shows them)");
    engine::lora::LoraRequest r;
    r.path = *file;
    r.multiplier = l.value("weight", 1.0);
    if (l.contains("te")) r.text_encoder_multiplier = l.at("te").get<double>();
    if (l.contains("unet")) r.unet_multiplier = l.at("unet").get<double>();
    out.push_back(r);
  }
  return out;
}

engine::sampling::PipelineHooks progress_hooks(JobContext& ctx, int64_t done_before, int64_t total, const std::string& message) {
  engine::sampling::PipelineHooks hooks;
  hooks.cancelled = [&ctx] { return ctx.stop_requested(); };
  hooks.on_step = [&ctx, done_before, total, message](const engine::sampling::Progress& progress) {
    const int64_t done = done_before + int64_t{progress.batch} * progress.total + progress.step;
    ctx.report(done, total,
               message + " " + std::to_string(progress.step) + "/" + std::to_string(progress.total) +
                   (progress.batch_count > 1
                        ? " of batch " + std::to_string(progress.batch + 1) + "/" + std::to_string(progress.batch_count)
                        : ""));
    if (progress.preview.defined()) ctx.preview(shm_from_rgb(progress.preview));
  };
  return hooks;
}

Json applied_loras(const engine::GenerateOutput& out, const std::string& model_name, const std::string& job_id) {
  Json applied = Json::array();
  for (const engine::AppliedLora& a : out.loras) {
    const auto& r = a.report;
    if (!r.unmatched.empty())
      spdlog::warn("job {}: LoRA {} has {} keys that match no module of {} (first: {})", job_id, a.name, r.unmatched.size(),
                   model_name, r.unmatched.front());
    const auto examples = std::vector<std::string>(r.unmatched.begin(),
                                                   r.unmatched.begin() + std::min<std::size_t>(r.unmatched.size(), 5));
    applied.push_back({{"name", a.name}, {"path", a.path.string()}, {"te_multiplier", a.te_multiplier},
                       {"unet_multiplier", a.unet_multiplier}, {"text_encoder_modules", r.text_encoder_modules},
                       {"unet_modules", r.unet_modules}, {"unmatched_keys", r.unmatched.size()},
                       {"unmatched_examples", examples}});
  }
  return applied;
}

Json unsupported_tags(const engine::GenerateOutput& out, const std::string& job_id) {
  // Tags of networks Kiln does not apply (hypernetworks, ...) are reported, never dropped silently.
  Json unsupported = Json::array();
  for (const auto& tag : out.unsupported) unsupported.push_back("<" + tag.type + ":" + tag.name() + ">");
  if (!unsupported.empty()) spdlog::warn("job {}: extra-network tags not applied: {}", job_id, unsupported.dump());
  return unsupported;
}

studio::GenerationInfo generation_info(const engine::GenerateRequest& request, int64_t seed, const std::string& model_name,
                                       const std::string& model_sha256) {
  studio::GenerationInfo info;
  info.prompt = request.prompt;
  info.negative_prompt = request.negative_prompt;
  info.steps = request.params.steps;
  info.sampler = request.params.sampler;
  info.cfg_scale = request.params.cfg_scale;
  info.seed = seed;
  info.width = static_cast<int>(request.params.width);
  info.height = static_cast<int>(request.params.height);
  info.model_hash = model_sha256.empty() ? "" : a1111_short_hash(model_sha256);
  info.model = model_name;
  info.clip_skip = request.clip_skip;
  if (request.params.init_image.defined()) info.denoising_strength = request.params.denoising_strength;
  if (request.params.mask.defined()) info.mask_blur = request.params.mask_blur;
  if (request.params.tiling) info.extra.push_back({"Tiling", "True"});  // A1111 writes it so
  return info;
}

fs::path todays_outputs(const fs::path& outputs_dir) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char day[16];
  std::strftime(day, sizeof day, "%Y-%m-%d", &tm);
  fs::create_directories(outputs_dir / day);
  return outputs_dir / day;
}

void write_png_with_infotext(const fs::path& path, const torch::Tensor& rgb_in, const std::string& infotext) {
  const torch::Tensor rgb = rgb_in.contiguous();
  studio::write_png(path,
                    studio::PixelView{rgb.data_ptr<uint8_t>(), static_cast<int>(rgb.size(1)), static_cast<int>(rgb.size(0)), 3,
                                      static_cast<std::size_t>(rgb.size(1) * 3)},
                    {{"parameters", infotext}});
}

}  // namespace kiln::service
