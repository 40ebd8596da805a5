#pragma once
// The calibration set: six products (two bottles, two speakers, two mugs), each seen in 16
// distinct views — 12 photos and renders on plain, swept, coloured, wooden, marble, fabric and
// out-of-focus backdrops, 512-1024 px, and 4 cut-out layers — plus, from those views:
//   * sweeps, one variant per view, cycling through strengths: Gaussian blur (σ 1-4 px at the
//     training size), motion blur (4-16 px), same-picture copies (re-encoded, resized, cropped,
//     colour-shifted, combined) and small sources (160-460 px on the short side);
//   * a planted set per product, as a tester would make one: the 16 views with 2 copies, 2 blurred
//     and 1 shaken photo, 1 small source, 1 empty layer and 1 extreme strip among them.
// Seeded: the same set, pixel for pixel, on every run.
#include <functional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "product_scenes.h"

namespace kiln::calibration {

struct Sample {
  std::string name;          // as a file would be called: "bottle1_v03.jpg", "bottle1_v03_blur2.0.jpg"
  std::string what;          // the scene and the variant in words
  cv::Mat image;             // BGR or BGRA
  int view = -1;             // the clean view it shows (same picture as it), -1: none
  std::string defect;        // the finding it must get: "" (a good picture), blurry, too_small,
                             // near_duplicate, extreme_aspect, transparent, flat
  bool meaningful = true;    // false: a mild defect, neither required nor a false alarm
  std::string kind;          // gaussian, motion, small, copy, strip, empty, ...
  double strength = 0;       // σ or length in training px, enlargement, ...
};

struct ProductSet {
  std::string name;              // "bottle1"
  std::vector<Sample> views;     // the 16 good pictures (view = their index)
  std::vector<Sample> sweep;     // one variant of each view (and a few more), for the per-check tables
  std::vector<Sample> planted;   // the defects planted among the views, as a tester would
};

// `scale_of(view)`: training px per source px of a view as the checks will prepare it, so blur
// strengths can be given at the training size.
ProductSet make_product_set(int index, const std::function<double(const cv::Mat&)>& scale_of);

constexpr int kProducts = 6;

}  // namespace kiln::calibration
