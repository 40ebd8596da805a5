#pragma once
// Turns one original picture into the training images kohya reads: background for transparent
// pixels, crop (center / focus / face), product centring, size, mirrored and face-only extras.
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "studio/dataset/settings.h"
#include "studio/dataset/subject.h"

namespace kiln::studio {

class FaceDetector;

struct PreparedImage {
  std::string suffix;  // appended to the image's file stem: "" (main), "_flip", "_face", "_face_flip"
  cv::Mat image;       // BGR, 8-bit
};

struct Preparation {
  std::vector<PreparedImage> outputs;  // the main image first
  cv::Rect crop;                       // the region of the original used for the main image (may extend
                                       // past the edges when the subject is centred with a margin)
  double scale = 1;                    // training px per original px in the main image (> 1: enlarged)
  cv::Rect face_crop;                  // the face-only copy's region, when there is one
  double face_scale = 0;               // its training px per original px (0: no face copy)
  Subject subject;                     // where the subject is (empty box: not searched; source None: none found)
  // What preparation had to fall back on, for check_image to tell the user (it also judges the
  // enlargement above).
  bool face_missing = false;           // face crop or face copies asked for, no face found
  bool subject_missing = false;        // focus crop or product centring asked for, no subject found
};

// The background colour for transparent pixels and padding (BGR).
cv::Scalar background_colour(Background b);

// `original`: grey, BGR or BGRA. `faces` is needed when settings.crop is Face or face_enhance is
// set (Error(InvalidArgument) otherwise).
Preparation prepare_image(const cv::Mat& original, const DatasetSettings& settings, const FaceDetector* faces);

}  // namespace kiln::studio
