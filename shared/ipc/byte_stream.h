#pragma once
// The byte stream under a FramedConnection: a local stream socket, or TLS over TCP for a remote
// daemon (OpenSSL through boost::asio::ssl). Every operation is started on the connection's strand and
// completes on it: the handlers are type-erased (std::function), which drops an executor bound to
// them, so the strand is passed explicitly and bound inside the stream.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/strand.hpp>

namespace boost::asio::ssl {
class context;
}

namespace kiln::ipc {

namespace asio = boost::asio;
using LocalSocket = asio::local::stream_protocol::socket;

class ByteStream {
 public:
  using IoHandler = std::function<void(const boost::system::error_code&, std::size_t)>;
  using Strand = asio::strand<asio::any_io_executor>;
  virtual ~ByteStream() = default;
  virtual asio::any_io_executor executor() = 0;
  // The handler (and, for TLS, every intermediate step of the operation) runs on `strand`.
  virtual void async_read_some(asio::mutable_buffer buffer, const Strand& strand, IoHandler handler) = 0;
  // Writes every byte of every buffer, then calls the handler on `strand`.
  virtual void async_write(std::vector<asio::const_buffer> buffers, const Strand& strand, IoHandler handler) = 0;
  virtual void close() = 0;  // immediate; pending operations end with operation_aborted
  virtual bool is_remote() const = 0;
  virtual std::string peer() const = 0;  // "local", or the remote address "203.0.113.5:51234"
  virtual int native_handle() = 0;
};

std::unique_ptr<ByteStream> make_local_stream(LocalSocket socket);

}  // namespace kiln::ipc
