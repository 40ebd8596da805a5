#pragma once
// SHA-256 (FIPS 180-4) for the kohya / sd-webui-additional-networks LoRA hashes. The engine has no
// crypto library of its own, and these hashes need only a streaming digest.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln::engine::lora {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::array<uint8_t, 32> digest();  // finishes; the object is spent afterwards
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buffer_[64];
  size_t used_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(const void* data, size_t size);

}  // namespace kiln::engine::lora
