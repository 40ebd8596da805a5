#pragma once
// The `generate` job: txt2img, img2img and inpainting on a model from the registry or a path.
// Results are saved as PNGs with A1111 infotext under <data dir>/outputs/ and offered to clients
// as shared-memory images for ten minutes.
#include <filesystem>

#include <torch/types.h>

#include "engine/generate.h"
#include "service/jobs/job_context.h"

namespace kiln::service {

struct Compute;
class ImageLeases;
class LoraLibrary;
class ModelRegistry;

// Input pixels copied out of the request's shared-memory blocks at submission.
struct GenerateInputs {
  torch::Tensor init_image;  // uint8 [h, w, 3] or undefined
  torch::Tensor mask;        // uint8 [h, w] or undefined
};

// Reads and checks the JSON parameters (everything but the pixels). Throws ServiceError(InvalidParams).
engine::GenerateRequest parse_generate_params(const Json& params);

JobType make_generate_job_type(Compute& compute, ModelRegistry& models, LoraLibrary& loras, ImageLeases& leases,
                               std::filesystem::path outputs_dir);

}  // namespace kiln::service
