// FramedConnection on a real socket pair, driven by several I/O threads as in kilnd: every handler
// runs on the connection's strand, and a fatal frame error is answered before the connection ends.
#include "ipc/framed_connection.h"

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>

namespace {

namespace asio = boost::asio;
using kiln::ipc::encode_frame;
using kiln::ipc::FramedConnection;
using kiln::ipc::LocalSocket;

class IoThreads {
 public:
  explicit IoThreads(int n) : work_(asio::make_work_guard(io_)) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~IoThreads() {
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }
  asio::io_context& io() { return io_; }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

// Blocking reads on the test's end of the pair.
bool read_exact(int fd, char* out, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t got = ::recv(fd, out + done, n - done, 0);
    if (got <= 0) return false;
    done += static_cast<std::size_t>(got);
  }
  return true;
}

std::optional<std::string> read_frame(int fd) {
  unsigned char header[4];
  if (!read_exact(fd, reinterpret_cast<char*>(header), 4)) return std::nullopt;
  const uint32_t n = header[0] | header[1] << 8 | header[2] << 16 | uint32_t(header[3]) << 24;
  std::string payload(n, '\0');
  if (!read_exact(fd, payload.data(), n)) return std::nullopt;
  return payload;
}

void send_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t sent = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    ASSERT_GT(sent, 0);
    done += static_cast<std::size_t>(sent);
  }
}

TEST(FramedConnection, EveryHandlerRunsOnTheStrand) {
  IoThreads threads(4);
  LocalSocket ours(threads.io()), theirs(threads.io());
  asio::local::connect_pair(ours, theirs);
  auto conn = std::make_shared<FramedConnection>(std::move(ours));
  std::atomic<int> frames{0}, off_strand{0};
  std::promise<void> closed;
  conn->start({[&](std::string payload) {
                 if (!conn->strand().running_in_this_thread()) ++off_strand;
                 ++frames;
                 conn->send(payload);  // echoed: writes complete on the strand too
               },
               nullptr, nullptr, [&](const std::string&) { closed.set_value(); }});
  const int fd = theirs.native_handle();
  for (int i = 0; i < 200; ++i) {
    send_all(fd, encode_frame("frame " + std::to_string(i)));
    auto echo = read_frame(fd);
    ASSERT_TRUE(echo);
    EXPECT_EQ(*echo, "frame " + std::to_string(i));
  }
  EXPECT_EQ(frames.load(), 200);
  EXPECT_EQ(off_strand.load(), 0) << "handlers ran outside the connection's strand";
  theirs.close();
  EXPECT_EQ(closed.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

// A frame over the limit is answered (send_then_close from the handler) and only then closed:
// the answer must never be lost to the connection closing first.
TEST(FramedConnection, AnOversizeFrameIsAnsweredBeforeTheConnectionCloses) {
  IoThreads threads(4);
  for (int round = 0; round < 100; ++round) {
    LocalSocket ours(threads.io()), theirs(threads.io());
    asio::local::connect_pair(ours, theirs);
    kiln::ipc::ConnectionLimits limits;
    limits.max_frame_bytes = 1 << 20;
    auto conn = std::make_shared<FramedConnection>(std::move(ours), limits);
    std::promise<void> closed;
    conn->start({nullptr, nullptr, [&](const std::string& problem) { conn->send_then_close("refused: " + problem); },
                 [&](const std::string&) { closed.set_value(); }});
    const uint32_t n = 100u << 20;
    send_all(theirs.native_handle(), std::string{char(n & 0xff), char((n >> 8) & 0xff), char((n >> 16) & 0xff),
                                                 char(n >> 24)} + std::string(4096, 'J'));
    auto reply = read_frame(theirs.native_handle());
    ASSERT_TRUE(reply) << "round " << round << ": the connection closed without its answer";
    EXPECT_EQ(reply->rfind("refused: ", 0), 0u);
    char byte;
    EXPECT_LE(::recv(theirs.native_handle(), &byte, 1, 0), 0) << "then the connection is closed";
    EXPECT_EQ(closed.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  }
}

}  // namespace
