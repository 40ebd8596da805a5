#include "cli/image_files.h"

#include <cstring>
#include <stdexcept>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace kiln::cli {

ipc::ShmImage load_image_file(Client& client, const std::string& path, ImageRole role,
                              std::optional<std::pair<int, int>> size) {
  const int mode = role == ImageRole::Mask ? cv::IMREAD_GRAYSCALE : role == ImageRole::WithAlpha ? cv::IMREAD_UNCHANGED : cv::IMREAD_COLOR;
  cv::Mat image = cv::imread(path, mode);
  if (image.empty()) throw std::runtime_error("cannot read image '" + path + "': missing, unreadable or not an image format OpenCV knows");
  if (image.depth() != CV_8U) image.convertTo(image, CV_8U, image.depth() == CV_16U ? 1.0 / 257.0 : 255.0);
  if (image.channels() == 4) cv::cvtColor(image, image, cv::COLOR_BGRA2RGBA);
  else if (image.channels() == 3) cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
  if (size && (image.cols != size->first || image.rows != size->second)) {
    const bool shrinking = size->first < image.cols && size->second < image.rows;
    cv::resize(image, image, cv::Size(size->first, size->second), 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LANCZOS4);
  }
  protocol::ImageDesc desc;
  desc.width = static_cast<uint32_t>(image.cols);
  desc.height = static_cast<uint32_t>(image.rows);
  desc.channels = static_cast<uint32_t>(image.channels());
  ipc::ShmImage block = client.create_image(desc);
  for (int y = 0; y < image.rows; ++y) std::memcpy(block.row(static_cast<uint32_t>(y)), image.ptr(y), desc.min_stride());
  return block;
}

}  // namespace kiln::cli
