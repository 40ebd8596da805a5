#pragma once
// Frontal faces with OpenCV's Haar cascade, from the model file Debian ships in `opencv-data`
// (/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml). No model is downloaded.
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/objdetect.hpp>

namespace kiln::studio {

// Where the cascade is looked for, in order: $KILN_FACE_CASCADE (a file), then the haarcascades
// folders of Debian's opencv-data and of OpenCV installs under /usr/local and OpenCV's own
// install prefix. Empty when none exists.
std::filesystem::path find_face_cascade();

class FaceDetector {
 public:
  // Loads `cascade`, or the one find_face_cascade() finds. Throws Error(NotFound) naming the
  // package to install (opencv-data) and the folders searched; Error(BadFormat) for a bad file.
  explicit FaceDetector(std::filesystem::path cascade = {});

  // Faces in `image` (any channel count), largest first, in image pixels. Faces smaller than
  // 4 % of the image's short side are ignored (noise in textures). Thread-safe.
  std::vector<cv::Rect> detect(const cv::Mat& image) const;

  const std::filesystem::path& cascade_path() const { return path_; }

 private:
  std::filesystem::path path_;
  mutable std::mutex mutex_;  // CascadeClassifier keeps per-call state
  mutable cv::CascadeClassifier classifier_;
};

}  // namespace kiln::studio
