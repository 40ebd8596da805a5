#include "studio/dataset/subject.h"

#include <algorithm>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "studio/image.h"

namespace kiln::studio {
namespace {

constexpr double kAlphaThreshold = 16;  // of 255

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

Subject from_saliency(const cv::Mat& image) {
  const Subject none{cv::Rect(0, 0, image.cols, image.rows), SubjectSource::None};
  const double scale = 256.0 / std::max(image.cols, image.rows);
  cv::Mat small;
  cv::resize(to_bgr(image), small, cv::Size(), std::min(1.0, scale), std::min(1.0, scale), cv::INTER_AREA);
  if (small.cols < 8 || small.rows < 8) return none;
  cv::GaussianBlur(small, small, cv::Size(3, 3), 0);

  cv::Mat lab;
  small.convertTo(lab, CV_32F, 1.0 / 255.0);
  cv::cvtColor(lab, lab, cv::COLOR_BGR2Lab);
  const cv::Vec3f bg = border_median(lab);
  cv::Mat diff = lab - cv::Scalar(bg[0], bg[1], bg[2]);
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

  cv::Mat saliency8, mask;
  saliency.convertTo(saliency8, CV_8U, 255.0);
  cv::threshold(saliency8, mask, 0, 255, cv::THRESH_BINARY | cv::THRESH_OTSU);
  cv::morphologyEx(mask, mask, cv::MORPH_OPEN, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(3, 3)));

  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8);
  int largest = 0;
  for (int i = 1; i < n; ++i) largest = std::max(largest, stats.at<int>(i, cv::CC_STAT_AREA));
  if (largest == 0) return none;
  cv::Rect box;
  for (int i = 1; i < n; ++i) {
    if (stats.at<int>(i, cv::CC_STAT_AREA) * 10 < largest) continue;
    const cv::Rect r(stats.at<int>(i, cv::CC_STAT_LEFT), stats.at<int>(i, cv::CC_STAT_TOP),
                     stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT));
    box = box.area() == 0 ? r : (box | r);
  }
  // A "subject" covering nearly everything is no subject at all (busy scenes, full-frame textures).
  if (box.area() > 0.9 * small.cols * small.rows) return none;
  return {scale_rect(box, static_cast<double>(image.cols) / small.cols, image.size()), SubjectSource::Saliency};
}

}  // namespace

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
  }
  return from_saliency(image);
}

}  // namespace kiln::studio
