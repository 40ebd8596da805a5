#include "engine/lora/sha256.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace kiln::engine::lora {

void Sha256::Free::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("OpenSSL's SHA-256 is unavailable (EVP_DigestInit_ex failed)");
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t size) {
  if (size > 0 && EVP_DigestUpdate(ctx_.get(), data, size) != 1) throw std::runtime_error("SHA-256 update failed");
}

std::array<uint8_t, 32> Sha256::digest() {
  std::array<uint8_t, 32> out{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), out.data(), &length) != 1 || length != out.size())
    throw std::runtime_error("SHA-256 finish failed");
  return out;
}

std::string to_hex(const uint8_t* bytes, size_t size) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  s.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    s.push_back(hex[bytes[i] >> 4]);
    s.push_back(hex[bytes[i] & 15]);
  }
  return s;
}

std::string Sha256::hex_digest() {
  const auto d = digest();
  return to_hex(d.data(), d.size());
}

std::string sha256_hex(const void* data, size_t size) {
  Sha256 h;
  h.update(data, size);
  return h.hex_digest();
}

}  // namespace kiln::engine::lora
