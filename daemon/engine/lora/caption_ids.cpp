#include "engine/lora/caption_ids.h"

#include <torch/torch.h>

#include <algorithm>

#include "engine/text/clip_tokenizer.h"

namespace kiln::engine::lora {

torch::Tensor kohya_input_ids(const std::vector<int>& tokens, int64_t max_token_length, int64_t pad_id) {
  constexpr int64_t kBos = ClipTokenizer::kStartOfText, kEos = ClipTokenizer::kEndOfText;
  const int64_t length = std::max<int64_t>(75, max_token_length);
  // tokenizer(caption, padding="max_length", truncation=True, max_length=length + 2)
  std::vector<int64_t> full(static_cast<size_t>(length + 2), pad_id);
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(tokens.size()), length);
  full[0] = kBos;
  for (int64_t i = 0; i < n; ++i) full[static_cast<size_t>(i + 1)] = tokens[static_cast<size_t>(i)];
  full[static_cast<size_t>(n + 1)] = kEos;
  if (length == 75) return torch::tensor(full, torch::kLong);

  std::vector<int64_t> out;
  int64_t chunks = 0;
  for (int64_t i = 1; i < length + 2 - 77 + 2; i += 75, ++chunks) {
    std::vector<int64_t> chunk{full.front()};
    chunk.insert(chunk.end(), full.begin() + i, full.begin() + i + 75);
    chunk.push_back(full.back());
    if (pad_id != kEos) {
      if (chunk[75] != kEos && chunk[75] != pad_id) chunk[76] = kEos;
      if (chunk[1] == pad_id) chunk[1] = kEos;
    }
    out.insert(out.end(), chunk.begin(), chunk.end());
  }
  return torch::tensor(out, torch::kLong).view({chunks, 77});
}

}  // namespace kiln::engine::lora
