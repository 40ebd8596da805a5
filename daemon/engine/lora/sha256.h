#pragma once
// SHA-256 for the kohya / sd-webui-additional-networks LoRA hashes: a small streaming face over
// OpenSSL's EVP digest (the one SHA-256 Kiln uses; the service hashes model files with it too).
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace kiln::engine::lora {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void update(const void* data, size_t size);
  std::array<uint8_t, 32> digest();  // finishes; the object is spent afterwards
  std::string hex_digest();

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

std::string sha256_hex(const void* data, size_t size);
std::string to_hex(const uint8_t* bytes, size_t size);

}  // namespace kiln::engine::lora
