#pragma once
// Near-duplicates in the sense users mean: the same picture twice — re-encoded, resized, slightly
// cropped or colour-shifted — not two views of one product on one backdrop.
//
// Each picture keeps a small signature: two grey 96×96 thumbnails, one of the square around its
// subject (alpha or saliency, subject.h) and one of the whole picture (for when the subject is
// found a little differently in a copy, as on busy backdrops), each with where the picture
// itself lies in it (the rest is padding). Two pictures are compared thumbnail by thumbnail:
//   1. aligned coarse to fine over scales and shifts (a crop moves and scales the subject box),
//      on the picture only: padding and a margin along the picture's edges, where a crop differs,
//      are left out;
//   2. compared on their fine detail (the thumbnail minus a blurred copy), once over the whole
//      overlap and once block by block on a 6×6 grid, each block's disagreement weighed by how much
//      detail it holds: two views of one product differ somewhere — a label turned away, a
//      handle on the other side — even when their silhouettes and backdrops are alike.
// The similarity is the lowest of those at the best alignment, the higher of the two thumbnails;
// the limit (QualityThresholds::min_similarity) is chosen on the calibration set (tests/calibration).
#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

#include "studio/dataset/finding.h"
#include "studio/dataset/subject.h"

namespace kiln::studio {

struct Thumbnail {
  cv::Mat grey;     // 8-bit, 96×96; empty when unknown
  cv::Rect inside;  // where in it the picture is
};

struct PreparedSignature;  // the thumbnails made ready for comparison (duplicates.cpp)

struct PictureSignature {
  Thumbnail subject;      // the square around the subject
  Thumbnail frame;        // the square around the whole picture
  int across = 0;         // px across the subject at the training scale (never enlarged)
  double edge_width = 0;  // the subject's edge width there (sharpness.h); 0: not measured
  // Made once by picture_signature and decode_signature, so comparing one picture with many does
  // not prepare it again for each.
  std::shared_ptr<const PreparedSignature> prepared;

  bool empty() const { return subject.grey.empty() || frame.grey.empty(); }
  // How much detail this copy holds: edge widths across the subject. Of two copies of one
  // picture the one with more is kept (the larger, then the sharper).
  double detail() const { return across / std::max(edge_width, 1.0); }
};

// `original`: grey, BGR or BGRA (transparent pixels over `background`); `subject` as found for it
// (an empty box: the whole picture). `across` and `edge_width` are left for the caller (quality.h).
PictureSignature picture_signature(const cv::Mat& original, const Subject& subject,
                                   const cv::Scalar& background = cv::Scalar::all(255));

// 1 for the same picture; different views of one product stay under QualityThresholds::min_similarity.
// 0 when either is empty.
double picture_similarity(const PictureSignature& a, const PictureSignature& b);

// Storage: the thumbnails as one PNG (subject beside frame, 192×96), the rest as text
// ("<across>:<edge width>:<x,y,w,h subject>:<x,y,w,h frame>"). Damaged input gives an empty
// signature; facts without a PNG give one without thumbnails (enough for near_duplicate_findings).
std::vector<unsigned char> encode_thumbnails(const PictureSignature& s);
std::string encode_facts(const PictureSignature& s);
PictureSignature decode_signature(const std::string& facts, const std::vector<unsigned char>& png);

// Similarities worth keeping: a dataset stores those of its pairs at or above this, so reading it
// needs no image work.
constexpr double kKeptSimilarity = 0.5;

struct Duplicate {
  std::size_t image = 0;   // the copy to drop
  std::size_t keeper = 0;  // the picture it repeats, to keep: the most detail (within 5 %: the first)
  double similarity = 0;   // between the two (of the group's pairs, the best the copy has with the keeper)
};

// Groups the images whose similarities (i, j, similarity) reach `min_similarity` (transitively);
// in each group the one with the most `detail` is kept and every other is reported once.
std::vector<Duplicate> find_duplicates(const std::vector<double>& detail,
                                       const std::vector<std::tuple<std::size_t, std::size_t, double>>& similar,
                                       double min_similarity);

// find_duplicates as findings: (index of the copy, its near_duplicate finding naming the kept
// picture by `names` and `ids`, with `other` = its id).
std::vector<std::pair<std::size_t, Finding>> near_duplicate_findings(
    const std::vector<PictureSignature>& signatures,
    const std::vector<std::tuple<std::size_t, std::size_t, double>>& similar, const std::vector<std::string>& names,
    const std::vector<std::string>& ids, double min_similarity);

}  // namespace kiln::studio
