// libFuzzer target: arbitrary bytes through the safetensors reader. It must either accept the
// bytes and hand out tensors that lie within them, or throw kiln::engine::Error; nothing else.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using kiln::engine::SafeTensorsFile;
  try {
    auto file = SafeTensorsFile::from_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
    volatile uint8_t sink = 0;
    for (const auto& info : file->tensors()) {
      const torch::Tensor t = file->tensor(info.name);
      if (t.nbytes() != info.end - info.begin) __builtin_trap();
      if (t.nbytes() == 0) continue;
      // Touch the first and last byte: ASan flags any view that reaches outside the buffer.
      const auto* p = static_cast<const uint8_t*>(t.data_ptr());
      sink = sink ^ p[0] ^ p[t.nbytes() - 1];
    }
    for (const auto& [k, v] : file->metadata()) sink = sink ^ static_cast<uint8_t>(k.size() + v.size());
  } catch (const kiln::engine::Error&) {
    // Rejected with a message: the expected outcome for malformed input.
  }
  return 0;
}
