#include "ipc/frame.h"

namespace kiln::ipc {
namespace {
uint32_t read_le32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t(u[0]) | uint32_t(u[1]) << 8 | uint32_t(u[2]) << 16 | uint32_t(u[3]) << 24;
}

std::string le32(uint32_t n) {
  std::string s;
  for (int shift = 0; shift < 32; shift += 8) s.push_back(static_cast<char>((n >> shift) & 0xff));
  return s;
}
}  // namespace

std::string encode_frame(std::string_view payload) {
  std::string frame;
  frame.reserve(protocol::kFrameHeaderBytes + payload.size());
  frame = le32(static_cast<uint32_t>(payload.size()));
  frame.append(payload);
  return frame;
}

std::string binary_frame_word(std::size_t payload_size) { return le32(kBinaryFrameFlag | static_cast<uint32_t>(payload_size)); }

// Checks the header of the frame at consumed_ (when complete); false once it is refused.
bool FrameDecoder::check_header() {
  if (buffer_.size() - consumed_ < protocol::kFrameHeaderBytes) return true;
  const uint32_t word = read_le32(buffer_.data() + consumed_);
  if (word & kBinaryFrameFlag) {
    const uint32_t n = word & ~kBinaryFrameFlag;
    if (max_binary_ == 0) {
      announced_ = n;
      error_ = "a binary frame (" + std::to_string(n) +
               " bytes) arrived on a connection that carries only JSON frames; binary frames are for remote (TLS) connections";
      return false;
    }
    if (n > max_binary_) {
      announced_ = n;
      error_ = "binary frame of " + std::to_string(n) + " bytes is over the limit of " + std::to_string(max_binary_) + " bytes";
      return false;
    }
    return true;
  }
  if (word > max_) {
    announced_ = word;
    error_ = "frame of " + std::to_string(word) + " bytes is over the limit of " + std::to_string(max_) + " bytes";
    return false;
  }
  return true;
}

bool FrameDecoder::feed(const char* data, std::size_t size) {
  if (failed()) return false;
  // Drop consumed bytes before growing, so a long-lived connection's buffer stays small.
  if (consumed_ > 0 && consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  } else if (consumed_ > (1u << 20)) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(data, size);
  return check_header();
}

std::optional<Frame> FrameDecoder::next_frame() {
  if (failed() || buffer_.size() - consumed_ < protocol::kFrameHeaderBytes) return std::nullopt;
  if (!check_header()) return std::nullopt;
  const uint32_t word = read_le32(buffer_.data() + consumed_);
  const uint32_t n = word & ~kBinaryFrameFlag;
  if (buffer_.size() - consumed_ - protocol::kFrameHeaderBytes < n) return std::nullopt;
  Frame frame;
  frame.binary = (word & kBinaryFrameFlag) != 0;
  frame.payload = buffer_.substr(consumed_ + protocol::kFrameHeaderBytes, n);
  consumed_ += protocol::kFrameHeaderBytes + n;
  // The next frame's header may already be here: refuse it as early as a fresh feed would.
  check_header();
  return frame;
}

std::optional<std::string> FrameDecoder::next() {
  std::optional<Frame> frame = next_frame();
  if (!frame) return std::nullopt;
  if (frame->binary) {
    error_ = "a binary frame arrived where only JSON frames are read";
    return std::nullopt;
  }
  return std::move(frame->payload);
}

}  // namespace kiln::ipc
