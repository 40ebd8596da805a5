#pragma once
// Kiln Mini's drawing kit (internal to scene_generator): lighting, material shading tables, an
// object layer with lathe (solid of revolution) and flat-face drawing, the texture bank, the
// background and surface, contact shadows and compositing. All sizes are in supersampled pixels.
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <opencv2/core.hpp>

#include "studio/mini/scene_spec.h"

namespace kiln::studio::mini::detail {

struct Lighting {
  cv::Vec3d dir;              // toward the key light: x right, y up, z toward the viewer (unit)
  double ambient = 0.35, diffuse = 0.8, wrap = 0.2;
  double specular = 1.0;      // highlight strength multiplier
  cv::Scalar tint{1, 1, 1};   // BGR multipliers applied to the whole picture
  double shadow_blur = 0.12;  // contact shadow softness, share of the object's width
  double shadow_strength = 0.45;
  double shadow_length = 0.25;  // cast shadow length, share of the object's height (sunlight: long)
  double side = -1;             // -1 light from the left, +1 from the right
};
Lighting lighting_for(const std::string& light, double side);

enum class Finish { Glass, Plastic, Metal, Ceramic, Wood, Paper, Fabric, Leather, Rubber };
Finish finish_for(const std::string& material);

struct Paint {
  cv::Vec3d bgr;  // 0..255
  Finish finish = Finish::Plastic;
};

// Shading of one surface normal, or a table of them across a cylinder, as BGRA (A < 255: glass).
class Shader {
 public:
  explicit Shader(const Lighting& lighting) : light_(lighting) {}
  cv::Vec4b at(const Paint& paint, cv::Vec3d normal) const;
  // 1×64 BGRA: left edge … right edge of a lathe row whose radius changes by `slope` per unit height.
  const cv::Mat& table(const Paint& paint, double slope);
  const Lighting& lighting() const { return light_; }

 private:
  Lighting light_;
  std::map<std::tuple<int, int, int, int, int>, cv::Mat> cache_;
};

// The object drawn alone: colour, coverage × opacity, object mask, and where it is see-through.
struct Layer {
  cv::Mat bgr, alpha, mask, glass;  // CV_8UC3, CV_8UC1 ×3
  cv::Scalar glass_tint{1, 1, 1};   // what the background seen through glass is multiplied by
  explicit Layer(int side);
  void fill_poly(const std::vector<cv::Point>& points, const cv::Vec4b& colour);
  void fill_ellipse(cv::Point2d centre, cv::Size2d axes, const cv::Vec4b& colour, double start = 0, double end = 360);
  void line(cv::Point2d a, cv::Point2d b, const cv::Vec4b& colour, int thickness);
  // Multiplies the object's colour inside `box` by a grey texture (128 = unchanged).
  void texture(const cv::Rect& box, const cv::Mat& grey);
  cv::Rect bounds() const;  // of the mask
};

// A profile point of a solid of revolution: h from 0 (bottom) up, r the radius, both in units of
// the object's height; `part` picks the paint of the segment above the point.
struct ProfilePoint {
  double h, r;
  int part;
};
struct Lathe {
  std::vector<ProfilePoint> points;  // bottom to top; equal h with growing r: a step (a lid, a shade)
  std::vector<Paint> paints;
  bool open_top = false;  // a rim and a darker inside instead of a lit top
  bool smooth = true;     // Catmull-Rom between points of one part
};
// Draws the lathe standing at `base` (bottom centre), `height` px tall, seen with `elevation`.
void draw_lathe(Layer& layer, Shader& shader, const Lathe& lathe, cv::Point2d base, double height, double elevation);

// Grey textures (CV_8UC1, 128 = 1.0), generated once: wood grain, marble veins, grass strokes,
// sand, concrete, fine fibre.
enum class Texture { Wood, Marble, Grass, Sand, Concrete, Fibre };
cv::Mat texture_crop(Texture t, cv::Size size, cv::RNG& rng);

// The picture without the object: wall or sky above the horizon, the surface below in perspective.
cv::Mat draw_background(const SceneSpec& spec, const Lighting& light, int side, cv::RNG& rng);
// A soft contact shadow (and a cast shadow for hard light) under an object of width `width` px.
void draw_shadow(cv::Mat& bgr, const Lighting& light, cv::Point2d base, double width, double height, double elevation);
// `layer` over `bgr` (tints what glass covers first).
void composite(cv::Mat& bgr, const Layer& layer);

}  // namespace kiln::studio::mini::detail
