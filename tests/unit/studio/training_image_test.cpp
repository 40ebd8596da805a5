#include "studio/dataset/training_image.h"

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "studio/error.h"

using namespace kiln::studio;

TEST(TrainingImage, ResizesThenCropsTheCentreToTheBucketInRgb) {
  // 300×200 BGR: left half blue, right half red, a green column in the middle.
  cv::Mat bgr(200, 300, CV_8UC3, cv::Scalar(255, 0, 0));
  bgr(cv::Rect(150, 0, 150, 200)).setTo(cv::Scalar(0, 0, 255));
  bgr(cv::Rect(140, 0, 20, 200)).setTo(cv::Scalar(0, 255, 0));
  const cv::Mat out = prepare_training_image(bgr, {192, 128, 128, 128}, "x.png");
  ASSERT_EQ(out.cols, 128);
  ASSERT_EQ(out.rows, 128);
  ASSERT_TRUE(out.isContinuous());
  // Centre crop of 192 → 128: columns 32..159 of the resized image; the green band stays central.
  const cv::Vec3b centre = out.at<cv::Vec3b>(64, 64), left = out.at<cv::Vec3b>(64, 2), right = out.at<cv::Vec3b>(64, 125);
  EXPECT_GT(centre[1], 200);              // green, in RGB order
  EXPECT_GT(left[2], 200);                // blue is the third channel in RGB
  EXPECT_GT(right[0], 200);               // red first
}

TEST(TrainingImage, AlphaIsDroppedAsPilConvertDoes) {
  cv::Mat bgra(64, 64, CV_8UC4, cv::Scalar(10, 20, 30, 0));  // fully transparent, colour kept
  const cv::Mat out = prepare_training_image(bgra, {64, 64, 64, 64}, "layer.png");
  EXPECT_EQ(out.at<cv::Vec3b>(5, 5), cv::Vec3b(30, 20, 10));
}

TEST(TrainingImage, ABucketLargerThanTheResizedImageIsRefused) {
  cv::Mat bgr(64, 64, CV_8UC3);
  EXPECT_THROW(prepare_training_image(bgr, {64, 64, 128, 64}, "x.png"), Error);
  EXPECT_THROW(load_training_image("/no/such/file.png", {64, 64, 64, 64}), Error);
}
