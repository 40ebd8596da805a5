#include "service/jobs/generate_job.h"

#include <algorithm>
#include <ctime>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "engine/sampling/noise.h"
#include "engine/sampling/samplers.h"
#include "service/errors.h"
#include "service/images/image_leases.h"
#include "service/images/pixels.h"
#include "service/jobs/compute.h"
#include "service/jobs/model_hash.h"
#include "service/library/file_hash.h"
#include "service/library/lora_library.h"
#include "service/library/model_registry.h"
#include "studio/infotext.h"
#include "studio/png.h"

namespace kiln::service {
namespace fs = std::filesystem;
using protocol::ErrorCode;

namespace {

[[noreturn]] void invalid(const std::string& message) { throw ServiceError(ErrorCode::InvalidParams, "generate: " + message); }

int64_t int_in(const Json& p, const char* key, int64_t fallback, int64_t lo, int64_t hi) {
  const int64_t v = p.value(key, fallback);
  if (v < lo || v > hi) invalid(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return v;
}

double number_in(const Json& p, const char* key, double fallback, double lo, double hi) {
  const double v = p.value(key, fallback);
  if (!(v >= lo && v <= hi)) invalid(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return v;
}

std::string today() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

}  // namespace

engine::GenerateRequest parse_generate_params(const Json& p) {
  engine::GenerateRequest r;
  r.prompt = p.value("prompt", "");
  r.negative_prompt = p.value("negative", "");
  r.clip_skip = static_cast<int>(int_in(p, "clip_skip", 1, 1, 12));
  auto& g = r.params;
  g.width = int_in(p, "width", 512, 8, 4096);
  g.height = int_in(p, "height", 512, 8, 4096);
  if (g.width % 8 || g.height % 8)
    invalid("width and height must be multiples of 8 (64 is best), got " + std::to_string(g.width) + "x" + std::to_string(g.height));
  g.steps = static_cast<int>(int_in(p, "steps", 20, 1, 500));
  g.cfg_scale = number_in(p, "cfg", 7.0, 0.0, 100.0);
  g.sampler = p.value("sampler", std::string("Euler a"));
  const auto names = engine::sampling::sampler_names();
  if (std::find(names.begin(), names.end(), g.sampler) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    invalid("unknown sampler '" + g.sampler + "'; use one of: " + list);
  }
  g.seed = int_in(p, "seed", -1, -1, (int64_t{1} << 53));
  g.batch_size = static_cast<int>(int_in(p, "batch_size", 1, 1, 16));
  g.batch_count = static_cast<int>(int_in(p, "batch_count", 1, 1, 100));
  g.denoising_strength = number_in(p, "strength", 0.75, 0.0, 1.0);
  g.mask_blur = number_in(p, "mask_blur", 4, 0, 64);
  const std::string fill = p.value("inpaint_fill", std::string("original"));
  if (fill == "original") g.masked_content = engine::sampling::MaskedContent::Original;
  else if (fill == "fill") g.masked_content = engine::sampling::MaskedContent::Fill;
  else invalid("'inpaint_fill' must be \"original\" or \"fill\"");
  g.preview_every = static_cast<int>(int_in(p, "preview_every", 5, 0, 1000));
  if (p.contains("mask") && !p.contains("init_image")) invalid("a 'mask' needs an 'init_image' to inpaint");
  for (const Json& l : p.value("loras", Json::array()))
    if (!l.is_object() || !l.contains("name") || !l.at("name").is_string() || (l.contains("weight") && !l.at("weight").is_number()) ||
        (l.contains("te") && !l.at("te").is_number()) || (l.contains("unet") && !l.at("unet").is_number()))
      invalid("each of 'loras' must be {\"name\": string, \"weight\"?: number, \"te\"?: number, \"unet\"?: number}");
  return r;
}

JobType make_generate_job_type(Compute& compute, ModelRegistry& registry, LoraLibrary& loras, ImageLeases& leases,
                               fs::path outputs_dir) {
  JobType type;
  type.name = "generate";
  type.priority = JobPriority::Interactive;
  type.resumable = false;
  type.validate = [&registry](const Json& params) {
    parse_generate_params(params);
    registry.resolve(params.at("model").get<std::string>());
  };
  type.run = [&compute, &registry, &loras, &leases, outputs_dir](JobContext& ctx) -> Json {
    const Json& p = ctx.params();
    engine::GenerateRequest request = parse_generate_params(p);
    request.find_lora = [&loras](const std::string& name) { return loras.find_file(name); };
    for (const Json& l : p.value("loras", Json::array())) {
      const std::string name = l.at("name");
      const auto file = loras.find_file(name);
      if (!file) throw ServiceError(ErrorCode::NotFound, "generate: no LoRA named '" + name + "' (`kiln loras list` shows them)");
      engine::lora::LoraRequest r;
      r.path = *file;
      r.multiplier = l.value("weight", 1.0);
      if (l.contains("te")) r.text_encoder_multiplier = l.at("te").get<double>();
      if (l.contains("unet")) r.unet_multiplier = l.at("unet").get<double>();
      request.loras.push_back(r);
    }
    if (const auto* inputs = std::any_cast<GenerateInputs>(&ctx.attachment())) {
      request.params.init_image = inputs->init_image;
      request.params.mask = inputs->mask;
    } else if (p.contains("init_image")) {
      throw ServiceError(ErrorCode::JobFailed, "the input image of this job was lost (the daemon restarted); run it again");
    }
    const ModelEntry model = registry.resolve(p.at("model").get<std::string>());
    const std::string sha = model_sha256(compute, registry, model, ctx);
    ctx.report(0, request.params.steps, "loading " + model.name);
    const auto loaded = compute.models.get(model.path);

    const int total = request.params.steps * request.params.batch_count;
    engine::sampling::PipelineHooks hooks;
    hooks.cancelled = [&ctx] { return ctx.stop_requested(); };
    hooks.on_step = [&](const engine::sampling::Progress& progress) {
      const int done = progress.batch * progress.total + progress.step;
      ctx.report(done, total, "step " + std::to_string(progress.step) + "/" + std::to_string(progress.total) +
                                  (progress.batch_count > 1 ? " of batch " + std::to_string(progress.batch + 1) + "/" +
                                                                  std::to_string(progress.batch_count)
                                                            : ""));
      if (progress.preview.defined()) ctx.preview(shm_from_rgb(progress.preview));
    };
    ctx.checkpoint();
    engine::GenerateOutput out = engine::generate_images(*loaded, request, hooks);

    // Tags of networks Kiln does not apply (hypernetworks, ...) are reported, never dropped silently.
    Json unsupported = Json::array();
    for (const auto& tag : out.unsupported) unsupported.push_back("<" + tag.type + ":" + tag.name() + ">");
    if (!unsupported.empty()) spdlog::warn("job {}: extra-network tags not applied: {}", ctx.id(), unsupported.dump());
    Json applied = Json::array();
    for (const engine::AppliedLora& a : out.loras) {
      const auto& r = a.report;
      if (!r.unmatched.empty())
        spdlog::warn("job {}: LoRA {} has {} keys that match no module of {} (first: {})", ctx.id(), a.name,
                     r.unmatched.size(), model.name, r.unmatched.front());
      applied.push_back({{"name", a.name}, {"path", a.path.string()}, {"te_multiplier", a.te_multiplier},
                         {"unet_multiplier", a.unet_multiplier}, {"text_encoder_modules", r.text_encoder_modules},
                         {"unet_modules", r.unet_modules}, {"unmatched_keys", r.unmatched.size()},
                         {"unmatched_examples", Json(std::vector<std::string>(r.unmatched.begin(),
                                                                              r.unmatched.begin() + std::min<std::size_t>(r.unmatched.size(), 5)))}});
    }

    const fs::path day_dir = outputs_dir / today();
    fs::create_directories(day_dir);
    Json images = Json::array();
    std::string first_infotext;
    for (std::size_t i = 0; i < out.result.images.size(); ++i) {
      studio::GenerationInfo info;
      info.prompt = request.prompt;
      info.negative_prompt = request.negative_prompt;
      info.steps = request.params.steps;
      info.sampler = request.params.sampler;
      info.cfg_scale = request.params.cfg_scale;
      info.seed = out.result.seeds[i];
      info.width = request.params.width;
      info.height = request.params.height;
      info.model_hash = sha.empty() ? "" : a1111_short_hash(sha);
      info.model = model.name;
      info.clip_skip = request.clip_skip;
      if (request.params.init_image.defined()) info.denoising_strength = request.params.denoising_strength;
      if (request.params.mask.defined()) info.mask_blur = request.params.mask_blur;
      const std::string infotext = studio::format_infotext(info);
      if (i == 0) first_infotext = infotext;
      const torch::Tensor rgb = out.result.images[i].contiguous();
      Json entry{{"seed", out.result.seeds[i]}};
      if (p.value("save", true)) {
        const fs::path png = day_dir / (ctx.id() + "-" + std::to_string(i + 1) + ".png");
        studio::write_png(png, studio::PixelView{rgb.data_ptr<uint8_t>(), static_cast<int>(rgb.size(1)),
                                                  static_cast<int>(rgb.size(0)), 3, static_cast<std::size_t>(rgb.size(1) * 3)},
                          {{"parameters", infotext}});
        entry["png"] = png.string();
      }
      entry["image"] = protocol::to_json(leases.keep_result(ctx.id(), shm_from_rgb(rgb)));
      images.push_back(entry);
    }
    return {{"seed", out.result.seed},
            {"images", images},
            {"infotext", first_infotext},
            {"model", {{"name", model.name}, {"hash", sha.empty() ? "" : a1111_short_hash(sha)}}},
            {"loras", applied},
            {"unsupported_tags", unsupported}};
  };
  return type;
}

}  // namespace kiln::service
