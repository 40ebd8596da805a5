#include "studio/shot/placement.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <opencv2/imgproc.hpp>

#include "studio/error.h"

namespace kiln::studio::shot {

namespace {
[[noreturn]] void invalid(const std::string& message) { throw Error(ErrorKind::InvalidArgument, message); }

std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

int scaled(int size, double scale) { return std::max(1, static_cast<int>(std::lround(size * scale))); }

// The visible box of the product after scaling its layer to `placement`, in frame coordinates.
cv::Rect placed_visible(const Placement& p, cv::Size product, const cv::Rect& visible) {
  const double sx = double(p.width) / product.width, sy = double(p.height) / product.height;
  const int x0 = p.x + static_cast<int>(std::floor(visible.x * sx)), y0 = p.y + static_cast<int>(std::floor(visible.y * sy));
  const int x1 = p.x + static_cast<int>(std::ceil(visible.br().x * sx)), y1 = p.y + static_cast<int>(std::ceil(visible.br().y * sy));
  return {x0, y0, x1 - x0, y1 - y0};
}
}  // namespace

cv::Rect visible_bounds(const cv::Mat& alpha) {
  CV_Assert(alpha.type() == CV_8UC1);
  std::vector<cv::Point> points;
  cv::findNonZero(alpha, points);
  return points.empty() ? cv::Rect() : cv::boundingRect(points);
}

Placement auto_placement(cv::Size product, const cv::Rect& visible, cv::Size frame, const AutoPlacement& o) {
  if (!(o.fill > 0 && o.fill <= 1)) invalid("'fill' must be above 0 and at most 1");
  if (!(o.ground > 0 && o.ground <= 1)) invalid("'ground' must be above 0 and at most 1");
  if (visible.empty()) invalid("the product has no visible pixel (its alpha is 0 everywhere)");
  Placement p;
  p.scale = o.fill * std::min(double(frame.width) / visible.width, double(frame.height) / visible.height);
  p.width = scaled(product.width, p.scale);
  p.height = scaled(product.height, p.scale);
  const cv::Rect at_origin = placed_visible(p, product, visible);
  // Centred horizontally; the visible bottom on the ground line, kept inside the frame.
  p.x = (frame.width - at_origin.width) / 2 - at_origin.x;
  const int ground = static_cast<int>(std::lround(o.ground * frame.height));
  const int top = std::clamp(ground - at_origin.height, 0, std::max(0, frame.height - at_origin.height));
  p.y = top - at_origin.y;
  return p;
}

Placement explicit_placement(cv::Size product, int x, int y, double scale) {
  if (!(scale > 0 && scale <= 64)) invalid("'scale' must be above 0 and at most 64, got " + std::to_string(scale));
  Placement p;
  p.x = x;
  p.y = y;
  p.scale = scale;
  p.width = scaled(product.width, scale);
  p.height = scaled(product.height, scale);
  return p;
}

void check_placement(const Placement& p, cv::Size product, const cv::Rect& visible, cv::Size frame) {
  if (visible.empty()) invalid("the product has no visible pixel (its alpha is 0 everywhere)");
  const cv::Rect box = placed_visible(p, product, visible);
  if (box.width > frame.width || box.height > frame.height)
    invalid("the product is " + std::to_string(box.width) + "x" + std::to_string(box.height) + " px at scale " +
            number(p.scale) + ", larger than the " + std::to_string(frame.width) +
            "x" + std::to_string(frame.height) + " frame; use a smaller scale or a larger size");
  if (box.x < 0 || box.y < 0 || box.br().x > frame.width || box.br().y > frame.height)
    invalid("the product placed at " + describe(p) + " covers pixels " + std::to_string(box.x) + ".." +
            std::to_string(box.br().x - 1) + " x " + std::to_string(box.y) + ".." + std::to_string(box.br().y - 1) +
            ", outside the " + std::to_string(frame.width) + "x" + std::to_string(frame.height) +
            " frame; move it inside (its visible pixels must all be in the frame)");
}

std::string describe(const Placement& p) {
  return "x " + std::to_string(p.x) + ", y " + std::to_string(p.y) + ", scale " + number(p.scale) + " (" +
         std::to_string(p.width) + "x" + std::to_string(p.height) + " px)";
}

}  // namespace kiln::studio::shot
