#pragma once
// The daemon's TLS identity: a certificate and key given with --tls-cert/--tls-key, or one kilnd
// makes once and keeps in <data dir>/tls/ (EC P-256, self-signed, ten years; both files 0600).
// Clients trust it by its fingerprint, pinned on first contact.
#include <filesystem>
#include <string>

namespace kiln::service {

struct TlsIdentity {
  std::filesystem::path cert, key;
  std::string fingerprint;  // "SHA256:AB:CD:..."
  bool created = false;     // made just now
};

// Uses the given files, or <dir>/kilnd-cert.pem and kilnd-key.pem, made when missing.
// Throws std::runtime_error with a plain-language message.
TlsIdentity load_or_create_tls_identity(const std::filesystem::path& dir, const std::string& cert_file,
                                        const std::string& key_file);

}  // namespace kiln::service
