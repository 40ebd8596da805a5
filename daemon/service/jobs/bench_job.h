#pragma once
// The `bench.generate` job: generation speed and memory on the daemon's own device, for
// `kiln bench generate`. A long job, so it never delays someone's interactive generation.
#include "service/jobs/job_context.h"

namespace kiln::service {

struct Compute;
class ModelRegistry;

JobType make_bench_generate_job_type(Compute& compute, ModelRegistry& models);

}  // namespace kiln::service
