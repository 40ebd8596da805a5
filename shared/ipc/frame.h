#pragma once
// Length-prefixed frames: a 4-byte little-endian payload length, then the payload (UTF-8 JSON).
// FrameDecoder is incremental: feed it whatever the socket delivered and take out whole frames.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/version.h"

namespace kiln::ipc {

std::string encode_frame(std::string_view payload);  // header + payload in one buffer

class FrameDecoder {
 public:
  explicit FrameDecoder(std::size_t max_frame_bytes = protocol::kMaxFrameBytes) : max_(max_frame_bytes) {}

  // Appends bytes. Returns false (and sets error()) once a header announces a frame over the
  // limit; the stream cannot be resynchronised after that and the connection must close.
  bool feed(const char* data, std::size_t size);

  // The next complete payload, if one is buffered.
  std::optional<std::string> next();

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  uint64_t announced_size() const { return announced_; }  // size of the refused frame
  // True while part of a frame has arrived but not all of it (for stall timeouts).
  bool mid_frame() const { return buffer_.size() > consumed_; }
  std::size_t buffered_bytes() const { return buffer_.size() - consumed_; }

 private:
  std::size_t max_;
  std::string buffer_;
  std::size_t consumed_ = 0;
  uint64_t announced_ = 0;
  std::string error_;
};

}  // namespace kiln::ipc
