#pragma once
// Length-prefixed frames: a 4-byte little-endian word, then the payload.
//   bit 31 clear: a JSON frame; the word is the payload's length (UTF-8 JSON, at most 16 MiB).
//   bit 31 set:   a binary frame (remote connections only): the low 31 bits are the length of a
//                 binary attachment chunk (shared/ipc/attachments.h) that follows the JSON
//                 message naming it. Local connections never carry them and refuse them.
// FrameDecoder is incremental: feed it whatever the socket delivered and take out whole frames.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/version.h"

namespace kiln::ipc {

inline constexpr uint32_t kBinaryFrameFlag = 0x80000000u;

std::string encode_frame(std::string_view payload);    // header + payload in one buffer
std::string binary_frame_word(std::size_t payload_size);  // the 4 header bytes of a binary frame

struct Frame {
  bool binary = false;
  std::string payload;
};

class FrameDecoder {
 public:
  // max_binary_bytes 0: binary frames are refused (local connections).
  explicit FrameDecoder(std::size_t max_frame_bytes = protocol::kMaxFrameBytes, std::size_t max_binary_bytes = 0)
      : max_(max_frame_bytes), max_binary_(max_binary_bytes) {}

  // Appends bytes. Returns false (and sets error()) once a header announces a frame over the
  // limit; the stream cannot be resynchronised after that and the connection must close.
  bool feed(const char* data, std::size_t size);

  // The next complete frame, JSON or binary, if one is buffered.
  std::optional<Frame> next_frame();
  // The next complete JSON payload; a binary frame here is an error (for JSON-only readers).
  std::optional<std::string> next();

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  uint64_t announced_size() const { return announced_; }  // size of the refused frame
  // True while part of a frame has arrived but not all of it (for stall timeouts).
  bool mid_frame() const { return buffer_.size() > consumed_; }
  std::size_t buffered_bytes() const { return buffer_.size() - consumed_; }

 private:
  bool check_header();
  std::size_t max_, max_binary_;
  std::string buffer_;
  std::size_t consumed_ = 0;
  uint64_t announced_ = 0;
  std::string error_;
};

}  // namespace kiln::ipc
