#include <gtest/gtest.h>

#include <cmath>

#include <opencv2/imgproc.hpp>

#include "studio/error.h"
#include "studio/grid.h"
#include "studio/image.h"
#include "studio/plot.h"
#include "synthetic.h"
#include "temp_dir.h"

namespace kiln::studio {
namespace {

// Dark pixels (text) inside `r` of a BGR canvas.
int ink(const cv::Mat& canvas, cv::Rect r) {
  cv::Mat grey;
  cv::cvtColor(canvas(r & cv::Rect(0, 0, canvas.cols, canvas.rows)), grey, cv::COLOR_BGR2GRAY);
  return cv::countNonZero(grey < 128);
}

TEST(Grid, LaysOutCellsWithLabelledAxes) {
  GridSpec spec;
  const int rows = 3, cols = 4;
  for (int r = 0; r < rows; ++r) {
    spec.cells.emplace_back();
    for (int c = 0; c < cols; ++c)
      spec.cells.back().push_back(cv::Mat(128, 128, CV_8UC3, cv::Scalar(40 * c, 60 * r, 200)));
  }
  spec.cells[1][2] = cv::Mat();  // a missing render
  spec.column_labels = {"000001", "000002", "000003", "000004"};
  spec.row_labels = {"0.1", "0.5", "1.0"};
  spec.column_title = "epoch";
  spec.row_title = "strength";
  spec.title = "acme speaker on a beach, seed 1234";
  const cv::Mat grid = render_grid(spec);
  EXPECT_EQ(grid.type(), CV_8UC3);
  EXPECT_GT(grid.cols, cols * 128);
  EXPECT_GT(grid.rows, rows * 128);

  // Find the first cell by its colour: everything else is laid out from it.
  cv::Mat mask;
  cv::inRange(grid, cv::Scalar(0, 0, 200), cv::Scalar(0, 0, 200), mask);
  const cv::Rect first = cv::boundingRect(mask);
  ASSERT_EQ(first.size(), cv::Size(128, 128));
  const int step = 128 + 6;
  EXPECT_EQ(grid.at<cv::Vec3b>(first.y + 10 + 2 * step, first.x + 10 + 3 * step), cv::Vec3b(120, 120, 200));
  EXPECT_EQ(grid.at<cv::Vec3b>(first.y + 64 + step, first.x + 5 + 2 * step), cv::Vec3b(225, 225, 225));  // missing cell
  // Labels: ink above every column and left of every row, and a title on top.
  for (int c = 0; c < cols; ++c) EXPECT_GT(ink(grid, cv::Rect(first.x + c * step, first.y - 30, 128, 28)), 20) << c;
  for (int r = 0; r < rows; ++r) EXPECT_GT(ink(grid, cv::Rect(0, first.y + r * step, first.x, 128)), 20) << r;
  EXPECT_GT(ink(grid, cv::Rect(0, 0, grid.cols, 30)), 50);

  test::TempDir dir;
  write_grid(dir / "grid.png", spec, {{"parameters", "acme\nSteps: 20, Sampler: Euler a, CFG scale: 7"}});
  const PngImage png = read_png(dir / "grid.png");
  EXPECT_EQ(png.width, grid.cols);
  EXPECT_NE(png.find_text("parameters"), nullptr);
}

TEST(Grid, ScalesLargeCellsDownAndChecksShape) {
  GridSpec spec;
  spec.cells = {{test::scene(1024, 768), test::scene(1024, 768)}};
  spec.max_cell_side = 256;
  const cv::Mat grid = render_grid(spec);
  EXPECT_LT(grid.cols, 2 * 256 + 100);
  spec.column_labels = {"only one"};
  EXPECT_THROW(render_grid(spec), Error);
  spec.column_labels.clear();
  spec.cells.push_back({test::scene(64, 64)});
  EXPECT_THROW(render_grid(spec), Error);
  EXPECT_THROW(render_grid(GridSpec{}), Error);
}

TEST(Plot, MovingAverageSkipsGaps) {
  const auto avg = moving_average({1, 3, std::nan(""), 5, 7}, 2);
  EXPECT_DOUBLE_EQ(avg[0], 1);
  EXPECT_DOUBLE_EQ(avg[1], 2);
  EXPECT_DOUBLE_EQ(avg[2], 3);  // only 3 is finite in the window
  EXPECT_DOUBLE_EQ(avg[3], 5);
  EXPECT_DOUBLE_EQ(avg[4], 6);
  EXPECT_EQ(default_loss_window(1000), 50);
}

TEST(Plot, LossCurveHasBothSeriesAxesAndTicks) {
  LossCurveSpec spec;
  cv::RNG rng(7);
  for (int i = 0; i < 600; ++i) spec.losses.push_back(0.08 + 0.15 * std::exp(-i / 120.0) + rng.gaussian(0.02));
  spec.losses[3] = 5.0;  // one spike must not flatten the rest
  spec.losses[100] = std::nan("");
  spec.epoch_ends = {200, 400};
  const cv::Mat plot = render_loss_curve(spec);
  EXPECT_EQ(plot.size(), cv::Size(1200, 700));
  cv::Mat raw, avg;
  cv::inRange(plot, cv::Scalar(225, 180, 140), cv::Scalar(245, 200, 160), raw);
  cv::inRange(plot, cv::Scalar(150, 60, 10), cv::Scalar(170, 80, 30), avg);
  EXPECT_GT(cv::countNonZero(raw), 2000);
  EXPECT_GT(cv::countNonZero(avg), 1500);
  // The average curve spans most of the height: the spike was left out of the range.
  const cv::Rect avg_box = cv::boundingRect(avg);
  EXPECT_GT(avg_box.height, 250);
  EXPECT_GT(avg_box.width, 900);
  // Tick labels left of the plot and below it, axis titles, a title.
  EXPECT_GT(ink(plot, cv::Rect(0, 80, 90, 500)), 200);
  EXPECT_GT(ink(plot, cv::Rect(100, 620, 1100, 80)), 200);
  EXPECT_GT(ink(plot, cv::Rect(300, 0, 600, 50)), 100);

  test::TempDir dir;
  write_loss_curve(dir / "loss.png", spec);
  EXPECT_EQ(read_png(dir / "loss.png").width, 1200);
}

TEST(Plot, RefusesNothingToPlot) {
  LossCurveSpec spec;
  EXPECT_THROW(render_loss_curve(spec), Error);
  spec.losses = {std::nan("")};
  EXPECT_THROW(render_loss_curve(spec), Error);
  spec.losses = {0.1, 0.2};
  spec.steps = {1};
  EXPECT_THROW(render_loss_curve(spec), Error);
  spec.steps.clear();
  EXPECT_NO_THROW(render_loss_curve(spec));
  spec.losses = {0.1};  // a single point still draws
  EXPECT_NO_THROW(render_loss_curve(spec));
}

}  // namespace
}  // namespace kiln::studio
