#include "calibration_set.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include <opencv2/imgproc.hpp>

namespace kiln::calibration {
namespace {

struct ViewSpec {
  double yaw, elevation, zoom;
  bool layer;
};

// 16 views of one product, at least 45° of turn or 25° of elevation apart (or a close-up).
constexpr std::array<ViewSpec, 16> kViews = {{
    {0, 10, 1, false},   {45, 12, 1, true},    {90, 8, 1, false},   {135, 12, 1, false},
    {180, 10, 1, false}, {225, 12, 1, false},  {270, 8, 1, true},   {315, 10, 1, false},
    {20, 35, 1, false},  {110, 38, 1, false},  {200, 35, 1, true},  {290, 38, 1, false},
    {60, 60, 1, true},   {240, 60, 1, false},  {25, 8, 2.2, false}, {155, 35, 1, false},
}};

constexpr std::array<Backdrop, 12> kBackdrops = {Backdrop::White, Backdrop::Grey,   Backdrop::Sweep,  Backdrop::Colour,
                                                 Backdrop::Wood,  Backdrop::Marble, Backdrop::Fabric, Backdrop::Bokeh,
                                                 Backdrop::White, Backdrop::Grey,   Backdrop::Sweep,  Backdrop::White};
const std::array<cv::Size, 12> kSizes = {cv::Size(768, 768), cv::Size(800, 600),  cv::Size(600, 800), cv::Size(1024, 1024),
                                         cv::Size(640, 800), cv::Size(800, 800),  cv::Size(900, 700), cv::Size(768, 960),
                                         cv::Size(720, 720), cv::Size(512, 512),  cv::Size(1200, 900), cv::Size(560, 700)};

constexpr std::array<double, 6> kGaussian = {1.0, 1.5, 2.0, 2.5, 3.0, 4.0};   // σ, training px
constexpr double kMeaningfulSigma = 2.0;
constexpr std::array<double, 5> kMotion = {4, 6, 8, 12, 16};                  // length, training px
constexpr double kMeaningfulLength = 6;
constexpr std::array<int, 5> kSmall = {160, 240, 320, 400, 460};              // short side, px
constexpr int kMeaningfulSmall = 320;  // 512 / 320 = 1.6x enlargement and more

const char* kObjects[] = {"bottle", "speaker", "mug"};

std::string fmt(const char* f, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a);
  return buf;
}

// A view as rendered: its spec and the optical image (before noise and JPEG), so defects of the
// optics can be applied where they happen.
struct Rendered {
  SceneSpec spec;
  cv::Mat optical;
  cv::Mat image;
  std::string name;
};

// Same-picture copy number `t` of `image`; `what` says which. Layers are not re-encoded as JPEG
// (it has no alpha): they are resized instead.
cv::Mat copy_of(const cv::Mat& image, int t, std::string& what) {
  const bool layer = image.channels() == 4;
  switch (t % 8) {
    case 0: what = layer ? "resized to 90%" : "re-encoded as JPEG quality 70";
      return layer ? resized(image, 0.9) : reencode_jpeg(image, 70);
    case 1: what = "resized to 60%"; return resized(image, 0.6);
    case 2: what = "cropped 6% left, 4% top"; return cropped(image, 0.06, 0.04, 0, 0);
    case 3: what = "brighter, more saturated, hue +8"; return colour_shifted(image, 14, 1.05, 8, 1.15);
    case 4: what = layer ? "resized to 80%" : "resized to 80%, JPEG 75";
      return layer ? resized(image, 0.8) : reencode_jpeg(resized(image, 0.8), 75);
    case 5: what = "cropped 3% all round, darker"; return colour_shifted(cropped(image, 0.03, 0.03, 0.03, 0.03), -12, 1, 0, 1);
    case 6: what = "resized to 70%, hue -10, less saturated"; return colour_shifted(resized(image, 0.7), 0, 1, -10, 0.85);
    default: what = layer ? "cropped 8% right" : "cropped 8% right, JPEG 80";
      return layer ? cropped(image, 0, 0, 0.08, 0) : reencode_jpeg(cropped(image, 0, 0, 0.08, 0), 80);
  }
}

cv::Mat smaller(const cv::Mat& image, int short_side) {
  return resized(image, static_cast<double>(short_side) / std::min(image.cols, image.rows));
}

// Blur applied to the optics, then the view's own finish (noise, JPEG).
cv::Mat blurred_view(const Rendered& r, double sigma_source) { return finish(gaussian_blur(r.optical, sigma_source), r.spec); }
cv::Mat shaken_view(const Rendered& r, double length_source, double angle) {
  return finish(motion_blur(r.optical, length_source, angle), r.spec);
}

// `spec` (wide) with the product in the middle and two other products beside it.
cv::Mat scene_with_props(const SceneSpec& spec) {
  cv::Mat scene = render_backdrop(spec, 0.6);
  const Object others[] = {Object::Speaker, Object::Mug, Object::Bottle};
  for (int i = 0; i < 3; ++i) {
    SceneSpec item = spec;
    item.layer = true;
    item.object = i == 1 ? spec.object : others[(static_cast<int>(spec.object) + 1 + i / 2) % 3];
    item.size = {spec.size.height, spec.size.height};
    cv::Mat layer = render(item);
    const double k = 0.8 * spec.size.height / layer.rows;
    cv::resize(layer, layer, cv::Size(), k, k, cv::INTER_AREA);
    const int x = spec.size.width * (1 + 2 * i) / 6 - layer.cols / 2, y = spec.size.height - layer.rows - spec.size.height / 20;
    const cv::Rect at = cv::Rect(x, y, layer.cols, layer.rows) & cv::Rect(0, 0, scene.cols, scene.rows);
    for (int yy = at.y; yy < at.br().y; ++yy)
      for (int xx = at.x; xx < at.br().x; ++xx) {
        const cv::Vec4b p = layer.at<cv::Vec4b>(yy - y, xx - x);
        cv::Vec3b& q = scene.at<cv::Vec3b>(yy, xx);
        for (int c = 0; c < 3; ++c) q[c] = static_cast<uchar>((p[c] * p[3] + q[c] * (255 - p[3])) / 255);
      }
  }
  return finish(scene, spec);
}

cv::Mat empty_layer(int kind, uint64_t seed) {
  SceneSpec ghost;
  ghost.object = Object::Bottle;
  ghost.layer = true;
  ghost.seed = seed;
  ghost.size = {700, 900};
  switch (kind % 3) {
    case 0: return cv::Mat(800, 600, CV_8UC4, cv::Scalar(255, 255, 255, 0));  // an empty layer
    case 1: {  // a ghost: the object at 2 % opacity (a layer with its opacity turned down)
      cv::Mat layer = render(ghost);
      std::vector<cv::Mat> ch;
      cv::split(layer, ch);
      ch[3] = ch[3] * 0.02;
      cv::merge(ch, layer);
      return layer;
    }
    default: {  // a speck left on an otherwise empty layer
      cv::Mat layer(900, 700, CV_8UC4, cv::Scalar(0, 0, 0, 0));
      cv::circle(layer, cv::Point(350, 450), 4, cv::Scalar(40, 40, 40, 255), cv::FILLED);
      return layer;
    }
  }
}

}  // namespace

ProductSet make_product_set(int index, const std::function<double(const cv::Mat&)>& scale_of) {
  ProductSet set;
  const Object object = static_cast<Object>(index / 2);
  const uint64_t product = static_cast<uint64_t>(index % 2 + 1);
  set.name = std::string(kObjects[index / 2]) + std::to_string(product);
  char buf[128];

  std::vector<Rendered> views;
  for (int v = 0; v < static_cast<int>(kViews.size()); ++v) {
    const ViewSpec& vs = kViews[v];
    const int k = index * 16 + v;
    Rendered r;
    SceneSpec& s = r.spec;
    s.object = object;
    s.product = product;
    s.view = {vs.yaw, vs.elevation, vs.zoom};
    // A mug's middle is plain: its close-up looks into it from above instead.
    if (object == Object::Mug && vs.zoom > 1) s.view = {0, 70, 1.3};
    s.layer = vs.layer;
    s.backdrop = kBackdrops[(v + 3 * index) % kBackdrops.size()];
    s.finish = (v + index) % 3 == 0 ? Finish::Render : Finish::Photo;
    s.size = vs.layer ? cv::Size(700 + 60 * (k % 5), 800 + 40 * (k % 4)) : kSizes[(v + 5 * index) % kSizes.size()];
    s.fill = 0.5 + 0.3 * ((k * 7) % 10) / 9.0;
    s.offset = cv::Point2d(0.06 * ((k * 3) % 5 - 2) / 2, 0.04 * ((k * 5) % 3 - 1));
    s.seed = static_cast<uint64_t>(1000 + k);
    r.optical = render_optical(s);
    r.image = finish(r.optical, s);
    std::snprintf(buf, sizeof buf, "%s_v%02d.png", set.name.c_str(), v);
    r.name = buf;
    Sample good{r.name, describe(s), r.image, v, "", true, "good", 0};
    set.views.push_back(good);
    views.push_back(std::move(r));
  }

  const auto variant = [&](const Rendered& r, const std::string& suffix) {
    return r.name.substr(0, r.name.size() - 4) + "_" + suffix + ".png";
  };
  // Sweeps: one of each kind per view, strengths cycling over the views of all products.
  for (int v = 0; v < static_cast<int>(views.size()); ++v) {
    const Rendered& r = views[v];
    const int k = index * 16 + v;
    const double scale = std::min(1.0, scale_of(r.image));  // training px per source px
    const double sigma = kGaussian[k % kGaussian.size()];
    set.sweep.push_back({variant(r, fmt("blur%.1f", sigma)), "Gaussian blur σ " + fmt("%.1f", sigma) + " px at 512",
                         blurred_view(r, sigma / scale), v, "blurry", sigma >= kMeaningfulSigma, "gaussian", sigma});
    const double length = kMotion[k % kMotion.size()], angle = (37.0 * k) - 180 * std::floor(37.0 * k / 180);
    set.sweep.push_back({variant(r, fmt("shake%.0f", length)),
                         "motion blur " + fmt("%.0f", length) + " px at 512, " + fmt("%.0f", angle) + " degrees",
                         shaken_view(r, length / scale, angle), v, "blurry", length >= kMeaningfulLength, "motion",
                         length});
    std::string what;
    cv::Mat copy = copy_of(r.image, k, what);
    set.sweep.push_back({variant(r, "copy"), "the same picture, " + what, copy, v, "near_duplicate", true, "copy", 0});
    if (k % 3 == 0) {
      const int side = kSmall[(k / 3) % kSmall.size()];
      set.sweep.push_back({variant(r, fmt("small%.0f", side)), fmt("downscaled to a %.0f px short side", side),
                           smaller(r.image, side), v, "too_small", side <= kMeaningfulSmall, "small",
                           512.0 / side});
    }
  }
  // Layers and pictures with nothing in them, strips.
  set.sweep.push_back({set.name + "_empty.png", "an empty layer", empty_layer(index, 77 + index), -1, "transparent", true,
                       "empty", 0});
  {
    cv::Mat flat(640, 640, CV_8UC3, cv::Scalar(200 - 20 * index, 210, 220));
    cv::Mat noise(flat.size(), CV_16SC3);
    cv::RNG(index + 5).fill(noise, cv::RNG::NORMAL, 0, 1.0);
    cv::add(flat, noise, flat, cv::noArray(), CV_8UC3);
    set.sweep.push_back({set.name + "_flat.png", "one flat colour with sensor noise", flat, -1, "flat", true, "flat", 0});
  }
  {
    // A strip cut through the middle of a photo, across the product.
    const Rendered& r = views[7];
    const int h = std::max(64, r.image.cols / 3);
    const cv::Mat strip = r.image(cv::Rect(0, (r.image.rows - h) / 2, r.image.cols, std::min(h, r.image.rows))).clone();
    set.sweep.push_back({variant(r, "strip"), "a 3:1 strip cut through the product", strip, -1, "extreme_aspect", true,
                         "strip", 3});
    // A wide scene: the product between two others on a table; a square keeps one of them.
    SceneSpec wide = r.spec;
    wide.layer = false;
    wide.size = {1500, 480};
    wide.backdrop = Backdrop::Wood;
    wide.fill = 0.8;
    set.sweep.push_back({set.name + "_wide.png", "a 3:1 scene, the product between two others", scene_with_props(wide),
                         -1, "extreme_aspect", true, "wide", 3.1});
    wide.backdrop = index % 2 ? Backdrop::Marble : Backdrop::Fabric;
    // Wide pictures of the product alone on a plain or patterned backdrop: only backdrop is cut
    // away, so not a defect by design (reported, neither required nor a false alarm).
    set.sweep.push_back({set.name + "_wide_pattern.png",
                         "a 3:1 picture on " + std::string(to_string(wide.backdrop)) + ", the product alone",
                         render(wide), -1, "extreme_aspect", false, "wide_plain", 3.1});
    wide.backdrop = Backdrop::White;
    wide.fill = 0.7;
    set.sweep.push_back({set.name + "_wide_plain.png", "a 3:1 picture on white, the product alone", render(wide), -1,
                         "extreme_aspect", false, "wide_plain", 3.1});
  }

  // The planted set: a tester's defects among the good views.
  const auto add_planted = [&](Sample s) { set.planted.push_back(std::move(s)); };
  for (int c = 0; c < 2; ++c) {
    const int v = c == 0 ? 2 : 9;
    std::string what;
    cv::Mat copy = copy_of(views[v].image, 2 * index + c + 3, what);
    add_planted({variant(views[v], "copy"), "the same picture, " + what, copy, v, "near_duplicate", true, "copy", 0});
  }
  for (const auto& [v, sigma] : {std::pair<int, double>{3, 2.0}, {11, 3.0}}) {
    const double scale = std::min(1.0, scale_of(views[v].image));
    add_planted({variant(views[v], fmt("blur%.1f", sigma)), "Gaussian blur σ " + fmt("%.1f", sigma) + " px at 512",
                 blurred_view(views[v], sigma / scale), v, "blurry", true, "gaussian", sigma});
  }
  {
    const double scale = std::min(1.0, scale_of(views[5].image)), angle = 30 + 20 * index;
    add_planted({variant(views[5], "shake8"), "motion blur 8 px at 512", shaken_view(views[5], 8 / scale, angle), 5,
                 "blurry", true, "motion", 8});
  }
  add_planted({variant(views[0], "small256"), "downscaled to a 256 px short side", smaller(views[0].image, 256), 0,
               "too_small", true, "small", 2});
  add_planted({set.name + "_layer_empty.png", "an empty or invisible layer", empty_layer(index + 1, 91 + index), -1,
               "transparent", true, "empty", 0});
  add_planted(set.sweep[set.sweep.size() - (index % 2 ? 4 : 3)]);  // the strip or the wide scene
  set.planted.back().name = set.name + "_panorama.png";
  return set;
}

}  // namespace kiln::calibration
