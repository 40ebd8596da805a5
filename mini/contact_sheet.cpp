#include "contact_sheet.h"

#include <algorithm>
#include <sstream>

#include <opencv2/imgproc.hpp>

namespace kiln::mini {

namespace {

// Words wrapped to lines no wider than `width` px in the given Hershey font.
std::vector<std::string> wrap(const std::string& text, int width, double scale) {
  std::vector<std::string> lines;
  std::istringstream words(text);
  std::string word, line;
  int base = 0;
  while (words >> word) {
    const std::string candidate = line.empty() ? word : line + " " + word;
    if (!line.empty() && cv::getTextSize(candidate, cv::FONT_HERSHEY_PLAIN, scale, 1, &base).width > width) {
      lines.push_back(line);
      line = word;
    } else {
      line = candidate;
    }
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

}  // namespace

cv::Mat contact_sheet(const std::vector<SheetCell>& cells, int columns, int cell) {
  const double scale = cell >= 192 ? 0.9 : 0.7;
  const int line_h = static_cast<int>(14 * scale) + 2, text_h = 3 * line_h + 4, pad = 6;
  const int rows = (static_cast<int>(cells.size()) + columns - 1) / columns;
  cv::Mat sheet(rows * (cell + text_h + pad) + pad, columns * (cell + pad) + pad, CV_8UC3, cv::Scalar(250, 250, 250));
  for (size_t i = 0; i < cells.size(); ++i) {
    const int x = pad + static_cast<int>(i % static_cast<size_t>(columns)) * (cell + pad);
    const int y = pad + static_cast<int>(i / static_cast<size_t>(columns)) * (cell + text_h + pad);
    cv::Mat img;
    const auto& src = cells[i].image;
    cv::resize(src, img, cv::Size(cell, cell), 0, 0, cell >= src.cols ? cv::INTER_NEAREST : cv::INTER_AREA);
    img.copyTo(sheet(cv::Rect(x, y, cell, cell)));
    auto lines = wrap(cells[i].text, cell, scale);
    lines.resize(std::min<size_t>(lines.size(), cells[i].footer.empty() ? 3 : 2));
    const auto put = [&](const std::string& line, int row, const cv::Scalar& colour) {
      cv::putText(sheet, line, cv::Point(x, y + cell + line_h * (row + 1)), cv::FONT_HERSHEY_PLAIN, scale, colour, 1,
                  cv::LINE_AA);
    };
    for (size_t l = 0; l < lines.size(); ++l) put(lines[l], static_cast<int>(l), cv::Scalar(40, 40, 40));
    if (!cells[i].footer.empty()) put(cells[i].footer, 2, cells[i].footer_colour);
  }
  return sheet;
}

}  // namespace kiln::mini
