#pragma once
// train.plan: what a `train` request would do, resolved and counted without queuing anything — the
// hosts' "Advanced" parameters pre-filled from the preset and the dataset, the exact step count and
// the warnings, shown before training starts. The request is checked as `train` checks it.
#include <nlohmann/json.hpp>

#include "service/jobs/train_job.h"

namespace kiln::service {

// {base, data, config (every resolved value, kohya names), origins (where each given key came from),
//  resolution [w, h], folders [{name, images, repeats}], images, images_with_repeats,
//  batches_per_epoch, steps_per_epoch, epochs, steps, files, sample_images, warnings}.
// Throws ServiceError(InvalidParams) listing every problem, as `train` would.
nlohmann::json plan_training(const nlohmann::json& params, const TrainJobDeps& deps);

}  // namespace kiln::service
