#include "studio/dataset/face_detector.h"

#include <algorithm>
#include <cstdlib>

#include <opencv2/imgproc.hpp>

#include "studio/error.h"
#include "studio/image.h"

namespace kiln::studio {
namespace fs = std::filesystem;

namespace {
constexpr const char* kCascadeFile = "haarcascade_frontalface_default.xml";

std::vector<fs::path> search_folders() {
  return {"/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades",
          "/usr/local/share/opencv4/haarcascades", "/usr/local/share/opencv/haarcascades"};
}
}  // namespace

fs::path find_face_cascade() {
  if (const char* env = std::getenv("KILN_FACE_CASCADE"); env != nullptr && *env != '\0') {
    return fs::is_regular_file(env) ? fs::path(env) : fs::path();
  }
  for (const fs::path& dir : search_folders()) {
    std::error_code ec;
    if (fs::is_regular_file(dir / kCascadeFile, ec)) return dir / kCascadeFile;
  }
  return {};
}

FaceDetector::FaceDetector(fs::path cascade) : path_(cascade.empty() ? find_face_cascade() : std::move(cascade)) {
  if (path_.empty() || !fs::is_regular_file(path_)) {
    std::string searched;
    for (const fs::path& dir : search_folders()) searched += (searched.empty() ? "" : ", ") + dir.string();
    throw Error(ErrorKind::NotFound,
                std::string("face crops need OpenCV's face detector model ") + kCascadeFile +
                    ", which was not found" + (path_.empty() ? "" : " at " + path_.string()) + " (searched " +
                    searched + " and $KILN_FACE_CASCADE). On Debian or Ubuntu install the package opencv-data "
                    "(sudo apt install opencv-data), or choose the crop mode 'focus'");
  }
  bool loaded = false;
  try {
    loaded = classifier_.load(path_.string());
  } catch (const cv::Exception&) {
  }
  if (!loaded || classifier_.empty())
    throw Error(ErrorKind::BadFormat, path_.string() + " is not a valid OpenCV cascade file; reinstall opencv-data");
}

std::vector<cv::Rect> FaceDetector::detect(const cv::Mat& image) const {
  // Detect on a copy at most 640 px on its long side: the cascade's 24 px window finds faces of
  // any useful size there, and it keeps detection fast on 24-megapixel photos.
  const double scale = std::min(1.0, 640.0 / std::max(image.cols, image.rows));
  cv::Mat grey;
  cv::Mat bgr = to_bgr(image);
  cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  if (scale < 1.0) cv::resize(grey, grey, cv::Size(), scale, scale, cv::INTER_AREA);
  cv::equalizeHist(grey, grey);
  const int min_side = std::max(20, static_cast<int>(0.04 * std::min(grey.cols, grey.rows)));
  std::vector<cv::Rect> found;
  {
    std::lock_guard lock(mutex_);
    classifier_.detectMultiScale(grey, found, 1.1, 4, 0, cv::Size(min_side, min_side));
  }
  std::vector<cv::Rect> faces;
  for (const cv::Rect& r : found) {
    const cv::Rect full(static_cast<int>(r.x / scale), static_cast<int>(r.y / scale), static_cast<int>(r.width / scale),
                        static_cast<int>(r.height / scale));
    faces.push_back(full & cv::Rect(0, 0, image.cols, image.rows));
  }
  std::sort(faces.begin(), faces.end(), [](const cv::Rect& a, const cv::Rect& b) { return a.area() > b.area(); });
  return faces;
}

}  // namespace kiln::studio
