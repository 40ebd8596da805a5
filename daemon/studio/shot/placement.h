#pragma once
// Where a product cut-out goes in a product shot's frame. A placement is the product layer's
// top-left corner in the output and the scale it is drawn at, as hosts place their own layer:
// the layer's (x, y) is its top-left pixel, whatever transparent margin the layer has.
#include <string>

#include <opencv2/core.hpp>

namespace kiln::studio::shot {

struct Placement {
  int x = 0, y = 0;   // top-left of the placed product layer in the frame (may be < 0 when the
                      // layer's transparent margin hangs outside)
  double scale = 1;   // 1 keeps the product's pixels 1:1
  int width = 0, height = 0;  // the placed layer's size: round(product size · scale)
};

struct AutoPlacement {
  double fill = 0.5;     // the product's visible extent covers this fraction of the frame's width or
                         // height, whichever it reaches first
  double ground = 0.9;   // the bottom of the visible product rests on this line (fraction of the height)
};

// The box of pixels whose alpha is above 0 (empty when there are none). alpha: 8-bit, one channel.
cv::Rect visible_bounds(const cv::Mat& alpha);

// Scaled to `fill`, centred horizontally, resting on the ground line (moved up if it would stick out
// below, down if above). `visible` is visible_bounds() of the product's alpha.
Placement auto_placement(cv::Size product, const cv::Rect& visible, cv::Size frame, const AutoPlacement& options);

// An explicit placement: the layer's top-left at (x, y), drawn at `scale`.
Placement explicit_placement(cv::Size product, int x, int y, double scale);

// Throws Error(InvalidArgument) with a plain message when the placed product's visible pixels do not
// all lie inside the frame, or the product is larger than the frame at that scale.
void check_placement(const Placement& placement, cv::Size product, const cv::Rect& visible, cv::Size frame);

std::string describe(const Placement& placement);  // "x 12, y 40, scale 0.5 (256x384 px)"

}  // namespace kiln::studio::shot
