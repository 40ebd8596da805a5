#pragma once
// The validation grid (WORKFLOW.md step 6, A1111's "X/Y plot"): a matrix of images with labelled
// axes, e.g. columns = epoch files, rows = LoRA strengths 0.1 … 1.0, same prompt and seed.
#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "studio/png.h"

namespace kiln::studio {

struct GridSpec {
  std::vector<std::vector<cv::Mat>> cells;  // [row][column]: grey, BGR or BGRA; an empty Mat is a
                                            // missing cell (drawn as a crossed grey box)
  std::vector<std::string> column_labels;   // one per column, e.g. "000001" or "epoch 1"
  std::vector<std::string> row_labels;      // one per row, e.g. "0.1"
  std::string column_title;                 // what the columns vary, e.g. "epoch"; optional
  std::string row_title;                    // what the rows vary, e.g. "strength"; optional
  std::string title;                        // optional, above everything (the prompt, the seed)
  int max_cell_side = 512;                  // cells larger than this are scaled down (never up)
};

// The grid as one BGR image on white. All cells are drawn at the size of the largest one (scaled
// down to max_cell_side), centred in their slot. Labels use Hershey fonts: ASCII only.
// Throws Error(InvalidArgument) when there are no cells, rows differ in length, or the label
// counts do not match the rows and columns.
cv::Mat render_grid(const GridSpec& spec);

// Renders and writes it as a PNG (atomically), with optional text chunks (e.g. the infotext).
void write_grid(const std::filesystem::path& path, const GridSpec& spec, const std::vector<TextChunk>& text = {});

}  // namespace kiln::studio
