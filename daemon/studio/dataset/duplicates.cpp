#include "studio/dataset/duplicates.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <utility>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "studio/image.h"

namespace kiln::studio {
namespace {

constexpr int kThumb = 96;           // signature side, px (stored)
constexpr int kCoarse = 32;          // sides of the copies the alignment is found on
constexpr int kMiddle = 48;
constexpr double kContext = 1.2;     // the subject's square is this much wider than its box
constexpr double kCore = 0.8;        // share of the square compared while the other slides under it
constexpr double kDetailBlur = 1.5;  // σ (signature px) of the blur the detail is taken against
constexpr double kGate = 0.6;        // coarse correlation below which two pictures are not compared finely
constexpr int kEdgeMargin = 3;       // signature px along a picture's edges left out of the fine comparison
constexpr int kBlocks = 6;           // blocks per side compared one by one
constexpr double kBlockWeight = 0.6; // how a block's share of the detail weighs its disagreement
constexpr double kSure = 0.97;       // similarity from which the other way round is not tried

// One size of a thumbnail, ready to correlate: the pixels, their running sums (integral images,
// so any rectangle's sum and sum of squares costs four look-ups), and where the picture itself
// is (padding and a margin along the picture's edges, where a crop differs, are left out).
struct Level {
  cv::Mat pixels;       // CV_32F
  cv::Mat sum, sqsum;   // CV_64F integral images
  cv::Rect valid;
};

Level make_level(cv::Mat pixels, const cv::Rect& inside, int side_of_inside, int margin) {
  Level l;
  l.pixels = std::move(pixels);
  cv::integral(l.pixels, l.sum, l.sqsum, CV_64F, CV_64F);
  const double k = static_cast<double>(l.pixels.cols) / side_of_inside;
  l.valid = cv::Rect(cvCeil(inside.x * k) + margin, cvCeil(inside.y * k) + margin,
                     cvFloor(inside.width * k) - 2 * margin, cvFloor(inside.height * k) - 2 * margin) &
            cv::Rect(0, 0, l.pixels.cols, l.pixels.rows);
  return l;
}

double rect_sum(const cv::Mat& integral, const cv::Rect& r) {
  return integral.at<double>(r.y + r.height, r.x + r.width) - integral.at<double>(r.y, r.x + r.width) -
         integral.at<double>(r.y + r.height, r.x) + integral.at<double>(r.y, r.x);
}

// Pearson correlation of `b` placed with its corner at `at` on `a`, over `region` (in a's px)
// where both are valid; -1 when less than `min_area` px of them overlap, 0 when either is flat.
double correlate(const Level& a, const Level& b, cv::Point at, int min_area, cv::Rect region = {}) {
  cv::Rect overlap = a.valid & (b.valid + at);
  if (region.area() > 0) overlap &= region;
  if (overlap.area() < std::max(1, min_area)) return -1;
  const cv::Rect in_b = overlap - at;
  const double n = overlap.area();
  const double sa = rect_sum(a.sum, overlap), saa = rect_sum(a.sqsum, overlap);
  const double sb = rect_sum(b.sum, in_b), sbb = rect_sum(b.sqsum, in_b);
  double sab = 0;
  for (int y = 0; y < overlap.height; ++y) {
    const float* pa = a.pixels.ptr<float>(overlap.y + y) + overlap.x;
    const float* pb = b.pixels.ptr<float>(in_b.y + y) + in_b.x;
    float row = 0;
    for (int x = 0; x < overlap.width; ++x) row += pa[x] * pb[x];
    sab += row;
  }
  const double va = saa - sa * sa / n, vb = sbb - sb * sb / n;
  const double floor = 1e-3 * n;  // a flat stretch: no evidence of anything
  if (va <= floor || vb <= floor) return 0;
  return (sab - sa * sb / n) / std::sqrt(va * vb);
}

// A thumbnail at the three sizes the comparison works at: coarse and middle copies for the
// alignment, the fine detail (the thumbnail minus a blurred copy) for the verdict.
struct Prepared {
  Level coarse, middle, detail;
};

Prepared prepare(const Thumbnail& t) {
  Prepared p;
  cv::Mat fine, small, blurred;
  t.grey.convertTo(fine, CV_32F);
  cv::resize(fine, small, cv::Size(kCoarse, kCoarse), 0, 0, cv::INTER_AREA);
  p.coarse = make_level(small, t.inside, kThumb, 1);
  cv::resize(fine, small, cv::Size(kMiddle, kMiddle), 0, 0, cv::INTER_AREA);
  p.middle = make_level(small, t.inside, kThumb, 1);
  cv::GaussianBlur(fine, blurred, cv::Size(0, 0), kDetailBlur);
  p.detail = make_level(fine - blurred, t.inside, kThumb, kEdgeMargin);
  return p;
}

// The middle kCore of `l`, resized by `scale`, with its valid part.
Level core_of(const Level& l, double scale) {
  const int side = static_cast<int>(std::lround(l.pixels.cols * kCore)), off = (l.pixels.cols - side) / 2;
  const int to = static_cast<int>(std::lround(side * scale));
  cv::Mat out;
  cv::resize(l.pixels(cv::Rect(off, off, side, side)), out, cv::Size(to, to), 0, 0,
             scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  const double k = static_cast<double>(to) / side;
  const cv::Rect v = l.valid & cv::Rect(off, off, side, side);
  Level c;
  c.pixels = out;
  cv::integral(c.pixels, c.sum, c.sqsum, CV_64F, CV_64F);
  c.valid = cv::Rect(cvCeil((v.x - off) * k), cvCeil((v.y - off) * k), cvFloor(v.width * k), cvFloor(v.height * k)) &
            cv::Rect(0, 0, to, to);
  return c;
}

// Where b's middle, resized by one of `scales`, best fits a, its corner within `range` px of
// `around` (anywhere it fits when range < 0). Returns the correlation; `scale` and `at` get the fit.
double fit(const Level& a, const Level& b, const std::vector<double>& scales, cv::Point around, int range,
           double& scale, cv::Point& at) {
  double best = -1;
  double best_scale = scale;
  cv::Point best_at = at;
  for (const double s : scales) {
    const Level t = core_of(b, s);
    const int min_area = t.pixels.cols * t.pixels.rows / 4;  // a quarter of the template must overlap
    const int x0 = range < 0 ? 0 : std::max(0, around.x - range), y0 = range < 0 ? 0 : std::max(0, around.y - range);
    const int x1 = std::min(a.pixels.cols - t.pixels.cols, range < 0 ? a.pixels.cols : around.x + range);
    const int y1 = std::min(a.pixels.rows - t.pixels.rows, range < 0 ? a.pixels.rows : around.y + range);
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) {
        const double v = correlate(a, t, {x, y}, min_area);
        if (v > best) best = v, best_scale = s, best_at = {x, y};
      }
  }
  scale = best_scale;
  at = best_at;
  return best;
}

std::vector<double> steps(double centre, double spread, double step) {
  std::vector<double> out;
  for (double s = centre - spread; s <= centre + spread + 1e-9; s += step) out.push_back(s);
  return out;
}

// Block by block (a 6×6 grid over the overlap): a picture that differs in one place (a handle
// turned, a label showing) is not the same picture, however alike the rest. Each block's
// disagreement (1 minus its correlation) counts by how much detail it holds (its share of the
// richest block's, to the power 0.6: plain blocks with only noise in them hardly count); the
// result is 1 minus the largest.
double worst_block(const Level& a, const Level& t, cv::Point at) {
  const cv::Rect overlap = a.valid & (t.valid + at);
  struct Block {
    double detail, correlation;
  };
  std::vector<Block> blocks;
  double most = 0;
  for (int by = 0; by < kBlocks; ++by)
    for (int bx = 0; bx < kBlocks; ++bx) {
      const cv::Rect r(overlap.x + bx * overlap.width / kBlocks, overlap.y + by * overlap.height / kBlocks,
                       overlap.width / kBlocks, overlap.height / kBlocks);
      if (r.area() < 4) continue;
      const double n = r.area();
      const double ea = rect_sum(a.sqsum, r) / n, eb = rect_sum(t.sqsum, r - at) / n;
      const double detail = std::sqrt(std::max(ea, eb));
      blocks.push_back({detail, correlate(a, t, at, 1, r)});
      most = std::max(most, detail);
    }
  double worst = 0;
  for (const Block& k : blocks)
    if (most > 0) worst = std::max(worst, (1 - std::max(0.0, k.correlation)) * std::pow(k.detail / most, kBlockWeight));
  return 1 - worst;
}

// b's middle slid over a, coarse to fine: over scales and shifts on small copies (a crop moves
// and scales the subject box), then the fine detail at the best fit — fine detail decorrelates
// with a pixel of misalignment — compared overall and block by block. The lowest of the coarse
// and the fine correlations.
double one_way(const Prepared& a, const Prepared& b) {
  double scale = 1;
  cv::Point at;
  const double coarse = fit(a.coarse, b.coarse, steps(1.0, 0.15, 0.03), {}, -1, scale, at);
  if (coarse < kGate) return coarse;
  fit(a.middle, b.middle, steps(scale, 0.045, 0.015), at * kMiddle / kCoarse, 2, scale, at);
  fit(a.detail, b.detail, steps(scale, 0.01, 0.01), at * kThumb / kMiddle, 2, scale, at);
  const Level t = core_of(b.detail, scale);
  const double fine = correlate(a.detail, t, at, t.pixels.cols * t.pixels.rows / 4);
  return std::min(coarse, std::min(fine, worst_block(a.detail, t, at)));
}

// The square of `side` px at (x, y) of `grey`, padded where it leaves the picture, at kThumb px.
Thumbnail thumbnail(const cv::Mat& grey, int x, int y, int side, uchar pad) {
  Thumbnail t;
  const cv::Rect inside = cv::Rect(x, y, side, side) & cv::Rect(0, 0, grey.cols, grey.rows);
  cv::Mat square;
  cv::copyMakeBorder(grey(inside), square, inside.y - y, y + side - inside.br().y, inside.x - x,
                     x + side - inside.br().x, cv::BORDER_CONSTANT, cv::Scalar(pad));
  // Band-limited before it is shrunk, so fine texture does not alias differently at each size.
  if (side > 2 * kThumb) cv::GaussianBlur(square, square, cv::Size(0, 0), 0.4 * side / kThumb);
  cv::resize(square, t.grey, cv::Size(kThumb, kThumb), 0, 0, side > kThumb ? cv::INTER_AREA : cv::INTER_LINEAR);
  const double k = static_cast<double>(kThumb) / side;
  t.inside = cv::Rect(cvFloor((inside.x - x) * k), cvFloor((inside.y - y) * k), cvCeil(inside.width * k),
                      cvCeil(inside.height * k)) &
             cv::Rect(0, 0, kThumb, kThumb);
  return t;
}

double thumbnail_similarity(const Prepared& a, const Prepared& b) {
  // Both ways: a crop fits inside its original, not the other way round.
  const double first = one_way(a, b);
  if (first >= kSure) return first;
  return std::max(0.0, std::max(first, one_way(b, a)));
}

std::string rect_text(const cv::Rect& r) {
  return std::to_string(r.x) + "," + std::to_string(r.y) + "," + std::to_string(r.width) + "," + std::to_string(r.height);
}

}  // namespace

struct PreparedSignature {
  Prepared subject, frame;
};

namespace {

std::shared_ptr<const PreparedSignature> prepare(const PictureSignature& s) {
  return std::make_shared<const PreparedSignature>(PreparedSignature{prepare(s.subject), prepare(s.frame)});
}

}  // namespace

PictureSignature picture_signature(const cv::Mat& original, const Subject& subject, const cv::Scalar& background) {
  PictureSignature sig;
  if (original.empty()) return sig;
  cv::Mat grey;
  cv::cvtColor(to_bgr(composite_over(original, background)), grey, cv::COLOR_BGR2GRAY);
  // Beyond the picture's edges: what preparation pads with — the background for a layer, the
  // backdrop's colour (the median of the border) for a photo — so a crop that moves an edge
  // changes little.
  uchar pad;
  if (original.channels() == 4) {
    cv::Mat bg(1, 1, CV_8UC3, background), g;
    cv::cvtColor(bg, g, cv::COLOR_BGR2GRAY);
    pad = g.at<uchar>(0, 0);
  } else {
    std::vector<uchar> border;
    for (int i = 0; i < grey.cols; ++i) border.insert(border.end(), {grey.at<uchar>(0, i), grey.at<uchar>(grey.rows - 1, i)});
    for (int i = 0; i < grey.rows; ++i) border.insert(border.end(), {grey.at<uchar>(i, 0), grey.at<uchar>(i, grey.cols - 1)});
    std::nth_element(border.begin(), border.begin() + static_cast<std::ptrdiff_t>(border.size() / 2), border.end());
    pad = border[border.size() / 2];
  }
  const cv::Rect box = subject.box.area() > 0 ? subject.box : cv::Rect(0, 0, original.cols, original.rows);
  const int side = std::max(1, static_cast<int>(std::lround(kContext * std::max(box.width, box.height))));
  sig.subject = thumbnail(grey, box.x + box.width / 2 - side / 2, box.y + box.height / 2 - side / 2, side, pad);
  const int whole = std::max(original.cols, original.rows);
  sig.frame = thumbnail(grey, (original.cols - whole) / 2, (original.rows - whole) / 2, whole, pad);
  sig.across = std::max(box.width, box.height);
  sig.prepared = prepare(sig);
  return sig;
}

double picture_similarity(const PictureSignature& a, const PictureSignature& b) {
  if (a.empty() || b.empty()) return 0;
  const auto pa = a.prepared ? a.prepared : prepare(a), pb = b.prepared ? b.prepared : prepare(b);
  // The subject first; the whole picture when the subject was found differently in a copy.
  const double subject = thumbnail_similarity(pa->subject, pb->subject);
  if (subject >= kSure) return subject;
  return std::max(subject, thumbnail_similarity(pa->frame, pb->frame));
}

std::vector<unsigned char> encode_thumbnails(const PictureSignature& s) {
  std::vector<unsigned char> png;
  if (s.empty()) return png;
  cv::Mat both;
  cv::hconcat(s.subject.grey, s.frame.grey, both);
  cv::imencode(".png", both, png);
  return png;
}

std::string encode_facts(const PictureSignature& s) {
  char width[32];
  std::snprintf(width, sizeof width, "%.3f", s.edge_width);
  return std::to_string(s.across) + ":" + width + ":" + rect_text(s.subject.inside) + ":" + rect_text(s.frame.inside);
}

PictureSignature decode_signature(const std::string& facts, const std::vector<unsigned char>& png) {
  PictureSignature s;
  cv::Rect sub, frame;
  if (std::sscanf(facts.c_str(), "%d:%lf:%d,%d,%d,%d:%d,%d,%d,%d", &s.across, &s.edge_width, &sub.x, &sub.y,
                  &sub.width, &sub.height, &frame.x, &frame.y, &frame.width, &frame.height) != 10)
    return {};
  if (png.empty()) return s;  // the facts alone: enough to choose which copy to keep
  cv::Mat both;
  try {
    both = cv::imdecode(png, cv::IMREAD_GRAYSCALE);
  } catch (const cv::Exception&) {
    return {};
  }
  if (both.rows != kThumb || both.cols != 2 * kThumb) return {};
  const cv::Rect bounds(0, 0, kThumb, kThumb);
  s.subject = {both(cv::Rect(0, 0, kThumb, kThumb)).clone(), sub & bounds};
  s.frame = {both(cv::Rect(kThumb, 0, kThumb, kThumb)).clone(), frame & bounds};
  s.prepared = prepare(s);
  return s;
}

std::vector<Duplicate> find_duplicates(const std::vector<double>& detail,
                                       const std::vector<std::tuple<std::size_t, std::size_t, double>>& similar,
                                       double min_similarity) {
  const std::size_t n = detail.size();
  // Union-find over the pairs that match.
  std::vector<std::size_t> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  const auto root = [&](std::size_t i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
  };
  for (const auto& [i, j, s] : similar)
    if (i < n && j < n && s >= min_similarity) parent[root(j)] = root(i);
  // The keeper of each group: the most detail; within 5 % (re-encodings of one size) the first.
  std::vector<std::size_t> keeper(n, n), size(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    ++size[root(i)];
    std::size_t& k = keeper[root(i)];
    if (k == n || detail[i] > 1.05 * detail[k]) k = i;
  }
  std::vector<double> with_keeper(n, 0);
  for (const auto& [i, j, s] : similar) {
    if (i >= n || j >= n) continue;
    if (keeper[root(i)] == j) with_keeper[i] = std::max(with_keeper[i], s);
    if (keeper[root(j)] == i) with_keeper[j] = std::max(with_keeper[j], s);
  }
  std::vector<Duplicate> out;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = keeper[root(i)];
    if (size[root(i)] > 1 && k != i) out.push_back({i, k, with_keeper[i]});
  }
  return out;
}

std::vector<std::pair<std::size_t, Finding>> near_duplicate_findings(
    const std::vector<PictureSignature>& signatures,
    const std::vector<std::tuple<std::size_t, std::size_t, double>>& similar, const std::vector<std::string>& names,
    const std::vector<std::string>& ids, double min_similarity) {
  std::vector<double> detail;
  for (const PictureSignature& s : signatures) detail.push_back(s.across > 0 ? s.detail() : 0);
  std::vector<std::pair<std::size_t, Finding>> out;
  for (const Duplicate& d : find_duplicates(detail, similar, min_similarity)) {
    const PictureSignature &copy = signatures[d.image], &kept = signatures[d.keeper];
    const std::string& keep = names[d.keeper];
    char buf[600];
    if (d.similarity > 0)
      std::snprintf(buf, sizeof buf,
                    "'%s' is the same picture as '%s' (%s): they match at %.2f, where different views of one "
                    "subject stay under %.2f.",
                    names[d.image].c_str(), keep.c_str(), ids[d.keeper].c_str(), d.similarity, min_similarity);
    else  // matched through a third copy
      std::snprintf(buf, sizeof buf, "'%s' is the same picture as '%s' (%s), through another copy of it.",
                    names[d.image].c_str(), keep.c_str(), ids[d.keeper].c_str());
    const std::string why = kept.across > 1.05 * copy.across ? "it is larger"
                            : kept.edge_width > 0 && kept.edge_width * 1.05 < copy.edge_width ? "it is sharper"
                                                                                               : "it came first";
    out.push_back({d.image,
                   {"near_duplicate", buf,
                    "Keep '" + keep + "' (" + why + ") and remove this one: the LoRA would learn that view twice as "
                                                    "hard and copy it.",
                    ids[d.keeper]}});
  }
  return out;
}

}  // namespace kiln::studio
