#include "service/remote/certificate.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "ipc/tls_stream.h"
#include "service/server/server.h"

namespace kiln::service {
namespace fs = std::filesystem;

namespace {
template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what + ": " + ipc::openssl_errors()); }

PkeyPtr make_key() {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx.get(), NID_X9_62_prime256v1) != 1)
    fail("cannot prepare a TLS key");
  EVP_PKEY* key = nullptr;
  if (EVP_PKEY_keygen(ctx.get(), &key) != 1) fail("cannot make a TLS key");
  return PkeyPtr(key);
}

void add_extension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext || X509_add_ext(cert, ext, -1) != 1) fail("cannot add a certificate extension");
  X509_EXTENSION_free(ext);
}

X509Ptr make_certificate(EVP_PKEY* key, const std::string& common_name) {
  X509Ptr cert(X509_new());
  if (!cert) fail("cannot make a certificate");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) fail("cannot draw a serial number");
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 60L * 60 * 24 * 3650);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("Kiln"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key);
  add_extension(cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), NID_key_usage, "critical,digitalSignature");
  add_extension(cert.get(), NID_ext_key_usage, "serverAuth");
  if (X509_sign(cert.get(), key, EVP_sha256()) == 0) fail("cannot sign the certificate");
  return cert;
}

// Opens `path` for writing, created 0600 (never following a link).
FILE* open_private(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + path.string() + ": " + std::strerror(errno));
  FILE* f = ::fdopen(fd, "wb");
  if (!f) {
    ::close(fd);
    throw std::runtime_error("cannot write " + path.string());
  }
  return f;
}

void create_identity(const fs::path& cert_path, const fs::path& key_path) {
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  PkeyPtr key = make_key();
  X509Ptr cert = make_certificate(key.get(), std::string("kilnd on ") + host);
  const fs::path key_tmp = key_path.string() + ".tmp", cert_tmp = cert_path.string() + ".tmp";
  ::unlink(key_tmp.c_str());
  ::unlink(cert_tmp.c_str());
  FILE* k = open_private(key_tmp);
  const bool key_ok = PEM_write_PrivateKey(k, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fflush(k);
  ::fsync(::fileno(k));
  std::fclose(k);
  FILE* c = open_private(cert_tmp);
  const bool cert_ok = PEM_write_X509(c, cert.get()) == 1;
  std::fflush(c);
  ::fsync(::fileno(c));
  std::fclose(c);
  if (!key_ok || !cert_ok) fail("cannot write the TLS key and certificate");
  // The key first: a certificate never exists without its key.
  if (::rename(key_tmp.c_str(), key_path.c_str()) != 0 || ::rename(cert_tmp.c_str(), cert_path.c_str()) != 0)
    throw std::runtime_error("cannot put the TLS key and certificate in place in " + key_path.parent_path().string());
}
}  // namespace

TlsIdentity load_or_create_tls_identity(const fs::path& dir, const std::string& cert_file, const std::string& key_file) {
  TlsIdentity id;
  if (!cert_file.empty() || !key_file.empty()) {
    if (cert_file.empty() || key_file.empty())
      throw std::runtime_error("--tls-cert and --tls-key go together: give both, or neither to use kilnd's own certificate");
    id.cert = fs::absolute(cert_file);
    id.key = fs::absolute(key_file);
    struct stat st {};
    if (::stat(id.key.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
      throw std::runtime_error("the TLS key " + id.key.string() + " can be read by others; make it private: chmod 600 " +
                               id.key.string());
  } else {
    ensure_private_directory(dir);
    id.cert = dir / "kilnd-cert.pem";
    id.key = dir / "kilnd-key.pem";
    std::error_code ec;
    const bool have_cert = fs::exists(id.cert, ec), have_key = fs::exists(id.key, ec);
    if (!have_cert && !have_key) {
      create_identity(id.cert, id.key);
      id.created = true;
    } else if (!have_cert || !have_key) {
      throw std::runtime_error("only one of " + id.cert.string() + " and " + id.key.string() +
                               " exists; restore the other, or delete both to make a new certificate (clients will then "
                               "have to re-pin it with `kiln remote repin`)");
    }
  }
  id.fingerprint = ipc::certificate_fingerprint_of_pem(id.cert);
  return id;
}

}  // namespace kiln::service
