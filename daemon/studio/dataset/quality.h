#pragma once
// Quality checks on training images. Each finding is a warning with a plain reason; images are
// never dropped — the user decides.
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "studio/dataset/settings.h"

namespace kiln::studio {

struct Finding {
  std::string code;     // stable identifier: too_small, blurry, near_duplicate, extreme_aspect, transparent,
                        // flat, upscaled, no_face, no_subject, few_images, steps; clients may translate by it
  std::string message;  // the reason in words, with what to do
};

struct QualityThresholds {
  int min_short_side = 512;    // SD 1.x trains at 512; smaller images are upscaled and soft
  // Variance of the Laplacian (grey, 0..255) on the subject, measured at a short side of 512 px.
  // Calibrated in tests/unit/studio/quality_test.cpp on synthetic scenes (shapes, strokes, text,
  // fine noise texture, 768-1024 px): sharp ones measure 160 and more, a Gaussian blur of sigma
  // 2 px (at 512 px) brings them below 6, sigma 3 below 2. 60 sits between, nearer the blurred
  // side, because real photos have softer detail than these scenes.
  double min_sharpness = 60;
  double max_aspect = 2.0;        // beyond 2:1 a square crop loses most of the picture
  int max_hash_distance = 10;     // pHash bits (of 64) that may differ between near-duplicates
  double min_stddev = 3.0;        // grey-level spread below which an image is one flat colour
};

// Variance of the Laplacian of `image` (grey) inside `region` (the whole image when empty),
// after scaling so the short side is 512 px, so that the value does not depend on resolution.
double sharpness(const cv::Mat& image, cv::Rect region = {});

// DCT perceptual hash: grey, 32×32, DCT, the 8×8 lowest frequencies against their median.
// Resizing, recompression and small colour changes keep it within a few bits.
uint64_t perceptual_hash(const cv::Mat& image);
int hash_distance(uint64_t a, uint64_t b);

// The checks that concern one image alone: transparent, flat, too small, extreme aspect,
// blurry. `image` is the original (grey, BGR or BGRA).
std::vector<Finding> check_image(const cv::Mat& image, const QualityThresholds& t = {});

// Pairs (i, j), i < j, of hashes within the near-duplicate distance.
std::vector<std::pair<std::size_t, std::size_t>> near_duplicates(const std::vector<uint64_t>& hashes,
                                                                  const QualityThresholds& t = {});

// Dataset-level advice: fewer than 15 images (20–40 for products), and total steps
// (images × repeats × epochs / batch) outside 1,000–4,500 — far from the usual 1,500–3,000 —
// with the repeats that would land near 2,000. `training_images` counts every file kohya sees
// (flips and face crops included); `source_images` the user's pictures.
std::vector<Finding> check_dataset(int source_images, int training_images, const DatasetSettings& settings);

// kohya's count: images × repeats × epochs / batch size, rounded up per epoch.
int64_t estimated_steps(int training_images, const DatasetSettings& settings);

}  // namespace kiln::studio
