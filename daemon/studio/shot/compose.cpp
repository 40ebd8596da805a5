#include "studio/shot/compose.h"

#include <opencv2/imgproc.hpp>

#include "studio/error.h"

namespace kiln::studio::shot {

namespace {
cv::Mat opaque_of(const cv::Mat& alpha) {
  CV_Assert(alpha.type() == CV_8UC1);
  cv::Mat opaque;
  cv::compare(alpha, 255, opaque, cv::CMP_EQ);
  return opaque;
}

cv::Mat shrink(const cv::Mat& mask, int by) {
  if (by <= 0) return mask;
  cv::Mat out;
  const cv::Mat disc = cv::getStructuringElement(cv::MORPH_ELLIPSE, {2 * by + 1, 2 * by + 1});
  // Outside the frame counts as opaque, so a product cut by the frame's edge keeps its core there.
  cv::erode(mask, out, disc, {-1, -1}, 1, cv::BORDER_CONSTANT, cv::Scalar(255));
  return out;
}

// Resizes straight-alpha BGRA through premultiplied colour, so transparent pixels' colours never
// bleed into the edge.
cv::Mat resize_bgra(const cv::Mat& bgra, cv::Size size) {
  if (bgra.size() == size) return bgra.clone();
  cv::Mat f, premultiplied, resized;
  bgra.convertTo(f, CV_32FC4, 1.0 / 255);
  std::vector<cv::Mat> ch;
  cv::split(f, ch);
  for (int c = 0; c < 3; ++c) ch[c] = ch[c].mul(ch[3]);
  cv::merge(ch, premultiplied);
  const bool shrinking = size.width < bgra.cols && size.height < bgra.rows;
  cv::resize(premultiplied, resized, size, 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LANCZOS4);
  cv::split(resized, ch);
  ch[3] = cv::max(cv::min(ch[3], 1.0), 0.0);
  for (int c = 0; c < 3; ++c) {
    cv::Mat safe = cv::max(ch[3], 1e-6f);
    cv::divide(ch[c], safe, ch[c]);
    ch[c].setTo(0, ch[3] <= 1e-6f);
  }
  cv::Mat out, merged;
  cv::merge(ch, merged);
  merged.convertTo(out, CV_8UC4, 255.0);  // rounds and saturates
  return out;
}
}  // namespace

ProductLayer place_product(const cv::Mat& product_bgra, const Placement& p, cv::Size frame) {
  if (product_bgra.type() != CV_8UC4) throw Error(ErrorKind::InvalidArgument, "the product must be an 8-bit image with alpha");
  const cv::Mat scaled = resize_bgra(product_bgra, {p.width, p.height});
  ProductLayer layer;
  layer.bgra = cv::Mat::zeros(frame, CV_8UC4);
  const cv::Rect target = cv::Rect(p.x, p.y, p.width, p.height) & cv::Rect({0, 0}, frame);
  if (!target.empty()) scaled(target - cv::Point(p.x, p.y)).copyTo(layer.bgra(target));
  cv::extractChannel(layer.bgra, layer.alpha, 3);
  return layer;
}

cv::Mat repaint_mask(const cv::Mat& alpha, int edge) {
  if (edge < 0) throw Error(ErrorKind::InvalidArgument, "'edge' cannot be negative");
  const cv::Mat opaque = opaque_of(alpha);
  cv::Mat keep = shrink(opaque, edge);
  if (edge > 0) {
    // Feather outward from the shrunk core, never past the opaque pixels.
    cv::GaussianBlur(keep, keep, {0, 0}, edge / 2.0, edge / 2.0, cv::BORDER_REPLICATE);
    cv::min(keep, opaque, keep);
  }
  cv::Mat repaint;
  cv::subtract(cv::Scalar(255), keep, repaint);
  return repaint;
}

cv::Mat interior_mask(const cv::Mat& alpha, int edge) { return shrink(opaque_of(alpha), std::max(edge, 0)); }

cv::Mat composite(const ProductLayer& product, const cv::Mat& scene_bgr) {
  CV_Assert(scene_bgr.type() == CV_8UC3 && scene_bgr.size() == product.bgra.size());
  cv::Mat out(scene_bgr.size(), CV_8UC3);
  for (int y = 0; y < out.rows; ++y) {
    const cv::Vec4b* p = product.bgra.ptr<cv::Vec4b>(y);
    const cv::Vec3b* s = scene_bgr.ptr<cv::Vec3b>(y);
    cv::Vec3b* o = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < out.cols; ++x) {
      const int a = p[x][3];
      if (a == 255) o[x] = {p[x][0], p[x][1], p[x][2]};
      else if (a == 0) o[x] = s[x];
      else
        for (int c = 0; c < 3; ++c) o[x][c] = static_cast<uint8_t>((p[x][c] * a + s[x][c] * (255 - a) + 127) / 255);
    }
  }
  return out;
}

cv::Mat over_colour(const ProductLayer& product, const cv::Scalar& bgr) {
  return composite(product, cv::Mat(product.bgra.size(), CV_8UC3, bgr));
}

cv::Mat restore_interior(const cv::Mat& image_bgr, const ProductLayer& product, const cv::Mat& interior) {
  CV_Assert(image_bgr.type() == CV_8UC3 && interior.type() == CV_8UC1 && image_bgr.size() == interior.size());
  cv::Mat out = image_bgr.clone(), product_bgr;
  cv::cvtColor(product.bgra, product_bgr, cv::COLOR_BGRA2BGR);
  product_bgr.copyTo(out, interior);
  return out;
}

}  // namespace kiln::studio::shot
