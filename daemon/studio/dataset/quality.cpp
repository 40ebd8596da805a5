#include "studio/dataset/quality.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <opencv2/imgproc.hpp>

#include "studio/dataset/subject.h"
#include "studio/image.h"

namespace kiln::studio {
namespace {

cv::Mat grey_of(const cv::Mat& image) {
  if (image.channels() == 1) return image;
  cv::Mat grey;
  cv::cvtColor(to_bgr(image), grey, cv::COLOR_BGR2GRAY);
  return grey;
}

// Transparent pixels become white, so their undefined colour does not count as content.
cv::Mat flatten_alpha(const cv::Mat& image) {
  return image.channels() == 4 ? composite_over(image, cv::Scalar::all(255)) : image;
}

std::string fmt(const char* format, double a, double b = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, format, a, b);
  return buf;
}

}  // namespace

double sharpness(const cv::Mat& image, cv::Rect region) {
  cv::Mat grey = grey_of(flatten_alpha(image));
  if (region.area() > 0) grey = grey(region & cv::Rect(0, 0, grey.cols, grey.rows));
  const double scale = 512.0 / std::min(grey.cols, grey.rows);
  if (std::abs(scale - 1.0) > 1e-3)
    cv::resize(grey, grey, cv::Size(), scale, scale, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  cv::Mat lap;
  cv::Laplacian(grey, lap, CV_64F);
  cv::Scalar mean, stddev;
  cv::meanStdDev(lap, mean, stddev);
  return stddev[0] * stddev[0];
}

uint64_t perceptual_hash(const cv::Mat& image) {
  cv::Mat small, dct;
  cv::resize(grey_of(flatten_alpha(image)), small, cv::Size(32, 32), 0, 0, cv::INTER_AREA);
  small.convertTo(small, CV_32F);
  cv::dct(small, dct);
  cv::Mat low = dct(cv::Rect(0, 0, 8, 8)).clone();
  // The median leaves out the DC term, which only says how bright the image is overall.
  std::vector<float> values(low.begin<float>() + 1, low.end<float>());
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  const float median = values[values.size() / 2];
  uint64_t hash = 0;
  int bit = 0;
  for (auto it = low.begin<float>(); it != low.end<float>(); ++it, ++bit)
    if (*it > median) hash |= uint64_t{1} << bit;
  return hash;
}

int hash_distance(uint64_t a, uint64_t b) { return __builtin_popcountll(a ^ b); }

std::vector<Finding> check_image(const cv::Mat& image, const QualityThresholds& t) {
  std::vector<Finding> out;
  if (image.channels() == 4) {
    cv::Mat alpha;
    cv::extractChannel(image, alpha, 3);
    double max_alpha;
    cv::minMaxLoc(alpha, nullptr, &max_alpha);
    if (max_alpha == 0) {
      out.push_back({"transparent", "the image is fully transparent: there is nothing in it to learn; "
                                    "check that the right layer was sent"});
      return out;  // the other checks would only repeat it
    }
  }
  const cv::Mat flat = flatten_alpha(image);
  cv::Scalar mean, stddev;
  cv::meanStdDev(grey_of(flat), mean, stddev);
  if (stddev[0] < t.min_stddev) {
    out.push_back({"flat", "the image is a single flat colour (empty): nothing to learn from it; remove it"});
    return out;
  }
  const int short_side = std::min(image.cols, image.rows);
  if (short_side < t.min_short_side)
    out.push_back({"too_small", fmt("the short side is %.0f px, below the %.0f px Stable Diffusion 1.x trains at; "
                                    "it will be upscaled and look soft - use a larger original",
                                    short_side, t.min_short_side)});
  const double aspect = static_cast<double>(std::max(image.cols, image.rows)) / short_side;
  if (aspect > t.max_aspect)
    out.push_back({"extreme_aspect", fmt("the aspect ratio is %.1f:1; a square crop keeps only a small part of it - "
                                         "crop it yourself or use bucketing", aspect)});
  const Subject subject = find_subject(image);
  const double sharp = sharpness(image, subject.box);
  if (sharp < t.min_sharpness)
    out.push_back({"blurry", fmt("the image looks blurry (sharpness %.0f, below %.0f): the LoRA learns the blur "
                                 "too; use a sharper photo", sharp, t.min_sharpness)});
  return out;
}

std::vector<std::pair<std::size_t, std::size_t>> near_duplicates(const std::vector<uint64_t>& hashes,
                                                                  const QualityThresholds& t) {
  std::vector<std::pair<std::size_t, std::size_t>> pairs;
  for (std::size_t i = 0; i < hashes.size(); ++i)
    for (std::size_t j = i + 1; j < hashes.size(); ++j)
      if (hash_distance(hashes[i], hashes[j]) <= t.max_hash_distance) pairs.emplace_back(i, j);
  return pairs;
}

int64_t estimated_steps(int training_images, const DatasetSettings& s) {
  const int64_t per_epoch = (static_cast<int64_t>(training_images) * s.repeats + s.batch_size - 1) / s.batch_size;
  return per_epoch * s.epochs;
}

std::vector<Finding> check_dataset(int source_images, int training_images, const DatasetSettings& s) {
  std::vector<Finding> out;
  if (source_images == 0) {
    out.push_back({"few_images", "the dataset has no images yet; add 15 or more (20-40 for a product)"});
    return out;
  }
  if (source_images < 15)
    out.push_back({"few_images", fmt("only %.0f images: 15 is the least that trains well", source_images) +
                                     (s.preset == Preset::Product ? "; for a product 20-40 sharp photos from many "
                                                                    "angles are recommended"
                                                                  : "; 20-30 varied images are better")});
  else if (s.preset == Preset::Product && source_images < 20)
    out.push_back({"few_images", fmt("%.0f images: for a product 20-40 photos from many angles (45 degrees, top-down, "
                                     "close-ups of materials) are recommended", source_images)});
  const int64_t steps = estimated_steps(training_images, s);
  if (steps < 1000 || steps > 4500) {
    const double per_repeat = static_cast<double>(training_images) * s.epochs / s.batch_size;
    const int suggested = std::max(1, static_cast<int>(std::lround(2000.0 / per_repeat)));
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "about %lld training steps (%d images x %d repeats x %d epochs / batch %d) is far %s the usual "
                  "1,500-3,000; %s",
                  static_cast<long long>(steps), training_images, s.repeats, s.epochs, s.batch_size,
                  steps < 1000 ? "below" : "above",
                  suggested != s.repeats ? ("set repeats to about " + std::to_string(suggested)).c_str()
                                         : "change the number of epochs");
    out.push_back({"steps", buf});
  }
  return out;
}

}  // namespace kiln::studio
