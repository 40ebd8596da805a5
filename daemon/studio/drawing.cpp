#include "studio/drawing.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <opencv2/imgproc.hpp>

namespace kiln::studio {
namespace {
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

// Hershey fonts cover printable ASCII only.
std::string ascii(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else if (c >= 0xC0 || c < 0x20) {
      out.push_back('?');  // one per character: continuation bytes (0x80-0xBF) are skipped
    }
  }
  return out;
}
}  // namespace

cv::Size text_size(const std::string& text, const TextStyle& style) {
  int baseline = 0;
  cv::Size s = cv::getTextSize(ascii(text), kFont, style.scale, style.thickness, &baseline);
  return {s.width, s.height + baseline};
}

std::string fit_text(const std::string& text, int max_width, TextStyle& style, double min_scale) {
  while (style.scale > min_scale && text_size(text, style).width > max_width) style.scale *= 0.9;
  std::string out = ascii(text);
  if (text_size(out, style).width <= max_width) return out;
  while (!out.empty() && text_size(out + "...", style).width > max_width) out.pop_back();
  return out + "...";
}

void draw_centred(cv::Mat& canvas, const std::string& text, cv::Point centre, const TextStyle& style) {
  int baseline = 0;
  const std::string t = ascii(text);
  const cv::Size s = cv::getTextSize(t, kFont, style.scale, style.thickness, &baseline);
  cv::putText(canvas, t, cv::Point(centre.x - s.width / 2, centre.y + s.height / 2), kFont, style.scale, style.colour,
              style.thickness, cv::LINE_AA);
}

void draw_vertical(cv::Mat& canvas, const std::string& text, cv::Point centre, const TextStyle& style) {
  const cv::Size s = text_size(text, style);
  // Drawn horizontally on a patch of the canvas's own pixels, then rotated into place.
  cv::Mat patch(s.height + 4, s.width + 4, canvas.type());
  cv::Rect target(centre.x - patch.rows / 2, centre.y - patch.cols / 2, patch.rows, patch.cols);
  target &= cv::Rect(0, 0, canvas.cols, canvas.rows);
  if (target.width != patch.rows || target.height != patch.cols) return;  // does not fit
  cv::rotate(canvas(target), patch, cv::ROTATE_90_CLOCKWISE);
  draw_centred(patch, text, cv::Point(patch.cols / 2, patch.rows / 2), style);
  cv::Mat back;
  cv::rotate(patch, back, cv::ROTATE_90_COUNTERCLOCKWISE);
  back.copyTo(canvas(target));
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return ticks;
}

std::string tick_label(double value, double spacing) {
  char buf[32];
  if (spacing >= 1 && std::abs(value - std::round(value)) < 1e-9) {
    std::snprintf(buf, sizeof buf, "%.0f", value);
  } else {
    const int decimals = std::clamp(static_cast<int>(std::ceil(-std::log10(spacing))), 0, 8);
    std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  }
  return buf;
}

}  // namespace kiln::studio
