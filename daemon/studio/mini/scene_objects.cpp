#include "studio/mini/scene_objects.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <opencv2/imgproc.hpp>

namespace kiln::studio::mini::detail {
namespace {

const Paint kSilver{{188, 188, 194}, Finish::Metal};
const Paint kBlackPlastic{{38, 38, 40}, Finish::Plastic};
const Paint kWhitePlastic{{236, 236, 236}, Finish::Plastic};
const Paint kGold{{70, 165, 205}, Finish::Metal};
const Paint kCork{{95, 148, 188}, Finish::Wood};

double radians(double deg) { return deg * CV_PI / 180; }

// Body texture for the grainy finishes (wood, paper, fabric, leather), over the object's box.
void finish_texture(Layer& layer, const Paint& body, bool vertical, cv::RNG& rng) {
  Texture t;
  switch (body.finish) {
    case Finish::Wood: t = Texture::Wood; break;
    case Finish::Paper:
    case Finish::Fabric:
    case Finish::Leather: t = Texture::Fibre; break;
    default: return;
  }
  const cv::Rect box = layer.bounds();
  if (box.empty()) return;
  cv::Mat grey = texture_crop(t, vertical ? cv::Size(box.height, box.width) : box.size(), rng);
  if (vertical) cv::rotate(grey, grey, cv::ROTATE_90_CLOCKWISE);
  layer.texture(box, grey);
}

// A lathe standing at `at`, plus its width.
double lathe(Layer& layer, Shader& shader, const Placement& at, std::vector<ProfilePoint> pts, std::vector<Paint> paints,
             bool open_top) {
  Lathe l{std::move(pts), std::move(paints), open_top, true};
  draw_lathe(layer, shader, l, at.base, at.height, at.elevation);
  double r = 0;
  for (const auto& p : l.points) r = std::max(r, p.r);
  return 2 * r * at.height;
}

Paint accent_for(const Paint& body, cv::RNG& rng) {  // caps and lids: black, white, silver or gold
  switch (rng.uniform(0, 4)) {
    case 0: return kBlackPlastic;
    case 1: return body.bgr[0] + body.bgr[1] + body.bgr[2] > 600 ? kBlackPlastic : kWhitePlastic;
    case 2: return kSilver;
    default: return kGold;
  }
}

double bottle(Layer& L, Shader& S, const Paint& body, const Placement& at, cv::RNG& rng) {
  const double b = 0.15 + 0.015 * at.variant;              // body radius
  const double shoulder = 0.5 + 0.04 * (at.variant % 3);   // where the body starts narrowing
  const double neck = 0.055 + 0.01 * (at.variant % 2);
  return lathe(L, S, at,
               {{0, b * 0.94, 0}, {0.02, b, 0}, {shoulder, b, 0}, {shoulder + 0.08, b * 0.86, 0},
                {shoulder + 0.15, b * 0.5, 0}, {0.74, neck, 0}, {0.86, neck, 0}, {0.86, neck * 1.25, 1},
                {1.0, neck * 1.25, 1}},
               {body, accent_for(body, rng)}, false);
}

Paint jar_lid(const Paint& body, cv::RNG& rng) {  // metal on colours; black or white jars keep their own
  const double sum = body.bgr[0] + body.bgr[1] + body.bgr[2];
  const double spread = std::max({body.bgr[0], body.bgr[1], body.bgr[2]}) - std::min({body.bgr[0], body.bgr[1], body.bgr[2]});
  const Paint metal = rng.uniform(0, 2) ? kSilver : kGold;
  if (spread > 60) return metal;
  return sum < 200 ? kBlackPlastic : sum > 600 ? kWhitePlastic : metal;
}

double jar(Layer& L, Shader& S, const Paint& body, const Placement& at, cv::RNG& rng) {
  const double r = 0.33 + 0.02 * at.variant;
  const double w = lathe(L, S, at,
                         {{0, r * 0.92, 0}, {0.04, r, 0}, {0.66, r, 0}, {0.74, r * 0.9, 0}, {0.78, r * 0.82, 0},
                          {0.79, r * 0.86, 1}, {1.0, r * 0.86, 1}},
                         {body, jar_lid(body, rng)}, false);
  // Ridges on the lid.
  const cv::Vec4b dark = S.at(Paint{cv::Vec3d(60, 60, 64), Finish::Metal}, {0, 0, 1});
  for (double h : {0.86, 0.93}) {
    const double y = at.base.y - h * at.height;
    L.fill_ellipse({at.base.x, y}, {r * 0.86 * at.height, r * 0.86 * at.height * at.elevation}, dark, 0, 180);
    L.fill_ellipse({at.base.x, y - std::max(1.0, at.height * 0.012)},
                   {r * 0.86 * at.height, r * 0.86 * at.height * at.elevation},
                   S.at(kSilver, {0, 0.3, 1}), 0, 180);
  }
  return w;
}

double can(Layer& L, Shader& S, const Paint& body, const Placement& at, cv::RNG& rng) {
  const double r = 0.25 + 0.015 * (at.variant % 2);
  const double w = lathe(L, S, at,
                         {{0, r * 0.8, 1}, {0.035, r, 0}, {0.94, r, 0}, {0.94, r, 1}, {0.985, r * 0.84, 1}, {1.0, r * 0.84, 1}},
                         {body, kSilver}, false);
  // The pull tab.
  const cv::Point2d c(at.base.x, at.base.y - at.height);
  L.fill_ellipse(c + cv::Point2d(0, -0.02 * at.height * at.elevation * 4), {r * 0.28 * at.height, r * 0.16 * at.height * at.elevation * 2.5},
                 S.at(Paint{{120, 120, 125}, Finish::Metal}, {0, 1, 0.3}));
  return w;
}

double mug(Layer& L, Shader& S, const Paint& body, const Placement& at, cv::RNG& rng) {
  const double r = 0.4 + 0.02 * (at.variant % 2);
  const double dir = at.yaw >= 0 ? 1 : -1;
  // The handle first, so the body covers where it joins.
  const cv::Point2d hc(at.base.x + dir * r * at.height, at.base.y - 0.5 * at.height);
  const cv::Size2d outer(0.2 * at.height, 0.3 * at.height), inner(0.11 * at.height, 0.19 * at.height);
  const double a0 = dir > 0 ? -90 : 90, a1 = dir > 0 ? 90 : 270;
  L.fill_ellipse(hc, outer, S.at(body, {dir * 0.8, 0.2, 0.55}), a0, a1);
  // The hole: cut back to nothing.
  cv::ellipse(L.mask, hc, inner, 0, a0, a1, cv::Scalar(0), cv::FILLED);
  cv::ellipse(L.alpha, hc, inner, 0, a0, a1, cv::Scalar(0), cv::FILLED);
  cv::ellipse(L.glass, hc, inner, 0, a0, a1, cv::Scalar(0), cv::FILLED);
  cv::ellipse(L.bgr, hc, inner, 0, a0, a1, cv::Scalar::all(0), cv::FILLED);
  const double w = lathe(L, S, at, {{0, r * 0.94, 0}, {0.03, r, 0}, {1.0, r, 0}}, {body}, true);
  return w + 0.2 * at.height;
}

double cup(Layer& L, Shader& S, const Paint& body, const Placement& at, cv::RNG& rng) {
  const double top = 0.32 + 0.02 * at.variant, bottom = top * (0.62 + 0.04 * (at.variant % 2));
  return lathe(L, S, at, {{0, bottom, 0}, {0.95, top * 0.985, 0}, {0.95, top * 1.04, 0}, {1.0, top * 1.04, 0}}, {body}, true);
}

double vase(Layer& L, Shader& S, const Paint& body, const Placement& at, cv::RNG& rng) {
  std::vector<ProfilePoint> p;
  switch (at.variant) {
    case 0: p = {{0, 0.12, 0}, {0.08, 0.17, 0}, {0.35, 0.27, 0}, {0.55, 0.24, 0}, {0.78, 0.11, 0}, {0.9, 0.095, 0}, {1, 0.14, 0}}; break;
    case 1: p = {{0, 0.14, 0}, {0.25, 0.2, 0}, {0.6, 0.22, 0}, {0.82, 0.14, 0}, {0.92, 0.12, 0}, {1, 0.17, 0}}; break;
    case 2: p = {{0, 0.1, 0}, {0.15, 0.2, 0}, {0.3, 0.3, 0}, {0.5, 0.3, 0}, {0.7, 0.16, 0}, {0.88, 0.08, 0}, {1, 0.1, 0}}; break;
    default: p = {{0, 0.12, 0}, {0.4, 0.16, 0}, {0.75, 0.2, 0}, {0.92, 0.23, 0}, {1, 0.25, 0}}; break;
  }
  const double w = lathe(L, S, at, p, {body}, true);
  finish_texture(L, body, true, rng);
  return w;
}

double lamp(Layer& L, Shader& S, const Paint& body, const Placement& at, cv::RNG& rng) {
  const double shade_bottom = 0.52 + 0.04 * (at.variant % 2);
  const double sr = 0.32 + 0.02 * at.variant;
  lathe(L, S, at,
                         {{0, 0.19, 0}, {0.04, 0.2, 0}, {0.07, 0.1, 0}, {0.075, 0.028, 1}, {shade_bottom, 0.028, 1},
                          {shade_bottom, sr, 2}, {1.0, sr * 0.62, 2}},
                         {body, kSilver, body}, true);
  // The lit inside of the shade glows warm.
  const cv::Point2d c(at.base.x, at.base.y - at.height);
  const double rt = sr * 0.62 * at.height * 0.92;
  L.fill_ellipse(c, {rt, std::max(1.0, rt * at.elevation)}, cv::Vec4b(170, 225, 255, 255));
  finish_texture(L, body, false, rng);
  return 2 * sr * at.height;
}

double ball(Layer& L, Shader& S, const Paint& body, const Placement& at, cv::RNG& rng) {
  std::vector<ProfilePoint> p;
  for (int i = 0; i <= 24; ++i) {
    const double t = CV_PI * i / 24;
    p.push_back({0.5 - 0.5 * std::cos(t), 0.5 * std::sin(t), 0});
  }
  Lathe l{p, {body}, false, false};
  // No lid ellipse for a sphere: draw rows only by giving the top a zero radius (the fill is 1 px).
  draw_lathe(L, S, l, at.base, at.height, at.elevation);
  const cv::Point2d c(at.base.x, at.base.y - 0.5 * at.height);
  const double R = 0.5 * at.height;
  if (body.finish != Finish::Glass) {  // seams: a ball, not a bead
    const cv::Vec4b seam = S.at(Paint{body.bgr * 0.45, Finish::Rubber}, {0, 0, 1});
    const int t = std::max(2, cvRound(R * 0.05));
    const double tilt = rng.uniform(-25.0, 25.0);
    cv::ellipse(L.bgr, c, cv::Size(cvRound(R * 0.42), cvRound(R * 0.98)), tilt, 0, 360, cv::Scalar(seam[0], seam[1], seam[2]), t);
    cv::ellipse(L.bgr, c, cv::Size(cvRound(R * 0.98), cvRound(R * 0.3)), tilt, 0, 360, cv::Scalar(seam[0], seam[1], seam[2]), t);
  }
  finish_texture(L, body, false, rng);
  return 2 * R;
}

// A box with yaw, seen from above by `elevation`: two side faces and the top, shaded by normal.
double box(Layer& L, Shader& S, const Paint& body, const Placement& at, cv::RNG& rng) {
  const double e = at.elevation, ce = std::sqrt(1 - e * e);
  const double phi = radians(at.yaw);
  const double w = at.height * (0.95 + 0.1 * at.variant), d = at.height * (0.7 + 0.08 * (at.variant % 2));
  const double hb = at.height * 0.72;
  auto project = [&](double X, double Y, double Z) {
    const double x = X * std::cos(phi) + Z * std::sin(phi);
    const double q = -X * std::sin(phi) + Z * std::cos(phi);  // depth: larger is further
    return cv::Point2d(x, -Y * ce - q * e);
  };
  std::vector<cv::Point2d> corner;
  for (int i = 0; i < 8; ++i)
    corner.push_back(project((i & 1 ? 0.5 : -0.5) * w, (i & 2 ? 1 : 0) * hb, (i & 4 ? 0.5 : -0.5) * d));
  double lowest = -1e9;
  for (const auto& c : corner) lowest = std::max(lowest, c.y);
  auto screen = [&](int i) { return cv::Point(cvRound(at.base.x + corner[i].x), cvRound(at.base.y + corner[i].y - lowest)); };
  const cv::Vec3d up(0, ce, e);
  // The faces' mean is kept at the paint's brightness (a white box reads white, not grey).
  const cv::Vec3d n_front(std::sin(phi), -std::cos(phi) * e, std::cos(phi) * ce);
  const cv::Vec3d n_side = phi >= 0 ? cv::Vec3d(std::cos(phi), std::sin(phi) * e, std::sin(phi) * ce)
                                    : cv::Vec3d(-std::cos(phi), -std::sin(phi) * e, -std::sin(phi) * ce);
  double lit = 0;
  for (const cv::Vec3d& n : {n_front, n_side, up}) {
    const cv::Vec4b c = S.at(body, n);
    lit += (c[0] + c[1] + c[2]) / 3.0;
  }
  const double gain = std::min(1.5, std::max(0.8, (body.bgr[0] + body.bgr[1] + body.bgr[2]) / std::max(1.0, lit)));
  auto face = [&](std::vector<int> idx, cv::Vec3d n) {
    std::vector<cv::Point> poly;
    for (int i : idx) poly.push_back(screen(i));
    cv::Vec4b c = S.at(body, n);
    for (int k = 0; k < 3; ++k) c[k] = cv::saturate_cast<uchar>(c[k] * gain);
    L.fill_poly(poly, c);
  };
  // Faces toward the viewer: front (Z-) always; the side X+ when turned one way, X- the other.
  face({0, 1, 3, 2}, n_front);
  if (phi >= 0) face({1, 5, 7, 3}, n_side);
  else face({4, 0, 2, 6}, n_side);
  face({2, 3, 7, 6}, up);
  finish_texture(L, body, false, rng);
  // Bright edges where the faces meet, and packing tape on a cardboard box.
  const cv::Vec4b edge = S.at(Paint{cv::Vec3d(body.bgr * 0.6 + cv::Vec3d::all(100)), body.finish}, up);
  const int t = std::max(1, cvRound(at.height * 0.012));
  L.line(screen(2), screen(3), edge, t);
  L.line(screen(3), screen(7), edge, t);
  L.line(screen(3), screen(1), edge, t);
  if (body.finish == Finish::Paper) {
    const cv::Vec4b tape = S.at(Paint{cv::Vec3d(body.bgr * 0.75 + cv::Vec3d(40, 50, 60)), Finish::Plastic}, up);
    const cv::Point2d a = (cv::Point2d(screen(2)) + cv::Point2d(screen(3))) * 0.5;
    const cv::Point2d b = (cv::Point2d(screen(6)) + cv::Point2d(screen(7))) * 0.5;
    L.line(a, b, tape, std::max(2, cvRound(at.height * 0.07)));
  }
  double lo = 1e9, hi = -1e9;
  for (int i = 0; i < 8; ++i) lo = std::min(lo, corner[i].x), hi = std::max(hi, corner[i].x);
  return hi - lo;
}

double sneaker(Layer& L, Shader& S, const Paint& body, const Placement& at, cv::RNG& rng) {
  const double H = at.height, len = H * (2.5 + 0.1 * (at.variant % 2));
  const double dir = at.yaw >= 0 ? 1 : -1;  // toe to the right or left
  auto P = [&](double x, double y) { return cv::Point(cvRound(at.base.x + (x - 0.5) * len * dir), cvRound(at.base.y - y * H)); };
  auto poly = [&](std::initializer_list<std::pair<double, double>> pts) {
    std::vector<cv::Point> v;
    for (const auto& p : pts) v.push_back(P(p.first, p.second));
    return v;
  };
  const Paint sole = at.variant == 3 ? Paint{{70, 120, 160}, Finish::Rubber} : Paint{{232, 232, 228}, Finish::Rubber};
  // The upper: heel counter, collar, tongue, lace line, toe box.
  L.fill_poly(poly({{0.02, 0.14}, {0.0, 0.5}, {0.03, 0.84}, {0.1, 0.93}, {0.2, 0.9}, {0.3, 0.76}, {0.36, 0.9},
                    {0.42, 0.86}, {0.62, 0.58}, {0.78, 0.44}, {0.9, 0.38}, {0.97, 0.3}, {0.99, 0.16}}),
              S.at(body, {0.1 * dir, 0.3, 1}));
  // Lower, shadowed band of the upper.
  L.fill_poly(poly({{0.02, 0.14}, {0.01, 0.3}, {0.5, 0.32}, {0.97, 0.28}, {0.99, 0.14}}), S.at(body, {0.0, -0.2, 1}));
  // Toe cap and heel tab in a darker shade.
  Paint darker = body;
  darker.bgr *= 0.85;
  L.fill_poly(poly({{0.8, 0.43}, {0.9, 0.38}, {0.97, 0.3}, {0.99, 0.17}, {0.84, 0.18}}), S.at(darker, {0.5 * dir, 0.3, 0.8}));
  L.fill_poly(poly({{0.0, 0.5}, {0.03, 0.84}, {0.1, 0.93}, {0.12, 0.6}, {0.06, 0.45}}), S.at(darker, {-0.4 * dir, 0.2, 0.9}));
  // The collar opening.
  L.fill_poly(poly({{0.11, 0.9}, {0.2, 0.87}, {0.29, 0.77}, {0.22, 0.77}, {0.13, 0.83}}), cv::Vec4b(35, 35, 38, 255));
  // The sole with a midsole line.
  L.fill_poly(poly({{0.03, 0.0}, {0.94, 0.0}, {1.01, 0.05}, {1.0, 0.14}, {0.02, 0.15}, {-0.01, 0.07}}), S.at(sole, {0, 0.1, 1}));
  L.line(P(0.0, 0.06), P(1.0, 0.06), S.at(Paint{sole.bgr * 0.7, Finish::Rubber}, {0, -0.3, 1}), std::max(1, cvRound(H * 0.025)));
  // Laces across the lace line.
  const cv::Vec4b lace = S.at(kWhitePlastic, {0, 0.5, 1});
  const int t = std::max(2, cvRound(H * 0.035));
  for (int i = 0; i < 5; ++i) {
    const double f = 0.12 + 0.18 * i;
    const double x = 0.41 + (0.63 - 0.41) * f, y = 0.85 + (0.56 - 0.85) * f;
    L.line(P(x - 0.035, y - 0.08), P(x + 0.035, y + 0.05), lace, t);
  }
  finish_texture(L, body, false, rng);
  return len;
}

}  // namespace

double draw_object(Layer& layer, Shader& shader, const std::string& object, const Paint& body, const Placement& at,
                   cv::RNG& rng) {
  if (body.finish == Finish::Glass)
    layer.glass_tint = cv::Scalar(0.45 + 0.55 * body.bgr[0] / 255, 0.45 + 0.55 * body.bgr[1] / 255,
                                  0.45 + 0.55 * body.bgr[2] / 255);
  if (object == "bottle") return bottle(layer, shader, body, at, rng);
  if (object == "jar") return jar(layer, shader, body, at, rng);
  if (object == "can") return can(layer, shader, body, at, rng);
  if (object == "mug") return mug(layer, shader, body, at, rng);
  if (object == "cup") return cup(layer, shader, body, at, rng);
  if (object == "vase") return vase(layer, shader, body, at, rng);
  if (object == "lamp") return lamp(layer, shader, body, at, rng);
  if (object == "ball") return ball(layer, shader, body, at, rng);
  if (object == "box") return box(layer, shader, body, at, rng);
  return sneaker(layer, shader, body, at, rng);
}

double draw_product(Layer& L, Shader& S, const Placement& at, cv::Vec3d teal, cv::RNG& rng) {
  const double e = at.elevation, ce = std::sqrt(1 - e * e);
  const double R = at.height * 0.4, hb = at.height * 0.74;
  const double phi = radians(at.yaw);
  const Paint tin{teal, Finish::Metal};
  // Corner k of the hexagon (0..5) at height Y, relative to the base centre.
  auto corner = [&](int k, double Y) {
    const double a = phi + radians(60.0 * k) + radians(30);
    const double X = R * std::cos(a), Z = R * std::sin(a);
    return cv::Point2d(at.base.x + X, at.base.y - R * e - Y * ce + Z * e);
  };
  auto pt = [](cv::Point2d p) { return cv::Point(cvRound(p.x), cvRound(p.y)); };
  // Faces toward the viewer have outward normals with a negative Z (toward the camera).
  int front = -1;
  double best = 1;
  for (int k = 0; k < 6; ++k) {
    const double a = phi + radians(60.0 * k + 60);  // normal of face k (between corners k and k+1)
    const cv::Vec3d n(std::cos(a), 0, std::sin(a));
    if (n[2] >= 0) continue;
    L.fill_poly({pt(corner(k, 0)), pt(corner((k + 1) % 6, 0)), pt(corner((k + 1) % 6, hb)), pt(corner(k, hb))},
                S.at(tin, {n[0], n[2] * e, -n[2] * ce}));
    if (n[2] < best) best = n[2], front = k;
  }
  std::vector<cv::Point> top;
  for (int k = 0; k < 6; ++k) top.push_back(pt(corner(k, hb)));
  L.fill_poly(top, S.at(tin, {0, ce, e}));
  // The yellow star label on the face most toward the camera, foreshortened with it.
  if (front >= 0) {
    const cv::Point2d a = corner(front, 0), b = corner((front + 1) % 6, 0);
    const cv::Point2d along = (b - a), up(0, -hb * ce);
    const cv::Point2d centre = a + along * 0.5 + up * 0.5;
    std::vector<cv::Point> star;
    for (int i = 0; i < 10; ++i) {
      const double ang = radians(-90 + 36.0 * i), rad = (i % 2 ? 0.2 : 0.46);
      const double u = rad * std::cos(ang), v = rad * std::sin(ang) * 0.9;
      star.push_back(pt(centre + along * (u * 0.85) + cv::Point2d(0, v * hb * ce * 0.62)));
    }
    const cv::Vec4b yellow = S.at(Paint{{40, 210, 245}, Finish::Plastic}, {0, 0, 1});
    L.fill_poly(star, yellow);
  }
  // The cork lid standing on the top face's centre.
  Placement lid = at;
  lid.base = {at.base.x, at.base.y - R * e - hb * ce};
  lid.height = at.height * 0.22;
  Lathe cork{{{0, 0.26 * at.height / lid.height * 0.9, 0}, {1, 0.24 * at.height / lid.height * 0.9, 0}}, {Paint{kCork}}, false, false};
  Layer lid_layer(L.bgr.cols);
  draw_lathe(lid_layer, S, cork, lid.base, lid.height, e);
  const cv::Rect box = lid_layer.bounds();
  if (!box.empty()) {
    lid_layer.texture(box, texture_crop(Texture::Fibre, box.size(), rng));
    lid_layer.bgr(box).copyTo(L.bgr(box), lid_layer.mask(box));
    lid_layer.alpha(box).copyTo(L.alpha(box), lid_layer.mask(box));
    L.mask(box).setTo(255, lid_layer.mask(box));
  }
  return 2 * R;
}

}  // namespace kiln::studio::mini::detail
