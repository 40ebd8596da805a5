#include "service/training/lora_metadata.h"

#include <ctime>

#include "engine/lora/python_repr.h"

namespace kiln::service::training {

namespace {
using engine::lora::python_float;

std::string py_bool(bool v) { return v ? "True" : "False"; }
template <typename T>
std::string py_opt_int(const std::optional<T>& v) { return v ? std::to_string(*v) : "None"; }
std::string py_opt_float(const std::optional<double>& v) { return v ? python_float(*v) : "None"; }

// Python's str(time.time()): seconds with up to 7 decimals, at least ".0".
std::string py_time(double t) { return python_float(t); }

std::string iso_local(double t) {
  const std::time_t s = static_cast<std::time_t>(t);
  std::tm tm{};
  localtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return buf;
}
}  // namespace

std::string kohya_optimizer_name(const TrainConfig& c) {
  // kohya: optimizer_class.__module__ + "." + __name__, then "(k=v,...)" of the optimizer_args given.
  std::string name;
  if (c.optimizer_type == "AdamW") name = "torch.optim.adamw.AdamW";
  else if (c.optimizer_type == "AdamW8bit") name = "bitsandbytes.optim.adamw.AdamW8bit";
  else if (c.optimizer_type == "Lion") name = "lion_pytorch.lion_pytorch.Lion";
  else if (c.optimizer_type == "SGDNesterov") name = "torch.optim.sgd.SGD";
  else name = c.optimizer_type;
  std::vector<std::string> args;
  if (c.optimizer_type == "SGDNesterov") {
    args.push_back("nesterov=True");
    args.push_back("momentum=" + python_float(c.optimizer_args.momentum.value_or(0.9)));
  }
  const auto& a = c.optimizer_args;
  if (a.weight_decay) args.push_back("weight_decay=" + python_float(*a.weight_decay));
  if (a.beta1 || a.beta2)
    args.push_back("betas=(" + python_float(a.beta1.value_or(0.9)) + ", " + python_float(a.beta2.value_or(0.999)) + ")");
  if (a.eps) args.push_back("eps=" + python_float(*a.eps));
  if (args.empty()) return name;
  std::string joined;
  for (const auto& s : args) joined += (joined.empty() ? "" : ",") + s;
  return name + "(" + joined + ")";
}

std::map<std::string, std::string> kohya_metadata(const TrainConfig& c, const RunFacts& run, const SaveFacts& save) {
  std::map<std::string, std::string> m;
  const std::string reso = "(" + std::to_string(c.resolution.width) + ", " + std::to_string(c.resolution.height) + ")";
  m["ss_session_id"] = run.session_id;
  m["ss_training_started_at"] = py_time(run.started_at);
  m["ss_training_finished_at"] = py_time(save.finished_at);
  m["ss_output_name"] = c.output_name;
  m["ss_learning_rate"] = python_float(c.learning_rate);
  m["ss_unet_lr"] = python_float(c.effective_unet_lr());
  m["ss_text_encoder_lr"] = python_float(c.effective_text_encoder_lr());
  m["ss_num_train_images"] = std::to_string(run.num_train_images);
  m["ss_num_reg_images"] = "0";
  m["ss_num_batches_per_epoch"] = std::to_string(run.num_batches_per_epoch);
  m["ss_num_epochs"] = std::to_string(run.num_epochs);
  m["ss_epoch"] = std::to_string(save.epoch);
  m["ss_steps"] = std::to_string(save.steps);
  m["ss_batch_size_per_device"] = std::to_string(c.train_batch_size);
  m["ss_total_batch_size"] = std::to_string(c.train_batch_size * c.gradient_accumulation_steps);
  m["ss_gradient_checkpointing"] = py_bool(c.gradient_checkpointing);
  m["ss_gradient_accumulation_steps"] = std::to_string(c.gradient_accumulation_steps);
  m["ss_max_train_steps"] = std::to_string(run.max_train_steps);
  m["ss_lr_warmup_steps"] = std::to_string(static_cast<int64_t>(c.lr_warmup_steps < 1 ? c.lr_warmup_steps * double(run.max_train_steps) : c.lr_warmup_steps));
  m["ss_lr_scheduler"] = c.lr_scheduler;
  m["ss_network_dropout"] = "None";
  m["ss_mixed_precision"] = c.mixed_precision;
  m["ss_full_fp16"] = "False";
  m["ss_v2"] = "False";
  // The family's row (families.h): "sd_v1", "sdxl_base_v1-0" as kohya's model_util names them.
  const engine::FamilyTraits& family = engine::family_traits(c.family);
  m["ss_base_model_version"] = family.kohya_base_model_version;
  m["ss_clip_skip"] = py_opt_int(c.clip_skip);
  m["ss_max_token_length"] = py_opt_int(c.max_token_length);
  m["ss_cache_latents"] = py_bool(c.caches_latents());
  m["ss_seed"] = std::to_string(run.seed);
  m["ss_lowram"] = "False";
  m["ss_noise_offset"] = py_opt_float(c.noise_offset);
  m["ss_min_snr_gamma"] = py_opt_float(c.min_snr_gamma);
  m["ss_zero_terminal_snr"] = "False";
  m["ss_loss_type"] = "l2";
  m["ss_training_comment"] = c.training_comment.empty() ? "None" : c.training_comment;
  m["ss_sd_scripts_commit_hash"] = "(Kiln)";
  m["ss_optimizer"] = kohya_optimizer_name(c);
  m["ss_max_grad_norm"] = python_float(c.max_grad_norm);
  m["ss_caption_dropout_rate"] = python_float(c.caption_dropout_rate);
  m["ss_caption_dropout_every_n_epochs"] = "0";
  m["ss_caption_tag_dropout_rate"] = "0.0";
  m["ss_face_crop_aug_range"] = "None";
  m["ss_prior_loss_weight"] = "1.0";
  m["ss_resolution"] = reso;
  m["ss_enable_bucket"] = py_bool(c.enable_bucket);
  m["ss_min_bucket_reso"] = std::to_string(c.min_bucket_reso);
  m["ss_max_bucket_reso"] = std::to_string(c.max_bucket_reso);
  m["ss_bucket_no_upscale"] = py_bool(c.bucket_no_upscale);
  m["ss_keep_tokens"] = std::to_string(c.keep_tokens);
  m["ss_shuffle_caption"] = py_bool(c.shuffle_caption);
  m["ss_color_aug"] = "False";
  m["ss_flip_aug"] = "False";
  m["ss_random_crop"] = "False";
  m["ss_reg_dataset_dirs"] = "{}";
  m["ss_tag_frequency"] = run.tag_frequency.is_null() ? "{}" : run.tag_frequency.dump();
  m["ss_dataset_dirs"] = run.dataset_dirs.is_null() ? "{}" : run.dataset_dirs.dump();
  m["ss_bucket_info"] = run.bucket_info.is_null() ? "null" : run.bucket_info.dump();
  m["ss_sd_model_name"] = run.base_model_name;
  if (!run.base_model_hash.empty()) m["ss_sd_model_hash"] = run.base_model_hash;
  if (!run.base_model_sha256.empty()) m["ss_new_sd_model_hash"] = run.base_model_sha256;
  m["ss_vae_name"] = "None";

  // SAI model spec 1.0.1, as kohya's library/sai_model_spec.py writes it for a LoRA of the family.
  m["modelspec.sai_model_spec"] = "1.0.1";
  m["modelspec.architecture"] = family.modelspec_architecture;
  m["modelspec.implementation"] = family.modelspec_implementation;
  m["modelspec.implementation_version"] = "Kiln";
  m["modelspec.title"] = save.epoch > 0 && save.epoch < run.num_epochs ? c.output_name + "-" + std::to_string(save.epoch)
                                                                        : c.output_name;
  m["modelspec.resolution"] = std::to_string(c.resolution.width) + "x" + std::to_string(c.resolution.height);
  m["modelspec.prediction_type"] = "epsilon";
  m["modelspec.date"] = iso_local(save.finished_at);
  return m;
}

}  // namespace kiln::service::training
