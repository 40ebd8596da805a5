#pragma once
// kilnd --listen HOST:PORT: remote clients over TLS (1.2 or newer, OpenSSL through
// boost::asio::ssl). Off unless asked for; there is no plain-TCP mode. Each accepted connection
// gets a time limit for its handshake (and, in its Session, for its hello with a token); a
// client that speaks plain TCP is told, in a frame it can read, to use kiln+tls://. Addresses
// with too many connections not yet signed in are refused.
#include <atomic>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "ipc/framed_connection.h"

namespace boost::asio::ssl {
class context;
}

namespace kiln::service {

class RemoteAccess;
class Server;
struct TlsIdentity;

class TlsListener {
 public:
  TlsListener(boost::asio::io_context& io, Server& server, RemoteAccess& remote, ipc::ConnectionLimits limits);
  ~TlsListener();

  // Binds `listen` ("HOST:PORT"; port 0 picks a free one) with the identity's certificate.
  // Throws std::runtime_error with a plain-language message.
  void start(const std::string& listen, const TlsIdentity& identity);
  void stop();
  std::string bound_address() const;  // "127.0.0.1:7433"

 private:
  void accept_next();
  void on_accepted(boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  Server& server_;
  RemoteAccess& remote_;
  ipc::ConnectionLimits limits_;
  std::shared_ptr<boost::asio::ssl::context> context_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::atomic<bool> stopped_{false};
};

// "HOST:PORT" (HOST may be a name, an IPv4 address or [v6]) → host and port. Throws.
std::pair<std::string, uint16_t> parse_listen_address(const std::string& listen);

}  // namespace kiln::service
