#pragma once
// Turns one original picture into the training images kohya reads: background for transparent
// pixels, crop (center / focus / face), product centring, size, mirrored and face-only extras.
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "studio/dataset/quality.h"
#include "studio/dataset/settings.h"

namespace kiln::studio {

class FaceDetector;

struct PreparedImage {
  std::string suffix;  // appended to the image's file stem: "" (main), "_flip", "_face", "_face_flip"
  cv::Mat image;       // BGR, 8-bit
};

struct Preparation {
  std::vector<PreparedImage> outputs;  // the main image first
  std::vector<Finding> findings;       // what preparation had to do that the user should know (upscaled,
                                       // no face found, no clear subject)
  cv::Rect crop;                       // the region of the original used for the main image (may extend
                                       // past the edges when the subject is centred with a margin)
};

// The background colour for transparent pixels and padding (BGR).
cv::Scalar background_colour(Background b);

// `original`: grey, BGR or BGRA. `faces` is needed when settings.crop is Face or face_enhance is
// set (Error(InvalidArgument) otherwise).
Preparation prepare_image(const cv::Mat& original, const DatasetSettings& settings, const FaceDetector* faces);

}  // namespace kiln::studio
