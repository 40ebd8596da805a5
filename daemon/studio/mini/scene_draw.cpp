#include "studio/mini/scene_draw.h"

#include <algorithm>
#include <array>
#include <cmath>

#include <opencv2/imgproc.hpp>

namespace kiln::studio::mini::detail {
namespace {

constexpr int kTableSize = 64;
constexpr int kTextureSide = 512;

double clamp01(double v) { return std::min(1.0, std::max(0.0, v)); }

cv::Vec3d unit(cv::Vec3d v) { return v * (1.0 / std::max(1e-9, cv::norm(v))); }

// How bright a finish is at a normal, before the paint colour: (diffuse factor, specular, opacity).
struct Response {
  double k, spec, opacity;
};

Response respond(Finish f, const Lighting& L, const cv::Vec3d& n) {
  const double ndl = n.dot(L.dir);
  const double lambert = clamp01((ndl + L.wrap) / (1 + L.wrap));
  const cv::Vec3d half = unit(L.dir + cv::Vec3d(0, 0, 1));
  const double ndh = std::max(0.0, n.dot(half));
  const double base = L.ambient + L.diffuse * lambert;
  switch (f) {
    case Finish::Glass: {
      const double edge = 1 - std::max(0.0, n[2]);
      return {0.78 + 0.3 * lambert, 0.95 * std::pow(ndh, 90) + 0.25 * std::pow(edge, 6), 0.5 + 0.45 * edge * edge};
    }
    case Finish::Metal: {
      // The reflected studio: a bright softbox band on the light's side, a thin rim on the other.
      const cv::Vec3d r = cv::Vec3d(0, 0, 1) * -1 + n * (2 * n[2]);
      const double band = std::exp(-std::pow((r[0] - 0.5 * L.dir[0]) / 0.2, 2));
      const double rim = std::exp(-std::pow((r[0] + 0.75 * L.dir[0] / std::max(0.2, std::abs(L.dir[0]))) / 0.12, 2));
      return {0.22 + 0.55 * lambert + 0.9 * band + 0.35 * rim + 0.2 * std::max(0.0, r[1]), 0.55 * std::pow(ndh, 120), 1};
    }
    case Finish::Plastic: return {base, 0.55 * std::pow(ndh, 60), 1};
    case Finish::Ceramic: return {base, 0.4 * std::pow(ndh, 30) + 0.07 * std::pow(ndh, 4), 1};
    case Finish::Leather: return {base, 0.22 * std::pow(ndh, 18), 1};
    case Finish::Rubber: return {base, 0.08 * std::pow(ndh, 8), 1};
    case Finish::Wood: return {base, 0.1 * std::pow(ndh, 12), 1};
    case Finish::Paper:
    case Finish::Fabric: return {0.15 + 0.9 * base, 0, 1};
  }
  return {base, 0, 1};
}

// The mean diffuse factor across a straight cylinder: dividing by it keeps a shaded surface's mean
// colour near its paint, so the mask's mean classifies back to the named colour.
double mean_factor(Finish f, const Lighting& L) {
  double sum = 0;
  for (int i = 0; i < kTableSize; ++i) {
    const double u = -1 + (2.0 * i + 1) / kTableSize;
    sum += respond(f, L, {u, 0, std::sqrt(1 - u * u)}).k;
  }
  return sum / kTableSize;
}

cv::Vec4b shade(const Paint& p, const Lighting& L, const cv::Vec3d& n, double norm) {
  const Response r = respond(p.finish, L, n);
  const double spec = r.spec * L.specular * 255;
  cv::Vec4b out;
  for (int c = 0; c < 3; ++c) out[c] = cv::saturate_cast<uchar>(p.bgr[c] * r.k / norm + spec);
  out[3] = cv::saturate_cast<uchar>(255 * std::max(r.opacity, std::min(1.0, r.spec * 1.5)));
  return out;
}

// Smooth value noise in [0, 1], generated once: random values on a coarse grid, enlarged.
cv::Mat value_noise(cv::Size size, cv::Size cells, cv::RNG& rng) {
  cv::Mat grid(cells, CV_32F), out;
  rng.fill(grid, cv::RNG::UNIFORM, 0.0, 1.0);
  cv::resize(grid, out, size, 0, 0, cv::INTER_CUBIC);
  return out;
}

cv::Mat fractal(cv::Size size, int cells, cv::RNG& rng) {
  cv::Mat sum = cv::Mat::zeros(size, CV_32F);
  double w = 1, total = 0;
  for (int o = 0; o < 4; ++o, cells *= 2, w *= 0.5) {
    sum += w * value_noise(size, {cells, cells}, rng);
    total += w;
  }
  return sum / total;
}

cv::Mat sine(const cv::Mat& phase) {
  cv::Mat ones = cv::Mat::ones(phase.size(), CV_32F), x, y;
  cv::polarToCart(ones, phase, x, y);
  return y;
}

cv::Mat to_grey(const cv::Mat& f, double lo, double hi) {  // f in [0,1] → 128·[lo, hi]
  cv::Mat out;
  f.convertTo(out, CV_8U, 128 * (hi - lo), 128 * lo);
  return out;
}

cv::Mat make_texture(Texture t) {
  const cv::Size size(kTextureSide, kTextureSide);
  cv::RNG rng(0x6b696c6e + static_cast<int>(t));
  cv::Mat ramp(size, CV_32F);
  for (int y = 0; y < size.height; ++y) ramp.row(y).setTo(static_cast<float>(y));
  switch (t) {
    case Texture::Wood: {  // grain lines along x, bent by slow noise, with fine streaks
      cv::Mat bend = value_noise(size, {5, 7}, rng) * 60.0;
      cv::Mat phase = (ramp + bend) * (2 * CV_PI / 9.0);
      cv::Mat rings = sine(phase) * 0.5 + 0.5;
      cv::Mat streak = value_noise(size, {6, 160}, rng);
      return to_grey(0.55 * rings + 0.45 * streak, 0.78, 1.18);
    }
    case Texture::Marble: {  // thin dark veins along a turbulent diagonal
      const cv::Mat colx = ramp.t();
      cv::Mat turb = fractal(size, 4, rng);
      cv::Mat phase = (colx * 0.6 + ramp * 0.35) * (2 * CV_PI / 260.0) + turb * 9.0;
      cv::Mat s = cv::abs(sine(phase)), veins;
      cv::exp(s * -7.0, veins);
      cv::Mat cloud = fractal(size, 6, rng);
      return to_grey(cloud * 0.25 + 0.75 - veins * 0.55, 0.7, 1.1);
    }
    case Texture::Grass: {  // short strokes, dark and light, over mottled ground
      cv::Mat g = to_grey(fractal(size, 8, rng), 0.65, 1.05);
      for (int i = 0; i < 9000; ++i) {
        const cv::Point a(rng.uniform(0, size.width), rng.uniform(0, size.height));
        const cv::Point b = a + cv::Point(rng.uniform(-3, 4), -rng.uniform(6, 14));
        cv::line(g, a, b, cv::Scalar(rng.uniform(70, 175)), rng.uniform(1, 3), cv::LINE_AA);
      }
      return g;
    }
    case Texture::Sand: {  // grains and soft ripples
      cv::Mat grains(size, CV_32F);
      rng.fill(grains, cv::RNG::NORMAL, 0.0, 0.12);
      cv::Mat ripple = sine((ramp + value_noise(size, {4, 4}, rng) * 80.0) * (2 * CV_PI / 31.0)) * 0.025;
      cv::Mat f = fractal(size, 6, rng) * 0.3 + 0.7 + grains + ripple;
      return to_grey(f, 0.0, 1.12);
    }
    case Texture::Concrete: {
      cv::Mat pits(size, CV_32F);
      rng.fill(pits, cv::RNG::NORMAL, 0.0, 0.07);
      return to_grey(fractal(size, 10, rng) * 0.35 + 0.65 + pits, 0.0, 1.12);
    }
    case Texture::Fibre: {
      cv::Mat fine(size, CV_32F);
      rng.fill(fine, cv::RNG::NORMAL, 0.0, 0.5);
      cv::GaussianBlur(fine, fine, cv::Size(0, 0), 1.2);
      return to_grey(fine * 0.25 + 0.95, 0.0, 1.0);
    }
  }
  return cv::Mat(size, CV_8U, cv::Scalar(128));
}

const cv::Mat& texture_of(Texture t) {
  static const std::array<cv::Mat, 6> bank = [] {
    std::array<cv::Mat, 6> b;
    for (int i = 0; i < 6; ++i) b[i] = make_texture(static_cast<Texture>(i));
    return b;
  }();
  return bank[static_cast<size_t>(t)];
}

cv::Vec3d hsv_colour(double h, double s, double v) {  // h 0..180 (OpenCV), s, v 0..1 → BGR 0..255
  cv::Mat px(1, 1, CV_8UC3, cv::Scalar(h, 255 * s, 255 * v)), bgr;
  cv::cvtColor(px, bgr, cv::COLOR_HSV2BGR);
  const cv::Vec3b c = bgr.at<cv::Vec3b>(0, 0);
  return {double(c[0]), double(c[1]), double(c[2])};
}

// Rows [y0, y1) get a vertical blend from `top` to `bottom`.
void vertical_gradient(cv::Mat& img, int y0, int y1, cv::Vec3d top, cv::Vec3d bottom) {
  for (int y = y0; y < y1; ++y) {
    const double t = (y1 - y0) > 1 ? double(y - y0) / (y1 - y0 - 1) : 0;
    img.row(y).setTo(cv::Scalar(top * (1 - t) + bottom * t));
  }
}

// A colour version of a grey texture: colour × texture/128.
cv::Mat tinted(const cv::Mat& grey, cv::Vec3d colour) {
  cv::Mat bgr;
  cv::cvtColor(grey, bgr, cv::COLOR_GRAY2BGR);
  cv::multiply(bgr, cv::Scalar(colour[0] / 128, colour[1] / 128, colour[2] / 128), bgr);
  return bgr;
}

}  // namespace

Lighting lighting_for(const std::string& light, double side) {
  Lighting L;
  L.side = side < 0 ? -1 : 1;
  if (light == "soft light") {
    L.dir = {0.3 * L.side, 0.6, 0.75};
    L.ambient = 0.55, L.diffuse = 0.5, L.wrap = 0.6, L.specular = 0.5;
    L.shadow_blur = 0.3, L.shadow_strength = 0.35, L.shadow_length = 0.1;
  } else if (light == "sunlight") {
    L.dir = {0.7 * L.side, 0.55, 0.45};
    L.ambient = 0.28, L.diffuse = 0.95, L.wrap = 0.05, L.specular = 1.2;
    L.tint = {0.95, 0.99, 1.0};
    L.shadow_blur = 0.04, L.shadow_strength = 0.5, L.shadow_length = 0.8;
  } else if (light == "warm light") {
    L.dir = {0.5 * L.side, 0.45, 0.7};
    L.ambient = 0.38, L.diffuse = 0.75, L.wrap = 0.3, L.specular = 0.8;
    L.tint = {0.87, 0.95, 1.0};
    L.shadow_blur = 0.15, L.shadow_strength = 0.45, L.shadow_length = 0.3;
  } else {  // studio light
    L.dir = {0.55 * L.side, 0.5, 0.65};
  }
  L.dir = unit(L.dir);
  return L;
}

Finish finish_for(const std::string& m) {
  if (m == "glass") return Finish::Glass;
  if (m == "metal") return Finish::Metal;
  if (m == "ceramic") return Finish::Ceramic;
  if (m == "wooden") return Finish::Wood;
  if (m == "paper") return Finish::Paper;
  if (m == "fabric") return Finish::Fabric;
  if (m == "leather") return Finish::Leather;
  if (m == "rubber") return Finish::Rubber;
  return Finish::Plastic;
}

cv::Vec4b Shader::at(const Paint& paint, cv::Vec3d normal) const {
  return shade(paint, light_, unit(normal), mean_factor(paint.finish, light_));
}

const cv::Mat& Shader::table(const Paint& paint, double slope) {
  const int bucket = static_cast<int>(std::lround(std::max(-6.0, std::min(6.0, slope)) * 8));
  const auto key = std::make_tuple(static_cast<int>(paint.finish), int(paint.bgr[0]), int(paint.bgr[1]),
                                   int(paint.bgr[2]), bucket);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  const double s = bucket / 8.0, c = 1 / std::sqrt(1 + s * s);
  const double norm = mean_factor(paint.finish, light_);
  cv::Mat t(1, kTableSize, CV_8UC4);
  for (int i = 0; i < kTableSize; ++i) {
    const double u = -1 + (2.0 * i + 1) / kTableSize;
    t.at<cv::Vec4b>(0, i) = shade(paint, light_, {u * c, -s * c, std::sqrt(1 - u * u) * c}, norm);
  }
  return cache_.emplace(key, t).first->second;
}

Layer::Layer(int side)
    : bgr(side, side, CV_8UC3, cv::Scalar::all(0)),
      alpha(side, side, CV_8UC1, cv::Scalar(0)),
      mask(side, side, CV_8UC1, cv::Scalar(0)),
      glass(side, side, CV_8UC1, cv::Scalar(0)) {}

void Layer::fill_poly(const std::vector<cv::Point>& points, const cv::Vec4b& c) {
  const std::vector<std::vector<cv::Point>> polys{points};
  cv::fillPoly(bgr, polys, cv::Scalar(c[0], c[1], c[2]));
  cv::fillPoly(alpha, polys, cv::Scalar(c[3]));
  cv::fillPoly(mask, polys, cv::Scalar(255));
  cv::fillPoly(glass, polys, cv::Scalar(c[3] < 255 ? 255 : 0));
}

void Layer::fill_ellipse(cv::Point2d centre, cv::Size2d axes, const cv::Vec4b& c, double start, double end) {
  const cv::Point p(cvRound(centre.x), cvRound(centre.y));
  const cv::Size a(std::max(1, cvRound(axes.width)), std::max(1, cvRound(axes.height)));
  cv::ellipse(bgr, p, a, 0, start, end, cv::Scalar(c[0], c[1], c[2]), cv::FILLED);
  cv::ellipse(alpha, p, a, 0, start, end, cv::Scalar(c[3]), cv::FILLED);
  cv::ellipse(mask, p, a, 0, start, end, cv::Scalar(255), cv::FILLED);
  cv::ellipse(glass, p, a, 0, start, end, cv::Scalar(c[3] < 255 ? 255 : 0), cv::FILLED);
}

void Layer::line(cv::Point2d a, cv::Point2d b, const cv::Vec4b& c, int thickness) {
  const cv::Point pa(cvRound(a.x), cvRound(a.y)), pb(cvRound(b.x), cvRound(b.y));
  cv::line(bgr, pa, pb, cv::Scalar(c[0], c[1], c[2]), thickness);
  cv::line(alpha, pa, pb, cv::Scalar(c[3]), thickness);
  cv::line(mask, pa, pb, cv::Scalar(255), thickness);
  cv::line(glass, pa, pb, cv::Scalar(c[3] < 255 ? 255 : 0), thickness);
}

void Layer::texture(const cv::Rect& box, const cv::Mat& grey) {
  const cv::Rect r = box & cv::Rect(0, 0, bgr.cols, bgr.rows);
  if (r.empty()) return;
  cv::Mat t3;
  cv::cvtColor(grey(cv::Rect(0, 0, r.width, r.height)), t3, cv::COLOR_GRAY2BGR);
  cv::Mat roi = bgr(r);
  cv::multiply(roi, t3, roi, 1.0 / 128);
}

cv::Rect Layer::bounds() const { return cv::boundingRect(mask); }

void draw_lathe(Layer& layer, Shader& shader, const Lathe& lathe, cv::Point2d base, double height, double e) {
  // Densify each part's run of points with Catmull-Rom on r(h).
  std::vector<ProfilePoint> pts;
  const auto& p = lathe.points;
  for (size_t i = 0; i < p.size(); ++i) {
    pts.push_back(p[i]);
    if (!lathe.smooth || i + 1 >= p.size() || p[i + 1].part != p[i].part || p[i + 1].h <= p[i].h) continue;
    const ProfilePoint& a = (i > 0 && p[i - 1].part == p[i].part && p[i - 1].h < p[i].h) ? p[i - 1] : p[i];
    const ProfilePoint& d = (i + 2 < p.size() && p[i + 2].part == p[i].part && p[i + 2].h > p[i + 1].h) ? p[i + 2] : p[i + 1];
    for (int k = 1; k < 6; ++k) {
      const double t = k / 6.0, t2 = t * t, t3 = t2 * t;
      const double r = 0.5 * ((2 * p[i].r) + (-a.r + p[i + 1].r) * t + (2 * a.r - 5 * p[i].r + 4 * p[i + 1].r - d.r) * t2 +
                              (-a.r + 3 * p[i].r - 3 * p[i + 1].r + d.r) * t3);
      pts.push_back({p[i].h + (p[i + 1].h - p[i].h) * t, std::max(0.0, r), p[i].part});
    }
  }
  const int side = layer.bgr.cols;
  cv::Mat strip, strip_bgr, strip_alpha, strip_glass;
  std::tuple<const cv::Mat*, int> strip_key{nullptr, -1};
  // One row: the part's shading table stretched to the radius, the visible half-width copied.
  auto put_row = [&](int y, double radius, double visible, const cv::Mat& table) {
    if (y < 0 || y >= side || radius < 0.5) return;
    const int width = std::max(2, cvRound(2 * radius));
    if (std::get<0>(strip_key) != &table || std::get<1>(strip_key) != width) {
      cv::resize(table, strip, cv::Size(width, 1), 0, 0, cv::INTER_LINEAR);
      cv::Mat ch[4];
      cv::split(strip, ch);
      cv::merge(ch, 3, strip_bgr);
      strip_alpha = ch[3];
      strip_glass = ch[3] < 255;
      strip_key = {&table, width};
    }
    const int x0 = cvRound(base.x - radius);
    const int skip = std::max(0, cvRound(radius - visible));
    int a = x0 + skip, b = x0 + width - skip;
    const int lo = std::max(a, 0), hi = std::min(b, side);
    if (hi <= lo) return;
    strip_bgr.colRange(lo - x0, hi - x0).copyTo(layer.bgr.row(y).colRange(lo, hi));
    strip_alpha.colRange(lo - x0, hi - x0).copyTo(layer.alpha.row(y).colRange(lo, hi));
    strip_glass.colRange(lo - x0, hi - x0).copyTo(layer.glass.row(y).colRange(lo, hi));
    layer.mask.row(y).colRange(lo, hi).setTo(255);
  };
  const double top_h = pts.back().h;
  const int y_top = cvRound(base.y - top_h * height), y_bottom = cvRound(base.y);
  size_t seg = 0;
  for (int y = y_bottom - 1; y >= y_top; --y) {
    const double h = (base.y - y - 0.5) / height;
    while (seg + 1 < pts.size() && pts[seg + 1].h < h) ++seg;
    if (seg + 1 >= pts.size()) break;
    const ProfilePoint &a = pts[seg], &b = pts[seg + 1];
    const double dh = std::max(1e-6, b.h - a.h);
    const double t = std::min(1.0, std::max(0.0, (h - a.h) / dh));
    const double r = a.r + (b.r - a.r) * t;
    put_row(y, r * height, r * height, shader.table(lathe.paints[a.part], (b.r - a.r) / dh));
  }
  // Steps outward (the base, a lid, a lampshade's lower rim): the lower half of the ellipse shows.
  for (size_t i = 0; i < pts.size(); ++i) {
    const bool bottom = i == 0;
    const bool step = i > 0 && pts[i].h - pts[i - 1].h < 1e-6 && pts[i].r > pts[i - 1].r + 1e-6;
    if (!bottom && !step) continue;
    const double rp = pts[i].r * height, ry = rp * e;
    const double yc = base.y - pts[i].h * height;
    const cv::Mat& table = shader.table(lathe.paints[pts[i].part], 0);
    for (int y = cvRound(yc); y < cvRound(yc + ry); ++y) {
      const double dy = (y + 0.5 - yc) / std::max(1e-6, ry);
      if (dy >= 1) break;
      put_row(y, rp, rp * std::sqrt(1 - dy * dy), table);
    }
  }
  // The top: a lit lid, or a rim around a darker inside.
  const ProfilePoint& top = pts.back();
  const Paint& paint = lathe.paints[top.part];
  const double rt = top.r * height;
  const cv::Point2d c(base.x, base.y - top.h * height);
  const cv::Vec4b lid = shader.at(paint, {0, std::sqrt(1 - e * e), e});
  layer.fill_ellipse(c, {rt, rt * e}, lid);
  if (lathe.open_top) {
    Paint inside = paint;
    inside.bgr *= 0.5;
    cv::Vec4b in = shader.at(inside, {-0.3 * shader.lighting().side, 0.2, 1});
    if (paint.finish == Finish::Glass) in[3] = 150;
    const double w = std::max(1.5, 0.07 * rt);
    layer.fill_ellipse(c, {rt - w, std::max(1.0, rt * e - w * e * 1.5)}, in);
  }
}

cv::Mat texture_crop(Texture t, cv::Size size, cv::RNG& rng) {
  const cv::Mat& tex = texture_of(t);
  const int w = std::min(size.width, tex.cols), h = std::min(size.height, tex.rows);
  const int x = rng.uniform(0, tex.cols - w + 1), y = rng.uniform(0, tex.rows - h + 1);
  cv::Mat crop = tex(cv::Rect(x, y, w, h));
  if (w == size.width && h == size.height) return crop;
  cv::Mat out;
  cv::resize(crop, out, size, 0, 0, cv::INTER_LINEAR);
  return out;
}

cv::Mat draw_background(const SceneSpec& spec, const Lighting& light, int side, cv::RNG& rng) {
  cv::Mat img(side, side, CV_8UC3);
  const int hy = std::max(1, std::min(side - 2, cvRound(spec.horizon * side)));
  const bool outdoor = spec.surface == "grass" || spec.surface == "sand" || spec.surface == "beach";
  if (spec.surface == "studio sweep") {  // one seamless paper: darker at the top, a soft bend, lit floor
    const cv::Vec3d paper = hsv_colour(rng.uniform(0, 180), rng.uniform(0.0, 0.22), rng.uniform(0.72, 0.95));
    vertical_gradient(img, 0, hy, paper * 0.72, paper * 0.95);
    vertical_gradient(img, hy, side, paper * 0.95, paper * 1.05);
    return img;
  }
  if (outdoor) {
    cv::Vec3d top, low;
    if (spec.light == "warm light") top = {150, 100, 90}, low = {120, 185, 245};  // dusk: orange at the horizon
    else if (spec.light == "soft light") top = {200, 196, 190}, low = {225, 225, 222};  // overcast
    else top = {215, 150, 75}, low = {245, 225, 200};  // blue sky
    vertical_gradient(img, 0, hy, top, low);
  } else {
    const cv::Vec3d wall = hsv_colour(rng.uniform(0, 180), rng.uniform(0.04, 0.28), rng.uniform(0.62, 0.92));
    vertical_gradient(img, 0, hy, wall * 0.8, wall * 1.02);
    // Brighter toward the light: a horizontal ramp multiplied in.
    cv::Mat ramp(1, side, CV_32FC3);
    for (int x = 0; x < side; ++x) {
      const float f = static_cast<float>(1.0 + 0.12 * light.side * (2.0 * x / side - 1));
      ramp.at<cv::Vec3f>(0, x) = {f, f, f};
    }
    cv::Mat wall_f;
    img.rowRange(0, hy).convertTo(wall_f, CV_32FC3);
    cv::multiply(wall_f, cv::repeat(ramp, hy, 1), wall_f);
    wall_f.convertTo(img.rowRange(0, hy), CV_8UC3);
  }
  // The surface: a texture laid flat and seen in perspective (compressed toward the horizon).
  Texture tex = Texture::Concrete;
  cv::Vec3d colour(150, 150, 148);
  if (spec.surface == "wooden table") {
    tex = Texture::Wood;
    colour = hsv_colour(rng.uniform(10, 18), rng.uniform(0.45, 0.7), rng.uniform(0.35, 0.75));
  } else if (spec.surface == "marble table") {
    tex = Texture::Marble;
    colour = rng.uniform(0, 4) ? cv::Vec3d(232, 234, 236) : cv::Vec3d(70, 72, 74);
  } else if (spec.surface == "grass") {
    tex = Texture::Grass;
    colour = hsv_colour(rng.uniform(38, 55), rng.uniform(0.55, 0.75), rng.uniform(0.45, 0.65));
  } else if (spec.surface == "sand" || spec.surface == "beach") {
    tex = Texture::Sand;
    colour = hsv_colour(rng.uniform(15, 22), rng.uniform(0.25, 0.4), rng.uniform(0.78, 0.9));
  } else {
    colour = cv::Vec3d::all(rng.uniform(110.0, 170.0));
  }
  const cv::Mat src = tinted(texture_crop(tex, {160, 160}, rng), colour);
  const float s = static_cast<float>(src.cols);
  const int floor_h = side - hy;
  const cv::Point2f from[] = {{0, 0}, {s, 0}, {s, s}, {0, s}};
  const cv::Point2f to[] = {{-1.6f * side, 0}, {2.6f * side, 0}, {1.25f * side, float(floor_h)}, {-0.25f * side, float(floor_h)}};
  cv::Mat floor = img.rowRange(hy, side);
  cv::warpPerspective(src, floor, cv::getPerspectiveTransform(from, to), floor.size(), cv::INTER_LINEAR,
                      cv::BORDER_REFLECT);
  // Haze toward the horizon.
  const cv::Vec3d haze = cv::Vec3d(img.at<cv::Vec3b>(hy - 1, side / 2));
  const int band = std::max(2, floor_h / 5);
  for (int y = 0; y < band; ++y) {
    const double w = 0.45 * (1 - double(y) / band);
    cv::Mat row = floor.row(y);
    cv::addWeighted(row, 1 - w, cv::Mat(row.size(), row.type(), cv::Scalar(haze)), w, 0, row);
  }
  if (spec.surface == "beach") {  // the sea between the sand and the sky, with a line of surf
    const int sea = std::max(2, floor_h / 4);
    vertical_gradient(img, hy, hy + sea, {150, 110, 40}, {175, 150, 80});
    img.rowRange(hy + sea - std::max(1, side / 64), hy + sea).setTo(cv::Scalar(235, 240, 240));
  } else if (spec.surface == "grass") {  // a distant tree line
    std::vector<cv::Point> hills{{0, hy}};
    for (int x = 0; x <= side; x += side / 16) hills.emplace_back(x, hy - rng.uniform(side / 40, side / 12));
    hills.emplace_back(side, hy);
    cv::fillPoly(img, std::vector<std::vector<cv::Point>>{hills}, cv::Scalar(colour * 0.55));
  } else if (spec.surface == "sand") {  // dunes
    std::vector<cv::Point> dunes{{0, hy}};
    for (int x = 0; x <= side; x += side / 6) dunes.emplace_back(x, hy - rng.uniform(0, side / 14));
    dunes.emplace_back(side, hy);
    cv::fillPoly(img, std::vector<std::vector<cv::Point>>{dunes}, cv::Scalar(colour * 0.92));
  } else if (spec.surface == "wooden table" || spec.surface == "marble table") {  // the table's front edge line
    img.row(hy).setTo(cv::Scalar(colour * 1.1));
  }
  return img;
}

void draw_shadow(cv::Mat& bgr, const Lighting& light, cv::Point2d base, double width, double height, double e) {
  const int small = std::max(8, bgr.cols / 4);
  const double k = double(small) / bgr.cols;
  cv::Mat m(small, small, CV_8UC1, cv::Scalar(0));
  const cv::Point2d b = base * k;
  const double w = width * k, h = height * k;
  cv::ellipse(m, cv::Point(cvRound(b.x), cvRound(b.y)), cv::Size(cvRound(w * 0.55), std::max(1, cvRound(w * 0.55 * e))), 0,
              0, 360, cv::Scalar(255), cv::FILLED, cv::LINE_AA);
  if (light.shadow_length > 0.05) {  // cast away from the light, along the ground
    const double len = h * light.shadow_length;
    const cv::Point2d tip(b.x - light.side * len, b.y - len * e * 0.6);
    const std::vector<cv::Point> poly{cv::Point(cvRound(b.x - w * 0.45), cvRound(b.y)),
                                      cv::Point(cvRound(b.x + w * 0.45), cvRound(b.y)),
                                      cv::Point(cvRound(tip.x + w * 0.3), cvRound(tip.y)),
                                      cv::Point(cvRound(tip.x - w * 0.3), cvRound(tip.y))};
    cv::Mat cast(m.size(), CV_8UC1, cv::Scalar(0));
    cv::fillConvexPoly(cast, poly, cv::Scalar(150), cv::LINE_AA);
    cv::ellipse(cast, cv::Point(cvRound(tip.x), cvRound(tip.y)), cv::Size(cvRound(w * 0.3), std::max(1, cvRound(w * 0.3 * e))),
                0, 0, 360, cv::Scalar(150), cv::FILLED, cv::LINE_AA);
    m = cv::max(m, cast);
  }
  const double sigma = std::max(0.6, w * light.shadow_blur + 0.5);
  cv::GaussianBlur(m, m, cv::Size(0, 0), sigma);
  cv::Mat big, factor;
  cv::resize(m, big, bgr.size(), 0, 0, cv::INTER_LINEAR);
  big.convertTo(big, CV_8U, -light.shadow_strength, 255);
  cv::cvtColor(big, factor, cv::COLOR_GRAY2BGR);
  cv::multiply(bgr, factor, bgr, 1.0 / 255);
}

void composite(cv::Mat& bgr, const Layer& layer) {
  const cv::Rect r = layer.bounds();
  if (r.empty()) return;
  cv::Mat roi = bgr(r);
  if (cv::countNonZero(layer.glass(r)) > 0) {  // what glass covers: softened and tinted by the glass
    cv::Mat behind;
    cv::GaussianBlur(roi, behind, cv::Size(0, 0), std::max(1.0, r.width / 60.0));
    cv::multiply(behind, layer.glass_tint, behind);
    behind.copyTo(roi, layer.glass(r));
  }
  cv::Mat a, inv, fg, bg;
  layer.alpha(r).convertTo(a, CV_32F, 1.0 / 255);
  inv = 1.0 - a;
  cv::blendLinear(layer.bgr(r), roi, a, inv, roi);
}

}  // namespace kiln::studio::mini::detail
