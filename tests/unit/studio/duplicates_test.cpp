#include "studio/dataset/duplicates.h"

#include <gtest/gtest.h>

#include "product_scenes.h"
#include "studio/dataset/quality.h"

namespace kiln::studio {
namespace {

namespace cal = kiln::calibration;

PictureSignature signature_of(const cv::Mat& image) {
  const DatasetSettings s = preset_settings(Preset::Product, "acme");
  return assess_image(image, prepare_image(image, s, nullptr), s, "x").signature;
}

cv::Mat view(double yaw, double elevation, cal::Backdrop backdrop = cal::Backdrop::White, uint64_t product = 1) {
  cal::SceneSpec spec;
  spec.object = cal::Object::Bottle;
  spec.product = product;
  spec.view = {yaw, elevation, 1};
  spec.backdrop = backdrop;
  spec.finish = cal::Finish::Photo;
  spec.size = {720, 720};
  return cal::render(spec);
}

const double kLimit = QualityThresholds{}.min_similarity;

TEST(Duplicates, TheSamePictureReEncodedResizedCroppedOrRecolouredMatches) {
  const cv::Mat original = view(30, 12);
  const PictureSignature a = signature_of(original);
  EXPECT_GT(picture_similarity(a, a), 0.99);
  EXPECT_GE(picture_similarity(a, signature_of(cal::reencode_jpeg(original, 70))), kLimit);
  EXPECT_GE(picture_similarity(a, signature_of(cal::resized(original, 0.6))), kLimit);
  EXPECT_GE(picture_similarity(a, signature_of(cal::cropped(original, 0.06, 0.04, 0, 0))), kLimit);
  EXPECT_GE(picture_similarity(a, signature_of(cal::colour_shifted(original, 14, 1.05, 8, 1.15))), kLimit);
}

TEST(Duplicates, DifferentViewsOnTheSameBackdropDoNot) {
  const PictureSignature front = signature_of(view(0, 10));
  for (const auto& [yaw, elevation] : {std::pair{90.0, 8.0}, {180.0, 10.0}, {0.0, 40.0}, {45.0, 12.0}})
    EXPECT_LT(picture_similarity(front, signature_of(view(yaw, elevation))), kLimit) << yaw << " / " << elevation;
}

TEST(Duplicates, SignatureRoundTripsThroughItsFiles) {
  PictureSignature s = signature_of(view(30, 12));
  s.edge_width = 2.75;
  const std::string facts = encode_facts(s);
  const PictureSignature back = decode_signature(facts, encode_thumbnails(s));
  ASSERT_FALSE(back.empty());
  EXPECT_EQ(back.across, s.across);
  EXPECT_DOUBLE_EQ(back.edge_width, 2.75);
  EXPECT_EQ(back.subject.inside, s.subject.inside);
  EXPECT_EQ(cv::norm(back.subject.grey, s.subject.grey, cv::NORM_INF), 0);
  EXPECT_GT(picture_similarity(back, s), 0.99);
  // The facts alone are enough to choose which copy to keep; damaged input gives nothing.
  const PictureSignature facts_only = decode_signature(facts, {});
  EXPECT_TRUE(facts_only.empty());
  EXPECT_EQ(facts_only.across, s.across);
  EXPECT_TRUE(decode_signature("garbage", encode_thumbnails(s)).empty());
  EXPECT_TRUE(decode_signature(facts, {1, 2, 3}).empty());
}

TEST(Duplicates, OneCopyIsKeptTheOthersNameIt) {
  // Detail: 0 and 3 are copies of one picture (3 larger), 1 alone, 2 another copy of 0.
  const std::vector<double> detail = {100, 90, 80, 150};
  const std::vector<std::tuple<std::size_t, std::size_t, double>> similar = {
      {0, 3, 0.95}, {0, 1, 0.5}, {2, 0, 0.9}, {2, 3, 0.7}};
  const auto dups = find_duplicates(detail, similar, 0.78);
  ASSERT_EQ(dups.size(), 2u);
  EXPECT_EQ(dups[0].image, 0u);
  EXPECT_EQ(dups[0].keeper, 3u);
  EXPECT_DOUBLE_EQ(dups[0].similarity, 0.95);
  EXPECT_EQ(dups[1].image, 2u);  // joined through 0
  EXPECT_EQ(dups[1].keeper, 3u);
  // Within 5 % of each other (re-encodings of one size) the first is kept.
  const auto tie = find_duplicates({100, 103}, {{0, 1, 0.99}}, 0.78);
  ASSERT_EQ(tie.size(), 1u);
  EXPECT_EQ(tie[0].image, 1u);
}

TEST(Duplicates, FindingsNameTheKeptPictureAndSayWhy) {
  PictureSignature sharp, blurred;
  sharp.across = blurred.across = 400;
  sharp.edge_width = 2.8;
  blurred.edge_width = 6.0;
  const auto findings = near_duplicate_findings({blurred, sharp}, {{0, 1, 0.93}}, {"copy.jpg", "IMG_1.jpg"},
                                                {"0001", "0002"}, 0.78);
  ASSERT_EQ(findings.size(), 1u);
  const Finding& f = findings[0].second;
  EXPECT_EQ(findings[0].first, 0u);
  EXPECT_EQ(f.code, "near_duplicate");
  EXPECT_EQ(f.other, "0002");
  EXPECT_NE(f.message.find("'copy.jpg' is the same picture as 'IMG_1.jpg' (0002)"), std::string::npos) << f.message;
  EXPECT_NE(f.message.find("0.93"), std::string::npos) << f.message;
  EXPECT_NE(f.action.find("Keep 'IMG_1.jpg' (it is sharper)"), std::string::npos) << f.action;
}

}  // namespace
}  // namespace kiln::studio
