#include "studio/dataset/sharpness.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "studio/image.h"

namespace kiln::studio {
namespace {

// Chosen on the calibration set (tests/calibration): below these, JPEG blocks, sensor noise and
// paper texture would count as edges.
constexpr double kPreBlur = 0.8;        // σ in analysis px, so noise does not end a walk early
constexpr float kMinSlope = 2.0f;       // grey levels per px at the edge point
constexpr float kMinRise = 24.0f;       // grey levels from one side of the edge to the other
constexpr float kTolerance = 1.5f;      // grey levels a walk forgives before it stops
constexpr float kSteeper = 1.2f;        // a walk that meets a slope this much steeper left a ripple
constexpr int kMaxWalk = 24;            // px each way: wider than any blur worth measuring
constexpr int kMinPerDirection = 16;    // edge points a direction needs to be judged
constexpr double kStrongest = 0.3;      // share of a direction's edges, by slope, that speaks for it
constexpr double kSharpEnd = 0.25;      // percentile of their widths taken
constexpr int kMaxPoints = 60000;       // above that, an even sample (speed on huge subjects)

float at(const cv::Mat& f, float x, float y) {
  const int x0 = static_cast<int>(std::floor(x)), y0 = static_cast<int>(std::floor(y));
  const float ax = x - x0, ay = y - y0;
  const float* r0 = f.ptr<float>(y0);
  const float* r1 = f.ptr<float>(y0 + 1);
  return (1 - ay) * ((1 - ax) * r0[x0] + ax * r0[x0 + 1]) + ay * ((1 - ax) * r1[x0] + ax * r1[x0 + 1]);
}

bool inside(const cv::Mat& f, float x, float y) { return x >= 0 && y >= 0 && x < f.cols - 1 && y < f.rows - 1; }

// Follows the brightness from (x, y) along (dx, dy) while it keeps rising (sign 1) or falling
// (sign -1), forgiving noise: how far it went and by how much. A walk that meets a slope much
// steeper than its start's did not start on an edge but on a ripple beside one (JPEG halos,
// texture next to a silhouette): `ripple` is set and the point is not used.
struct Walk {
  float change = 0;
  float distance = 0;
  bool ripple = false;
};

Walk walk(const cv::Mat& grey, const cv::Mat& slope, float x, float y, float dx, float dy, float sign) {
  const float start = sign * at(grey, x, y), steepest = kSteeper * at(slope, x, y);
  float best = start;
  int best_t = 0;
  for (int t = 1; t <= kMaxWalk; ++t) {
    const float px = x + t * dx, py = y + t * dy;
    if (!inside(grey, px, py)) break;
    if (at(slope, px, py) > steepest) return {0, 0, true};
    const float v = sign * at(grey, px, py);
    if (v > best) {
      best = v;
      best_t = t;
    } else if (v < best - kTolerance) {
      break;
    }
  }
  return {best - start, static_cast<float>(best_t), false};
}

// Whether the brightness stays within a third of the rise of `level` for `hold` px past `t`.
bool holds(const cv::Mat& grey, float x, float y, float dx, float dy, float sign, float t, float hold, float level,
           float rise) {
  for (float u = t + 1; u <= t + hold; u += 1) {
    const float px = x + u * dx, py = y + u * dy;
    if (!inside(grey, px, py)) return true;  // the picture ends: no evidence either way
    if (sign * at(grey, px, py) < level - rise / 3) return false;
  }
  return true;
}

double percentile(std::vector<float>& v, double p) {
  const std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

EdgeSharpness edge_sharpness(const cv::Mat& image, cv::Rect region, double scale, const cv::Mat& mask,
                             const cv::Scalar& background) {
  EdgeSharpness out;
  if (image.empty()) return out;
  const cv::Rect bounds(0, 0, image.cols, image.rows);
  region = region.area() > 0 ? (region & bounds) : bounds;
  if (region.area() == 0) return out;
  scale = std::clamp(scale, 1e-3, 1.0);
  out.scale = scale;
  // The region plus room for the walks, in source pixels.
  const int pad = static_cast<int>(std::ceil((kMaxWalk + 2) / scale));
  const cv::Rect roi = cv::Rect(region.x - pad, region.y - pad, region.width + 2 * pad, region.height + 2 * pad) & bounds;

  cv::Mat bgr = composite_over(image(roi), background), grey;
  if (bgr.channels() == 1) grey = bgr;
  else cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  grey.convertTo(grey, CV_32F);
  if (scale < 1) cv::resize(grey, grey, cv::Size(), scale, scale, cv::INTER_AREA);
  cv::GaussianBlur(grey, grey, cv::Size(0, 0), kPreBlur);
  cv::Mat gx, gy, slope;
  cv::Sobel(grey, gx, CV_32F, 1, 0, 3, 1.0 / 8);  // grey levels per px
  cv::Sobel(grey, gy, CV_32F, 0, 1, 3, 1.0 / 8);
  cv::magnitude(gx, gy, slope);

  // Where edges may be: the region (and the mask near it), at the analysis scale.
  cv::Mat allowed = cv::Mat::zeros(grey.size(), CV_8U);
  const cv::Rect inner(static_cast<int>(std::floor((region.x - roi.x) * scale)),
                       static_cast<int>(std::floor((region.y - roi.y) * scale)),
                       std::max(1, static_cast<int>(std::ceil(region.width * scale))),
                       std::max(1, static_cast<int>(std::ceil(region.height * scale))));
  allowed(inner & cv::Rect(0, 0, grey.cols, grey.rows)).setTo(255);
  if (!mask.empty()) {
    cv::Mat m;
    cv::resize(mask(roi), m, grey.size(), 0, 0, cv::INTER_NEAREST);
    cv::dilate(m, m, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(7, 7)));
    allowed &= m;
  }
  out.analysed = inner.size();

  // Edge points: the slope is a maximum along its own direction (ties kept: a ramp left by motion
  // blur has the same slope all along).
  struct Point {
    int x, y;
  };
  std::vector<Point> points;
  for (int y = 1; y < grey.rows - 1; ++y) {
    const float* s = slope.ptr<float>(y);
    const uchar* ok = allowed.ptr<uchar>(y);
    for (int x = 1; x < grey.cols - 1; ++x) {
      if (!ok[x] || s[x] < kMinSlope) continue;
      const float dx = gx.at<float>(y, x) / s[x], dy = gy.at<float>(y, x) / s[x];
      if (s[x] >= at(slope, x + dx, y + dy) && s[x] >= at(slope, x - dx, y - dy)) points.push_back({x, y});
    }
  }
  const std::size_t stride = points.size() / kMaxPoints + 1;

  // Each edge point: its width, slope and direction. Only steps count (a plateau on both sides):
  // thin lines and waves of texture are as narrow or wide as they are drawn, not as sharp as the
  // picture is.
  struct Edge {
    float slope, width;
  };
  std::array<std::vector<Edge>, 4> by_direction;
  for (std::size_t i = 0; i < points.size(); i += stride) {
    const auto [x, y] = points[i];
    const float s = slope.at<float>(y, x);
    const float dx = gx.at<float>(y, x) / s, dy = gy.at<float>(y, x) / s;
    const float fx = static_cast<float>(x), fy = static_cast<float>(y);
    const Walk up = walk(grey, slope, fx, fy, dx, dy, 1), down = walk(grey, slope, fx, fy, -dx, -dy, -1);
    if (up.ripple || down.ripple) continue;
    const float rise = up.change + down.change;
    if (rise < kMinRise) continue;
    const float hold = std::max(2.0f, 0.5f * (up.distance + down.distance));
    const float top = at(grey, fx, fy) + up.change, bottom = at(grey, fx, fy) - down.change;
    if (!holds(grey, fx, fy, dx, dy, 1, up.distance, hold, top, rise) ||
        !holds(grey, fx, fy, -dx, -dy, -1, down.distance, hold, -bottom, rise))
      continue;
    double angle = std::atan2(dy, dx);
    if (angle < 0) angle += CV_PI;
    by_direction[static_cast<std::size_t>(std::lround(angle / (CV_PI / 4))) % 4].push_back({s, rise / s});
    ++out.edges;
  }

  // Per direction, the steepest edges speak: in a sharp picture they are its crisp silhouette and
  // print; soft shading, shadows and an out-of-focus backdrop add many more, but gentle ones. Blur
  // widens the steepest edges too.
  for (int b = 0; b < 4; ++b) {
    std::vector<Edge>& v = by_direction[b];
    const std::size_t n = std::max(std::min<std::size_t>(v.size(), kMinPerDirection),
                                   static_cast<std::size_t>(kStrongest * v.size()));
    if (static_cast<int>(n) < kMinPerDirection) continue;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n - 1), v.end(),
                     [](const Edge& a, const Edge& e) { return a.slope > e.slope; });
    std::vector<float> widths;
    for (std::size_t i = 0; i < n; ++i) widths.push_back(v[i].width);
    out.widths[b] = percentile(widths, kSharpEnd);
  }

  double worst = 0, best = 0;
  int at = 0;
  for (int b = 0; b < 4; ++b) {
    const double w = out.widths[b];
    if (w <= 0) continue;
    if (w > worst) worst = w, at = b;
    if (best == 0 || w < best) best = w;
  }
  out.worst_direction = 45 * at;
  out.width = worst;
  out.best_width = best;
  return out;
}

}  // namespace kiln::studio
