#include "product_scenes.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace kiln::calibration {
namespace {

constexpr int kSuper = 2;          // supersampling: objects are drawn at twice the size, then averaged down
constexpr double kStep = 0.7;      // px between surface samples at the supersampled size (< 1: no holes)
const cv::Vec3d kLight = cv::normalize(cv::Vec3d(-0.45, 0.55, 0.7));  // upper left, in front
const cv::Vec3d kHalf = cv::normalize(kLight + cv::Vec3d(0, 0, 1));   // Blinn's half vector (viewer at +z)

double radians(double deg) { return deg * CV_PI / 180; }

cv::Vec3d random_colour(cv::RNG& rng, double v_lo, double v_hi, double s_lo, double s_hi) {
  cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(rng.uniform(0, 180), rng.uniform(s_lo, s_hi), rng.uniform(v_lo, v_hi))), bgr;
  cv::cvtColor(hsv, bgr, cv::COLOR_HSV2BGR);
  const cv::Vec3b c = bgr.at<cv::Vec3b>(0, 0);
  return {double(c[0]), double(c[1]), double(c[2])};
}

// Smooth value noise in 0..1: random values on a coarse grid, enlarged with cubic interpolation.
cv::Mat value_noise(cv::Size size, double cell, cv::RNG& rng) {
  cv::Mat grid(std::max(2, int(size.height / cell) + 2), std::max(2, int(size.width / cell) + 2), CV_32F);
  rng.fill(grid, cv::RNG::UNIFORM, 0.0, 1.0);
  cv::Mat out;
  cv::resize(grid, out, cv::Size(int(grid.cols * cell), int(grid.rows * cell)), 0, 0, cv::INTER_CUBIC);
  return out(cv::Rect(0, 0, size.width, size.height)).clone();
}

cv::Mat fractal_noise(cv::Size size, double cell, cv::RNG& rng) {
  cv::Mat sum = cv::Mat::zeros(size, CV_32F);
  double weight = 1, total = 0;
  for (int octave = 0; octave < 4 && cell >= 2; ++octave, cell /= 2, weight /= 2) {
    sum += weight * value_noise(size, cell, rng);
    total += weight;
  }
  return sum / total;
}

// ---- textures --------------------------------------------------------------------------------

struct Product {
  cv::Vec3d body, cap, accent, side;
  cv::Mat label, back_label, decal;          // bottle labels, a mug's print (empty: a plain mug)
  cv::Mat front, top, left, right, back;     // speaker faces (flat colours with a few details, or wood)
  double radius = 1, body_height = 2.6, neck = 0.36, cap_height = 0.6;  // bottle and mug, units
  double width = 1.6, height = 2.4, depth = 1.2;                         // speaker, units
  double label_lo = 0.5, label_hi = 1.9, label_span = 150;               // bottle label: heights, degrees
  bool glossy = true;
};

const char* kBrands[] = {"AURA", "NOVA", "LUMA", "KILN", "ORRO", "VELA", "MIRA", "SOLA"};

cv::Mat make_label(cv::RNG& rng, const cv::Vec3d& paper, const cv::Vec3d& ink) {
  cv::Mat label(420, 1000, CV_8UC3, cv::Scalar(paper));
  const cv::Scalar inkc(ink);
  cv::rectangle(label, cv::Rect(0, 24, label.cols, 10), inkc, cv::FILLED);
  cv::rectangle(label, cv::Rect(0, label.rows - 34, label.cols, 10), inkc, cv::FILLED);
  const std::string brand = kBrands[rng.uniform(0, 8)];
  cv::putText(label, brand, cv::Point(250, 230), cv::FONT_HERSHEY_TRIPLEX, 4.2, inkc, 9, cv::LINE_AA);
  cv::circle(label, cv::Point(140, 190), 70, inkc, 6, cv::LINE_AA);
  cv::putText(label, brand.substr(0, 1), cv::Point(108, 222), cv::FONT_HERSHEY_TRIPLEX, 2.6, inkc, 5, cv::LINE_AA);
  cv::putText(label, "EAU DE PARFUM  100 ml", cv::Point(260, 320), cv::FONT_HERSHEY_SIMPLEX, 1.5, inkc, 3, cv::LINE_AA);
  for (int i = 0; i < 3; ++i)
    cv::line(label, cv::Point(260, 350 + 14 * i), cv::Point(260 + rng.uniform(300, 600), 350 + 14 * i), inkc, 3,
             cv::LINE_AA);
  return label;
}

cv::Mat make_back_label(cv::RNG& rng, const cv::Vec3d& paper, const cv::Vec3d& ink) {
  cv::Mat label(420, 400, CV_8UC3, cv::Scalar(paper));
  const cv::Scalar inkc(ink);
  for (int i = 0; i < 9; ++i)
    cv::line(label, cv::Point(30, 40 + 24 * i), cv::Point(30 + rng.uniform(180, 340), 40 + 24 * i), inkc, 6, cv::LINE_AA);
  for (int x = 40; x < 360; x += rng.uniform(5, 14))  // a barcode
    cv::rectangle(label, cv::Rect(x, 280, rng.uniform(2, 6), 100), inkc, cv::FILLED);
  return label;
}

cv::Mat make_wood(cv::Size size, cv::RNG& rng, const cv::Vec3d& colour) {
  cv::Mat n = fractal_noise(size, 64, rng), out(size, CV_8UC3);
  for (int y = 0; y < size.height; ++y)
    for (int x = 0; x < size.width; ++x) {
      const double grain = 0.5 + 0.5 * std::sin(y * 0.09 + 9 * n.at<float>(y, x));
      const double k = 0.78 + 0.22 * grain;
      out.at<cv::Vec3b>(y, x) = cv::Vec3b(cv::saturate_cast<uchar>(colour[0] * k), cv::saturate_cast<uchar>(colour[1] * k),
                                          cv::saturate_cast<uchar>(colour[2] * k));
    }
  return out;
}

cv::Mat make_grille(cv::Size size, cv::RNG& rng, const cv::Vec3d& fabric, const cv::Vec3d& logo) {
  cv::Mat out(size, CV_8UC3, cv::Scalar(fabric));
  cv::Mat noise(size, CV_8UC3);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 18);
  out += noise;
  for (int y = 14; y < size.height - 90; y += 16)
    for (int x = 14 + (y / 16 % 2) * 8; x < size.width - 10; x += 16)
      cv::circle(out, cv::Point(x, y), 4, cv::Scalar(fabric * 0.35), cv::FILLED, cv::LINE_AA);
  cv::putText(out, kBrands[rng.uniform(0, 8)], cv::Point(size.width / 2 - 110, size.height - 30),
              cv::FONT_HERSHEY_DUPLEX, 2.2, cv::Scalar(logo), 4, cv::LINE_AA);
  return out;
}

// A speaker's side: its finish (flat colour or wood) with a detail that tells the sides apart.
cv::Mat make_side(cv::Size size, const cv::Mat& finish, const cv::Vec3d& colour, const cv::Vec3d& accent, int which) {
  cv::Mat out = finish.empty() ? cv::Mat(size, CV_8UC3, cv::Scalar(colour)) : finish.clone();
  if (which == 0) {  // left: a round badge high up
    cv::circle(out, cv::Point(size.width / 2, size.height / 5), size.width / 6, cv::Scalar(accent), cv::FILLED, cv::LINE_AA);
    cv::circle(out, cv::Point(size.width / 2, size.height / 5), size.width / 6, cv::Scalar(colour * 0.5), 4, cv::LINE_AA);
  } else if (which == 1) {  // right: a strap slot low down
    cv::rectangle(out, cv::Rect(size.width / 4, size.height * 2 / 3, size.width / 2, size.height / 14),
                  cv::Scalar(colour * 0.3), cv::FILLED, cv::LINE_AA);
  } else {  // back: ports and a sticker
    cv::rectangle(out, cv::Rect(size.width / 5, size.height / 8, size.width * 3 / 5, size.height / 5),
                  cv::Scalar::all(235), cv::FILLED);
    for (int i = 0; i < 4; ++i)
      cv::line(out, cv::Point(size.width / 5 + 12, size.height / 8 + 20 + 18 * i),
               cv::Point(size.width * 3 / 5, size.height / 8 + 20 + 18 * i), cv::Scalar::all(60), 5, cv::LINE_AA);
    for (int i = 0; i < 3; ++i)
      cv::circle(out, cv::Point(size.width / 4 + i * size.width / 4, size.height * 3 / 4), size.width / 14,
                 cv::Scalar::all(25), cv::FILLED, cv::LINE_AA);
  }
  return out;
}

cv::Mat make_top(cv::Size size, const cv::Vec3d& colour, const cv::Vec3d& accent) {
  cv::Mat out(size, CV_8UC3, cv::Scalar(colour));
  for (int i = 0; i < 3; ++i) {
    const cv::Point c(size.width / 4 * (i + 1), size.height / 2);
    cv::circle(out, c, size.height / 7, cv::Scalar(accent), cv::FILLED, cv::LINE_AA);
    cv::circle(out, c, size.height / 7, cv::Scalar(colour * 0.5), 3, cv::LINE_AA);
  }
  cv::line(out, cv::Point(size.width / 4 - 14, size.height / 2), cv::Point(size.width / 4 + 14, size.height / 2),
           cv::Scalar::all(250), 4, cv::LINE_AA);
  return out;
}

Product make_product(Object object, uint64_t id) {
  cv::RNG rng(0x9E3779B97F4A7C15ULL ^ (id * 7919 + static_cast<uint64_t>(object)));
  Product p;
  p.body = random_colour(rng, 60, 200, 90, 220);
  p.cap = random_colour(rng, 20, 90, 0, 80);
  p.accent = random_colour(rng, 150, 250, 120, 255);
  p.side = random_colour(rng, 60, 170, 30, 120);
  p.radius = rng.uniform(0.8, 1.1);
  p.body_height = rng.uniform(2.2, 2.9);
  p.label_lo = rng.uniform(0.35, 0.6);
  p.label_hi = p.body_height - rng.uniform(0.35, 0.7);
  p.label_span = rng.uniform(130.0, 170.0);
  p.width = rng.uniform(1.3, 1.8);
  p.height = rng.uniform(2.0, 2.6);
  p.depth = rng.uniform(0.9, 1.3);
  p.glossy = object == Object::Bottle;
  if (object == Object::Bottle) {
    const cv::Vec3d paper = random_colour(rng, 220, 250, 0, 40), ink = random_colour(rng, 20, 90, 60, 200);
    p.label = make_label(rng, paper, ink);
    p.back_label = make_back_label(rng, paper, ink);
  }
  if (object == Object::Speaker) {
    p.front = make_grille(cv::Size(640, 960), rng, random_colour(rng, 40, 110, 0, 60), p.accent);
    p.top = make_top(cv::Size(640, 480), p.side, p.accent);
    const cv::Mat wood = id % 2 == 0 ? make_wood(cv::Size(480, 960), rng, random_colour(rng, 120, 190, 90, 160)) : cv::Mat();
    p.left = make_side(cv::Size(480, 960), wood, p.side, p.accent, 0);
    p.right = make_side(cv::Size(480, 960), wood, p.side, p.accent, 1);
    p.back = make_side(cv::Size(640, 960), cv::Mat(), p.side * 0.9, p.accent, 2);
  }
  if (object == Object::Mug) {
    p.radius = rng.uniform(0.75, 0.9);
    p.body_height = rng.uniform(1.3, 1.7);
    if (id % 2 == 0) {  // a printed mug; odd ones are plain, flat-shaded
      p.decal = cv::Mat(400, 400, CV_8UC3, cv::Scalar(p.body));
      cv::circle(p.decal, cv::Point(200, 200), 150, cv::Scalar(p.accent), 18, cv::LINE_AA);
      cv::putText(p.decal, kBrands[rng.uniform(0, 8)], cv::Point(80, 225), cv::FONT_HERSHEY_DUPLEX, 2.2,
                  cv::Scalar(p.accent), 6, cv::LINE_AA);
    }
  }
  return p;
}

// ---- drawing ----------------------------------------------------------------------------------

// The supersampled canvas objects are drawn into: colour, coverage and depth.
struct Canvas {
  cv::Mat colour;  // CV_8UC3
  cv::Mat mask;    // CV_8U, 255 where an object is
  cv::Mat depth;   // CV_32F, toward the viewer
  double scale = 1;       // px per unit
  cv::Point2d origin;     // where the object's base centre projects
  double cy = 1, sy = 0, ce = 1, se = 0;  // cos and sin of the yaw and of the elevation

  void turn(double yaw, double elevation) {
    cy = std::cos(yaw), sy = std::sin(yaw), ce = std::cos(elevation), se = std::sin(elevation);
  }
  // Object space (x right, y up, z toward the viewer before turning) to camera space.
  cv::Vec3d camera(const cv::Vec3d& p) const {
    const double x = p[0] * cy + p[2] * sy, z = -p[0] * sy + p[2] * cy;
    return {x, p[1] * ce - z * se, p[1] * se + z * ce};
  }
  // Draws one surface sample; `albedo` is only asked for when the sample is seen.
  template <typename Albedo>
  void plot(const cv::Vec3d& p, const cv::Vec3d& normal, Albedo albedo, bool glossy) {
    const cv::Vec3d n = camera(normal);
    if (n[2] < -0.02) return;  // faces away
    const cv::Vec3d c = camera(p);
    const int x = static_cast<int>(origin.x + c[0] * scale), y = static_cast<int>(origin.y - c[1] * scale);
    if (x < 0 || y < 0 || x >= colour.cols || y >= colour.rows) return;
    float& d = depth.at<float>(y, x);
    if (mask.at<uchar>(y, x) && d >= c[2]) return;
    d = static_cast<float>(c[2]);
    mask.at<uchar>(y, x) = 255;
    const double diffuse = std::max(0.0, n.dot(kLight)), half = n.dot(kHalf);
    const double spec = glossy && half > 0.85 ? 200 * std::pow(half, 60) : 0;
    const double k = 0.38 + 0.62 * diffuse;
    const cv::Vec3d albedo_ = albedo();
    colour.at<cv::Vec3b>(y, x) = cv::Vec3b(cv::saturate_cast<uchar>(albedo_[0] * k + spec),
                                           cv::saturate_cast<uchar>(albedo_[1] * k + spec),
                                           cv::saturate_cast<uchar>(albedo_[2] * k + spec));
  }
};

cv::Vec3d texel(const cv::Mat& tex, double u, double v) {
  const int x = std::clamp(static_cast<int>(u * tex.cols), 0, tex.cols - 1);
  const int y = std::clamp(static_cast<int>(v * tex.rows), 0, tex.rows - 1);
  const cv::Vec3b c = tex.at<cv::Vec3b>(y, x);
  return {double(c[0]), double(c[1]), double(c[2])};
}

// A surface of revolution around the y axis: radius(y) for y in [y0, y1], albedo(theta, y).
template <typename Radius, typename Albedo>
void revolve(Canvas& cv_, double y0, double y1, Radius radius, Albedo albedo, bool glossy) {
  const double step = kStep / cv_.scale;
  for (double y = y0; y <= y1; y += step) {
    const double r = radius(y), dr = (radius(y + 1e-3) - radius(y - 1e-3)) / 2e-3;
    // Rings wholly off the canvas (close-ups) are skipped.
    const double sy = cv_.origin.y - y * cv_.ce * cv_.scale, reach = r * cv_.scale;
    if (sy + reach < 0 || sy - reach >= cv_.colour.rows) continue;
    const int n = std::max(16, static_cast<int>(2 * CV_PI * r / step));
    const double len = std::sqrt(1 + dr * dr), sd = std::sin(2 * CV_PI / n), cd = std::cos(2 * CV_PI / n);
    double st = 0, ct = 1;  // sin and cos of t, turned by one step at a time
    for (int i = 0; i < n; ++i) {
      const double t = 2 * CV_PI * i / n;
      cv_.plot(cv::Vec3d(r * st, y, r * ct), cv::Vec3d(st / len, -dr / len, ct / len), [&] { return albedo(t, y); },
               glossy);
      const double s2 = st * cd + ct * sd;
      ct = ct * cd - st * sd;
      st = s2;
    }
  }
}

// A flat disc (top of a cap, rim of a mug) facing up at height y.
template <typename Albedo>
void disc(Canvas& cv_, double y, double r0, double r1, Albedo albedo) {
  const double step = kStep / cv_.scale;
  for (double r = r0; r <= r1; r += step) {
    const int n = std::max(8, static_cast<int>(2 * CV_PI * r / step));
    for (int i = 0; i < n; ++i) {
      const double t = 2 * CV_PI * i / n;
      cv_.plot(cv::Vec3d(r * std::sin(t), y, r * std::cos(t)), cv::Vec3d(0, 1, 0), [&] { return albedo(r, t); }, false);
    }
  }
}

void draw_bottle(Canvas& c, const Product& p) {
  const double R = p.radius, hb = p.body_height, hs = 0.55 * R, rn = p.neck * R, hn = 0.35, hc = p.cap_height;
  const double rc = rn * 1.25, top = hb + hs + hn + hc;
  const auto radius = [&](double y) {
    if (y <= hb) return R;
    if (y <= hb + hs) {  // rounded shoulder
      const double t = (y - hb) / hs;
      return rn + (R - rn) * std::sqrt(std::max(0.0, 1 - t * t));
    }
    if (y <= hb + hs + hn) return rn;
    return rc;
  };
  const double lo = radians(-p.label_span / 2), hi = radians(p.label_span / 2);
  const auto albedo = [&](double t, double y) -> cv::Vec3d {
    if (y > hb + hs + hn) {  // ribbed cap
      const double rib = std::cos(t * 48) > 0 ? 1.0 : 0.8;
      return p.cap * rib;
    }
    double a = t > CV_PI ? t - 2 * CV_PI : t;
    if (y >= p.label_lo && y <= p.label_hi) {
      const double v = 1 - (y - p.label_lo) / (p.label_hi - p.label_lo);
      if (a >= lo && a <= hi) return texel(p.label, (a - lo) / (hi - lo), v);
      const double back = radians(35);  // a narrower label on the back
      const double b = a > 0 ? a - CV_PI : a + CV_PI;
      if (std::abs(b) <= back) return texel(p.back_label, (b + back) / (2 * back), v);
    }
    return p.body;
  };
  revolve(c, 0, top, radius, albedo, true);
  disc(c, top, 0, rc, [&](double r, double) { return p.cap * (r > rc * 0.85 ? 0.7 : 1.0); });
}

void draw_mug(Canvas& c, const Product& p) {
  const double R = p.radius, h = p.body_height, wall = 0.07;
  const double span = radians(40), lo = 0.2 * h, hi = 0.8 * h;
  revolve(
      c, 0, h, [&](double) { return R; },
      [&](double t, double y) -> cv::Vec3d {
        const double a = t > CV_PI ? t - 2 * CV_PI : t;
        if (p.decal.empty() || std::abs(a) > span || y < lo || y > hi) return p.body;
        return texel(p.decal, (a + span) / (2 * span), 1 - (y - lo) / (hi - lo));
      },
      false);
  // The inside shows from above: a darker inner wall and the rim.
  disc(c, h, R - wall, R, [&](double, double) { return p.body * 1.05; });
  disc(c, h - 0.02, 0, R - wall, [&](double r, double) { return p.body * (0.45 + 0.2 * r / R); });
  // The handle: a torus segment standing on the side at angle 90° (to the right at yaw 0).
  const double hr = 0.42 * h, tube = 0.07, cy = 0.55 * h, cx = R + 0.05;
  const double step = kStep / c.scale;
  for (double a = -CV_PI / 2; a <= CV_PI / 2; a += step / hr)
    for (double b = 0; b < 2 * CV_PI; b += step / tube) {
      const cv::Vec3d centre(cx + hr * 0.7 * std::cos(a), cy + hr * std::sin(a), 0);
      const cv::Vec3d n(std::cos(a) * std::cos(b), std::sin(a) * std::cos(b), std::sin(b));
      c.plot(centre + tube * n, n, [&] { return p.body; }, false);
    }
}

// One face of a box, drawn by warping its texture onto its projection.
void box_face(Canvas& c, const std::array<cv::Vec3d, 4>& corners, const cv::Vec3d& normal, const cv::Mat& tex) {
  const cv::Vec3d n = c.camera(normal);
  if (n[2] <= 0.01) return;
  std::vector<cv::Point2f> screen;
  double depth = 0;
  for (const cv::Vec3d& p : corners) {
    const cv::Vec3d q = c.camera(p);
    screen.emplace_back(static_cast<float>(c.origin.x + q[0] * c.scale), static_cast<float>(c.origin.y - q[1] * c.scale));
    depth += q[2] / 4;
  }
  const std::vector<cv::Point2f> src = {{0, 0}, {float(tex.cols), 0}, {float(tex.cols), float(tex.rows)}, {0, float(tex.rows)}};
  cv::Mat warped, face_mask = cv::Mat::zeros(c.mask.size(), CV_8U);
  cv::warpPerspective(tex, warped, cv::getPerspectiveTransform(src, screen), c.colour.size(), cv::INTER_LINEAR,
                      cv::BORDER_REPLICATE);
  std::vector<cv::Point> poly;
  for (const auto& s : screen) poly.emplace_back(cvRound(s.x), cvRound(s.y));
  cv::fillConvexPoly(face_mask, poly, cv::Scalar(255));
  const double k = 0.38 + 0.62 * std::max(0.0, n.dot(kLight));
  warped.convertTo(warped, -1, k);
  warped.copyTo(c.colour, face_mask);
  c.depth.setTo(depth, face_mask);
  c.mask |= face_mask;
}

void draw_speaker(Canvas& c, const Product& p) {
  const double w = p.width / 2, h = p.height, d = p.depth / 2;
  const auto V = [](double x, double y, double z) { return cv::Vec3d(x, y, z); };
  box_face(c, {V(-w, h, d), V(w, h, d), V(w, 0, d), V(-w, 0, d)}, V(0, 0, 1), p.front);
  box_face(c, {V(w, h, -d), V(-w, h, -d), V(-w, 0, -d), V(w, 0, -d)}, V(0, 0, -1), p.back);
  box_face(c, {V(w, h, d), V(w, h, -d), V(w, 0, -d), V(w, 0, d)}, V(1, 0, 0), p.right);
  box_face(c, {V(-w, h, -d), V(-w, h, d), V(-w, 0, d), V(-w, 0, -d)}, V(-1, 0, 0), p.left);
  box_face(c, {V(-w, h, -d), V(w, h, -d), V(w, h, d), V(-w, h, d)}, V(0, 1, 0), p.top);
}

double object_height(Object o, const Product& p) {
  switch (o) {
    case Object::Bottle: return p.body_height + 0.55 * p.radius + 0.35 + p.cap_height;
    case Object::Speaker: return p.height;
    case Object::Mug: return p.body_height;
  }
  return 1;
}

double object_width(Object o, const Product& p) {
  switch (o) {
    case Object::Bottle: return 2 * p.radius;
    case Object::Speaker: return std::hypot(p.width, p.depth);
    case Object::Mug: return 2 * p.radius + 0.9 * p.body_height * 0.42 + 0.2;
  }
  return 1;
}

// ---- backdrops --------------------------------------------------------------------------------

cv::Mat make_backdrop(Backdrop b, cv::Size size, double floor_y, cv::RNG& rng) {
  cv::Mat out(size, CV_8UC3);
  switch (b) {
    case Backdrop::White: out.setTo(cv::Scalar::all(rng.uniform(248, 256))); break;
    case Backdrop::Grey: out.setTo(cv::Scalar::all(rng.uniform(222, 240))); break;
    case Backdrop::Colour: out.setTo(cv::Scalar(random_colour(rng, 200, 245, 40, 90))); break;
    case Backdrop::Sweep:
      for (int y = 0; y < size.height; ++y) out.row(y).setTo(cv::Scalar::all(248 - 30.0 * y / size.height));
      break;
    case Backdrop::Wood: {
      const cv::Vec3d wall = random_colour(rng, 200, 240, 10, 40);
      for (int y = 0; y < size.height; ++y) out.row(y).setTo(cv::Scalar(wall * (1 - 0.08 * y / size.height)));
      const int fy = std::clamp(static_cast<int>(floor_y), 0, size.height - 1);
      make_wood(cv::Size(size.width, size.height - fy), rng, random_colour(rng, 110, 180, 100, 170))
          .copyTo(out.rowRange(fy, size.height));
      break;
    }
    case Backdrop::Marble: {
      const cv::Mat n = fractal_noise(size, 160, rng);
      for (int y = 0; y < size.height; ++y)
        for (int x = 0; x < size.width; ++x) {
          const double vein = std::pow(std::abs(std::sin(x * 0.006 + y * 0.004 + 14 * n.at<float>(y, x))), 0.35);
          out.at<cv::Vec3b>(y, x) = cv::Vec3b::all(cv::saturate_cast<uchar>(150 + 90 * vein));
        }
      break;
    }
    case Backdrop::Fabric: {
      const cv::Vec3d base = random_colour(rng, 120, 200, 40, 120);
      cv::Mat noise = fractal_noise(size, 8, rng);
      for (int y = 0; y < size.height; ++y)
        for (int x = 0; x < size.width; ++x) {
          const double weave = 0.85 + 0.08 * std::sin(x * 0.9) * std::sin(y * 0.9) + 0.12 * noise.at<float>(y, x);
          out.at<cv::Vec3b>(y, x) = cv::Vec3b(cv::saturate_cast<uchar>(base[0] * weave),
                                              cv::saturate_cast<uchar>(base[1] * weave),
                                              cv::saturate_cast<uchar>(base[2] * weave));
        }
      break;
    }
    case Backdrop::Bokeh: {
      out.setTo(cv::Scalar(random_colour(rng, 40, 100, 30, 120)));
      for (int i = 0; i < 40; ++i)
        cv::circle(out, cv::Point(rng.uniform(0, size.width), rng.uniform(0, size.height)),
                   rng.uniform(size.width / 30, size.width / 8), cv::Scalar(random_colour(rng, 90, 255, 40, 200)),
                   cv::FILLED);
      // Out of focus: blurred at an eighth of the size (the same look, far faster), then enlarged.
      cv::Mat small;
      cv::resize(out, small, cv::Size(size.width / 8 + 1, size.height / 8 + 1), 0, 0, cv::INTER_AREA);
      cv::GaussianBlur(small, small, cv::Size(0, 0), size.width / 320.0);
      cv::resize(small, out, size, 0, 0, cv::INTER_CUBIC);
      break;
    }
  }
  return out;
}

cv::Mat premultiplied_blur(const cv::Mat& bgra, const std::function<void(const cv::Mat&, cv::Mat&)>& filter) {
  std::vector<cv::Mat> ch;
  cv::split(bgra, ch);
  cv::Mat a;
  ch[3].convertTo(a, CV_32F, 1.0 / 255);
  std::vector<cv::Mat> pre(3);
  for (int i = 0; i < 3; ++i) {
    ch[i].convertTo(pre[i], CV_32F);
    pre[i] = pre[i].mul(a);
    filter(pre[i], pre[i]);
  }
  filter(a, a);
  std::vector<cv::Mat> out(4);
  for (int i = 0; i < 3; ++i) {
    cv::Mat un = pre[i] / cv::max(a, 1e-4f);
    un.convertTo(out[i], CV_8U);
  }
  a.convertTo(out[3], CV_8U, 255);
  cv::Mat merged;
  cv::merge(out, merged);
  return merged;
}

cv::Mat apply(const cv::Mat& image, const std::function<void(const cv::Mat&, cv::Mat&)>& filter) {
  if (image.channels() == 4) return premultiplied_blur(image, filter);
  cv::Mat out;
  filter(image, out);
  return out;
}

}  // namespace

cv::Mat render_optical(const SceneSpec& spec) {
  cv::RNG rng(spec.seed * 2654435761ULL + 17);
  const Product product = make_product(spec.object, spec.product);
  const cv::Size big(spec.size.width * kSuper, spec.size.height * kSuper);
  Canvas c;
  c.colour = cv::Mat::zeros(big, CV_8UC3);
  c.mask = cv::Mat::zeros(big, CV_8U);
  c.depth = cv::Mat::zeros(big, CV_32F);
  const double e = radians(spec.view.elevation);
  c.turn(radians(spec.view.yaw), e);
  const double h = object_height(spec.object, product), w = object_width(spec.object, product);
  // Projected height: the body foreshortened, plus the depth seen from above.
  const double projected = h * std::cos(e) + w * std::sin(e);
  c.scale = spec.fill * big.height / projected * spec.view.zoom;
  const cv::Point2d jitter(rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02));
  const cv::Point2d centre((0.5 + spec.offset.x + jitter.x) * big.width, (0.5 + spec.offset.y + jitter.y) * big.height);
  // The picture centre is the middle of the object's projection (a close-up shows that middle).
  c.origin = cv::Point2d(centre.x, centre.y + h * std::cos(e) * c.scale / 2);
  switch (spec.object) {
    case Object::Bottle: draw_bottle(c, product); break;
    case Object::Speaker: draw_speaker(c, product); break;
    case Object::Mug: draw_mug(c, product); break;
  }

  // Averaged down with premultiplied colour: edge pixels get the object's colour and a partial
  // coverage, as a camera or a renderer's antialiasing gives them.
  // The canvas is black where nothing was drawn, so its colour is already premultiplied.
  cv::Mat premultiplied, coverage;
  cv::resize(c.colour, premultiplied, spec.size, 0, 0, cv::INTER_AREA);
  cv::resize(c.mask, coverage, spec.size, 0, 0, cv::INTER_AREA);
  premultiplied.convertTo(premultiplied, CV_32FC3);
  coverage.convertTo(coverage, CV_32F, 1.0 / 255);
  if (spec.layer) {
    std::vector<cv::Mat> ch;
    cv::split(premultiplied, ch);
    std::vector<cv::Mat> out(4);
    for (int i = 0; i < 3; ++i) cv::Mat(ch[i] / cv::max(coverage, 1e-4f)).convertTo(out[i], CV_8U);
    coverage.convertTo(out[3], CV_8U, 255);
    cv::Mat bgra;
    cv::merge(out, bgra);
    const cv::Rect box = cv::boundingRect(out[3] > 0);
    return box.area() > 0 ? bgra(box).clone() : bgra;
  }

  const double floor_y = (c.origin.y - 0.3 * w * std::sin(e) * c.scale) / kSuper;
  cv::Mat scene = make_backdrop(spec.backdrop, spec.size, floor_y, rng);
  cv::Mat f;
  scene.convertTo(f, CV_32FC3);
  if (spec.finish == Finish::Photo && spec.view.zoom <= 1.01) {
    // A soft contact shadow under the object, drawn small (it is soft anyway).
    constexpr double kShadow = 8;  // times smaller
    cv::Mat shadow = cv::Mat::zeros(cv::Size(spec.size.width / 8 + 1, spec.size.height / 8 + 1), CV_32F);
    const double u = c.scale / kSuper / kShadow;
    cv::ellipse(shadow, cv::Point(cvRound((c.origin.x / kSuper) / kShadow + 0.15 * w * u), cvRound(c.origin.y / kSuper / kShadow)),
                cv::Size(std::max(1, cvRound(0.7 * w * u)), std::max(1, cvRound(0.25 * w * u * std::sin(e) + 1))), 0, 0, 360,
                cv::Scalar(1), cv::FILLED);
    cv::GaussianBlur(shadow, shadow, cv::Size(0, 0), 0.12 * w * u + 0.5);
    cv::resize(shadow, shadow, spec.size, 0, 0, cv::INTER_LINEAR);
    cv::merge(std::vector<cv::Mat>(3, 1 - 0.35 * shadow), shadow);
    f = f.mul(shadow);
  }
  cv::Mat behind;
  cv::merge(std::vector<cv::Mat>(3, 1 - coverage), behind);
  f = premultiplied + f.mul(behind);
  cv::Mat out;
  f.convertTo(out, CV_8UC3);
  return out;
}

cv::Mat render_backdrop(const SceneSpec& spec, double floor) {
  cv::RNG rng(spec.seed * 2654435761ULL + 17);
  return make_backdrop(spec.backdrop, spec.size, floor * spec.size.height, rng);
}

cv::Mat finish(const cv::Mat& optical, const SceneSpec& spec) {
  if (spec.layer || spec.finish == Finish::Render) return optical.clone();
  cv::RNG rng(spec.seed * 40503ULL + 101);
  cv::Mat img = gaussian_blur(optical, rng.uniform(0.35, 0.65));  // a good lens is not perfect
  cv::Mat noise(img.size(), CV_16SC3);
  rng.fill(noise, cv::RNG::NORMAL, 0, rng.uniform(1.5, 4.0));
  cv::Mat out;
  cv::add(img, noise, out, cv::noArray(), CV_8UC3);
  return reencode_jpeg(out, rng.uniform(80, 94));
}

cv::Mat render(const SceneSpec& spec) { return finish(render_optical(spec), spec); }

cv::Mat gaussian_blur(const cv::Mat& image, double sigma) {
  return apply(image, [sigma](const cv::Mat& in, cv::Mat& out) { cv::GaussianBlur(in, out, cv::Size(0, 0), sigma); });
}

cv::Mat motion_blur(const cv::Mat& image, double length, double angle_degrees) {
  const int k = 2 * static_cast<int>(std::ceil(length / 2)) + 3;
  // The kernel: an antialiased line of `length` px, drawn 8 times larger and averaged down.
  cv::Mat big = cv::Mat::zeros(k * 8, k * 8, CV_32F);
  const cv::Point2d c(k * 4.0, k * 4.0), d(std::cos(radians(angle_degrees)) * length * 4, std::sin(radians(angle_degrees)) * length * 4);
  cv::line(big, c - d, c + d, cv::Scalar(1), 8, cv::LINE_AA);
  cv::Mat kernel;
  cv::resize(big, kernel, cv::Size(k, k), 0, 0, cv::INTER_AREA);
  kernel /= cv::sum(kernel)[0];
  return apply(image, [&](const cv::Mat& in, cv::Mat& out) { cv::filter2D(in, out, -1, kernel, cv::Point(-1, -1), 0, cv::BORDER_REFLECT); });
}

cv::Mat reencode_jpeg(const cv::Mat& image, int quality) {
  std::vector<uchar> bytes;
  cv::imencode(".jpg", image, bytes, {cv::IMWRITE_JPEG_QUALITY, quality});
  return cv::imdecode(bytes, cv::IMREAD_COLOR);
}

cv::Mat resized(const cv::Mat& image, double factor) {
  cv::Mat out;
  cv::resize(image, out, cv::Size(), factor, factor, factor < 1 ? cv::INTER_AREA : cv::INTER_CUBIC);
  return out;
}

cv::Mat cropped(const cv::Mat& image, double left, double top, double right, double bottom) {
  const int x0 = cvRound(left * image.cols), y0 = cvRound(top * image.rows);
  const int x1 = image.cols - cvRound(right * image.cols), y1 = image.rows - cvRound(bottom * image.rows);
  return image(cv::Rect(x0, y0, x1 - x0, y1 - y0)).clone();
}

cv::Mat colour_shifted(const cv::Mat& image, double brightness, double contrast, double hue_degrees, double saturation) {
  cv::Mat bgr, alpha;
  if (image.channels() == 4) {
    cv::cvtColor(image, bgr, cv::COLOR_BGRA2BGR);
    cv::extractChannel(image, alpha, 3);
  } else {
    bgr = image;
  }
  cv::Mat hsv;
  bgr.convertTo(hsv, CV_32FC3, 1.0 / 255);
  cv::cvtColor(hsv, hsv, cv::COLOR_BGR2HSV);  // H in degrees, S and V in 0..1
  std::vector<cv::Mat> ch;
  cv::split(hsv, ch);
  ch[0] += hue_degrees;
  for (int y = 0; y < ch[0].rows; ++y)
    for (int x = 0; x < ch[0].cols; ++x) {
      float& hue = ch[0].at<float>(y, x);
      hue = std::fmod(hue + 360.0f, 360.0f);
    }
  ch[1] = cv::min(ch[1] * saturation, 1.0);
  cv::merge(ch, hsv);
  cv::cvtColor(hsv, hsv, cv::COLOR_HSV2BGR);
  cv::Mat out;
  hsv.convertTo(out, CV_8UC3, 255 * contrast, 128 * (1 - contrast) + brightness);
  if (alpha.empty()) return out;
  std::vector<cv::Mat> channels;
  cv::split(out, channels);
  channels.push_back(alpha);
  cv::merge(channels, out);
  return out;
}

const char* to_string(Object o) {
  switch (o) {
    case Object::Bottle: return "bottle";
    case Object::Speaker: return "speaker";
    case Object::Mug: return "mug";
  }
  return "?";
}

const char* to_string(Backdrop b) {
  switch (b) {
    case Backdrop::White: return "white";
    case Backdrop::Grey: return "grey";
    case Backdrop::Sweep: return "sweep";
    case Backdrop::Colour: return "colour";
    case Backdrop::Wood: return "wood";
    case Backdrop::Marble: return "marble";
    case Backdrop::Fabric: return "fabric";
    case Backdrop::Bokeh: return "bokeh";
  }
  return "?";
}

std::string describe(const SceneSpec& s) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s %llu, yaw %.0f, elevation %.0f%s, %s%s, %dx%d", to_string(s.object),
                static_cast<unsigned long long>(s.product), s.view.yaw, s.view.elevation,
                s.view.zoom > 1 ? ", close-up" : "", s.layer ? "layer" : to_string(s.backdrop),
                s.layer ? "" : (s.finish == Finish::Photo ? ", photo" : ", render"), s.size.width, s.size.height);
  return buf;
}

}  // namespace kiln::calibration
