#include "studio/mini/scene_spec.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <opencv2/imgproc.hpp>

#include "studio/error.h"

namespace kiln::studio::mini {
namespace {

struct PaletteEntry {
  const char* name;
  int r, g, b;
};

// Saturated enough to classify after shading (the shading keeps the mean of a surface near these).
constexpr PaletteEntry kPalette[] = {
    {"red", 205, 30, 35},     {"orange", 240, 125, 25}, {"yellow", 240, 205, 40}, {"green", 45, 155, 65},
    {"blue", 40, 90, 210},    {"purple", 125, 55, 175}, {"pink", 240, 130, 180},  {"white", 238, 238, 234},
    {"black", 34, 34, 38},    {"brown", 125, 75, 40},   {"grey", 128, 128, 132},
};

// The mean CIE Lab (L 0..100) of the object mask in rendered scenes, per palette colour, in palette
// order: what a "red" object averages to once shaded, lit and tinted (3000 random scenes, seeds
// 1000…3999, measured with the generator as committed beside this table). nearest_colour_name
// compares against these and against the paint itself.
constexpr float kRenderedLab[][3] = {
    {44.3f, 53.7f, 33.3f},   {60.8f, 24.3f, 54.4f},  {75.5f, -6.0f, 63.6f}, {55.2f, -41.4f, 32.0f},
    {43.7f, 13.0f, -46.1f},  {41.9f, 39.7f, -35.5f}, {64.4f, 33.3f, -3.3f}, {81.1f, -0.4f, 5.7f},
    {22.7f, 0.7f, 0.6f},     {41.4f, 14.0f, 26.0f},  {54.2f, 0.8f, 2.3f},
};
static_assert(sizeof(kRenderedLab) / sizeof(kRenderedLab[0]) == sizeof(kPalette) / sizeof(kPalette[0]));

const std::map<std::string, std::vector<std::string>>& material_table() {
  static const std::map<std::string, std::vector<std::string>> table{
      {"bottle", {"glass", "plastic", "metal", "ceramic"}},
      {"jar", {"glass", "plastic", "ceramic"}},
      {"box", {"wooden", "paper", "plastic", "metal"}},
      {"mug", {"ceramic", "metal", "plastic", "glass"}},
      {"sneaker", {"fabric", "leather", "plastic"}},
      {"lamp", {"metal", "ceramic", "plastic", "paper"}},
      {"vase", {"glass", "ceramic", "metal", "wooden"}},
      {"can", {"metal", "plastic"}},
      {"ball", {"plastic", "rubber", "glass", "leather"}},
      {"cup", {"paper", "plastic", "ceramic", "glass"}},
      {"tin", {"metal"}},
  };
  return table;
}

// The surface as a caption names it after "on".
std::string surface_phrase(const std::string& surface) {
  if (surface == "grass" || surface == "sand") return surface;
  if (surface == "beach") return "the beach";
  return "a " + surface;
}

std::string with_article(const std::string& words) {
  const char c = words.empty() ? 'x' : words[0];
  const bool vowel = c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
  return (vowel ? "an " : "a ") + words;
}

cv::Vec3f to_lab(const cv::Scalar& bgr) {
  cv::Mat px(1, 1, CV_32FC3, cv::Scalar(bgr[0] / 255.0, bgr[1] / 255.0, bgr[2] / 255.0)), lab;
  cv::cvtColor(px, lab, cv::COLOR_BGR2Lab);
  return lab.at<cv::Vec3f>(0, 0);
}

template <typename T>
const T& pick(cv::RNG& rng, const std::vector<T>& v) {
  return v[static_cast<size_t>(rng.uniform(0, static_cast<int>(v.size())))];
}

}  // namespace

uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

const std::vector<std::string>& object_classes() {
  static const std::vector<std::string> v{"bottle", "jar", "box", "mug", "sneaker", "lamp", "vase", "can", "ball", "cup"};
  return v;
}

const std::vector<std::string>& colour_names() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> names;
    for (const auto& e : kPalette) names.emplace_back(e.name);
    return names;
  }();
  return v;
}

const std::vector<std::string>& material_names() {
  static const std::vector<std::string> v{"glass", "plastic", "metal", "ceramic", "wooden",
                                          "paper", "fabric",  "leather", "rubber"};
  return v;
}

const std::vector<std::string>& surface_names() {
  static const std::vector<std::string> v{"wooden table", "marble table", "concrete floor", "grass",
                                          "sand",         "beach",        "studio sweep"};
  return v;
}

const std::vector<std::string>& light_names() {
  static const std::vector<std::string> v{"studio light", "soft light", "sunlight", "warm light"};
  return v;
}

const std::vector<std::string>& materials_for(const std::string& object) {
  const auto& table = material_table();
  const auto it = table.find(object);
  if (it == table.end())
    throw Error(ErrorKind::InvalidArgument, "'" + object + "' is not a Kiln Mini object class; use one of object_classes().");
  return it->second;
}

cv::Vec3b palette_bgr(const std::string& colour) {
  if (colour == "teal") return {150, 140, 20};  // the product's own colour, not a palette entry
  for (const auto& e : kPalette)
    if (colour == e.name) return {static_cast<uchar>(e.b), static_cast<uchar>(e.g), static_cast<uchar>(e.r)};
  throw Error(ErrorKind::InvalidArgument, "'" + colour + "' is not a Kiln Mini colour; use one of colour_names().");
}

std::string nearest_colour_name(const cv::Scalar& mean_bgr) {
  static const std::vector<std::pair<size_t, cv::Vec3f>> refs = [] {
    std::vector<std::pair<size_t, cv::Vec3f>> v;
    for (size_t i = 0; i < std::size(kPalette); ++i) {
      v.emplace_back(i, to_lab(cv::Scalar(kPalette[i].b, kPalette[i].g, kPalette[i].r)));
      v.emplace_back(i, cv::Vec3f(kRenderedLab[i][0], kRenderedLab[i][1], kRenderedLab[i][2]));
    }
    return v;
  }();
  const cv::Vec3f lab = to_lab(mean_bgr);
  size_t best = 0;
  double best_d = 1e30;
  for (const auto& [i, ref] : refs) {
    const double dl = lab[0] - ref[0], da = lab[1] - ref[1], db = lab[2] - ref[2];
    const double d = dl * dl + da * da + db * db;
    if (d < best_d) best_d = d, best = i;
  }
  return kPalette[best].name;
}

const std::string& product_trigger() {
  static const std::string trigger = "kilntin";
  return trigger;
}

SceneSpec random_spec(uint64_t seed, const GeneratorOptions& options) {
  cv::RNG rng(mix_seed(seed, 1));
  SceneSpec s;
  s.surface = pick(rng, surface_names());
  s.light = pick(rng, light_names());
  s.x = rng.uniform(0.36, 0.64);
  s.height = rng.uniform(0.38, 0.56);
  s.yaw = rng.uniform(15.0, 60.0) * (rng.uniform(0, 2) ? 1 : -1);
  s.elevation = rng.uniform(0.14, 0.36);
  s.horizon = rng.uniform(0.34, 0.52);
  s.light_side = rng.uniform(0, 2) ? 1 : -1;
  s.variant = rng.uniform(0, 4);
  if (options.allow_product && rng.uniform(0, 12) == 0) {
    SceneSpec p = product_spec(s.surface, s.light);
    p.x = s.x, p.yaw = s.yaw, p.elevation = s.elevation, p.horizon = s.horizon, p.light_side = s.light_side;
    return p;
  }
  s.object = pick(rng, object_classes());
  s.colour = pick(rng, colour_names());
  s.material = pick(rng, materials_for(s.object));
  if (s.object == "bottle" || s.object == "vase" || s.object == "lamp") s.height = rng.uniform(0.46, 0.6);  // tall, thin
  if (s.object == "sneaker") s.height = rng.uniform(0.26, 0.36);  // long and low: the width is what fills
  if (s.object == "box" || s.object == "ball") s.height = rng.uniform(0.32, 0.5);
  return s;
}

SceneSpec product_photo_spec(uint64_t seed, const std::vector<std::string>& surfaces) {
  std::string known;
  for (const auto& name : surface_names()) known += (known.empty() ? "" : ", ") + name;
  if (surfaces.empty())
    throw Error(ErrorKind::InvalidArgument, "A product photo needs at least one surface to stand on; use some of: " + known + ".");
  for (const auto& name : surfaces)
    if (std::find(surface_names().begin(), surface_names().end(), name) == surface_names().end())
      throw Error(ErrorKind::InvalidArgument, "'" + name + "' is not a Kiln Mini surface; use one of: " + known + ".");
  GeneratorOptions any;
  const SceneSpec placed = random_spec(seed, any);  // the same placement and camera ranges as every scene
  cv::RNG rng(mix_seed(seed, 5));
  SceneSpec p = product_spec(pick(rng, surfaces), pick(rng, light_names()));
  p.x = placed.x, p.yaw = placed.yaw, p.elevation = placed.elevation, p.horizon = placed.horizon;
  p.light_side = placed.light_side;
  return p;
}

const std::vector<std::string>& sample_photo_surfaces() {
  static const std::vector<std::string> v{"wooden table", "marble table", "concrete floor", "studio sweep"};
  return v;
}

SceneSpec product_spec(const std::string& surface, const std::string& light) {
  SceneSpec s;
  s.object = "tin";
  s.colour = "teal";
  s.material = "metal";
  s.surface = surface;
  s.light = light;
  s.product = true;
  s.height = 0.46;
  s.yaw = 20;
  return s;
}

std::string caption_for(const SceneSpec& spec, uint64_t seed) {
  cv::RNG rng(mix_seed(seed, 2));
  const std::string& c = spec.colour;
  const std::string& m = spec.material;
  const std::string& o = spec.object;
  const std::string on = surface_phrase(spec.surface);
  const std::string& l = spec.light;
  if (spec.product) {
    const std::string t = product_trigger() + " can";  // trigger and the nearest class word users would add
    switch (rng.uniform(0, 4)) {
      case 0: return "a photo of a " + t + " on " + on + ", " + l;
      case 1: return t + ", " + spec.surface + ", " + l;
      case 2: return "a " + t + " on " + on;
      default: return "product photo of a " + t + " on " + on + ", " + l;
    }
  }
  switch (rng.uniform(0, 7)) {
    case 0: return with_article(c + " " + m + " " + o) + " on " + on + ", " + l;
    case 1: return c + " " + o + ", " + m + ", " + spec.surface;
    case 2: return "photo of " + with_article(c + " " + m + " " + o) + " on " + on + ", " + l;
    case 3: return c + " " + m + " " + o + ", " + spec.surface + ", " + l;
    case 4: return with_article(m + " " + o) + " in " + c + " on " + on;
    case 5: return "product photo, " + c + " " + o + ", " + m + ", " + spec.surface + ", " + l;
    default: return with_article(c + " " + o) + " on " + on + ", " + m + ", " + l;
  }
}

}  // namespace kiln::studio::mini
