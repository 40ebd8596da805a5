#pragma once
// Where the subject of a picture is, for focus crops and product centring.
#include <opencv2/core.hpp>

namespace kiln::studio {

enum class SubjectSource { Alpha, Saliency, None };

struct Subject {
  cv::Rect box;          // in image pixels; the whole image when nothing stands out
  SubjectSource source = SubjectSource::None;
};

// With an alpha channel that is not fully opaque: the bounding box of the pixels more than 6 %
// opaque (soft halos from cut-outs do not count). Fully transparent: source None, whole image.
//
// Otherwise a saliency estimate that is easy to reason about, on a copy scaled to 256 px:
//   1. background colour = per-channel median of a thin border band (photos of a subject on a
//      plain backdrop have it all around); where the top and bottom bands differ (a scene: a wall
//      above a table), each row's own reference from its left and right edges instead,
//   2. colour distance of every pixel from it in Lab (perceptual units),
//   3. gradient energy (Sobel magnitude), since texture and edges mark subjects too,
//   4. saliency = 0.7 · distance + 0.3 · gradient, each scaled to 0..1; Otsu's threshold splits
//      it, an opening removes specks, and the box covers the largest region plus every region at
//      least a tenth of its size (subjects in several pieces).
//   5. what is in focus: the gradient a slight blur takes away (sharp edges lose most of it, edges
//      already out of focus hardly any), split at 30 % of its strong end. Its box is taken when
//      the colour box covers nearly all of the picture (a backdrop as colourful as the subject: an
//      out-of-focus scene) or is more than twice as large and holds it (a soft shadow, a blurred
//      background object).
// When nothing stands out (flat image, or the "subject" covers nearly all of it) the source is
// None and the box is the whole image. A layer with alpha that is opaque to its edges (a box seen
// square on, trimmed) is its own subject when saliency finds nothing in it.
Subject find_subject(const cv::Mat& image);

// Whether the picture stands on one backdrop (its top and bottom edges the same colour, within a
// gentle gradient) rather than in a scene (a wall above a table): padding it with its border colour
// then blends in.
bool has_one_backdrop(const cv::Mat& image);

}  // namespace kiln::studio
