#include "service/training/train_config_engine.h"

namespace kiln::service::training {

engine::lora::BucketOptions bucket_options(const TrainConfig& c) {
  engine::lora::BucketOptions b;
  b.resolution = {c.resolution.width, c.resolution.height};
  b.min_bucket_reso = c.min_bucket_reso;
  b.max_bucket_reso = c.max_bucket_reso;
  b.bucket_reso_steps = c.bucket_reso_steps;
  b.bucket_no_upscale = c.bucket_no_upscale;
  b.enable_bucket = c.enable_bucket;
  return b;
}

engine::lora::StepOptions step_options(const TrainConfig& c) {
  engine::lora::StepOptions s;
  s.batch_size = c.train_batch_size;
  s.gradient_accumulation_steps = c.gradient_accumulation_steps;
  s.max_train_steps = c.max_train_steps;
  s.max_train_epochs = c.max_train_epochs;
  return s;
}

engine::lora::NetworkOptions network_options(const TrainConfig& c) {
  engine::lora::NetworkOptions n;
  n.dim = c.network_dim;
  n.alpha = c.network_alpha;
  n.conv_dim = c.conv_dim.value_or(0);
  n.conv_alpha = c.conv_alpha.value_or(1.0);  // kohya lora.py: conv_alpha defaults to 1.0
  n.text_encoder = c.trains_text_encoder();
  n.unet = c.trains_unet();
  return n;
}

engine::lora::TrainerOptions trainer_options(const TrainConfig& c, int64_t max_train_steps) {
  engine::lora::TrainerOptions t;
  t.learning_rate = c.learning_rate;
  t.unet_lr = c.unet_lr;
  t.text_encoder_lr = c.text_encoder_lr;

  t.optimizer.type = c.optimizer_type;
  // The engine's "unset" is negative: the optimizer's own default.
  t.optimizer.weight_decay = c.optimizer_args.weight_decay.value_or(-1);
  t.optimizer.beta1 = c.optimizer_args.beta1.value_or(-1);
  t.optimizer.beta2 = c.optimizer_args.beta2.value_or(-1);
  if (c.optimizer_args.eps) t.optimizer.eps = *c.optimizer_args.eps;
  if (c.optimizer_args.momentum) t.optimizer.momentum = *c.optimizer_args.momentum;

  t.lr_schedule.name = c.lr_scheduler;
  t.lr_schedule.training_steps = max_train_steps;
  t.lr_schedule.warmup_steps = engine::lora::resolve_warmup_steps(c.lr_warmup_steps, max_train_steps);
  t.lr_schedule.num_cycles = c.lr_scheduler_num_cycles;
  t.lr_schedule.power = c.lr_scheduler_power;
  t.lr_schedule.base_lr = c.learning_rate;

  t.gradient_accumulation_steps = c.gradient_accumulation_steps;
  t.max_grad_norm = c.max_grad_norm;
  t.noise_offset = c.noise_offset.value_or(0);
  t.min_snr_gamma = c.min_snr_gamma.value_or(0);
  t.clip_skip = static_cast<int>(c.effective_clip_skip());
  t.gradient_checkpointing = c.gradient_checkpointing;
  t.mixed_precision = c.mixed_precision;
  t.seed = static_cast<uint64_t>(c.seed.value_or(0));  // the job records a drawn seed before this
  return t;
}

torch::Dtype save_dtype(const TrainConfig& c) {
  // kohya prepare_dtype: no --save_precision keeps the trained float32 weights.
  if (c.save_precision == std::optional<std::string>("fp16")) return torch::kFloat16;
  if (c.save_precision == std::optional<std::string>("bf16")) return torch::kBFloat16;
  return torch::kFloat32;
}

}  // namespace kiln::service::training
