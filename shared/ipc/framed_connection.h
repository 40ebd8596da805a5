#pragma once
// One framed connection over a ByteStream (a local socket, or TLS to a remote daemon), used by
// the daemon's sessions and by kiln::Client alike. All socket work runs on the connection's
// strand; send() may be called from any thread. Protects itself against peers that announce
// oversize frames, stall mid-frame or mid-message, or stop reading what they are sent.
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "ipc/byte_stream.h"
#include "ipc/frame.h"

namespace kiln::ipc {

struct ConnectionLimits {
  std::size_t max_frame_bytes = protocol::kMaxFrameBytes;
  std::size_t max_binary_frame_bytes = 0;          // 0: binary frames refused (local connections)
  std::chrono::milliseconds stall_timeout{10000};  // a started frame (or message) must keep arriving
  std::size_t max_outgoing_bytes = 256u << 20;     // a peer this far behind is cut off
};

// A piece of outgoing data: bytes owned here, optionally followed by bytes owned elsewhere (a
// mapped image block, a mapped file) that `keep` holds alive until they are written.
struct OutgoingPiece {
  std::string owned;
  std::shared_ptr<const void> keep;
  const char* external = nullptr;
  std::size_t external_size = 0;
  std::size_t size() const { return owned.size() + external_size; }
};

// A JSON message and the binary frames that follow it, queued as one unit (nothing interleaves).
struct OutgoingMessage {
  std::string json;  // the payload; framed when queued
  std::vector<OutgoingPiece> binary;  // each a complete binary frame (word + chunk header + data)
};

class FramedConnection : public std::enable_shared_from_this<FramedConnection> {
 public:
  struct Handlers {
    std::function<void(std::string payload)> on_frame;               // a JSON frame; runs on the strand
    std::function<void(std::string payload)> on_binary;              // a binary frame (remote only)
    std::function<void(const std::string& problem)> on_frame_error;  // oversize frame; close follows
    std::function<void(const std::string& reason)> on_close;         // exactly once
  };

  FramedConnection(LocalSocket socket, ConnectionLimits limits = {});
  FramedConnection(std::unique_ptr<ByteStream> stream, ConnectionLimits limits = {});
  ~FramedConnection();

  void start(Handlers handlers);
  void send(std::string payload);              // thread-safe
  void send_message(OutgoingMessage message);  // thread-safe
  void send_then_close(std::string payload);   // e.g. an error before hanging up
  void close(const std::string& reason);       // thread-safe, idempotent
  void close_after_writes(const std::string& reason);  // lets queued frames go out first
  bool is_open() const { return open_.load(); }
  // While a message's binary frames are still due, a pause between frames counts as a stall.
  void set_expecting_more(bool expecting);     // on the strand
  bool is_remote() const { return remote_; }
  const std::string& peer() const { return peer_; }
  int native_handle() { return stream_->native_handle(); }

  asio::strand<asio::any_io_executor>& strand() { return strand_; }

 private:
  void read_more();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void arm_stall_timer();
  bool stalled_state() const { return decoder_.mid_frame() || expecting_more_; }
  void enqueue(std::vector<OutgoingPiece> pieces, bool then_close);
  void write_next();
  void do_close(const std::string& reason);

  std::unique_ptr<ByteStream> stream_;
  bool remote_;
  std::string peer_;
  asio::strand<asio::any_io_executor> strand_;
  asio::steady_timer stall_timer_;
  ConnectionLimits limits_;
  Handlers handlers_;
  FrameDecoder decoder_;
  std::unique_ptr<char[]> read_buffer_;
  std::deque<OutgoingPiece> outgoing_;
  std::size_t outgoing_bytes_ = 0;
  bool writing_ = false;
  bool close_after_write_ = false;
  bool expecting_more_ = false;
  bool stall_timer_armed_ = false;
  std::string close_reason_;
  std::chrono::steady_clock::time_point last_progress_;
  std::atomic<bool> open_{true};
  bool closed_notified_ = false;
};

}  // namespace kiln::ipc
