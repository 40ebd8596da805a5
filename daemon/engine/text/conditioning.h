#pragma once
// AUTOMATIC1111's SD1 prompt conditioning (modules/sd_hijack_clip.py with sd_emphasis "Original"):
//   1. <lora:...> and other extra-network tags are taken out and handed back to the caller;
//   2. emphasis is parsed (prompt_parser.h) and each fragment tokenized on its own, every token
//      carrying its fragment's weight;
//   3. tokens are packed into chunks of 75; BREAK closes a chunk; when a chunk is full and a comma
//      is at most `comma_padding_backtrack` tokens back, what follows the comma moves on;
//   4. each chunk is [BOS] + 75 tokens (EOS-padded) + [EOS], weight 1 on BOS, EOS and padding;
//   5. every chunk is encoded (clip_skip as given), multiplied by its weights and rescaled so its
//      mean over the whole [77, C] chunk is what it was before; chunks are joined along tokens.
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "engine/text/prompt_parser.h"

namespace kiln::engine {

class ClipTokenizer;

// The text encoder as this code needs it: ids [n, 77] int64 → hidden states [n, 77, C], taken
// `clip_skip` layers from the end (1 = last layer) with the final LayerNorm applied.
// Same signature as models::TextEncoderFn.
using TextEncoderFn = std::function<torch::Tensor(const torch::Tensor& ids, int clip_skip)>;

enum class Emphasis {
  Original,  // A1111 default: multiply, then restore the chunk mean
  NoNorm,    // multiply only
  None,      // brackets are ordinary text; every weight is 1
};

struct ConditioningOptions {
  int clip_skip = 1;                 // A1111 "Clip skip"
  int comma_padding_backtrack = 20;  // A1111 default; 0 turns it off
  Emphasis emphasis = Emphasis::Original;
};

struct PromptChunks {
  torch::Tensor tokens;       // [n, 77] int64
  torch::Tensor multipliers;  // [n, 77] float32
  int token_count = 0;        // A1111's count for "used/limit" displays (75 per full chunk)
};

struct Conditioning {
  torch::Tensor cond;                     // [77·n, C] on the encoder's device, in its dtype
  PromptChunks chunks;
  std::string prompt;                     // what was encoded: the prompt without its tags
  std::vector<ExtraNetworkTag> networks;  // the tags, for the caller to apply (LoRAs, ...)
};

// Steps 2-4 for a prompt that has no extra-network tags left in it.
PromptChunks chunk_prompt(const std::string& prompt, const ClipTokenizer& tokenizer, const ConditioningOptions& options = {});

// Step 5: [77·n, C].
torch::Tensor encode_chunks(const PromptChunks& chunks, const TextEncoderFn& encoder, const ConditioningOptions& options = {});

// All steps. Uses the bundled CLIP tokenizer unless one is given.
Conditioning a1111_conditioning(const std::string& prompt, const TextEncoderFn& encoder,
                                const ConditioningOptions& options = {}, const ClipTokenizer* tokenizer = nullptr);

}  // namespace kiln::engine
