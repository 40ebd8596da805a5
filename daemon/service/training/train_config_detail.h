#pragma once
// What the parts of the train config (train_config.h) share, and nothing else includes: text
// helpers for messages and TOML, the table of keys (Kiln's, their aliases, kohya's that Kiln does
// not implement), and the list of problems a load collects. The parts, by concern:
//   train_config_keys.cpp      the keys and their defaults' vocabulary (names, aliases, foreign keys)
//   train_config_sources.cpp   each source as a layer of raw values (JSON, kohya TOML, key=value)
//   train_config_load.cpp      layered loading: normalise, merge, read typed values
//   train_config_validate.cpp  validation and the advice (training_warnings)
//   train_config_write.cpp     config.json and kohya's TOML
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "service/training/train_config.h"

namespace kiln::service::training::detail {

using nlohmann::json;

// ---- text helpers
bool ends_with(const std::string& s, const std::string& suffix);
std::string join(const std::vector<std::string>& items, const std::string& sep = ", ");
// The shortest text that reads back as the same double ("0.0001", "2e-06" → "2e-6", "1.5").
std::string num(double v);
std::string num(int64_t v);
// A TOML float: always with a '.' or an exponent.
std::string toml_float(double v);
std::string toml_string(const std::string& s);
// "; did you mean 'x'?" when a candidate is plausibly meant, else "".
std::string suggestion(const std::string& word, const std::vector<std::string>& candidates);
bool parse_bool_text(const std::string& text, bool& out);
// How a value reads in a message.
std::string describe(const json& v);
// A base model given as a path rather than a registry name.
bool looks_like_path(const std::string& s);
// `given` spelled as in `names` (case-insensitive match), else as given.
std::string canonical(const std::string& given, const std::vector<std::string>& names);

// ---- the keys
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
const std::vector<KeyInfo>& implemented_keys();
// Other spellings, folded into the keys above before merging.
const std::map<std::string, std::string>& aliases();

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
const std::vector<ForeignKey>& foreign_keys();

const KeyInfo* find_implemented(const std::string& key);
const ForeignKey* find_foreign(const std::string& key);

// The engine's names (engine/lora/lr_schedule.h LrSchedule::names(), optimizers.h
// optimizer_types()); a test checks they still agree.
const std::vector<std::string>& scheduler_names();
const std::vector<std::string>& optimizer_names();
// kohya optimizers Kiln does not have: named so that the error says so instead of "unknown".
const std::vector<std::string>& kohya_only_optimizers();
extern const std::vector<std::string> kMixedPrecisions;
extern const std::vector<std::string> kSavePrecisions;
extern const std::vector<std::string> kOptimizerArgNames;
std::vector<std::string> all_key_names();

// ---- problems
struct Problems {
  std::vector<std::string> errors;
  std::vector<std::string> notes;
  void error(std::string s) { errors.push_back(std::move(s)); }
};

// " (from <source>)", or "" for no source.
std::string from(const std::string& source);

}  // namespace kiln::service::training::detail
