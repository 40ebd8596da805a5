#include "engine/text/conditioning.h"

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/text/clip_tokenizer.h"

namespace kiln::engine {

namespace {

constexpr int kChunkLength = ClipTokenizer::kContextLength - 2;  // 75
constexpr int kComma = 267;                                      // ",</w>"

// The chunk packer of A1111's tokenize_line, token by token.
class ChunkBuilder {
 public:
  explicit ChunkBuilder(int backtrack) : backtrack_(backtrack) {}

  void add(int token, double weight) {
    if (token == kComma) {
      last_comma_ = static_cast<int>(tokens_.size());
    } else if (backtrack_ != 0 && full() && last_comma_ != -1 && static_cast<int>(tokens_.size()) - last_comma_ <= backtrack_) {
      // Move what follows the last comma into the next chunk.
      const auto at = static_cast<std::ptrdiff_t>(last_comma_ + 1);
      std::vector<int> moved_tokens(tokens_.begin() + at, tokens_.end());
      std::vector<double> moved_weights(weights_.begin() + at, weights_.end());
      tokens_.resize(static_cast<size_t>(at));
      weights_.resize(static_cast<size_t>(at));
      close();
      tokens_ = std::move(moved_tokens);
      weights_ = std::move(moved_weights);
    }
    if (full()) close();
    tokens_.push_back(token);
    weights_.push_back(weight);
  }

  void close(bool is_last = false) {
    token_count_ += is_last ? static_cast<int>(tokens_.size()) : kChunkLength;
    std::vector<int64_t> ids(ClipTokenizer::kContextLength, ClipTokenizer::kEndOfText);
    std::vector<float> mults(ClipTokenizer::kContextLength, 1.0f);
    ids[0] = ClipTokenizer::kStartOfText;
    for (size_t i = 0; i < tokens_.size(); ++i) {
      ids[i + 1] = tokens_[i];
      mults[i + 1] = static_cast<float>(weights_[i]);
    }
    chunk_ids_.insert(chunk_ids_.end(), ids.begin(), ids.end());
    chunk_mults_.insert(chunk_mults_.end(), mults.begin(), mults.end());
    tokens_.clear();
    weights_.clear();
    last_comma_ = -1;
  }

  PromptChunks finish() {
    if (!tokens_.empty() || chunk_ids_.empty()) close(/*is_last=*/true);
    const int64_t n = static_cast<int64_t>(chunk_ids_.size()) / ClipTokenizer::kContextLength;
    PromptChunks out;
    out.tokens = torch::tensor(chunk_ids_, torch::kInt64).view({n, ClipTokenizer::kContextLength});
    out.multipliers = torch::tensor(chunk_mults_, torch::kFloat32).view({n, ClipTokenizer::kContextLength});
    out.token_count = token_count_;
    return out;
  }

 private:
  bool full() const { return static_cast<int>(tokens_.size()) == kChunkLength; }

  int backtrack_;
  std::vector<int> tokens_;
  std::vector<double> weights_;
  int last_comma_ = -1;
  int token_count_ = 0;
  std::vector<int64_t> chunk_ids_;
  std::vector<float> chunk_mults_;
};

}  // namespace

PromptChunks chunk_prompt(const std::string& prompt, const ClipTokenizer& tokenizer, const ConditioningOptions& options) {
  if (options.comma_padding_backtrack < 0 || options.comma_padding_backtrack > kChunkLength)
    throw Error(ErrorKind::InvalidArgument, "comma_padding_backtrack must be between 0 and 75, not " +
                                                std::to_string(options.comma_padding_backtrack) + ".");
  const std::vector<WeightedText> fragments = options.emphasis == Emphasis::None
                                                  ? std::vector<WeightedText>{{prompt, 1.0}}
                                                  : parse_prompt_attention(prompt);
  ChunkBuilder builder(options.comma_padding_backtrack);
  for (const WeightedText& fragment : fragments) {
    if (fragment.is_break()) {
      builder.close();
      continue;
    }
    for (int token : tokenizer.encode(fragment.text)) builder.add(token, fragment.weight);
  }
  return builder.finish();
}

torch::Tensor encode_chunks(const PromptChunks& chunks, const TextEncoderFn& encoder, const ConditioningOptions& options) {
  if (!encoder) throw Error(ErrorKind::InvalidArgument, "No text encoder was given for the prompt conditioning.");
  const int64_t n = chunks.tokens.size(0);
  // All chunks in one batch: CLIP encodes each sequence independently, so this equals A1111's
  // chunk-by-chunk loop.
  const torch::Tensor z = encoder(chunks.tokens, options.clip_skip);
  if (z.dim() != 3 || z.size(0) != n || z.size(1) != ClipTokenizer::kContextLength)
    throw Error(ErrorKind::Internal, "The text encoder returned a tensor of the wrong shape for the prompt chunks.");

  torch::Tensor out = z;
  if (options.emphasis != Emphasis::None) {
    torch::NoGradGuard no_grad;
    // In float32 whatever the model dtype: a half-precision mean over 77×C values loses digits.
    const torch::Tensor z32 = z.to(torch::kFloat32);
    const torch::Tensor weights = chunks.multipliers.to(z.device()).unsqueeze(-1);
    torch::Tensor weighted = z32 * weights;
    if (options.emphasis == Emphasis::Original) {
      const torch::Tensor before = z32.mean({1, 2}, /*keepdim=*/true);
      const torch::Tensor after = weighted.mean({1, 2}, /*keepdim=*/true);
      weighted = weighted * (before / after);
    }
    out = weighted.to(z.scalar_type());
  }
  return out.reshape({n * ClipTokenizer::kContextLength, out.size(2)});
}

Conditioning a1111_conditioning(const std::string& prompt, const TextEncoderFn& encoder, const ConditioningOptions& options,
                                const ClipTokenizer* tokenizer) {
  const ClipTokenizer& tok = tokenizer ? *tokenizer : ClipTokenizer::bundled();
  PromptWithNetworks extracted = extract_extra_networks(prompt);
  Conditioning result;
  result.prompt = std::move(extracted.prompt);
  result.networks = std::move(extracted.networks);
  result.chunks = chunk_prompt(result.prompt, tok, options);
  result.cond = encode_chunks(result.chunks, encoder, options);
  return result;
}

}  // namespace kiln::engine
