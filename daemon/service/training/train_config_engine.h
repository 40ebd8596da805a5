#pragma once
// TrainConfig → the engine's training types (includes LibTorch through the engine headers; only
// the train job needs this).
#include <cstdint>

#include "engine/lora/buckets.h"
#include "engine/lora/network.h"
#include "engine/lora/trainer.h"
#include "service/training/train_config.h"
#include "service/training/train_steps.h"

namespace kiln::service::training {

engine::lora::NetworkOptions network_options(const TrainConfig& config);
// `max_train_steps`: the run's optimizer steps (StepPlan::max_train_steps): the schedule's length,
// and what a warm-up ratio (lr_warmup_steps < 1) is a ratio of.
engine::lora::TrainerOptions trainer_options(const TrainConfig& config, int64_t max_train_steps);
// kohya --save_precision for LoraNetwork::save: fp16 → kHalf, bf16 → kBFloat16, float or unset → kFloat.
torch::Dtype save_dtype(const TrainConfig& config);

}  // namespace kiln::service::training
