// Binary attachments: manifests, chunking, compression, and every way a peer can lie.
#include "ipc/attachments.h"

#include <cstring>

#include <gtest/gtest.h>

#include "ipc/frame.h"

using namespace kiln;
using namespace kiln::ipc;
using Json = nlohmann::json;

namespace {

std::vector<uint8_t> pattern(std::size_t n, bool compressible) {
  std::vector<uint8_t> v(n);
  uint32_t s = 12345;
  for (std::size_t i = 0; i < n; ++i) {
    s ^= s << 13, s ^= s >> 17, s ^= s << 5;
    v[i] = compressible ? static_cast<uint8_t>((i / 4096) + ((i % 64) == 0 ? (s & 3) : 0)) : static_cast<uint8_t>(s);
  }
  return v;
}

Attachment image_attachment(const std::string& name, uint32_t w, uint32_t h, const std::vector<uint8_t>& data) {
  Attachment a;
  a.kind = Attachment::Kind::Image;
  a.name = name;
  a.desc.width = w;
  a.desc.height = h;
  a.desc.channels = 4;
  a.desc.stride = uint64_t(w) * 4;
  a.bytes = data.size();
  a.data = data.data();
  return a;
}

// The payloads of the binary frames, as a receiver's FramedConnection would hand them over.
std::vector<std::string> payloads(const EncodedAttachments& e) {
  std::string stream;
  for (const auto& f : e.frames) {
    stream += f.owned;
    if (f.external_size) stream.append(f.external, f.external_size);
  }
  FrameDecoder decoder(protocol::kMaxFrameBytes, kMaxBinaryFrameBytes);
  EXPECT_TRUE(decoder.feed(stream.data(), stream.size())) << decoder.error();
  std::vector<std::string> out;
  while (auto frame = decoder.next_frame()) {
    EXPECT_TRUE(frame->binary);
    out.push_back(frame->payload);
  }
  return out;
}

struct Assembled {
  std::vector<std::vector<uint8_t>> buffers;
  std::unique_ptr<AttachmentReceiver> receiver;
};

Assembled receive(const Json& manifest) {
  Assembled a;
  auto entries = parse_manifest(manifest, AttachmentLimits{});
  std::vector<AttachmentReceiver::Sink> sinks;
  for (const auto& e : entries) {
    a.buffers.emplace_back(e.bytes);
    sinks.push_back({a.buffers.back().data(), nullptr});
  }
  a.receiver = std::make_unique<AttachmentReceiver>(std::move(entries), std::move(sinks));
  return a;
}

}  // namespace

TEST(Attachments, ALargeImageTravelsInChecksummedChunksStoredOrCompressed) {
  for (Compression c : {Compression::None, Compression::Zstd}) {
    const auto pixels = pattern(2048 * 1500 * 4, true);  // 12 MB: three chunks
    const auto encoded = encode_attachments({image_attachment("kiln.1.2.abc", 2048, 1500, pixels)}, c);
    ASSERT_EQ(encoded.manifest.size(), 1u);
    EXPECT_EQ(encoded.manifest[0]["chunks"], 3);
    EXPECT_EQ(encoded.frames.size(), 3u);
    if (c == Compression::Zstd) EXPECT_LT(encoded.wire_bytes, encoded.raw_bytes / 4) << "smooth pixels compress";
    else EXPECT_EQ(encoded.frames[0].external, reinterpret_cast<const char*>(pixels.data())) << "stored chunks are not copied";
    Assembled a = receive(encoded.manifest);
    for (const auto& p : payloads(encoded)) a.receiver->feed(p);
    EXPECT_TRUE(a.receiver->complete());
    EXPECT_EQ(a.buffers[0], pixels);
  }
}

TEST(Attachments, IncompressibleChunksAreSentStored) {
  const auto noise = pattern(1024 * 1024, false);
  const auto encoded = encode_attachments({image_attachment("n", 512, 512, noise)}, Compression::Zstd);
  EXPECT_EQ(encoded.frames[0].external_size, noise.size());
  EXPECT_LE(encoded.wire_bytes, noise.size() + 100);
}

TEST(Attachments, FilesBlankImagesAndEmptyFiles) {
  const auto bytes = pattern(5 << 20, false);
  Attachment file;
  file.kind = Attachment::Kind::File;
  file.name = "lora.safetensors";
  file.bytes = bytes.size();
  file.data = bytes.data();
  Attachment blank = image_attachment("into", 64, 64, {});
  blank.bytes = 64 * 64 * 4;
  blank.blank = true;
  Attachment empty;
  empty.kind = Attachment::Kind::File;
  empty.name = "empty.txt";
  const auto encoded = encode_attachments({blank, file, empty}, Compression::None);
  EXPECT_EQ(encoded.manifest[0]["chunks"], 0);
  EXPECT_EQ(encoded.manifest[2]["chunks"], 0);
  auto entries = parse_manifest(encoded.manifest, AttachmentLimits{});
  std::string written;
  std::vector<AttachmentReceiver::Sink> sinks(3);
  sinks[1].write = [&](const uint8_t* d, std::size_t n) { written.append(reinterpret_cast<const char*>(d), n); };
  AttachmentReceiver r(std::move(entries), std::move(sinks));
  for (const auto& p : payloads(encoded)) r.feed(p);
  EXPECT_TRUE(r.complete());
  EXPECT_EQ(written, std::string(bytes.begin(), bytes.end()));
}

TEST(Attachments, ADamagedChunkFailsItsChecksum) {
  const auto pixels = pattern(256 * 256 * 4, false);
  const auto encoded = encode_attachments({image_attachment("x", 256, 256, pixels)}, Compression::None);
  auto p = payloads(encoded);
  p[0][kChunkHeaderBytes + 1000] ^= 0x40;
  Assembled a = receive(encoded.manifest);
  try {
    a.receiver->feed(p[0]);
    FAIL() << "a damaged chunk was accepted";
  } catch (const AttachmentError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
}

TEST(Attachments, MoreDataThanAnnouncedIsRefused) {
  const auto pixels = pattern(64 * 64 * 4, false);
  const auto encoded = encode_attachments({image_attachment("x", 64, 64, pixels)}, Compression::None);
  const auto p = payloads(encoded);
  Assembled a = receive(encoded.manifest);
  a.receiver->feed(p[0]);
  ASSERT_TRUE(a.receiver->complete());
  try {
    a.receiver->feed(p[0]);  // the same chunk again: past the end
    FAIL();
  } catch (const AttachmentError& e) {
    EXPECT_NE(std::string(e.what()).find("more data than announced"), std::string::npos) << e.what();
  }
  // A manifest that announces less than its chunks hold.
  Json small = encoded.manifest;
  small[0]["image"]["height"] = 32;
  small[0]["bytes"] = 64 * 32 * 4;
  Assembled b = receive(small);
  EXPECT_THROW(b.receiver->feed(p[0]), AttachmentError);
}

TEST(Attachments, LyingManifestsAreRefusedBeforeAnyByte) {
  const auto pixels = pattern(64 * 64 * 4, false);
  const Json good = encode_attachments({image_attachment("x", 64, 64, pixels)}, Compression::None).manifest;
  auto refused = [](Json m, const std::string& says, AttachmentLimits limits = {}) {
    try {
      parse_manifest(m, limits);
      ADD_FAILURE() << "accepted " << m.dump();
    } catch (const AttachmentError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  Json bytes = good;
  bytes[0]["bytes"] = 999;
  refused(bytes, "its size needs");
  Json chunks = good;
  chunks[0]["chunks"] = 7;
  refused(chunks, "chunks");
  Json huge = good;
  huge[0]["image"]["width"] = 40000;
  refused(huge, "limit");
  refused(Json::array({good[0], good[0], good[0]}), "at most 2", AttachmentLimits{2, 1ull << 30});
  refused(good, "over its limit", AttachmentLimits{64, 1000});
  Json kind = good;
  kind[0]["kind"] = "script";
  refused(kind, "kind");
}

TEST(Attachments, ImageReferencesAreFoundAnywhere) {
  Json j{{"a", {{"shm", "one"}, {"width", 1}}}, {"list", Json::array({{{"image", {{"shm", "two"}}}}, 3})}, {"x", "shm"}};
  std::vector<std::string> names;
  for_each_image_ref(j, [&](Json& ref) {
    names.push_back(ref["shm"]);
    ref["shm"] = "renamed";
  });
  EXPECT_EQ(names, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(j["list"][0]["image"]["shm"], "renamed");
}
