#include "ipc/frame.h"

namespace kiln::ipc {
namespace {
uint32_t read_le32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t(u[0]) | uint32_t(u[1]) << 8 | uint32_t(u[2]) << 16 | uint32_t(u[3]) << 24;
}
}  // namespace

std::string encode_frame(std::string_view payload) {
  const auto n = static_cast<uint32_t>(payload.size());
  std::string frame;
  frame.reserve(protocol::kFrameHeaderBytes + payload.size());
  for (int shift = 0; shift < 32; shift += 8) frame.push_back(static_cast<char>((n >> shift) & 0xff));
  frame.append(payload);
  return frame;
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
  if (buffer_.size() - consumed_ >= protocol::kFrameHeaderBytes) {
    const uint32_t n = read_le32(buffer_.data() + consumed_);
    if (n > max_) {
      announced_ = n;
      error_ = "frame of " + std::to_string(n) + " bytes is over the limit of " + std::to_string(max_) + " bytes";
      return false;
    }
  }
  return true;
}

std::optional<std::string> FrameDecoder::next() {
  if (failed() || buffer_.size() - consumed_ < protocol::kFrameHeaderBytes) return std::nullopt;
  const uint32_t n = read_le32(buffer_.data() + consumed_);
  if (n > max_) {
    announced_ = n;
    error_ = "frame of " + std::to_string(n) + " bytes is over the limit of " + std::to_string(max_) + " bytes";
    return std::nullopt;
  }
  if (buffer_.size() - consumed_ - protocol::kFrameHeaderBytes < n) return std::nullopt;
  std::string payload = buffer_.substr(consumed_ + protocol::kFrameHeaderBytes, n);
  consumed_ += protocol::kFrameHeaderBytes + n;
  return payload;
}

}  // namespace kiln::ipc
