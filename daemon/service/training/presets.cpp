#include "service/training/presets.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace kiln::service::training {
namespace {

using nlohmann::json;

// What every preset shares. Each value with the line of ../shared/WORKFLOW.md ("4. Parameters"
// unless said otherwise) it comes from:
json common_values() {
  return {
      // "learning rate 1e-4 ... unet_lr 1e-4 / 5e-5, text_encoder_lr 1e-5 / 6e-6": the first pair.
      // learning_rate rather than unet_lr, so that `--set learning_rate=...` moves the U-Net's rate.
      {"learning_rate", 1e-4},
      {"text_encoder_lr", 1e-5},
      // "epochs 10–20 (10 is the usual start); one LoRA file saved per epoch".
      {"max_train_epochs", 10},
      {"save_every_n_epochs", 1},
      // "Resolution 512×512 or 512×768 for SD1.5 ... below 512 is clearly worse".
      {"resolution", "512,512"},
      // "bucketing for non-square images (min 256, max 1024, multiples of 64)".
      {"enable_bucket", true},
      {"min_bucket_reso", 256},
      {"max_bucket_reso", 1024},
      {"bucket_reso_steps", 64},
      // "batch size: 1 with ≤ 6 GB VRAM at 512², 4–6 with ≥ 12 GB": "auto" = batch_size_for_memory.
      {"train_batch_size", "auto"},
      // "optimizer AdamW (8-bit to save memory)".
      {"optimizer_type", "AdamW"},
      // "schedulers: ... cosine_with_restarts (+restarts)": the one the one-click tools (秋叶
      // lora-scripts) start from, with one cycle and no warm-up as they do.
      {"lr_scheduler", "cosine_with_restarts"},
      {"lr_scheduler_num_cycles", 1},
      {"lr_warmup_steps", 0},
      // "shuffle captions on". "put the trigger word first (early tags weigh most)" (3. Tagging):
      // keep_tokens 1 keeps it first while the rest are shuffled.
      {"shuffle_caption", true},
      {"keep_tokens", 1},
      // "cache latents".
      {"cache_latents", true},
      // "mixed precision fp16": "auto" = fp16 on CUDA, off on the CPU, where it cannot run.
      {"mixed_precision", "auto"},
      // "Files are small (dim 32 ≈ 40 MB, 64 ≈ 70 MB, 128 ≈ 140 MB for SD1.5)" (why users train a
      // LoRA): those are half-precision sizes, as the tools save them.
      {"save_precision", "fp16"},
      // "a sample image every 50 steps" (5. Training); of the trigger word when no sample prompts are given.
      {"sample_every_n_steps", 50},
      // The sampler of the one-click tools' sample previews (lora-scripts: euler_a).
      {"sample_sampler", "euler_a"},
      // "auto-tag (WD1.4 tagger ..., BLIP captions ...)" (3. Tagging): the taggers and Kiln's
      // datasets write .txt captions; kohya's own default is .caption.
      {"caption_extension", ".txt"},
  };
}

json with(json base, const json& extra) {
  for (auto it = extra.begin(); it != extra.end(); ++it) base[it.key()] = it.value();
  return base;
}

std::vector<Preset> build() {
  std::vector<Preset> out;
  // "Product: ... 20–40 sharp, multi-angle photos"; "12–16 detailed characters/products";
  // "alpha = dim/2"; "clip_skip ... 1 for realistic ones" (products are photographed).
  // Repeats: the guides give none for products; 4–15 is what 20–40 images × 10 epochs need for
  // the usual 1,500–3,000 steps.
  out.push_back({"product", "your own product (20–40 photos, plain background), rank 16",
                 with(common_values(), {{"network_dim", 16}, {"network_alpha", 8}, {"clip_skip", 1}}), 20, 40, 4, 15});
  // "realistic person 30–50" repeats; "12–16 detailed characters/products" and "64–128
  // realistic/3D" with "≥ 32 rarely worth it and overfits": 32, between the two; alpha dim/2;
  // clip_skip 1 for realistic base models ("chilloutmix-like").
  out.push_back({"character", "a consistent person or character (multi-angle, several poses), rank 32",
                 with(common_values(), {{"network_dim", 32}, {"network_alpha", 16}, {"clip_skip", 1}}), 20, 30, 30,
                 50});
  // "network_dim (rank): 32 anime"; "clip_skip 2 for anime/NovelAI models"; repeats "anime 10–15".
  out.push_back({"anime", "an anime character or subject on an anime/NovelAI base model, rank 32, clip skip 2",
                 with(common_values(), {{"network_dim", 32}, {"network_alpha", 16}, {"clip_skip", 2}}), 20, 30, 10,
                 15});
  // "4–8 light styles"; alpha dim/2; clip_skip 1 (realistic/photographic base models; use anime
  // with a style on an anime model or --set clip_skip=2); repeats: "scenery up to 100".
  out.push_back({"style", "a drawing or photographic style (images sharing its traits), rank 8",
                 with(common_values(), {{"network_dim", 8}, {"network_alpha", 4}, {"clip_skip", 1}}), 20, 30, 10,
                 100});
  // The shared defaults with the one-click tools' middle rank (lora-scripts: 32/16) and kohya's
  // clip_skip (1): a starting point for everything else.
  out.push_back({"custom", "the shared defaults (rank 32, alpha 16) for anything else; change what you need",
                 with(common_values(), {{"network_dim", 32}, {"network_alpha", 16}}), 20, 30, 1, 100});
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

int64_t steps_for(int64_t images, int64_t repeats, int64_t epochs, int64_t batch) {
  return (images * repeats + batch - 1) / batch * epochs;  // kohya: ceil per epoch
}

}  // namespace

// What an SDXL base model changes in every preset. Each value with its source:
json sdxl_values() {
  const engine::FamilyTraits& xl = engine::family_traits(engine::ModelFamily::SDXL);
  return {
      // SDXL was trained at 1024² ("on a 24 GB card little gain past 1024" is about SD1.5; SDXL
      // starts there), and kohya's SDXL guides train at 1024.
      {"resolution", std::to_string(xl.default_size) + "," + std::to_string(xl.default_size)},
      // The SD1.5 presets' buckets (256–1024 around 512), scaled to 1024.
      {"min_bucket_reso", 512},
      {"max_bucket_reso", 2048},
      // kohya's SDXL guides: train the U-Net only (--network_train_unet_only); the two text
      // encoders are large and training them rarely helps.
      {"network_train_unet_only", !xl.train_text_encoder},
      // A 1024² step does not fit in most cards' memory without it (kohya's SDXL examples set it).
      {"gradient_checkpointing", xl.gradient_checkpointing},
      // clip_skip does nothing on SDXL (the penultimate layers are fixed); kohya writes None.
      {"clip_skip", nullptr},
  };
}

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all = build();
  return all;
}

const Preset* find_preset(const std::string& name) {
  const std::string n = lower(name);
  for (const Preset& p : presets())
    if (p.name == n) return &p;
  return nullptr;
}

std::vector<std::string> preset_names() {
  std::vector<std::string> out;
  for (const Preset& p : presets()) out.push_back(p.name);
  return out;
}

namespace {
struct FamilyRow {
  engine::ModelFamily family;
  FamilyTraining training;
  json (*preset_overlay)();  // nullptr: the presets' values as listed (they are SD1.5's)
};

// SD2 and unknown families get SD1's row, as in family_traits(); callers refuse them where it matters.
const FamilyRow kFamilyRows[] = {
    {engine::ModelFamily::SD1,
     {"", "train_network.py",
      "below 512 is clearly worse for SD1.5 models (only tiny test models work at this size). Use resolution "
      "512 or 512,768."},
     nullptr},
    {engine::ModelFamily::SDXL,
     {" for SDXL", "sdxl_train_network.py",
      "SDXL models were trained at 1024 and lose detail below it (only tiny test models work at small sizes). "
      "Use resolution 1024 or 896,1152."},
     &sdxl_values},
};

const FamilyRow& family_row(engine::ModelFamily family) {
  for (const FamilyRow& row : kFamilyRows)
    if (row.family == family) return row;
  return kFamilyRows[0];
}
}  // namespace

const FamilyTraining& family_training(engine::ModelFamily family) { return family_row(family).training; }

json preset_values(const Preset& preset, engine::ModelFamily family) {
  const FamilyRow& row = family_row(family);
  return row.preset_overlay ? with(preset.values, row.preset_overlay()) : preset.values;
}

int64_t batch_size_for_memory(int64_t free_bytes, engine::ModelFamily family) {
  constexpr int64_t kGiB = int64_t{1} << 30;
  free_bytes = static_cast<int64_t>(static_cast<double>(free_bytes) / engine::family_traits(family).train_memory_scale);
  if (free_bytes <= 6 * kGiB) return 1;
  if (free_bytes >= 12 * kGiB) return 4;
  return 2;
}

int64_t suggest_repeats(int64_t images, int64_t epochs, int64_t batch_size) {
  if (images <= 0 || epochs <= 0 || batch_size <= 0) return 1;
  const double ideal = static_cast<double>(kTargetSteps) * batch_size / (static_cast<double>(images) * epochs);
  int64_t best = 1;
  int64_t best_distance = -1;
  // The steps are a step function of the repeats (ceil per epoch): compare the neighbours.
  const auto lo = std::max<int64_t>(1, static_cast<int64_t>(std::floor(ideal)) - 1);
  const auto hi = std::min<int64_t>(100, static_cast<int64_t>(std::ceil(ideal)) + 1);
  for (int64_t r = lo; r <= std::max(lo, hi); ++r) {
    const int64_t d = std::llabs(steps_for(images, r, epochs, batch_size) - kTargetSteps);
    if (best_distance < 0 || d < best_distance) best = r, best_distance = d;
  }
  return std::clamp<int64_t>(best, 1, 100);
}

int64_t suggest_repeats(const Preset& preset, int64_t images, int64_t epochs, int64_t batch_size) {
  const int64_t by_steps = suggest_repeats(images, epochs, batch_size);
  if (images <= 0 || epochs <= 0 || batch_size <= 0) return by_steps;
  // Among the repeats that keep the usual step range, the one nearest the guides' usual repeats
  // for this kind of LoRA; the step target when none does.
  int64_t best = by_steps, best_distance = -1;
  for (int64_t r = 1; r <= 100; ++r) {
    const int64_t steps = steps_for(images, r, epochs, batch_size);
    if (steps < kUsualStepsMin || steps > kUsualStepsMax) continue;
    const int64_t d = r < preset.usual_repeats_min ? preset.usual_repeats_min - r
                      : r > preset.usual_repeats_max ? r - preset.usual_repeats_max
                                                     : 0;
    const int64_t tie = std::llabs(steps - kTargetSteps);
    const int64_t best_tie = std::llabs(steps_for(images, best, epochs, batch_size) - kTargetSteps);
    if (best_distance < 0 || d < best_distance || (d == best_distance && tie < best_tie)) best = r, best_distance = d;
  }
  return best;
}

}  // namespace kiln::service::training
