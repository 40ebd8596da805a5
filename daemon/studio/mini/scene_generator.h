#pragma once
// Kiln Mini's procedural scenes (issue 23): the pictures Kiln trains its own small base model on.
// One object of a named class, colour and material on a named surface in a named light, drawn
// with OpenCV at `supersample` × the size and averaged down (INTER_AREA), with its object mask and
// a caption. The same (spec, seed, options) always gives byte-identical pictures.
//
//   auto spec = random_spec(seed);
//   Scene s = render_scene(spec, seed);            // s.image 64×64 BGR, s.caption
//
// Labels, palette, specs and captions: scene_spec.h. Drawing kit: scene_draw.h, scene_objects.h.
#include <cstdint>
#include <string>

#include <opencv2/core.hpp>

#include "studio/mini/scene_spec.h"

namespace kiln::studio::mini {

struct Scene {
  cv::Mat image;        // CV_8UC3 BGR, size × size (render_product_layer: CV_8UC4 BGRA)
  cv::Mat object_mask;  // CV_8UC1, 255 where the object is (at least half covered)
  std::string caption;  // caption_for(spec, seed)
  SceneSpec spec;
};

// `seed` jitters the placement, the colour within its palette entry, the backdrop and textures.
// Throws studio::Error(InvalidArgument) for names outside the label lists or a size < 8.
Scene render_scene(const SceneSpec& spec, uint64_t seed, const GeneratorOptions& options = {});

// The product alone on a transparent background, turned and tinted a little per seed, as a
// layer exported from Krita: BGRA (OpenCV's order), straight (not premultiplied) alpha.
Scene render_product_layer(uint64_t seed, int size);

}  // namespace kiln::studio::mini
