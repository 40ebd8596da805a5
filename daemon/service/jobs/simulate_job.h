#pragma once
// The built-in `simulate` job: sleeps through N steps, reporting progress, with optional preview
// images and an optional failure. It exercises priority, yield, pause, cancel, persistence and
// resume exactly as real jobs do, so they are tested without a model.
#include "service/jobs/job_context.h"

namespace kiln::service {

JobType make_simulate_job_type();

}  // namespace kiln::service
