#pragma once
// Kiln Mini's scene descriptions (issue 23): what a generated picture shows, the label lists the
// quality gate indexes, the colour palette, random specs from a seed, and captions in users' style.
// Drawing is in scene_generator.h. Everything is deterministic for a given seed (cv::RNG).
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace kiln::studio::mini {

struct SceneSpec {        // what the caption says; also the labels the quality gate classifies
  std::string object;     // one of object_classes() ("tin" for the product)
  std::string colour;     // one of colour_names() ("teal" for the product)
  std::string material;   // one of material_names(), allowed for the object (materials_for)
  std::string surface;    // one of surface_names()
  std::string light;      // one of light_names()
  bool product = false;   // Kiln's sample product (product_spec) instead of `object`
  // Placement and camera; render_scene jitters these a little with its seed.
  double x = 0.5;          // object centre, share of the picture's width
  double height = 0.45;    // object height, share of the picture's height (0.3 … 0.6)
  double yaw = 30;         // degrees: box and product turn, sneaker and mug-handle direction (sign)
  double elevation = 0.25; // how far the camera looks down: a horizontal circle's height / width
  double horizon = 0.45;   // where the surface meets the background, share of the height from the top
  double light_side = -1;  // -1: key light from the left … +1: from the right
  int variant = 0;         // shape variant within the class (proportions), 0 … 3
};

struct GeneratorOptions {
  int size = 64;               // output side in pixels (drawn at supersample × size, then averaged down)
  bool allow_product = false;  // random_spec may return the product (1 in 12)
  int supersample = 4;         // drawing scale; 4 gives clean anti-aliased edges at 64 px
};

// Label lists in a fixed order (the quality gate indexes them; append only).
const std::vector<std::string>& object_classes();
const std::vector<std::string>& colour_names();
const std::vector<std::string>& material_names();
const std::vector<std::string>& surface_names();
const std::vector<std::string>& light_names();
// The materials an object class is drawn in (a glass bottle, a paper cup, no glass sneaker).
const std::vector<std::string>& materials_for(const std::string& object);

// The palette colour of a name (BGR); throws studio::Error(InvalidArgument) for an unknown name.
cv::Vec3b palette_bgr(const std::string& colour);
// The palette name nearest to a mean BGR colour, e.g. the mean of a scene's object_mask region: the
// smallest CIE76 (Lab) distance to either the paint or the mean such objects have once rendered
// (shaded, lit, tinted; measured, see scene_spec.cpp). The quality gate classifies with it too.
std::string nearest_colour_name(const cv::Scalar& mean_bgr);
inline std::string nearest_colour_name(const cv::Vec3b& bgr) {
  return nearest_colour_name(cv::Scalar(bgr[0], bgr[1], bgr[2]));
}

// The product's caption word ("kilntin"): a rare token the base model learns only from the
// product pictures; random_spec never produces the product unless allow_product.
const std::string& product_trigger();

SceneSpec random_spec(uint64_t seed, const GeneratorOptions& options = {});
// The product on `surface` in `light` (names from the lists above), placement at its defaults.
SceneSpec product_spec(const std::string& surface, const std::string& light);
// The product photographed as users photograph a product: on one of `surfaces` (names from
// surface_names()) in a random light, placed and framed like every other scene. The sample
// product's photos use a few surfaces and leave the rest as new scenes for the LoRA to reach.
SceneSpec product_photo_spec(uint64_t seed, const std::vector<std::string>& surfaces);
// The surfaces of the shipped sample photos (installers/sample-data/product): tables, a concrete
// floor, a studio sweep. Grass, sand and the beach are left for the main job's grid to ask for.
const std::vector<std::string>& sample_photo_surfaces();

// A caption in one of several user styles, chosen by seed; always names the colour, the object
// (or the product trigger) and the surface: "a red glass bottle on a wooden table, studio light",
// "red bottle, glass, wooden table", "photo of a blue ceramic mug on sand, sunlight", …
std::string caption_for(const SceneSpec& spec, uint64_t seed);

// SplitMix64: independent seeds for the separate random streams of one scene.
uint64_t mix_seed(uint64_t seed, uint64_t stream);

}  // namespace kiln::studio::mini
