#pragma once
// kohya's tokenisation of a training caption (train_util.get_input_ids), for each text encoder:
//   75 tokens (no max_token_length): [BOS] + tokens[:75] + [EOS], padded to 77 with `pad_id`
//   (EOS for CLIP ViT-L, kohya's tokenizer1; 0 for SDXL's second encoder, tokenizer2.pad_token_id);
//   150 / 225: the caption padded to max_token_length + 2 the same way, then cut into 2 or 3
//   chunks of [BOS] + 75 ids + [the last id]; with a padding other than EOS, a chunk that ends
//   in a token gets EOS as its last id, and a chunk that starts with padding gets EOS first.
#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace kiln::engine::lora {

// [77] int64 for max_token_length ≤ 75, else [max_token_length / 75, 77].
torch::Tensor kohya_input_ids(const std::vector<int>& tokens, int64_t max_token_length, int64_t pad_id);

}  // namespace kiln::engine::lora
