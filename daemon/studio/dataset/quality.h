#pragma once
// Quality checks on training images, judged on what training will see: the crop preparation
// makes (prepare.h), at the size it is trained at. Each finding names the image, gives the
// number measured and the limit, and says what to do; images are never dropped.
//
// The limits are chosen on a seeded calibration set of product-like images and their defective
// variants (tests/calibration, whose report is in the README): no finding on any sharp image or
// distinct view there, and every defect of meaningful strength found.
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "studio/dataset/duplicates.h"
#include "studio/dataset/finding.h"
#include "studio/dataset/prepare.h"
#include "studio/dataset/settings.h"
#include "studio/dataset/sharpness.h"

namespace kiln::studio {

struct QualityThresholds {
  // too_small (the main image) and upscaled (the face-only copy): how much the trained part may be
  // enlarged. Enlarging by f widens sharp edges f times; 1.5 is where a sharp picture's edges
  // reach the blur limit below.
  double max_enlargement = 1.5;
  // blurry: the subject's edge width (sharpness.h) in px at the training size. Sharp renders and
  // photos measure 2.3-3.6 on the calibration set, a Gaussian blur of σ 2 px 4.9 and more.
  double max_edge_width = 4.1;
  // near_duplicate: the subject similarity (duplicates.h) from which two pictures are the same.
  double min_similarity = 0.78;
  double max_aspect = 2.0;        // beyond 2:1 a square crop loses most of the picture
  double max_bucket_aspect = 4.0; // kohya's buckets (256-1024 px sides) stop at 4:1
  double min_stddev = 3.0;        // grey-level spread below which an image is one flat colour
  double min_opaque = 0.001;      // share of pixels more than 6 % opaque below which a layer is empty
};

// What check_image judges, measured once; the calibration program sweeps limits over these.
struct ImageMeasures {
  double opaque_share = 1;         // of pixels more than 6 % opaque (1 without alpha)
  double grey_spread = 0;          // grey-level standard deviation, transparent pixels as background
  cv::Size size;                   // of the original
  int trained_across = 0;          // original px across the main image's crop (inside the picture)
  double enlargement = 1;          // training px per original px of the main image
  int face_across = 0;             // original px across the face-only copy's crop
  double face_enlargement = 0;     // its enlargement (0: no face copy)
  double aspect = 1;               // of the picture, long side / short side
  double kept_share = 1;           // share of the picture inside the main crop
  double filled_share = 1;         // share of the main crop that is picture (the rest is padding)
  bool aspect_matters = false;     // beyond the limit, the crop would drop or squeeze content
  Subject subject;                 // the preparation's, or found for these checks when it needed none
  EdgeSharpness sharpness;         // of the subject, at the training scale (never enlarged)
  int trained_at = 0;              // the training resolution the sharpness is judged at
};

ImageMeasures measure_image(const cv::Mat& original, const Preparation& prep, const DatasetSettings& settings);

// Findings for one image (`name`: what the user calls it, quoted in messages): transparent, flat,
// too_small, upscaled, extreme_aspect, blurry, and the preparation's no_face and no_subject.
std::vector<Finding> judge_image(const ImageMeasures& m, const Preparation& prep, const DatasetSettings& settings,
                                 const std::string& name, const QualityThresholds& t = {});

// measure_image then judge_image. `original`: grey, BGR or BGRA.
std::vector<Finding> check_image(const cv::Mat& original, const Preparation& prep, const DatasetSettings& settings,
                                 const std::string& name, const QualityThresholds& t = {});

// Everything a dataset keeps about one image's quality: its findings and the signature its
// near-duplicates are found by (with its size and sharpness at the training scale).
struct ImageAssessment {
  ImageMeasures measures;
  std::vector<Finding> findings;
  PictureSignature signature;
};
ImageAssessment assess_image(const cv::Mat& original, const Preparation& prep, const DatasetSettings& settings,
                             const std::string& name, const QualityThresholds& t = {});

// Dataset-level advice: fewer than 15 images (20–40 for products), and total steps
// (images × repeats × epochs / batch) outside 1,000–4,500 — far from the usual 1,500–3,000 —
// with the repeats that would land near 2,000. `training_images` counts every file kohya sees
// (flips and face crops included); `source_images` the user's pictures.
std::vector<Finding> check_dataset(int source_images, int training_images, const DatasetSettings& settings,
                                   const std::string& name = {});

// kohya's count: images × repeats × epochs / batch size, rounded up per epoch.
int64_t estimated_steps(int training_images, const DatasetSettings& settings);

}  // namespace kiln::studio
