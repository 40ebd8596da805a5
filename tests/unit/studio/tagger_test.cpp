#include "studio/dataset/tagger.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "studio/error.h"
#include "temp_dir.h"

namespace kiln::studio {
namespace {

// A minimal protobuf writer, enough to build an ONNX model by hand for the test.
struct Proto {
  std::string bytes;
  Proto& varint(int field, uint64_t v) {
    key(field, 0);
    put_varint(v);
    return *this;
  }
  Proto& str(int field, const std::string& s) {
    key(field, 2);
    put_varint(s.size());
    bytes += s;
    return *this;
  }
  Proto& msg(int field, const Proto& m) { return str(field, m.bytes); }

 private:
  void key(int field, int wire) { put_varint(static_cast<uint64_t>(field) << 3 | wire); }
  void put_varint(uint64_t v) {
    do {
      uint8_t b = v & 0x7F;
      v >>= 7;
      if (v) b |= 0x80;
      bytes.push_back(static_cast<char>(b));
    } while (v);
  }
};

Proto tensor_type(std::initializer_list<int64_t> dims) {
  Proto shape;
  for (int64_t d : dims) shape.msg(1, Proto().varint(1, static_cast<uint64_t>(d)));  // Dimension.dim_value
  return Proto().msg(1, Proto().varint(1, 1 /*FLOAT*/).msg(2, shape));             // TypeProto.tensor_type
}

Proto node(const std::vector<std::string>& in, const std::string& out, const std::string& op) {
  Proto n;
  for (const auto& i : in) n.str(1, i);
  return n.str(2, out).str(4, op);
}

// A "tagger" that scores each tag by the mean of one input channel / 255, laid out as a WD1.4
// model: input [1, 448, 448, 3] (NHWC, BGR 0..255), output [1, 3]. It checks the whole path:
// preprocessing, channel order, NHWC layout, thresholds and CSV mapping.
std::string tiny_tagger_onnx() {
  Proto transpose = node({"x"}, "t", "Transpose");
  Proto perm = Proto().str(1, "perm").varint(20, 7 /*INTS*/);
  for (int64_t p : {0, 3, 1, 2}) perm.varint(8, static_cast<uint64_t>(p));
  transpose.msg(5, perm);
  const float scale = 1.0f / 255.0f;
  std::string raw(4, '\0');
  std::memcpy(raw.data(), &scale, 4);
  Proto initializer = Proto().varint(1, 1).varint(2, 1 /*FLOAT*/).str(8, "scale").str(9, raw);
  Proto graph;
  graph.msg(1, transpose)
      .msg(1, node({"t"}, "p", "GlobalAveragePool"))
      .msg(1, node({"p"}, "f", "Flatten"))
      .msg(1, node({"f", "scale"}, "probs", "Mul"))
      .str(2, "tiny_tagger")
      .msg(5, initializer)
      .msg(11, Proto().str(1, "x").msg(2, tensor_type({1, 448, 448, 3})))
      .msg(12, Proto().str(1, "probs").msg(2, tensor_type({1, 3})));
  return Proto().varint(1, 7).str(2, "kiln-test").msg(7, graph).msg(8, Proto().str(1, "").varint(2, 13)).bytes;
}

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
