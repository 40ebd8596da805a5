#include "studio/dataset/subject.h"

#include <algorithm>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "studio/image.h"

namespace kiln::studio {
namespace {

constexpr double kAlphaThreshold = 16;  // of 255
// A "subject" covering nearly everything is no subject at all (busy scenes, full-frame textures);
// one under 1 % of the picture is a speck.
constexpr double kMaxShare = 0.9;
constexpr double kMinShare = 0.01;
constexpr double kFocusShare = 0.3;  // of the strong end of the focus map: in focus

cv::Rect scale_rect(const cv::Rect& r, double s, const cv::Size& bounds) {
  cv::Rect out(static_cast<int>(std::floor(r.x * s)), static_cast<int>(std::floor(r.y * s)),
               static_cast<int>(std::ceil(r.width * s)), static_cast<int>(std::ceil(r.height * s)));
  return out & cv::Rect(0, 0, bounds.width, bounds.height);
}

cv::Vec3f border_median(const cv::Mat& lab) {
  const int band = std::max(1, std::min(lab.cols, lab.rows) / 32);
  std::vector<cv::Mat> parts = {lab.rowRange(0, band), lab.rowRange(lab.rows - band, lab.rows),
                                lab.colRange(0, band), lab.colRange(lab.cols - band, lab.cols)};
  cv::Vec3f median;
  for (int c = 0; c < 3; ++c) {
    std::vector<float> values;
    for (const cv::Mat& p : parts) {
      cv::Mat channel;
      cv::extractChannel(p, channel, c);
      channel = channel.clone().reshape(1, 1);
      values.insert(values.end(), channel.begin<float>(), channel.end<float>());
    }
    std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
    median[c] = values[values.size() / 2];
  }
  return median;
}

// Median of each channel of `pixels` (CV_32FC3, any shape).
cv::Vec3f channel_medians(const cv::Mat& pixels) {
  cv::Mat flat = pixels.clone().reshape(3, 1);
  cv::Vec3f out;
  for (int c = 0; c < 3; ++c) {
    cv::Mat channel;
    cv::extractChannel(flat, channel, c);
    std::vector<float> v(channel.begin<float>(), channel.end<float>());
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    out[c] = v[v.size() / 2];
  }
  return out;
}

// One backdrop (perhaps with a gentle gradient) rather than a scene: the top and bottom bands agree.
bool one_backdrop_lab(const cv::Mat& lab) {
  const int band = std::max(1, std::min(lab.cols, lab.rows) / 32);
  const cv::Vec3f top = channel_medians(lab.rowRange(0, band)), bottom = channel_medians(lab.rowRange(lab.rows - band, lab.rows));
  return cv::norm(top - bottom) < 15;  // Lab units: one backdrop, perhaps with a gentle gradient
}

// `image` (BGR or BGRA) scaled to at most 256 px and lightly blurred: what saliency is judged on.
cv::Mat small_bgr(const cv::Mat& image) {
  const double scale = std::min(1.0, 256.0 / std::max(image.cols, image.rows));
  cv::Mat small;
  cv::resize(to_bgr(image), small, cv::Size(), scale, scale, cv::INTER_AREA);
  if (small.cols >= 8 && small.rows >= 8) cv::GaussianBlur(small, small, cv::Size(3, 3), 0);
  return small;
}

cv::Mat float_lab(const cv::Mat& bgr) {
  cv::Mat lab;
  bgr.convertTo(lab, CV_32F, 1.0 / 255.0);
  cv::cvtColor(lab, lab, cv::COLOR_BGR2Lab);
  return lab;
}

// What the subject stands out from, per pixel. On one backdrop: the border's median colour. In a
// scene, where the top of the picture (a wall, a sky) and the bottom (a table, grass) differ, no one
// colour is the background: each row's reference is what its left and right edges show at that
// height, so the horizon and the surface are background and only what stands in front of them is not.
cv::Mat background_reference(const cv::Mat& lab) {
  const int band = std::max(1, std::min(lab.cols, lab.rows) / 32);
  if (one_backdrop_lab(lab)) {
    const cv::Vec3f bg = border_median(lab);
    return cv::Mat(lab.size(), CV_32FC3, cv::Scalar(bg[0], bg[1], bg[2]));
  }
  cv::Mat rows(lab.rows, 1, CV_32FC3);
  for (int y = 0; y < lab.rows; ++y) {
    cv::Mat edges;
    cv::hconcat(lab.row(y).colRange(0, band), lab.row(y).colRange(lab.cols - band, lab.cols), edges);
    rows.at<cv::Vec3f>(y, 0) = channel_medians(edges);
  }
  cv::medianBlur(rows, rows, 5);  // texture (wood grain, grass) is not an edge between rows
  cv::Mat out;
  cv::repeat(rows, 1, lab.cols, out);
  return out;
}

// The box of the salient regions of `saliency` (0..1) split at `threshold` (Otsu's when
// negative): an opening against specks, then the largest region and every region at least a
// tenth of its size (subjects in several pieces).
cv::Rect salient_box(const cv::Mat& saliency, double threshold = -1) {
  cv::Mat saliency8, mask;
  saliency.convertTo(saliency8, CV_8U, 255.0);
  if (threshold < 0) {
    cv::threshold(saliency8, mask, 0, 255, cv::THRESH_BINARY | cv::THRESH_OTSU);
    cv::morphologyEx(mask, mask, cv::MORPH_OPEN, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(3, 3)));
  } else {
    // Outlines: closed so that the edges of one object join into one region.
    mask = saliency8 > 255 * threshold;
    cv::morphologyEx(mask, mask, cv::MORPH_CLOSE, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(5, 5)));
  }
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8);
  // Regions are compared by their pixels, outlines by the area they enclose.
  const auto size_of = [&](int i) {
    return threshold < 0 ? stats.at<int>(i, cv::CC_STAT_AREA)
                         : stats.at<int>(i, cv::CC_STAT_WIDTH) * stats.at<int>(i, cv::CC_STAT_HEIGHT);
  };
  int largest = 0;
  for (int i = 1; i < n; ++i) largest = std::max(largest, size_of(i));
  cv::Rect box;
  if (largest == 0) return box;
  for (int i = 1; i < n; ++i) {
    if (size_of(i) * 10 < largest) continue;
    const cv::Rect r(stats.at<int>(i, cv::CC_STAT_LEFT), stats.at<int>(i, cv::CC_STAT_TOP),
                     stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT));
    box = box.area() == 0 ? r : (box | r);
  }
  return box;
}

Subject from_saliency(const cv::Mat& image) {
  const Subject none{cv::Rect(0, 0, image.cols, image.rows), SubjectSource::None};
  const cv::Mat small = small_bgr(image);
  if (small.cols < 8 || small.rows < 8) return none;
  const cv::Mat lab = float_lab(small);
  cv::Mat diff = lab - background_reference(lab);
  cv::Mat distance;
  cv::multiply(diff, diff, diff);
  cv::transform(diff, distance, cv::Matx13f(1, 1, 1));
  cv::sqrt(distance, distance);

  cv::Mat grey, gx, gy, gradient;
  cv::cvtColor(small, grey, cv::COLOR_BGR2GRAY);
  cv::Sobel(grey, gx, CV_32F, 1, 0);
  cv::Sobel(grey, gy, CV_32F, 0, 1);
  cv::magnitude(gx, gy, gradient);

  double max_distance, max_gradient;
  cv::minMaxLoc(distance, nullptr, &max_distance);
  cv::minMaxLoc(gradient, nullptr, &max_gradient);
  // Below these the image is flat: a few Lab units and grey levels are sensor noise.
  if (max_distance < 8 && max_gradient < 40) return none;
  cv::Mat saliency = 0.7 * distance / std::max(max_distance, 1e-6) + 0.3 * gradient / std::max(max_gradient, 1e-6);

  const double area = static_cast<double>(small.cols) * small.rows;
  cv::Rect box = salient_box(saliency);
  // What is in focus: the gradient a slight blur takes away (sharp edges lose most of it, edges
  // already out of focus hardly any). Where the backdrop is as colourful as the subject (an
  // out-of-focus scene) or a soft shadow doubles the colour box, this box is the subject's.
  cv::Mat soft, sx, sy, soft_gradient, focus_map;
  cv::GaussianBlur(grey, soft, cv::Size(0, 0), 2.0);
  cv::Sobel(soft, sx, CV_32F, 1, 0);
  cv::Sobel(soft, sy, CV_32F, 0, 1);
  cv::magnitude(sx, sy, soft_gradient);
  cv::GaussianBlur(cv::max(gradient - soft_gradient, 0), focus_map, cv::Size(0, 0), 2.0);
  std::vector<float> values(focus_map.begin<float>(), focus_map.end<float>());
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(values.size() * 99 / 100), values.end());
  const float top = values[values.size() * 99 / 100];  // the strong end, robust to a few hot pixels
  const cv::Rect focus = top > 0 ? salient_box(cv::min(focus_map / top, 1.0), kFocusShare) : cv::Rect();
  const bool focus_ok = focus.area() >= kMinShare * area && focus.area() <= kMaxShare * area;
  if (box.area() == 0 || box.area() > kMaxShare * area) {
    if (!focus_ok) return none;
    box = focus;
  } else if (focus_ok && focus.area() < 0.5 * box.area() && (focus & box).area() >= 0.8 * focus.area()) {
    box = focus;
  }
  return {scale_rect(box, static_cast<double>(image.cols) / small.cols, image.size()), SubjectSource::Saliency};
}

}  // namespace

bool has_one_backdrop(const cv::Mat& image) {
  const cv::Mat small = small_bgr(image);
  return small.cols < 8 || small.rows < 8 || one_backdrop_lab(float_lab(small));
}

Subject find_subject(const cv::Mat& image) {
  if (image.channels() == 4) {
    cv::Mat alpha;
    cv::extractChannel(image, alpha, 3);
    double min_alpha, max_alpha;
    cv::minMaxLoc(alpha, &min_alpha, &max_alpha);
    if (max_alpha <= kAlphaThreshold) return {cv::Rect(0, 0, image.cols, image.rows), SubjectSource::None};
    if (min_alpha < 255) {
      cv::Mat opaque = alpha > kAlphaThreshold;
      return {cv::boundingRect(opaque), SubjectSource::Alpha};
    }
    // Opaque to its edges: a layer trimmed to a subject that fills it (a box seen square on), or a
    // picture saved with alpha. Saliency decides; when nothing stands out, the layer is the subject.
    const Subject found = from_saliency(image);
    if (found.source != SubjectSource::None) return found;
    return {cv::Rect(0, 0, image.cols, image.rows), SubjectSource::Alpha};
  }
  return from_saliency(image);
}

}  // namespace kiln::studio
