#pragma once
// The byte stream under a FramedConnection: a local stream socket, or TLS over TCP for a remote
// daemon (OpenSSL through boost::asio::ssl). All operations run on the connection's strand.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/local/stream_protocol.hpp>

namespace boost::asio::ssl {
class context;
}

namespace kiln::ipc {

namespace asio = boost::asio;
using LocalSocket = asio::local::stream_protocol::socket;

class ByteStream {
 public:
  using IoHandler = std::function<void(const boost::system::error_code&, std::size_t)>;
  virtual ~ByteStream() = default;
  virtual asio::any_io_executor executor() = 0;
  virtual void async_read_some(asio::mutable_buffer buffer, IoHandler handler) = 0;
  // Writes every byte of every buffer, then calls the handler.
  virtual void async_write(std::vector<asio::const_buffer> buffers, IoHandler handler) = 0;
  virtual void close() = 0;  // immediate; pending operations end with operation_aborted
  virtual bool is_remote() const = 0;
  virtual std::string peer() const = 0;  // "local", or the remote address "203.0.113.5:51234"
  virtual int native_handle() = 0;
};

std::unique_ptr<ByteStream> make_local_stream(LocalSocket socket);

}  // namespace kiln::ipc
