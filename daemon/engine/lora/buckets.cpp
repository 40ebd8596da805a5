#include "engine/lora/buckets.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>

#include "engine/error.h"

namespace kiln::engine::lora {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void check(bool ok, const std::string& message) {
  if (!ok) throw Error(ErrorKind::InvalidArgument, message);
}

}  // namespace

std::vector<Resolution> make_bucket_resolutions(Resolution max_reso, int64_t min_size, int64_t max_size,
                                                int64_t divisible) {
  check(divisible > 0, "bucket_reso_steps must be positive");
  const int64_t max_area = max_reso.width * max_reso.height;
  std::set<Resolution> resos;
  const auto side = static_cast<int64_t>(std::floor(std::sqrt(static_cast<double>(max_area)) / divisible)) * divisible;
  resos.insert({side, side});
  for (int64_t width = min_size; width <= max_size; width += divisible) {
    const int64_t height = std::min(max_size, (max_area / width) / divisible * divisible);
    if (height >= min_size) {
      resos.insert({width, height});
      resos.insert({height, width});
    }
  }
  return {resos.begin(), resos.end()};
}

BucketManager::BucketManager(const BucketOptions& o) : options_(o) {
  check(o.resolution.width > 0 && o.resolution.height > 0, "the training resolution must be positive");
  if (!o.enable_bucket) {
    predefined_ = {o.resolution};
    return;
  }
  check(o.bucket_reso_steps > 0, "bucket_reso_steps must be positive");
  check(std::min(o.resolution.width, o.resolution.height) >= o.min_bucket_reso,
        "min_bucket_reso must not be larger than the training resolution");
  check(std::max(o.resolution.width, o.resolution.height) <= o.max_bucket_reso,
        "max_bucket_reso must not be smaller than the training resolution");
  if (!o.bucket_no_upscale)
    predefined_ = make_bucket_resolutions(o.resolution, o.min_bucket_reso, o.max_bucket_reso, o.bucket_reso_steps);
}

BucketChoice BucketManager::select(int64_t w, int64_t h) const {
  check(w > 0 && h > 0, "an image has no pixels");
  const double aspect = static_cast<double>(w) / static_cast<double>(h);
  BucketChoice c;
  if (!options_.enable_bucket || !options_.bucket_no_upscale) {
    Resolution reso{w, h};
    if (std::find(predefined_.begin(), predefined_.end(), reso) == predefined_.end()) {
      double best = std::numeric_limits<double>::infinity();
      for (const auto& r : predefined_) {
        const double err = std::abs(static_cast<double>(r.width) / static_cast<double>(r.height) - aspect);
        if (err < best) best = err, reso = r;  // strict: the first of equal errors wins, like argmin
      }
    }
    const double bucket_aspect = static_cast<double>(reso.width) / static_cast<double>(reso.height);
    // Scale so that the image covers the bucket; the longer side is cropped.
    const double scale = aspect > bucket_aspect ? static_cast<double>(reso.height) / static_cast<double>(h)
                                                : static_cast<double>(reso.width) / static_cast<double>(w);
    c.bucket = reso;
    c.resized_size = {static_cast<int64_t>(static_cast<double>(w) * scale + 0.5),
                      static_cast<int64_t>(static_cast<double>(h) * scale + 0.5)};
  } else {
    const int64_t steps = options_.bucket_reso_steps;
    const double max_area = static_cast<double>(options_.resolution.width * options_.resolution.height);
    auto round_to_steps = [steps](double x) {
      const auto v = static_cast<int64_t>(x + 0.5);
      return v - v % steps;
    };
    Resolution resized{w, h};
    if (static_cast<double>(w * h) > max_area) {
      // Shrink to the area budget keeping the aspect; round whichever side keeps it better.
      const double rw = std::sqrt(max_area * aspect), rh = max_area / rw;
      const int64_t w_rounded = round_to_steps(rw), h_in_wr = round_to_steps(static_cast<double>(w_rounded) / aspect);
      const int64_t h_rounded = round_to_steps(rh), w_in_hr = round_to_steps(static_cast<double>(h_rounded) * aspect);
      const double ar_w = h_in_wr ? static_cast<double>(w_rounded) / static_cast<double>(h_in_wr)
                                  : std::numeric_limits<double>::infinity();
      const double ar_h = h_rounded ? static_cast<double>(w_in_hr) / static_cast<double>(h_rounded)
                                    : std::numeric_limits<double>::infinity();
      if (std::abs(ar_w - aspect) < std::abs(ar_h - aspect))
        resized = {w_rounded, static_cast<int64_t>(static_cast<double>(w_rounded) / aspect + 0.5)};
      else
        resized = {static_cast<int64_t>(static_cast<double>(h_rounded) * aspect + 0.5), h_rounded};
    }
    c.resized_size = resized;
    // Never pad: the bucket is the resized image floored to the step (the rest is cropped).
    c.bucket = {resized.width - resized.width % steps, resized.height - resized.height % steps};
    check(c.bucket.width > 0 && c.bucket.height > 0,
          "an image of " + std::to_string(w) + "×" + std::to_string(h) + " is smaller than one bucket step");
  }
  c.ar_error = static_cast<double>(c.bucket.width) / static_cast<double>(c.bucket.height) - aspect;
  return c;
}

Resolution kohya_crop_left_top(Resolution bucket, Resolution image) {
  if (image.width <= 0 || image.height <= 0) return {0, 0};
  const double bucket_ar = double(bucket.width) / double(bucket.height);
  const double image_ar = double(image.width) / double(image.height);
  double resized_width = 0, resized_height = 0;
  if (bucket_ar > image_ar) {  // the bucket is wider: fit the height
    resized_width = double(bucket.height) * image_ar;
    resized_height = double(bucket.height);
  } else {
    resized_width = double(bucket.width);
    resized_height = double(bucket.width) / image_ar;
  }
  // Python's float // 2.
  return {static_cast<int64_t>(std::floor((double(bucket.width) - resized_width) / 2)),
          static_cast<int64_t>(std::floor((double(bucket.height) - resized_height) / 2))};
}

StepPlan plan_steps(const std::vector<DatasetImage>& images, const BucketOptions& buckets, const StepOptions& s) {
  check(s.batch_size > 0, "the batch size must be at least 1");
  check(s.gradient_accumulation_steps > 0, "gradient_accumulation_steps must be at least 1");
  const BucketManager manager(buckets);
  StepPlan plan;
  std::map<Resolution, int64_t> counts;  // kohya sorts its buckets by resolution
  for (const auto& img : images) {
    check(img.repeats >= 0, "repeats cannot be negative");
    auto choice = manager.select(img.width, img.height);
    counts[choice.bucket] += img.repeats;
    plan.per_image.push_back(choice);
    plan.images_with_repeats += img.repeats;
  }
  for (const auto& [reso, n] : counts) {
    if (n == 0) continue;
    const int64_t batches = ceil_div(n, s.batch_size);
    plan.buckets.push_back({reso, n, batches});
    plan.batches_per_epoch += batches;
  }
  plan.steps_per_epoch = ceil_div(plan.batches_per_epoch, s.gradient_accumulation_steps);
  plan.max_train_steps = s.max_train_epochs ? *s.max_train_epochs * plan.steps_per_epoch : s.max_train_steps;
  plan.epochs = plan.steps_per_epoch ? ceil_div(plan.max_train_steps, plan.steps_per_epoch) : 0;
  return plan;
}

}  // namespace kiln::engine::lora
