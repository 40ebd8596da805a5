#include "studio/png.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "studio/error.h"
#include "temp_dir.h"

namespace kiln::studio {
namespace {

std::vector<uint8_t> gradient(int w, int h, int c, std::size_t stride) {
  std::vector<uint8_t> data(stride * h, 0xEE);  // padding bytes must never reach the file
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) data[y * stride + x * c + k] = static_cast<uint8_t>((x * 7 + y * 13 + k * 50) & 0xFF);
  return data;
}

void expect_same_pixels(const std::vector<uint8_t>& src, std::size_t stride, const PngImage& img) {
  const std::size_t row = static_cast<std::size_t>(img.width) * img.channels;
  for (int y = 0; y < img.height; ++y)
    ASSERT_EQ(0, std::memcmp(src.data() + y * stride, img.pixels.data() + y * row, row)) << "row " << y;
}

TEST(Png, RgbWithStrideRoundTripsWithLatin1Text) {
  test::TempDir dir;
  const int w = 37, h = 21;
  const std::size_t stride = w * 3 + 5;
  const auto data = gradient(w, h, 3, stride);
  const auto path = dir / "a.png";
  write_png(path, PixelView{data.data(), w, h, 3, stride}, {{"parameters", "café, Steps: 20"}, {"Software", "Kiln"}});

  const PngImage img = read_png(path);
  EXPECT_EQ(img.width, w);
  EXPECT_EQ(img.height, h);
  EXPECT_EQ(img.channels, 3);
  expect_same_pixels(data, stride, img);
  ASSERT_NE(img.find_text("parameters"), nullptr);
  EXPECT_EQ(*img.find_text("parameters"), "café, Steps: 20");
  EXPECT_EQ(*img.find_text("Software"), "Kiln");

  // Latin-1 text goes in a tEXt chunk as Latin-1 bytes (é = 0xE9), as PIL writes it.
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(bytes.find(std::string("tEXtparameters\0caf\xE9", 19)), std::string::npos);
  EXPECT_EQ(bytes.find("iTXt"), std::string::npos);
}

TEST(Png, NonLatin1TextGoesToItxtAsUtf8) {
  const int w = 4, h = 3;
  const auto data = gradient(w, h, 4, w * 4);
  const std::string prompt = "一只猫, 🐱 (masterpiece:1.2)";
  const std::string bytes = encode_png(PixelView{data.data(), w, h, 4, 0}, {{"parameters", prompt}});
  EXPECT_NE(bytes.find("iTXtparameters"), std::string::npos);
  const PngImage img = decode_png(bytes, "mem.png");
  EXPECT_EQ(img.channels, 4);
  expect_same_pixels(data, w * 4, img);
  EXPECT_EQ(*img.find_text("parameters"), prompt);
}

TEST(Png, GreyRoundTrips) {
  const auto data = gradient(9, 5, 1, 9);
  const PngImage img = decode_png(encode_png(PixelView{data.data(), 9, 5, 1, 0}), "g.png");
  EXPECT_EQ(img.channels, 1);
  expect_same_pixels(data, 9, img);
  EXPECT_TRUE(img.text.empty());
}

TEST(Png, RejectsBadInputWithClearErrors) {
  const auto data = gradient(4, 4, 3, 12);
  const auto kind = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::Cancelled;  // "nothing thrown"
  };
  EXPECT_EQ(kind([&] { encode_png(PixelView{nullptr, 4, 4, 3, 0}); }), ErrorKind::InvalidArgument);
  EXPECT_EQ(kind([&] { encode_png(PixelView{data.data(), 4, 4, 2, 0}); }), ErrorKind::InvalidArgument);
  EXPECT_EQ(kind([&] { encode_png(PixelView{data.data(), 4, 4, 3, 8}); }), ErrorKind::InvalidArgument);
  EXPECT_EQ(kind([&] { encode_png(PixelView{data.data(), 4, 4, 3, 0}, {{"", "x"}}); }), ErrorKind::InvalidArgument);
  EXPECT_EQ(kind([&] { encode_png(PixelView{data.data(), 4, 4, 3, 0}, {{"k", std::string("a\0b", 3)}}); }),
            ErrorKind::InvalidArgument);
}

TEST(Png, CorruptAndTruncatedFilesNameTheFile) {
  const auto data = gradient(64, 64, 3, 192);
  const std::string good = encode_png(PixelView{data.data(), 64, 64, 3, 0});
  for (const std::string& bad : std::vector<std::string>{std::string("not a png at all"), good.substr(0, good.size() / 2),
                                 good.substr(0, 40)}) {
    try {
      decode_png(bad, "broken.png");
      FAIL() << "decoded a damaged PNG";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::BadFormat);
      EXPECT_NE(std::string(e.what()).find("broken.png"), std::string::npos) << e.what();
    }
  }
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x55;  // damages the compressed image data; its CRC no longer matches
  EXPECT_THROW(decode_png(flipped, "flipped.png"), Error);
}

TEST(Png, MissingFileIsNotFound) {
  try {
    read_png("/nonexistent/kiln/x.png");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/kiln/x.png"), std::string::npos);
  }
}

TEST(Png, WriteReplacesAtomicallyAndLeavesNoTemporaryFiles) {
  test::TempDir dir;
  const auto data = gradient(8, 8, 3, 24);
  write_png(dir / "x.png", PixelView{data.data(), 8, 8, 3, 0});
  write_png(dir / "x.png", PixelView{data.data(), 4, 4, 3, 24});
  EXPECT_EQ(read_png(dir / "x.png").width, 4);
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) files += entry.is_regular_file();
  EXPECT_EQ(files, 1);
}

}  // namespace
}  // namespace kiln::studio
