#pragma once
// How a dataset is prepared for training, and the presets users pick from (../shared/WORKFLOW.md).
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace kiln::studio {

enum class Preset { Product, Character, Anime, Style, Custom };
enum class CropMode {
  Center,  // the largest centred square (or the whole image when keeping the aspect ratio)
  Focus,   // around the subject: alpha channel when there is one, else a saliency estimate
  Face,    // around the largest detected face, with head and shoulders; Focus when none is found
};
enum class SizeMode {
  Square,  // crop square and resize to resolution x resolution
  Bucket,  // keep the crop's aspect ratio for kohya's bucketing: area at most resolution², sides
           // multiples of 64; never upscaled
};
enum class Background { White, LightGrey };  // what transparent pixels become

struct DatasetSettings {
  Preset preset = Preset::Custom;
  std::string trigger;          // the word the LoRA learns; first in every caption; folder "<repeats>_<trigger>"
  int repeats = 10;             // kohya repeats per epoch
  int epochs = 10;              // only for the step estimate in the dataset checks
  int batch_size = 1;           // idem
  CropMode crop = CropMode::Center;
  SizeMode size = SizeMode::Square;
  int resolution = 512;         // SD 1.x trains at 512
  Background background = Background::White;
  bool center_subject = false;  // product layout: subject centred on the background with a margin
  double margin = 0.08;         // free space around the subject, as a fraction of the crop's side
  bool flip = false;            // add a mirrored copy of every image
  bool face_enhance = false;    // add a face-only crop of every image with a face (person presets)
};

// The preset's defaults (see the .cpp for the reasoning); `trigger` is kept.
DatasetSettings preset_settings(Preset preset, std::string trigger);

// Checks ranges and the trigger word (a single folder-safe token, e.g. "sks_speaker").
// Throws Error(InvalidArgument) or Error(InvalidName) saying what is allowed.
void validate_settings(const DatasetSettings& settings);

// kohya's folder for these settings: "<repeats>_<trigger>" ("<repeats>_images" without a trigger).
std::string repeat_folder_name(const DatasetSettings& settings);

const char* to_string(Preset p);
const char* to_string(CropMode m);
const char* to_string(SizeMode m);
const char* to_string(Background b);
// Parse the names above ("product", "focus", "bucket", "grey"); nullopt for anything else.
std::optional<Preset> parse_preset(std::string_view s);
std::optional<CropMode> parse_crop_mode(std::string_view s);
std::optional<SizeMode> parse_size_mode(std::string_view s);
std::optional<Background> parse_background(std::string_view s);

void to_json(nlohmann::json& j, const DatasetSettings& s);
// Missing keys keep the preset's defaults; bad values throw Error(InvalidArgument) naming the key.
void from_json(const nlohmann::json& j, DatasetSettings& s);

}  // namespace kiln::studio
