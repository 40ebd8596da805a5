#include "studio/dataset/sharpness.h"

#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include "product_scenes.h"

namespace kiln::studio {
namespace {

namespace cal = kiln::calibration;

// Filled shapes (steps) in two contrasts, on a plain backdrop.
cv::Mat shapes(int side, int contrast) {
  cv::Mat img(side, side, CV_8UC3, cv::Scalar::all(128));
  const int s = side / 8;
  cv::rectangle(img, cv::Rect(s, s, 3 * s, 2 * s), cv::Scalar::all(128 + contrast), cv::FILLED);
  cv::circle(img, cv::Point(5 * s, 5 * s), 2 * s, cv::Scalar::all(128 - contrast), cv::FILLED, cv::LINE_AA);
  cv::fillConvexPoly(img, std::vector<cv::Point>{{s, 7 * s}, {3 * s, 4 * s}, {4 * s, 7 * s}},
                     cv::Scalar::all(128 + contrast / 2), cv::LINE_AA);
  return img;
}

TEST(Sharpness, GaussianBlurWidensEdgesByItsSigma) {
  const cv::Mat sharp = shapes(512, 80);
  const EdgeSharpness s = edge_sharpness(sharp);
  ASSERT_TRUE(s.measured());
  EXPECT_LT(s.width, 3.3) << "crisp steps are 2-3 px wide after the measure's own slight blur";
  double previous = s.width;
  for (const double sigma : {1.0, 2.0, 3.0}) {
    cv::Mat blurred;
    cv::GaussianBlur(sharp, blurred, cv::Size(0, 0), sigma);
    const double w = edge_sharpness(blurred).width;
    EXPECT_GT(w, previous) << "sigma " << sigma;
    EXPECT_NEAR(w, 2.5 * std::sqrt(sigma * sigma + 0.8 * 0.8 + 0.5 * 0.5), 1.2) << "sigma " << sigma;
    previous = w;
  }
}

TEST(Sharpness, DoesNotDependOnContrastOrBackdrop) {
  const double strong = edge_sharpness(shapes(512, 100)).width, faint = edge_sharpness(shapes(512, 30)).width;
  EXPECT_NEAR(strong, faint, 0.3);
  // The same object with five times more empty backdrop around it measures the same.
  cv::Mat padded;
  cv::copyMakeBorder(shapes(512, 80), padded, 1000, 1000, 1000, 1000, cv::BORDER_CONSTANT, cv::Scalar::all(128));
  EXPECT_NEAR(edge_sharpness(padded).width, edge_sharpness(shapes(512, 80)).width, 0.3);
}

TEST(Sharpness, IsMeasuredAtTheScaleGiven) {
  cv::Mat big, blurred;
  cv::resize(shapes(512, 80), big, cv::Size(2048, 2048), 0, 0, cv::INTER_NEAREST);
  cv::GaussianBlur(big, blurred, cv::Size(0, 0), 6.0);  // σ 6 at 2048 px is σ 1.5 at 512
  EXPECT_GT(edge_sharpness(blurred, {}, 1.0).width, 10);
  EXPECT_LT(edge_sharpness(blurred, {}, 0.25).width, 6);
  EXPECT_NEAR(edge_sharpness(blurred, {}, 0.25).scale, 0.25, 1e-9);
  EXPECT_NEAR(edge_sharpness(blurred, {}, 4.0).scale, 1.0, 1e-9) << "never enlarged";
}

TEST(Sharpness, MotionBlurShowsInOneDirection) {
  const cv::Mat sharp = shapes(512, 80);
  const EdgeSharpness s = edge_sharpness(cal::motion_blur(sharp, 12, 0));  // horizontal smear
  ASSERT_TRUE(s.measured());
  EXPECT_GT(s.width, 8);
  EXPECT_TRUE(s.smeared());
  EXPECT_EQ(s.worst_direction, 0) << "vertical edges (horizontal gradient) take the smear";
  EXPECT_FALSE(edge_sharpness(sharp).smeared());
}

TEST(Sharpness, ThinLinesAndSoftShadingAreNotSteps) {
  // 1-px lines: their long sides are no steps (a line is as thin as it is drawn, blurred or not);
  // only their ends are.
  cv::Mat lines(400, 400, CV_8UC3, cv::Scalar::all(230));
  for (int y = 40; y < 400; y += 40) cv::line(lines, {20, y}, {380, y}, cv::Scalar::all(30), 1);
  const EdgeSharpness l = edge_sharpness(lines);
  EXPECT_LT(l.edges, 40) << "9 lines of 360 px: 18 ends";
  EXPECT_EQ(l.widths[2], 0) << "no horizontal edge judged";
  // A crisp object with a large soft shadow beside it stays crisp.
  cv::Mat scene = shapes(512, 80), shadow = cv::Mat::zeros(scene.size(), CV_8UC3);
  cv::ellipse(shadow, {380, 120}, {90, 50}, 0, 0, 360, cv::Scalar::all(60), cv::FILLED);
  cv::GaussianBlur(shadow, shadow, cv::Size(0, 0), 18);
  scene -= shadow;
  EXPECT_LT(edge_sharpness(scene).width, 3.5);
}

TEST(Sharpness, OnlyTheRegionAndMaskCount) {
  cv::Mat img = shapes(512, 80);
  cv::Mat right = img(cv::Rect(256, 0, 256, 512));
  cv::GaussianBlur(right, right, cv::Size(0, 0), 3.0);
  EXPECT_GT(edge_sharpness(img, cv::Rect(256, 0, 256, 512)).width, 5.5);
  cv::Mat mask = cv::Mat::zeros(img.size(), CV_8U);
  mask(cv::Rect(0, 0, 200, 512)).setTo(255);
  EXPECT_LT(edge_sharpness(img, {}, 1.0, mask).width, 3.5);
}

}  // namespace
}  // namespace kiln::studio
