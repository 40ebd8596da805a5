#pragma once
// The loss curve of a training run: raw per-step loss and its moving average, with labelled axes.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace kiln::studio {

struct LossCurveSpec {
  std::vector<double> losses;        // one per step; NaN or infinite values leave a gap
  std::vector<int64_t> steps;        // the step of each loss; empty: 1, 2, 3, ...
  int window = 0;                    // moving-average window in steps; 0: about 1/20 of the run (at least 1)
  std::vector<int64_t> epoch_ends;   // steps where an epoch ended: drawn as faint vertical lines
  std::string title = "Training loss";
  int width = 1200;
  int height = 700;
};

// Trailing moving average (mean of the last `window` finite values at each step), as kohya's
// "avr_loss"; NaN where there is no finite value yet.
std::vector<double> moving_average(const std::vector<double>& values, int window);

// The window render_loss_curve uses for `count` steps when spec.window is 0.
int default_loss_window(std::size_t count);

// BGR image. The y range covers the losses up to their 99th percentile, so one early spike does
// not flatten the rest. Throws Error(InvalidArgument) with no finite loss, a steps list of another
// length, or a size under 320×200.
cv::Mat render_loss_curve(const LossCurveSpec& spec);

// Renders and writes it as a PNG, atomically.
void write_loss_curve(const std::filesystem::path& path, const LossCurveSpec& spec);

}  // namespace kiln::studio
