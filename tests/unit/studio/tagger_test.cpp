#include "studio/dataset/tagger.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "studio/error.h"
#include "temp_dir.h"
#include "tiny_tagger.h"

namespace kiln::studio {
namespace {

using ::kiln::test::tiny_tagger_onnx;

void write(const std::filesystem::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

TEST(Tagger, ReadsSelectedTagsCsv) {
  test::TempDir dir;
  write(dir / "selected_tags.csv",
        "\xEF\xBB\xBFtag_id,name,category,count\n9999999,general,9,807489\n470575,1girl,0,4225150\n"
        "212816,\"long_hair\",0,3000000\n1,\"odd, \"\"quoted\"\"\",4,12\r\n");
  const auto tags = read_selected_tags(dir / "selected_tags.csv");
  ASSERT_EQ(tags.size(), 4u);
  EXPECT_EQ(tags[0].name, "general");
  EXPECT_EQ(tags[0].category, 9);
  EXPECT_EQ(tags[2].name, "long_hair");
  EXPECT_EQ(tags[3].name, "odd, \"quoted\"");
  EXPECT_EQ(tags[3].category, 4);

  write(dir / "bad.csv", "tag_id,name,category,count\n1,x,zero,3\n");
  try {
    read_selected_tags(dir / "bad.csv");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadFormat);
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  write(dir / "nohead.csv", "1,x,0,3\n");
  EXPECT_THROW(read_selected_tags(dir / "nohead.csv"), Error);
}

TEST(Tagger, DisplayNames) {
  EXPECT_EQ(tag_display_name("long_hair"), "long hair");
  EXPECT_EQ(tag_display_name("1girl"), "1girl");
  EXPECT_EQ(tag_display_name("^_^"), "^_^");
  EXPECT_EQ(tag_display_name("o_o"), "o_o");
}

TEST(Tagger, MissingTaggerSaysWhatToInstallWhere) {
  test::TempDir dir;
  try {
    Tagger tagger(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.onnx"), std::string::npos) << msg;
    EXPECT_NE(msg.find("selected_tags.csv"), std::string::npos) << msg;
    EXPECT_NE(msg.find(dir.path().string()), std::string::npos) << msg;
  }
}

TEST(Tagger, RunsAnOnnxModelThroughOpenCv) {
  test::TempDir dir;
  write(dir / "model.onnx", tiny_tagger_onnx());
  write(dir / "selected_tags.csv", "tag_id,name,category,count\n1,blue_sky,0,5\n2,sensitive,9,5\n3,red_dress,0,5\n");
  const Tagger tagger(dir.path());

  // Pure red (BGR 0,0,255), not square: only the red channel scores... after white padding, which
  // adds to every channel. 600x300 padded to 600x600: half the pixels are white (255,255,255).
  const cv::Mat red(300, 600, CV_8UC3, cv::Scalar(0, 0, 255));
  const auto tags = tagger.tag(red);
  ASSERT_EQ(tags.size(), 2u);
  EXPECT_EQ(tags[0].first, "red dress");
  EXPECT_NEAR(tags[0].second, 1.0, 0.01);
  EXPECT_EQ(tags[1].first, "blue sky");  // the white padding: half the pixels
  EXPECT_NEAR(tags[1].second, 0.5, 0.02);

  TaggerOptions strict;
  strict.general_threshold = 0.6f;
  EXPECT_EQ(tagger.tag(red, strict).size(), 1u);
  TaggerOptions ratings;
  ratings.include_ratings = true;
  EXPECT_EQ(tagger.tag(red, ratings).size(), 3u);

  // Transparent pixels count as white: a fully transparent layer scores 1 everywhere.
  const cv::Mat clear(448, 448, CV_8UC4, cv::Scalar(0, 0, 0, 0));
  EXPECT_EQ(tagger.tag(clear).size(), 2u);

  // A CSV that does not match the model's output is refused with both numbers.
  write(dir / "selected_tags.csv", "tag_id,name,category,count\n1,a,0,5\n2,b,0,5\n");
  const Tagger mismatched(dir.path());
  EXPECT_THROW(mismatched.tag(red), Error);
}

TEST(Tagger, CorruptModelIsBadFormat) {
  test::TempDir dir;
  write(dir / "model.onnx", "this is not a protobuf");
  write(dir / "selected_tags.csv", "tag_id,name,category,count\n1,a,0,5\n");
  try {
    Tagger tagger(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadFormat) << e.what();
  }
}

}  // namespace
}  // namespace kiln::studio
