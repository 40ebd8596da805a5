#pragma once
// Kiln Mini's object shapes (internal to scene_generator): one drawing per object class and the
// product, built from scene_draw's lathe, faces and ellipses.
#include <string>

#include <opencv2/core.hpp>

#include "studio/mini/scene_draw.h"

namespace kiln::studio::mini::detail {

struct Placement {
  cv::Point2d base;   // bottom centre, supersampled px
  double height = 1;  // object height, px
  double elevation = 0.25;
  double yaw = 30;    // degrees
  int variant = 0;
};

// Draws `object` ("bottle", "jar", …) with `body` as its main paint. Returns its width in px.
double draw_object(Layer& layer, Shader& shader, const std::string& object, const Paint& body, const Placement& at,
                   cv::RNG& rng);

// Kiln's sample product: a teal hexagonal tin, a yellow star on its front, a cork lid.
double draw_product(Layer& layer, Shader& shader, const Placement& at, cv::Vec3d teal, cv::RNG& rng);

}  // namespace kiln::studio::mini::detail
