// Train config, part 5 of 5: what a resolved config is written as: config.json (to_json) and a
// kohya --config_file TOML that reruns the training with train_network.py (sdxl_train_network.py
// for an SDXL base). See train_config_detail.h.
#include <cmath>
#include <sstream>

#include "service/training/presets.h"
#include "service/training/train_config_detail.h"

namespace kiln::service::training {
using namespace detail;

nlohmann::json to_json(const TrainConfig& c) {
  auto opt = [](const auto& o) -> json { return o ? json(*o) : json(nullptr); };
  json optimizer_args = json::object();
  if (c.optimizer_args.weight_decay) optimizer_args["weight_decay"] = *c.optimizer_args.weight_decay;
  if (c.optimizer_args.beta1 && c.optimizer_args.beta2)
    optimizer_args["betas"] = {*c.optimizer_args.beta1, *c.optimizer_args.beta2};
  if (c.optimizer_args.eps) optimizer_args["eps"] = *c.optimizer_args.eps;
  if (c.optimizer_args.momentum) optimizer_args["momentum"] = *c.optimizer_args.momentum;
  const bool whole_warmup = std::trunc(c.lr_warmup_steps) == c.lr_warmup_steps;
  return json{
      {"preset", c.preset.empty() ? json(nullptr) : json(c.preset)},
      {"device", c.device},
      {"pretrained_model_name_or_path", c.pretrained_model_name_or_path},
      {"train_data_dir", c.train_data_dir.empty() ? json(nullptr) : json(c.train_data_dir)},
      {"dataset", c.dataset.empty() ? json(nullptr) : json(c.dataset)},
      {"num_repeats", opt(c.num_repeats)},
      {"output_name", c.output_name},
      {"training_comment", c.training_comment},
      {"resolution", num(c.resolution.width) + "," + num(c.resolution.height)},
      {"enable_bucket", c.enable_bucket},
      {"min_bucket_reso", c.min_bucket_reso},
      {"max_bucket_reso", c.max_bucket_reso},
      {"bucket_reso_steps", c.bucket_reso_steps},
      {"bucket_no_upscale", c.bucket_no_upscale},
      {"train_batch_size", c.train_batch_size},
      {"max_train_epochs", opt(c.max_train_epochs)},
      // Ignored beside max_train_epochs; left out then so that loading it back says nothing.
      {"max_train_steps", c.max_train_epochs ? json(nullptr) : json(c.max_train_steps)},
      {"gradient_accumulation_steps", c.gradient_accumulation_steps},
      {"learning_rate", c.learning_rate},
      {"unet_lr", opt(c.unet_lr)},
      {"text_encoder_lr", opt(c.text_encoder_lr)},
      {"lr_scheduler", c.lr_scheduler},
      {"lr_warmup_steps",
       whole_warmup ? json(static_cast<int64_t>(c.lr_warmup_steps)) : json(c.lr_warmup_steps)},
      {"lr_scheduler_num_cycles", c.lr_scheduler_num_cycles},
      {"lr_scheduler_power", c.lr_scheduler_power},
      {"optimizer_type", c.optimizer_type},
      {"optimizer_args", optimizer_args},
      {"max_grad_norm", c.max_grad_norm},
      {"network_module", c.network_module},
      {"network_dim", c.network_dim},
      {"network_alpha", c.network_alpha},
      {"conv_dim", opt(c.conv_dim)},
      {"conv_alpha", opt(c.conv_alpha)},
      {"network_train_unet_only", c.network_train_unet_only},
      {"network_train_text_encoder_only", c.network_train_text_encoder_only},
      {"clip_skip", opt(c.clip_skip)},
      {"max_token_length", opt(c.max_token_length)},
      {"shuffle_caption", c.shuffle_caption},
      {"keep_tokens", c.keep_tokens},
      {"caption_dropout_rate", c.caption_dropout_rate},
      {"caption_extension", c.caption_extension},
      {"noise_offset", opt(c.noise_offset)},
      {"min_snr_gamma", opt(c.min_snr_gamma)},
      {"cache_latents", c.cache_latents},
      {"cache_latents_to_disk", c.cache_latents_to_disk},
      {"gradient_checkpointing", c.gradient_checkpointing},
      {"mixed_precision", c.mixed_precision},
      {"save_precision", opt(c.save_precision)},
      {"seed", opt(c.seed)},
      {"save_every_n_epochs", opt(c.save_every_n_epochs)},
      {"save_every_n_steps", opt(c.save_every_n_steps)},
      {"sample_every_n_steps", opt(c.sample_every_n_steps)},
      {"sample_every_n_epochs", opt(c.sample_every_n_epochs)},
      {"sample_at_first", c.sample_at_first},
      {"sample_prompts", c.sample_prompts},
      {"sample_prompts_file", c.sample_prompts_file.empty() ? json(nullptr) : json(c.sample_prompts_file)},
      {"sample_sampler", c.sample_sampler},
  };
}

std::string sample_prompts_text(const TrainConfig& c) {
  std::string out;
  for (const std::string& line : c.sample_prompts) out += line + "\n";
  return out;
}

std::string to_kohya_toml(const TrainConfig& c, const KohyaTomlOptions& options) {
  std::ostringstream o;
  auto kv = [&](const std::string& key, const std::string& value) { o << key << " = " << value << "\n"; };
  auto b = [](bool v) { return std::string(v ? "true" : "false"); };
  // SDXL configs run with kohya's SDXL script (its text encoders and size conditioning).
  const char* script = family_training(c.family).kohya_script;
  o << "# kohya sd-scripts " << script << " --config_file, written by Kiln";
  if (!c.preset.empty()) o << " (preset " << c.preset << ")";
  o << ".\n# Kiln ran it on " << c.device << ".\n";

  o << "\n[model_arguments]\n";
  kv("pretrained_model_name_or_path", toml_string(c.pretrained_model_name_or_path));

  o << "\n[dataset_arguments]\n";
  const std::string data_dir = !options.train_data_dir.empty() ? options.train_data_dir : c.train_data_dir;
  if (data_dir.empty() && !c.dataset.empty())
    o << "# Kiln dataset '" << c.dataset << "': point train_data_dir at its kohya folder (N_name subfolders).\n";
  kv("train_data_dir", toml_string(data_dir.empty() ? c.dataset : data_dir));
  if (c.num_repeats)
    o << "# Kiln repeated each image " << *c.num_repeats
      << " times per epoch: kohya reads that from the folder name (" << *c.num_repeats << "_name).\n";
  kv("resolution", toml_string(num(c.resolution.width) + "," + num(c.resolution.height)));
  kv("enable_bucket", b(c.enable_bucket));
  kv("min_bucket_reso", num(c.min_bucket_reso));
  kv("max_bucket_reso", num(c.max_bucket_reso));
  kv("bucket_reso_steps", num(c.bucket_reso_steps));
  kv("bucket_no_upscale", b(c.bucket_no_upscale));
  kv("caption_extension", toml_string(c.caption_extension));
  kv("shuffle_caption", b(c.shuffle_caption));
  kv("keep_tokens", num(c.keep_tokens));
  kv("caption_dropout_rate", toml_float(c.caption_dropout_rate));
  if (c.max_token_length) kv("max_token_length", num(*c.max_token_length));
  kv("cache_latents", b(c.cache_latents));
  kv("cache_latents_to_disk", b(c.cache_latents_to_disk));

  o << "\n[additional_network_arguments]\n";
  kv("network_module", toml_string(c.network_module));
  kv("network_dim", num(c.network_dim));
  kv("network_alpha", toml_float(c.network_alpha));
  std::vector<std::string> network_args;
  if (c.conv_dim) network_args.push_back(toml_string("conv_dim=" + num(*c.conv_dim)));
  if (c.conv_dim && c.conv_alpha) network_args.push_back(toml_string("conv_alpha=" + num(*c.conv_alpha)));
  kv("network_args", "[" + join(network_args) + "]");
  kv("network_train_unet_only", b(c.network_train_unet_only));
  kv("network_train_text_encoder_only", b(c.network_train_text_encoder_only));
  if (!c.training_comment.empty()) kv("training_comment", toml_string(c.training_comment));

  o << "\n[optimizer_arguments]\n";
  kv("optimizer_type", toml_string(c.optimizer_type));
  std::vector<std::string> optimizer_args;
  if (c.optimizer_args.weight_decay) optimizer_args.push_back(toml_string("weight_decay=" + num(*c.optimizer_args.weight_decay)));
  if (c.optimizer_args.beta1 && c.optimizer_args.beta2)
    optimizer_args.push_back(
        toml_string("betas=" + num(*c.optimizer_args.beta1) + "," + num(*c.optimizer_args.beta2)));
  if (c.optimizer_args.eps) optimizer_args.push_back(toml_string("eps=" + num(*c.optimizer_args.eps)));
  if (c.optimizer_args.momentum) optimizer_args.push_back(toml_string("momentum=" + num(*c.optimizer_args.momentum)));
  if (!optimizer_args.empty()) kv("optimizer_args", "[" + join(optimizer_args) + "]");
  kv("learning_rate", toml_float(c.learning_rate));
  if (c.unet_lr) kv("unet_lr", toml_float(*c.unet_lr));
  if (c.text_encoder_lr) kv("text_encoder_lr", toml_float(*c.text_encoder_lr));
  kv("lr_scheduler", toml_string(c.lr_scheduler));
  kv("lr_warmup_steps", std::trunc(c.lr_warmup_steps) == c.lr_warmup_steps
                            ? num(static_cast<int64_t>(c.lr_warmup_steps))
                            : toml_float(c.lr_warmup_steps));
  kv("lr_scheduler_num_cycles", num(c.lr_scheduler_num_cycles));
  kv("lr_scheduler_power", toml_float(c.lr_scheduler_power));
  kv("max_grad_norm", toml_float(c.max_grad_norm));

  o << "\n[training_arguments]\n";
  kv("train_batch_size", num(c.train_batch_size));
  if (c.max_train_epochs) kv("max_train_epochs", num(*c.max_train_epochs));
  else kv("max_train_steps", num(c.max_train_steps));
  kv("gradient_accumulation_steps", num(c.gradient_accumulation_steps));
  kv("gradient_checkpointing", b(c.gradient_checkpointing));
  kv("mixed_precision", toml_string(c.mixed_precision));
  if (c.clip_skip) kv("clip_skip", num(*c.clip_skip));
  if (c.noise_offset) kv("noise_offset", toml_float(*c.noise_offset));
  if (c.min_snr_gamma) kv("min_snr_gamma", toml_float(*c.min_snr_gamma));
  if (c.seed) kv("seed", num(*c.seed));

  o << "\n[sample_prompt_arguments]\n";
  kv("sample_sampler", toml_string(c.sample_sampler));
  if (c.sample_every_n_steps) kv("sample_every_n_steps", num(*c.sample_every_n_steps));
  if (c.sample_every_n_epochs) kv("sample_every_n_epochs", num(*c.sample_every_n_epochs));
  if (c.sample_at_first) kv("sample_at_first", "true");
  if (!c.sample_prompts.empty()) {
    const std::string file =
        !options.sample_prompts_file.empty() ? options.sample_prompts_file
        : !c.sample_prompts_file.empty()     ? c.sample_prompts_file
                                             : "sample_prompts.txt";
    if (options.sample_prompts_file.empty() && c.sample_prompts_file.empty())
      o << "# Write the prompts of config.json's sample_prompts into this file, one per line.\n";
    kv("sample_prompts", toml_string(file));
  }

  o << "\n[saving_arguments]\n";
  kv("output_name", toml_string(c.output_name));
  if (!options.output_dir.empty()) kv("output_dir", toml_string(options.output_dir));
  kv("save_model_as", toml_string("safetensors"));
  if (c.save_precision) kv("save_precision", toml_string(*c.save_precision));
  if (c.save_every_n_epochs) kv("save_every_n_epochs", num(*c.save_every_n_epochs));
  if (c.save_every_n_steps) kv("save_every_n_steps", num(*c.save_every_n_steps));
  return o.str();
}

}  // namespace kiln::service::training
