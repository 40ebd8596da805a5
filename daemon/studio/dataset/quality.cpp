#include "studio/dataset/quality.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <opencv2/imgproc.hpp>

#include "studio/image.h"

namespace kiln::studio {
namespace {

constexpr double kOpaque = 16;  // of 255: fainter pixels are halos, as in subject.cpp
constexpr double kEdge = 6;     // grey levels per px: an edge (a plain backdrop, noise and JPEG stay under it)
constexpr double kBusy = 0.02;  // share of edge pixels from which what a crop drops is more than backdrop
constexpr double kPlainBorder = 8;     // grey-level spread along the edges under which padding blends in
constexpr double kMostlyPadding = 0.4; // share of the square that is padding from which it shows

template <typename... Args>
std::string format(const char* f, Args... args) {
  char buf[600];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

std::string quoted(const std::string& name) { return "'" + name + "'"; }

// Whether a box found by saliency reaches two opposite edges of the picture: the subject runs
// off the picture (a strip cut through it) or what was found is the whole scene.
bool spans_picture(const cv::Rect& box, cv::Size size) {
  const int tol = std::max(2, std::min(size.width, size.height) / 100);
  return (box.x <= tol && box.br().x >= size.width - tol) || (box.y <= tol && box.br().y >= size.height - tol);
}

// Whether the picture outside `crop` holds detail (texture, objects) rather than plain backdrop:
// the share of it with edges, after a blur that sensor noise does not survive.
bool busy_outside(const cv::Mat& grey, const cv::Rect& crop) {
  const double k = std::min(1.0, 256.0 / std::max(grey.cols, grey.rows));
  cv::Mat small, gx, gy, magnitude;
  cv::resize(grey, small, cv::Size(), k, k, cv::INTER_AREA);
  cv::GaussianBlur(small, small, cv::Size(0, 0), 1.5);
  cv::Sobel(small, gx, CV_32F, 1, 0, 3, 1.0 / 8);
  cv::Sobel(small, gy, CV_32F, 0, 1, 3, 1.0 / 8);
  cv::magnitude(gx, gy, magnitude);
  cv::Mat outside(small.size(), CV_8U, cv::Scalar(255));
  const cv::Rect kept(cvFloor(crop.x * k), cvFloor(crop.y * k), cvCeil(crop.width * k), cvCeil(crop.height * k));
  outside(kept & cv::Rect(0, 0, small.cols, small.rows)).setTo(0);
  const int n = cv::countNonZero(outside);
  if (n == 0) return false;
  cv::Mat edges = magnitude > kEdge;
  edges &= outside;
  return cv::countNonZero(edges) > kBusy * n;
}

// Whether the picture's edges are one plain colour, so padding in that colour blends in.
bool plain_border(const cv::Mat& grey) {
  const int band = std::max(1, std::min(grey.cols, grey.rows) / 50);
  cv::Mat edges;
  cv::vconcat(std::vector<cv::Mat>{grey.rowRange(0, band).reshape(1, 1), grey.rowRange(grey.rows - band, grey.rows).reshape(1, 1)},
              edges);
  cv::Scalar mean, stddev;
  cv::meanStdDev(edges, mean, stddev);
  return stddev[0] < kPlainBorder;
}

bool aspect_matters(const Preparation& prep, const DatasetSettings& s, const cv::Mat& grey) {
  const bool square = s.size == SizeMode::Square || s.center_subject;
  if (!square) return true;  // compared with the bucket limit
  if (s.center_subject || s.crop == CropMode::Focus) {
    // The crop holds the whole subject; what it leaves out matters only when it is more than
    // plain backdrop, when there is no subject to hold, or when the "subject" is the whole strip;
    // what it pads matters when the padding cannot blend into a busy picture.
    const Subject& sub = prep.subject;
    if (sub.source == SubjectSource::Alpha) return false;
    if (sub.source == SubjectSource::None) return true;
    const cv::Rect inside = prep.crop & cv::Rect(0, 0, grey.cols, grey.rows);
    const double padded = 1 - static_cast<double>(inside.area()) / std::max(1, prep.crop.area());
    return spans_picture(sub.box, grey.size()) || (sub.box & prep.crop) != sub.box || busy_outside(grey, prep.crop) ||
           (padded > kMostlyPadding && !plain_border(grey));
  }
  return true;  // a centre or face square keeps a short-side square of a long picture
}

}  // namespace

ImageMeasures measure_image(const cv::Mat& original, const Preparation& prep, const DatasetSettings& s) {
  ImageMeasures m;
  m.size = original.size();
  const cv::Rect bounds(0, 0, original.cols, original.rows);
  cv::Mat alpha_mask;
  if (original.channels() == 4) {
    cv::Mat alpha;
    cv::extractChannel(original, alpha, 3);
    alpha_mask = alpha > kOpaque;
    m.opaque_share = static_cast<double>(cv::countNonZero(alpha_mask)) / alpha.total();
  }
  cv::Mat grey;
  cv::cvtColor(to_bgr(composite_over(original, background_colour(s.background))), grey, cv::COLOR_BGR2GRAY);
  cv::Scalar mean, stddev;
  cv::meanStdDev(grey, mean, stddev);
  m.grey_spread = stddev[0];

  const cv::Rect inside = prep.crop & bounds;
  m.trained_across = std::max(inside.width, inside.height);
  m.enlargement = prep.scale;
  if (prep.face_scale > 0) {
    m.face_across = prep.face_crop.width;
    m.face_enlargement = prep.face_scale;
  }
  m.aspect = static_cast<double>(std::max(m.size.width, m.size.height)) / std::max(1, std::min(m.size.width, m.size.height));
  m.kept_share = static_cast<double>(inside.area()) / std::max(1, bounds.area());
  m.filled_share = static_cast<double>(inside.area()) / std::max(1, prep.crop.area());
  // A layer (alpha) is its subject, trimmed: centring pads it and loses nothing.
  m.aspect_matters = m.aspect > 1.5 && !(original.channels() == 4 && (s.center_subject || s.crop == CropMode::Focus)) &&
                     aspect_matters(prep, s, grey);

  // Sharpness where the subject is, inside what is trained, at the training scale.
  Subject& subject = m.subject;
  subject = prep.subject;
  if (subject.box.area() == 0) subject = find_subject(original);  // the crop mode did not need it
  cv::Rect region = subject.box & inside;
  if (region.area() == 0) region = inside;
  m.sharpness = edge_sharpness(original, region, std::min(1.0, prep.scale),
                               subject.source == SubjectSource::Alpha ? alpha_mask : cv::Mat(),
                               background_colour(s.background));
  m.trained_at = s.resolution;
  return m;
}

std::vector<Finding> judge_image(const ImageMeasures& m, const Preparation& prep, const DatasetSettings& s,
                                 const std::string& name, const QualityThresholds& t) {
  std::vector<Finding> out;
  const std::string who = quoted(name);
  if (m.opaque_share < t.min_opaque) {
    out.push_back({"transparent",
                   m.opaque_share == 0
                       ? who + " is fully transparent: there is nothing in it to learn."
                       : format("%s is almost fully transparent: only %.2f%% of it is opaque, too little to learn from.",
                                who.c_str(), 100 * m.opaque_share),
                   "Check that the right layer was sent, or remove this image."});
    return out;  // the other checks would only repeat it
  }
  if (m.grey_spread < t.min_stddev) {
    out.push_back({"flat",
                   format("%s is a single flat colour (grey levels vary by only %.1f): there is nothing in it to learn.",
                          who.c_str(), m.grey_spread),
                   "Remove it."});
    return out;
  }

  if (m.enlargement > t.max_enlargement) {
    const bool square = s.size == SizeMode::Square || s.center_subject;
    out.push_back(
        {"too_small",
         square ? format("%s is too small for training at %d px: the part that is trained is %d px across in the "
                         "picture (%dx%d), so it is enlarged %.1fx and will look soft (up to %.1fx passes).",
                         who.c_str(), s.resolution, m.trained_across, m.size.width, m.size.height, m.enlargement,
                         t.max_enlargement)
                : format("%s is too small for training at %d px: at %dx%d it has %.1fx fewer pixels across than "
                         "kohya's buckets, which enlarge it and make it soft (up to %.1fx passes).",
                         who.c_str(), s.resolution, m.size.width, m.size.height, m.enlargement, t.max_enlargement),
         format("Use a larger original (at least %d px across the trained part), or train at a lower resolution.",
                static_cast<int>(std::ceil(s.resolution / t.max_enlargement)))});
  }
  if (m.face_enlargement > t.max_enlargement)
    out.push_back({"upscaled",
                   format("%s: the face is small in the picture, so its face-only copy is %d px across enlarged %.1fx "
                          "to %d px and will look soft (up to %.1fx passes).",
                          who.c_str(), m.face_across, m.face_enlargement, s.resolution, t.max_enlargement),
                   "Use a closer or larger photo of the face, or turn the face-only copies off (--no-face-crops)."});

  const bool bucket = !(s.size == SizeMode::Square || s.center_subject);
  const double aspect_limit = bucket ? t.max_bucket_aspect : t.max_aspect;
  if (m.aspect > aspect_limit && m.aspect_matters) {
    std::string what;
    if (bucket)
      what = format("%s is %.1f:1 (%dx%d); kohya's buckets stop at %.0f:1, so it is cut to that.", who.c_str(),
                    m.aspect, m.size.width, m.size.height, t.max_bucket_aspect);
    else if (m.kept_share > 0.9)
      what = format("%s is %.1f:1 (%dx%d); centred in the square that is trained, it fills only %.0f%% of it and "
                    "the rest is padding.",
                    who.c_str(), m.aspect, m.size.width, m.size.height, 100 * m.filled_share);
    else
      what = format("%s is %.1f:1 (%dx%d); the square that is trained keeps only %.0f%% of it.", who.c_str(), m.aspect,
                    m.size.width, m.size.height, 100 * m.kept_share);
    out.push_back({"extreme_aspect", what,
                   bucket ? "Crop it yourself to the part that matters."
                          : "Crop it yourself to the part that matters, or prepare with --size bucket to keep its shape."});
  }

  // An enlarged picture is soft for that reason already, and with few pixels its edges say less:
  // too_small speaks for it.
  const EdgeSharpness& e = m.sharpness;
  if (e.measured() && e.width > t.max_edge_width && m.enlargement <= t.max_enlargement) {
    // Enlarged pictures are judged at their own size: the enlargement is too_small's business.
    const std::string at = m.enlargement <= 1 ? format("at the %d px it is trained at", s.resolution)
                                              : format("at its own size (%d px across)", m.trained_across);
    std::string what = format("%s looks blurry: its subject's edges are %.1f px wide %s, where sharp pictures "
                              "measure under %.1f px",
                              who.c_str(), e.width, at.c_str(), t.max_edge_width);
    if (e.smeared())
      what += format("; the smear runs one way (edges across the other way are %.1f px), as camera shake or motion "
                     "leaves it",
                     e.best_width);
    out.push_back({"blurry", what + ".", "Replace it with a sharper photo, or remove it."});
  }

  if (prep.face_missing)
    out.push_back({"no_face",
                   who + (s.crop == CropMode::Face ? ": no face was found, so the crop follows the subject instead."
                                                   : ": no face was found, so it has no face-only copy."),
                   "Fine for pictures without a face; for a person, use a photo where the face is clearly visible."});
  if (prep.subject_missing)
    out.push_back({"no_subject",
                   who + ": no single subject stands out from the background, so it is cropped to a square around "
                         "its centre.",
                   "Check its training image; a plainer background or a cut-out layer lets Kiln find the subject."});
  return out;
}

std::vector<Finding> check_image(const cv::Mat& original, const Preparation& prep, const DatasetSettings& s,
                                 const std::string& name, const QualityThresholds& t) {
  return judge_image(measure_image(original, prep, s), prep, s, name, t);
}

ImageAssessment assess_image(const cv::Mat& original, const Preparation& prep, const DatasetSettings& s,
                             const std::string& name, const QualityThresholds& t) {
  ImageAssessment a;
  a.measures = measure_image(original, prep, s);
  a.findings = judge_image(a.measures, prep, s, name, t);
  a.signature = picture_signature(original, a.measures.subject, background_colour(s.background));
  a.signature.across = static_cast<int>(std::lround(a.signature.across * std::min(1.0, prep.scale)));
  a.signature.edge_width = a.measures.sharpness.width;
  // Empty and one-colour pictures have nothing to compare (and would all match each other).
  for (const Finding& f : a.findings)
    if (f.code == "transparent" || f.code == "flat") a.signature = {};
  return a;
}

int64_t estimated_steps(int training_images, const DatasetSettings& s) {
  const int64_t per_epoch = (static_cast<int64_t>(training_images) * s.repeats + s.batch_size - 1) / s.batch_size;
  return per_epoch * s.epochs;
}

std::vector<Finding> check_dataset(int source_images, int training_images, const DatasetSettings& s,
                                   const std::string& name) {
  std::vector<Finding> out;
  const std::string who = name.empty() ? std::string("the dataset") : "dataset " + quoted(name);
  const std::string more = s.preset == Preset::Product
                               ? "Add photos from more angles (45 degrees, top-down, close-ups of materials and details)."
                               : "Add more varied pictures (angles, poses, lighting, backgrounds).";
  if (source_images == 0) {
    out.push_back({"few_images", who + " has no images yet.",
                   s.preset == Preset::Product ? "Add 20-40 sharp photos of the product from many angles."
                                               : "Add 15 or more pictures (20-30 varied ones train best)."});
    return out;
  }
  if (source_images < 15)
    out.push_back({"few_images",
                   format("%s has only %d images: 15 is the least that trains well%s.", who.c_str(), source_images,
                          s.preset == Preset::Product ? ", and a product wants 20-40" : ""),
                   more});
  else if (s.preset == Preset::Product && source_images < 20)
    out.push_back({"few_images", format("%s has %d images: a product wants 20-40.", who.c_str(), source_images), more});
  const int64_t steps = estimated_steps(training_images, s);
  if (steps < 1000 || steps > 4500) {
    const double per_repeat = static_cast<double>(training_images) * s.epochs / s.batch_size;
    const int suggested = std::max(1, static_cast<int>(std::lround(2000.0 / per_repeat)));
    out.push_back({"steps",
                   format("%s trains about %lld steps (%d images x %d repeats x %d epochs / batch %d), far %s the "
                          "usual 1,500-3,000.",
                          who.c_str(), static_cast<long long>(steps), training_images, s.repeats, s.epochs, s.batch_size,
                          steps < 1000 ? "below" : "above"),
                   suggested != s.repeats
                       ? format("Set repeats to about %d (kiln dataset prepare %s --repeats %d).", suggested,
                                name.empty() ? "NAME" : name.c_str(), suggested)
                       : std::string("Change the number of epochs.")});
  }
  return out;
}

}  // namespace kiln::studio
