#include "studio/dataset/prepare.h"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "studio/dataset/face_detector.h"
#include "studio/dataset/subject.h"
#include "studio/error.h"
#include "studio/image.h"

namespace kiln::studio {
namespace {

// A square of `side` around `center`; kept inside `bounds` (and no larger) unless `may_extend`.
cv::Rect square_around(cv::Point2d center, double side, cv::Size bounds, bool may_extend) {
  if (!may_extend) side = std::min<double>(side, std::min(bounds.width, bounds.height));
  const int s = std::max(1, static_cast<int>(std::lround(side)));
  int x = static_cast<int>(std::lround(center.x - s / 2.0));
  int y = static_cast<int>(std::lround(center.y - s / 2.0));
  if (!may_extend) {
    x = std::clamp(x, 0, bounds.width - s);
    y = std::clamp(y, 0, bounds.height - s);
  }
  return {x, y, s, s};
}

cv::Point2d centre_of(const cv::Rect& r) { return {r.x + r.width / 2.0, r.y + r.height / 2.0}; }

// Median colour of the image's border, for padding photos without alpha so the padding blends in.
cv::Scalar border_colour(const cv::Mat& bgr) {
  const int band = std::max(1, std::min(bgr.cols, bgr.rows) / 50);
  cv::Mat strip;
  cv::vconcat(std::vector<cv::Mat>{bgr.rowRange(0, band).reshape(3, 1).clone(),
                                   bgr.rowRange(bgr.rows - band, bgr.rows).reshape(3, 1).clone()},
              strip);
  cv::Scalar out;
  std::vector<cv::Mat> channels;
  cv::split(strip, channels);
  for (int c = 0; c < 3; ++c) {
    cv::Mat sorted;
    cv::sort(channels[c], sorted, cv::SORT_EVERY_ROW | cv::SORT_ASCENDING);
    out[c] = sorted.at<uchar>(0, sorted.cols / 2);
  }
  return out;
}

// `region` of `bgr`, padded with `pad` where it extends past the image.
cv::Mat extract(const cv::Mat& bgr, const cv::Rect& region, const cv::Scalar& pad) {
  const cv::Rect inside = region & cv::Rect(0, 0, bgr.cols, bgr.rows);
  if (inside == region) return bgr(region).clone();
  cv::Mat out;
  cv::copyMakeBorder(bgr(inside), out, inside.y - region.y, region.br().y - inside.br().y, inside.x - region.x,
                     region.br().x - inside.br().x, cv::BORDER_CONSTANT, pad);
  return out;
}

// Square output at `side` px. Enlarging is recorded in Preparation (scale) and judged by
// check_image, which knows what counts as too small.
cv::Mat to_square(const cv::Mat& crop, int side) {
  cv::Mat out;
  cv::resize(crop, out, cv::Size(side, side), 0, 0, crop.cols < side ? cv::INTER_CUBIC : cv::INTER_AREA);
  return out;
}

// Bucketing: area at most resolution², never enlarged, sides trimmed to multiples of 64 (kohya's
// bucket_reso_steps) so kohya does not crop again unpredictably.
cv::Mat to_bucket(const cv::Mat& crop, int resolution) {
  const double scale = std::min(1.0, std::sqrt(static_cast<double>(resolution) * resolution / crop.total()));
  cv::Mat out = crop;
  if (scale < 1.0) cv::resize(crop, out, cv::Size(), scale, scale, cv::INTER_AREA);
  const int w = out.cols / 64 * 64, h = out.rows / 64 * 64;
  if (w == 0 || h == 0) return out.clone();
  return out(cv::Rect((out.cols - w) / 2, (out.rows - h) / 2, w, h)).clone();
}

// The region around the subject with a margin, widened to at most 2:1 (for bucketing).
cv::Rect bucket_region(const cv::Rect& box, double margin, cv::Size bounds) {
  const double mx = box.width * margin / (1 - 2 * margin), my = box.height * margin / (1 - 2 * margin);
  cv::Rect2d r(box.x - mx, box.y - my, box.width + 2 * mx, box.height + 2 * my);
  if (r.width > 2 * r.height) {
    r.y -= (r.width / 2 - r.height) / 2;
    r.height = r.width / 2;
  } else if (r.height > 2 * r.width) {
    r.x -= (r.height / 2 - r.width) / 2;
    r.width = r.height / 2;
  }
  const cv::Rect out(static_cast<int>(std::floor(r.x)), static_cast<int>(std::floor(r.y)),
                     static_cast<int>(std::ceil(r.width)), static_cast<int>(std::ceil(r.height)));
  return out & cv::Rect(0, 0, bounds.width, bounds.height);
}

}  // namespace

cv::Scalar background_colour(Background b) {
  return b == Background::White ? cv::Scalar(255, 255, 255) : cv::Scalar(235, 235, 235);
}

Preparation prepare_image(const cv::Mat& original, const DatasetSettings& s, const FaceDetector* faces) {
  if (original.empty()) throw Error(ErrorKind::InvalidArgument, "cannot prepare an empty image");
  if ((s.crop == CropMode::Face || s.face_enhance) && faces == nullptr)
    throw Error(ErrorKind::InvalidArgument, "face crops need a face detector");
  Preparation prep;
  const cv::Size size = original.size();
  const int short_side = std::min(size.width, size.height);
  const bool has_alpha = original.channels() == 4;
  const cv::Scalar bg = background_colour(s.background);
  const cv::Mat base = composite_over(original, bg);
  const cv::Scalar pad = has_alpha ? bg : border_colour(base);

  std::vector<cv::Rect> found_faces;
  bool faces_searched = false;
  const auto detect_faces = [&] {
    if (!faces_searched) found_faces = faces->detect(original);
    faces_searched = true;
    return !found_faces.empty();
  };

  CropMode mode = s.crop;
  if (mode == CropMode::Face && !detect_faces()) {
    prep.face_missing = true;  // the crop follows the subject instead
    mode = CropMode::Focus;
  }
  Subject& subject = prep.subject;
  if (mode == CropMode::Focus || s.center_subject) {
    subject = find_subject(original);
    if (subject.source == SubjectSource::None) {
      prep.subject_missing = true;  // cropped around the centre instead
      if (mode == CropMode::Focus) mode = CropMode::Center;
    }
  }

  const bool square = s.size == SizeMode::Square || s.center_subject;
  cv::Rect region;
  if (s.center_subject && subject.source != SubjectSource::None) {
    // Product layout: the subject centred on the background, a margin on every side. A subject
    // small in a large picture gets a wider frame rather than enlarged pixels (enlarging adds no
    // detail, only softness); only pictures smaller than the training size are enlarged. The
    // frame may reach past the picture only where the padding blends in (a cut-out, a plain
    // backdrop); a photo of a scene keeps to its own pixels, the subject as central as they allow.
    const double side = std::max(std::max(subject.box.width, subject.box.height) / (1.0 - 2.0 * s.margin),
                                 static_cast<double>(std::min(s.resolution, short_side)));
    region = square_around(centre_of(subject.box), side, size, has_alpha || has_one_backdrop(base));
  } else if (mode == CropMode::Face) {
    // Head and shoulders: the face in the upper middle, about a third of the frame.
    const cv::Rect f = found_faces.front();
    const cv::Point2d c(f.x + f.width / 2.0, f.y + f.height * 0.9);
    if (square) {
      const double side = std::clamp(3.2 * f.width, static_cast<double>(std::min(s.resolution, short_side)),
                                     static_cast<double>(short_side));
      region = square_around(c, side, size, false);
    } else {
      region = bucket_region(cv::Rect(static_cast<int>(c.x - 1.5 * f.width), static_cast<int>(c.y - 1.9 * f.height),
                                      3 * f.width, static_cast<int>(4.5 * f.height)),
                             0, size);
    }
  } else if (mode == CropMode::Focus) {
    if (square) {
      // Tightest square holding the subject and its margin, but not below the training resolution
      // (which would mean enlarging) nor beyond the image.
      const double side = std::clamp(std::max(subject.box.width, subject.box.height) / (1.0 - 2.0 * s.margin),
                                     static_cast<double>(std::min(s.resolution, short_side)),
                                     static_cast<double>(short_side));
      region = square_around(centre_of(subject.box), side, size, false);
    } else {
      region = bucket_region(subject.box, s.margin, size);
    }
  } else {
    region = square ? square_around(cv::Point2d(size.width / 2.0, size.height / 2.0), short_side, size, false)
                    : cv::Rect(0, 0, size.width, size.height);
  }
  prep.crop = region;

  const cv::Mat crop = extract(base, region, pad);
  cv::Mat main = square ? to_square(crop, s.resolution) : to_bucket(crop, s.resolution);
  // to_bucket trims after scaling, so the scale is the ratio before trimming: never above 1.
  prep.scale = square ? static_cast<double>(s.resolution) / crop.cols
                      : std::min(1.0, std::sqrt(static_cast<double>(s.resolution) * s.resolution / crop.total()));
  prep.outputs.push_back({"", main});
  if (s.flip) {
    cv::Mat mirrored;
    cv::flip(main, mirrored, 1);
    prep.outputs.push_back({"_flip", mirrored});
  }

  if (s.face_enhance) {
    if (detect_faces()) {
      const cv::Rect f = found_faces.front();
      const cv::Rect face_region = square_around(centre_of(f), 1.6 * f.width, size, false);
      cv::Mat face = to_square(extract(base, face_region, pad), s.resolution);
      prep.face_crop = face_region;
      prep.face_scale = static_cast<double>(s.resolution) / face_region.width;
      prep.outputs.push_back({"_face", face});
      if (s.flip) {
        cv::Mat mirrored;
        cv::flip(face, mirrored, 1);
        prep.outputs.push_back({"_face_flip", mirrored});
      }
    } else {
      prep.face_missing = true;  // no face-only copy
    }
  }
  return prep;
}

}  // namespace kiln::studio
