#pragma once
// Product pictures drawn from a seed, for calibrating the dataset checks: three kinds of object
// (a labelled glass bottle, a fabric-fronted speaker box, a plain flat-shaded mug), seen from
// chosen angles, on plain, studio-sweep, coloured, wooden, marble, fabric or out-of-focus
// backdrops, as clean renders (supersampled, lossless) or as photos (soft shadow, a little lens
// softness, sensor noise, JPEG), or as cut-out layers with alpha trimmed to the object, as Krita
// sends them. Defects are applied where they happen: blur before the noise and the JPEG (optics),
// re-encoding, resizing, cropping and colour shifts after (the file).
//
// Everything is deterministic for a given spec: cv::RNG with explicit seeds, no threads.
#include <cstdint>
#include <string>

#include <opencv2/core.hpp>

namespace kiln::calibration {

enum class Object { Bottle, Speaker, Mug };
enum class Backdrop { White, Grey, Sweep, Colour, Wood, Marble, Fabric, Bokeh };
enum class Finish { Render, Photo };

struct View {
  double yaw = 0;        // degrees around the vertical axis: the label / front turns away
  double elevation = 0;  // degrees the camera looks down from (0: level; 90: top-down)
  double zoom = 1;       // 1: the whole object; 2-3: a close-up of its middle (runs off the picture)
};

struct SceneSpec {
  Object object = Object::Bottle;
  uint64_t product = 1;   // the product's identity: colours, label, proportions
  View view;
  Backdrop backdrop = Backdrop::White;
  Finish finish = Finish::Render;
  cv::Size size{768, 768};
  double fill = 0.7;      // object height as a share of the picture's height (zoom 1)
  cv::Point2d offset;     // object centre offset, as a share of the picture's size
  bool layer = false;     // a cut-out layer: BGRA, trimmed to the object, no backdrop
  uint64_t seed = 1;      // placement jitter, noise, JPEG quality
};

// The optical image: the scene as the lens sees it, before noise and encoding (BGR), or the
// finished layer (BGRA) for cut-outs.
cv::Mat render_optical(const SceneSpec& spec);

// The finish (photo: noise and JPEG; render: nothing). `optical` may carry a defect already.
cv::Mat finish(const cv::Mat& optical, const SceneSpec& spec);

// render_optical then finish.
cv::Mat render(const SceneSpec& spec);

// The spec's backdrop alone (BGR, before the finish), the floor (wood) from `floor` of the height.
cv::Mat render_backdrop(const SceneSpec& spec, double floor);

// Defects at known strengths, in pixels of the image they are applied to.
cv::Mat gaussian_blur(const cv::Mat& image, double sigma);
cv::Mat motion_blur(const cv::Mat& image, double length, double angle_degrees);
// Same-picture copies.
cv::Mat reencode_jpeg(const cv::Mat& image, int quality);
cv::Mat resized(const cv::Mat& image, double factor);
cv::Mat cropped(const cv::Mat& image, double left, double top, double right, double bottom);  // shares cut off
cv::Mat colour_shifted(const cv::Mat& image, double brightness, double contrast, double hue_degrees, double saturation);

const char* to_string(Object o);
const char* to_string(Backdrop b);
std::string describe(const SceneSpec& spec);  // "bottle 2, yaw 45, elevation 10, on wood, photo, 800x600"

}  // namespace kiln::calibration
