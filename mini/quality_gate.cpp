// kiln-mini-gate: Kiln Mini's quality gate (issue 23). For held-out captions it generates one
// picture each with the model and reads back the object class, the object's colour and the
// surface with a classifier trained on the scene generator's own labels (scene_classifier.h);
// the agreement with the caption, against chance, is the gate's number. The same classifier's
// accuracy on held-out *drawn* scenes (through the model's VAE) is reported beside it: the ceiling
// of what it can read at 64 px.
//
//   kiln-mini-gate --model mini/kiln-mini.safetensors --out gate/
//
// Writes OUT/report.json, OUT/grid.png (pictures with caption and what was read; red text: a
// miss, green: both right) and OUT/classifier.safetensors (reused by later runs unless --retrain-classifier).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "contact_sheet.h"
#include "engine/device.h"
#include "engine/generate.h"
#include "engine/model_cache.h"
#include "engine/models/stable_diffusion.h"
#include "scene_batch.h"
#include "scene_classifier.h"
#include "studio/image.h"
#include "studio/mini/scene_spec.h"

namespace fs = std::filesystem;
namespace sm = kiln::studio::mini;
using namespace kiln::mini;
using nlohmann::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Drawn scenes through the model's VAE and back (the posterior mean), as uint8 [N, 3, H, W] RGB.
torch::Tensor vae_round_trip(const kiln::engine::models::StableDiffusion& sd, const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < images.size(0); i += 64) {
    const auto x = images.narrow(0, i, std::min<int64_t>(64, images.size(0) - i));
    const auto y = sd.vae->decode(sd.vae->encode(x).mean);
    out.push_back(y.clamp(-1, 1).add(1).mul(127.5).round().to(torch::kUInt8));
  }
  return torch::cat(out);
}

torch::Tensor drawn_as_uint8(const torch::Tensor& images) {
  return images.add(1).mul(127.5).round().clamp(0, 255).to(torch::kUInt8);
}

struct Accuracy {
  double object = 0, colour = 0, surface = 0, object_and_colour = 0;
  json to_json() const {
    return {{"object", object}, {"colour", colour}, {"surface", surface}, {"object_and_colour", object_and_colour}};
  }
};

Accuracy accuracy(const SceneGuess& g, const SceneLabels& l) {
  const auto o = g.object.eq(l.object), c = g.colour.eq(l.colour);
  Accuracy a;
  a.object = o.to(torch::kFloat64).mean().item<double>();
  a.colour = c.to(torch::kFloat64).mean().item<double>();
  a.surface = g.surface.eq(l.surface).to(torch::kFloat64).mean().item<double>();
  a.object_and_colour = o.logical_and(c).to(torch::kFloat64).mean().item<double>();
  return a;
}

// Chance: always answering the most frequent label of the captions asked for.
double majority_share(const torch::Tensor& labels) {
  const auto counts = torch::bincount(labels);
  return counts.max().item<double>() / static_cast<double>(labels.size(0));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln-mini-gate — does Kiln Mini draw the colour, object and surface its caption asks for?"};
  fs::path model_path, out = "mini-gate";
  int64_t captions = 200, classifier_scenes = 6000, columns = 10, shown = 40;
  ClassifierTraining training;
  int steps = 20, threads = 2;
  double cfg = 5;
  std::string sampler = "Euler";
  bool retrain = false;
  app.add_option("--model", model_path, "Kiln Mini (or another SD1.x model trained on the scenes)")->required()->check(CLI::ExistingFile);
  app.add_option("--out", out, "folder for report.json, grid.png and the classifier")->capture_default_str();
  app.add_option("--captions", captions, "held-out captions, one picture each")->check(CLI::Range(10, 100000))->capture_default_str();
  app.add_option("--steps", steps, "sampling steps")->check(CLI::Range(1, 150))->capture_default_str();
  app.add_option("--cfg", cfg, "CFG scale")->capture_default_str();
  app.add_option("--sampler", sampler)->capture_default_str();
  app.add_option("--classifier-scenes", classifier_scenes, "drawn scenes the classifier learns from")
      ->check(CLI::Range(100, 1000000))
      ->capture_default_str();
  app.add_option("--classifier-steps", training.steps)->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_flag("--retrain-classifier", retrain, "train the classifier again even if OUT has one");
  app.add_option("--shown", shown, "pictures on the grid")->check(CLI::Range(0, 1000))->capture_default_str();
  app.add_option("--columns", columns, "grid columns")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--threads", threads, "CPU threads")->check(CLI::Range(1, 256))->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    torch::set_num_threads(threads);
    fs::create_directories(out);
    const auto device = kiln::engine::choose_device("cpu", "fp32");
    auto loaded = std::make_shared<kiln::engine::LoadedModel>(kiln::engine::models::StableDiffusion::open(model_path, device));
    const auto& sd = loaded->model;
    const int size = 64;

    // 1. The judge: trained once per output folder on drawn scenes seen through this model's VAE.
    SceneClassifier classifier;
    const fs::path classifier_path = out / "classifier.safetensors";
    json classifier_report;
    if (fs::exists(classifier_path) && !retrain) {
      load_scene_classifier(classifier, classifier_path);
      std::cout << "classifier: " << classifier_path.string() << "\n";
    } else {
      auto t = std::chrono::steady_clock::now();
      std::cout << "classifier: drawing " << classifier_scenes << " scenes and passing them through the VAE…" << std::endl;
      const auto scenes = make_scene_batch(kClassifierSeedBase, classifier_scenes, size);
      const auto pictures = vae_round_trip(sd, scenes.images);
      std::cout << "  " << seconds_since(t) << " s; training " << training.steps << " steps" << std::endl;
      t = std::chrono::steady_clock::now();
      training.on_progress = [&](int64_t step, double loss) {
        if (step % 250 == 0) std::cout << "  step " << step << "/" << training.steps << " loss " << loss << std::endl;
      };
      train_scene_classifier(classifier, pictures, labels_of(scenes.specs), training);
      save_scene_classifier(classifier, classifier_path);
      classifier_report = {{"scenes", classifier_scenes}, {"steps", training.steps}, {"train_seconds", seconds_since(t)}};
    }

    // 2. The held-out captions: scenes from a seed range no training stream reaches.
    const auto held_out = make_scene_batch(kGateSeedBase, captions, size);
    const auto labels = labels_of(held_out.specs);
    const auto ceiling_drawn = accuracy(classify(classifier, drawn_as_uint8(held_out.images)), labels);
    const auto ceiling_vae = accuracy(classify(classifier, vae_round_trip(sd, held_out.images)), labels);

    // 3. Kiln Mini draws each caption once (seed = its index), as `kiln generate` would.
    std::vector<torch::Tensor> generated;
    const auto t = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < captions; ++i) {
      kiln::engine::GenerateRequest request;
      request.prompt = held_out.captions[static_cast<size_t>(i)];
      request.params.width = request.params.height = size;
      request.params.steps = steps;
      request.params.cfg_scale = cfg;
      request.params.sampler = sampler;
      request.params.seed = i;
      request.params.preview_every = 0;
      const auto r = kiln::engine::generate_images(*loaded, request);
      generated.push_back(r.result.images.at(0).permute({2, 0, 1}));
      if ((i + 1) % 25 == 0 || i + 1 == captions)
        std::cout << "generated " << (i + 1) << "/" << captions << " (" << seconds_since(t) / static_cast<double>(i + 1)
                  << " s each)" << std::endl;
    }
    const auto pictures = torch::stack(generated);
    const auto guess = classify(classifier, pictures);
    const auto model_acc = accuracy(guess, labels);

    // 4. Per object class and per colour, for the README's table.
    json per_object = json::object(), per_colour = json::object();
    const auto& objects = sm::object_classes();
    const auto& colours = sm::colour_names();
    for (size_t k = 0; k < objects.size(); ++k) {
      const auto sel = labels.object.eq(static_cast<int64_t>(k));
      const auto n = sel.sum().item<int64_t>();
      if (n == 0) continue;
      per_object[objects[k]] = {{"captions", n},
                                {"object", guess.object.eq(labels.object).logical_and(sel).sum().item<double>() / n},
                                {"colour", guess.colour.eq(labels.colour).logical_and(sel).sum().item<double>() / n}};
    }
    for (size_t k = 0; k < colours.size(); ++k) {
      const auto sel = labels.colour.eq(static_cast<int64_t>(k));
      const auto n = sel.sum().item<int64_t>();
      if (n == 0) continue;
      per_colour[colours[k]] = {{"captions", n}, {"colour", guess.colour.eq(labels.colour).logical_and(sel).sum().item<double>() / n}};
    }
    const json chance = {{"object", majority_share(labels.object)},
                         {"colour", majority_share(labels.colour)},
                         {"surface", majority_share(labels.surface)},
                         {"uniform_object", 1.0 / static_cast<double>(objects.size())},
                         {"uniform_colour", 1.0 / static_cast<double>(colours.size())},
                         {"uniform_surface", 1.0 / static_cast<double>(sm::surface_names().size())}};
    json report = {{"model", model_path.string()},
                   {"captions", captions},
                   {"sampling", {{"sampler", sampler}, {"steps", steps}, {"cfg", cfg}, {"size", size}}},
                   {"kiln_mini", model_acc.to_json()},
                   {"chance", chance},
                   {"classifier_on_drawn_scenes", ceiling_drawn.to_json()},
                   {"classifier_on_drawn_scenes_through_vae", ceiling_vae.to_json()},
                   {"per_object", per_object},
                   {"per_colour", per_colour},
                   {"seconds_per_picture", seconds_since(t) / static_cast<double>(captions)}};
    if (!classifier_report.empty()) report["classifier_training"] = classifier_report;
    std::ofstream(out / "report.json") << report.dump(2) << "\n";

    // 5. The grid: what was asked, and what the judge read (red: the object or colour missed).
    std::vector<SheetCell> cells;
    for (int64_t i = 0; i < std::min(shown, captions); ++i) {
      const auto o = guess.object[i].item<int64_t>(), c = guess.colour[i].item<int64_t>();
      const bool hit = o == labels.object[i].item<int64_t>() && c == labels.colour[i].item<int64_t>();
      SheetCell cell;
      cell.image = hwc_to_bgr(pictures[i].permute({1, 2, 0}));
      cell.text = held_out.captions[static_cast<size_t>(i)];
      cell.footer = "read: " + colours[static_cast<size_t>(c)] + " " + objects[static_cast<size_t>(o)];
      cell.footer_colour = hit ? cv::Scalar(30, 120, 30) : cv::Scalar(30, 30, 200);
      cells.push_back(cell);
    }
    if (!cells.empty()) kiln::studio::write_png(out / "grid.png", contact_sheet(cells, static_cast<int>(columns), 128));

    std::cout << "\n" << captions << " held-out captions, " << sampler << " " << steps << " steps, CFG " << cfg << "\n";
    std::printf("              object  colour  surface  object+colour\n");
    std::printf("Kiln Mini     %5.1f%%  %5.1f%%  %6.1f%%  %6.1f%%\n", 100 * model_acc.object, 100 * model_acc.colour,
                100 * model_acc.surface, 100 * model_acc.object_and_colour);
    std::printf("chance        %5.1f%%  %5.1f%%  %6.1f%%\n", 100 * majority_share(labels.object),
                100 * majority_share(labels.colour), 100 * majority_share(labels.surface));
    std::printf("drawn scenes  %5.1f%%  %5.1f%%  %6.1f%%  %6.1f%%  (the classifier's ceiling; through the VAE: %.1f%% %.1f%% %.1f%%)\n",
                100 * ceiling_drawn.object, 100 * ceiling_drawn.colour, 100 * ceiling_drawn.surface,
                100 * ceiling_drawn.object_and_colour, 100 * ceiling_vae.object, 100 * ceiling_vae.colour,
                100 * ceiling_vae.surface);
    std::cout << "report: " << (out / "report.json").string() << ", grid: " << (out / "grid.png").string() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "kiln-mini-gate: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
