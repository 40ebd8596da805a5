#pragma once
// The CLIP BPE tokenizer of Stable Diffusion 1.x, identical to OpenAI's clip/simple_tokenizer.py
// (which Hugging Face's CLIPTokenizer with ftfy matches):
//   1. clean: ftfy.fix_text (see fix_text.h), HTML-unescape twice, collapse whitespace, lowercase;
//   2. split into words, numbers (one digit each), punctuation runs and the contractions 's 't 're
//      've 'm 'll 'd; the literal "<|startoftext|>" / "<|endoftext|>" are their special tokens;
//   3. byte-level BPE over each piece's UTF-8 bytes with the 48,894 ranked merges, "</w>" marking
//      the end of a word.
// Thread-safe; BPE results are cached per piece.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::engine {

class ClipTokenizer {
 public:
  static constexpr int kStartOfText = 49406;  // BOS
  static constexpr int kEndOfText = 49407;    // EOS, also the padding
  static constexpr int kContextLength = 77;   // BOS + 75 tokens + EOS

  // Reads a gzip merges file laid out like bpe_simple_vocab_16e6.txt.gz. Throws Error(NotFound)
  // or Error(BadFormat) naming the file.
  explicit ClipTokenizer(const std::filesystem::path& merges_gz);
  ~ClipTokenizer();
  ClipTokenizer(const ClipTokenizer&) = delete;
  ClipTokenizer& operator=(const ClipTokenizer&) = delete;

  // The tokenizer over Kiln's bundled vocabulary (resource clip/bpe_simple_vocab_16e6.txt.gz),
  // loaded on first use.
  static const ClipTokenizer& bundled();

  // Token ids of `utf8`, without BOS/EOS and without truncation.
  std::vector<int> encode(std::string_view utf8) const;
  // The same tokens as vocabulary strings ("cat</w>", "Ã©"), for inspection.
  std::vector<std::string> encode_to_strings(std::string_view utf8) const;

  // [BOS] + ids[:75] + [EOS], padded with EOS to 77: the reference "ids77" of one prompt.
  static std::vector<int64_t> context_chunk(const std::vector<int>& ids);

  // The vocabulary string of a token id; Error(InvalidArgument) outside 0..vocab_size()-1.
  const std::string& token_string(int id) const;
  int vocab_size() const;

  // Step 1 alone, as UTF-8: what the pieces are cut from.
  static std::string clean(std::string_view utf8);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::engine
