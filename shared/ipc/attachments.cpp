#include "ipc/attachments.h"

#include <cstring>

#include <zstd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "ipc/shm_image.h"

namespace kiln::ipc {
using Json = nlohmann::json;

namespace {
constexpr char kChunkMagic[4] = {'K', 'B', 'I', 'N'};
constexpr uint32_t kCodecStored = 0, kCodecZstd = 1;
constexpr int kZstdLevel = 1;  // fast; images compress about as well at 1 as at 3 (README: measured)

void put32(std::string& s, uint32_t v) {
  for (int i = 0; i < 32; i += 8) s.push_back(static_cast<char>((v >> i) & 0xff));
}
void put64(std::string& s, uint64_t v) {
  for (int i = 0; i < 64; i += 8) s.push_back(static_cast<char>((v >> i) & 0xff));
}
uint32_t get32(const unsigned char* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t get64(const unsigned char* p) { return uint64_t(get32(p)) | uint64_t(get32(p + 4)) << 32; }

std::string chunk_header(uint32_t attachment, uint64_t offset, uint32_t raw_size, uint32_t codec, uint64_t checksum,
                         std::size_t stored_size) {
  std::string h = binary_frame_word(kChunkHeaderBytes + stored_size);
  h.append(kChunkMagic, 4);
  put32(h, attachment);
  put64(h, offset);
  put32(h, raw_size);
  put32(h, codec);
  put64(h, checksum);
  put64(h, 0);
  return h;
}

struct CCtx {
  ZSTD_CCtx* ctx = ZSTD_createCCtx();
  ~CCtx() { ZSTD_freeCCtx(ctx); }
};
struct DCtx {
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  ~DCtx() { ZSTD_freeDCtx(ctx); }
};

Json desc_json(const protocol::ImageDesc& d) {
  Json j = protocol::to_json(protocol::ImageRef{"", d});
  j.erase("shm");
  return j;
}
}  // namespace

const char* to_string(Compression c) { return c == Compression::Zstd ? "zstd" : "none"; }

EncodedAttachments encode_attachments(const std::vector<Attachment>& attachments, Compression compression) {
  EncodedAttachments out;
  thread_local CCtx cctx;
  for (std::size_t index = 0; index < attachments.size(); ++index) {
    const Attachment& a = attachments[index];
    const bool blank = a.kind == Attachment::Kind::Image && a.blank;
    const uint64_t chunks = blank ? 0 : (a.bytes + kAttachmentChunkBytes - 1) / kAttachmentChunkBytes;
    Json entry{{"name", a.name},
               {"kind", a.kind == Attachment::Kind::Image ? "image" : "file"},
               {"bytes", a.bytes},
               {"chunks", chunks}};
    if (a.kind == Attachment::Kind::Image) {
      entry["image"] = desc_json(a.desc);
      entry["blank"] = blank;
    }
    out.manifest.push_back(std::move(entry));
    if (blank) continue;
    for (uint64_t offset = 0; offset < a.bytes; offset += kAttachmentChunkBytes) {
      const auto raw = static_cast<std::size_t>(std::min<uint64_t>(kAttachmentChunkBytes, a.bytes - offset));
      const uint8_t* data = a.data + offset;
      const uint64_t checksum = XXH3_64bits(data, raw);
      OutgoingPiece piece;
      if (compression == Compression::Zstd) {
        std::string packed(ZSTD_compressBound(raw), '\0');
        const std::size_t n = ZSTD_compressCCtx(cctx.ctx, packed.data(), packed.size(), data, raw, kZstdLevel);
        if (!ZSTD_isError(n) && n < raw - raw / 16) {  // worth it only when it saves something
          packed.resize(n);
          piece.owned = chunk_header(static_cast<uint32_t>(index), offset, static_cast<uint32_t>(raw), kCodecZstd, checksum, n);
          piece.owned += packed;
          out.raw_bytes += raw;
          out.wire_bytes += piece.size();
          out.frames.push_back(std::move(piece));
          continue;
        }
      }
      piece.owned = chunk_header(static_cast<uint32_t>(index), offset, static_cast<uint32_t>(raw), kCodecStored, checksum, raw);
      piece.keep = a.keep;
      piece.external = reinterpret_cast<const char*>(data);
      piece.external_size = raw;
      out.raw_bytes += raw;
      out.wire_bytes += piece.size();
      out.frames.push_back(std::move(piece));
    }
  }
  return out;
}

std::vector<ManifestEntry> parse_manifest(const Json& manifest, const AttachmentLimits& limits) {
  if (!manifest.is_array()) throw AttachmentError("'attachments' must be an array");
  if (manifest.size() > limits.max_attachments)
    throw AttachmentError("a message may carry at most " + std::to_string(limits.max_attachments) + " attachments, not " +
                          std::to_string(manifest.size()));
  std::vector<ManifestEntry> entries;
  uint64_t total = 0;
  for (const Json& e : manifest) {
    if (!e.is_object()) throw AttachmentError("every attachment must be described by an object");
    ManifestEntry m;
    const auto name = e.find("name");
    if (name == e.end() || !name->is_string() || name->get_ref<const std::string&>().empty() ||
        name->get_ref<const std::string&>().size() > 200)
      throw AttachmentError("an attachment needs a 'name' of 1 to 200 characters");
    m.name = name->get<std::string>();
    const std::string kind = e.value("kind", "");
    if (kind != "image" && kind != "file") throw AttachmentError("attachment '" + m.name + "': 'kind' must be \"image\" or \"file\"");
    m.kind = kind == "image" ? Attachment::Kind::Image : Attachment::Kind::File;
    const auto bytes = e.find("bytes"), chunks = e.find("chunks");
    const auto count = [](const Json& v) { return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0); };
    if (bytes == e.end() || !count(*bytes) || chunks == e.end() || !count(*chunks))
      throw AttachmentError("attachment '" + m.name + "': 'bytes' and 'chunks' must be non-negative integers");
    m.bytes = bytes->get<uint64_t>();
    const uint64_t chunk_count = chunks->get<uint64_t>();
    if (m.bytes > limits.max_total_bytes || total + m.bytes > limits.max_total_bytes)
      throw AttachmentError("attachment '" + m.name + "' of " + std::to_string(m.bytes) + " bytes takes the message over its limit of " +
                            std::to_string(limits.max_total_bytes) + " bytes");
    total += m.bytes;
    if (m.kind == Attachment::Kind::Image) {
      const auto image = e.find("image");
      if (image == e.end() || !image->is_object()) throw AttachmentError("image attachment '" + m.name + "' has no 'image' description");
      Json ref = *image;
      ref["shm"] = m.name;
      if (auto problem = protocol::check_image_ref(ref)) throw AttachmentError("image attachment '" + m.name + "': " + *problem);
      m.desc = protocol::image_ref_from_json(ref).desc;
      uint64_t size = 0;
      try {
        size = image_data_size(m.desc);
      } catch (const ImageError& err) {
        throw AttachmentError("image attachment '" + m.name + "': " + err.what());
      }
      if (size != m.bytes)
        throw AttachmentError("image attachment '" + m.name + "' announces " + std::to_string(m.bytes) + " bytes but its size needs " +
                              std::to_string(size));
      m.blank = e.value("blank", false);
    }
    const uint64_t expected_chunks = m.blank ? 0 : (m.bytes + kAttachmentChunkBytes - 1) / kAttachmentChunkBytes;
    if (chunk_count != expected_chunks)
      throw AttachmentError("attachment '" + m.name + "' announces " + std::to_string(chunk_count) + " chunks; " +
                            std::to_string(m.bytes) + " bytes take " + std::to_string(expected_chunks));
    m.chunks = static_cast<uint32_t>(chunk_count);
    entries.push_back(std::move(m));
  }
  return entries;
}

AttachmentReceiver::AttachmentReceiver(std::vector<ManifestEntry> entries, std::vector<Sink> sinks)
    : entries_(std::move(entries)), sinks_(std::move(sinks)) {
  skip_finished();
}

void AttachmentReceiver::skip_finished() {
  // Blank images carry no chunks; the others are done when their bytes and chunks are all in.
  while (current_ < entries_.size() &&
         (entries_[current_].chunks == 0 || (received_ == entries_[current_].bytes && chunks_seen_ == entries_[current_].chunks))) {
    ++current_;
    received_ = 0;
    chunks_seen_ = 0;
  }
}

void AttachmentReceiver::feed(const std::string& payload) {
  wire_bytes_ += payload.size() + 4;
  if (payload.size() < kChunkHeaderBytes || std::memcmp(payload.data(), kChunkMagic, 4) != 0)
    throw AttachmentError("a binary frame without a chunk header");
  const auto* p = reinterpret_cast<const unsigned char*>(payload.data());
  const uint32_t index = get32(p + 4);
  const uint64_t offset = get64(p + 8);
  const uint32_t raw_size = get32(p + 16);
  const uint32_t codec = get32(p + 20);
  const uint64_t checksum = get64(p + 24);
  const uint8_t* stored = p + kChunkHeaderBytes;
  const std::size_t stored_size = payload.size() - kChunkHeaderBytes;
  if (current_ >= entries_.size())
    throw AttachmentError("a binary frame after every announced attachment was complete: more data than announced");
  const ManifestEntry& entry = entries_[current_];
  if (index != current_)
    throw AttachmentError("a chunk of attachment " + std::to_string(index) + " arrived while attachment " + std::to_string(current_) +
                          " ('" + entry.name + "') was incomplete");
  if (offset != received_)
    throw AttachmentError("attachment '" + entry.name + "': a chunk for offset " + std::to_string(offset) + " arrived after " +
                          std::to_string(received_) + " bytes");
  if (raw_size == 0 || raw_size > kAttachmentChunkBytes || offset + raw_size > entry.bytes)
    throw AttachmentError("attachment '" + entry.name + "' is larger than announced (" + std::to_string(entry.bytes) +
                          " bytes): a chunk of " + std::to_string(raw_size) + " bytes at offset " + std::to_string(offset));
  const Sink& sink = sinks_[current_];
  uint8_t* target = nullptr;
  if (sink.data) {
    target = sink.data + offset;
  } else {
    scratch_.resize(raw_size);
    target = scratch_.data();
  }
  if (codec == kCodecStored) {
    if (stored_size != raw_size)
      throw AttachmentError("attachment '" + entry.name + "': a stored chunk holds " + std::to_string(stored_size) + " bytes, not " +
                            std::to_string(raw_size));
    std::memcpy(target, stored, raw_size);
  } else if (codec == kCodecZstd) {
    thread_local DCtx dctx;
    const std::size_t n = ZSTD_decompressDCtx(dctx.ctx, target, raw_size, stored, stored_size);
    if (ZSTD_isError(n) || n != raw_size)
      throw AttachmentError("attachment '" + entry.name + "': a compressed chunk does not decompress to its " +
                            std::to_string(raw_size) + " bytes" + (ZSTD_isError(n) ? std::string(" (") + ZSTD_getErrorName(n) + ")" : ""));
  } else {
    throw AttachmentError("attachment '" + entry.name + "': unknown chunk encoding " + std::to_string(codec));
  }
  if (XXH3_64bits(target, raw_size) != checksum)
    throw AttachmentError("attachment '" + entry.name + "': the chunk at offset " + std::to_string(offset) +
                          " does not match its checksum (damaged in transit)");
  if (!sink.data && sink.write) sink.write(target, raw_size);
  received_ += raw_size;
  ++chunks_seen_;
  skip_finished();
}

void for_each_image_ref(Json& j, const std::function<void(Json& ref)>& fn) {
  if (j.is_object()) {
    if (auto it = j.find("shm"); it != j.end() && it->is_string()) {
      fn(j);
      return;
    }
    for (auto& [key, value] : j.items()) for_each_image_ref(value, fn);
  } else if (j.is_array()) {
    for (auto& value : j) for_each_image_ref(value, fn);
  }
}

void for_each_image_ref(const Json& j, const std::function<void(const Json& ref)>& fn) {
  if (j.is_object()) {
    if (auto it = j.find("shm"); it != j.end() && it->is_string()) {
      fn(j);
      return;
    }
    for (const auto& [key, value] : j.items()) for_each_image_ref(value, fn);
  } else if (j.is_array()) {
    for (const auto& value : j) for_each_image_ref(value, fn);
  }
}

}  // namespace kiln::ipc
