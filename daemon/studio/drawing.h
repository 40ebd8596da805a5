#pragma once
// Text and tick helpers shared by grids and plots (OpenCV's Hershey fonts: ASCII only; other
// characters are drawn as '?', so labels should be ASCII).
#include <string>

#include <opencv2/core.hpp>

namespace kiln::studio {

struct TextStyle {
  double scale = 0.8;
  int thickness = 1;
  cv::Scalar colour = cv::Scalar(30, 30, 30);
};

// Size of `text` in `style`, baseline included in the height.
cv::Size text_size(const std::string& text, const TextStyle& style);

// The largest scale (down to `min_scale`) at which `text` fits in `max_width`; the text is then
// shortened with "..." if it still does not fit. Returns the text to draw and sets style.scale.
std::string fit_text(const std::string& text, int max_width, TextStyle& style, double min_scale = 0.35);

// Draws `text` centred on `centre` (horizontally and vertically).
void draw_centred(cv::Mat& canvas, const std::string& text, cv::Point centre, const TextStyle& style);

// Draws `text` rotated 90° counter-clockwise (reading bottom to top), centred on `centre`.
void draw_vertical(cv::Mat& canvas, const std::string& text, cv::Point centre, const TextStyle& style);

// "Nice" tick positions (1, 2 or 5 × 10^k apart) covering [lo, hi], about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

// A tick label: integers without decimals, others with as few digits as the spacing needs.
std::string tick_label(double value, double spacing);

}  // namespace kiln::studio
