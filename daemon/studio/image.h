#pragma once
// Pixels between the studio's callers and OpenCV: client buffers (RGB/RGBA/grey, any stride),
// image files (PNG, JPEG, WebP, BMP, TIFF), and PNG output. Inside the studio every image is an
// 8-bit cv::Mat in OpenCV's channel order: grey, BGR or BGRA with straight alpha.
#include <filesystem>
#include <string>

#include <opencv2/core.hpp>

#include "studio/png.h"

namespace kiln::studio {

enum class ChannelOrder { RGB, BGR };  // for 3/4-channel buffers; Krita hands BGRA, most others RGBA

// Copies a client buffer into a cv::Mat (grey, BGR or BGRA). Throws Error(InvalidArgument) for
// a null buffer, a zero or over-32768 size, a stride shorter than a row or 2 channels.
cv::Mat mat_from_pixels(const PixelView& pixels, ChannelOrder order = ChannelOrder::RGB);

// Decodes an image file keeping its alpha channel; 16-bit files become 8-bit, 2-channel
// (grey + alpha) become BGRA. Throws Error(NotFound) when the file cannot be read and
// Error(BadFormat) naming the file when it is not a decodable image.
cv::Mat read_image_file(const std::filesystem::path& path);

// Decodes image bytes (`name` appears in messages), as read_image_file.
cv::Mat decode_image(const std::string& bytes, const std::string& name);

// Writes `image` (grey, BGR or BGRA) as a PNG atomically, with optional text chunks.
void write_png(const std::filesystem::path& path, const cv::Mat& image, const std::vector<TextChunk>& text = {});

// BGR or BGRA (alpha 255 when the source has none), whatever `image` was.
cv::Mat to_bgra(const cv::Mat& image);
cv::Mat to_bgr(const cv::Mat& image);

// BGRA composited over a solid BGR colour (alpha blending with straight alpha) → BGR.
// Grey and BGR images come back as BGR unchanged.
cv::Mat composite_over(const cv::Mat& image, const cv::Scalar& background);

}  // namespace kiln::studio
