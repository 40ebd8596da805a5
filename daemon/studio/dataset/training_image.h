#pragma once
// The pixels a training step sees, prepared as kohya's sd-scripts prepares them
// (train_util.load_image + trim_and_resize_if_required): the file decoded to RGB (an alpha channel
// is dropped, as PIL's convert("RGB") drops it), resized with INTER_AREA to the bucket's resized
// size, then centre-cropped to the bucket. No LibTorch here: the train job makes the tensor.
#include <filesystem>

#include <opencv2/core.hpp>

namespace kiln::studio {

struct TrainingImageSize {
  int resized_width = 0, resized_height = 0;  // what the image is scaled to first
  int bucket_width = 0, bucket_height = 0;    // what it is cropped to (≤ the resized size)
};

// 8-bit RGB (R first), continuous, bucket_width × bucket_height. Throws Error(NotFound /
// BadFormat) naming the file, Error(InvalidArgument) when the sizes are not positive or the
// bucket does not fit inside the resized size.
cv::Mat load_training_image(const std::filesystem::path& path, const TrainingImageSize& size);

// The same for pixels already decoded (grey, BGR or BGRA).
cv::Mat prepare_training_image(const cv::Mat& decoded, const TrainingImageSize& size, const std::string& name);

}  // namespace kiln::studio
