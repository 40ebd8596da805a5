#pragma once
// The `lora.grid` job: the validation grid of WORKFLOW.md step 6 (A1111's X/Y plot, built in).
// Columns are the LoRA's saved files (epoch files, then the final one), rows the strengths
// (0.1 … 1.0 by default) — for a second prompt too when one is given, so the grid shows whether
// the LoRA still lets the prompt change hair, clothes or background. One seed and prompt for
// every cell; one labelled PNG (grid.png in the LoRA's folder unless `out` says otherwise) with
// the settings in its infotext.
#include "service/jobs/job_context.h"

namespace kiln::service {

struct Compute;
class LoraLibrary;
class ModelRegistry;

// Checks the parameters (throws ServiceError(InvalidParams / NotFound)).
void validate_grid_params(const Json& params, LoraLibrary& loras, ModelRegistry& models);

JobType make_grid_job_type(Compute& compute, ModelRegistry& models, LoraLibrary& loras);

}  // namespace kiln::service
