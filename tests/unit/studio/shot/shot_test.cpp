// Product shots, the pixel side: placement, the product layer, the repaint mask and the exact
// composite (the engine's part is tested with the tiny models in kiln_integration_tests' Shot.*).
#include <functional>

#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include "studio/error.h"
#include "studio/shot/compose.h"
#include "studio/shot/placement.h"

namespace kiln::studio::shot {
namespace {

// A bottle-like cut-out: opaque body with an anti-aliased outline, a hole (a handle's gap) and a
// transparent margin around it; colours vary per pixel so a shifted or resampled pixel shows.
cv::Mat product(int w = 60, int h = 100) {
  cv::Mat bgra(h, w, CV_8UC4, cv::Scalar(0, 0, 0, 0));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) bgra.at<cv::Vec4b>(y, x) = {uint8_t(x * 4), uint8_t(y * 2), uint8_t(200 - x), 0};
  cv::Mat alpha(h, w, CV_8UC1, cv::Scalar(0));
  cv::ellipse(alpha, {w / 2, h / 2}, {w / 2 - 6, h / 2 - 8}, 0, 0, 360, 255, cv::FILLED, cv::LINE_AA);
  cv::circle(alpha, {w / 2, h / 2}, 6, 0, cv::FILLED);  // a hole
  cv::insertChannel(alpha, bgra, 3);
  return bgra;
}

// A hard-edged cut-out whose visible box is exactly (6, 8) 48x84.
cv::Mat boxed_product() {
  cv::Mat bgra(100, 60, CV_8UC4, cv::Scalar(10, 20, 30, 0));
  bgra(cv::Rect(6, 8, 48, 84)).setTo(cv::Scalar(40, 50, 60, 255));
  return bgra;
}

cv::Mat alpha_of(const cv::Mat& bgra) {
  cv::Mat a;
  cv::extractChannel(bgra, a, 3);
  return a;
}

void expect_invalid(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ShotPlacement, AutoFillsCentresAndRestsOnTheGround) {
  const cv::Mat p = boxed_product();
  const cv::Rect visible = visible_bounds(alpha_of(p));
  EXPECT_EQ(visible, cv::Rect(6, 8, 48, 84));
  const cv::Size frame(512, 384);
  const Placement a = auto_placement(p.size(), visible, frame, {0.5, 0.9});
  // 84 px of visible height fill half of 384: scale 192/84.
  EXPECT_NEAR(a.scale, 192.0 / 84, 1e-9);
  const int top = a.y + static_cast<int>(std::floor(visible.y * a.height / 100.0));
  const int bottom = a.y + static_cast<int>(std::ceil(visible.br().y * a.height / 100.0));
  EXPECT_NEAR(bottom, 0.9 * 384, 1);
  EXPECT_NEAR(bottom - top, 192, 2);
  const int left = a.x + static_cast<int>(std::floor(visible.x * a.width / 60.0));
  const int right = a.x + static_cast<int>(std::ceil(visible.br().x * a.width / 60.0));
  EXPECT_NEAR(left + right, 512, 2);
  EXPECT_NO_THROW(check_placement(a, p.size(), visible, frame));
  // A ground line too high for the product: it stays inside the frame.
  const Placement high = auto_placement(p.size(), visible, frame, {0.9, 0.2});
  EXPECT_NO_THROW(check_placement(high, p.size(), visible, frame));
}

TEST(ShotPlacement, ExplicitPlacementsOutsideOrTooLargeAreRefused) {
  const cv::Mat p = boxed_product();
  const cv::Rect visible = visible_bounds(alpha_of(p));
  const cv::Size frame(128, 128);
  // The transparent margin may hang outside; visible pixels may not.
  EXPECT_NO_THROW(check_placement(explicit_placement(p.size(), -6, -8, 1), p.size(), visible, frame));
  expect_invalid([&] { check_placement(explicit_placement(p.size(), -7, 0, 1), p.size(), visible, frame); }, "outside");
  expect_invalid([&] { check_placement(explicit_placement(p.size(), 100, 10, 1), p.size(), visible, frame); }, "outside");
  expect_invalid([&] { check_placement(explicit_placement(p.size(), 0, 0, 2), p.size(), visible, frame); },
                 "larger than the 128x128 frame");
  expect_invalid([&] { explicit_placement(p.size(), 0, 0, 0); }, "scale");
  expect_invalid([&] { auto_placement(p.size(), cv::Rect(), frame, {}); }, "no visible pixel");
}

TEST(ShotCompose, ScaleOneKeepsEveryPixelAndTheCompositeKeepsTheRule) {
  const cv::Mat p = product();
  const Placement at = explicit_placement(p.size(), 13, 21, 1);
  const ProductLayer layer = place_product(p, at, {96, 136});
  ASSERT_EQ(layer.bgra.size(), cv::Size(96, 136));
  EXPECT_EQ(cv::norm(layer.bgra(cv::Rect(13, 21, 60, 100)), p, cv::NORM_INF), 0);
  cv::Mat scene(136, 96, CV_8UC3);
  cv::randu(scene, 0, 256);
  const cv::Mat out = composite(layer, scene);
  int opaque = 0, soft = 0;
  for (int y = 0; y < out.rows; ++y)
    for (int x = 0; x < out.cols; ++x) {
      const cv::Vec4b q = layer.bgra.at<cv::Vec4b>(y, x);
      const cv::Vec3b o = out.at<cv::Vec3b>(y, x), s = scene.at<cv::Vec3b>(y, x);
      if (q[3] == 255) {
        ++opaque;
        ASSERT_EQ(o, cv::Vec3b(q[0], q[1], q[2])) << x << "," << y;
      } else if (q[3] == 0) {
        ASSERT_EQ(o, s) << x << "," << y;
      } else {
        ++soft;
        for (int c = 0; c < 3; ++c) ASSERT_NEAR(o[c], (q[c] * q[3] + s[c] * (255 - q[3])) / 255.0, 0.5 + 1e-9);
      }
    }
  EXPECT_GT(opaque, 2000);
  EXPECT_GT(soft, 50);  // the anti-aliased outline and the hole's rim
}

TEST(ShotCompose, ScaledProductsDoNotBleedTransparentColours) {
  // Transparent pixels hold pure blue; a straight resize would drag blue into the edge.
  cv::Mat p(40, 40, CV_8UC4, cv::Scalar(255, 0, 0, 0));
  cv::rectangle(p, {10, 10}, {29, 29}, cv::Scalar(0, 200, 0, 255), cv::FILLED);
  for (double scale : {0.5, 1.7}) {
    const ProductLayer layer = place_product(p, explicit_placement(p.size(), 0, 0, scale), {80, 80});
    for (int y = 0; y < 80; ++y)
      for (int x = 0; x < 80; ++x) {
        const cv::Vec4b q = layer.bgra.at<cv::Vec4b>(y, x);
        if (q[3] > 16) ASSERT_LE(q[0], 8) << "blue bled in at " << x << "," << y << " scale " << scale;
      }
  }
}

TEST(ShotCompose, RepaintMaskCoversAllButTheShrunkCore) {
  const cv::Mat alpha = alpha_of(product());
  for (int edge : {0, 2, 5}) {
    const cv::Mat m = repaint_mask(alpha, edge), interior = interior_mask(alpha, edge);
    for (int y = 0; y < alpha.rows; ++y)
      for (int x = 0; x < alpha.cols; ++x) {
        const int a = alpha.at<uint8_t>(y, x), r = m.at<uint8_t>(y, x);
        if (a < 255) ASSERT_EQ(r, 255) << "everything not opaque is repainted (" << x << "," << y << ")";
        if (interior.at<uint8_t>(y, x) == 255 && edge == 0) ASSERT_EQ(r, 0);
      }
    // Shrinking by `edge` leaves fewer kept pixels; a larger edge repaints more.
    if (edge > 0) {
      EXPECT_LT(cv::countNonZero(interior), cv::countNonZero(alpha == 255));
      EXPECT_LT(cv::countNonZero(m < 128), cv::countNonZero(alpha == 255));
    }
  }
  EXPECT_GT(cv::countNonZero(repaint_mask(alpha, 2) < 128), cv::countNonZero(repaint_mask(alpha, 5) < 128));
}

TEST(ShotCompose, RestoreInteriorPutsBackOnlyTheInterior) {
  const cv::Mat p = product();
  const ProductLayer layer = place_product(p, explicit_placement(p.size(), 0, 0, 1), p.size());
  const cv::Mat harmonized(p.size(), CV_8UC3, cv::Scalar(9, 9, 9));
  const cv::Mat interior = interior_mask(layer.alpha, 3);
  const cv::Mat out = restore_interior(harmonized, layer, interior);
  cv::Mat product_bgr;
  cv::cvtColor(p, product_bgr, cv::COLOR_BGRA2BGR);
  for (int y = 0; y < out.rows; ++y)
    for (int x = 0; x < out.cols; ++x) {
      const cv::Vec3b expected = interior.at<uint8_t>(y, x) ? product_bgr.at<cv::Vec3b>(y, x) : cv::Vec3b(9, 9, 9);
      ASSERT_EQ(out.at<cv::Vec3b>(y, x), expected) << x << "," << y;
    }
  EXPECT_GT(cv::countNonZero(interior), 1000);
}

}  // namespace
}  // namespace kiln::studio::shot
