#include "service/jobs/simulate_job.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "service/errors.h"

namespace kiln::service {

using protocol::ErrorCode;

namespace {
void check_range(const Json& params, const char* key, int64_t lo, int64_t hi) {
  if (!params.contains(key)) return;
  const int64_t v = params.at(key).get<int64_t>();
  if (v < lo || v > hi)
    throw ServiceError(ErrorCode::InvalidParams, std::string("jobs.simulate: '") + key + "' must be between " +
                                                     std::to_string(lo) + " and " + std::to_string(hi));
}

// A small gradient whose colour moves with the step, so successive previews differ.
ipc::ShmImage make_preview(int64_t step, int64_t total) {
  protocol::ImageDesc desc;
  desc.width = desc.height = 64;
  desc.channels = 4;
  ipc::ShmImage image = ipc::ShmImage::create(desc);
  const auto shade = static_cast<uint8_t>(255 * step / std::max<int64_t>(total, 1));
  for (uint32_t y = 0; y < desc.height; ++y) {
    uint8_t* row = image.row(y);
    for (uint32_t x = 0; x < desc.width; ++x) {
      row[4 * x + 0] = static_cast<uint8_t>(x * 4);
      row[4 * x + 1] = static_cast<uint8_t>(y * 4);
      row[4 * x + 2] = shade;
      row[4 * x + 3] = 255;
    }
  }
  return image;
}
}  // namespace

JobType make_simulate_job_type() {
  JobType type;
  type.name = "simulate";
  type.priority = JobPriority::Long;
  type.resumable = true;
  type.validate = [](const Json& params) {
    check_range(params, "steps", 1, 1000000);
    check_range(params, "step_ms", 0, 60000);
    check_range(params, "fail_at_step", 1, 1000000);
    check_range(params, "preview_every", 1, 1000000);
    if (params.contains("priority") && !job_priority_from_string(params.at("priority").get<std::string>()))
      throw ServiceError(ErrorCode::InvalidParams, "jobs.simulate: 'priority' must be \"interactive\" or \"long\"");
  };
  type.run = [](JobContext& ctx) -> Json {
    const Json& p = ctx.params();
    const int64_t steps = p.at("steps").get<int64_t>();
    const auto step_time = std::chrono::milliseconds(p.value("step_ms", int64_t{10}));
    const int64_t fail_at = p.value("fail_at_step", int64_t{0});
    const int64_t preview_every = p.value("preview_every", int64_t{0});
    const int64_t first = ctx.resume_state().is_object() ? ctx.resume_state().value("step", int64_t{0}) : 0;

    auto last_save = std::chrono::steady_clock::now();
    int64_t step = first;
    // At a shutdown, save exactly how far it got so the restart loses nothing.
    auto checkpoint = [&] {
      try {
        ctx.checkpoint();
      } catch (const JobInterrupted&) {
        ctx.save_resume_state({{"step", step}});
        throw;
      }
    };
    for (; step < steps; ++step) {
      checkpoint();
      // Sleep in slices so a cancel or shutdown during a long step is noticed promptly.
      const auto until = std::chrono::steady_clock::now() + step_time;
      while (std::chrono::steady_clock::now() < until && !ctx.stop_requested())
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(until - std::chrono::steady_clock::now(),
                                                                                  std::chrono::milliseconds(5)));
      checkpoint();
      if (step + 1 == fail_at)
        throw ServiceError(ErrorCode::JobFailed, "simulated failure at step " + std::to_string(fail_at));
      ctx.report(step + 1, steps, "step " + std::to_string(step + 1) + " of " + std::to_string(steps));
      if (preview_every > 0 && (step + 1) % preview_every == 0) ctx.preview(make_preview(step + 1, steps));
      if (std::chrono::steady_clock::now() - last_save >= std::chrono::milliseconds(200) || step + 1 == steps) {
        ctx.save_resume_state({{"step", step + 1}});
        last_save = std::chrono::steady_clock::now();
      }
    }
    return {{"steps", steps}, {"resumed_from", first}};
  };
  return type;
}

}  // namespace kiln::service
