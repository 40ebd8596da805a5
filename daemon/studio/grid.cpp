#include "studio/grid.h"

#include <algorithm>

#include <opencv2/imgproc.hpp>

#include "studio/drawing.h"
#include "studio/error.h"
#include "studio/image.h"

namespace kiln::studio {
namespace {
const cv::Scalar kWhite(255, 255, 255);
constexpr int kGap = 6;      // between cells
constexpr int kPadding = 12;  // around labels
}  // namespace

cv::Mat render_grid(const GridSpec& spec) {
  const int rows = static_cast<int>(spec.cells.size());
  if (rows == 0 || spec.cells.front().empty()) throw Error(ErrorKind::InvalidArgument, "a grid needs at least one image");
  const int cols = static_cast<int>(spec.cells.front().size());
  for (const auto& row : spec.cells)
    if (static_cast<int>(row.size()) != cols)
      throw Error(ErrorKind::InvalidArgument, "every row of the grid must have " + std::to_string(cols) + " images");
  if (!spec.column_labels.empty() && static_cast<int>(spec.column_labels.size()) != cols)
    throw Error(ErrorKind::InvalidArgument, "the grid has " + std::to_string(cols) + " columns but " +
                                                std::to_string(spec.column_labels.size()) + " column labels");
  if (!spec.row_labels.empty() && static_cast<int>(spec.row_labels.size()) != rows)
    throw Error(ErrorKind::InvalidArgument, "the grid has " + std::to_string(rows) + " rows but " +
                                                std::to_string(spec.row_labels.size()) + " row labels");
  if (spec.max_cell_side < 16) throw Error(ErrorKind::InvalidArgument, "grid cells must be at least 16 px");

  // Slot size: the largest cell, scaled down to fit max_cell_side.
  cv::Size slot(0, 0);
  for (const auto& row : spec.cells)
    for (const cv::Mat& m : row) slot = cv::Size(std::max(slot.width, m.cols), std::max(slot.height, m.rows));
  if (slot.area() == 0) slot = cv::Size(spec.max_cell_side, spec.max_cell_side);
  const double fit = std::min(1.0, static_cast<double>(spec.max_cell_side) / std::max(slot.width, slot.height));
  slot = cv::Size(std::max(1, static_cast<int>(slot.width * fit)), std::max(1, static_cast<int>(slot.height * fit)));

  // Label sizes scale with the cells, so a grid of 64 px thumbnails and one of 512 px images both read well.
  const double base = std::clamp(slot.width / 400.0, 0.45, 1.2);
  TextStyle label{base, std::max(1, static_cast<int>(base * 2)), cv::Scalar(20, 20, 20)};
  TextStyle axis{base * 0.9, std::max(1, static_cast<int>(base * 2)), cv::Scalar(90, 90, 90)};
  TextStyle heading{base * 1.1, std::max(1, static_cast<int>(base * 2.5)), cv::Scalar(0, 0, 0)};

  int row_label_width = 0;
  for (const std::string& l : spec.row_labels) row_label_width = std::max(row_label_width, text_size(l, label).width);
  row_label_width = std::min(row_label_width, slot.width);
  const int line = text_size("Ag", label).height;
  const int row_title_width = spec.row_title.empty() ? 0 : text_size("Ag", axis).height + kPadding;
  const int left = kPadding + row_title_width + (spec.row_labels.empty() ? 0 : row_label_width + kPadding);
  const int title_height = spec.title.empty() ? 0 : text_size("Ag", heading).height + kPadding;
  const int column_title_height = spec.column_title.empty() ? 0 : text_size("Ag", axis).height + kPadding / 2;
  const int top = kPadding + title_height + column_title_height + (spec.column_labels.empty() ? 0 : line + kPadding);
  const int width = left + cols * slot.width + (cols - 1) * kGap + kPadding;
  const int height = top + rows * slot.height + (rows - 1) * kGap + kPadding;
  cv::Mat canvas(height, width, CV_8UC3, kWhite);
  const int grid_left = left, grid_width = cols * slot.width + (cols - 1) * kGap;

  if (!spec.title.empty()) {
    TextStyle t = heading;
    const std::string text = fit_text(spec.title, width - 2 * kPadding, t);
    draw_centred(canvas, text, cv::Point(width / 2, kPadding + title_height / 2 - kPadding / 2), t);
  }
  if (!spec.column_title.empty()) {
    TextStyle t = axis;
    const std::string text = fit_text(spec.column_title, grid_width, t);
    draw_centred(canvas, text, cv::Point(grid_left + grid_width / 2, kPadding + title_height + column_title_height / 2), t);
  }
  for (int c = 0; c < static_cast<int>(spec.column_labels.size()); ++c) {
    TextStyle t = label;
    const std::string text = fit_text(spec.column_labels[c], slot.width - 4, t);
    draw_centred(canvas, text,
                 cv::Point(grid_left + c * (slot.width + kGap) + slot.width / 2, top - kPadding / 2 - line / 2), t);
  }
  if (!spec.row_title.empty()) {
    TextStyle t = axis;
    const int grid_height = rows * slot.height + (rows - 1) * kGap;
    const std::string text = fit_text(spec.row_title, grid_height, t);
    draw_vertical(canvas, text, cv::Point(kPadding + row_title_width / 2, top + grid_height / 2), t);
  }
  for (int r = 0; r < static_cast<int>(spec.row_labels.size()); ++r) {
    TextStyle t = label;
    const std::string text = fit_text(spec.row_labels[r], row_label_width, t);
    draw_centred(canvas, text,
                 cv::Point(kPadding + row_title_width + row_label_width / 2, top + r * (slot.height + kGap) + slot.height / 2),
                 t);
  }

  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const cv::Rect cell(grid_left + c * (slot.width + kGap), top + r * (slot.height + kGap), slot.width, slot.height);
      const cv::Mat& src = spec.cells[r][c];
      if (src.empty()) {
        canvas(cell).setTo(cv::Scalar(225, 225, 225));
        cv::line(canvas, cell.tl(), cell.br() - cv::Point(1, 1), cv::Scalar(170, 170, 170), 2, cv::LINE_AA);
        cv::line(canvas, cv::Point(cell.x, cell.br().y - 1), cv::Point(cell.br().x - 1, cell.y), cv::Scalar(170, 170, 170),
                 2, cv::LINE_AA);
        continue;
      }
      const double s = std::min(static_cast<double>(slot.width) / src.cols, static_cast<double>(slot.height) / src.rows);
      const cv::Size size(std::max(1, static_cast<int>(src.cols * s)), std::max(1, static_cast<int>(src.rows * s)));
      cv::Mat scaled;
      cv::resize(composite_over(src, kWhite), scaled, size, 0, 0, s < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
      scaled.copyTo(canvas(cv::Rect(cell.x + (slot.width - size.width) / 2, cell.y + (slot.height - size.height) / 2,
                                    size.width, size.height)));
    }
  }
  return canvas;
}

void write_grid(const std::filesystem::path& path, const GridSpec& spec, const std::vector<TextChunk>& text) {
  write_png(path, render_grid(spec), text);
}

}  // namespace kiln::studio
