#pragma once
// What the jobs that generate images (generate, shot) share: reading a request's generation
// parameters and LoRAs, progress with previews, what was applied, and PNG outputs with A1111
// infotext under <data dir>/outputs/<date>/.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/types.h>

#include "engine/generate.h"
#include "service/jobs/job_context.h"
#include "studio/infotext.h"

namespace kiln::service {

class LoraLibrary;
class ModelRegistry;

// Reads and checks prompt, negative, sampler, steps, cfg, seed, width/height, clip_skip,
// batch_size/batch_count, strength, mask_blur, inpaint_fill, tiling, preview_every and the shape of
// `loras`. Throws ServiceError(InvalidParams) with `method` in front of the message.
engine::GenerateRequest parse_generation_params(const Json& params, const std::string& method);

// A request without width and height (and without an init image that gives them) gets its
// model's default size: the one its file names (Kiln Mini: 64), else its family's, 512 for SD1.x
// and 1024 for SDXL (io/families.h). Leaves `params` as
// it is when the model cannot be resolved (the job's validation reports that).
void fill_default_size(Json& params, const ModelRegistry& models);

// The request's explicit `loras` resolved in the library; ServiceError(NotFound) for a name it lacks.
std::vector<engine::lora::LoraRequest> lora_requests(const Json& params, LoraLibrary& loras, const std::string& method);

// Hooks for engine::generate_images: stop when the job is cancelled; progress "message k/n" counted
// from `done_before` of `total` steps; previews every few steps as the request asked.
engine::sampling::PipelineHooks progress_hooks(JobContext& ctx, int64_t done_before, int64_t total,
                                               const std::string& message);

// For the job's result: the LoRAs applied with what they matched, and the extra-network tags that
// were not applied. Both also log what the user should know.
Json applied_loras(const engine::GenerateOutput& out, const std::string& model_name, const std::string& job_id);
Json unsupported_tags(const engine::GenerateOutput& out, const std::string& job_id);

// The A1111 infotext fields of one image of `request` (seed `seed`).
studio::GenerationInfo generation_info(const engine::GenerateRequest& request, int64_t seed, const std::string& model_name,
                                       const std::string& model_sha256);

// <outputs_dir>/<YYYY-MM-DD>/, created if needed.
std::filesystem::path todays_outputs(const std::filesystem::path& outputs_dir);

// Writes uint8 RGB [h, w, 3] as a PNG (atomically) with the infotext in its `parameters` chunk.
void write_png_with_infotext(const std::filesystem::path& path, const torch::Tensor& rgb, const std::string& infotext);

}  // namespace kiln::service
