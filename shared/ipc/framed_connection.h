#pragma once
// One framed connection over an Asio local stream socket, used by the daemon's sessions and by
// kiln::Client alike. All socket work runs on the connection's strand; send() may be called from
// any thread. Protects itself against peers that announce oversize frames, stall mid-frame or
// stop reading what they are sent.
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "ipc/frame.h"

namespace kiln::ipc {

namespace asio = boost::asio;
using LocalSocket = asio::local::stream_protocol::socket;

struct ConnectionLimits {
  std::size_t max_frame_bytes = protocol::kMaxFrameBytes;
  std::chrono::milliseconds stall_timeout{10000};  // a started frame must keep arriving
  std::size_t max_outgoing_bytes = 256u << 20;     // a peer this far behind is cut off
};

class FramedConnection : public std::enable_shared_from_this<FramedConnection> {
 public:
  struct Handlers {
    std::function<void(std::string payload)> on_frame;               // runs on the strand
    std::function<void(const std::string& problem)> on_frame_error;  // oversize frame; close follows
    std::function<void(const std::string& reason)> on_close;         // exactly once
  };

  FramedConnection(LocalSocket socket, ConnectionLimits limits = {});
  ~FramedConnection();

  void start(Handlers handlers);
  void send(std::string payload);              // thread-safe
  void send_then_close(std::string payload);   // e.g. an error before hanging up
  void close(const std::string& reason);       // thread-safe, idempotent
  void close_after_writes(const std::string& reason);  // lets queued frames go out first
  bool is_open() const { return open_.load(); }

  asio::strand<asio::any_io_executor>& strand() { return strand_; }

 private:
  void read_more();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void arm_stall_timer();
  void write_next();
  void do_close(const std::string& reason);

  LocalSocket socket_;
  asio::strand<asio::any_io_executor> strand_;
  asio::steady_timer stall_timer_;
  ConnectionLimits limits_;
  Handlers handlers_;
  FrameDecoder decoder_;
  std::unique_ptr<char[]> read_buffer_;
  std::deque<std::string> outgoing_;
  std::size_t outgoing_bytes_ = 0;
  bool writing_ = false;
  bool close_after_write_ = false;
  std::string close_reason_;
  std::chrono::steady_clock::time_point last_progress_;
  std::atomic<bool> open_{true};
  bool closed_notified_ = false;
};

}  // namespace kiln::ipc
