#include "ipc/framed_connection.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace kiln::ipc {

namespace {
constexpr std::size_t kReadChunk = 256 * 1024;
constexpr std::size_t kMaxPiecesPerWrite = 64;

class LocalStream final : public ByteStream {
 public:
  explicit LocalStream(LocalSocket socket) : socket_(std::move(socket)) {}
  asio::any_io_executor executor() override { return socket_.get_executor(); }
  void async_read_some(asio::mutable_buffer buffer, const Strand& strand, IoHandler handler) override {
    socket_.async_read_some(buffer, asio::bind_executor(strand, std::move(handler)));
  }
  void async_write(std::vector<asio::const_buffer> buffers, const Strand& strand, IoHandler handler) override {
    asio::async_write(socket_, buffers, asio::bind_executor(strand, std::move(handler)));
  }
  void close() override {
    boost::system::error_code ignored;
    socket_.shutdown(LocalSocket::shutdown_both, ignored);
    socket_.close(ignored);
  }
  bool is_remote() const override { return false; }
  std::string peer() const override { return "local"; }
  int native_handle() override { return socket_.native_handle(); }

 private:
  LocalSocket socket_;
};
}  // namespace

std::unique_ptr<ByteStream> make_local_stream(LocalSocket socket) { return std::make_unique<LocalStream>(std::move(socket)); }

FramedConnection::FramedConnection(LocalSocket socket, ConnectionLimits limits)
    : FramedConnection(make_local_stream(std::move(socket)), limits) {}

FramedConnection::FramedConnection(std::unique_ptr<ByteStream> stream, ConnectionLimits limits)
    : stream_(std::move(stream)),
      remote_(stream_->is_remote()),
      peer_(stream_->peer()),
      strand_(asio::make_strand(stream_->executor())),
      stall_timer_(strand_),
      limits_(limits),
      decoder_(limits.max_frame_bytes, limits.max_binary_frame_bytes),
      read_buffer_(new char[kReadChunk]) {}

FramedConnection::~FramedConnection() = default;

void FramedConnection::start(Handlers handlers) {
  auto self = shared_from_this();
  asio::dispatch(strand_, [self, handlers = std::move(handlers)]() mutable {
    self->handlers_ = std::move(handlers);
    self->last_progress_ = std::chrono::steady_clock::now();
    self->read_more();
  });
}

void FramedConnection::read_more() {
  if (!open_) return;
  auto self = shared_from_this();
  stream_->async_read_some(asio::buffer(read_buffer_.get(), kReadChunk), strand_,
                           [self](const boost::system::error_code& ec, std::size_t n) { self->on_read(ec, n); });
}

void FramedConnection::on_read(const boost::system::error_code& ec, std::size_t n) {
  if (!open_) return;
  if (ec) {
    if (decoder_.mid_frame())
      do_close("peer closed the connection in the middle of a frame (" + std::to_string(decoder_.buffered_bytes()) +
               " bytes received)");
    else if (expecting_more_)
      do_close("peer closed the connection before the binary frames its message announced");
    else
      do_close(ec == asio::error::eof ? "peer closed the connection" : "read failed: " + ec.message());
    return;
  }
  last_progress_ = std::chrono::steady_clock::now();
  if (!decoder_.feed(read_buffer_.get(), n)) {
    if (handlers_.on_frame_error) handlers_.on_frame_error(decoder_.error());
    // The handler normally answers with send_then_close; make sure the connection ends anyway.
    if (!close_after_write_) do_close(decoder_.error());
    return;
  }
  while (open_ && !close_after_write_) {
    std::optional<Frame> frame = decoder_.next_frame();
    if (!frame) break;
    if (frame->binary) {
      if (handlers_.on_binary) handlers_.on_binary(std::move(frame->payload));
    } else if (handlers_.on_frame) {
      handlers_.on_frame(std::move(frame->payload));
    }
  }
  if (decoder_.failed()) {
    if (handlers_.on_frame_error) handlers_.on_frame_error(decoder_.error());
    if (!close_after_write_) do_close(decoder_.error());
    return;
  }
  if (stalled_state()) arm_stall_timer();
  if (!close_after_write_) read_more();
}

void FramedConnection::set_expecting_more(bool expecting) {
  expecting_more_ = expecting;
  if (expecting) {
    last_progress_ = std::chrono::steady_clock::now();
    arm_stall_timer();
  }
}

void FramedConnection::arm_stall_timer() {
  if (stall_timer_armed_) return;  // the armed timer looks at the progress made when it fires
  stall_timer_armed_ = true;
  auto self = shared_from_this();
  stall_timer_.expires_after(limits_.stall_timeout);
  stall_timer_.async_wait(asio::bind_executor(strand_, [self](const boost::system::error_code& ec) {
    self->stall_timer_armed_ = false;
    if (ec || !self->open_ || !self->stalled_state()) return;
    if (std::chrono::steady_clock::now() - self->last_progress_ >= self->limits_.stall_timeout)
      self->do_close(self->decoder_.mid_frame() ? "peer stopped sending in the middle of a frame"
                                                : "peer stopped sending before the binary frames its message announced");
    else
      self->arm_stall_timer();
  }));
}

void FramedConnection::send(std::string payload) {
  std::vector<OutgoingPiece> pieces(1);
  pieces[0].owned = encode_frame(payload);
  enqueue(std::move(pieces), false);
}

void FramedConnection::send_message(OutgoingMessage message) {
  std::vector<OutgoingPiece> pieces;
  pieces.reserve(1 + message.binary.size());
  pieces.emplace_back();
  pieces.back().owned = encode_frame(message.json);
  for (auto& b : message.binary) pieces.push_back(std::move(b));
  enqueue(std::move(pieces), false);
}

void FramedConnection::send_then_close(std::string payload) {
  std::vector<OutgoingPiece> pieces(1);
  pieces[0].owned = encode_frame(payload);
  enqueue(std::move(pieces), true);
}

void FramedConnection::enqueue(std::vector<OutgoingPiece> pieces, bool then_close) {
  auto self = shared_from_this();
  asio::dispatch(strand_, [self, pieces = std::move(pieces), then_close]() mutable {
    if (!self->open_ || self->close_after_write_) return;
    // The backlog already queued decides: one large message (an image) may pass, a peer that
    // leaves hundreds of MiB unread is cut off.
    if (!then_close && self->outgoing_bytes_ > self->limits_.max_outgoing_bytes) {
      self->do_close("peer is not reading what it is sent (" + std::to_string(self->outgoing_bytes_ >> 20) + " MiB queued)");
      return;
    }
    for (auto& p : pieces) {
      self->outgoing_bytes_ += p.size();
      self->outgoing_.push_back(std::move(p));
    }
    if (then_close) {
      self->close_after_write_ = true;
      self->close_reason_ = "closed after a fatal protocol error";
    }
    if (!self->writing_) self->write_next();
  });
}

void FramedConnection::write_next() {
  if (outgoing_.empty()) {
    writing_ = false;
    if (close_after_write_) do_close(close_reason_);
    return;
  }
  writing_ = true;
  std::vector<asio::const_buffer> buffers;
  std::size_t pieces = 0;
  for (auto it = outgoing_.begin(); it != outgoing_.end() && pieces < kMaxPiecesPerWrite; ++it, ++pieces) {
    if (!it->owned.empty()) buffers.emplace_back(it->owned.data(), it->owned.size());
    if (it->external_size) buffers.emplace_back(it->external, it->external_size);
  }
  auto self = shared_from_this();
  stream_->async_write(std::move(buffers), strand_,
                       [self, pieces](const boost::system::error_code& ec, std::size_t) {
                         if (!self->open_) return;
                         if (ec) {
                           self->do_close("write failed: " + ec.message());
                           return;
                         }
                         for (std::size_t i = 0; i < pieces; ++i) {
                           self->outgoing_bytes_ -= self->outgoing_.front().size();
                           self->outgoing_.pop_front();
                         }
                         self->write_next();
                       });
}

void FramedConnection::close(const std::string& reason) {
  auto self = shared_from_this();
  asio::post(strand_, [self, reason] { self->do_close(reason); });
}

void FramedConnection::close_after_writes(const std::string& reason) {
  auto self = shared_from_this();
  asio::post(strand_, [self, reason] {
    if (!self->open_) return;
    self->close_after_write_ = true;
    self->close_reason_ = reason;
    if (!self->writing_) self->do_close(reason);
  });
}

void FramedConnection::do_close(const std::string& reason) {
  if (closed_notified_) return;
  closed_notified_ = true;
  open_ = false;
  stall_timer_.cancel();
  stream_->close();
  outgoing_.clear();
  outgoing_bytes_ = 0;
  if (handlers_.on_close) handlers_.on_close(reason);
  // Drop the handlers (they may hold the session) later: one of them may be running right now.
  auto self = shared_from_this();
  asio::post(strand_, [self] { self->handlers_ = {}; });
}

}  // namespace kiln::ipc
