#include "service/jobs/bench_job.h"

#include <chrono>

#include "engine/sampling/benchmark.h"
#include "service/errors.h"
#include "service/jobs/compute.h"
#include "service/library/model_registry.h"

namespace kiln::service {

using protocol::ErrorCode;

namespace {
// The models made in code rather than loaded: full-size architectures with random weights.
bool is_random_model(const std::string& name) { return name == "sd15-random" || name == "sdxl-random"; }
}  // namespace

JobType make_bench_generate_job_type(Compute& compute, ModelRegistry& registry) {
  JobType type;
  type.name = "bench.generate";
  type.priority = JobPriority::Long;
  type.validate = [&registry](const Json& p) {
    for (const char* key : {"width", "height"})
      if (p.value(key, 512) % 8 != 0 || p.value(key, 512) < 64 || p.value(key, 512) > 2048)
        throw ServiceError(ErrorCode::InvalidParams, std::string("bench.generate: '") + key + "' must be a multiple of 8 in 64..2048");
    if (p.value("steps", 4) < 1 || p.value("steps", 4) > 100)
      throw ServiceError(ErrorCode::InvalidParams, "bench.generate: 'steps' must be between 1 and 100");
    const std::string model = p.value("model", std::string("sd15-random"));
    if (!is_random_model(model)) registry.resolve(model);
  };
  type.run = [&compute, &registry](JobContext& ctx) -> Json {
    const Json& p = ctx.params();
    engine::sampling::BenchmarkRun run;
    run.model = p.value("model", std::string("sd15-random"));
    // The family's own size unless asked otherwise: 512² for SD1.x, 1024² for SDXL.
    const engine::ModelFamily family = run.model == "sdxl-random"   ? engine::ModelFamily::SDXL
                                       : run.model == "sd15-random" ? engine::ModelFamily::SD1
                                                                    : registry.family_of(registry.resolve(run.model));
    const int64_t side = engine::family_traits(family).default_size;
    run.width = p.value("width", side);
    run.height = p.value("height", side);
    run.steps = p.value("steps", 4);
    run.sampler = p.value("sampler", std::string("Euler a"));
    ctx.report(0, 2, run.model == "sd15-random"   ? "building a full-size SD1.5 with random weights"
                     : run.model == "sdxl-random" ? "building a full-size SDXL with random weights"
                                                  : "loading " + run.model);
    const auto start = std::chrono::steady_clock::now();
    std::shared_ptr<engine::LoadedModel> model;
    if (run.model == "sd15-random") {
      // Not cached: 4 GB of random weights are only good for this measurement.
      model = std::make_shared<engine::LoadedModel>(engine::models::make_sd15_random(compute.device));
    } else if (run.model == "sdxl-random") {
      model = std::make_shared<engine::LoadedModel>(engine::models::make_sdxl_random(compute.device));
    } else {
      model = compute.models.get(registry.resolve(run.model).path);
      model->loras.clear();  // the base model's speed
    }
    const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ctx.checkpoint();
    ctx.report(1, 2, "generating " + std::to_string(run.steps) + " steps at " + std::to_string(run.width) + "x" +
                         std::to_string(run.height));
    engine::sampling::BenchmarkResult result = engine::sampling::benchmark_generate(model->model, run);
    result.load_seconds = load_seconds;
    ctx.report(2, 2, "done");
    return engine::sampling::to_json(result);
  };
  return type;
}

}  // namespace kiln::service
