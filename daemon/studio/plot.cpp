#include "studio/plot.h"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "studio/drawing.h"
#include "studio/error.h"
#include "studio/image.h"

namespace kiln::studio {
namespace {
const cv::Scalar kRaw(235, 190, 150);      // light blue (BGR)
const cv::Scalar kAverage(160, 70, 20);    // dark blue
const cv::Scalar kAxis(60, 60, 60);
const cv::Scalar kGrid(232, 232, 232);
}  // namespace

std::vector<double> moving_average(const std::vector<double>& values, int window) {
  window = std::max(1, window);
  std::vector<double> out(values.size(), std::nan(""));
  double sum = 0;
  int count = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i])) sum += values[i], ++count;
    if (i >= static_cast<std::size_t>(window) && std::isfinite(values[i - window])) sum -= values[i - window], --count;
    if (count > 0) out[i] = sum / count;
  }
  return out;
}

int default_loss_window(std::size_t count) { return std::max<int>(1, static_cast<int>(count / 20)); }

cv::Mat render_loss_curve(const LossCurveSpec& spec) {
  if (spec.width < 320 || spec.height < 200) throw Error(ErrorKind::InvalidArgument, "a loss plot must be at least 320x200 px");
  if (!spec.steps.empty() && spec.steps.size() != spec.losses.size())
    throw Error(ErrorKind::InvalidArgument, "the loss plot got " + std::to_string(spec.losses.size()) + " losses but " +
                                                std::to_string(spec.steps.size()) + " step numbers");
  std::vector<double> finite;
  for (double v : spec.losses)
    if (std::isfinite(v)) finite.push_back(v);
  if (finite.empty()) throw Error(ErrorKind::InvalidArgument, "there is no finite loss value to plot");

  const auto step_at = [&](std::size_t i) { return spec.steps.empty() ? static_cast<double>(i + 1) : static_cast<double>(spec.steps[i]); };
  double x_lo = step_at(0), x_hi = step_at(spec.losses.size() - 1);
  if (x_hi <= x_lo) x_hi = x_lo + 1;
  std::sort(finite.begin(), finite.end());
  double y_lo = finite.front();
  double y_hi = finite[static_cast<std::size_t>(0.99 * (finite.size() - 1))];
  if (y_hi - y_lo < 1e-9) y_lo -= 0.05, y_hi += 0.05;
  const double pad = (y_hi - y_lo) * 0.06;
  y_lo = y_lo >= 0 ? std::max(0.0, y_lo - pad) : y_lo - pad;  // losses are positive: no axis below 0
  y_hi += pad;

  const double scale = std::clamp(spec.height / 700.0, 0.5, 2.0);
  TextStyle tick{0.5 * scale, 1, kAxis};
  TextStyle label{0.65 * scale, std::max(1, static_cast<int>(1.5 * scale)), kAxis};
  TextStyle heading{0.8 * scale, std::max(1, static_cast<int>(2 * scale)), cv::Scalar(0, 0, 0)};
  const std::vector<double> y_ticks = nice_ticks(y_lo, y_hi, 6);
  const double y_spacing = y_ticks.size() > 1 ? y_ticks[1] - y_ticks[0] : 1;
  int y_label_width = 0;
  for (double v : y_ticks) y_label_width = std::max(y_label_width, text_size(tick_label(v, y_spacing), tick).width);

  const int line = text_size("Ag", label).height;
  const int left = 20 + line + 10 + y_label_width + 10;
  const int top = 20 + text_size("Ag", heading).height + 20;
  const cv::Rect plot(left, top, spec.width - left - 30, spec.height - top - (text_size("0", tick).height + line + 40));
  cv::Mat canvas(spec.height, spec.width, CV_8UC3, cv::Scalar(255, 255, 255));
  const auto px = [&](double x) { return plot.x + (x - x_lo) / (x_hi - x_lo) * plot.width; };
  const auto py = [&](double y) { return plot.y + plot.height - (y - y_lo) / (y_hi - y_lo) * plot.height; };

  // Grid lines and ticks.
  for (double v : y_ticks) {
    const int y = static_cast<int>(std::lround(py(v)));
    if (y < plot.y || y > plot.br().y) continue;
    cv::line(canvas, cv::Point(plot.x, y), cv::Point(plot.br().x, y), kGrid, 1);
    cv::line(canvas, cv::Point(plot.x - 5, y), cv::Point(plot.x, y), kAxis, 1);
    const std::string text = tick_label(v, y_spacing);
    const cv::Size s = text_size(text, tick);
    draw_centred(canvas, text, cv::Point(plot.x - 10 - s.width / 2, y), tick);
  }
  const std::vector<double> x_ticks = nice_ticks(x_lo, x_hi, 8);
  const double x_spacing = x_ticks.size() > 1 ? x_ticks[1] - x_ticks[0] : 1;
  for (double v : x_ticks) {
    const int x = static_cast<int>(std::lround(px(v)));
    if (x < plot.x || x > plot.br().x) continue;
    cv::line(canvas, cv::Point(x, plot.y), cv::Point(x, plot.br().y), kGrid, 1);
    cv::line(canvas, cv::Point(x, plot.br().y), cv::Point(x, plot.br().y + 5), kAxis, 1);
    draw_centred(canvas, tick_label(v, x_spacing), cv::Point(x, plot.br().y + 8 + text_size("0", tick).height / 2), tick);
  }
  for (int64_t e : spec.epoch_ends) {
    const int x = static_cast<int>(std::lround(px(static_cast<double>(e))));
    if (x > plot.x && x < plot.br().x)
      cv::line(canvas, cv::Point(x, plot.y), cv::Point(x, plot.br().y), cv::Scalar(200, 225, 200), 1);
  }

  // The curves, clipped to the plot area (spikes above the 99th percentile leave the top).
  const std::vector<double> average = moving_average(spec.losses, spec.window > 0 ? spec.window : default_loss_window(spec.losses.size()));
  cv::Mat inner = canvas(plot);
  const auto draw_series = [&](const std::vector<double>& ys, const cv::Scalar& colour, int thickness) {
    std::vector<std::vector<cv::Point>> runs(1);
    for (std::size_t i = 0; i < ys.size(); ++i) {
      if (!std::isfinite(ys[i])) {
        if (!runs.back().empty()) runs.emplace_back();
        continue;
      }
      // Fixed-point coordinates (4 fractional bits) keep dense curves smooth.
      runs.back().emplace_back(static_cast<int>(std::lround((px(step_at(i)) - plot.x) * 16)),
                               static_cast<int>(std::lround((py(ys[i]) - plot.y) * 16)));
    }
    for (const auto& run : runs) {
      if (run.size() == 1) cv::circle(inner, run[0], 2 * 16, colour, cv::FILLED, cv::LINE_AA, 4);
      if (run.size() > 1) cv::polylines(inner, run, false, colour, thickness, cv::LINE_AA, 4);
    }
  };
  draw_series(spec.losses, kRaw, 1);
  draw_series(average, kAverage, std::max(2, static_cast<int>(2 * scale)));
  cv::rectangle(canvas, plot, kAxis, 1);

  // Titles and legend.
  draw_centred(canvas, spec.title, cv::Point(spec.width / 2, 20 + text_size("Ag", heading).height / 2), heading);
  draw_centred(canvas, "step", cv::Point(plot.x + plot.width / 2, spec.height - 15 - line / 2), label);
  draw_vertical(canvas, "loss", cv::Point(20 + line / 2, plot.y + plot.height / 2), label);
  const int window = spec.window > 0 ? spec.window : default_loss_window(spec.losses.size());
  const std::string avg_text = "moving average (" + std::to_string(window) + " steps)";
  const int legend_x = plot.br().x - text_size(avg_text, tick).width - 60;
  const int legend_y = plot.y + 15;
  cv::line(canvas, cv::Point(legend_x, legend_y), cv::Point(legend_x + 30, legend_y), kRaw, 2, cv::LINE_AA);
  cv::putText(canvas, "loss per step", cv::Point(legend_x + 38, legend_y + 5), cv::FONT_HERSHEY_SIMPLEX, tick.scale, kAxis,
              1, cv::LINE_AA);
  cv::line(canvas, cv::Point(legend_x, legend_y + 22), cv::Point(legend_x + 30, legend_y + 22), kAverage, 3, cv::LINE_AA);
  cv::putText(canvas, avg_text, cv::Point(legend_x + 38, legend_y + 27), cv::FONT_HERSHEY_SIMPLEX, tick.scale, kAxis, 1,
              cv::LINE_AA);
  return canvas;
}

void write_loss_curve(const std::filesystem::path& path, const LossCurveSpec& spec) {
  write_png(path, render_loss_curve(spec));
}

}  // namespace kiln::studio
