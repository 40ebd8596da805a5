#pragma once
// How sharp a picture is where its detail is: the width of the subject's strongest edges, in
// pixels of the image that will be trained.
//
// A sharp edge rises from one side's brightness to the other's within a pixel or two; blur
// spreads the same rise over more pixels. For every edge point (a local maximum of the gradient
// along its own direction) the rise H is followed along the gradient until the brightness stops
// changing, and the edge is H / (steepest slope) pixels wide — about 2.5 σ for a Gaussian blur of
// σ, the blur length for motion blur — whatever the edge's contrast. Only steps count (the
// brightness stays put beyond both ends of the rise): thin lines and waves of texture are as
// narrow or wide as they are drawn. Points beside a steeper edge (JPEG halos, ripples) are left out.
//
// That makes the measure:
//   * local: flat backgrounds and large empty areas have no edge points, so a sharp bottle on
//     white is as sharp as the bottle (the variance of the Laplacian, used before, fell with the
//     share of background);
//   * contrast-free: a pale label edge and a black silhouette give the same width when equally sharp;
//   * scale-aware: measured after scaling the picture as training will (never enlarged: enlargement
//     is the too_small check's business);
//   * directional: widths are kept per edge direction (4 bins of 45°) and the worst direction
//     counts, so motion blur, which smears one direction only, is caught.
// In each direction the steepest 30 % of the edges speak, and of those the sharp end (the 25th
// percentile of widths): soft shading, shadows and an out-of-focus backdrop add many gentle edges,
// but a sharp subject still has its crisp ones, and blur widens those too.
#include <array>

#include <opencv2/core.hpp>

namespace kiln::studio {

struct EdgeSharpness {
  double width = 0;            // px at the analysis scale: the worst direction's sharp-end width
  double best_width = 0;       // the best direction's (much smaller than width: smeared one way)
  int worst_direction = 0;     // of the gradient, degrees: 0 (vertical edges), 45, 90 (horizontal edges), 135
  int edges = 0;               // step edges measured
  double scale = 1;            // analysis px per source px
  cv::Size analysed;           // the region's size at the analysis scale
  std::array<double, 4> widths{};  // per direction (0 where too few edges)

  bool measured() const { return width > 0; }
  // A directional smear: the worst direction is much wider than the best.
  bool smeared() const { return measured() && width > 1.6 * best_width; }
};

// `image`: grey, BGR or BGRA (transparent pixels over `background`). `region`: where the subject
// is (empty: everywhere). `scale`: training px per source px; values above 1 are treated as 1.
// `mask` (8-bit, the image's size, optional): only edges within 3 px of it count.
EdgeSharpness edge_sharpness(const cv::Mat& image, cv::Rect region = {}, double scale = 1,
                             const cv::Mat& mask = {}, const cv::Scalar& background = cv::Scalar::all(255));

}  // namespace kiln::studio
