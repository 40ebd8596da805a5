#include "studio/dataset/quality.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <opencv2/imgproc.hpp>

#include "product_scenes.h"
#include "synthetic.h"

namespace kiln::studio {
namespace {

namespace cal = kiln::calibration;

bool has(const std::vector<Finding>& findings, const std::string& code) {
  return std::any_of(findings.begin(), findings.end(), [&](const Finding& f) { return f.code == code; });
}

const Finding* find(const std::vector<Finding>& findings, const std::string& code) {
  for (const Finding& f : findings)
    if (f.code == code) return &f;
  return nullptr;
}

std::vector<Finding> check(const cv::Mat& image, const DatasetSettings& s = preset_settings(Preset::Product, "acme"),
                           const std::string& name = "IMG_3.jpg") {
  return check_image(image, prepare_image(image, s, nullptr), s, name);
}

// A rendered bottle on white: one object, a large flat backdrop, crisp edges (issue 14's case).
cv::Mat bottle_on_white(cv::Size size, double yaw = 30) {
  cal::SceneSpec spec;
  spec.size = size;
  spec.view = {yaw, 12, 1};
  spec.fill = 0.55;
  return cal::render(spec);
}

TEST(Quality, SharpProductsOnPlainBackdropsRaiseNothing) {
  for (const cv::Size size : {cv::Size(512, 512), cv::Size(640, 800), cv::Size(800, 600)}) {
    const auto findings = check(bottle_on_white(size));
    EXPECT_TRUE(findings.empty()) << size << ": " << findings.front().message;
  }
  // As a photo: noise, a little lens softness, JPEG, a shadow; and as a cut-out layer.
  cal::SceneSpec photo;
  photo.finish = cal::Finish::Photo;
  photo.backdrop = cal::Backdrop::Grey;
  photo.size = {700, 700};
  EXPECT_TRUE(check(cal::render(photo)).empty());
  photo.layer = true;
  EXPECT_TRUE(check(cal::render(photo)).empty());
}

TEST(Quality, BlurryMessageNamesTheImageTheNumbersAndWhatToDo) {
  const cv::Mat sharp = bottle_on_white({640, 640});
  // 640 px are trained at 512: a blur of σ 2.5 px there is 3.1 px here.
  const auto findings = check(cal::gaussian_blur(sharp, 2.5 * 640 / 512));
  const Finding* f = find(findings, "blurry");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->message.find("'IMG_3.jpg' looks blurry"), std::string::npos) << f->message;
  EXPECT_NE(f->message.find("px wide at the 512 px it is trained at"), std::string::npos) << f->message;
  EXPECT_NE(f->message.find("under 4.1 px"), std::string::npos) << f->message;
  EXPECT_NE(f->action.find("sharper photo"), std::string::npos) << f->action;
}

TEST(Quality, BlurIsJudgedAtTheTrainingSize) {
  // The same blur in source pixels: invisible once a large photo is shrunk to 512, plain on a
  // photo about that size.
  const cv::Mat large = cal::gaussian_blur(bottle_on_white({2000, 2000}), 3.0);
  EXPECT_FALSE(has(check(large), "blurry"));
  const cv::Mat small = cal::gaussian_blur(bottle_on_white({560, 560}), 3.0);
  EXPECT_TRUE(has(check(small), "blurry"));
}

TEST(Quality, MotionBlurIsCaughtAndSaidToRunOneWay) {
  const auto findings = check(cal::motion_blur(bottle_on_white({640, 640}), 12, 0));
  const Finding* f = find(findings, "blurry");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->message.find("the smear runs one way"), std::string::npos) << f->message;
}

TEST(Quality, TooSmallIsJudgedOnTheCropThatIsTrained) {
  // A small subject in a large picture is not too small: the crop widens, nothing is enlarged.
  EXPECT_TRUE(check(test::product_photo(900, 900, cv::Rect(380, 330, 140, 260))).empty());
  // A picture slightly under the training size is enlarged a little: no finding.
  EXPECT_FALSE(has(check(bottle_on_white({460, 460})), "too_small"));
  // A small one: the message gives the sizes and the enlargement.
  const auto findings = check(bottle_on_white({300, 300}));
  const Finding* f = find(findings, "too_small");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->message.find("px across in the picture (300x300)"), std::string::npos) << f->message;
  EXPECT_NE(f->message.find("enlarged 1.7x"), std::string::npos) << f->message;
  EXPECT_NE(f->action.find("at least 342 px"), std::string::npos) << f->action;
  EXPECT_FALSE(has(findings, "blurry")) << "too_small speaks for an enlarged picture";
}

TEST(Quality, ExtremeAspectOnlyWhenTheCropLosesSomething) {
  DatasetSettings centre;  // custom: a centred square
  const auto wide = check(test::scene(1800, 600), centre);
  const Finding* f = find(wide, "extreme_aspect");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->message.find("3.0:1 (1800x600)"), std::string::npos) << f->message;
  EXPECT_NE(f->message.find("keeps only 33%"), std::string::npos) << f->message;
  EXPECT_FALSE(has(check(test::scene(1024, 600), centre), "extreme_aspect"));
  // A slim bottle's cut-out layer, centred on white by the product preset: nothing is cut.
  EXPECT_FALSE(has(check(test::product_layer(300, 900, cv::Rect(0, 0, 300, 900))), "extreme_aspect"));
  // A busy 3:1 scene: no single subject, the whole strip is squeezed into the square.
  EXPECT_TRUE(has(check(test::scene(1800, 600)), "extreme_aspect"));
}

TEST(Quality, EmptyAndFlatPictures) {
  const auto transparent = check(cv::Mat(600, 600, CV_8UC4, cv::Scalar(10, 20, 30, 0)));
  ASSERT_EQ(transparent.size(), 1u);
  EXPECT_EQ(transparent[0].code, "transparent");
  EXPECT_NE(transparent[0].message.find("fully transparent"), std::string::npos);
  // A speck on an empty layer is as good as empty.
  cv::Mat speck(900, 700, CV_8UC4, cv::Scalar(0, 0, 0, 0));
  cv::circle(speck, cv::Point(350, 450), 4, cv::Scalar(40, 40, 40, 255), cv::FILLED);
  const auto almost = check(speck);
  ASSERT_EQ(almost.size(), 1u);
  EXPECT_NE(almost[0].message.find("only 0.01% of it is opaque"), std::string::npos) << almost[0].message;

  const auto flat = check(cv::Mat(600, 600, CV_8UC3, cv::Scalar(200, 200, 200)));
  ASSERT_EQ(flat.size(), 1u);
  EXPECT_EQ(flat[0].code, "flat");
}

TEST(Quality, EveryFindingSaysWhatToDo) {
  DatasetSettings centre;
  std::vector<Finding> all;
  for (const cv::Mat& m : {test::scene(200, 150), test::scene(1800, 600), test::blurred(test::scene(768, 768), 4)}) {
    const auto f = check(m, centre);
    all.insert(all.end(), f.begin(), f.end());
  }
  const auto ds = check_dataset(3, 3, preset_settings(Preset::Product, "acme"), "acme");
  all.insert(all.end(), ds.begin(), ds.end());
  ASSERT_GE(all.size(), 5u);
  for (const Finding& f : all) {
    EXPECT_FALSE(f.action.empty()) << f.code;
    EXPECT_EQ(f.message.back(), '.') << f.message;
  }
}

TEST(Quality, DatasetFindings) {
  DatasetSettings product = preset_settings(Preset::Product, "acme");
  const auto few = check_dataset(8, 8, product, "acme");
  ASSERT_TRUE(has(few, "few_images"));
  EXPECT_NE(few.front().message.find("dataset 'acme' has only 8 images"), std::string::npos) << few.front().message;
  EXPECT_NE(few.front().message.find("20-40"), std::string::npos);
  EXPECT_TRUE(has(few, "steps"));  // 8 x 10 x 10 = 800

  EXPECT_FALSE(has(check_dataset(25, 25, product), "few_images"));
  EXPECT_FALSE(has(check_dataset(25, 25, product), "steps"));  // 2,500 steps
  EXPECT_TRUE(has(check_dataset(17, 17, product), "few_images"));  // enough in general, few for a product

  DatasetSettings person = preset_settings(Preset::Character, "anna");  // 30 repeats
  const auto many = check_dataset(30, 60, person, "anna");               // 60 x 30 x 10 = 18,000 steps
  ASSERT_TRUE(has(many, "steps"));
  EXPECT_NE(many.back().message.find("above"), std::string::npos);
  EXPECT_NE(many.back().action.find("kiln dataset prepare anna --repeats 3"), std::string::npos) << many.back().action;
  EXPECT_EQ(estimated_steps(60, person), 18000);
  person.batch_size = 4;
  EXPECT_EQ(estimated_steps(61, person), (61 * 30 + 3) / 4 * 10);
}

}  // namespace
}  // namespace kiln::studio
