#pragma once
// How an image is referenced in JSON: pixels never travel inline, only the name of a
// shared-memory block (see shared/ipc/shm_image.h) and a description that must match its header.
//   {"shm": "kiln.1000.4242.<32 hex>", "width": 512, "height": 512, "channels": 4,
//    "dtype": "u8", "stride": 2048, "premultiplied": false, "color_space": "srgb"}
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kiln::protocol {

enum class PixelType : uint32_t { U8 = 1, U16 = 2, F32 = 3 };
enum class ColorSpace : uint32_t { Unspecified = 0, SRGB = 1, LinearSRGB = 2 };

const char* to_string(PixelType type);
const char* to_string(ColorSpace space);
std::optional<PixelType> pixel_type_from_string(const std::string& s);
std::optional<ColorSpace> color_space_from_string(const std::string& s);
std::size_t bytes_per_sample(PixelType type);

struct ImageDesc {
  uint32_t width = 0, height = 0;
  uint32_t channels = 4;  // 1 (grey/mask), 3 (RGB) or 4 (RGBA)
  PixelType dtype = PixelType::U8;
  uint64_t stride = 0;    // bytes per row; 0 when creating means tightly packed
  bool premultiplied = false;
  ColorSpace color_space = ColorSpace::SRGB;

  uint64_t min_stride() const { return uint64_t(width) * channels * bytes_per_sample(dtype); }
};

struct ImageRef {
  std::string shm;
  ImageDesc desc;
};

// Structural check of a JSON image reference; returns a plain-language problem or nothing.
std::optional<std::string> check_image_ref(const nlohmann::json& j);
ImageRef image_ref_from_json(const nlohmann::json& j);  // call check_image_ref first
nlohmann::json to_json(const ImageRef& ref);

}  // namespace kiln::protocol
