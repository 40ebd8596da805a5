#pragma once
// A contact sheet: pictures in a grid, each with up to three lines of text under it (its caption,
// what the quality gate read in it). For people to look at; used by kiln_mini_scenes and the gate.
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace kiln::mini {

struct SheetCell {
  cv::Mat image;      // BGR uint8, any size (scaled to the cell)
  std::string text;    // wrapped to the cell's width: three lines, or two with a footer
  std::string footer;  // one last line of its own (e.g. what the quality gate read), in footer_colour
  cv::Scalar footer_colour{40, 40, 40};
};

// `cell`: the side each picture is scaled to (nearest-neighbour when enlarging, so pixels stay sharp).
cv::Mat contact_sheet(const std::vector<SheetCell>& cells, int columns, int cell);

}  // namespace kiln::mini
