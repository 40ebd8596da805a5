#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include <opencv2/imgproc.hpp>

#include "studio/error.h"
#include "studio/mini/scene_generator.h"

namespace kiln::studio::mini {
namespace {

bool contains(const std::string& text, const std::string& word) { return text.find(word) != std::string::npos; }

bool same(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

TEST(MiniScenes, SameSpecAndSeedGiveIdenticalPictures) {
  for (uint64_t seed : {0ull, 7ull, 123456789ull}) {
    const SceneSpec spec = random_spec(seed);
    const Scene a = render_scene(spec, seed), b = render_scene(random_spec(seed), seed);
    ASSERT_EQ(a.image.type(), CV_8UC3);
    ASSERT_EQ(a.image.size(), cv::Size(64, 64));
    ASSERT_EQ(a.object_mask.type(), CV_8UC1);
    EXPECT_TRUE(same(a.image, b.image)) << seed;
    EXPECT_TRUE(same(a.object_mask, b.object_mask)) << seed;
    EXPECT_EQ(a.caption, b.caption);
    // Another seed moves things: the picture changes.
    EXPECT_FALSE(same(a.image, render_scene(spec, seed + 1).image)) << seed;
  }
}

TEST(MiniScenes, EveryLabelIsReachableFromRandomSpecs) {
  std::set<std::string> objects, colours, materials, surfaces, lights;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    const SceneSpec s = random_spec(seed);
    objects.insert(s.object), colours.insert(s.colour), materials.insert(s.material);
    surfaces.insert(s.surface), lights.insert(s.light);
    const auto& allowed = materials_for(s.object);
    EXPECT_NE(std::find(allowed.begin(), allowed.end(), s.material), allowed.end()) << s.object << " " << s.material;
  }
  EXPECT_GE(object_classes().size(), 8u);
  EXPECT_GE(colour_names().size(), 8u);
  EXPECT_EQ(objects.size(), object_classes().size());
  EXPECT_EQ(colours.size(), colour_names().size());
  EXPECT_EQ(materials.size(), material_names().size());
  EXPECT_EQ(surfaces.size(), surface_names().size());
  EXPECT_EQ(lights.size(), light_names().size());
}

TEST(MiniScenes, TheProductOnlyComesWhenAllowed) {
  int allowed = 0;
  GeneratorOptions with;
  with.allow_product = true;
  for (uint64_t seed = 0; seed < 3000; ++seed) {
    const SceneSpec s = random_spec(seed);
    EXPECT_FALSE(s.product);
    EXPECT_NE(s.object, "tin");
    EXPECT_FALSE(contains(caption_for(s, seed), product_trigger()));
    allowed += random_spec(seed, with).product ? 1 : 0;
  }
  EXPECT_GT(allowed, 150);  // about 1 in 12
  EXPECT_LT(allowed, 400);
  const SceneSpec p = product_spec("grass", "sunlight");
  EXPECT_TRUE(p.product);
  const Scene scene = render_scene(p, 5);
  EXPECT_TRUE(contains(scene.caption, product_trigger()));
  EXPECT_TRUE(contains(scene.caption, "grass"));
}

TEST(MiniScenes, ProductPhotosKeepToTheirSurfacesAndNameTheTinAndTheScene) {
  // The sample product's photos: only the surfaces asked for (the others stay new scenes for the
  // LoRA), every light, placed like other scenes; the caption has the trigger, "can" and the surface.
  const std::vector<std::string> surfaces{"wooden table", "studio sweep"};
  std::set<std::string> seen_surfaces, seen_lights;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const SceneSpec spec = product_photo_spec(seed, surfaces);
    EXPECT_TRUE(spec.product);
    EXPECT_TRUE(spec.surface == "wooden table" || spec.surface == "studio sweep") << spec.surface;
    EXPECT_GE(spec.x, 0.36);
    EXPECT_LE(spec.x, 0.64);
    seen_surfaces.insert(spec.surface);
    seen_lights.insert(spec.light);
    const std::string caption = caption_for(spec, seed);
    EXPECT_TRUE(contains(caption, product_trigger() + " can")) << caption;
    EXPECT_TRUE(contains(caption, spec.surface)) << caption;
  }
  EXPECT_EQ(seen_surfaces.size(), 2u);
  EXPECT_EQ(seen_lights.size(), light_names().size());
  EXPECT_TRUE(same(render_scene(product_photo_spec(3, surfaces), 3).image,
                   render_scene(product_photo_spec(3, surfaces), 3).image));
  EXPECT_THROW(product_photo_spec(1, {}), Error);
  try {
    product_photo_spec(1, {"the moon"});
    ADD_FAILURE() << "an unknown surface must throw";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "'the moon' is not a Kiln Mini surface; use one of: wooden table")) << e.what();
  }
  // The shipped photos leave the main job's new scenes out.
  for (const char* new_scene : {"grass", "sand", "beach"})
    EXPECT_EQ(std::count(sample_photo_surfaces().begin(), sample_photo_surfaces().end(), new_scene), 0) << new_scene;
}

TEST(MiniScenes, CaptionsNameColourObjectAndSurfaceInSeveralStyles) {
  std::set<std::string> styles;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    const SceneSpec s = random_spec(seed);
    const std::string c = caption_for(s, seed);
    EXPECT_TRUE(contains(c, s.colour)) << c;
    EXPECT_TRUE(contains(c, s.object)) << c;
    EXPECT_TRUE(contains(c, s.surface)) << c;
    EXPECT_TRUE(contains(c, s.material)) << c;
    EXPECT_EQ(c, caption_for(s, seed));
    // The style: the caption with the spec's words blanked out.
    std::string shape = c;
    for (const std::string* w : {&s.colour, &s.object, &s.surface, &s.material, &s.light})
      for (size_t at; (at = shape.find(*w)) != std::string::npos;) shape.replace(at, w->size(), "_");
    styles.insert(shape.substr(0, std::min<size_t>(shape.size(), 12)));
  }
  EXPECT_GE(styles.size(), 5u);
  SceneSpec orange = random_spec(1);
  orange.colour = "orange", orange.object = "cup", orange.material = "paper";
  for (uint64_t seed = 0; seed < 40; ++seed) EXPECT_FALSE(contains(caption_for(orange, seed), "a orange")) << caption_for(orange, seed);
}

TEST(MiniScenes, NearestColourNameFindsEachPaletteColour) {
  for (const auto& name : colour_names()) {
    EXPECT_EQ(nearest_colour_name(palette_bgr(name)), name);
    const cv::Vec3b c = palette_bgr(name);
    // A little darker or lighter is still the same colour.
    EXPECT_EQ(nearest_colour_name(cv::Scalar(c[0] * 0.9, c[1] * 0.9, c[2] * 0.9)), name);
  }
  EXPECT_EQ(nearest_colour_name(cv::Scalar(0, 0, 255)), "red");
  EXPECT_EQ(nearest_colour_name(cv::Scalar(230, 120, 20)), "blue");  // (pure 255,0,0 is nearer purple in Lab)
  EXPECT_EQ(nearest_colour_name(cv::Scalar(250, 250, 250)), "white");
  EXPECT_EQ(nearest_colour_name(cv::Scalar(5, 5, 5)), "black");
  EXPECT_THROW(palette_bgr("mauve"), Error);
}

// The mask covers the object at a sensible size, and its mean colour classifies back to the
// caption's colour: what the quality gate will check on generated pictures.
TEST(MiniScenes, MaskSizeAndColourMatchTheSpec) {
  std::map<std::string, std::pair<int, int>> by_colour;  // right, total
  int right = 0, total = 0;
  for (uint64_t seed = 0; seed < 600; ++seed) {
    const SceneSpec s = random_spec(seed);
    const Scene scene = render_scene(s, seed);
    const double share = cv::countNonZero(scene.object_mask) / double(scene.object_mask.total());
    EXPECT_GT(share, 0.03) << seed << " " << s.object;
    EXPECT_LT(share, 0.5) << seed << " " << s.object;
    cv::Rect box = cv::boundingRect(scene.object_mask);
    EXPECT_GE(box.height, 0.22 * 64) << seed << " " << s.object;
    EXPECT_LE(box.height, 0.7 * 64) << seed << " " << s.object;
    const bool ok = nearest_colour_name(cv::mean(scene.image, scene.object_mask)) == s.colour;
    right += ok, ++total;
    by_colour[s.colour].first += ok, ++by_colour[s.colour].second;
  }
  EXPECT_GE(right, total * 95 / 100);
  for (const auto& [name, counts] : by_colour)
    EXPECT_GE(counts.first, counts.second * 85 / 100) << name << ": " << counts.first << " of " << counts.second;
}

TEST(MiniScenes, LargerSizesRenderToo) {
  GeneratorOptions o;
  o.size = 128;
  const Scene s = render_scene(random_spec(3, o), 3, o);
  EXPECT_EQ(s.image.size(), cv::Size(128, 128));
  EXPECT_EQ(s.object_mask.size(), cv::Size(128, 128));
  o.size = 4;
  EXPECT_THROW(render_scene(random_spec(3), 3, o), Error);
  SceneSpec bad = random_spec(3);
  bad.colour = "mauve";
  EXPECT_THROW(render_scene(bad, 3), Error);
}

TEST(MiniScenes, ProductLayerHasAnOpaqueCoreAndTransparentCorners) {
  for (uint64_t seed : {1ull, 2ull}) {
    const Scene layer = render_product_layer(seed, 96);
    ASSERT_EQ(layer.image.type(), CV_8UC4);
    ASSERT_EQ(layer.image.size(), cv::Size(96, 96));
    std::vector<cv::Mat> ch;
    cv::split(layer.image, ch);
    const cv::Mat& a = ch[3];
    for (cv::Point p : {cv::Point(0, 0), cv::Point(95, 0), cv::Point(0, 95), cv::Point(95, 95)}) EXPECT_EQ(a.at<uchar>(p), 0);
    EXPECT_EQ(a.at<uchar>(48, 48), 255);
    const double opaque = cv::countNonZero(a == 255) / double(a.total());
    EXPECT_GT(opaque, 0.2);
    EXPECT_LT(opaque, 0.8);
    // Teal body and a yellow star: both hues present among the opaque pixels.
    cv::Mat hsv, bgr;
    cv::cvtColor(layer.image, bgr, cv::COLOR_BGRA2BGR);
    cv::cvtColor(bgr, hsv, cv::COLOR_BGR2HSV);
    cv::Mat teal, yellow;
    cv::inRange(hsv, cv::Scalar(80, 80, 40), cv::Scalar(100, 255, 255), teal);
    cv::inRange(hsv, cv::Scalar(20, 100, 100), cv::Scalar(35, 255, 255), yellow);
    EXPECT_GT(cv::countNonZero(teal & (a == 255)), 300) << seed;
    EXPECT_GT(cv::countNonZero(yellow & (a == 255)), 20) << seed;
    EXPECT_FALSE(same(layer.image, render_product_layer(seed + 10, 96).image));
    EXPECT_TRUE(same(layer.image, render_product_layer(seed, 96).image));
  }
}

}  // namespace
}  // namespace kiln::studio::mini
