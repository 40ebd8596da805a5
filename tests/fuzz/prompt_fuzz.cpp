// libFuzzer target: arbitrary bytes as a prompt through the text pipeline (cleaning, CLIP BPE,
// A1111 emphasis and tags, chunking). Everything must either succeed with well-formed results or
// throw kiln::engine::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/text/clip_tokenizer.h"
#include "engine/text/conditioning.h"
#include "engine/text/prompt_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln::engine;
  if (size > 4096) return 0;  // prompts are short; keeps each run fast
  const std::string prompt(reinterpret_cast<const char*>(data), size);
  const ClipTokenizer& tokenizer = ClipTokenizer::bundled();
  for (int id : tokenizer.encode(prompt))
    if (id < 0 || id >= tokenizer.vocab_size()) __builtin_trap();
  try {
    const auto fragments = parse_prompt_attention(prompt);
    if (fragments.empty()) __builtin_trap();
  } catch (const Error&) {
  }
  const PromptWithNetworks extracted = extract_extra_networks(prompt);
  for (const auto& tag : extracted.networks) {
    try {
      (void)lora_request(tag);
    } catch (const Error&) {
    }
  }
  try {
    const PromptChunks chunks = chunk_prompt(extracted.prompt, tokenizer);
    if (chunks.tokens.size(1) != ClipTokenizer::kContextLength || chunks.tokens.sizes() != chunks.multipliers.sizes()) __builtin_trap();
    if (chunks.tokens.select(1, 0).ne(ClipTokenizer::kStartOfText).any().item<bool>()) __builtin_trap();
  } catch (const Error&) {
  }
  return 0;
}
