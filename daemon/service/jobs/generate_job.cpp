#include "service/jobs/generate_job.h"

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
#include "studio/infotext.h"

namespace kiln::service {
namespace fs = std::filesystem;
using protocol::ErrorCode;

engine::GenerateRequest parse_generate_params(const Json& p) {
  engine::GenerateRequest r = parse_generation_params(p, "generate");
  if (p.contains("mask") && !p.contains("init_image"))
    throw ServiceError(ErrorCode::InvalidParams, "generate: a 'mask' needs an 'init_image' to inpaint");
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
    request.loras = lora_requests(p, loras, "generate");
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
    ctx.checkpoint();
    engine::GenerateOutput out = engine::generate_images(*loaded, request, progress_hooks(ctx, 0, total, "step"));

    const fs::path day_dir = todays_outputs(outputs_dir);
    Json images = Json::array();
    std::string first_infotext;
    for (std::size_t i = 0; i < out.result.images.size(); ++i) {
      const std::string infotext = studio::format_infotext(generation_info(request, out.result.seeds[i], model.name, sha));
      if (i == 0) first_infotext = infotext;
      const torch::Tensor& rgb = out.result.images[i];
      Json entry{{"seed", out.result.seeds[i]}};
      if (p.value("save", true)) {
        const fs::path png = day_dir / (ctx.id() + "-" + std::to_string(i + 1) + ".png");
        write_png_with_infotext(png, rgb, infotext);
        entry["png"] = png.string();
      }
      entry["image"] = protocol::to_json(leases.keep_result(ctx.id(), shm_from_rgb(rgb)));
      images.push_back(entry);
    }
    return {{"seed", out.result.seed},
            {"images", images},
            {"infotext", first_infotext},
            {"model", {{"name", model.name}, {"hash", sha.empty() ? "" : a1111_short_hash(sha)}}},
            {"loras", applied_loras(out, model.name, ctx.id())},
            {"unsupported_tags", unsupported_tags(out, ctx.id())}};
  };
  return type;
}

}  // namespace kiln::service
