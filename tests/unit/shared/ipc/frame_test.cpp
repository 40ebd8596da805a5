#include "ipc/frame.h"

#include <gtest/gtest.h>

using kiln::ipc::encode_frame;
using kiln::ipc::FrameDecoder;

TEST(Frame, HeaderIsLittleEndianLength) {
  const std::string f = encode_frame("abc");
  ASSERT_EQ(f.size(), 7u);
  EXPECT_EQ(static_cast<unsigned char>(f[0]), 3);
  EXPECT_EQ(f[1], 0);
  EXPECT_EQ(f.substr(4), "abc");
  const std::string big = encode_frame(std::string(0x010203, 'x'));
  EXPECT_EQ(static_cast<unsigned char>(big[0]), 0x03);
  EXPECT_EQ(static_cast<unsigned char>(big[1]), 0x02);
  EXPECT_EQ(static_cast<unsigned char>(big[2]), 0x01);
}

TEST(Frame, DecodesByteByByteAndSeveralPerChunk) {
  const std::string stream = encode_frame("first") + encode_frame("") + encode_frame("third frame");
  FrameDecoder byte_by_byte;
  std::vector<std::string> got;
  for (char c : stream) {
    ASSERT_TRUE(byte_by_byte.feed(&c, 1));
    while (auto f = byte_by_byte.next()) got.push_back(*f);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"first", "", "third frame"}));
  EXPECT_FALSE(byte_by_byte.mid_frame());

  FrameDecoder at_once;
  ASSERT_TRUE(at_once.feed(stream.data(), stream.size()));
  got.clear();
  while (auto f = at_once.next()) got.push_back(*f);
  EXPECT_EQ(got.size(), 3u);
}

TEST(Frame, PartialFrameIsMidFrame) {
  FrameDecoder d;
  const std::string f = encode_frame("hello");
  ASSERT_TRUE(d.feed(f.data(), 6));
  EXPECT_FALSE(d.next());
  EXPECT_TRUE(d.mid_frame());
  ASSERT_TRUE(d.feed(f.data() + 6, f.size() - 6));
  EXPECT_EQ(d.next(), "hello");
  EXPECT_FALSE(d.mid_frame());
}

TEST(Frame, OversizeAnnouncementFailsBeforeTheBodyArrives) {
  FrameDecoder d(1024);
  const uint32_t n = 100u << 20;  // a hostile 100 MiB announcement
  const char header[4] = {char(n & 0xff), char((n >> 8) & 0xff), char((n >> 16) & 0xff), char(n >> 24)};
  EXPECT_FALSE(d.feed(header, 4));
  EXPECT_TRUE(d.failed());
  EXPECT_EQ(d.announced_size(), n);
  EXPECT_NE(d.error().find("over the limit"), std::string::npos);
  EXPECT_FALSE(d.feed("junk", 4));  // stays failed
}

TEST(Frame, LimitIsInclusiveAndAppliesToLaterFrames) {
  FrameDecoder d(10);
  const std::string ok = encode_frame(std::string(10, 'a'));
  const std::string too_big = encode_frame(std::string(11, 'b'));
  const std::string stream = ok + too_big;
  d.feed(stream.data(), stream.size());
  EXPECT_EQ(d.next(), std::string(10, 'a'));
  EXPECT_FALSE(d.next());
  EXPECT_TRUE(d.failed());
}

TEST(Frame, BinaryFramesAreTheirOwnKindAndOnlyWhereAllowed) {
  const std::string binary = kiln::ipc::binary_frame_word(3) + "xyz";
  const std::string stream = encode_frame("{}") + binary + encode_frame("[]");
  FrameDecoder remote(1024, 64);
  ASSERT_TRUE(remote.feed(stream.data(), stream.size()));
  auto a = remote.next_frame(), b = remote.next_frame(), c = remote.next_frame();
  ASSERT_TRUE(a && b && c);
  EXPECT_FALSE(a->binary);
  EXPECT_TRUE(b->binary);
  EXPECT_EQ(b->payload, "xyz");
  EXPECT_EQ(c->payload, "[]");

  FrameDecoder local;  // binary frames refused: local sockets carry JSON only
  EXPECT_FALSE(local.feed(binary.data(), binary.size()));
  EXPECT_NE(local.error().find("binary frame"), std::string::npos);

  FrameDecoder small(1024, 2);
  EXPECT_FALSE(small.feed(binary.data(), binary.size()));
  EXPECT_NE(small.error().find("over the limit"), std::string::npos);
}
