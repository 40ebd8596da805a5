#include "studio/dataset/quality.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <opencv2/imgcodecs.hpp>

#include "synthetic.h"

namespace kiln::studio {
namespace {

bool has(const std::vector<Finding>& findings, const std::string& code) {
  return std::any_of(findings.begin(), findings.end(), [&](const Finding& f) { return f.code == code; });
}

// The calibration behind QualityThresholds::min_sharpness: sharp synthetic scenes of several
// sizes against their Gaussian-blurred copies. The printed values are the documented ranges.
TEST(Quality, SharpnessThresholdSeparatesSharpFromBlurred) {
  const double threshold = QualityThresholds{}.min_sharpness;
  double min_sharp = 1e18, max_blur2 = 0, max_blur3 = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    for (const cv::Size size : {cv::Size(768, 768), cv::Size(1024, 640), cv::Size(600, 900)}) {
      const cv::Mat sharp = test::scene(size.width, size.height, seed);
      min_sharp = std::min(min_sharp, sharpness(sharp));
      // Blur is measured relative to a 512 px short side, so blur at that scale.
      const double sigma_scale = std::min(size.width, size.height) / 512.0;
      max_blur2 = std::max(max_blur2, sharpness(test::blurred(sharp, 2.0 * sigma_scale)));
      max_blur3 = std::max(max_blur3, sharpness(test::blurred(sharp, 3.0 * sigma_scale)));
    }
  }
  std::printf("sharpness: sharp scenes >= %.0f, blur sigma 2 <= %.1f, sigma 3 <= %.1f, threshold %.0f\n", min_sharp,
              max_blur2, max_blur3, threshold);
  EXPECT_GT(min_sharp, 2 * threshold);
  EXPECT_LT(max_blur2, threshold);
  EXPECT_LT(max_blur3, threshold / 2);
}

TEST(Quality, SharpnessDoesNotDependOnResolution) {
  const cv::Mat big = test::scene(1536, 1536, 3);
  cv::Mat small;
  cv::resize(big, small, cv::Size(768, 768), 0, 0, cv::INTER_AREA);
  const double a = sharpness(big), b = sharpness(small);
  // Unnormalised, the Laplacian of the 1536 px copy is several times weaker; normalised, the two
  // stay within a factor of 2 (resampling filters differ), far from the sharp/blurry gap (>25x).
  EXPECT_GT(a / b, 0.5) << a << " vs " << b;
  EXPECT_LT(a / b, 2.0) << a << " vs " << b;
}

TEST(Quality, PerceptualHashFindsNearDuplicatesOnly) {
  const cv::Mat a = test::scene(800, 600, 11);
  cv::Mat resized, brighter, recompressed;
  cv::resize(a, resized, cv::Size(400, 300), 0, 0, cv::INTER_AREA);
  a.convertTo(brighter, -1, 1.0, 12);
  std::vector<uchar> jpeg;
  cv::imencode(".jpg", a, jpeg, {cv::IMWRITE_JPEG_QUALITY, 60});
  recompressed = cv::imdecode(jpeg, cv::IMREAD_COLOR);
  const uint64_t h = perceptual_hash(a);
  const int limit = QualityThresholds{}.max_hash_distance;
  EXPECT_LE(hash_distance(h, perceptual_hash(resized)), limit / 2);
  EXPECT_LE(hash_distance(h, perceptual_hash(brighter)), limit / 2);
  EXPECT_LE(hash_distance(h, perceptual_hash(recompressed)), limit / 2);
  int closest_other = 64;
  for (uint64_t seed = 20; seed < 30; ++seed)
    closest_other = std::min(closest_other, hash_distance(h, perceptual_hash(test::scene(800, 600, seed))));
  EXPECT_GT(closest_other, limit) << "different scenes must not count as near-duplicates";

  const auto pairs = near_duplicates({h, perceptual_hash(test::scene(800, 600, 21)), perceptual_hash(resized)});
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0], (std::pair<std::size_t, std::size_t>{0, 2}));
}

TEST(Quality, ImageFindingsHavePlainReasons) {
  EXPECT_TRUE(check_image(test::scene(768, 768)).empty());

  const auto tiny = check_image(test::scene(200, 150));
  ASSERT_TRUE(has(tiny, "too_small"));
  EXPECT_NE(tiny.front().message.find("150 px"), std::string::npos) << tiny.front().message;

  EXPECT_TRUE(has(check_image(test::blurred(test::scene(768, 768), 3)), "blurry"));
  EXPECT_TRUE(has(check_image(test::scene(1800, 600)), "extreme_aspect"));
  EXPECT_FALSE(has(check_image(test::scene(1024, 600)), "extreme_aspect"));

  const cv::Mat clear(600, 600, CV_8UC4, cv::Scalar(10, 20, 30, 0));
  const auto transparent = check_image(clear);
  ASSERT_EQ(transparent.size(), 1u);
  EXPECT_EQ(transparent[0].code, "transparent");

  const auto flat = check_image(cv::Mat(600, 600, CV_8UC3, cv::Scalar(200, 200, 200)));
  ASSERT_EQ(flat.size(), 1u);
  EXPECT_EQ(flat[0].code, "flat");

  // A sharp product on a transparent layer is judged on the product, not the empty background.
  EXPECT_FALSE(has(check_image(test::product_layer(768, 768, cv::Rect(250, 150, 260, 480))), "blurry"));
}

TEST(Quality, DatasetFindings) {
  DatasetSettings product = preset_settings(Preset::Product, "acme");
  const auto few = check_dataset(8, 8, product);
  ASSERT_TRUE(has(few, "few_images"));
  EXPECT_NE(few.front().message.find("20-40"), std::string::npos);
  EXPECT_TRUE(has(few, "steps"));  // 8 x 10 x 10 = 800

  EXPECT_FALSE(has(check_dataset(25, 25, product), "few_images"));
  EXPECT_FALSE(has(check_dataset(25, 25, product), "steps"));  // 2,500 steps
  EXPECT_TRUE(has(check_dataset(17, 17, product), "few_images"));  // enough in general, few for a product

  DatasetSettings person = preset_settings(Preset::Character, "anna");  // 30 repeats
  const auto many = check_dataset(30, 60, person);                       // 60 x 30 x 10 = 18,000 steps
  ASSERT_TRUE(has(many, "steps"));
  EXPECT_NE(many.back().message.find("above"), std::string::npos);
  EXPECT_NE(many.back().message.find("repeats to about 3"), std::string::npos) << many.back().message;
  EXPECT_EQ(estimated_steps(60, person), 18000);
  person.batch_size = 4;
  EXPECT_EQ(estimated_steps(61, person), (61 * 30 + 3) / 4 * 10);
}

}  // namespace
}  // namespace kiln::studio
