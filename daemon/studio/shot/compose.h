#pragma once
// The pixel side of a product shot: the product cut-out placed in the frame, the mask the model
// repaints, and the exact composite of the product over the generated scene. Images are 8-bit
// cv::Mats in OpenCV's order (BGR, BGRA), straight alpha, as everywhere in the studio.
//
// The rule the composite keeps: where the placed product's alpha is 255 the result is the
// product's pixel byte for byte; where it is between 0 and 255 the product is blended over the
// scene with that alpha; elsewhere the result is the scene.
#include <opencv2/core.hpp>

#include "studio/shot/placement.h"

namespace kiln::studio::shot {

struct ProductLayer {
  cv::Mat bgra;   // frame-sized, the product at its placement, transparent elsewhere
  cv::Mat alpha;  // its alpha channel (CV_8UC1)
};

// Scales the product (premultiplied, so transparent pixels' colours never bleed in: area filter
// when shrinking, Lanczos when enlarging; scale 1 copies pixels as they are) and places it in a
// transparent frame, clipping whatever falls outside.
ProductLayer place_product(const cv::Mat& product_bgra, const Placement& placement, cv::Size frame);

// What the model repaints (255) and keeps (0): everything but the product's opaque core, the core
// shrunk by `edge` pixels so the model paints the contact shadow and the transition into the
// product's edge, with a feathered border `edge` pixels wide that stays inside the product.
cv::Mat repaint_mask(const cv::Mat& alpha, int edge);

// The product's opaque pixels shrunk by `edge` (255 = interior): what harmonizing never changes.
cv::Mat interior_mask(const cv::Mat& alpha, int edge);

// The product composited over `scene_bgr` (frame-sized) by the rule above. BGR out.
cv::Mat composite(const ProductLayer& product, const cv::Mat& scene_bgr);

// The product over a flat colour: the init image the model starts from.
cv::Mat over_colour(const ProductLayer& product, const cv::Scalar& bgr);

// `image_bgr` with the product's pixels put back where `interior` is 255 (after harmonizing).
cv::Mat restore_interior(const cv::Mat& image_bgr, const ProductLayer& product, const cv::Mat& interior);

}  // namespace kiln::studio::shot
