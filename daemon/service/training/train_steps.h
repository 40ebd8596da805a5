#pragma once
// TrainConfig → the engine's bucket and step options. Torch-free (engine/lora/buckets.h is plain
// C++), so the data side of training builds without LibTorch headers.
#include "engine/lora/buckets.h"
#include "service/training/train_config.h"

namespace kiln::service::training {

engine::lora::BucketOptions bucket_options(const TrainConfig& config);
engine::lora::StepOptions step_options(const TrainConfig& config);

}  // namespace kiln::service::training
