#pragma once
// TLS over TCP as a ByteStream, and what both ends of a remote connection share: the TLS
// contexts (TLS 1.2 or newer, forward-secret AEAD ciphers only) and certificate fingerprints.
// Peers are not checked against certificate authorities: the client pins the daemon's
// certificate fingerprint on first contact, as SSH does (shared/client/remotes.h).
#include <filesystem>
#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include "ipc/byte_stream.h"

namespace kiln::ipc {

using TcpSocket = asio::ip::tcp::socket;
using TlsSocket = asio::ssl::stream<TcpSocket>;

// The server's context from PEM files. Throws std::runtime_error naming the file and the problem.
std::shared_ptr<asio::ssl::context> make_server_tls_context(const std::filesystem::path& cert_pem,
                                                            const std::filesystem::path& key_pem);
// The client's context: TLS 1.2+, no CA verification (the caller checks the pinned fingerprint).
std::shared_ptr<asio::ssl::context> make_client_tls_context();

// "SHA256:AB:CD:..." of the DER certificate, as `openssl x509 -noout -fingerprint -sha256` prints it.
std::string certificate_fingerprint(const void* x509);
std::string certificate_fingerprint_of_pem(const std::filesystem::path& cert_pem);  // throws
// The fingerprint of the certificate the peer presented on a finished handshake ("" when none).
std::string peer_fingerprint(TlsSocket& stream);
// Fingerprints compare without regard to case and the "SHA256:" prefix.
bool same_fingerprint(const std::string& a, const std::string& b);

// Wraps an established TLS connection; keeps `context` alive as long as the stream.
std::unique_ptr<ByteStream> make_tls_stream(std::unique_ptr<TlsSocket> stream, std::shared_ptr<asio::ssl::context> context);

// The OpenSSL error queue as one line (after a failed call), "" when empty.
std::string openssl_errors();

}  // namespace kiln::ipc
