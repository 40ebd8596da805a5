#include "studio/mini/scene_generator.h"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "studio/error.h"
#include "studio/mini/scene_draw.h"
#include "studio/mini/scene_objects.h"

namespace kiln::studio::mini {
namespace {

void require(const std::vector<std::string>& list, const std::string& value, const char* what) {
  if (std::find(list.begin(), list.end(), value) == list.end())
    throw Error(ErrorKind::InvalidArgument,
                std::string("'") + value + "' is not a Kiln Mini " + what + "; use one of the names in scene_spec.h.");
}

// The object's width for its height, to keep it inside the picture.
double width_ratio(const std::string& object) {
  if (object == "sneaker") return 2.7;
  if (object == "box") return 1.5;
  if (object == "mug") return 1.1;
  return 0.85;
}

cv::Vec3d jittered(cv::Vec3b c, cv::RNG& rng) {
  const double gain = rng.uniform(0.92, 1.06);
  cv::Vec3d out;
  for (int i = 0; i < 3; ++i) out[i] = std::min(250.0, std::max(8.0, c[i] * gain + rng.uniform(-10.0, 10.0)));
  return out;
}

cv::Mat area_down(const cv::Mat& m, int size) {
  cv::Mat out;
  cv::resize(m, out, cv::Size(size, size), 0, 0, cv::INTER_AREA);
  return out;
}

}  // namespace

Scene render_scene(const SceneSpec& spec, uint64_t seed, const GeneratorOptions& options) {
  if (options.size < 8 || options.supersample < 1 || options.size * options.supersample > 4096)
    throw Error(ErrorKind::InvalidArgument, "Kiln Mini scenes need a size of 8 … 4096 px (size × supersample); got " +
                                                std::to_string(options.size) + " × " + std::to_string(options.supersample) + ".");
  if (!spec.product) {
    require(object_classes(), spec.object, "object class");
    require(colour_names(), spec.colour, "colour");
    require(materials_for(spec.object), spec.material, "material for this object");
  }
  require(surface_names(), spec.surface, "surface");
  require(light_names(), spec.light, "light");

  const int S = options.size * options.supersample;
  cv::RNG rng(mix_seed(seed, 3));
  SceneSpec s = spec;
  s.x += rng.uniform(-0.04, 0.04);
  s.height = std::min(0.62, std::max(0.2, s.height * rng.uniform(0.93, 1.07)));
  s.yaw += rng.uniform(-8.0, 8.0);
  s.elevation = std::min(0.45, std::max(0.08, s.elevation + rng.uniform(-0.03, 0.03)));
  s.horizon = std::min(0.6, std::max(0.25, s.horizon + rng.uniform(-0.03, 0.03)));

  const detail::Lighting light = detail::lighting_for(s.light, s.light_side);
  cv::Mat image = detail::draw_background(s, light, S, rng);

  detail::Placement at;
  // spec.height is the whole object as seen: a lathe's top and bottom ellipses add to its height.
  const bool flat = s.object == "sneaker" || s.object == "box" || s.object == "ball";
  at.height = s.height * S / (flat && !s.product ? 1.0 : 1 + 0.8 * s.elevation);
  at.elevation = s.elevation;
  at.yaw = s.yaw;
  at.variant = std::abs(s.variant) % 4;
  const double half_w = 0.5 * width_ratio(s.product ? "tin" : s.object) * at.height;
  const double hy = s.horizon * S;
  const double lo = std::max(hy + 0.12 * S, at.height + 0.05 * S), hi = 0.95 * S - at.height * s.elevation * 0.4;
  at.base.y = std::min(hi, std::max(lo, hy + (S - hy) * rng.uniform(0.5, 0.8)));
  at.base.x = std::min(S - half_w - 0.03 * S, std::max(half_w + 0.03 * S, s.x * S));

  detail::Layer layer(S);
  detail::Shader shader(light);
  double width;
  if (s.product) {
    cv::Vec3d teal = jittered(palette_bgr("teal"), rng);
    width = detail::draw_product(layer, shader, at, teal, rng);
  } else {
    const detail::Paint body{jittered(palette_bgr(s.colour), rng), detail::finish_for(s.material)};
    width = detail::draw_object(layer, shader, s.object, body, at, rng);
  }
  const double shadow_lift = (s.object == "box" || s.product) ? 0.25 * width * s.elevation : 0;
  detail::draw_shadow(image, light, at.base - cv::Point2d(0, shadow_lift), width, at.height, s.elevation);
  detail::composite(image, layer);
  cv::multiply(image, light.tint, image);

  Scene out;
  out.image = area_down(image, options.size);
  out.object_mask = area_down(layer.mask, options.size) > 127;
  out.caption = caption_for(spec, seed);
  out.spec = spec;
  return out;
}

Scene render_product_layer(uint64_t seed, int size) {
  if (size < 8 || size > 2048)
    throw Error(ErrorKind::InvalidArgument, "A product layer needs a size of 8 … 2048 px; got " + std::to_string(size) + ".");
  const int S = size * 4;
  cv::RNG rng(mix_seed(seed, 4));
  detail::Lighting light = detail::lighting_for("studio light", rng.uniform(0, 2) ? 1 : -1);
  detail::Shader shader(light);
  detail::Layer layer(S);
  detail::Placement at;
  at.height = 0.74 * S;
  at.base = {S * (0.5 + rng.uniform(-0.03, 0.03)), S * 0.86};
  at.elevation = rng.uniform(0.18, 0.3);
  at.yaw = rng.uniform(-25.0, 25.0);
  detail::draw_product(layer, shader, at, jittered(palette_bgr("teal"), rng), rng);

  // Average colour and coverage down separately, then un-premultiply (no dark fringe).
  cv::Mat premul;
  cv::Mat a3;
  cv::cvtColor(layer.alpha, a3, cv::COLOR_GRAY2BGR);
  cv::multiply(layer.bgr, a3, premul, 1.0 / 255);
  cv::Mat colour = area_down(premul, size), alpha = area_down(layer.alpha, size);
  cv::Mat alpha3, straight;
  cv::cvtColor(alpha, alpha3, cv::COLOR_GRAY2BGR);
  cv::divide(colour, alpha3, straight, 255.0);
  std::vector<cv::Mat> ch;
  cv::split(straight, ch);
  ch.push_back(alpha);
  Scene out;
  cv::merge(ch, out.image);
  out.object_mask = alpha > 127;
  out.spec = product_spec("studio sweep", "studio light");
  out.caption = product_trigger();
  return out;
}

}  // namespace kiln::studio::mini
