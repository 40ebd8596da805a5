#pragma once
// The one-click presets of the tools users praise (../shared/WORKFLOW.md): product, character,
// anime, style and custom. Each is a config layer under the file, request and overrides; every
// value is documented in presets.cpp with the WORKFLOW line it comes from.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/io/families.h"

namespace kiln::service::training {

struct Preset {
  std::string name;
  std::string description;        // one line for help texts
  nlohmann::json values;          // the keys the preset sets (train_config.h names)
  int64_t recommended_images_min = 0, recommended_images_max = 0;  // the guides' dataset size
  int64_t usual_repeats_min = 0, usual_repeats_max = 0;            // the guides' repeats per image
};

// In the order above.
const std::vector<Preset>& presets();
// nullptr when unknown (case-insensitive).
const Preset* find_preset(const std::string& name);
std::vector<std::string> preset_names();

// The preset's values for a base model of `family`: SD1.x (or unknown) as listed; SDXL with the
// family's row of differences on top (families.h and presets.cpp: 1024², its buckets, the U-Net
// only, gradient checkpointing), the ranks and learning rates unchanged.
nlohmann::json preset_values(const Preset& preset, engine::ModelFamily family);

// What a base model's family changes in training, beside the engine's FamilyTraits: one row per
// family instead of family checks spread through the training code (presets.cpp).
struct FamilyTraining {
  const char* preset_label;  // appended to a preset's name where its values' origin is shown
  const char* kohya_script;  // the sd-scripts program a written config is for
  // Said when the training resolution is below the family's native size (FamilyTraits::default_size).
  const char* below_native_advice;
};
const FamilyTraining& family_training(engine::ModelFamily family);

// WORKFLOW: batch 1 with ≤ 6 GB of free memory, 4 with ≥ 12 GB, 2 in between (SD1.5 at 512²).
// Other families divide the free memory by their train_memory_scale first (SDXL at 1024²: 4).
int64_t batch_size_for_memory(int64_t free_bytes, engine::ModelFamily family = engine::ModelFamily::SD1);

// The usual total is 1,500–3,000 optimizer steps (images × repeats × epochs / batch); the repeats
// per image that land nearest 2,000 for this dataset, at least 1 and at most 100.
int64_t suggest_repeats(int64_t images, int64_t epochs, int64_t batch_size);
// The same for a preset: among the repeats that keep 1,500–3,000 steps, the one nearest the
// preset's usual repeats (anime 10–15, realistic person 30–50, ...); the above when none does.
int64_t suggest_repeats(const Preset& preset, int64_t images, int64_t epochs, int64_t batch_size);

// The range the guides call usual, used by warnings and suggest_repeats().
constexpr int64_t kUsualStepsMin = 1500;
constexpr int64_t kUsualStepsMax = 3000;
constexpr int64_t kTargetSteps = 2000;

}  // namespace kiln::service::training
