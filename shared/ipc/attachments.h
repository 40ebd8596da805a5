#pragma once
// Binary attachments: how images (and files) cross to and from a remote daemon, where shared
// memory cannot reach. A JSON-RPC message that carries some lists them in a top-level
// "attachments" member (the manifest); their bytes follow at once as binary frames (frame.h),
// nothing else in between. Each frame holds one chunk of at most kAttachmentChunkBytes raw
// bytes, stored or zstd-compressed, with an XXH3-64 checksum of its raw bytes:
//
//   manifest entry: {"name": "kiln.1000.42.<hex>", "kind": "image", "bytes": 67108864, "chunks": 16,
//                    "image": {width, height, channels, dtype, stride, premultiplied, color_space},
//                    "blank": false}
//   "kind": "file" entries carry no "image"; "blank": true images carry no chunks (a block the
//   receiver creates for the sender's result, e.g. image.echo's `into`).
//
// A receiver checks everything before trusting it: the manifest against its limits, every chunk's
// place (in order, never past what was announced), size after decompression and checksum.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ipc/framed_connection.h"
#include "protocol/image_ref.h"

namespace kiln::ipc {

inline constexpr std::size_t kAttachmentChunkBytes = 4u << 20;
inline constexpr std::size_t kChunkHeaderBytes = 40;
// A binary frame is a chunk header and at most one chunk (compressed chunks are only sent when smaller).
inline constexpr std::size_t kMaxBinaryFrameBytes = kChunkHeaderBytes + kAttachmentChunkBytes;
inline constexpr const char* kAttachmentsKey = "attachments";

enum class Compression { None, Zstd };
const char* to_string(Compression c);

struct Attachment {
  enum class Kind { Image, File };
  Kind kind = Kind::Image;
  std::string name;              // images: the shm name the JSON refers to; files: a label
  protocol::ImageDesc desc;      // images only
  uint64_t bytes = 0;
  bool blank = false;            // an image without pixels: the receiver makes a block to fill
  const uint8_t* data = nullptr; // `bytes` bytes, kept alive by `keep` until written
  std::shared_ptr<const void> keep;
};

struct EncodedAttachments {
  nlohmann::json manifest = nlohmann::json::array();
  std::vector<OutgoingPiece> frames;
  uint64_t raw_bytes = 0, wire_bytes = 0;
};

// The manifest and the binary frames of `attachments`. Stored chunks point into the caller's
// memory (no copy); compressed chunks are made here, and a chunk that does not shrink is stored.
EncodedAttachments encode_attachments(const std::vector<Attachment>& attachments, Compression compression);

struct ManifestEntry {
  Attachment::Kind kind = Attachment::Kind::Image;
  std::string name;
  protocol::ImageDesc desc;
  uint64_t bytes = 0;
  uint32_t chunks = 0;
  bool blank = false;
};

struct AttachmentLimits {
  std::size_t max_attachments = 64;
  uint64_t max_total_bytes = 2ull << 30;  // everything one message may carry
};

// Parses and checks a manifest: shape, names, image descriptions (their sizes must equal
// `bytes`), chunk counts and the limits. Throws AttachmentError with a plain-language problem.
std::vector<ManifestEntry> parse_manifest(const nlohmann::json& manifest, const AttachmentLimits& limits);

class AttachmentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reassembles the attachments of one message from its binary frames.
class AttachmentReceiver {
 public:
  // Where an attachment's bytes go: straight into memory of entry.bytes (an image block), or to
  // a writer called in order (a file).
  struct Sink {
    uint8_t* data = nullptr;
    std::function<void(const uint8_t* bytes, std::size_t size)> write;
  };
  AttachmentReceiver(std::vector<ManifestEntry> entries, std::vector<Sink> sinks);

  // One binary frame's payload. Throws AttachmentError (a chunk in the wrong place, past what
  // was announced, that does not decompress to its size, or whose checksum does not match).
  void feed(const std::string& payload);
  bool complete() const { return current_ == entries_.size(); }
  const std::vector<ManifestEntry>& entries() const { return entries_; }
  uint64_t wire_bytes() const { return wire_bytes_; }

 private:
  void skip_finished();
  std::vector<ManifestEntry> entries_;
  std::vector<Sink> sinks_;
  std::size_t current_ = 0;
  uint64_t received_ = 0;  // raw bytes of the current attachment so far
  uint32_t chunks_seen_ = 0;
  uint64_t wire_bytes_ = 0;
  std::vector<uint8_t> scratch_;  // decompressed chunks bound for a writer
};

// Calls `fn` on every image reference (an object with a string "shm") inside `j`, depth first.
void for_each_image_ref(nlohmann::json& j, const std::function<void(nlohmann::json& ref)>& fn);
void for_each_image_ref(const nlohmann::json& j, const std::function<void(const nlohmann::json& ref)>& fn);

}  // namespace kiln::ipc
