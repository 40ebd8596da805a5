#pragma once
// The configuration of a `train` job: kohya sd-scripts train_network.py options under kohya's
// names, meanings and defaults, plus a few of Kiln's own (base, dataset, num_repeats, preset,
// device). Plain C++: no LibTorch here (train_config_engine.h converts to the engine's types).
//
// Sources, lowest precedence first:
//   preset  <  config file (kohya TOML or JSON)  <  the request's JSON object  <  "key=value" overrides
// When neither a preset nor a config file is given, the `custom` preset applies: kohya's bare
// defaults (learning rate 2e-6, rank 4, 1600 steps) are not a LoRA anyone wants. A preset is read
// for the base model's family (presets.h preset_values: SDXL trains at 1024², U-Net only, with
// gradient checkpointing); a config file alone is taken as kohya would take it.
//
// Everything is checked before any work starts and every problem is reported at once
// (ConfigError::problems()), each a plain sentence naming its key.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/io/families.h"

namespace kiln::service::training {

// kohya --resolution: "512" or "512,768" (width,height).
struct TrainResolution {
  int64_t width = 512, height = 512;
  bool operator==(const TrainResolution& o) const { return width == o.width && height == o.height; }
};

// kohya --optimizer_args ("weight_decay=0.01", "betas=0.9,0.999", ...). Unset: the optimizer's own
// default (AdamW weight_decay 0.01, betas 0.9/0.999; Lion 0 and 0.9/0.99; SGDNesterov momentum 0.9).
struct OptimizerArgs {
  std::optional<double> weight_decay;
  std::optional<double> beta1, beta2;  // "betas"
  std::optional<double> eps;
  std::optional<double> momentum;      // SGDNesterov
};

struct TrainConfig {
  // ---- Kiln
  std::string preset;  // product, character, anime, style, custom; "" = none (after loading: the one applied)
  // "cpu", "cuda", "cuda:N". Given as "auto" or left out: cuda when the daemon has it, else cpu.
  // Always concrete after loading.
  std::string device = "cpu";

  // ---- model and data
  std::string pretrained_model_name_or_path;  // also `base`: a model registry name or a checkpoint path
  std::string train_data_dir;                 // a kohya folder of "N_name" subfolders ...
  std::string dataset;                        // ... or a Kiln dataset name; exactly one of the two
  // Kiln: repeats per image per epoch for a Kiln dataset and for folders without an "N_" prefix
  // (kohya's dataset-config name). Unset: the job calls suggest_repeats() (presets.h).
  std::optional<int64_t> num_repeats;
  std::string output_name;       // file stem of the LoRA: output_name-000001.safetensors ...
  std::string training_comment;  // kohya ss_training_comment

  TrainResolution resolution;  // Kiln default 512 (kohya has none and requires it)
  bool enable_bucket = false;
  int64_t min_bucket_reso = 256;
  int64_t max_bucket_reso = 1024;
  int64_t bucket_reso_steps = 64;
  bool bucket_no_upscale = false;

  // ---- steps
  // Given as "auto" (the presets do): chosen from free memory by batch_size_for_memory(). Always
  // concrete after loading.
  int64_t train_batch_size = 1;
  std::optional<int64_t> max_train_epochs;  // when set, it decides the steps (kohya)
  int64_t max_train_steps = 1600;           // kohya's default; used only without max_train_epochs
  int64_t gradient_accumulation_steps = 1;

  // ---- learning rate
  double learning_rate = 2e-6;             // kohya's default; the default of both groups below
  std::optional<double> unet_lr;           // unset: learning_rate
  std::optional<double> text_encoder_lr;   // unset: learning_rate
  std::string lr_scheduler = "constant";   // constant, constant_with_warmup, linear, cosine,
                                           // cosine_with_restarts, polynomial
  double lr_warmup_steps = 0;              // steps; a value below 1 is a ratio of the total steps (kohya)
  int64_t lr_scheduler_num_cycles = 1;     // cosine_with_restarts
  double lr_scheduler_power = 1.0;         // polynomial

  // ---- optimizer
  std::string optimizer_type = "AdamW";  // AdamW, AdamW8bit, Lion, SGDNesterov (canonical spelling)
  OptimizerArgs optimizer_args;
  double max_grad_norm = 1.0;  // 0 = no clipping

  // ---- network (kohya networks.lora)
  std::string network_module = "networks.lora";  // the only one accepted
  int64_t network_dim = 4;                       // kohya: None → 4
  double network_alpha = 1.0;
  std::optional<int64_t> conv_dim;     // network_args conv_dim: 3×3 conv LoRA (LoCon); unset = none
  std::optional<double> conv_alpha;    // unset with conv_dim: 1.0 (kohya)
  bool network_train_unet_only = false;
  bool network_train_text_encoder_only = false;

  // ---- text and captions
  std::optional<int64_t> clip_skip;         // unset: 1 (kohya writes "None" into ss_clip_skip)
  std::optional<int64_t> max_token_length;  // 75 (unset), 150 or 225
  bool shuffle_caption = false;
  int64_t keep_tokens = 0;                  // leading tags kept in place when shuffling
  double caption_dropout_rate = 0;
  std::string caption_extension = ".caption";  // kohya's default; the job also reads .txt when absent

  // ---- loss and noise
  std::optional<double> noise_offset;   // unset = off
  std::optional<double> min_snr_gamma;  // unset = off

  // ---- memory and precision
  bool cache_latents = false;
  bool cache_latents_to_disk = false;   // implies cache_latents (kohya)
  bool gradient_checkpointing = false;
  // "no", "fp16", "bf16". Given as "auto" (the presets do): fp16 on CUDA, no elsewhere. Always
  // concrete after loading.
  std::string mixed_precision = "no";
  std::optional<std::string> save_precision;  // float, fp16, bf16; unset: as trained (float)

  // ---- seeds, saving, samples
  std::optional<int64_t> seed;  // unset: the job draws one and records it
  std::optional<int64_t> save_every_n_epochs;
  std::optional<int64_t> save_every_n_steps;
  std::optional<int64_t> sample_every_n_steps;
  std::optional<int64_t> sample_every_n_epochs;  // when set, sample_every_n_steps is ignored (kohya)
  bool sample_at_first = false;
  // Prompt lines in kohya's sample syntax (sample_prompts.h), already read from the file when the
  // key named one; comment and blank lines kept as given.
  std::vector<std::string> sample_prompts;
  std::string sample_prompts_file;  // the file they came from, "" when given inline
  std::string sample_sampler = "ddim";  // kohya's names (sample_prompts.h: kohya_sample_samplers())

  // ---- bookkeeping (not part of to_json())
  // The base model's family (TrainEnvironment::model_family), Unknown when it could not be told.
  engine::ModelFamily family = engine::ModelFamily::Unknown;
  // The base model's own training side (TrainEnvironment::model_native_size); 0: the family's.
  int64_t native_size = 0;
  // Where each key that was given came from: "preset product", "file /x/cfg.toml", "request", "--set".
  std::map<std::string, std::string> origins;
  // Keys accepted but without effect in Kiln (xformers, output_dir, ...), one plain sentence each;
  // training_warnings() repeats them.
  std::vector<std::string> notes;

  bool is_set(const std::string& key) const { return origins.count(key) != 0; }
  // The effective values kohya derives.
  double effective_unet_lr() const { return unet_lr.value_or(learning_rate); }
  double effective_text_encoder_lr() const { return text_encoder_lr.value_or(learning_rate); }
  int64_t effective_clip_skip() const { return clip_skip.value_or(1); }
  bool trains_unet() const { return !network_train_text_encoder_only; }
  bool trains_text_encoder() const { return !network_train_unet_only; }
  bool caches_latents() const { return cache_latents || cache_latents_to_disk; }
};

// Every problem found, in the order found; what() joins them, one per line.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// What the daemon knows about where the training will run.
struct TrainEnvironment {
  bool cuda_available = false;
  // Free memory of the device that will train: picks the batch size for train_batch_size = "auto"
  // (1 when unknown).
  std::optional<int64_t> free_memory_bytes;
  // Relative paths in the request and the overrides (sample_prompts files) resolve against this;
  // those in a config file against the file's folder.
  std::filesystem::path working_dir;
  // The family of a base model as the config names it (a registry name or a path); Unknown when
  // it cannot be told. Unset: every base is taken for SD1.x's presets.
  std::function<engine::ModelFamily(const std::string& base)> model_family;
  // The side the base model was trained at when its file names one (Kiln Mini: 64), else 0.
  std::function<int64_t(const std::string& base)> model_native_size;
};

// One source of keys, before checking. Values are JSON whatever the source's format.
struct ConfigLayer {
  std::string source;  // "preset product", "file /x/cfg.toml", "request", "--set"
  nlohmann::json values = nlohmann::json::object();
  std::filesystem::path base_dir;  // for relative paths in this layer; empty: TrainEnvironment::working_dir
  // Values are command-line text (overrides): a string is read as whatever its key needs
  // ("32" for network_dim, "off" for a switch, "none" to unset).
  bool loose = false;
};

// Parsers for each kind of source. They check syntax only (and throw ConfigError for it); keys and
// values are checked by build_train_config().
ConfigLayer layer_from_json(const nlohmann::json& object, std::string source = "request");
// kohya's --config_file TOML: flat `key = value`, or grouped in [sections] as GUIs write it; the
// sections are ignored and their keys merged (a key given twice with different values is an error).
ConfigLayer layer_from_toml(const std::string& text, std::string source = "toml");
// A .toml or .json file (by extension; anything else is read as TOML).
ConfigLayer layer_from_file(const std::filesystem::path& path);
// "key=value" overrides (CLI --set): true/false/yes/no/on/off → bool, integers, floats, [a,b] or
// a,b → list (for optimizer_args / network_args), as the key needs; surrounding quotes are dropped.
ConfigLayer layer_from_overrides(const std::vector<std::string>& assignments, std::string source = "--set");

// Merges the layers (lowest precedence first), converts, resolves "auto" values against `env`,
// and validates. Throws ConfigError listing every problem.
TrainConfig build_train_config(const std::vector<ConfigLayer>& layers, const TrainEnvironment& env);

// What a train request carries.
struct ConfigSources {
  std::string preset;                    // --preset: as a request key (beats the file's, loses to --set)
  std::filesystem::path config_file;     // --config FILE.toml|FILE.json; empty = none
  nlohmann::json request = nlohmann::json::object();  // the request's keys (--base, --data, --name ...)
  std::vector<std::string> overrides;    // --set key=value
};
// The whole load: preset < file < request < overrides. Throws ConfigError.
TrainConfig load_train_config(const ConfigSources& sources, const TrainEnvironment& env);

// A resolved config back from its to_json() (config.json of a trained LoRA, a job record).
TrainConfig train_config_from_json(const nlohmann::json& object, const TrainEnvironment& env);

// Checks a config (after a caller changed it, say). Plain sentences naming the key; empty = valid.
std::vector<std::string> validate_train_config(const TrainConfig& config, const TrainEnvironment& env);

// The resolved config under kohya's keys (+ Kiln's), every key present: what is saved beside the
// LoRA as config.json. Unset optionals are null.
nlohmann::json to_json(const TrainConfig& config);
// A kohya --config_file TOML that reruns the same training with train_network.py (conv_dim and
// optimizer_args written as kohya's network_args / optimizer_args lists; Kiln-only keys as comments).
struct KohyaTomlOptions {
  std::string train_data_dir;       // the kohya folder of a Kiln dataset; "" = config.train_data_dir
  std::string sample_prompts_file;  // where the job wrote the prompts; "" = config.sample_prompts_file
  std::string output_dir;           // "" = leave kohya's default
};
std::string to_kohya_toml(const TrainConfig& config, const KohyaTomlOptions& options = {});
// The prompt lines as a kohya sample prompts .txt file.
std::string sample_prompts_text(const TrainConfig& config);

// Every key the loader accepts (Kiln's and kohya's), sorted; for help and did-you-mean.
const std::vector<std::string>& train_config_keys();
// The values Kiln accepts for optimizer_type and lr_scheduler (the engine's; a test keeps them equal).
const std::vector<std::string>& supported_optimizer_types();
const std::vector<std::string>& supported_lr_schedulers();

// kohya's step count: ceil(Σ images·repeats / batch) per epoch (without buckets), over the
// accumulation, times the epochs; or max_train_steps without max_train_epochs. For estimates; the
// job counts per bucket with engine::lora::plan_steps.
int64_t estimate_total_steps(const TrainConfig& config, int64_t images_with_repeats);

// What the job knows of the dataset when it checks the plan.
struct DatasetFolder {
  std::string name;     // "20_product" or the Kiln dataset name
  int64_t images = 0;
  int64_t repeats = 1;
};
struct DatasetFacts {
  std::vector<DatasetFolder> folders;
  int64_t min_short_side = 0;         // the smallest short side of any image, pixels; 0 = unknown
  int64_t low_resolution_images = 0;  // images whose short side is below the training resolution
  std::optional<int64_t> total_steps; // the job's exact count (plan_steps); unset: estimated here
  int64_t images() const;
  int64_t images_with_repeats() const;
};

// Advice, not errors, one plain sentence each: small dataset, low-resolution images, total steps
// far from the usual 1,500–3,000 (with the number and what to change), high rank with conv_dim,
// and the config's notes.
std::vector<std::string> training_warnings(const TrainConfig& config, const DatasetFacts& facts);

}  // namespace kiln::service::training
