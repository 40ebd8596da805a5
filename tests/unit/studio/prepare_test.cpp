#include "studio/dataset/prepare.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "studio/dataset/face_detector.h"
#include "studio/dataset/subject.h"
#include "studio/error.h"
#include "studio/mini/scene_generator.h"
#include "synthetic.h"

namespace kiln::studio {
namespace {


TEST(Subject, FromAlphaChannel) {
  const cv::Rect box(300, 120, 200, 400);
  const Subject s = find_subject(test::product_layer(1000, 700, box));
  EXPECT_EQ(s.source, SubjectSource::Alpha);
  EXPECT_GT(test::iou(s.box, box), 0.95) << s.box;
}

TEST(Subject, FromSaliencyOnPlainBackdrop) {
  const cv::Rect box(120, 300, 260, 380);
  const Subject s = find_subject(test::product_photo(900, 800, box));
  EXPECT_EQ(s.source, SubjectSource::Saliency);
  EXPECT_GT(test::iou(s.box, box), 0.8) << s.box;
  // A coloured backdrop works the same way: the border colour is the reference. (Parts of a
  // subject in the backdrop's own colour are missed, as for any colour-based estimate.)
  const Subject green = find_subject(test::product_photo(900, 800, box, cv::Scalar(90, 150, 90)));
  EXPECT_GT(test::iou(green.box, box), 0.8) << green.box;
}

TEST(Subject, FromSaliencyInAScene) {
  // A product photographed in a scene (Kiln Mini's tin on a table or floor, a wall or sweep behind):
  // the horizon and the surface are background, the tin is the subject.
  mini::GeneratorOptions options;
  options.size = 256;
  const std::vector<std::string> surfaces{"wooden table", "marble table", "concrete floor"};
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const mini::Scene photo = mini::render_scene(mini::product_photo_spec(seed, surfaces), seed, options);
    const Subject s = find_subject(photo.image);
    const cv::Rect tin = cv::boundingRect(photo.object_mask);
    EXPECT_EQ(s.source, SubjectSource::Saliency) << photo.caption;
    EXPECT_GT(test::iou(s.box, tin), 0.6) << photo.caption << ": " << s.box << " for the tin at " << tin;
  }
}

TEST(Subject, NoneForFlatOrTransparent) {
  EXPECT_EQ(find_subject(cv::Mat(300, 300, CV_8UC3, cv::Scalar(128, 128, 128))).source, SubjectSource::None);
  EXPECT_EQ(find_subject(cv::Mat(300, 300, CV_8UC4, cv::Scalar(0, 0, 0, 0))).source, SubjectSource::None);
}

TEST(Prepare, CenterCropOfNonSquareImage) {
  DatasetSettings s;  // custom: center, square 512
  const cv::Mat img = test::scene(1200, 800);
  const Preparation p = prepare_image(img, s, nullptr);
  ASSERT_EQ(p.outputs.size(), 1u);
  EXPECT_EQ(p.outputs[0].image.size(), cv::Size(512, 512));
  EXPECT_EQ(p.outputs[0].image.type(), CV_8UC3);
  EXPECT_EQ(p.crop, cv::Rect(200, 0, 800, 800));
  EXPECT_DOUBLE_EQ(p.scale, 512.0 / 800);  // shrunk, not enlarged
}

TEST(Prepare, FocusCropFollowsTheSubject) {
  DatasetSettings s;
  s.crop = CropMode::Focus;
  const cv::Rect box(1300, 200, 250, 400);  // near the right edge of a wide photo
  const Preparation p = prepare_image(test::product_photo(1600, 900, box), s, nullptr);
  EXPECT_EQ((p.crop & box), box) << "the crop " << p.crop << " must hold the whole subject";
  EXPECT_EQ(p.crop.width, p.crop.height);
  EXPECT_GE(p.crop.width, 512);  // never tighter than the training resolution
  EXPECT_EQ(p.outputs[0].image.size(), cv::Size(512, 512));
}

TEST(Prepare, ProductLayerIsCentredOnWhiteOrGreyWithMargin) {
  DatasetSettings s = preset_settings(Preset::Product, "acme");
  const cv::Rect box(100, 50, 300, 600);  // off-centre on a 1000x800 layer
  const cv::Mat layer = test::product_layer(1000, 800, box);
  for (const Background bg : {Background::White, Background::LightGrey}) {
    s.background = bg;
    const Preparation p = prepare_image(layer, s, nullptr);
    const cv::Mat& out = p.outputs[0].image;
    ASSERT_EQ(out.size(), cv::Size(512, 512));
    const cv::Vec3b expected = bg == Background::White ? cv::Vec3b(255, 255, 255) : cv::Vec3b(235, 235, 235);
    EXPECT_EQ(out.at<cv::Vec3b>(0, 0), expected);
    EXPECT_EQ(out.at<cv::Vec3b>(511, 511), expected);
    // The object (everything not background) is centred, with the margin above and below.
    cv::Mat mask;
    cv::inRange(out, cv::Scalar(expected[0], expected[1], expected[2]), cv::Scalar(expected[0], expected[1], expected[2]), mask);
    const cv::Rect object = cv::boundingRect(~mask);
    const double margin = s.margin * 512;
    EXPECT_NEAR(object.y, margin, 3);
    EXPECT_NEAR(512 - object.br().y, margin, 3);
    EXPECT_NEAR(object.x + object.width / 2.0, 256, 3);
  }
}

TEST(Prepare, BucketKeepsAspectNeverUpscalesAndUsesMultiplesOf64) {
  DatasetSettings s;
  s.size = SizeMode::Bucket;
  const Preparation big = prepare_image(test::scene(1500, 1000), s, nullptr);
  const cv::Size out = big.outputs[0].image.size();
  EXPECT_EQ(out.width % 64, 0);
  EXPECT_EQ(out.height % 64, 0);
  EXPECT_LE(out.area(), 512 * 512);
  EXPECT_NEAR(static_cast<double>(out.width) / out.height, 1.5, 0.1);

  const Preparation small = prepare_image(test::scene(300, 200), s, nullptr);
  EXPECT_EQ(small.outputs[0].image.size(), cv::Size(256, 192));  // trimmed, not enlarged
  EXPECT_DOUBLE_EQ(small.scale, 1.0);  // kohya's buckets will enlarge it: too_small judges that
}

TEST(Prepare, SquareUpscalingIsRecorded) {
  DatasetSettings s;
  const Preparation p = prepare_image(test::scene(300, 200), s, nullptr);
  EXPECT_EQ(p.outputs[0].image.size(), cv::Size(512, 512));
  EXPECT_DOUBLE_EQ(p.scale, 512.0 / 200);  // check_image turns this into too_small
}

TEST(Prepare, ProductCropWidensRatherThanEnlarging) {
  // A small bottle in a large photo: the frame around it widens to the training size instead of
  // enlarging the bottle's pixels (which only adds softness).
  const DatasetSettings s = preset_settings(Preset::Product, "acme");
  const cv::Rect box(330, 280, 120, 240);
  const Preparation p = prepare_image(test::product_photo(800, 800, box), s, nullptr);
  EXPECT_EQ(p.crop.width, 512);
  EXPECT_LE(p.scale, 1.0);
  EXPECT_EQ((p.crop & box), box) << "the crop " << p.crop << " must hold the whole subject";
  EXPECT_NEAR(p.crop.x + p.crop.width / 2.0, box.x + box.width / 2.0, 3) << "still centred on it";
  // A picture smaller than the training size is enlarged: by no more than it must.
  const Preparation small = prepare_image(test::product_photo(400, 400, cv::Rect(150, 100, 100, 200)), s, nullptr);
  EXPECT_NEAR(small.scale, 512.0 / 400, 1e-9);
}

TEST(Prepare, ProductInASceneIsCroppedInsideThePhotoNotFramed) {
  // A product photographed in a scene (a pale wall above a wooden floor, not one backdrop colour),
  // near the left edge: the product layout must not pad past the photo with a border colour — that
  // draws a frame the LoRA would learn. The crop keeps to the photo, as centred as it can be.
  const DatasetSettings s = preset_settings(Preset::Product, "acme");
  const cv::Rect box(20, 300, 160, 300);
  cv::Mat photo(800, 800, CV_8UC3, cv::Scalar(215, 215, 215));
  photo.rowRange(500, 800).setTo(cv::Scalar(70, 110, 160));  // a wooden floor
  const cv::Mat layer = test::product_layer(800, 800, box);
  cv::Mat alpha, colour;
  cv::extractChannel(layer, alpha, 3);
  cv::cvtColor(layer, colour, cv::COLOR_BGRA2BGR);
  colour.copyTo(photo, alpha);
  const Preparation p = prepare_image(photo, s, nullptr);
  ASSERT_EQ(p.subject.source, SubjectSource::Saliency);
  EXPECT_EQ(p.crop & cv::Rect(0, 0, 800, 800), p.crop) << "the crop " << p.crop << " reaches past the photo";
  EXPECT_EQ(p.crop.x, 0) << "pushed against the edge the product stands at";
  EXPECT_EQ(p.crop.width, 512) << "still framed around the product";
  // On one plain backdrop the same layout pads (with the backdrop's colour): centred on the product.
  const Preparation plain = prepare_image(test::product_photo(800, 800, box), s, nullptr);
  EXPECT_LT(plain.crop.x, 0) << plain.crop;
}

TEST(Prepare, FlipCopiesAreMirrors) {
  DatasetSettings s;
  s.flip = true;
  const Preparation p = prepare_image(test::scene(600, 600), s, nullptr);
  ASSERT_EQ(p.outputs.size(), 2u);
  EXPECT_EQ(p.outputs[1].suffix, "_flip");
  cv::Mat back;
  cv::flip(p.outputs[1].image, back, 1);
  EXPECT_EQ(cv::norm(back, p.outputs[0].image, cv::NORM_INF), 0);
}

TEST(Prepare, FaceModesNeedADetector) {
  DatasetSettings s = preset_settings(Preset::Character, "anna");
  EXPECT_THROW(prepare_image(test::scene(600, 600), s, nullptr), Error);
}

TEST(FaceDetector, FindsTheDrawnFace) {
  const FaceDetector detector;  // Debian's opencv-data cascade
  EXPECT_FALSE(detector.cascade_path().empty());
  const cv::Mat img = test::face_picture(1200, 900, cv::Point(800, 350), 240);
  const auto faces = detector.detect(img);
  ASSERT_EQ(faces.size(), 1u);
  // The drawn face spans about x 680..920, y 270..420 (eyes to mouth, what the cascade frames).
  EXPECT_TRUE(faces[0].contains(cv::Point(800, 360))) << faces[0];
  EXPECT_GT(faces[0].width, 150);
  EXPECT_LT(faces[0].width, 450);
  EXPECT_TRUE(detector.detect(test::product_photo(800, 800, cv::Rect(200, 200, 300, 400))).empty());
}

TEST(FaceDetector, FaceCropAndFaceEnhance) {
  const FaceDetector detector;
  DatasetSettings s = preset_settings(Preset::Character, "anna");  // face crop + face enhance
  const cv::Mat img = test::face_picture(1600, 1000, cv::Point(1200, 380), 200);
  const Preparation p = prepare_image(img, s, &detector);
  ASSERT_EQ(p.outputs.size(), 2u);
  EXPECT_EQ(p.outputs[1].suffix, "_face");
  EXPECT_TRUE(p.crop.contains(cv::Point(1200, 380))) << p.crop;  // not the centre crop (300..1300 would hold it too)
  EXPECT_GT(p.crop.x, 300) << "a centre crop would start at x=300";
  EXPECT_FALSE(p.face_missing);

  // No face: the crop follows the subject and says so; no face crop is made.
  const Preparation none = prepare_image(test::product_photo(900, 900, cv::Rect(100, 100, 300, 500)), s, &detector);
  EXPECT_EQ(none.outputs.size(), 1u);
  EXPECT_TRUE(none.face_missing);
}

TEST(FaceDetector, MissingModelNamesThePackage) {
  try {
    FaceDetector detector("/nonexistent/haarcascade_frontalface_default.xml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("opencv-data"), std::string::npos) << msg;
    EXPECT_NE(msg.find("/nonexistent/"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace kiln::studio
