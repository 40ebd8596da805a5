// Train config, part 4 of 5: validation (every problem a plain sentence naming its key) and the
// advice of training_warnings(). See train_config_detail.h.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "service/training/presets.h"
#include "service/training/sample_prompts.h"
#include "service/training/text_util.h"
#include "service/training/train_config_detail.h"
#include "studio/error.h"
#include "studio/names.h"

namespace kiln::service::training {
using namespace detail;

namespace {

namespace fs = std::filesystem;

void check_choice(const std::string& key, const std::string& value, const std::vector<std::string>& valid,
                  std::vector<std::string>& errors, const std::string& extra = "") {
  if (std::find(valid.begin(), valid.end(), value) != valid.end()) return;
  errors.push_back(key + " '" + value + "' is not one of " + join(valid) + extra + suggestion(value, valid) +
                   (suggestion(value, valid).empty() ? "." : ""));
}

int64_t nearest_multiple(int64_t v, int64_t m) { return std::max<int64_t>(m, (v + m / 2) / m * m); }

// `what`: "resolution 500" or "resolution 512,500: the height 500".
void check_side(const std::string& what, int64_t v, std::vector<std::string>& errors) {
  // Below 256 only tiny test models make sense (training_warnings says so); SD1.5 wants 512.
  if (v < 64 || v > 2048) {
    errors.push_back(what + " is outside 64..2048 (512 is usual for SD1.5, 1024 for SDXL).");
  } else if (v % 64 != 0) {
    errors.push_back(what + " is not a multiple of 64 (use " + num(nearest_multiple(v, 64)) + ").");
  }
}

}  // namespace

std::vector<std::string> validate_train_config(const TrainConfig& c, const TrainEnvironment& env) {
  std::vector<std::string> e;
  auto at_least = [&](const std::string& key, int64_t v, int64_t min, const std::string& extra = "") {
    if (v < min) e.push_back(key + " must be at least " + num(min) + ", got " + num(v) + extra + ".");
  };

  // What to train and on what.
  if (c.pretrained_model_name_or_path.empty()) {
    e.push_back("pretrained_model_name_or_path (base) is missing: name a model from `kiln models list` or give a "
                "checkpoint path.");
  } else if (looks_like_path(c.pretrained_model_name_or_path) && !fs::exists(c.pretrained_model_name_or_path)) {
    e.push_back("pretrained_model_name_or_path " + c.pretrained_model_name_or_path + " does not exist.");
  }
  if (c.train_data_dir.empty() && c.dataset.empty()) {
    e.push_back("train_data_dir (a kohya folder of N_name subfolders) or dataset (a Kiln dataset name) is missing.");
  } else if (!c.train_data_dir.empty() && !c.dataset.empty()) {
    e.push_back("train_data_dir and dataset are both given; train on one of them.");
  }
  if (!c.train_data_dir.empty()) {
    std::error_code ec;
    if (!fs::exists(c.train_data_dir, ec)) e.push_back("train_data_dir " + c.train_data_dir + " does not exist.");
    else if (!fs::is_directory(c.train_data_dir, ec))
      e.push_back("train_data_dir " + c.train_data_dir + " is not a folder.");
  }
  if (!c.dataset.empty() && !studio::is_valid_library_name(c.dataset)) {
    try {
      studio::validate_library_name(c.dataset, "dataset name");
    } catch (const studio::Error& err) {
      e.push_back(std::string("dataset: ") + err.what());
    }
  }
  if (c.output_name.empty()) {
    e.push_back("output_name is missing: it names the LoRA (name-000001.safetensors ... name.safetensors).");
  } else if (!studio::is_valid_library_name(c.output_name)) {
    try {
      studio::validate_library_name(c.output_name, "output_name");
    } catch (const studio::Error& err) {
      e.push_back(err.what());
    }
  }
  if (!c.preset.empty() && !find_preset(c.preset)) {
    const std::string hint = suggestion(c.preset, preset_names());
    e.push_back("preset '" + c.preset + "' is not one of " + join(preset_names()) + (hint.empty() ? "." : hint));
  }
  if (c.num_repeats) at_least("num_repeats", *c.num_repeats, 1);

  // Where it runs.
  const bool cuda_device = c.device == "cuda" || c.device.rfind("cuda:", 0) == 0;
  if (c.device.rfind("cuda:", 0) == 0) {
    int64_t index = 0;
    if (!parse_int(c.device.substr(5), index) || index < 0)
      e.push_back("device '" + c.device + "' is not a CUDA device like cuda:0.");
  }
  if (c.device != "cpu" && !cuda_device) {
    e.push_back("device '" + c.device + "' is not one of auto, cpu, cuda, cuda:N.");
  } else if (cuda_device && !env.cuda_available) {
    e.push_back("device = " + c.device + ", but this daemon has no CUDA GPU (or its LibTorch has no CUDA); use "
                "device = cpu or auto.");
  }
  if (c.mixed_precision == "auto") {
    // Loading replaces it (resolve_environment); a config a caller built may still say it.
  } else if (std::find(kMixedPrecisions.begin(), kMixedPrecisions.end(), c.mixed_precision) == kMixedPrecisions.end()) {
    check_choice("mixed_precision", c.mixed_precision, kMixedPrecisions, e, " (or auto)");
  } else if (c.mixed_precision != "no" && !cuda_device) {
    e.push_back("mixed_precision = " + c.mixed_precision + " needs a CUDA GPU, but this training runs on the " +
                c.device + " (device = " + c.device + "); set mixed_precision = no (or auto).");
  }
  if (c.save_precision) check_choice("save_precision", *c.save_precision, kSavePrecisions, e);

  // Sizes and buckets.
  if (c.resolution.width == c.resolution.height) {
    check_side("resolution " + num(c.resolution.width), c.resolution.width, e);
  } else {
    const std::string r = "resolution " + num(c.resolution.width) + "," + num(c.resolution.height) + ": the ";
    check_side(r + "width " + num(c.resolution.width), c.resolution.width, e);
    check_side(r + "height " + num(c.resolution.height), c.resolution.height, e);
  }
  if (c.bucket_reso_steps < 8 || c.bucket_reso_steps % 8 != 0)
    e.push_back("bucket_reso_steps must be a positive multiple of 8 (64 is usual), got " + num(c.bucket_reso_steps) +
                ".");
  at_least("min_bucket_reso", c.min_bucket_reso, 64);
  if (c.max_bucket_reso < c.min_bucket_reso)
    e.push_back("max_bucket_reso " + num(c.max_bucket_reso) + " is below min_bucket_reso " + num(c.min_bucket_reso) +
                ".");
  if (c.enable_bucket) {
    // kohya asserts both when bucketing.
    const int64_t short_side = std::min(c.resolution.width, c.resolution.height);
    const int64_t long_side = std::max(c.resolution.width, c.resolution.height);
    if (c.min_bucket_reso > short_side)
      e.push_back("min_bucket_reso " + num(c.min_bucket_reso) + " is above the resolution's short side " +
                  num(short_side) + "; it must be equal or less.");
    if (c.max_bucket_reso < long_side)
      e.push_back("max_bucket_reso " + num(c.max_bucket_reso) + " is below the resolution's long side " +
                  num(long_side) + "; it must be equal or greater.");
  }

  // Steps.
  if (c.train_batch_size < 1 || c.train_batch_size > 64)
    e.push_back("train_batch_size must be 1..64, got " + num(c.train_batch_size) + ".");
  if (c.max_train_epochs) at_least("max_train_epochs", *c.max_train_epochs, 1);
  at_least("max_train_steps", c.max_train_steps, 1);
  at_least("gradient_accumulation_steps", c.gradient_accumulation_steps, 1);

  // Learning rates.
  if (!(c.learning_rate > 0)) e.push_back("learning_rate must be greater than 0, got " + num(c.learning_rate) + ".");
  if (c.unet_lr && !(*c.unet_lr > 0))
    e.push_back("unet_lr must be greater than 0, got " + num(*c.unet_lr) +
                "; to train only the text encoder set network_train_text_encoder_only = true.");
  if (c.text_encoder_lr && !(*c.text_encoder_lr > 0))
    e.push_back("text_encoder_lr must be greater than 0, got " + num(*c.text_encoder_lr) +
                "; to train only the U-Net set network_train_unet_only = true.");
  check_choice("lr_scheduler", c.lr_scheduler, scheduler_names(), e);
  if (c.lr_warmup_steps < 0) e.push_back("lr_warmup_steps must be 0 or more, got " + num(c.lr_warmup_steps) + ".");
  else if (c.lr_warmup_steps >= 1 && std::trunc(c.lr_warmup_steps) != c.lr_warmup_steps)
    e.push_back("lr_warmup_steps " + num(c.lr_warmup_steps) +
                " must be a whole number of steps, or a ratio below 1 of the total steps.");
  if (c.lr_scheduler == "constant" && c.lr_warmup_steps > 0)
    e.push_back("lr_warmup_steps = " + num(c.lr_warmup_steps) +
                " does nothing with lr_scheduler = constant (kohya refuses it); use constant_with_warmup or set "
                "lr_warmup_steps = 0.");
  at_least("lr_scheduler_num_cycles", c.lr_scheduler_num_cycles, 1);
  if (!(c.lr_scheduler_power > 0))
    e.push_back("lr_scheduler_power must be greater than 0, got " + num(c.lr_scheduler_power) + ".");

  // Optimizer.
  if (std::find(optimizer_names().begin(), optimizer_names().end(), c.optimizer_type) == optimizer_names().end()) {
    const std::string kohya = canonical(c.optimizer_type, kohya_only_optimizers());
    if (std::find(kohya_only_optimizers().begin(), kohya_only_optimizers().end(), kohya) !=
        kohya_only_optimizers().end())
      e.push_back("optimizer_type " + c.optimizer_type + " is a kohya optimizer Kiln does not have; use one of " +
                  join(optimizer_names()) + ".");
    else
      check_choice("optimizer_type", c.optimizer_type, optimizer_names(), e);
  }
  const OptimizerArgs& oa = c.optimizer_args;
  if (oa.weight_decay && *oa.weight_decay < 0)
    e.push_back("optimizer_args weight_decay must be 0 or more, got " + num(*oa.weight_decay) + ".");
  for (const auto& [name, v] : {std::pair{"beta1", oa.beta1}, std::pair{"beta2", oa.beta2}})
    if (v && (*v < 0 || *v >= 1))
      e.push_back(std::string("optimizer_args betas: ") + name + " must be in [0, 1), got " + num(*v) + ".");
  if (oa.eps && !(*oa.eps > 0)) e.push_back("optimizer_args eps must be greater than 0, got " + num(*oa.eps) + ".");
  if (oa.momentum && (*oa.momentum < 0 || *oa.momentum >= 1))
    e.push_back("optimizer_args momentum must be in [0, 1), got " + num(*oa.momentum) + ".");
  if (c.max_grad_norm < 0)
    e.push_back("max_grad_norm must be 0 (no clipping) or more, got " + num(c.max_grad_norm) + ".");

  // Network.
  if (c.network_module != "networks.lora")
    e.push_back("network_module '" + c.network_module +
                "' is not supported: Kiln trains kohya's networks.lora (conv_dim adds 3×3 conv layers, LoCon).");
  if (c.network_dim < 1 || c.network_dim > 1024)
    e.push_back("network_dim (the rank) must be 1..1024, got " + num(c.network_dim) + ".");
  if (!(c.network_alpha > 0))
    e.push_back("network_alpha must be greater than 0, got " + num(c.network_alpha) + " (alpha = dim/2 is usual).");
  if (c.conv_dim && (*c.conv_dim < 1 || *c.conv_dim > 1024))
    e.push_back("conv_dim must be 1..1024 when given, got " + num(*c.conv_dim) + " (leave it out for no conv LoRA).");
  if (c.conv_alpha && !(*c.conv_alpha > 0))
    e.push_back("conv_alpha must be greater than 0, got " + num(*c.conv_alpha) + ".");
  if (c.network_train_unet_only && c.network_train_text_encoder_only)
    e.push_back("network_train_unet_only and network_train_text_encoder_only are both set, which trains nothing; "
                "choose one.");

  // Text and captions.
  if (c.clip_skip && (*c.clip_skip < 1 || *c.clip_skip > 12))
    e.push_back("clip_skip must be 1..12 (1 for realistic models, 2 for anime), got " + num(*c.clip_skip) + ".");
  if (c.max_token_length && *c.max_token_length != 75 && *c.max_token_length != 150 && *c.max_token_length != 225)
    e.push_back("max_token_length must be 75, 150 or 225, got " + num(*c.max_token_length) + ".");
  if (c.keep_tokens < 0) e.push_back("keep_tokens must be 0 or more, got " + num(c.keep_tokens) + ".");
  if (!(c.caption_dropout_rate >= 0 && c.caption_dropout_rate <= 1))
    e.push_back("caption_dropout_rate must be between 0 and 1, got " + num(c.caption_dropout_rate) + ".");
  if (c.caption_extension.size() < 2 || c.caption_extension[0] != '.' ||
      c.caption_extension.find_first_of("/\\") != std::string::npos)
    e.push_back("caption_extension must be a file extension starting with a dot, like .txt or .caption, got '" +
                c.caption_extension + "'.");

  // Loss.
  if (c.noise_offset && !(*c.noise_offset >= 0 && *c.noise_offset <= 1))
    e.push_back("noise_offset must be between 0 and 1 (0.05–0.1 is usual), got " + num(*c.noise_offset) + ".");
  if (c.min_snr_gamma && !(*c.min_snr_gamma > 0))
    e.push_back("min_snr_gamma must be greater than 0 (5 is usual), got " + num(*c.min_snr_gamma) + ".");

  // Saving and samples.
  if (c.seed && *c.seed < 0) e.push_back("seed must be 0 or more, got " + num(*c.seed) + ".");
  if (c.save_every_n_epochs) at_least("save_every_n_epochs", *c.save_every_n_epochs, 1);
  if (c.save_every_n_steps) at_least("save_every_n_steps", *c.save_every_n_steps, 1);
  if (c.sample_every_n_steps) at_least("sample_every_n_steps", *c.sample_every_n_steps, 1);
  if (c.sample_every_n_epochs) at_least("sample_every_n_epochs", *c.sample_every_n_epochs, 1);
  const auto& kohya_samplers = kohya_sample_samplers();
  if (std::find(kohya_samplers.begin(), kohya_samplers.end(), c.sample_sampler) == kohya_samplers.end())
    check_choice("sample_sampler", c.sample_sampler, supported_sample_samplers(), e);
  else if (engine_sampler_name(c.sample_sampler).empty())
    e.push_back("sample_sampler " + c.sample_sampler + " is a kohya sampler Kiln does not have; use one of " +
                join(supported_sample_samplers()) + ".");
  const SamplePromptsResult prompts = parse_sample_prompts(c.sample_prompts);
  for (const std::string& err : prompts.errors)
    e.push_back(c.sample_prompts_file.empty() ? err : c.sample_prompts_file + ": " + err);
  return e;
}

int64_t estimate_total_steps(const TrainConfig& c, int64_t images_with_repeats) {
  if (!c.max_train_epochs) return c.max_train_steps;
  const int64_t batch = std::max<int64_t>(1, c.train_batch_size);
  const int64_t accumulation = std::max<int64_t>(1, c.gradient_accumulation_steps);
  const int64_t batches = (std::max<int64_t>(0, images_with_repeats) + batch - 1) / batch;
  return (batches + accumulation - 1) / accumulation * *c.max_train_epochs;
}

int64_t DatasetFacts::images() const {
  int64_t n = 0;
  for (const DatasetFolder& f : folders) n += f.images;
  return n;
}

int64_t DatasetFacts::images_with_repeats() const {
  int64_t n = 0;
  for (const DatasetFolder& f : folders) n += f.images * f.repeats;
  return n;
}

std::vector<std::string> training_warnings(const TrainConfig& c, const DatasetFacts& facts) {
  std::vector<std::string> w = c.notes;
  const Preset* preset = find_preset(c.preset);
  const int64_t images = facts.images();

  // Dataset size: "20–30 (product 20–40) high-resolution images".
  if (images > 0 && images < 15) {
    const std::string range = preset && preset->name == "product" ? "20–40" : "20–30";
    w.push_back("The dataset has only " + num(images) + " image" + (images == 1 ? "" : "s") +
                "; with fewer than 15 the LoRA tends to copy them. " + range + " sharp images from several angles are "
                "recommended" + (preset ? " for a " + preset->name + " LoRA." : "."));
  }
  // Resolution: "below 512 is clearly worse".
  const int64_t short_side = std::min(c.resolution.width, c.resolution.height);
  // Each family's native size (SD1.5: 512, SDXL: 1024): "below 512 is clearly worse"; kohya's SDXL
  // guides train at 1024. A model whose file names its own size (Kiln Mini: 64) is held to that.
  if (c.native_size > 0) {
    if (short_side < c.native_size)
      w.push_back("Training at " + num(short_side) + " px, below the " + num(c.native_size) +
                  " px the base model was trained at: the LoRA learns a soft, smeared look. Use resolution " +
                  num(c.native_size) + ".");
  } else if (short_side < engine::family_traits(c.family).default_size) {
    w.push_back("Training at " + num(short_side) + " px: " + family_training(c.family).below_native_advice);
  }
  if (facts.low_resolution_images > 0 || (facts.min_short_side > 0 && facts.min_short_side < short_side)) {
    std::string s = facts.low_resolution_images > 0
                        ? num(facts.low_resolution_images) + " image" + (facts.low_resolution_images == 1 ? " is" : "s are")
                        : "Some images are";
    s += " smaller than the training resolution " + num(short_side);
    if (facts.min_short_side > 0) s += " (the smallest short side is " + num(facts.min_short_side) + " px)";
    s += "; they are upscaled and teach the LoRA a soft look. Replace or upscale them first.";
    w.push_back(s);
  }
  // Total steps: "total steps = images × repeats × epochs / batch size (e.g. 5 × 50 × 10 = 2,500)".
  if (images > 0) {
    const int64_t with_repeats = facts.images_with_repeats();
    const int64_t steps = facts.total_steps ? *facts.total_steps : estimate_total_steps(c, with_repeats);
    if (steps < kUsualStepsMin || steps > kUsualStepsMax) {
      const bool low = steps < kUsualStepsMin;
      std::string s = "This training runs " + num(steps) + " steps";
      if (c.max_train_epochs) {
        s += " (" + num(images) + " images, " + num(with_repeats) + " with repeats, batch " +
             num(c.train_batch_size) + ", " + num(*c.max_train_epochs) + " epochs)";
      }
      s += low ? ", well below the usual 1,500–3,000: the LoRA may not learn the subject. "
               : ", well above the usual 1,500–3,000: the LoRA may overfit (every image copies the training photos). ";
      if (c.max_train_epochs) {
        const int64_t per_epoch = std::max<int64_t>(1, steps / std::max<int64_t>(1, *c.max_train_epochs));
        const int64_t epochs = std::max<int64_t>(1, (kTargetSteps + per_epoch / 2) / per_epoch);
        const int64_t repeats = suggest_repeats(images, *c.max_train_epochs,
                                                c.train_batch_size * c.gradient_accumulation_steps);
        s += std::string(low ? "Raise" : "Lower") + " the repeats per image to about " + num(repeats) +
             " (num_repeats or the folder's N_ prefix) or the epochs (max_train_epochs) to about " + num(epochs) + ".";
      } else {
        s += "Set max_train_steps to about " + num(kTargetSteps) + ".";
      }
      w.push_back(s);
    }
  }
  // Rank: "≥ 32 rarely worth it and overfits".
  if (c.conv_dim && (*c.conv_dim > 32 || (*c.conv_dim > c.network_dim))) {
    w.push_back("conv_dim " + num(*c.conv_dim) + " is a very high rank for 3×3 conv layers (with network_dim " +
                num(c.network_dim) + "): the file grows and the LoRA overfits easily; LoCon usually uses conv_dim 4–16, "
                "at most network_dim.");
  }
  if (c.network_dim > 128)
    w.push_back("network_dim " + num(c.network_dim) + " is far above the usual 4–128: a large file that overfits "
                "easily; 32 is plenty for most subjects.");
  if (c.network_alpha > c.network_dim)
    w.push_back("network_alpha " + num(c.network_alpha) + " is above network_dim " + num(c.network_dim) +
                ", which scales the LoRA's updates up; alpha is usually dim/2 or dim.");
  // Learning rate: "1e-4 (range 5e-5 … 2e-4; 1e-4 to 1e-3 in some guides)".
  if (c.trains_unet() && c.effective_unet_lr() > 1e-3)
    w.push_back("The U-Net learning rate " + num(c.effective_unet_lr()) +
                " is above 1e-3, the top of the usual range (5e-5 … 1e-3): expect images to collapse.");
  // Samples.
  const bool sampling = c.sample_every_n_steps || c.sample_every_n_epochs || c.sample_at_first;
  const SamplePromptsResult prompts = parse_sample_prompts(c.sample_prompts);
  if (prompts.prompts.empty() && sampling)
    w.push_back("No sample_prompts are given: the samples show the trigger word alone. Add prompts that change "
                "clothes, hair or background to see that the LoRA still follows the prompt.");
  if (!prompts.prompts.empty() && !sampling)
    w.push_back("sample_prompts are given but neither sample_every_n_steps nor sample_every_n_epochs is set, so no "
                "samples will be made.");
  return w;
}

}  // namespace kiln::service::training
