#include "ipc/tls_stream.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <stdexcept>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/write.hpp>

namespace kiln::ipc {
namespace fs = std::filesystem;
namespace ssl = asio::ssl;

namespace {
// TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3's own suites are all of that kind.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

void common_settings(ssl::context& ctx) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(native, kTls12Ciphers);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
}

class TlsStream final : public ByteStream {
 public:
  TlsStream(std::unique_ptr<TlsSocket> stream, std::shared_ptr<ssl::context> context)
      : context_(std::move(context)), stream_(std::move(stream)) {
    boost::system::error_code ec;
    const auto endpoint = stream_->lowest_layer().remote_endpoint(ec);
    if (!ec) {
      const std::string address = endpoint.address().to_string();
      peer_ = (endpoint.address().is_v6() ? "[" + address + "]" : address) + ":" + std::to_string(endpoint.port());
    } else {
      peer_ = "unknown peer";
    }
  }
  asio::any_io_executor executor() override { return stream_->get_executor(); }
  void async_read_some(asio::mutable_buffer buffer, const Strand& strand, IoHandler handler) override {
    stream_->async_read_some(buffer, asio::bind_executor(strand, std::move(handler)));
  }
  void async_write(std::vector<asio::const_buffer> buffers, const Strand& strand, IoHandler handler) override {
    asio::async_write(*stream_, buffers, asio::bind_executor(strand, std::move(handler)));
  }
  void close() override {
    boost::system::error_code ignored;
    stream_->lowest_layer().shutdown(TcpSocket::shutdown_both, ignored);
    stream_->lowest_layer().close(ignored);
  }
  bool is_remote() const override { return true; }
  std::string peer() const override { return peer_; }
  int native_handle() override { return stream_->lowest_layer().native_handle(); }

 private:
  std::shared_ptr<ssl::context> context_;  // outlives the stream (declared first)
  std::unique_ptr<TlsSocket> stream_;
  std::string peer_;
};
}  // namespace

std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

std::shared_ptr<ssl::context> make_server_tls_context(const fs::path& cert_pem, const fs::path& key_pem) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  common_settings(*ctx);
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx->native_handle(), cert_pem.c_str()) != 1)
    throw std::runtime_error("cannot use the TLS certificate " + cert_pem.string() + ": " + openssl_errors() +
                             " (it must be a PEM certificate; --tls-cert names it)");
  if (SSL_CTX_use_PrivateKey_file(ctx->native_handle(), key_pem.c_str(), SSL_FILETYPE_PEM) != 1)
    throw std::runtime_error("cannot use the TLS key " + key_pem.string() + ": " + openssl_errors() +
                             " (it must be an unencrypted PEM private key; --tls-key names it)");
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    throw std::runtime_error("the TLS key " + key_pem.string() + " does not belong to the certificate " + cert_pem.string());
  return ctx;
}

std::shared_ptr<ssl::context> make_client_tls_context() {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  common_settings(*ctx);
  // No CA check: the daemon's self-made certificate is trusted by its pinned fingerprint, which
  // the client compares right after the handshake, before it sends anything (its token included).
  ctx->set_verify_mode(ssl::verify_none);
  return ctx;
}

std::string certificate_fingerprint(const void* x509) {
  if (!x509) return "";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(static_cast<const X509*>(x509), EVP_sha256(), md, &n) != 1) return "";
  std::string out = "SHA256:";
  char hex[4];
  for (unsigned int i = 0; i < n; ++i) {
    std::snprintf(hex, sizeof hex, i + 1 < n ? "%02X:" : "%02X", md[i]);
    out += hex;
  }
  return out;
}

std::string certificate_fingerprint_of_pem(const fs::path& cert_pem) {
  FILE* f = std::fopen(cert_pem.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot read the TLS certificate " + cert_pem.string());
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!cert) throw std::runtime_error("the TLS certificate " + cert_pem.string() + " is not a PEM certificate: " + openssl_errors());
  std::string fp = certificate_fingerprint(cert);
  X509_free(cert);
  return fp;
}

std::string peer_fingerprint(TlsSocket& stream) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  X509* cert = SSL_get1_peer_certificate(stream.native_handle());
#else
  X509* cert = SSL_get_peer_certificate(stream.native_handle());
#endif
  std::string fp = certificate_fingerprint(cert);
  if (cert) X509_free(cert);
  return fp;
}

bool same_fingerprint(const std::string& a, const std::string& b) {
  auto norm = [](std::string s) {
    if (s.rfind("SHA256:", 0) == 0 || s.rfind("sha256:", 0) == 0) s = s.substr(7);
    std::string out;
    for (char c : s)
      if (std::isxdigit(static_cast<unsigned char>(c))) out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    return out;
  };
  const std::string x = norm(a), y = norm(b);
  return x.size() == 64 && x == y;
}

std::unique_ptr<ByteStream> make_tls_stream(std::unique_ptr<TlsSocket> stream, std::shared_ptr<ssl::context> context) {
  return std::make_unique<TlsStream>(std::move(stream), std::move(context));
}

}  // namespace kiln::ipc
