#pragma once
// The SHA-256 of a model file (A1111's "Model hash" is its first 10 hex digits), computed once per
// file with progress on the job, then remembered in the registry and in memory.
#include <string>

#include "service/jobs/job_context.h"

namespace kiln::service {

struct Compute;
class ModelRegistry;
struct ModelEntry;

// "" for diffusers folders (A1111 has no hash for them). Runs on the device worker.
std::string model_sha256(Compute& compute, ModelRegistry& registry, const ModelEntry& model, JobContext& ctx);

}  // namespace kiln::service
