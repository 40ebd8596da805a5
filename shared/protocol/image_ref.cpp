#include "protocol/image_ref.h"

namespace kiln::protocol {

const char* to_string(PixelType type) {
  switch (type) {
    case PixelType::U8: return "u8";
    case PixelType::U16: return "u16";
    case PixelType::F32: return "f32";
  }
  return "?";
}

const char* to_string(ColorSpace space) {
  switch (space) {
    case ColorSpace::Unspecified: return "unspecified";
    case ColorSpace::SRGB: return "srgb";
    case ColorSpace::LinearSRGB: return "linear-srgb";
  }
  return "?";
}

std::optional<PixelType> pixel_type_from_string(const std::string& s) {
  if (s == "u8") return PixelType::U8;
  if (s == "u16") return PixelType::U16;
  if (s == "f32") return PixelType::F32;
  return std::nullopt;
}

std::optional<ColorSpace> color_space_from_string(const std::string& s) {
  if (s == "unspecified") return ColorSpace::Unspecified;
  if (s == "srgb") return ColorSpace::SRGB;
  if (s == "linear-srgb") return ColorSpace::LinearSRGB;
  return std::nullopt;
}

std::size_t bytes_per_sample(PixelType type) {
  switch (type) {
    case PixelType::U8: return 1;
    case PixelType::U16: return 2;
    case PixelType::F32: return 4;
  }
  return 1;
}

std::optional<std::string> check_image_ref(const nlohmann::json& j) {
  if (!j.is_object()) return "an image reference must be an object";
  auto need_uint = [&](const char* key) -> std::optional<std::string> {
    auto it = j.find(key);
    if (it == j.end()) return std::string("missing '") + key + "'";
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0))
      return std::string("'") + key + "' must be a non-negative integer";
    return std::nullopt;
  };
  auto shm = j.find("shm");
  if (shm == j.end() || !shm->is_string()) return "missing 'shm' (the shared-memory block's name)";
  for (const char* key : {"width", "height", "channels", "stride"})
    if (auto problem = need_uint(key)) return problem;
  auto dtype = j.find("dtype");
  if (dtype == j.end() || !dtype->is_string() || !pixel_type_from_string(dtype->get<std::string>()))
    return "'dtype' must be \"u8\", \"u16\" or \"f32\"";
  if (auto p = j.find("premultiplied"); p != j.end() && !p->is_boolean()) return "'premultiplied' must be true or false";
  if (auto c = j.find("color_space"); c != j.end() && (!c->is_string() || !color_space_from_string(c->get<std::string>())))
    return "'color_space' must be \"srgb\", \"linear-srgb\" or \"unspecified\"";
  const uint64_t channels = j.at("channels").get<uint64_t>();
  if (channels != 1 && channels != 3 && channels != 4) return "'channels' must be 1, 3 or 4";
  return std::nullopt;
}

ImageRef image_ref_from_json(const nlohmann::json& j) {
  ImageRef ref;
  ref.shm = j.at("shm").get<std::string>();
  // Values beyond 32 bits are clamped so that the header comparison later reports the mismatch.
  auto u32 = [&](const char* key) {
    uint64_t v = j.at(key).get<uint64_t>();
    return static_cast<uint32_t>(v > 0xffffffffu ? 0xffffffffu : v);
  };
  ref.desc.width = u32("width");
  ref.desc.height = u32("height");
  ref.desc.channels = u32("channels");
  ref.desc.stride = j.at("stride").get<uint64_t>();
  ref.desc.dtype = *pixel_type_from_string(j.at("dtype").get<std::string>());
  ref.desc.premultiplied = j.value("premultiplied", false);
  ref.desc.color_space = color_space_from_string(j.value("color_space", std::string("srgb"))).value_or(ColorSpace::SRGB);
  return ref;
}

nlohmann::json to_json(const ImageRef& ref) {
  return {{"shm", ref.shm},
          {"width", ref.desc.width},
          {"height", ref.desc.height},
          {"channels", ref.desc.channels},
          {"dtype", to_string(ref.desc.dtype)},
          {"stride", ref.desc.stride},
          {"premultiplied", ref.desc.premultiplied},
          {"color_space", to_string(ref.desc.color_space)}};
}

}  // namespace kiln::protocol
