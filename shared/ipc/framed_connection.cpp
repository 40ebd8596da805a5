#include "ipc/framed_connection.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace kiln::ipc {

namespace {
constexpr std::size_t kReadChunk = 256 * 1024;
}

FramedConnection::FramedConnection(LocalSocket socket, ConnectionLimits limits)
    : socket_(std::move(socket)),
      strand_(asio::make_strand(socket_.get_executor())),
      stall_timer_(strand_),
      limits_(limits),
      decoder_(limits.max_frame_bytes),
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
  socket_.async_read_some(asio::buffer(read_buffer_.get(), kReadChunk),
                          asio::bind_executor(strand_, [self](const boost::system::error_code& ec, std::size_t n) {
                            self->on_read(ec, n);
                          }));
}

void FramedConnection::on_read(const boost::system::error_code& ec, std::size_t n) {
  if (!open_) return;
  if (ec) {
    if (decoder_.mid_frame())
      do_close("peer closed the connection in the middle of a frame (" + std::to_string(decoder_.buffered_bytes()) +
               " bytes received)");
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
    std::optional<std::string> payload = decoder_.next();
    if (!payload) break;
    if (handlers_.on_frame) handlers_.on_frame(std::move(*payload));
  }
  if (decoder_.failed()) {
    if (handlers_.on_frame_error) handlers_.on_frame_error(decoder_.error());
    if (!close_after_write_) do_close(decoder_.error());
    return;
  }
  if (decoder_.mid_frame()) arm_stall_timer();
  if (!close_after_write_) read_more();
}

void FramedConnection::arm_stall_timer() {
  auto self = shared_from_this();
  stall_timer_.expires_after(limits_.stall_timeout);
  stall_timer_.async_wait([self](const boost::system::error_code& ec) {
    if (ec || !self->open_ || !self->decoder_.mid_frame()) return;
    if (std::chrono::steady_clock::now() - self->last_progress_ >= self->limits_.stall_timeout)
      self->do_close("peer stopped sending in the middle of a frame");
    else
      self->arm_stall_timer();
  });
}

void FramedConnection::send(std::string payload) {
  auto self = shared_from_this();
  asio::dispatch(strand_, [self, frame = encode_frame(payload)]() mutable {
    if (!self->open_ || self->close_after_write_) return;
    self->outgoing_bytes_ += frame.size();
    if (self->outgoing_bytes_ > self->limits_.max_outgoing_bytes) {
      self->do_close("peer is not reading what it is sent (" + std::to_string(self->outgoing_bytes_ >> 20) +
                     " MiB queued)");
      return;
    }
    self->outgoing_.push_back(std::move(frame));
    if (!self->writing_) self->write_next();
  });
}

void FramedConnection::send_then_close(std::string payload) {
  auto self = shared_from_this();
  asio::dispatch(strand_, [self, frame = encode_frame(payload)]() mutable {
    if (!self->open_ || self->close_after_write_) return;
    self->outgoing_bytes_ += frame.size();
    self->outgoing_.push_back(std::move(frame));
    self->close_after_write_ = true;
    self->close_reason_ = "closed after a fatal protocol error";
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
  auto self = shared_from_this();
  asio::async_write(socket_, asio::buffer(outgoing_.front()),
                    asio::bind_executor(strand_, [self](const boost::system::error_code& ec, std::size_t) {
                      if (!self->open_) return;
                      if (ec) {
                        self->do_close("write failed: " + ec.message());
                        return;
                      }
                      self->outgoing_bytes_ -= self->outgoing_.front().size();
                      self->outgoing_.pop_front();
                      self->write_next();
                    }));
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
  boost::system::error_code ignored;
  stall_timer_.cancel();
  socket_.shutdown(LocalSocket::shutdown_both, ignored);
  socket_.close(ignored);
  outgoing_.clear();
  outgoing_bytes_ = 0;
  if (handlers_.on_close) handlers_.on_close(reason);
  // Drop the handlers (they may hold the session) later: one of them may be running right now.
  auto self = shared_from_this();
  asio::post(strand_, [self] { self->handlers_ = {}; });
}

}  // namespace kiln::ipc
