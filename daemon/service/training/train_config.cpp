#include "service/training/train_config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <utility>

#include <toml++/toml.h>

#include "service/training/presets.h"
#include "service/training/sample_prompts.h"
#include "studio/error.h"
#include "service/training/text_util.h"
#include "studio/names.h"


namespace kiln::service::training {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// ---------------------------------------------------------------- text helpers

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
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

// ---------------------------------------------------------------- the keys

enum class Kind {
  Bool,
  Int,
  Float,
  String,
  Resolution,     // 512, "512", "512,768", [512, 768]
  BatchSize,      // an integer or "auto"
  Warmup,         // steps, a ratio below 1, or "10%"
  OptimizerArgs,  // ["weight_decay=0.1", "betas=0.9,0.99"] or {"weight_decay": 0.1, ...}
  NetworkArgs,    // ["conv_dim=4", "conv_alpha=1"]
  Prompts,        // a list of lines, or text: several lines, one prompt, or a .txt file
};

struct KeyInfo {
  const char* key;
  Kind kind;
};

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
enum class Foreign { Ignored, Unsupported };
struct ForeignKey {
  const char* key;
  Foreign what;
  const char* neutral;  // JSON text of kohya's default; "null" = none
  const char* why;
};

const std::vector<ForeignKey>& foreign_keys() {
  static const char* kRuntime = "Kiln chooses attention, data loading and memory use itself";
  static const char* kOutputs = "Kiln writes the LoRA, its samples, loss and logs into its library (loras/<name>/)";
  static const char* kState = "Kiln saves the training state with every epoch file so that jobs resume";
  static const char* kKeepAll = "Kiln keeps every saved epoch for the validation grid";
  static const char* kSd1 = "Kiln trains SD1.x LoRAs";
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

// ---------------------------------------------------------------- problems

struct Problems {
  std::vector<std::string> errors;
  std::vector<std::string> notes;
  void error(std::string s) { errors.push_back(std::move(s)); }
};

std::string from(const std::string& source) { return source.empty() ? "" : " (from " + source + ")"; }

// ---------------------------------------------------------------- loose (command-line) values

json guess_loose(const std::string& text) {
  const std::string s = trim(text);
  const std::string l = lower(s);
  if (l == "none" || l == "null") return nullptr;
  bool b = false;
  if (l == "true" || l == "false" || l == "yes" || l == "no" || l == "on" || l == "off") {
    parse_bool_text(l, b);
    return b;
  }
  int64_t i = 0;
  if (parse_int(s, i)) return i;
  double d = 0;
  if (parse_double(s, d)) return d;
  return s;
}

// Splits "a=1,b=0.9,0.99" into ["a=1", "b=0.9,0.99"]: a comma starts a new item only when what
// follows holds an '='.
std::vector<std::string> split_assignments(const std::string& text) {
  std::vector<std::string> pieces;
  std::string cur;
  std::stringstream ss(text);
  std::string part;
  std::vector<std::string> parts;
  while (std::getline(ss, part, ',')) parts.push_back(part);
  for (const std::string& p : parts) {
    if (!cur.empty() && p.find('=') != std::string::npos) {
      pieces.push_back(trim(cur));
      cur.clear();
    }
    cur += (cur.empty() ? "" : ",") + p;
  }
  if (!trim(cur).empty()) pieces.push_back(trim(cur));
  return pieces;
}

// A command-line string read as what `key` needs. Values that do not parse stay text, and the
// typed reading reports them.
json convert_loose(const std::string& key, const json& value) {
  if (!value.is_string()) return value;
  const std::string text = value.get<std::string>();
  const std::string t = trim(text);
  const std::string l = lower(t);
  const KeyInfo* info = find_implemented(key);
  static const KeyInfo network_args{"network_args", Kind::NetworkArgs};
  if (key == "network_args") info = &network_args;
  if (!info) return guess_loose(text);
  if (l == "none" || l == "null") return nullptr;
  switch (info->kind) {
    case Kind::Bool: {
      bool b = false;
      if (t.empty()) return nullptr;
      return parse_bool_text(t, b) ? json(b) : json(text);
    }
    case Kind::Int: {
      int64_t i = 0;
      double d = 0;
      if (t.empty()) return nullptr;
      if (parse_int(t, i)) return i;
      if (parse_double(t, d)) return d;  // reported as "not a whole number"
      return text;
    }
    case Kind::Float: {
      double d = 0;
      if (t.empty()) return nullptr;
      return parse_double(t, d) ? json(d) : json(text);
    }
    case Kind::BatchSize:
    case Kind::Warmup: {
      int64_t i = 0;
      double d = 0;
      if (t.empty()) return nullptr;
      if (parse_int(t, i)) return i;
      if (parse_double(t, d)) return d;
      return t;
    }
    case Kind::OptimizerArgs:
    case Kind::NetworkArgs: {
      if (!t.empty() && t.front() == '[') {
        try {
          return json::parse(t);
        } catch (const json::exception&) {
          return text;
        }
      }
      json list = json::array();
      for (const std::string& item : split_assignments(t)) list.push_back(item);
      return list;
    }
    case Kind::String:
    case Kind::Resolution:
    case Kind::Prompts:
      return text;
  }
  return text;
}

// ---------------------------------------------------------------- normalising a layer

// "k=v" items of kohya's network_args / optimizer_args, or an object.
bool assignments(const std::string& key, const json& value, const std::string& source, Problems& p,
                 std::vector<std::pair<std::string, json>>& out) {
  if (value.is_null()) return true;
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) out.emplace_back(it.key(), it.value());
    return true;
  }
  if (!value.is_array()) {
    p.error(key + " must be a list of \"name=value\" texts (kohya's form) or a table, not " + describe(value) +
            from(source) + ".");
    return false;
  }
  for (const json& item : value) {
    if (!item.is_string() || item.get<std::string>().find('=') == std::string::npos) {
      p.error(key + " items must be \"name=value\" texts, like \"weight_decay=0.01\"; got " + describe(item) +
              from(source) + ".");
      return false;
    }
    const std::string s = item.get<std::string>();
    const size_t eq = s.find('=');
    out.emplace_back(trim(s.substr(0, eq)), json(trim(s.substr(eq + 1))));
  }
  return true;
}

// A number from JSON or from kohya's Python-literal text.
std::optional<double> number_of(const json& v) {
  if (v.is_number()) return v.get<double>();
  double d = 0;
  if (v.is_string() && parse_double(v.get<std::string>(), d)) return d;
  return std::nullopt;
}

json normalise_optimizer_args(const json& value, const std::string& source, Problems& p) {
  std::vector<std::pair<std::string, json>> items;
  if (!assignments("optimizer_args", value, source, p, items)) return nullptr;
  json out = json::object();
  for (const auto& [name, v] : items) {
    if (name == "betas") {
      std::vector<double> betas;
      if (v.is_array()) {
        for (const json& b : v)
          if (auto d = number_of(b)) betas.push_back(*d);
      } else if (v.is_string()) {
        std::string s = v.get<std::string>();
        s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '(' || c == ')' || c == '[' || c == ']'; }),
                s.end());
        std::stringstream ss(s);
        std::string part;
        while (std::getline(ss, part, ','))
          if (double d = 0; parse_double(part, d)) betas.push_back(d);
          else betas.push_back(NAN);
      }
      if (betas.size() != 2 || std::isnan(betas[0]) || std::isnan(betas[1])) {
        p.error("optimizer_args betas must be two numbers, like betas=0.9,0.999; got " + describe(v) + from(source) +
                ".");
        continue;
      }
      out["betas"] = betas;
    } else if (std::find(kOptimizerArgNames.begin(), kOptimizerArgNames.end(), name) != kOptimizerArgNames.end()) {
      const auto d = number_of(v);
      if (!d) {
        p.error("optimizer_args " + name + " must be a number, not " + describe(v) + from(source) + ".");
        continue;
      }
      out[name] = *d;
    } else {
      const std::string hint = suggestion(name, kOptimizerArgNames);
      p.error("optimizer_args " + name + " is not supported" + from(source) + "; Kiln takes " +
              join(kOptimizerArgNames) + (hint.empty() ? "." : hint));
    }
  }
  return out;
}

struct Layer {
  std::string source;
  json values = json::object();
  fs::path base_dir;
};

void put(Layer& out, const std::string& key, const json& value, const std::string& given_as, Problems& p) {
  if (out.values.contains(key) && out.values[key] != value) {
    p.error(given_as + " and " + key + " disagree (" + describe(value) + " and " + describe(out.values[key]) + ")" +
            from(out.source) + ".");
    return;
  }
  out.values[key] = value;
}

Layer normalise(const ConfigLayer& in, Problems& p) {
  Layer out{in.source, json::object(), in.base_dir};
  if (!in.values.is_object()) {
    p.error("the configuration" + from(in.source) + " must be a table of keys, not " + describe(in.values) + ".");
    return out;
  }
  for (auto it = in.values.begin(); it != in.values.end(); ++it) {
    std::string key = it.key();
    json value = in.loose ? convert_loose(aliases().count(key) ? aliases().at(key) : key, it.value()) : it.value();
    if (auto a = aliases().find(key); a != aliases().end()) {
      put(out, a->second, value, key, p);
      continue;
    }
    if (key == "use_8bit_adam" || key == "use_lion_optimizer") {
      if (value.is_null()) continue;
      if (!value.is_boolean()) {
        p.error(key + " must be true or false, not " + describe(value) + from(in.source) + ".");
        continue;
      }
      if (!value.get<bool>()) continue;
      const std::string type = key == "use_8bit_adam" ? "AdamW8bit" : "Lion";
      const json* given = in.values.contains("optimizer_type") ? &in.values["optimizer_type"] : nullptr;
      if (given && given->is_string() && !given->get<std::string>().empty() &&
          lower(given->get<std::string>()) != lower(type)) {
        p.error(key + " and optimizer_type = " + given->get<std::string>() + " are both given" + from(in.source) +
                "; keep optimizer_type.");
        continue;
      }
      out.values["optimizer_type"] = type;
      continue;
    }
    if (key == "network_args") {
      std::vector<std::pair<std::string, json>> items;
      if (!assignments(key, value, in.source, p, items)) continue;
      for (const auto& [name, v] : items) {
        if (name != "conv_dim" && name != "conv_alpha") {
          p.error("network_args " + name + " is not supported; Kiln's networks.lora takes conv_dim and conv_alpha" +
                  from(in.source) + ".");
          continue;
        }
        json typed = v;
        if (v.is_string()) {  // kohya's list holds text
          int64_t i = 0;
          double d = 0;
          if (name == "conv_dim" && parse_int(v.get<std::string>(), i)) typed = i;
          else if (parse_double(v.get<std::string>(), d)) typed = d;
        }
        put(out, name, typed, "network_args " + name, p);
      }
      continue;
    }
    if (key == "optimizer_args") {
      out.values[key] = normalise_optimizer_args(value, in.source, p);
      continue;
    }
    put(out, key, value, key, p);
  }
  // kohya: both in one source, max_train_epochs wins.
  if (out.values.contains("max_train_epochs") && !out.values["max_train_epochs"].is_null() &&
      out.values.contains("max_train_steps") && !out.values["max_train_steps"].is_null()) {
    p.notes.push_back("max_train_steps is ignored because max_train_epochs is also set" + from(in.source) +
                      " (kohya's rule: the epochs decide the steps).");
  }
  return out;
}

// ---------------------------------------------------------------- merging

struct Merged {
  json values = json::object();
  std::map<std::string, std::string> origin;
  std::map<std::string, fs::path> base_dir;
};

Merged merge(const std::vector<Layer>& layers) {
  Merged m;
  for (const Layer& layer : layers) {
    // A higher source that sets max_train_steps but not max_train_epochs means steps: an epoch
    // count from below (a preset's 10) would otherwise silently win, as kohya lets epochs win.
    if (layer.values.contains("max_train_steps") && !layer.values.contains("max_train_epochs")) {
      m.values.erase("max_train_epochs");
      m.origin.erase("max_train_epochs");
    }
    for (auto it = layer.values.begin(); it != layer.values.end(); ++it) {
      m.values[it.key()] = it.value();
      m.origin[it.key()] = layer.source;
      m.base_dir[it.key()] = layer.base_dir;
    }
  }
  return m;
}

// ---------------------------------------------------------------- typed reading

class Reader {
 public:
  Reader(const Merged& m, Problems& p) : m_(m), p_(p) {}

  const json* raw(const std::string& key) const {
    auto it = m_.values.find(key);
    if (it == m_.values.end() || it->is_null()) return nullptr;
    return &*it;
  }
  std::string origin(const std::string& key) const {
    auto it = m_.origin.find(key);
    return it == m_.origin.end() ? "" : it->second;
  }
  fs::path base_dir(const std::string& key) const {
    auto it = m_.base_dir.find(key);
    return it == m_.base_dir.end() ? fs::path() : it->second;
  }
  void type_error(const std::string& key, const std::string& wanted, const json& v) {
    p_.error(key + " must be " + wanted + ", not " + describe(v) + from(origin(key)) + ".");
  }

  std::optional<bool> boolean(const std::string& key) {
    const json* v = raw(key);
    if (!v) return std::nullopt;
    if (v->is_boolean()) return v->get<bool>();
    type_error(key, "true or false", *v);
    return std::nullopt;
  }
  std::optional<int64_t> integer(const std::string& key) {
    const json* v = raw(key);
    if (!v) return std::nullopt;
    if (v->is_number_integer()) return v->get<int64_t>();
    if (v->is_number_unsigned()) {
      if (v->get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(v->get<uint64_t>());
    }
    // 10.0 from a JSON writer is still ten.
    if (v->is_number_float() && std::trunc(v->get<double>()) == v->get<double>() && std::abs(v->get<double>()) < 9e15)
      return static_cast<int64_t>(v->get<double>());
    type_error(key, "a whole number", *v);
    return std::nullopt;
  }
  std::optional<double> number(const std::string& key) {
    const json* v = raw(key);
    if (!v) return std::nullopt;
    if (v->is_number()) {
      const double d = v->get<double>();
      if (std::isfinite(d)) return d;
    }
    type_error(key, "a number", *v);
    return std::nullopt;
  }
  std::optional<std::string> text(const std::string& key) {
    const json* v = raw(key);
    if (!v) return std::nullopt;
    if (v->is_string()) return v->get<std::string>();
    type_error(key, "a text", *v);
    return std::nullopt;
  }

 private:
  const Merged& m_;
  Problems& p_;
};

bool looks_like_path(const std::string& s) {
  const std::string l = lower(s);
  return s.find('/') != std::string::npos || s.find('\\') != std::string::npos || ends_with(l, ".safetensors") ||
         ends_with(l, ".ckpt") || ends_with(l, ".pt") || ends_with(l, ".bin") || ends_with(l, ".pth");
}

fs::path resolve_path(const std::string& given, const fs::path& layer_dir, const fs::path& working_dir) {
  fs::path p(given);
  if (!given.empty() && given[0] == '~') {
    if (const char* home = std::getenv("HOME")) p = fs::path(home) / given.substr(given.size() > 1 ? 2 : 1);
  }
  if (p.is_relative()) {
    const fs::path base = !layer_dir.empty() ? layer_dir : working_dir;
    if (!base.empty()) p = base / p;
  }
  return p.lexically_normal();
}

std::optional<std::string> read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  std::stringstream ss(text);
  while (std::getline(ss, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

// The resolution: 512, "512", "512,768", "512x768", [512, 768].
std::optional<TrainResolution> read_resolution(Reader& r, const std::string& key) {
  const json* v = r.raw(key);
  if (!v) return std::nullopt;
  auto bad = [&]() {
    r.type_error(key, "a size like 512 or \"512,768\" (width,height)", *v);
    return std::nullopt;
  };
  if (v->is_number_integer()) return TrainResolution{v->get<int64_t>(), v->get<int64_t>()};
  if (v->is_array()) {
    if (v->size() == 2 && (*v)[0].is_number_integer() && (*v)[1].is_number_integer())
      return TrainResolution{(*v)[0].get<int64_t>(), (*v)[1].get<int64_t>()};
    if (v->size() == 1 && (*v)[0].is_number_integer())
      return TrainResolution{(*v)[0].get<int64_t>(), (*v)[0].get<int64_t>()};
    return bad();
  }
  if (!v->is_string()) return bad();
  std::string s = v->get<std::string>();
  std::replace(s.begin(), s.end(), 'x', ',');
  std::replace(s.begin(), s.end(), 'X', ',');
  const size_t comma = s.find(',');
  int64_t w = 0, h = 0;
  if (comma == std::string::npos) {
    if (!parse_int(s, w)) return bad();
    return TrainResolution{w, w};
  }
  if (!parse_int(s.substr(0, comma), w) || !parse_int(s.substr(comma + 1), h)) return bad();
  return TrainResolution{w, h};
}

std::string canonical(const std::string& given, const std::vector<std::string>& names) {
  for (const std::string& n : names)
    if (lower(n) == lower(given)) return n;
  return given;
}

void read_config(Reader& r, const TrainEnvironment& env, TrainConfig& c, Problems& p) {
  if (auto v = r.text("preset")) c.preset = lower(*v);
  if (auto v = r.text("device")) c.device = lower(trim(*v));
  else c.device = "auto";
  if (auto v = r.text("pretrained_model_name_or_path")) {
    c.pretrained_model_name_or_path = *v;
    if (looks_like_path(*v))
      c.pretrained_model_name_or_path =
          resolve_path(*v, r.base_dir("pretrained_model_name_or_path"), env.working_dir).string();
  }
  if (auto v = r.text("train_data_dir"))
    if (!v->empty()) c.train_data_dir = resolve_path(*v, r.base_dir("train_data_dir"), env.working_dir).string();
  if (auto v = r.text("dataset")) c.dataset = *v;
  if (auto v = r.integer("num_repeats")) c.num_repeats = *v;
  if (auto v = r.text("output_name")) c.output_name = *v;
  if (auto v = r.text("training_comment")) c.training_comment = *v;

  if (auto v = read_resolution(r, "resolution")) c.resolution = *v;
  if (auto v = r.boolean("enable_bucket")) c.enable_bucket = *v;
  if (auto v = r.integer("min_bucket_reso")) c.min_bucket_reso = *v;
  if (auto v = r.integer("max_bucket_reso")) c.max_bucket_reso = *v;
  if (auto v = r.integer("bucket_reso_steps")) c.bucket_reso_steps = *v;
  if (auto v = r.boolean("bucket_no_upscale")) c.bucket_no_upscale = *v;

  // train_batch_size: a number or "auto" (free memory decides).
  if (const json* v = r.raw("train_batch_size")) {
    if (v->is_string() && lower(trim(v->get<std::string>())) == "auto") {
      c.train_batch_size = env.free_memory_bytes ? batch_size_for_memory(*env.free_memory_bytes) : 1;
    } else if (v->is_string()) {
      r.type_error("train_batch_size", "a whole number or \"auto\"", *v);
    } else if (auto b = r.integer("train_batch_size")) {
      c.train_batch_size = *b;
    }
  }
  if (auto v = r.integer("max_train_epochs")) c.max_train_epochs = *v;
  if (auto v = r.integer("max_train_steps")) c.max_train_steps = *v;
  if (auto v = r.integer("gradient_accumulation_steps")) c.gradient_accumulation_steps = *v;

  if (auto v = r.number("learning_rate")) c.learning_rate = *v;
  if (auto v = r.number("unet_lr")) c.unet_lr = *v;
  if (auto v = r.number("text_encoder_lr")) c.text_encoder_lr = *v;
  if (auto v = r.text("lr_scheduler")) c.lr_scheduler = lower(trim(*v));
  // kohya's int_or_float: steps, a ratio below 1, or a percentage.
  if (const json* v = r.raw("lr_warmup_steps")) {
    if (v->is_string()) {
      const std::string s = trim(v->get<std::string>());
      double d = 0;
      if (ends_with(s, "%") && parse_double(s.substr(0, s.size() - 1), d)) c.lr_warmup_steps = d / 100.0;
      else if (parse_double(s, d)) c.lr_warmup_steps = d;
      else r.type_error("lr_warmup_steps", "a number of steps, a ratio below 1 or a percentage like \"10%\"", *v);
    } else if (auto d = r.number("lr_warmup_steps")) {
      c.lr_warmup_steps = *d;
    }
  }
  if (auto v = r.integer("lr_scheduler_num_cycles")) c.lr_scheduler_num_cycles = *v;
  if (auto v = r.number("lr_scheduler_power")) c.lr_scheduler_power = *v;

  if (auto v = r.text("optimizer_type")) {
    const std::string t = trim(*v);
    c.optimizer_type = t.empty() ? "AdamW" : canonical(t, optimizer_names());  // kohya: "" = AdamW
  }
  if (const json* v = r.raw("optimizer_args")) {
    if (v->is_object()) {
      auto get = [&](const char* name) -> std::optional<double> {
        if (v->contains(name) && (*v)[name].is_number()) return (*v)[name].get<double>();
        return std::nullopt;
      };
      c.optimizer_args.weight_decay = get("weight_decay");
      c.optimizer_args.eps = get("eps");
      c.optimizer_args.momentum = get("momentum");
      if (v->contains("betas") && (*v)["betas"].is_array() && (*v)["betas"].size() == 2) {
        c.optimizer_args.beta1 = (*v)["betas"][0].get<double>();
        c.optimizer_args.beta2 = (*v)["betas"][1].get<double>();
      }
    }
  }
  if (auto v = r.number("max_grad_norm")) c.max_grad_norm = *v;

  if (auto v = r.text("network_module")) c.network_module = trim(*v);
  if (auto v = r.integer("network_dim")) c.network_dim = *v;
  if (auto v = r.number("network_alpha")) c.network_alpha = *v;
  if (auto v = r.integer("conv_dim")) c.conv_dim = *v;
  if (auto v = r.number("conv_alpha")) c.conv_alpha = *v;
  if (auto v = r.boolean("network_train_unet_only")) c.network_train_unet_only = *v;
  if (auto v = r.boolean("network_train_text_encoder_only")) c.network_train_text_encoder_only = *v;

  if (auto v = r.integer("clip_skip")) c.clip_skip = *v;
  if (auto v = r.integer("max_token_length")) c.max_token_length = *v;
  if (auto v = r.boolean("shuffle_caption")) c.shuffle_caption = *v;
  if (auto v = r.integer("keep_tokens")) c.keep_tokens = *v;
  if (auto v = r.number("caption_dropout_rate")) c.caption_dropout_rate = *v;
  if (auto v = r.text("caption_extension")) c.caption_extension = trim(*v);

  if (auto v = r.number("noise_offset")) c.noise_offset = *v;
  if (auto v = r.number("min_snr_gamma")) c.min_snr_gamma = *v;

  if (auto v = r.boolean("cache_latents")) c.cache_latents = *v;
  if (auto v = r.boolean("cache_latents_to_disk")) c.cache_latents_to_disk = *v;
  if (auto v = r.boolean("gradient_checkpointing")) c.gradient_checkpointing = *v;
  if (auto v = r.text("mixed_precision")) c.mixed_precision = lower(trim(*v));
  if (auto v = r.text("save_precision")) c.save_precision = lower(trim(*v));

  if (auto v = r.integer("seed")) c.seed = *v;
  if (auto v = r.integer("save_every_n_epochs")) c.save_every_n_epochs = *v;
  if (auto v = r.integer("save_every_n_steps")) c.save_every_n_steps = *v;
  if (auto v = r.integer("sample_every_n_steps")) c.sample_every_n_steps = *v;
  if (auto v = r.integer("sample_every_n_epochs")) c.sample_every_n_epochs = *v;
  if (auto v = r.boolean("sample_at_first")) c.sample_at_first = *v;
  if (auto v = r.text("sample_sampler")) c.sample_sampler = lower(trim(*v));

  // sample_prompts: a list of lines, several lines of text, a .txt file, or one prompt.
  auto read_prompt_file = [&](const std::string& key, const std::string& given) {
    const fs::path path = resolve_path(given, r.base_dir(key), env.working_dir);
    const std::string l = lower(path.extension().string());
    if (l == ".toml" || l == ".json") {
      p.error(key + " " + path.string() + ": Kiln reads sample prompts from a .txt file, one prompt per line in "
              "kohya's syntax (--n --w --h --d --l --s).");
      return;
    }
    auto text = read_text_file(path);
    if (!text) {
      p.error(key + " names the file " + path.string() + ", which cannot be read" +
              (fs::exists(path) ? "." : " (it does not exist)."));
      return;
    }
    c.sample_prompts = split_lines(*text);
    c.sample_prompts_file = path.string();
  };
  if (const json* v = r.raw("sample_prompts")) {
    if (v->is_array()) {
      for (const json& line : *v) {
        if (!line.is_string()) {
          p.error("sample_prompts must be a list of prompt texts, but one item is " + describe(line) +
                  from(r.origin("sample_prompts")) + ".");
          c.sample_prompts.clear();
          break;
        }
        for (const std::string& l : split_lines(line.get<std::string>())) c.sample_prompts.push_back(l);
      }
    } else if (v->is_string()) {
      const std::string s = v->get<std::string>();
      const std::string l = lower(trim(s));
      const bool file_like = s.find('\n') == std::string::npos &&
                             (ends_with(l, ".txt") || ends_with(l, ".toml") || ends_with(l, ".json") ||
                              fs::is_regular_file(resolve_path(trim(s), r.base_dir("sample_prompts"), env.working_dir)));
      if (file_like) read_prompt_file("sample_prompts", trim(s));
      else c.sample_prompts = split_lines(s);
    } else {
      r.type_error("sample_prompts", "a list of prompts, prompt text or the path of a .txt file", *v);
    }
  }
  if (auto v = r.text("sample_prompts_file")) {
    if (c.sample_prompts.empty() && r.raw("sample_prompts") == nullptr) read_prompt_file("sample_prompts_file", *v);
    else if (c.sample_prompts_file.empty()) c.sample_prompts_file = *v;  // the record of where they came from
  }
}

// "auto" and unset values that depend on where the training runs.
void resolve_environment(TrainConfig& c, const TrainEnvironment& env) {
  if (c.device.empty() || c.device == "auto") c.device = env.cuda_available ? "cuda" : "cpu";
  if (c.mixed_precision == "auto") c.mixed_precision = c.device.rfind("cuda", 0) == 0 ? "fp16" : "no";
}

// kohya options that are set to something Kiln does not do.
void check_foreign(const Merged& m, Problems& p) {
  for (auto it = m.values.begin(); it != m.values.end(); ++it) {
    const std::string& key = it.key();
    if (find_implemented(key)) continue;
    const std::string source = m.origin.count(key) ? m.origin.at(key) : "";
    const ForeignKey* f = find_foreign(key);
    if (!f) {
      const std::string hint = suggestion(key, all_key_names());
      p.error("unknown key '" + key + "'" + from(source) + (hint.empty() ? "." : hint));
      continue;
    }
    const json& v = it.value();
    const json neutral = json::parse(f->neutral);
    const bool empty = v.is_null() || (v.is_boolean() && !v.get<bool>()) || (v.is_string() && v.get<std::string>().empty()) ||
                       (v.is_number() && v.get<double>() == 0) || (v.is_array() && v.empty()) ||
                       (v.is_object() && v.empty());
    const bool is_neutral = v == neutral || (neutral.is_null() && empty) ||
                            (v.is_number() && neutral.is_number() && v.get<double>() == neutral.get<double>());
    if (is_neutral) continue;
    if (f->what == Foreign::Ignored) {
      p.notes.push_back(key + " = " + (v.is_string() ? v.get<std::string>() : v.dump()) + " is ignored" + from(source) +
                        ": " + f->why + ".");
    } else {
      p.error(key + " = " + (v.is_string() ? v.get<std::string>() : v.dump()) + " is not supported" + from(source) +
              ": " + f->why + ".");
    }
  }
}

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
    errors.push_back(what + " is outside 64..2048 (512 is usual for SD1.5).");
  } else if (v % 64 != 0) {
    errors.push_back(what + " is not a multiple of 64 (use " + num(nearest_multiple(v, 64)) + ").");
  }
}

}  // namespace

// ================================================================ public

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(join(problems, "\n")), problems_(std::move(problems)) {}

ConfigLayer layer_from_json(const nlohmann::json& object, std::string source) {
  if (!object.is_object())
    throw ConfigError({"the configuration" + from(source) + " must be a JSON object of keys, not " + describe(object) +
                       "."});
  return ConfigLayer{std::move(source), object, {}, false};
}

ConfigLayer layer_from_toml(const std::string& text, std::string source) {
  toml::table table;
  try {
    table = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw ConfigError({source + " is not valid TOML: line " + std::to_string(e.source().begin.line) + ", column " +
                       std::to_string(e.source().begin.column) + ": " + std::string(e.description()) + "."});
  }
  std::vector<std::string> errors;
  std::function<json(const toml::node&, const std::string&)> convert = [&](const toml::node& n,
                                                                         const std::string& key) -> json {
    if (auto s = n.as_string()) return s->get();
    if (auto i = n.as_integer()) return i->get();
    if (auto f = n.as_floating_point()) return f->get();
    if (auto b = n.as_boolean()) return b->get();
    if (auto a = n.as_array()) {
      json out = json::array();
      for (const toml::node& item : *a) out.push_back(convert(item, key));
      return out;
    }
    if (auto t = n.as_table()) {
      json out = json::object();
      for (auto&& [k, v] : *t) out[std::string(k.str())] = convert(v, key);
      return out;
    }
    errors.push_back(key + " in " + source + " holds a date or time, which no training option takes.");
    return nullptr;
  };
  json values = json::object();
  std::map<std::string, std::string> section_of;
  auto add = [&](const std::string& key, const json& value, const std::string& section) {
    if (values.contains(key) && values[key] != value) {
      errors.push_back(key + " is given twice in " + source + " with different values: " + describe(values[key]) +
                       (section_of[key].empty() ? "" : " in [" + section_of[key] + "]") + " and " + describe(value) +
                       (section.empty() ? "" : " in [" + section + "]") + ".");
      return;
    }
    values[key] = value;
    section_of[key] = section;
  };
  for (auto&& [k, node] : table) {
    const std::string key(k.str());
    if (const toml::table* section = node.as_table()) {
      // kohya read_config_from_file: a section's keys join the top level; a table inside a section
      // would be a value kohya passes on as a dict, which no option takes.
      for (auto&& [k2, inner] : *section) {
        const std::string key2(k2.str());
        if (inner.is_table()) {
          errors.push_back("[" + key + "." + key2 + "] in " + source +
                           " is a table inside a section; kohya's config files have one level of sections.");
          continue;
        }
        add(key2, convert(inner, key2), key);
      }
    } else {
      add(key, convert(node, key), "");
    }
  }
  if (!errors.empty()) throw ConfigError(errors);
  return ConfigLayer{std::move(source), values, {}, false};
}

ConfigLayer layer_from_file(const std::filesystem::path& path) {
  const std::string source = "file " + path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError({"the config file " + path.string() +
                       (fs::exists(path) ? " cannot be read." : " does not exist.")});
  }
  std::stringstream ss;
  ss << in.rdbuf();
  ConfigLayer layer;
  if (lower(path.extension().string()) == ".json") {
    json j;
    try {
      j = json::parse(ss.str());
    } catch (const json::parse_error& e) {
      throw ConfigError({path.string() + " is not valid JSON: " + e.what()});
    }
    layer = layer_from_json(j, source);
  } else {
    layer = layer_from_toml(ss.str(), source);
  }
  layer.base_dir = fs::absolute(path).parent_path();
  return layer;
}

ConfigLayer layer_from_overrides(const std::vector<std::string>& assignments, std::string source) {
  ConfigLayer layer{std::move(source), json::object(), {}, true};
  std::vector<std::string> errors;
  for (const std::string& a : assignments) {
    const size_t eq = a.find('=');
    const std::string key = eq == std::string::npos ? trim(a) : trim(a.substr(0, eq));
    if (eq == std::string::npos || key.empty()) {
      errors.push_back("'" + a + "'" + from(layer.source) + " is not a key=value setting, like network_dim=32.");
      continue;
    }
    std::string value = trim(a.substr(eq + 1));
    // Quotes around a value are shell leftovers ("--set training_comment='a b'"), not part of it.
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
      layer.values[key] = value.substr(1, value.size() - 2);
      continue;
    }
    layer.values[key] = value;
  }
  if (!errors.empty()) throw ConfigError(errors);
  return layer;
}

namespace {

TrainConfig build(const std::vector<ConfigLayer>& given, const TrainEnvironment& env, Problems& p) {
  std::vector<Layer> layers;
  for (const ConfigLayer& l : given) layers.push_back(normalise(l, p));
  Merged m = merge(layers);

  // The preset named by any source goes under all of them.
  std::string preset_name;
  if (auto it = m.values.find("preset"); it != m.values.end() && !it->is_null()) {
    if (!it->is_string()) {
      p.error("preset must be a text, one of " + join(preset_names()) + ", not " + describe(*it) + ".");
    } else if (!it->get<std::string>().empty()) {
      preset_name = it->get<std::string>();
      if (const Preset* preset = find_preset(preset_name)) {
        ConfigLayer pl{"preset " + preset->name, preset->values, {}, false};
        layers.insert(layers.begin(), normalise(pl, p));
        m = merge(layers);
        // The preset's alpha keeps its ratio to the rank when a higher source changes only the rank.
        const auto alpha_origin = m.origin.find("network_alpha");
        const auto dim_origin = m.origin.find("network_dim");
        const auto dim = m.values.find("network_dim");
        if (alpha_origin != m.origin.end() && alpha_origin->second == pl.source && dim_origin != m.origin.end() &&
            dim_origin->second != pl.source && dim != m.values.end() && dim->is_number_integer() &&
            preset->values.contains("network_dim") && preset->values.contains("network_alpha")) {
          const double ratio =
              preset->values["network_alpha"].get<double>() / preset->values["network_dim"].get<double>();
          const double alpha = dim->get<double>() * ratio;
          if (alpha != m.values["network_alpha"].get<double>()) {
            m.values["network_alpha"] = alpha;
            p.notes.push_back("network_alpha is " + num(alpha) + ": the " + preset->name +
                              " preset's alpha/dim ratio (" + num(ratio) + ") applied to network_dim " + dim->dump() +
                              "; set network_alpha to choose it yourself.");
          }
        }
      }  // an unknown name is reported by validate_train_config, with a suggestion
    }
  }

  check_foreign(m, p);
  TrainConfig c;
  Reader reader(m, p);
  read_config(reader, env, c, p);
  for (auto it = m.values.begin(); it != m.values.end(); ++it)
    if (find_implemented(it.key()) && !it->is_null()) c.origins[it.key()] = m.origin[it.key()];
  resolve_environment(c, env);
  c.notes = p.notes;
  return c;
}

}  // namespace

TrainConfig build_train_config(const std::vector<ConfigLayer>& layers, const TrainEnvironment& env) {
  Problems p;
  TrainConfig c = build(layers, env, p);
  if (p.errors.empty()) {
    for (std::string& e : validate_train_config(c, env)) p.errors.push_back(std::move(e));
  }
  // Type errors first, then range errors of what did read; each problem once.
  else {
    for (std::string& e : validate_train_config(c, env))
      if (std::find(p.errors.begin(), p.errors.end(), e) == p.errors.end()) p.errors.push_back(std::move(e));
  }
  if (!p.errors.empty()) throw ConfigError(p.errors);
  return c;
}

TrainConfig load_train_config(const ConfigSources& sources, const TrainEnvironment& env) {
  std::vector<ConfigLayer> layers;
  std::vector<std::string> errors;
  auto add = [&](const std::function<ConfigLayer()>& make) {
    try {
      layers.push_back(make());
    } catch (const ConfigError& e) {
      errors.insert(errors.end(), e.problems().begin(), e.problems().end());
    }
  };
  if (!sources.config_file.empty()) add([&] { return layer_from_file(sources.config_file); });
  json request = sources.request.is_null() ? json::object() : sources.request;
  if (request.is_object() && !sources.preset.empty() && !request.contains("preset")) request["preset"] = sources.preset;
  add([&] { return layer_from_json(request, "request"); });
  if (!sources.overrides.empty()) add([&] { return layer_from_overrides(sources.overrides); });
  if (!errors.empty()) throw ConfigError(errors);

  // Neither a preset nor a file: start from `custom`, not from kohya's bare defaults.
  bool has_preset = false;
  for (const ConfigLayer& l : layers)
    if (l.values.contains("preset") && !l.values["preset"].is_null()) has_preset = true;
  if (!has_preset && sources.config_file.empty()) layers.insert(layers.begin(), ConfigLayer{"default", {{"preset", "custom"}}, {}, false});
  return build_train_config(layers, env);
}

TrainConfig train_config_from_json(const nlohmann::json& object, const TrainEnvironment& env) {
  return build_train_config({layer_from_json(object, "config")}, env);
}

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
  o << "# kohya sd-scripts train_network.py --config_file, written by Kiln";
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
  if (short_side < 512)
    w.push_back("Training at " + num(short_side) + " px: below 512 is clearly worse for SD1.5 models (only tiny test "
                "models work at this size). Use resolution 512 or 512,768.");
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
