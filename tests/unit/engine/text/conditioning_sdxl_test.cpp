// sdxl-tiny: tokenizer ids of both encoders, both encoders' states and the pooled output, and
// A1111's SDXL conditioning (crossattn and vector), from the single file and from the diffusers folder.
#include "engine/text/conditioning_sdxl.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>

#include "engine/conditioning.h"
#include "engine/text/clip_tokenizer.h"
#include "support/reference.h"
#include "unit/engine/models/tiny_model.h"

namespace kiln::test {
namespace {

const Reference& ref() { return Reference::get("sdxl-tiny"); }

void measured(const std::string& what, double err, double tol) {
  std::cout << "[ measured ] " << what << ": max |Δ| = " << err << " (tolerance " << tol << ")\n";
}

TEST(SdxlTokenize, BothEncodersIdsMatchExactly) {
  const auto& tok = engine::ClipTokenizer::bundled();
  const auto cases = ref().cases_of_kind("tokenize_sdxl");
  ASSERT_EQ(cases.size(), 5u);
  for (const auto* c : cases) {
    SCOPED_TRACE(c->at("id").get<std::string>());
    const auto ids = tok.encode(c->at("inputs").at("prompt").get<std::string>());
    EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), c->at("expected").at("tokens_untruncated").get<std::vector<int64_t>>());
    const auto te1 = torch::tensor(engine::ClipTokenizer::context_chunk(ids), torch::kLong);
    const auto te2 = engine::zero_after_first_eos(te1);
    EXPECT_TRUE(torch::equal(te1, ref().tensor(c->at("outputs").at("ids77_te1"))));
    EXPECT_TRUE(torch::equal(te2, ref().tensor(c->at("outputs").at("ids77_te2"))));
  }
}

class SdxlText : public ::testing::TestWithParam<Layout> {
 protected:
  const engine::models::StableDiffusion& model() const { return tiny_sdxl(GetParam()); }
};

TEST_P(SdxlText, EncoderStatesAndPooledOutputMatch) {
  torch::NoGradGuard no_grad;
  const auto cases = ref().cases_of_kind("text_encoders_sdxl");
  ASSERT_EQ(cases.size(), 3u);
  double worst = 0, tol = 0;
  for (const auto* c : cases) {
    const std::string id = c->at("id");
    SCOPED_TRACE(id);
    tol = c->at("tolerance").at("max_abs");
    const auto& in = c->at("inputs");
    const auto& out = c->at("outputs");
    const auto ids1 = ref().tensor(in.at("ids_te1")).unsqueeze(0), ids2 = ref().tensor(in.at("ids_te2")).unsqueeze(0);
    auto check = [&](const torch::Tensor& got, const char* name) {
      const double err = max_abs_diff(got.squeeze(0), ref().tensor(out.at(name)));
      EXPECT_LE(err, tol) << name;
      worst = std::max(worst, err);
    };
    const auto te1 = model().text_encoder->forward_all(ids1);
    check(te1.hidden_states.at(te1.hidden_states.size() - 2), "te1_penultimate");
    check(te1.last_hidden_state, "te1_last_hidden_state");
    check(model().text_encoder->encode(ids1, 2, false), "te1_penultimate");
    const auto te2 = model().text_encoder_2->encode_pooled(ids2);
    check(te2.hidden, "te2_penultimate");
    check(te2.pooled, "te2_pooled");
    check(model().text_encoder_2->forward_all(ids2).last_hidden_state, "te2_last_hidden_state");
    // EOS padding changes the padding rows, never the pooled vector.
    const auto eos_padded = model().text_encoder_2->encode_pooled(ids1);
    check(eos_padded.hidden, "te2_penultimate_eos_padded");
    check(eos_padded.pooled, "te2_pooled_eos_padded");
    // As much as the fixture measured: ~2.8 where the prompt leaves padding, 0 where it fills all 77.
    EXPECT_NEAR(max_abs_diff(eos_padded.hidden, te2.hidden),
                c->at("measured").at("te2_pad0_vs_eos_pad_max_abs_penultimate").get<double>(), 1e-3);
  }
  measured("text encoders (" + layout_name(GetParam()) + ")", worst, tol);
}

TEST_P(SdxlText, A1111ConditioningMatchesEveryCase) {
  const auto cases = ref().cases_of_kind("a1111_conditioning_sdxl");
  ASSERT_EQ(cases.size(), 5u);
  double worst = 0, tol = 0;
  for (const auto* c : cases) {
    const std::string id = c->at("id");
    SCOPED_TRACE(id);
    tol = c->at("tolerance").at("max_abs");
    const auto& in = c->at("inputs");
    const auto& out = c->at("outputs");
    const auto orig = in.at("original_size_hw").get<std::vector<int64_t>>();
    const auto crop = in.at("crop_top_left").get<std::vector<int64_t>>();
    const auto target = in.at("target_size_hw").get<std::vector<int64_t>>();
    const engine::ImageSizes sizes{orig[0], orig[1], crop[0], crop[1], target[0], target[1]};
    const auto r = engine::a1111_conditioning_sdxl(in.at("prompt"), engine::sdxl_text_encoders(model()), sizes,
                                                   in.at("is_negative_prompt"));
    EXPECT_TRUE(torch::equal(r.chunks.tokens, ref().tensor(out.at("chunk_tokens_te1"))));
    EXPECT_TRUE(torch::equal(r.tokens_te2, ref().tensor(out.at("chunk_tokens_te2"))));
    EXPECT_TRUE(torch::equal(r.chunks.multipliers, ref().tensor(out.at("chunk_multipliers"))));
    const double e1 = max_abs_diff(r.crossattn.unsqueeze(0), ref().tensor(out.at("crossattn")));
    const double e2 = max_abs_diff(r.vector.unsqueeze(0), ref().tensor(out.at("vector")));
    EXPECT_LE(e1, tol);
    EXPECT_LE(e2, tol);
    worst = std::max({worst, e1, e2});
    if (c->at("expected").at("zeroed_by_force_zero_embeddings").get<bool>()) {
      EXPECT_EQ(r.crossattn.abs().max().item<double>(), 0.0);
      EXPECT_EQ(r.vector.narrow(0, 0, 64).abs().max().item<double>(), 0.0);
    }
    // Through the family dispatch, as generation calls it (A1111's size conditioning: h = w = 64).
    engine::PromptOptions options;
    options.width = in.at("width");
    options.height = in.at("height");
    options.negative = in.at("is_negative_prompt");
    options.clip_skip = 2;  // has no effect on SDXL
    const auto p = engine::encode_prompt(model(), in.at("prompt"), options);
    EXPECT_TRUE(torch::equal(p.context, r.crossattn));
    EXPECT_TRUE(torch::equal(p.vector, r.vector));
  }
  measured("A1111 SDXL conditioning (" + layout_name(GetParam()) + ")", worst, tol);
}

INSTANTIATE_TEST_SUITE_P(Layouts, SdxlText, ::testing::Values(Layout::SingleFile, Layout::Diffusers),
                         [](const auto& info) { return layout_name(info.param); });

TEST(SdxlConditioning, SizeEmbeddingIsSgmsFourierFeatures) {
  const auto e = engine::size_embedding(engine::ImageSizes::of(64, 64));
  EXPECT_LE(max_abs_diff(e.unsqueeze(0), ref().tensor(std::string("a1111.size_embedding"))), 1e-6);
  // Order: original (h, w), crop (top, left), target (h, w); cos before sin.
  const auto odd = engine::size_embedding({1, 2, 3, 4, 5, 6});
  for (int k = 0; k < 6; ++k) EXPECT_FLOAT_EQ(odd[k * 256].item<float>(), std::cos(float(k + 1)));
  EXPECT_FLOAT_EQ(odd[128].item<float>(), std::sin(1.0f));
}

TEST(SdxlConditioning, SecondEncoderIdsAreZeroAfterTheFirstEos) {
  const auto ids = torch::tensor({49406, 320, 49407, 49407, 49407, 5, 49407}, torch::kLong);
  EXPECT_TRUE(torch::equal(engine::zero_after_first_eos(ids), torch::tensor({49406, 320, 49407, 0, 0, 0, 0}, torch::kLong)));
  const auto full = torch::tensor({49406, 320, 321, 49407}, torch::kLong);
  EXPECT_TRUE(torch::equal(engine::zero_after_first_eos(full), full));
}

}  // namespace
}  // namespace kiln::test
