// libFuzzer target: arbitrary bytes through the frame decoder, the JSON-RPC decoder and the
// parameter validation that every request passes before a handler runs. Nothing may crash,
// hang or leak; every outcome must be a frame, a decode error or a validation error.
#include <cstddef>
#include <cstdint>

#include "ipc/frame.h"
#include "protocol/jsonrpc.h"
#include "protocol/methods.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln::ipc::FrameDecoder decoder(1 << 16);
  // Feed in two uneven pieces so partial headers and bodies are exercised.
  const size_t split = size ? data[0] % (size + 1) : 0;
  const char* bytes = reinterpret_cast<const char*>(data);
  decoder.feed(bytes, split);
  decoder.feed(bytes + split, size - split);
  while (auto payload = decoder.next()) {
    auto decoded = kiln::protocol::decode_message(*payload);
    auto* message = std::get_if<kiln::protocol::Message>(&decoded);
    if (!message) continue;
    if (auto* request = std::get_if<kiln::protocol::Request>(message)) {
      if (const auto* spec = kiln::protocol::find_method(request->method)) kiln::protocol::validate_params(*spec, request->params);
      (void)kiln::protocol::encode(kiln::protocol::make_result(request->id, request->params));
    }
  }
  // The raw bytes as a frame payload too: the JSON path without framing.
  kiln::protocol::decode_message(std::string_view(bytes, size));
  return 0;
}
