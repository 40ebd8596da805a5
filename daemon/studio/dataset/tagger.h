#pragma once
// Optional auto-tagging with a WD1.4-style tagger (SmilingWolf's wd-v1-4-* family and its
// successors) that the user installs: a folder with `model.onnx` and `selected_tags.csv`, run
// through OpenCV's DNN module. Nothing is downloaded.
//
// The model takes one 448×448 image, BGR, float 0–255, NHWC ([1, 448, 448, 3]), padded to a square
// with white; it returns one probability per row of selected_tags.csv (columns tag_id, name,
// category, count; category 0 = general, 4 = character, 9 = rating).
#include <filesystem>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

namespace kiln::studio {

struct TagDefinition {
  std::string name;
  int category = 0;
};

// Parses selected_tags.csv (header row required; columns found by name; quoted fields allowed).
// Throws Error(NotFound) when missing and Error(BadFormat) naming the file and line when malformed.
std::vector<TagDefinition> read_selected_tags(const std::filesystem::path& csv);

// "long_hair" -> "long hair", but emoticons such as "^_^" or "o_o" stay as they are: underscores
// become spaces only in tags that hold two letters in a row.
std::string tag_display_name(const std::string& tag);

struct TaggerOptions {
  float general_threshold = 0.35f;    // the usual default of WD1.4 taggers
  float character_threshold = 0.85f;
  bool include_ratings = false;       // "general", "sensitive", ... are rarely wanted in captions
  int input_size = 448;
};

class Tagger {
 public:
  // Loads <folder>/model.onnx and <folder>/selected_tags.csv. Throws Error(NotFound) saying
  // exactly which file to put where when either is missing, Error(BadFormat) when OpenCV cannot
  // load the model.
  explicit Tagger(const std::filesystem::path& folder);

  // Tags above the thresholds, most confident first, with their probability. Thread-safe.
  std::vector<std::pair<std::string, float>> tag(const cv::Mat& image, const TaggerOptions& options = {}) const;

  const std::vector<TagDefinition>& tags() const { return tags_; }

 private:
  std::filesystem::path folder_;
  std::vector<TagDefinition> tags_;
  mutable std::mutex mutex_;
  mutable cv::dnn::Net net_;
};

// What the caller should tell the user when no tagger is installed in `folder`.
std::string tagger_install_hint(const std::filesystem::path& folder);

}  // namespace kiln::studio
