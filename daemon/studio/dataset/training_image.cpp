#include "studio/dataset/training_image.h"

#include <string>

#include <opencv2/imgproc.hpp>

#include "studio/error.h"
#include "studio/image.h"

namespace kiln::studio {

cv::Mat prepare_training_image(const cv::Mat& decoded, const TrainingImageSize& s, const std::string& name) {
  if (s.resized_width <= 0 || s.resized_height <= 0 || s.bucket_width <= 0 || s.bucket_height <= 0 ||
      s.bucket_width > s.resized_width || s.bucket_height > s.resized_height)
    throw Error(ErrorKind::InvalidArgument, "training image " + name + ": bucket " + std::to_string(s.bucket_width) + "x" +
                                                std::to_string(s.bucket_height) + " does not fit the resized size " +
                                                std::to_string(s.resized_width) + "x" + std::to_string(s.resized_height));
  cv::Mat rgb;
  switch (decoded.channels()) {
    case 1: cv::cvtColor(decoded, rgb, cv::COLOR_GRAY2RGB); break;
    case 3: cv::cvtColor(decoded, rgb, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(decoded, rgb, cv::COLOR_BGRA2RGB); break;
    default: throw Error(ErrorKind::Unsupported, "training image " + name + ": " + std::to_string(decoded.channels()) + " channels");
  }
  if (rgb.cols != s.resized_width || rgb.rows != s.resized_height)
    cv::resize(rgb, rgb, cv::Size(s.resized_width, s.resized_height), 0, 0, cv::INTER_AREA);
  const int left = (rgb.cols - s.bucket_width) / 2, top = (rgb.rows - s.bucket_height) / 2;
  return rgb(cv::Rect(left, top, s.bucket_width, s.bucket_height)).clone();
}

cv::Mat load_training_image(const std::filesystem::path& path, const TrainingImageSize& size) {
  return prepare_training_image(read_image_file(path), size, path.string());
}

}  // namespace kiln::studio
