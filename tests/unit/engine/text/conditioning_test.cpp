#include "engine/text/conditioning.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/models/clip_text.h"
#include "engine/text/clip_tokenizer.h"
#include "support/reference.h"

namespace kiln::engine {
namespace {

const ClipTokenizer& tok() { return ClipTokenizer::bundled(); }

// A deterministic stand-in for CLIP: a fixed random embedding per token id, plus a per-position
// offset and a clip_skip-dependent shift, so tests can check the arithmetic around the encoder.
TextEncoderFn fake_encoder(int64_t width = 16) {
  torch::manual_seed(11);
  const torch::Tensor table = torch::randn({ClipTokenizer::kEndOfText + 1, width}) + 0.3;
  const torch::Tensor positions = torch::randn({ClipTokenizer::kContextLength, width}) * 0.1;
  return [table, positions](const torch::Tensor& ids, int clip_skip) {
    return table.index_select(0, ids.reshape({-1})).view({ids.size(0), ids.size(1), -1}) + positions + 0.01 * clip_skip;
  };
}

std::vector<int64_t> row(const torch::Tensor& t, int64_t i) {
  const torch::Tensor r = t[i].contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

TEST(Conditioning, ChunksMatchEveryReferenceCase) {
  const auto& ref = kiln::test::Reference::get();
  const auto cases = ref.cases_of_kind("a1111_conditioning");
  ASSERT_EQ(cases.size(), 4u);
  for (const auto* c : cases) {
    SCOPED_TRACE(c->at("id").get<std::string>());
    ConditioningOptions options;
    options.clip_skip = c->at("inputs").at("clip_skip").get<int>();
    const PromptChunks chunks = chunk_prompt(c->at("inputs").at("prompt"), tok(), options);
    const auto& expected = c->at("expected");
    ASSERT_EQ(chunks.tokens.size(0), expected.at("n_chunks").get<int64_t>());
    for (int64_t i = 0; i < chunks.tokens.size(0); ++i)
      EXPECT_EQ(row(chunks.tokens, i), expected.at("chunk_tokens")[static_cast<size_t>(i)].get<std::vector<int64_t>>()) << "chunk " << i;
    EXPECT_TRUE(torch::equal(chunks.tokens, ref.tensor(c->at("outputs").at("chunk_tokens"))));
    EXPECT_TRUE(torch::equal(chunks.multipliers, ref.tensor(c->at("outputs").at("chunk_multipliers"))))
        << "multipliers differ by " << (chunks.multipliers - ref.tensor(c->at("outputs").at("chunk_multipliers"))).abs().max().item<float>();
  }
}

TEST(Conditioning, FullConditioningMatchesReferenceWithTheFixtureTextEncoder) {
  const auto& ref = kiln::test::Reference::get();
  auto checkpoint = Checkpoint::open(kiln::test::sd15_tiny_dir() / "model.safetensors");
  const auto clip = models::load_clip_text(models::WeightView::of(checkpoint->text_encoder(), "text encoder"), DeviceChoice{});
  const TextEncoderFn encoder = models::text_encoder_fn(clip);
  for (const auto* c : ref.cases_of_kind("a1111_conditioning")) {
    SCOPED_TRACE(c->at("id").get<std::string>());
    ConditioningOptions options;
    options.clip_skip = c->at("inputs").at("clip_skip").get<int>();
    const Conditioning result = a1111_conditioning(c->at("inputs").at("prompt"), encoder, options);
    const torch::Tensor expected = ref.tensor(c->at("outputs").at("cond"));
    ASSERT_EQ(result.cond.sizes(), expected.sizes());
    EXPECT_LE(kiln::test::max_abs_diff(result.cond, expected), c->at("tolerance").at("max_abs").get<double>());
    EXPECT_TRUE(result.networks.empty());
  }
}

TEST(Conditioning, EmphasisRestoresTheChunkMean) {
  const TextEncoderFn encoder = fake_encoder();
  const std::string prompt = "a (very:1.6) [quiet] ((house)), (sky:0.4) BREAK (second chunk:1.3)";
  const PromptChunks chunks = chunk_prompt(prompt, tok());
  ASSERT_EQ(chunks.tokens.size(0), 2);
  const torch::Tensor z = encoder(chunks.tokens, 1);

  const torch::Tensor original = encode_chunks(chunks, encoder).view({2, 77, -1});
  const torch::Tensor weighted = z * chunks.multipliers.unsqueeze(-1);
  for (int64_t i = 0; i < 2; ++i) {
    // Mean over the whole chunk is kept; the shape of the weighting is the multipliers'.
    EXPECT_NEAR(original[i].mean().item<double>(), z[i].mean().item<double>(), 1e-6);
    const double scale = z[i].mean().item<double>() / weighted[i].mean().item<double>();
    EXPECT_LE((original[i] - weighted[i] * scale).abs().max().item<double>(), 1e-5);
  }
  EXPECT_GT((original - z).abs().max().item<double>(), 0.1) << "the weights must change the states";

  ConditioningOptions no_norm;
  no_norm.emphasis = Emphasis::NoNorm;
  EXPECT_LE((encode_chunks(chunks, encoder, no_norm).view({2, 77, -1}) - weighted).abs().max().item<double>(), 1e-6);

  ConditioningOptions none;
  none.emphasis = Emphasis::None;
  const PromptChunks literal = chunk_prompt(prompt, tok(), none);
  EXPECT_EQ(literal.tokens.size(0), 1) << "without emphasis BREAK is ordinary text";
  EXPECT_TRUE(torch::equal(literal.multipliers, torch::ones({1, 77})));
  EXPECT_TRUE(torch::equal(encode_chunks(literal, encoder, none).view({1, 77, -1}), encoder(literal.tokens, 1)));
}

TEST(Conditioning, ClipSkipReachesTheEncoder) {
  const TextEncoderFn encoder = fake_encoder();
  ConditioningOptions skip2;
  skip2.clip_skip = 2;
  const torch::Tensor a = a1111_conditioning("a cat", encoder).cond;
  const torch::Tensor b = a1111_conditioning("a cat", encoder, skip2).cond;
  EXPECT_NEAR((b - a).mean().item<double>(), 0.01, 1e-5);
}

TEST(Conditioning, EmptyPromptAndLeadingBreak) {
  const PromptChunks empty = chunk_prompt("", tok());
  ASSERT_EQ(empty.tokens.size(0), 1);
  std::vector<int64_t> padding(77, ClipTokenizer::kEndOfText);
  padding[0] = ClipTokenizer::kStartOfText;
  EXPECT_EQ(row(empty.tokens, 0), padding);
  EXPECT_EQ(empty.token_count, 0);

  const PromptChunks lead = chunk_prompt("BREAK a cat", tok());
  ASSERT_EQ(lead.tokens.size(0), 2);
  EXPECT_EQ(row(lead.tokens, 0), padding);
  EXPECT_EQ(lead.tokens[1][1].item<int64_t>(), 320);  // "a"
  EXPECT_EQ(lead.token_count, 75 + 2);
}

TEST(Conditioning, CommaBacktrackMovesTheTailToTheNextChunk) {
  auto words = [](const char* w, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += std::string(w) + " ";
    return s;
  };
  const int cat = tok().encode("cat")[0], dog = tok().encode("dog")[0];
  // 70 cats, a comma at index 70, then 10 dogs: the chunk fills after 4 dogs, which move on.
  const PromptChunks near = chunk_prompt(words("cat", 70) + ", " + words("dog", 10), tok());
  ASSERT_EQ(near.tokens.size(0), 2);
  EXPECT_EQ(near.tokens[0][71].item<int64_t>(), 267);
  EXPECT_EQ(near.tokens[0][72].item<int64_t>(), ClipTokenizer::kEndOfText);
  EXPECT_EQ(near.tokens[1][1].item<int64_t>(), dog);
  EXPECT_EQ(near.tokens[1][10].item<int64_t>(), dog);
  EXPECT_EQ(near.tokens[1][11].item<int64_t>(), ClipTokenizer::kEndOfText);
  EXPECT_EQ(near.token_count, 75 + 10);

  // The comma 21 tokens back is too far: the chunk is cut at 75 tokens.
  const PromptChunks far = chunk_prompt(words("cat", 54) + ", " + words("dog", 30), tok());
  EXPECT_EQ(far.tokens[0][75].item<int64_t>(), dog);
  EXPECT_EQ(far.tokens[0][55].item<int64_t>(), 267);
  EXPECT_EQ(far.tokens[1][1].item<int64_t>(), dog);
  EXPECT_EQ(far.tokens[0][54].item<int64_t>(), cat);

  ConditioningOptions off;
  off.comma_padding_backtrack = 0;
  const PromptChunks cut = chunk_prompt(words("cat", 70) + ", " + words("dog", 10), tok(), off);
  EXPECT_EQ(cut.tokens[0][75].item<int64_t>(), dog);
}

TEST(Conditioning, ExtraNetworkTagsAreReturnedNotEncoded) {
  const TextEncoderFn encoder = fake_encoder();
  const Conditioning with = a1111_conditioning("<lora:detail:0.7> a (cat:1.2) <hypernet:h>", encoder);
  ASSERT_EQ(with.networks.size(), 2u);
  EXPECT_EQ(with.networks[0].type, "lora");
  EXPECT_EQ(with.networks[0].items, (std::vector<std::string>{"detail", "0.7"}));
  EXPECT_EQ(with.networks[1].type, "hypernet");
  EXPECT_EQ(with.prompt, " a (cat:1.2) ");
  EXPECT_TRUE(torch::equal(with.cond, a1111_conditioning("a (cat:1.2)", encoder).cond));
}

TEST(Conditioning, RejectsBadOptions) {
  ConditioningOptions bad;
  bad.comma_padding_backtrack = -1;
  EXPECT_THROW(chunk_prompt("a", tok(), bad), Error);
  EXPECT_THROW(encode_chunks(chunk_prompt("a", tok()), TextEncoderFn{}), Error);
}

}  // namespace
}  // namespace kiln::engine
