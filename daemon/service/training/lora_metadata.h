#pragma once
// The metadata kohya's train_network.py writes into every LoRA file it saves (ss_* keys, plus the
// SAI model spec's modelspec.* keys), so A1111's and ComfyUI's LoRA info panels and Civitai show
// what they show for kohya's files. Values are strings in kohya's spelling: Python's str() of the
// value ("True", "None", "0.0001", "(512, 512)"), JSON for the dataset tables.
#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "service/training/train_config.h"

namespace kiln::service::training {

struct RunFacts {
  std::string session_id;            // kohya: a random integer per run
  double started_at = 0;             // Unix time, seconds
  std::string base_model_name;       // the checkpoint's file name (ss_sd_model_name)
  std::string base_model_hash;       // A1111's short hash (ss_sd_model_hash), "" when unknown
  std::string base_model_sha256;     // ss_new_sd_model_hash, "" when unknown
  int64_t num_train_images = 0;      // Σ images × repeats (kohya's "num train images * repeats")
  int64_t num_batches_per_epoch = 0;
  int64_t num_epochs = 0;
  int64_t max_train_steps = 0;
  int64_t seed = 0;                  // the seed actually used
  nlohmann::json tag_frequency, dataset_dirs, bucket_info;
};

// What one saved file records: the training so far.
struct SaveFacts {
  int64_t epoch = 0;                 // ss_epoch
  int64_t steps = 0;                 // ss_steps: optimizer steps done
  double finished_at = 0;            // ss_training_finished_at, Unix time
};

// kohya's ss_optimizer: the optimizer class's module path and name, with its arguments.
std::string kohya_optimizer_name(const TrainConfig& config);

// Every ss_* and modelspec.* key (the network adds ss_network_module/dim/alpha/args and the sshs_
// hashes when it saves).
std::map<std::string, std::string> kohya_metadata(const TrainConfig& config, const RunFacts& run, const SaveFacts& save);

}  // namespace kiln::service::training
