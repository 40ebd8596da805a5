#include "service/jobs/shot_job.h"

#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "service/errors.h"
#include "service/images/image_leases.h"
#include "service/images/pixels.h"
#include "service/jobs/compute.h"
#include "service/jobs/generation_support.h"
#include "service/jobs/model_hash.h"
#include "service/library/file_hash.h"
#include "service/library/lora_library.h"
#include "service/library/model_registry.h"
#include "studio/error.h"
#include "studio/infotext.h"

namespace kiln::service {
namespace fs = std::filesystem;
namespace shot = studio::shot;
using protocol::ErrorCode;

namespace {

constexpr const char* kMethod = "shot";
constexpr int kGrey = 127;
constexpr int64_t kMaxProductPixels = int64_t{64} << 20;  // what the model sees behind the product before it paints (mid grey)

[[noreturn]] void invalid(const std::string& message) { throw ServiceError(ErrorCode::InvalidParams, std::string(kMethod) + ": " + message); }

struct ShotSettings {
  int count = 1;
  int edge = 4;
  double harmonize = 0;
  double strength = 1;
};

ShotSettings read_settings(const Json& p) {
  ShotSettings s;
  s.count = p.value("count", 1);
  if (s.count < 1 || s.count > 16) invalid("'count' must be between 1 and 16");
  s.edge = p.value("edge", 4);
  if (s.edge < 0 || s.edge > 64) invalid("'edge' must be between 0 and 64 pixels");
  s.harmonize = p.value("harmonize", 0.0);
  if (!(s.harmonize >= 0 && s.harmonize <= 0.5)) invalid("'harmonize' must be between 0 and 0.5");
  s.strength = p.value("strength", 1.0);
  if (!(s.strength > 0 && s.strength <= 1)) invalid("'strength' must be above 0 and at most 1");
  if (p.contains("x") != p.contains("y")) invalid("an explicit placement needs both 'x' and 'y'");
  if (p.contains("scale") && !p.contains("x")) invalid("'scale' places the product explicitly: give 'x' and 'y' too");
  if ((p.contains("fill") || p.contains("ground")) && p.contains("x"))
    invalid("'fill' and 'ground' are for automatic placement; leave them out with 'x' and 'y'");
  if (p.contains("product") == p.contains("product_path")) invalid("give the product as 'product' (an image) or 'product_path', one of them");
  if (p.contains("product_path") && !fs::path(p.at("product_path").get<std::string>()).is_absolute())
    invalid("'product_path' must be an absolute path");
  return s;
}

// The generation request of the scene: the generate parameters plus the shot's own defaults.
engine::GenerateRequest scene_request(const Json& p, const ShotSettings& s) {
  Json gen = p;
  for (const char* key : {"batch_size", "batch_count", "mask_blur", "inpaint_fill"}) gen.erase(key);
  gen["strength"] = s.strength;
  engine::GenerateRequest r = parse_generation_params(gen, kMethod);
  r.params.batch_count = s.count;
  r.params.mask_blur = 0;  // the repaint mask is feathered already
  return r;
}

torch::Tensor rgb_tensor(const cv::Mat& bgr) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8).clone();
}

cv::Mat bgr_mat(const torch::Tensor& rgb_in) {
  const torch::Tensor rgb = rgb_in.contiguous();
  const cv::Mat view(static_cast<int>(rgb.size(0)), static_cast<int>(rgb.size(1)), CV_8UC3, rgb.data_ptr<uint8_t>());
  cv::Mat bgr;
  cv::cvtColor(view, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

Json placement_json(const shot::Placement& p) {
  return {{"x", p.x}, {"y", p.y}, {"scale", p.scale}, {"width", p.width}, {"height", p.height}};
}

}  // namespace

void check_shot_params(const Json& p) {
  const ShotSettings s = read_settings(p);
  scene_request(p, s);
}

ShotInputs prepare_shot(const Json& p, const cv::Mat& product_bgra) {
  check_shot_params(p);
  const engine::GenerateRequest request = scene_request(p, read_settings(p));
  const cv::Size frame(static_cast<int>(request.params.width), static_cast<int>(request.params.height));
  CV_Assert(product_bgra.type() == CV_8UC4);
  // Scaling works on float copies (16 bytes a pixel): keep cut-outs to what a photo can be.
  if (int64_t{product_bgra.cols} * product_bgra.rows > kMaxProductPixels)
    invalid("the product image is " + std::to_string(product_bgra.cols) + "x" + std::to_string(product_bgra.rows) +
            " pixels; Kiln takes cut-outs up to 64 megapixels: scale it down (or crop its transparent margin) first");
  cv::Mat alpha;
  cv::extractChannel(product_bgra, alpha, 3);
  if (cv::countNonZero(alpha == 255) == 0)
    invalid("the product has no opaque pixel (alpha 255 nowhere): it is the pixels Kiln keeps exactly, so cut the product out "
            "with an opaque inside and transparency around it");
  const cv::Rect visible = shot::visible_bounds(alpha);
  ShotInputs in;
  try {
    in.placement = p.contains("x") ? shot::explicit_placement(product_bgra.size(), p.at("x"), p.at("y"), p.value("scale", 1.0))
                                   : shot::auto_placement(product_bgra.size(), visible, frame,
                                                          {p.value("fill", 0.5), p.value("ground", 0.9)});
    shot::check_placement(in.placement, product_bgra.size(), visible, frame);
  } catch (const studio::Error& e) {
    invalid(e.what());
  }
  in.product = shot::place_product(product_bgra, in.placement, frame);
  in.repaint = shot::repaint_mask(in.product.alpha, read_settings(p).edge);
  return in;
}

JobType make_shot_job_type(Compute& compute, ModelRegistry& registry, LoraLibrary& loras, ImageLeases& leases,
                           fs::path outputs_dir) {
  JobType type;
  type.name = kMethod;
  type.priority = JobPriority::Interactive;
  type.resumable = false;
  type.validate = [&registry](const Json& params) {
    check_shot_params(params);
    registry.resolve(params.at("model").get<std::string>());
  };
  type.run = [&compute, &registry, &loras, &leases, outputs_dir](JobContext& ctx) -> Json {
    const Json& p = ctx.params();
    const auto* inputs = std::any_cast<ShotInputs>(&ctx.attachment());
    if (!inputs) throw ServiceError(ErrorCode::JobFailed, "the product image of this shot was lost (the daemon restarted); run it again");
    const ShotSettings settings = read_settings(p);
    engine::GenerateRequest request = scene_request(p, settings);
    request.find_lora = [&loras](const std::string& name) { return loras.find_file(name); };
    request.loras = lora_requests(p, loras, kMethod);

    const ModelEntry model = registry.resolve(p.at("model").get<std::string>());
    const std::string sha = model_sha256(compute, registry, model, ctx);
    ctx.report(0, request.params.steps, "loading " + model.name);
    const auto loaded = compute.models.get(model.path);
    const bool inpainting_model = loaded->model.inpainting();

    // The model starts from the product on grey and repaints everything but the product's core: an
    // inpainting model from that image as it is, an ordinary one from colours spread in ("fill").
    request.params.init_image = rgb_tensor(shot::over_colour(inputs->product, cv::Scalar::all(kGrey)));
    request.params.mask = torch::from_blob(inputs->repaint.data, {inputs->repaint.rows, inputs->repaint.cols}, torch::kUInt8).clone();
    request.params.masked_content =
        inpainting_model ? engine::sampling::MaskedContent::Original : engine::sampling::MaskedContent::Fill;

    const int64_t scene_steps = int64_t{request.params.steps} * settings.count;
    const int64_t harmonize_steps = settings.harmonize > 0 ? (int64_t(settings.harmonize * request.params.steps) + 1) * settings.count : 0;
    const int64_t total = scene_steps + harmonize_steps;
    ctx.checkpoint();
    const engine::GenerateOutput scenes = engine::generate_images(*loaded, request, progress_hooks(ctx, 0, total, "scene"));

    const cv::Mat interior = shot::interior_mask(inputs->product.alpha, settings.edge);
    const fs::path day_dir = todays_outputs(outputs_dir);
    const bool save = p.value("save", true);
    Json images = Json::array();
    std::string first_infotext;
    for (std::size_t k = 0; k < scenes.result.images.size(); ++k) {
      const int64_t seed = scenes.result.seeds[k];
      cv::Mat scene = bgr_mat(scenes.result.images[k]);
      cv::Mat result = shot::composite(inputs->product, scene);
      if (settings.harmonize > 0) {
        engine::GenerateRequest pass = request;
        pass.params.init_image = rgb_tensor(result);
        pass.params.mask = torch::Tensor();
        pass.params.denoising_strength = settings.harmonize;
        pass.params.seed = seed;
        pass.params.batch_count = 1;
        const auto harmonized = engine::generate_images(
            *loaded, pass, progress_hooks(ctx, scene_steps + int64_t(k) * (harmonize_steps / settings.count), total, "harmonize"));
        scene = bgr_mat(harmonized.result.images.at(0));
        result = shot::restore_interior(scene, inputs->product, interior);
      }

      studio::GenerationInfo info = generation_info(request, seed, model.name, sha);
      const auto& at = inputs->placement;
      info.extra = {{"Shot placement", std::to_string(at.x) + " " + std::to_string(at.y)},
                    {"Shot scale", studio::format_infotext_number(at.scale)},
                    {"Shot edge", std::to_string(settings.edge)}};
      if (settings.harmonize > 0) info.extra.push_back({"Shot harmonize", studio::format_infotext_number(settings.harmonize)});
      const std::string infotext = studio::format_infotext(info);
      if (k == 0) first_infotext = infotext;

      const torch::Tensor result_rgb = rgb_tensor(result), scene_rgb = rgb_tensor(scene);
      Json entry{{"seed", seed}};
      if (save) {
        const std::string stem = ctx.id() + "-" + std::to_string(k + 1);
        write_png_with_infotext(day_dir / (stem + ".png"), result_rgb, infotext);
        write_png_with_infotext(day_dir / (stem + "-scene.png"), scene_rgb, infotext);
        entry["png"] = (day_dir / (stem + ".png")).string();
        entry["scene_png"] = (day_dir / (stem + "-scene.png")).string();
      }
      entry["image"] = protocol::to_json(leases.keep_result(ctx.id(), shm_from_rgb(result_rgb)));
      entry["scene"] = protocol::to_json(leases.keep_result(ctx.id(), shm_from_rgb(scene_rgb)));
      images.push_back(entry);
    }
    return {{"seed", scenes.result.seed},
            {"images", images},
            {"placement", placement_json(inputs->placement)},
            {"infotext", first_infotext},
            {"model", {{"name", model.name}, {"hash", sha.empty() ? "" : a1111_short_hash(sha)}, {"inpainting", inpainting_model}}},
            {"masked_content", inpainting_model ? "original" : "fill"},
            {"loras", applied_loras(scenes, model.name, ctx.id())},
            {"unsupported_tags", unsupported_tags(scenes, ctx.id())}};
  };
  return type;
}

}  // namespace kiln::service
