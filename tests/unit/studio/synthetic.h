#pragma once
// Generated test pictures (no downloads): scenes with shapes, strokes and texture, product
// layers with alpha, and a drawn face that OpenCV's Haar face detector finds.
#include <algorithm>

#include <opencv2/imgproc.hpp>

namespace kiln::studio::test {

// A sharp scene: a soft background, filled shapes, thin strokes, text and fine texture.
inline cv::Mat scene(int w, int h, uint64_t seed = 1) {
  cv::RNG rng(seed);
  cv::Mat img(h, w, CV_8UC3);
  cv::Mat grad(1, 256, CV_8UC1);
  for (int i = 0; i < 256; ++i) grad.at<uchar>(0, i) = static_cast<uchar>(i);
  cv::resize(grad, grad, cv::Size(w, h), 0, 0, cv::INTER_LINEAR);
  cv::merge(std::vector<cv::Mat>{grad * 0.3 + 120, grad * 0.2 + 140, 200 - grad * 0.3}, img);
  cv::Mat noise(h, w, CV_8UC3);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 24);
  img += noise;
  const int n = 12;
  for (int i = 0; i < n; ++i) {
    const cv::Scalar colour(rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255));
    const cv::Point p(rng.uniform(0, w), rng.uniform(0, h));
    const int r = rng.uniform(std::min(w, h) / 20, std::min(w, h) / 6);
    if (i % 3 == 0) cv::circle(img, p, r, colour, cv::FILLED, cv::LINE_AA);
    if (i % 3 == 1) cv::rectangle(img, p, p + cv::Point(r, r * 2 / 3), colour, cv::FILLED);
    if (i % 3 == 2) cv::line(img, p, cv::Point(rng.uniform(0, w), rng.uniform(0, h)), colour, 2, cv::LINE_AA);
  }
  cv::putText(img, "KILN 2025", cv::Point(w / 10, h * 3 / 4), cv::FONT_HERSHEY_DUPLEX, std::min(w, h) / 300.0,
              cv::Scalar(20, 20, 20), 2, cv::LINE_AA);
  return img;
}

inline cv::Mat blurred(const cv::Mat& img, double sigma) {
  cv::Mat out;
  cv::GaussianBlur(img, out, cv::Size(0, 0), sigma);
  return out;
}

// A transparent layer (BGRA) with an opaque "product" (a bottle-like shape with a label) at `box`.
inline cv::Mat product_layer(int w, int h, cv::Rect box) {
  cv::Mat img(h, w, CV_8UC4, cv::Scalar(0, 0, 0, 0));
  cv::rectangle(img, cv::Rect(box.x, box.y + box.height / 4, box.width, box.height * 3 / 4), cv::Scalar(40, 90, 200, 255),
                cv::FILLED);
  cv::rectangle(img, cv::Rect(box.x + box.width / 3, box.y, box.width / 3, box.height / 4), cv::Scalar(30, 30, 30, 255),
                cv::FILLED);
  cv::rectangle(img, cv::Rect(box.x + box.width / 8, box.y + box.height / 2, box.width * 3 / 4, box.height / 5),
                cv::Scalar(240, 240, 240, 255), cv::FILLED);
  cv::putText(img, "ACME", cv::Point(box.x + box.width / 6, box.y + box.height / 2 + box.height / 7),
              cv::FONT_HERSHEY_SIMPLEX, box.width / 150.0, cv::Scalar(10, 10, 10, 255), 2, cv::LINE_AA);
  return img;
}

// The same product photographed on a plain light backdrop (no alpha), with a little noise.
inline cv::Mat product_photo(int w, int h, cv::Rect box, cv::Scalar backdrop = cv::Scalar(235, 238, 240)) {
  const cv::Mat layer = product_layer(w, h, box);
  cv::Mat bgr(h, w, CV_8UC3, backdrop);
  cv::Mat alpha;
  cv::extractChannel(layer, alpha, 3);
  cv::Mat colour;
  cv::cvtColor(layer, colour, cv::COLOR_BGRA2BGR);
  colour.copyTo(bgr, alpha);
  cv::Mat noise(h, w, CV_8UC3);
  cv::randn(noise, cv::Scalar::all(0), cv::Scalar::all(2));
  cv::Mat out;
  cv::add(bgr, noise, out, cv::noArray(), CV_8UC3);
  return out;
}

// A drawn frontal face (hair, skin, brows, eyes, nose, mouth, neck) of width ~fw around `centre`.
// OpenCV's haarcascade_frontalface_default.xml finds it (checked in face_detector_test).
inline cv::Mat face_picture(int w, int h, cv::Point centre, int fw) {
  cv::Mat img(h, w, CV_8UC3, cv::Scalar(90, 110, 130));
  const double s = fw / 100.0;
  const auto P = [&](double x, double y) { return cv::Point(centre.x + int(x * s), centre.y + int(y * s)); };
  const auto S = [&](double a, double b) { return cv::Size(int(a * s), int(b * s)); };
  cv::ellipse(img, P(0, -20), S(62, 70), 0, 0, 360, cv::Scalar(40, 40, 50), cv::FILLED);
  cv::ellipse(img, P(0, 5), S(50, 66), 0, 0, 360, cv::Scalar(150, 180, 220), cv::FILLED);
  cv::rectangle(img, P(-20, 60), P(20, 110), cv::Scalar(140, 170, 210), cv::FILLED);
  for (int side : {-1, 1}) {
    cv::ellipse(img, P(side * 20, -18), S(13, 4), 0, 0, 360, cv::Scalar(50, 50, 60), cv::FILLED);
    cv::ellipse(img, P(side * 20, -5), S(11, 6), 0, 0, 360, cv::Scalar(240, 240, 240), cv::FILLED);
    cv::circle(img, P(side * 20, -5), int(5 * s), cv::Scalar(30, 20, 20), cv::FILLED);
  }
  cv::line(img, P(0, -2), P(-4, 22), cv::Scalar(110, 140, 180), std::max(1, int(2 * s)));
  cv::ellipse(img, P(0, 24), S(8, 4), 0, 0, 360, cv::Scalar(120, 150, 190), cv::FILLED);
  cv::ellipse(img, P(0, 40), S(18, 6), 0, 0, 360, cv::Scalar(70, 70, 150), cv::FILLED);
  cv::GaussianBlur(img, img, cv::Size(0, 0), 1.5 * s);
  return img;
}

inline double iou(const cv::Rect& a, const cv::Rect& b) {
  const double inter = (a & b).area();
  return inter / (a.area() + b.area() - inter);
}

}  // namespace kiln::studio::test
