#include "studio/dataset/tagger.h"

#include <algorithm>
#include <cctype>
#include <fstream>

#include <opencv2/imgproc.hpp>

#include "studio/error.h"
#include "studio/image.h"

namespace kiln::studio {
namespace fs = std::filesystem;
namespace {

// One CSV record (RFC 4180 quoting; no line breaks inside fields, which the tag lists never have).
std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back().push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back().push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back().push_back(c);
    }
  }
  return fields;
}

}  // namespace

std::string tagger_install_hint(const fs::path& folder) {
  return "auto-tagging needs a WD1.4-style tagger installed by you: put its model.onnx and selected_tags.csv "
         "(for example from SmilingWolf's wd-v1-4-moat-tagger-v2 or wd-v1-4-convnextv2-tagger-v2) in " +
         folder.string() + "; Kiln downloads nothing";
}

std::vector<TagDefinition> read_selected_tags(const fs::path& csv) {
  std::ifstream in(csv, std::ios::binary);
  if (!in) throw Error(ErrorKind::NotFound, "cannot open " + csv.string() + ". " + tagger_install_hint(csv.parent_path()));
  std::string line;
  if (!std::getline(in, line)) throw Error(ErrorKind::BadFormat, csv.string() + " is empty");
  if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // UTF-8 BOM
  const auto header = split_csv_line(line);
  const auto column = [&](const char* name) -> int {
    const auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  const int name_col = column("name"), category_col = column("category");
  if (name_col < 0 || category_col < 0)
    throw Error(ErrorKind::BadFormat, csv.string() + " does not look like a tagger's selected_tags.csv: its first "
                                                     "line must name the columns, including 'name' and 'category'");
  std::vector<TagDefinition> tags;
  for (int number = 2; std::getline(in, line); ++number) {
    if (line.empty() || line == "\r") continue;
    const auto fields = split_csv_line(line);
    const auto where = csv.string() + " line " + std::to_string(number);
    if (static_cast<int>(fields.size()) <= std::max(name_col, category_col))
      throw Error(ErrorKind::BadFormat, where + " has " + std::to_string(fields.size()) + " fields, fewer than the header");
    TagDefinition tag;
    tag.name = fields[name_col];
    try {
      std::size_t used = 0;
      tag.category = std::stoi(fields[category_col], &used);
      if (used != fields[category_col].size()) throw std::invalid_argument("trailing text");
    } catch (const std::exception&) {
      throw Error(ErrorKind::BadFormat, where + ": category '" + fields[category_col] + "' is not a number");
    }
    if (tag.name.empty()) throw Error(ErrorKind::BadFormat, where + ": the tag name is empty");
    tags.push_back(std::move(tag));
  }
  if (tags.empty()) throw Error(ErrorKind::BadFormat, csv.string() + " lists no tags");
  return tags;
}

std::string tag_display_name(const std::string& tag) {
  bool letters = false;
  for (std::size_t i = 0; i + 1 < tag.size(); ++i)
    if (std::isalpha(static_cast<unsigned char>(tag[i])) && std::isalpha(static_cast<unsigned char>(tag[i + 1])))
      letters = true;
  if (!letters) return tag;
  std::string out = tag;
  std::replace(out.begin(), out.end(), '_', ' ');
  return out;
}

Tagger::Tagger(const fs::path& folder) : folder_(folder) {
  const fs::path model = folder / "model.onnx", csv = folder / "selected_tags.csv";
  std::error_code ec;
  if (!fs::is_regular_file(model, ec) || !fs::is_regular_file(csv, ec)) {
    std::string missing = !fs::is_regular_file(model, ec) ? "model.onnx" : "";
    if (!fs::is_regular_file(csv, ec)) missing += std::string(missing.empty() ? "" : " and ") + "selected_tags.csv";
    throw Error(ErrorKind::NotFound, "no tagger installed: " + missing + " not found in " + folder.string() + ". " +
                                         tagger_install_hint(folder));
  }
  tags_ = read_selected_tags(csv);
  try {
    net_ = cv::dnn::readNetFromONNX(model.string());
  } catch (const cv::Exception& e) {
    throw Error(ErrorKind::BadFormat, "OpenCV cannot load the tagger model " + model.string() + ": " + e.err +
                                          ". Use a WD1.4 tagger exported to ONNX (opset 13 or older works best)");
  }
  if (net_.empty()) throw Error(ErrorKind::BadFormat, "OpenCV loaded an empty network from " + model.string());
}

std::vector<std::pair<std::string, float>> Tagger::tag(const cv::Mat& image, const TaggerOptions& o) const {
  // As the taggers were trained: transparent pixels white, padded to a square with white.
  const cv::Mat bgr = composite_over(image, cv::Scalar::all(255));
  const int side = std::max(bgr.cols, bgr.rows);
  cv::Mat square;
  cv::copyMakeBorder(bgr, square, (side - bgr.rows) / 2, side - bgr.rows - (side - bgr.rows) / 2,
                     (side - bgr.cols) / 2, side - bgr.cols - (side - bgr.cols) / 2, cv::BORDER_CONSTANT,
                     cv::Scalar::all(255));
  cv::Mat resized, input;
  cv::resize(square, resized, cv::Size(o.input_size, o.input_size), 0, 0,
             side > o.input_size ? cv::INTER_AREA : cv::INTER_CUBIC);
  resized.convertTo(input, CV_32FC3);
  // NHWC: the HWC pixels are already laid out as the model wants; only the shape changes.
  const int shape[] = {1, o.input_size, o.input_size, 3};
  const cv::Mat blob(4, shape, CV_32F, input.data);

  cv::Mat scores;
  {
    std::lock_guard lock(mutex_);
    try {
      net_.setInput(blob);
      scores = net_.forward().clone();
    } catch (const cv::Exception& e) {
      throw Error(ErrorKind::Unsupported, "the tagger in " + folder_.string() + " failed to run in OpenCV: " + e.err);
    }
  }
  scores = scores.reshape(1, 1);
  if (scores.cols != static_cast<int>(tags_.size()))
    throw Error(ErrorKind::BadFormat, "the tagger in " + folder_.string() + " returns " + std::to_string(scores.cols) +
                                          " scores but its selected_tags.csv lists " + std::to_string(tags_.size()) +
                                          " tags: the two files do not belong together");
  std::vector<std::pair<std::string, float>> out;
  for (int i = 0; i < scores.cols; ++i) {
    const float p = scores.at<float>(0, i);
    const TagDefinition& t = tags_[i];
    const bool keep = t.category == 9 ? o.include_ratings && p >= o.general_threshold
                      : t.category == 4 ? p >= o.character_threshold
                                        : p >= o.general_threshold;
    if (keep) out.emplace_back(tag_display_name(t.name), p);
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

}  // namespace kiln::studio
