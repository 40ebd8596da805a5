#include "studio/image.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "studio/error.h"

namespace kiln::studio {

namespace {
constexpr int kMaxSide = 32768;  // the daemon's bound for shared-memory images

cv::Mat to_8bit(const cv::Mat& m) {
  if (m.depth() == CV_8U) return m;
  cv::Mat out;
  if (m.depth() == CV_16U) {
    m.convertTo(out, CV_8U, 1.0 / 257.0);
  } else if (m.depth() == CV_32F || m.depth() == CV_64F) {
    m.convertTo(out, CV_8U, 255.0);  // OpenCV decodes float formats (EXR, HDR) to 0..1
  } else {
    m.convertTo(out, CV_8U);
  }
  return out;
}

cv::Mat normalise_decoded(cv::Mat m, const std::string& name) {
  if (m.empty())
    throw Error(ErrorKind::BadFormat, "cannot decode " + name +
                                          ": it is damaged or not an image Kiln reads (PNG, JPEG, WebP, BMP, TIFF)");
  m = to_8bit(m);
  if (m.channels() == 2) cv::cvtColor(m, m, cv::COLOR_GRAY2BGRA);  // imread never gives this, but be safe
  return m;
}
}  // namespace

cv::Mat mat_from_pixels(const PixelView& v, ChannelOrder order) {
  if (v.data == nullptr || v.width <= 0 || v.height <= 0 || v.width > kMaxSide || v.height > kMaxSide)
    throw Error(ErrorKind::InvalidArgument, "image buffer of " + std::to_string(v.width) + "x" +
                                                std::to_string(v.height) + " pixels is empty or too large");
  if (v.channels != 1 && v.channels != 3 && v.channels != 4)
    throw Error(ErrorKind::InvalidArgument,
                "image buffers must have 1 (grey), 3 (RGB) or 4 (RGBA) channels, not " + std::to_string(v.channels));
  const std::size_t row = static_cast<std::size_t>(v.width) * v.channels;
  const std::size_t stride = v.stride == 0 ? row : v.stride;
  if (stride < row)
    throw Error(ErrorKind::InvalidArgument, "image buffer stride " + std::to_string(stride) +
                                                " is shorter than a row of " + std::to_string(row) + " bytes");
  const cv::Mat view(v.height, v.width, CV_8UC(v.channels), const_cast<uint8_t*>(v.data), stride);
  cv::Mat out;
  if (v.channels == 3 && order == ChannelOrder::RGB) {
    cv::cvtColor(view, out, cv::COLOR_RGB2BGR);
  } else if (v.channels == 4 && order == ChannelOrder::RGB) {
    cv::cvtColor(view, out, cv::COLOR_RGBA2BGRA);
  } else {
    out = view.clone();
  }
  return out;
}

cv::Mat decode_image(const std::string& bytes, const std::string& name) {
  if (bytes.empty()) throw Error(ErrorKind::BadFormat, "cannot decode " + name + ": the file is empty");
  const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  cv::Mat decoded;
  try {
    // JPEG has no alpha, and only IMREAD_COLOR applies its EXIF orientation (phone photos).
    const bool jpeg = bytes.size() > 2 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
                      static_cast<unsigned char>(bytes[1]) == 0xD8;
    decoded = cv::imdecode(raw, jpeg ? cv::IMREAD_COLOR : cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw Error(ErrorKind::BadFormat, "cannot decode " + name + ": " + e.err + "; the file is damaged");
  }
  return normalise_decoded(decoded, name);
}

cv::Mat read_image_file(const std::filesystem::path& path) {
  return decode_image(read_file_bytes(path), path.string());
}

cv::Mat to_bgra(const cv::Mat& image) {
  cv::Mat out;
  switch (image.channels()) {
    case 1: cv::cvtColor(image, out, cv::COLOR_GRAY2BGRA); break;
    case 3: cv::cvtColor(image, out, cv::COLOR_BGR2BGRA); break;
    case 4: out = image; break;
    default: throw Error(ErrorKind::Unsupported, "images with " + std::to_string(image.channels()) + " channels");
  }
  return out;
}

cv::Mat to_bgr(const cv::Mat& image) {
  cv::Mat out;
  switch (image.channels()) {
    case 1: cv::cvtColor(image, out, cv::COLOR_GRAY2BGR); break;
    case 3: out = image; break;
    case 4: cv::cvtColor(image, out, cv::COLOR_BGRA2BGR); break;
    default: throw Error(ErrorKind::Unsupported, "images with " + std::to_string(image.channels()) + " channels");
  }
  return out;
}

cv::Mat composite_over(const cv::Mat& image, const cv::Scalar& background) {
  if (image.channels() != 4) return to_bgr(image);
  cv::Mat bgr, alpha, weight, inverse, out;
  cv::cvtColor(image, bgr, cv::COLOR_BGRA2BGR);
  cv::extractChannel(image, alpha, 3);
  alpha.convertTo(weight, CV_32F, 1.0 / 255.0);
  inverse = 1.0 - weight;
  const cv::Mat solid(bgr.size(), CV_8UC3, background);
  cv::blendLinear(bgr, solid, weight, inverse, out);
  return out;
}

void write_png(const std::filesystem::path& path, const cv::Mat& image, const std::vector<TextChunk>& text) {
  if (image.empty() || image.depth() != CV_8U)
    throw Error(ErrorKind::InvalidArgument, "cannot write " + path.string() + ": no 8-bit image to write");
  cv::Mat rgb;
  switch (image.channels()) {
    case 1: rgb = image; break;
    case 3: cv::cvtColor(image, rgb, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(image, rgb, cv::COLOR_BGRA2RGBA); break;
    default: throw Error(ErrorKind::InvalidArgument, "cannot write " + path.string() + ": unsupported channel count");
  }
  write_png(path, PixelView{rgb.data, rgb.cols, rgb.rows, rgb.channels(), rgb.step[0]}, text);
}

}  // namespace kiln::studio
