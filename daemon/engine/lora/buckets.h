#pragma once
// kohya's aspect-ratio bucketing (library/model_util.make_bucket_resolutions and
// train_util.BucketManager) and its step arithmetic (train_network.py): which bucket each image
// trains in, how many batches an epoch has, and how many optimizer steps the run takes.
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace kiln::engine::lora {

struct Resolution {
  int64_t width = 0, height = 0;
  bool operator==(const Resolution& o) const { return width == o.width && height == o.height; }
  bool operator<(const Resolution& o) const { return width != o.width ? width < o.width : height < o.height; }
};

struct BucketOptions {
  Resolution resolution{512, 512};  // --resolution: the area budget
  int64_t min_bucket_reso = 256;
  int64_t max_bucket_reso = 1024;
  int64_t bucket_reso_steps = 64;
  bool bucket_no_upscale = false;
  bool enable_bucket = true;  // false: every image is resized/cropped to `resolution`
};

// make_bucket_resolutions: the square of side ⌊√area / steps⌋·steps, then for each width from
// min_size to max_size in `steps`, height = min(max_size, ⌊(area // width) / steps⌋·steps) with
// both orientations when height ≥ min_size; sorted by (width, height), duplicates removed.
std::vector<Resolution> make_bucket_resolutions(Resolution max_reso, int64_t min_size = 256, int64_t max_size = 1024,
                                                int64_t divisible = 64);

struct BucketChoice {
  Resolution bucket;        // the training resolution for the image
  Resolution resized_size;  // the image is resized to this, then centre/random cropped to `bucket`
  double ar_error = 0;      // bucket aspect − image aspect
};

class BucketManager {
 public:
  explicit BucketManager(const BucketOptions& options);
  // BucketManager.select_bucket: with upscaling, the predefined bucket of the nearest aspect ratio
  // (first in sorted order on ties; an exact size match wins); with bucket_no_upscale, a bucket
  // derived from the image itself (shrunk to the area budget when larger, then floored to steps).
  BucketChoice select(int64_t width, int64_t height) const;
  const std::vector<Resolution>& predefined() const { return predefined_; }

 private:
  BucketOptions options_;
  std::vector<Resolution> predefined_;
};

// kohya BucketManager.get_crop_ltrb (its Stability AI preprocessing): where an image of `image`
// size fitted into `bucket` sits, {left, top}, floored as kohya floors it. SDXL conditions on it
// (crop_coords_top_left); it is not the crop the pixels went through.
Resolution kohya_crop_left_top(Resolution bucket, Resolution image);

struct DatasetImage {
  int64_t width = 0, height = 0;
  int64_t repeats = 1;  // the folder's "<repeats>_<name>"
};

struct BucketCount {
  Resolution resolution;
  int64_t images = 0;   // entries including repeats
  int64_t batches = 0;  // ceil(images / batch_size)
};

struct StepPlan {
  std::vector<BucketCount> buckets;      // in kohya's order (sorted by resolution), non-empty only
  std::vector<BucketChoice> per_image;   // the bucket of each input image
  int64_t images_with_repeats = 0;
  int64_t batches_per_epoch = 0;         // Σ ceil(count / batch_size): len(train_dataloader)
  int64_t steps_per_epoch = 0;           // optimizer steps: ceil(batches / gradient_accumulation_steps)
  int64_t max_train_steps = 0;           // from max_train_epochs when given, else as given
  int64_t epochs = 0;                    // ceil(max_train_steps / steps_per_epoch)
};

struct StepOptions {
  int64_t batch_size = 1;
  int64_t gradient_accumulation_steps = 1;
  int64_t max_train_steps = 1600;           // kohya's default
  std::optional<int64_t> max_train_epochs;  // overrides max_train_steps when set
};

StepPlan plan_steps(const std::vector<DatasetImage>& images, const BucketOptions& buckets, const StepOptions& steps);

}  // namespace kiln::engine::lora
