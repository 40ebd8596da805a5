#include "service/server/tls_listener.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "ipc/frame.h"
#include "ipc/tls_stream.h"
#include "protocol/jsonrpc.h"
#include "service/remote/certificate.h"
#include "service/remote/remote_access.h"
#include "service/server/server.h"

namespace kiln::service {
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {
constexpr unsigned char kTlsHandshakeRecord = 0x16;

std::string endpoint_string(const tcp::endpoint& e) {
  const std::string a = e.address().to_string();
  return (e.address().is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(e.port());
}

// One accepted connection until its TLS handshake is done.
struct Handshake : std::enable_shared_from_this<Handshake> {
  Handshake(tcp::socket s, std::shared_ptr<ssl::context> ctx)
      : socket(std::move(s)), context(std::move(ctx)), timer(socket.get_executor()) {}
  tcp::socket socket;
  std::shared_ptr<ssl::context> context;
  std::unique_ptr<ipc::TlsSocket> tls;
  asio::steady_timer timer;
  unsigned char first = 0;
  std::string peer, address, plain_reply;
  bool settled = false;
  bool timed_out = false;

  void close_socket() {
    boost::system::error_code ignored;
    if (tls) {
      tls->lowest_layer().shutdown(tcp::socket::shutdown_both, ignored);
      tls->lowest_layer().close(ignored);
    } else {
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
    }
  }
};
}  // namespace

std::pair<std::string, uint16_t> parse_listen_address(const std::string& listen) {
  const char* help = " (--listen takes HOST:PORT, e.g. 0.0.0.0:7433 for every interface, 127.0.0.1:7433, [::]:7433)";
  std::string host, port;
  if (!listen.empty() && listen.front() == '[') {
    const auto close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':')
      throw std::runtime_error("'" + listen + "' is not an address" + help);
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("'" + listen + "' has no port" + help);
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535)
    throw std::runtime_error("'" + listen + "' is not an address" + help);
  return {host, static_cast<uint16_t>(std::stoi(port))};
}

TlsListener::TlsListener(asio::io_context& io, Server& server, RemoteAccess& remote, ipc::ConnectionLimits limits)
    : io_(io), server_(server), remote_(remote), limits_(limits), acceptor_(io) {}

TlsListener::~TlsListener() { stop(); }

void TlsListener::start(const std::string& listen, const TlsIdentity& identity) {
  context_ = ipc::make_server_tls_context(identity.cert, identity.key);
  const auto [host, port] = parse_listen_address(listen);
  boost::system::error_code ec;
  tcp::resolver resolver(io_);
  const auto endpoints = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) throw std::runtime_error("cannot listen on " + listen + ": " + ec.message());
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + listen + ": " + ec.message() +
                             (ec == asio::error::address_in_use ? " (another program, perhaps another kilnd, uses that port; "
                                                                  "choose another with --listen)"
                                                                : ""));
  accept_next();
}

void TlsListener::stop() {
  if (stopped_.exchange(true)) return;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

std::string TlsListener::bound_address() const {
  boost::system::error_code ec;
  const auto e = acceptor_.local_endpoint(ec);
  return ec ? "" : endpoint_string(e);
}

void TlsListener::accept_next() {
  acceptor_.async_accept(asio::make_strand(io_), [this](const boost::system::error_code& ec, tcp::socket socket) {
    if (stopped_) return;
    if (!ec) on_accepted(std::move(socket));
    else if (ec != asio::error::operation_aborted) spdlog::warn("remote: accept failed: {}", ec.message());
    accept_next();
  });
}

void TlsListener::on_accepted(tcp::socket socket) {
  boost::system::error_code ec;
  const tcp::endpoint remote_end = socket.remote_endpoint(ec);
  if (ec) return;
  auto h = std::make_shared<Handshake>(std::move(socket), context_);
  h->peer = endpoint_string(remote_end);
  h->address = remote_end.address().to_string();
  if (!remote_.admit_unauthenticated(h->address)) {
    spdlog::warn("remote: refused a connection from {}: too many of its connections have not signed in yet", h->peer);
    h->close_socket();
    return;
  }
  RemoteAccess* remote = &remote_;
  auto settle = [remote, address = h->address] { remote->settle_unauthenticated(address); };
  const auto limit = remote_.settings().handshake_timeout;
  h->timer.expires_after(limit);
  h->timer.async_wait([h, limit](const boost::system::error_code& e) {
    if (e) return;
    h->timed_out = true;
    spdlog::warn("remote: closed {}: no TLS handshake within {} ms", h->peer, limit.count());
    h->close_socket();
  });
  // A look at the first byte: a TLS client starts with a handshake record; anything else is
  // told in plain words (and in a Kiln frame) where it went wrong.
  h->socket.async_receive(
      asio::buffer(&h->first, 1), tcp::socket::message_peek,
      [this, h, settle](const boost::system::error_code& e, std::size_t n) {
        if (e || n == 0 || h->timed_out) {
          h->timer.cancel();
          settle();
          h->close_socket();
          return;
        }
        if (h->first != kTlsHandshakeRecord) {
          h->timer.cancel();
          spdlog::warn("remote: refused {}: it does not speak TLS (plain TCP)", h->peer);
          h->plain_reply = ipc::encode_frame(protocol::encode(protocol::make_error(
              nullptr, protocol::ErrorCode::InvalidRequest,
              "this is kilnd's remote port and it speaks only TLS: connect with a Kiln client to kiln+tls://HOST:PORT "
              "(`kiln remote add`); plain TCP is never served")));
          asio::async_write(h->socket, asio::buffer(h->plain_reply), [h, settle](const boost::system::error_code&, std::size_t) {
            settle();
            h->close_socket();
          });
          return;
        }
        h->tls = std::make_unique<ipc::TlsSocket>(std::move(h->socket), *h->context);
        h->tls->async_handshake(ssl::stream_base::server, [this, h, settle](const boost::system::error_code& he) {
          h->timer.cancel();
          if (he || h->timed_out || stopped_) {
            if (he && !h->timed_out)
              spdlog::warn("remote: TLS handshake with {} failed: {}", h->peer, he.message());
            settle();
            h->close_socket();
            return;
          }
          boost::system::error_code ignored;
          h->tls->lowest_layer().set_option(tcp::no_delay(true), ignored);
          auto connection = std::make_shared<ipc::FramedConnection>(ipc::make_tls_stream(std::move(h->tls), h->context), limits_);
          spdlog::debug("remote: TLS connection from {}", h->peer);
          server_.adopt(std::move(connection), settle);
        });
      });
}

}  // namespace kiln::service
