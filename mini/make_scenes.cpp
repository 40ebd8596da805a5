// kiln_mini_scenes: writes Kiln Mini's generated scenes (issue 23) as PNGs with a captions.txt, and
// a contact sheet with each caption under its picture, for people to look at; --bench measures
// how many scenes one core draws per second.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>

#include "studio/image.h"
#include "studio/mini/scene_generator.h"

namespace mini = kiln::studio::mini;

namespace {

// Words wrapped to lines no wider than `width` px in the given Hershey font.
std::vector<std::string> wrap(const std::string& text, int width, double scale) {
  std::vector<std::string> lines;
  std::istringstream words(text);
  std::string word, line;
  int base = 0;
  while (words >> word) {
    const std::string candidate = line.empty() ? word : line + " " + word;
    if (!line.empty() && cv::getTextSize(candidate, cv::FONT_HERSHEY_PLAIN, scale, 1, &base).width > width) {
      lines.push_back(line);
      line = word;
    } else {
      line = candidate;
    }
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

cv::Mat contact_sheet(const std::vector<mini::Scene>& scenes, int columns, int cell) {
  const double scale = cell >= 192 ? 0.9 : 0.7;
  const int line_h = static_cast<int>(14 * scale) + 2, text_h = 3 * line_h + 4, pad = 6;
  const int rows = (static_cast<int>(scenes.size()) + columns - 1) / columns;
  cv::Mat sheet(rows * (cell + text_h + pad) + pad, columns * (cell + pad) + pad, CV_8UC3, cv::Scalar(250, 250, 250));
  for (size_t i = 0; i < scenes.size(); ++i) {
    const int x = pad + static_cast<int>(i % columns) * (cell + pad);
    const int y = pad + static_cast<int>(i / columns) * (cell + text_h + pad);
    cv::Mat img;
    cv::resize(scenes[i].image, img, cv::Size(cell, cell), 0, 0, cell >= scenes[i].image.cols ? cv::INTER_NEAREST : cv::INTER_AREA);
    img.copyTo(sheet(cv::Rect(x, y, cell, cell)));
    const auto lines = wrap(scenes[i].caption, cell, scale);
    for (size_t l = 0; l < lines.size() && l < 3; ++l)
      cv::putText(sheet, lines[l], cv::Point(x, y + cell + line_h * static_cast<int>(l + 1)), cv::FONT_HERSHEY_PLAIN, scale,
                  cv::Scalar(40, 40, 40), 1, cv::LINE_AA);
  }
  return sheet;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln_mini_scenes — Kiln Mini's generated scenes as PNGs, captions.txt and a contact sheet"};
  int count = 64, size = 64, columns = 8, cell = 0, bench = 0;
  uint64_t seed = 1;
  bool product = false;
  std::string out = "mini-scenes", sheet_path;
  app.add_option("-n,--count", count, "how many scenes")->check(CLI::Range(1, 1000000));
  app.add_option("-s,--size", size, "picture side in px")->check(CLI::Range(8, 1024));
  app.add_option("--seed", seed, "first seed (scene i uses seed + i)");
  app.add_option("-o,--out", out, "folder for the PNGs and captions.txt (empty: write none)");
  app.add_option("--sheet", sheet_path, "contact sheet PNG (default: <out>/contact-sheet.png)");
  app.add_option("--columns", columns, "contact sheet columns")->check(CLI::Range(1, 64));
  app.add_option("--cell", cell, "contact sheet cell side in px (default: 2 × size, at most 256)");
  app.add_flag("--product", product, "let random specs include Kiln's sample product (1 in 12)");
  app.add_option("--bench", bench, "only time this many scenes on one core and print scenes/s")->check(CLI::Range(1, 10000000));
  CLI11_PARSE(app, argc, argv);

  mini::GeneratorOptions options;
  options.size = size;
  options.allow_product = product;
  try {
    if (bench > 0) {
      cv::setNumThreads(1);
      (void)mini::render_scene(mini::random_spec(0, options), 0, options);  // texture bank, first-use costs
      const auto t0 = std::chrono::steady_clock::now();
      size_t checksum = 0;
      for (int i = 0; i < bench; ++i) {
        const uint64_t s = seed + static_cast<uint64_t>(i);
        checksum += mini::render_scene(mini::random_spec(s, options), s, options).image.at<cv::Vec3b>(size / 2, size / 2)[0];
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::cout << bench << " scenes at " << size << " px in " << secs << " s on one thread: " << bench / secs
                << " scenes/s (checksum " << checksum << ")\n";
      return 0;
    }
    std::vector<mini::Scene> scenes;
    std::ofstream captions;
    if (!out.empty()) {
      std::filesystem::create_directories(out);
      captions.open(std::filesystem::path(out) / "captions.txt");
    }
    for (int i = 0; i < count; ++i) {
      const uint64_t s = seed + static_cast<uint64_t>(i);
      mini::Scene scene = mini::render_scene(mini::random_spec(s, options), s, options);
      if (!out.empty()) {
        char name[32];
        std::snprintf(name, sizeof name, "%06d.png", i);
        kiln::studio::write_png(std::filesystem::path(out) / name, scene.image);
        captions << name << "\t" << scene.caption << "\n";
      }
      if (static_cast<int>(scenes.size()) < columns * 16) scenes.push_back(std::move(scene));
    }
    if (sheet_path.empty() && !out.empty()) sheet_path = (std::filesystem::path(out) / "contact-sheet.png").string();
    if (!sheet_path.empty()) {
      const int side = cell > 0 ? cell : std::min(256, 2 * size);
      kiln::studio::write_png(sheet_path, contact_sheet(scenes, columns, side));
      std::cout << "contact sheet: " << sheet_path << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "kiln_mini_scenes: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
