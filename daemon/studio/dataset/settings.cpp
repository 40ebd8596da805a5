#include "studio/dataset/settings.h"

#include <nlohmann/json.hpp>

#include "studio/error.h"
#include "studio/names.h"

namespace kiln::studio {

DatasetSettings preset_settings(Preset preset, std::string trigger) {
  DatasetSettings s;
  s.preset = preset;
  s.trigger = std::move(trigger);
  switch (preset) {
    case Preset::Product:
      // 20–40 sharp photos on white: the subject centred on white, square 512, no mirroring
      // (labels and logos must not be learnt mirrored).
      s.repeats = 10;
      s.crop = CropMode::Focus;
      s.background = Background::White;
      s.center_subject = true;
      break;
    case Preset::Character:
      // Realistic people: 30–50 repeats in the guides; focus on face and upper body, plus an
      // extra face-only crop ("face enhance").
      s.repeats = 30;
      s.crop = CropMode::Face;
      s.face_enhance = true;
      break;
    case Preset::Anime:
      // Anime: 10–15 repeats; Haar face detectors miss drawn faces, so focus on the subject.
      s.repeats = 12;
      s.crop = CropMode::Focus;
      break;
    case Preset::Style:
      // A style lives in whole compositions: keep the aspect ratio for bucketing; mirroring is
      // harmless for most styles and doubles the variety.
      s.repeats = 10;
      s.crop = CropMode::Center;
      s.size = SizeMode::Bucket;
      s.flip = true;
      break;
    case Preset::Custom: break;
  }
  return s;
}

void validate_settings(const DatasetSettings& s) {
  const auto bad = [](const std::string& m) { return Error(ErrorKind::InvalidArgument, m); };
  if (s.repeats < 1 || s.repeats > 1000) throw bad("repeats must be between 1 and 1000 (the guides use 10-100)");
  if (s.epochs < 1 || s.epochs > 1000) throw bad("epochs must be between 1 and 1000");
  if (s.batch_size < 1 || s.batch_size > 64) throw bad("batch size must be between 1 and 64");
  // From 64: the tiny test models train at 64 px; real SD 1.x models want 512 (the checks warn).
  if (s.resolution < 64 || s.resolution > 2048 || s.resolution % 64 != 0)
    throw bad("resolution must be a multiple of 64 between 64 and 2048 (512 for SD 1.x), not " +
              std::to_string(s.resolution));
  if (!(s.margin >= 0 && s.margin <= 0.4)) throw bad("margin must be between 0 and 0.4 of the image side");
  if (!s.trigger.empty()) {
    validate_library_name(s.trigger, "trigger word");
    if (s.trigger.find(',') != std::string::npos) throw bad("the trigger word cannot contain a comma");
  }
}

std::string repeat_folder_name(const DatasetSettings& s) {
  return std::to_string(s.repeats) + "_" + (s.trigger.empty() ? std::string("images") : s.trigger);
}

const char* to_string(Preset p) {
  switch (p) {
    case Preset::Product: return "product";
    case Preset::Character: return "character";
    case Preset::Anime: return "anime";
    case Preset::Style: return "style";
    case Preset::Custom: return "custom";
  }
  return "custom";
}
const char* to_string(CropMode m) {
  switch (m) {
    case CropMode::Center: return "center";
    case CropMode::Focus: return "focus";
    case CropMode::Face: return "face";
  }
  return "center";
}
const char* to_string(SizeMode m) { return m == SizeMode::Square ? "square" : "bucket"; }
const char* to_string(Background b) { return b == Background::White ? "white" : "grey"; }

std::optional<Preset> parse_preset(std::string_view s) {
  for (Preset p : {Preset::Product, Preset::Character, Preset::Anime, Preset::Style, Preset::Custom})
    if (s == to_string(p)) return p;
  if (s == "person") return Preset::Character;
  return std::nullopt;
}
std::optional<CropMode> parse_crop_mode(std::string_view s) {
  for (CropMode m : {CropMode::Center, CropMode::Focus, CropMode::Face})
    if (s == to_string(m)) return m;
  return std::nullopt;
}
std::optional<SizeMode> parse_size_mode(std::string_view s) {
  if (s == "square" || s == "resize") return SizeMode::Square;
  if (s == "bucket" || s == "keep") return SizeMode::Bucket;
  return std::nullopt;
}
std::optional<Background> parse_background(std::string_view s) {
  if (s == "white") return Background::White;
  if (s == "grey" || s == "gray" || s == "light grey" || s == "light-grey") return Background::LightGrey;
  return std::nullopt;
}

void to_json(nlohmann::json& j, const DatasetSettings& s) {
  j = {{"preset", to_string(s.preset)},   {"trigger", s.trigger},
       {"repeats", s.repeats},            {"epochs", s.epochs},
       {"batch_size", s.batch_size},      {"crop", to_string(s.crop)},
       {"size", to_string(s.size)},       {"resolution", s.resolution},
       {"background", to_string(s.background)}, {"center_subject", s.center_subject},
       {"margin", s.margin},              {"flip", s.flip},
       {"face_enhance", s.face_enhance}};
}

void from_json(const nlohmann::json& j, DatasetSettings& s) {
  if (!j.is_object()) throw Error(ErrorKind::InvalidArgument, "dataset settings must be a JSON object");
  const auto text = [&](const char* key) -> std::optional<std::string> {
    if (!j.contains(key)) return std::nullopt;
    if (!j[key].is_string()) throw Error(ErrorKind::InvalidArgument, std::string("setting '") + key + "' must be text");
    return j[key].get<std::string>();
  };
  const auto choice = [&](const char* key, auto parse, auto& field, const char* allowed) {
    if (auto v = text(key)) {
      auto parsed = parse(*v);
      if (!parsed)
        throw Error(ErrorKind::InvalidArgument, std::string("setting '") + key + "' is '" + *v + "'; use " + allowed);
      field = *parsed;
    }
  };
  // A preset sets the defaults first; explicit keys override them.
  if (auto p = text("preset")) {
    auto preset = parse_preset(*p);
    if (!preset)
      throw Error(ErrorKind::InvalidArgument, "preset '" + *p + "' is unknown; use product, character, anime, style or custom");
    s = preset_settings(*preset, s.trigger);
  }
  if (auto t = text("trigger")) s.trigger = *t;
  const auto integer = [&](const char* key, int& field) {
    if (!j.contains(key)) return;
    if (!j[key].is_number_integer()) throw Error(ErrorKind::InvalidArgument, std::string("setting '") + key + "' must be a whole number");
    field = j[key].get<int>();
  };
  const auto boolean = [&](const char* key, bool& field) {
    if (!j.contains(key)) return;
    if (!j[key].is_boolean()) throw Error(ErrorKind::InvalidArgument, std::string("setting '") + key + "' must be true or false");
    field = j[key].get<bool>();
  };
  integer("repeats", s.repeats);
  integer("epochs", s.epochs);
  integer("batch_size", s.batch_size);
  integer("resolution", s.resolution);
  choice("crop", parse_crop_mode, s.crop, "center, focus or face");
  choice("size", parse_size_mode, s.size, "square or bucket");
  choice("background", parse_background, s.background, "white or grey");
  boolean("center_subject", s.center_subject);
  boolean("flip", s.flip);
  boolean("face_enhance", s.face_enhance);
  if (j.contains("margin")) {
    if (!j["margin"].is_number()) throw Error(ErrorKind::InvalidArgument, "setting 'margin' must be a number");
    s.margin = j["margin"].get<double>();
  }
}

}  // namespace kiln::studio
