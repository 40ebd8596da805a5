// Train config, part 1 of 5: the keys (Kiln's, their aliases, and kohya's that Kiln does not
// implement) and the text helpers every part's messages use. See train_config_detail.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "service/training/text_util.h"
#include "service/training/train_config_detail.h"

namespace kiln::service::training {
namespace detail {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- text helpers

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

// The shortest text that reads back as the same double ("0.0001", "2e-06" → "2e-6", "1.5").
std::string num(double v) {
  // Whole numbers as people write them ("100", not "1e2"); the shortest exact form otherwise.
  if (v == std::floor(v) && std::abs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  // "1e-05" → "1e-5", "1e+20" → "1e20": what people write.
  const size_t e = s.find('e');
  if (e != std::string::npos) {
    std::string mant = s.substr(0, e), exp = s.substr(e + 1);
    std::string sign;
    if (!exp.empty() && (exp[0] == '+' || exp[0] == '-')) {
      if (exp[0] == '-') sign = "-";
      exp.erase(0, 1);
    }
    while (exp.size() > 1 && exp[0] == '0') exp.erase(0, 1);
    s = mant + "e" + sign + exp;
  }
  return s;
}

std::string num(int64_t v) { return std::to_string(v); }

// A TOML float: always with a '.' or an exponent.
std::string toml_float(double v) {
  std::string s = num(v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // 'n': inf/nan never reach here
  return s;
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> words;
  std::stringstream ss(s);
  std::string w;
  while (std::getline(ss, w, '_'))
    if (!w.empty()) words.push_back(w);
  return words;
}

// The closest candidate when it is plausibly a typo: at most a third of the word's length away
// (at least 2 edits allowed); failing that, the closest one holding all of the word's
// '_'-separated parts ("max_epochs" → "max_train_epochs").
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string w = lower(word);
  std::string best, best_with_parts;
  size_t best_d = SIZE_MAX, best_parts_d = SIZE_MAX;
  const std::vector<std::string> parts = split_words(w);
  for (const std::string& c : candidates) {
    const std::string lc = lower(c);
    const size_t d = edit_distance(w, lc);
    if (d < best_d) best = c, best_d = d;
    const std::vector<std::string> theirs = split_words(lc);
    const bool holds_all = parts.size() > 1 && std::all_of(parts.begin(), parts.end(), [&](const std::string& p) {
      return std::find(theirs.begin(), theirs.end(), p) != theirs.end();
    });
    if (holds_all && d < best_parts_d) best_with_parts = c, best_parts_d = d;
  }
  if (best_d <= std::max<size_t>(2, w.size() / 3)) return best;
  return best_with_parts;
}

}  // namespace

std::string suggestion(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string s = did_you_mean(word, candidates);
  return s.empty() ? "" : "; did you mean '" + s + "'?";
}

bool parse_bool_text(const std::string& text, bool& out) {
  const std::string s = lower(trim(text));
  if (s == "true" || s == "yes" || s == "on" || s == "1") return out = true, true;
  if (s == "false" || s == "no" || s == "off" || s == "0") return out = false, true;
  return false;
}

// How a value reads in a message.
std::string describe(const json& v) {
  if (v.is_string()) return "the text \"" + v.get<std::string>() + "\"";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  if (v.is_number_float()) return num(v.get<double>());
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a table";
  return "nothing";
}

bool looks_like_path(const std::string& s) {
  const std::string l = lower(s);
  return s.find('/') != std::string::npos || s.find('\\') != std::string::npos || ends_with(l, ".safetensors") ||
         ends_with(l, ".ckpt") || ends_with(l, ".pt") || ends_with(l, ".bin") || ends_with(l, ".pth");
}

std::string canonical(const std::string& given, const std::vector<std::string>& names) {
  for (const std::string& n : names)
    if (lower(n) == lower(given)) return n;
  return given;
}

std::string from(const std::string& source) { return source.empty() ? "" : " (from " + source + ")"; }

// ---------------------------------------------------------------- the keys



// Keys Kiln reads (train_config.h, in its order).
const std::vector<KeyInfo>& implemented_keys() {
  static const std::vector<KeyInfo> keys = {
      {"preset", Kind::String},
      {"device", Kind::String},
      {"pretrained_model_name_or_path", Kind::String},
      {"train_data_dir", Kind::String},
      {"dataset", Kind::String},
      {"num_repeats", Kind::Int},
      {"output_name", Kind::String},
      {"training_comment", Kind::String},
      {"resolution", Kind::Resolution},
      {"enable_bucket", Kind::Bool},
      {"min_bucket_reso", Kind::Int},
      {"max_bucket_reso", Kind::Int},
      {"bucket_reso_steps", Kind::Int},
      {"bucket_no_upscale", Kind::Bool},
      {"train_batch_size", Kind::BatchSize},
      {"max_train_epochs", Kind::Int},
      {"max_train_steps", Kind::Int},
      {"gradient_accumulation_steps", Kind::Int},
      {"learning_rate", Kind::Float},
      {"unet_lr", Kind::Float},
      {"text_encoder_lr", Kind::Float},
      {"lr_scheduler", Kind::String},
      {"lr_warmup_steps", Kind::Warmup},
      {"lr_scheduler_num_cycles", Kind::Int},
      {"lr_scheduler_power", Kind::Float},
      {"optimizer_type", Kind::String},
      {"optimizer_args", Kind::OptimizerArgs},
      {"max_grad_norm", Kind::Float},
      {"network_module", Kind::String},
      {"network_dim", Kind::Int},
      {"network_alpha", Kind::Float},
      {"conv_dim", Kind::Int},
      {"conv_alpha", Kind::Float},
      {"network_train_unet_only", Kind::Bool},
      {"network_train_text_encoder_only", Kind::Bool},
      {"clip_skip", Kind::Int},
      {"max_token_length", Kind::Int},
      {"shuffle_caption", Kind::Bool},
      {"keep_tokens", Kind::Int},
      {"caption_dropout_rate", Kind::Float},
      {"caption_extension", Kind::String},
      {"noise_offset", Kind::Float},
      {"min_snr_gamma", Kind::Float},
      {"cache_latents", Kind::Bool},
      {"cache_latents_to_disk", Kind::Bool},
      {"gradient_checkpointing", Kind::Bool},
      {"mixed_precision", Kind::String},
      {"save_precision", Kind::String},
      {"seed", Kind::Int},
      {"save_every_n_epochs", Kind::Int},
      {"save_every_n_steps", Kind::Int},
      {"sample_every_n_steps", Kind::Int},
      {"sample_every_n_epochs", Kind::Int},
      {"sample_at_first", Kind::Bool},
      {"sample_prompts", Kind::Prompts},
      {"sample_prompts_file", Kind::String},
      {"sample_sampler", Kind::String},
  };
  return keys;
}

// Other spellings, folded into the keys above before merging.
//   base                kiln: the CLI's --base
//   caption_extention   kohya's old misspelling, still accepted by train_util
//   lr_restart_cycles   秋叶 lora-scripts' name for lr_scheduler_num_cycles
//   use_8bit_adam, use_lion_optimizer   kohya's older switches for optimizer_type
//   network_args        kohya's list holding conv_dim / conv_alpha
const std::map<std::string, std::string>& aliases() {
  static const std::map<std::string, std::string> a = {
      {"base", "pretrained_model_name_or_path"},
      {"caption_extention", "caption_extension"},
      {"lr_restart_cycles", "lr_scheduler_num_cycles"},
  };
  return a;
}

// kohya options Kiln does not implement. `Ignored` ones change nothing that Kiln produces (or
// Kiln does the thing its own way) and are accepted with a note; `Unsupported` ones would change
// the training, so anything but their neutral value is an error.

const std::vector<ForeignKey>& foreign_keys() {
  static const char* kRuntime = "Kiln chooses attention, data loading and memory use itself";
  static const char* kOutputs = "Kiln writes the LoRA, its samples, loss and logs into its library (loras/<name>/)";
  static const char* kState = "Kiln saves the training state with every epoch file so that jobs resume";
  static const char* kKeepAll = "Kiln keeps every saved epoch for the validation grid";
  static const char* kSd1 = "Kiln trains SD1.x and SDXL LoRAs (epsilon prediction)";
  static const char* kData = "Kiln reads one train_data_dir (kohya N_name folders) or a Kiln dataset";
  static const char* kNotYet = "Kiln does not implement this kohya option";
  static const char* kResume = "Kiln resumes its own jobs (kiln jobs resume ID)";
  static const std::vector<ForeignKey> keys = {
      {"xformers", Foreign::Ignored, "false", kRuntime},
      {"sdpa", Foreign::Ignored, "false", kRuntime},
      {"mem_eff_attn", Foreign::Ignored, "false", kRuntime},
      {"torch_compile", Foreign::Ignored, "false", kRuntime},
      {"dynamo_backend", Foreign::Ignored, "\"inductor\"", kRuntime},
      {"lowram", Foreign::Ignored, "false", kRuntime},
      {"highvram", Foreign::Ignored, "false", kRuntime},
      {"max_data_loader_n_workers", Foreign::Ignored, "8", kRuntime},
      {"persistent_data_loader_workers", Foreign::Ignored, "false", kRuntime},
      {"vae_batch_size", Foreign::Ignored, "1", kRuntime},
      {"text_encoder_batch_size", Foreign::Ignored, "null", kRuntime},
      {"skip_cache_check", Foreign::Ignored, "false", kRuntime},
      {"cache_info", Foreign::Ignored, "false", kRuntime},
      {"disable_mmap_load_safetensors", Foreign::Ignored, "false", kRuntime},
      {"no_half_vae", Foreign::Ignored, "false", kRuntime},
      {"ddp_timeout", Foreign::Ignored, "null", kRuntime},
      {"ddp_gradient_as_bucket_view", Foreign::Ignored, "false", kRuntime},
      {"ddp_static_graph", Foreign::Ignored, "false", kRuntime},
      {"deepspeed", Foreign::Ignored, "false", kRuntime},
      {"zero_stage", Foreign::Ignored, "2", kRuntime},
      {"tokenizer_cache_dir", Foreign::Ignored, "null", kRuntime},
      {"output_dir", Foreign::Ignored, "null", kOutputs},
      {"logging_dir", Foreign::Ignored, "null", kOutputs},
      {"log_with", Foreign::Ignored, "null", kOutputs},
      {"log_prefix", Foreign::Ignored, "null", kOutputs},
      {"log_tracker_name", Foreign::Ignored, "null", kOutputs},
      {"log_tracker_config", Foreign::Ignored, "null", kOutputs},
      {"log_config", Foreign::Ignored, "false", kOutputs},
      {"wandb_run_name", Foreign::Ignored, "null", kOutputs},
      {"wandb_api_key", Foreign::Ignored, "null", kOutputs},
      {"use_safetensors", Foreign::Ignored, "false", kOutputs},
      {"no_metadata", Foreign::Ignored, "false", "Kiln always writes kohya's ss_* metadata"},
      {"huggingface_repo_id", Foreign::Ignored, "null", kOutputs},
      {"huggingface_repo_type", Foreign::Ignored, "null", kOutputs},
      {"huggingface_path_in_repo", Foreign::Ignored, "null", kOutputs},
      {"huggingface_token", Foreign::Ignored, "null", kOutputs},
      {"huggingface_repo_visibility", Foreign::Ignored, "null", kOutputs},
      {"save_state_to_huggingface", Foreign::Ignored, "false", kOutputs},
      {"resume_from_huggingface", Foreign::Ignored, "false", kOutputs},
      {"async_upload", Foreign::Ignored, "false", kOutputs},
      {"output_config", Foreign::Ignored, "false", kOutputs},
      {"config_file", Foreign::Ignored, "null", "the config file is given to Kiln directly"},
      {"debug_dataset", Foreign::Ignored, "false", kOutputs},
      {"save_state", Foreign::Ignored, "false", kState},
      {"save_state_on_train_end", Foreign::Ignored, "false", kState},
      {"save_last_n_epochs_state", Foreign::Ignored, "null", kState},
      {"save_last_n_steps_state", Foreign::Ignored, "null", kState},
      {"save_last_n_epochs", Foreign::Ignored, "null", kKeepAll},
      {"save_last_n_steps", Foreign::Ignored, "null", kKeepAll},
      {"save_n_epoch_ratio", Foreign::Ignored, "null", kKeepAll},
      {"prior_loss_weight", Foreign::Ignored, "1.0", "it weighs regularisation images, which Kiln does not use"},
      {"huber_schedule", Foreign::Ignored, "\"snr\"", "it only applies with loss_type huber or smooth_l1"},
      {"huber_c", Foreign::Ignored, "0.1", "it only applies with loss_type huber or smooth_l1"},
      {"huber_scale", Foreign::Ignored, "1.0", "it only applies with loss_type huber or smooth_l1"},
      {"multires_noise_discount", Foreign::Ignored, "0.3", "it only applies with multires_noise_iterations"},
      {"save_model_as", Foreign::Unsupported, "\"safetensors\"", "Kiln saves .safetensors files only"},
      {"v2", Foreign::Unsupported, "false", kSd1},
      {"v_parameterization", Foreign::Unsupported, "false", kSd1},
      {"vae", Foreign::Unsupported, "null", "Kiln trains with the base model's own VAE"},
      {"full_fp16", Foreign::Unsupported, "false", "use mixed_precision"},
      {"full_bf16", Foreign::Unsupported, "false", "use mixed_precision"},
      {"fp8_base", Foreign::Unsupported, "false", kNotYet},
      {"fp8_base_unet", Foreign::Unsupported, "false", kNotYet},
      {"noise_offset_random_strength", Foreign::Unsupported, "false", kNotYet},
      {"multires_noise_iterations", Foreign::Unsupported, "null", kNotYet},
      {"ip_noise_gamma", Foreign::Unsupported, "null", kNotYet},
      {"ip_noise_gamma_random_strength", Foreign::Unsupported, "false", kNotYet},
      {"adaptive_noise_scale", Foreign::Unsupported, "null", kNotYet},
      {"zero_terminal_snr", Foreign::Unsupported, "false", kNotYet},
      {"min_timestep", Foreign::Unsupported, "0", kNotYet},
      {"max_timestep", Foreign::Unsupported, "1000", kNotYet},
      {"loss_type", Foreign::Unsupported, "\"l2\"", "Kiln trains with kohya's default l2 loss"},
      {"scale_v_pred_loss_like_noise_pred", Foreign::Unsupported, "false", kSd1},
      {"v_pred_like_loss", Foreign::Unsupported, "null", kSd1},
      {"debiased_estimation_loss", Foreign::Unsupported, "false", kNotYet},
      {"weighted_captions", Foreign::Unsupported, "false", kNotYet},
      {"masked_loss", Foreign::Unsupported, "false", kNotYet},
      {"alpha_mask", Foreign::Unsupported, "false", kNotYet},
      {"conditioning_data_dir", Foreign::Unsupported, "null", kData},
      {"color_aug", Foreign::Unsupported, "false", kNotYet},
      {"flip_aug", Foreign::Unsupported, "false",
       "Kiln flips in dataset preparation instead (add flipped copies to the dataset)"},
      {"face_crop_aug_range", Foreign::Unsupported, "null", "Kiln crops faces in dataset preparation instead"},
      {"random_crop", Foreign::Unsupported, "false", kNotYet},
      {"token_warmup_min", Foreign::Unsupported, "1", kNotYet},
      {"token_warmup_step", Foreign::Unsupported, "0", kNotYet},
      {"caption_dropout_every_n_epochs", Foreign::Unsupported, "0", kNotYet},
      {"caption_tag_dropout_rate", Foreign::Unsupported, "0.0", kNotYet},
      {"keep_tokens_separator", Foreign::Unsupported, "\"\"", kNotYet},
      {"secondary_separator", Foreign::Unsupported, "null", kNotYet},
      {"enable_wildcard", Foreign::Unsupported, "false", kNotYet},
      {"caption_prefix", Foreign::Unsupported, "null", kNotYet},
      {"caption_suffix", Foreign::Unsupported, "null", kNotYet},
      {"caption_separator", Foreign::Unsupported, "\",\"", kNotYet},
      {"resize_interpolation", Foreign::Unsupported, "null", kNotYet},
      {"dataset_class", Foreign::Unsupported, "null", kData},
      {"reg_data_dir", Foreign::Unsupported, "null", "Kiln does not train with regularisation images"},
      {"in_json", Foreign::Unsupported, "null", kData},
      {"dataset_repeats", Foreign::Unsupported, "1", "set repeats with the folder's N_ prefix or num_repeats"},
      {"dataset_config", Foreign::Unsupported, "null", kData},
      {"network_weights", Foreign::Unsupported, "null", "Kiln starts every LoRA from scratch"},
      {"network_dropout", Foreign::Unsupported, "null", kNotYet},
      {"dim_from_weights", Foreign::Unsupported, "false", "Kiln starts every LoRA from scratch"},
      {"scale_weight_norms", Foreign::Unsupported, "null", kNotYet},
      {"base_weights", Foreign::Unsupported, "null", kNotYet},
      {"base_weights_multiplier", Foreign::Unsupported, "null", kNotYet},
      {"skip_until_initial_step", Foreign::Unsupported, "false", kResume},
      {"initial_epoch", Foreign::Unsupported, "null", kResume},
      {"initial_step", Foreign::Unsupported, "null", kResume},
      {"resume", Foreign::Unsupported, "null", kResume},
      {"validation_seed", Foreign::Unsupported, "null", kNotYet},
      {"validation_split", Foreign::Unsupported, "0.0", kNotYet},
      {"validate_every_n_steps", Foreign::Unsupported, "null", kNotYet},
      {"validate_every_n_epochs", Foreign::Unsupported, "null", kNotYet},
      {"max_validation_steps", Foreign::Unsupported, "null", kNotYet},
      {"lr_scheduler_type", Foreign::Unsupported, "\"\"", "Kiln has kohya's built-in schedulers (lr_scheduler)"},
      {"lr_scheduler_args", Foreign::Unsupported, "null", "Kiln has kohya's built-in schedulers (lr_scheduler)"},
      {"lr_decay_steps", Foreign::Unsupported, "0", kNotYet},
      {"lr_scheduler_timescale", Foreign::Unsupported, "null", kNotYet},
      {"lr_scheduler_min_lr_ratio", Foreign::Unsupported, "null", kNotYet},
      {"fused_backward_pass", Foreign::Unsupported, "false", kNotYet},
      {"cache_text_encoder_outputs", Foreign::Unsupported, "false", kNotYet},
      {"cache_text_encoder_outputs_to_disk", Foreign::Unsupported, "false", kNotYet},
      {"cpu_offload_checkpointing", Foreign::Unsupported, "false", kNotYet},
  };
  return keys;
}

const KeyInfo* find_implemented(const std::string& key) {
  for (const KeyInfo& k : implemented_keys())
    if (key == k.key) return &k;
  return nullptr;
}

const ForeignKey* find_foreign(const std::string& key) {
  for (const ForeignKey& k : foreign_keys())
    if (key == k.key) return &k;
  return nullptr;
}

// The engine's names (engine/lora/lr_schedule.h LrSchedule::names(), optimizers.h
// optimizer_types()); a test checks they still agree.
const std::vector<std::string>& scheduler_names() {
  static const std::vector<std::string> n = {"constant", "constant_with_warmup", "linear",
                                             "cosine",   "cosine_with_restarts", "polynomial"};
  return n;
}
const std::vector<std::string>& optimizer_names() {
  static const std::vector<std::string> n = {"AdamW", "AdamW8bit", "Lion", "SGDNesterov"};
  return n;
}
// kohya optimizers Kiln does not have: named so that the error says so instead of "unknown".
const std::vector<std::string>& kohya_only_optimizers() {
  static const std::vector<std::string> n = {
      "PagedAdamW",     "PagedAdamW8bit", "PagedAdamW32bit", "Lion8bit",       "PagedLion8bit", "SGDNesterov8bit",
      "DAdaptation",    "DAdaptAdamPreprint", "DAdaptAdaGrad", "DAdaptAdam",   "DAdaptAdan",    "DAdaptAdanIP",
      "DAdaptLion",     "DAdaptSGD",      "AdaFactor",       "Prodigy",        "AdEMAMix8bit",  "PagedAdEMAMix8bit",
      "RAdamScheduleFree", "AdamWScheduleFree", "SGDScheduleFree"};
  return n;
}
const std::vector<std::string> kMixedPrecisions = {"no", "fp16", "bf16"};
const std::vector<std::string> kSavePrecisions = {"float", "fp16", "bf16"};
const std::vector<std::string> kOptimizerArgNames = {"weight_decay", "betas", "eps", "momentum"};

std::vector<std::string> all_key_names() {
  std::vector<std::string> out;
  for (const KeyInfo& k : implemented_keys()) out.push_back(k.key);
  for (const auto& [alias, _] : aliases()) out.push_back(alias);
  out.push_back("use_8bit_adam");
  out.push_back("use_lion_optimizer");
  out.push_back("network_args");
  for (const ForeignKey& k : foreign_keys()) out.push_back(k.key);
  return out;
}

}  // namespace detail

using namespace detail;

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(join(problems, "\n")), problems_(std::move(problems)) {}

const std::vector<std::string>& train_config_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k = all_key_names();
    std::sort(k.begin(), k.end());
    return k;
  }();
  return keys;
}

const std::vector<std::string>& supported_optimizer_types() { return optimizer_names(); }
const std::vector<std::string>& supported_lr_schedulers() { return scheduler_names(); }

}  // namespace kiln::service::training
