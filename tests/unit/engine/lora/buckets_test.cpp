#include "engine/lora/buckets.h"

#include <gtest/gtest.h>

#include "engine/error.h"

namespace kiln::test {
namespace {

using namespace engine::lora;

std::vector<Resolution> R(std::initializer_list<std::pair<int64_t, int64_t>> list) {
  std::vector<Resolution> out;
  for (const auto& [w, h] : list) out.push_back({w, h});
  return out;
}

TEST(BucketsTest, Kohya512Buckets) {
  // 512² area, 256…1024 in steps of 64: for width w, height = min(1024, ⌊262144 / w / 64⌋·64).
  EXPECT_EQ(make_bucket_resolutions({512, 512}),
            R({{256, 832}, {256, 896}, {256, 960}, {256, 1024}, {320, 704}, {320, 768}, {384, 640}, {448, 576},
               {512, 512}, {576, 448}, {640, 384}, {704, 320}, {768, 320}, {832, 256}, {896, 256}, {960, 256},
               {1024, 256}}));
  EXPECT_EQ(make_bucket_resolutions({512, 768}).size(), 19u);
}

TEST(BucketsTest, NearestAspectAndResize) {
  BucketManager m({});
  auto c = m.select(1024, 768);  // 4:3 → 576×448 (9:7) is nearest; the height fits, width is cropped
  EXPECT_EQ(c.bucket, (Resolution{576, 448}));
  EXPECT_EQ(c.resized_size, (Resolution{597, 448}));
  EXPECT_NEAR(c.ar_error, 576.0 / 448 - 4.0 / 3, 1e-12);
  c = m.select(768, 1024);
  EXPECT_EQ(c.bucket, (Resolution{448, 576}));
  EXPECT_EQ(c.resized_size, (Resolution{448, 597}));
  EXPECT_EQ(m.select(1000, 1000).bucket, (Resolution{512, 512}));
  EXPECT_EQ(m.select(512, 512).resized_size, (Resolution{512, 512}));
  c = m.select(3000, 1000);  // 3:1 → 832×256 (3.25)
  EXPECT_EQ(c.bucket, (Resolution{832, 256}));
  EXPECT_EQ(c.resized_size, (Resolution{832, 277}));
  c = m.select(333, 777);
  EXPECT_EQ(c.bucket, (Resolution{320, 768}));
  EXPECT_EQ(c.resized_size, (Resolution{329, 768}));
}

TEST(BucketsTest, NoUpscaleDerivesBucketsFromTheImages) {
  BucketOptions o;
  o.bucket_no_upscale = true;
  BucketManager m(o);
  auto c = m.select(1024, 768);  // larger than 512²: shrunk to 512×384 keeping 4:3
  EXPECT_EQ(c.bucket, (Resolution{512, 384}));
  EXPECT_EQ(c.resized_size, (Resolution{512, 384}));
  c = m.select(300, 200);  // smaller: never enlarged, floored to 64s and cropped
  EXPECT_EQ(c.bucket, (Resolution{256, 192}));
  EXPECT_EQ(c.resized_size, (Resolution{300, 200}));
  EXPECT_EQ(m.select(700, 300).bucket, (Resolution{640, 256}));
  EXPECT_EQ(m.select(2000, 500).bucket, (Resolution{1024, 256}));
}

TEST(BucketsTest, WithoutBucketingEverythingTrainsAtTheResolution) {
  BucketOptions o;
  o.enable_bucket = false;
  o.resolution = {512, 512};
  BucketManager m(o);
  const auto c = m.select(1024, 768);
  EXPECT_EQ(c.bucket, (Resolution{512, 512}));
  EXPECT_EQ(c.resized_size, (Resolution{683, 512}));
}

TEST(BucketsTest, StepCountsWithMixedBucketsAndRepeats) {
  // Buckets: 448×576 ← 10, 512² ← 10, 576×448 ← 10 + 5, 832×256 ← 3 (entries with repeats).
  const std::vector<DatasetImage> images{{1024, 768, 10}, {768, 1024, 10}, {512, 512, 10}, {640, 480, 5}, {3000, 1000, 3}};
  StepOptions s;
  auto plan = plan_steps(images, {}, s);
  EXPECT_EQ(plan.images_with_repeats, 38);
  ASSERT_EQ(plan.buckets.size(), 4u);
  EXPECT_EQ(plan.buckets[0].resolution, (Resolution{448, 576}));
  EXPECT_EQ(plan.buckets[2].images, 15);
  EXPECT_EQ(plan.batches_per_epoch, 38);
  EXPECT_EQ(plan.steps_per_epoch, 38);
  EXPECT_EQ(plan.max_train_steps, 1600);
  EXPECT_EQ(plan.epochs, 43);  // ceil(1600 / 38)

  s.batch_size = 2;  // ceil per bucket: 5 + 5 + 8 + 2
  plan = plan_steps(images, {}, s);
  EXPECT_EQ(plan.batches_per_epoch, 20);
  EXPECT_EQ(plan.buckets[3].batches, 2);
  s.gradient_accumulation_steps = 3;
  plan = plan_steps(images, {}, s);
  EXPECT_EQ(plan.steps_per_epoch, 7);  // ceil(20 / 3)
  EXPECT_EQ(plan.epochs, 229);         // ceil(1600 / 7)

  s.batch_size = 4;  // 3 + 3 + 4 + 1
  s.gradient_accumulation_steps = 1;
  s.max_train_epochs = 10;
  plan = plan_steps(images, {}, s);
  EXPECT_EQ(plan.batches_per_epoch, 11);
  EXPECT_EQ(plan.max_train_steps, 110);
  EXPECT_EQ(plan.epochs, 10);
}

TEST(BucketsTest, TheGuidesFormula) {
  // WORKFLOW.md: 5 images × 50 repeats × 10 epochs / batch 1 = 2,500 steps (one bucket).
  const std::vector<DatasetImage> images(5, DatasetImage{512, 512, 50});
  StepOptions s;
  s.max_train_epochs = 10;
  EXPECT_EQ(plan_steps(images, {}, s).max_train_steps, 2500);
}

TEST(BucketsTest, InconsistentOptionsAreRefused) {
  BucketOptions o;
  o.min_bucket_reso = 640;  // above the 512 resolution
  EXPECT_THROW(BucketManager{o}, engine::Error);
  StepOptions s;
  s.batch_size = 0;
  EXPECT_THROW(plan_steps({}, {}, s), engine::Error);
}

}  // namespace
}  // namespace kiln::test
