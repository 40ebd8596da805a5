// kiln_mini_scenes: writes Kiln Mini's generated scenes (issue 23) as PNGs with a captions.txt, and
// a contact sheet with each caption under its picture, for people to look at; --bench measures
// how many scenes one core draws per second.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>

#include "contact_sheet.h"
#include "studio/image.h"
#include "studio/mini/scene_generator.h"

namespace mini = kiln::studio::mini;

int main(int argc, char** argv) {
  CLI::App app{"kiln_mini_scenes — Kiln Mini's generated scenes as PNGs, captions.txt and a contact sheet"};
  int count = 64, size = 64, columns = 8, cell = 0, bench = 0;
  uint64_t seed = 1;
  bool product = false, product_layers = false;
  std::string layer_caption = mini::product_trigger() + " can";  // trigger + the nearest class word
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
  app.add_flag("--product-layers", product_layers,
               "write the product alone on transparency instead (RGBA layer_NN.png with a caption .txt each, "
               "as Kiln's sample data; seeds seed … seed + count - 1)");
  app.add_option("--layer-caption", layer_caption, "the caption written beside each product layer")->capture_default_str();
  bool product_photos = false;
  std::vector<std::string> photo_surfaces = mini::sample_photo_surfaces();
  app.add_flag("--product-photos", product_photos,
               "write photos of the product on --surfaces instead (RGB photo_NN.png with its caption .txt, "
               "as a user's product shots; seeds seed … seed + count - 1)");
  app.add_option("--surfaces", photo_surfaces, "the surfaces the product photos use")->capture_default_str();
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
    if (product_layers) {
      std::filesystem::create_directories(out);
      for (int i = 0; i < count; ++i) {
        char stem[32];
        std::snprintf(stem, sizeof stem, "layer_%02d", i + 1);
        const auto layer = mini::render_product_layer(seed + static_cast<uint64_t>(i), size);
        kiln::studio::write_png(std::filesystem::path(out) / (std::string(stem) + ".png"), layer.image);
        std::ofstream(std::filesystem::path(out) / (std::string(stem) + ".txt")) << layer_caption << "\n";
      }
      std::cout << count << " product layers (" << size << " px, RGBA) in " << out << "\n";
      return 0;
    }
    if (product_photos) {
      std::filesystem::create_directories(out);
      for (int i = 0; i < count; ++i) {
        const uint64_t s = seed + static_cast<uint64_t>(i);
        const auto photo = mini::render_scene(mini::product_photo_spec(s, photo_surfaces), s, options);
        char stem[32];
        std::snprintf(stem, sizeof stem, "photo_%02d", i + 1);
        kiln::studio::write_png(std::filesystem::path(out) / (std::string(stem) + ".png"), photo.image);
        std::ofstream(std::filesystem::path(out) / (std::string(stem) + ".txt")) << photo.caption << "\n";
      }
      std::cout << count << " product photos (" << size << " px) in " << out << "\n";
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
      std::vector<kiln::mini::SheetCell> cells;
      for (const auto& sc : scenes) {
        kiln::mini::SheetCell c;
        c.image = sc.image;
        c.text = sc.caption;
        cells.push_back(c);
      }
      kiln::studio::write_png(sheet_path, kiln::mini::contact_sheet(cells, columns, side));
      std::cout << "contact sheet: " << sheet_path << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "kiln_mini_scenes: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
