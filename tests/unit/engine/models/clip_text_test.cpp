#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "support/reference.h"
#include "unit/engine/models/tiny_model.h"

namespace kiln::test {
namespace {

using engine::models::ClipTextOutput;

TEST(ClipTextTest, ConfigIsReadFromShapes) {
  const auto& c = tiny_sd().text_encoder->config();
  EXPECT_EQ(c.width, 128);
  EXPECT_EQ(c.layers, 4);
  EXPECT_EQ(c.heads, 2);
  EXPECT_EQ(c.mlp_width, 512);
  EXPECT_EQ(c.max_positions, 77);
  EXPECT_EQ(c.vocab_size, 49408);
}

TEST(ClipTextTest, MatchesReferenceStates) {
  const auto& ref = Reference::get();
  const auto& te = tiny_sd().text_encoder;
  torch::NoGradGuard no_grad;
  const auto cases = ref.cases_of_kind("text_encoder");
  ASSERT_GE(cases.size(), 4u);
  for (const auto* c : cases) {
    SCOPED_TRACE(c->at("id").get<std::string>());
    const double tol = c->at("tolerance").at("max_abs");
    const auto ids = ref.tensor(c->at("inputs").at("ids")).unsqueeze(0);
    const auto& out = c->at("outputs");

    const auto last = te->encode(ids, 1)[0];
    const auto skip2 = te->encode(ids, 2)[0];
    const double e_last = max_abs_diff(last, ref.tensor(out.at("last_hidden_state")));
    const double e_skip = max_abs_diff(skip2, ref.tensor(out.at("clip_skip2")));
    EXPECT_LE(e_last, tol);
    EXPECT_LE(e_skip, tol);
    RecordProperty("max_err_" + c->at("id").get<std::string>(), std::to_string(std::max(e_last, e_skip)));

    if (out.contains("hidden_states") && out.at("hidden_states").contains("tensor") &&
        c->at("id") == "text_encoder/p00") {
      const ClipTextOutput all = te->forward_all(ids);
      EXPECT_LE(max_abs_diff(torch::stack(all.hidden_states).squeeze(1), ref.tensor(out.at("hidden_states"))), tol);
      EXPECT_LE(max_abs_diff(all.last_hidden_state[0], last), 0.0);
      // Raw (un-normed) output of layer L−1, as SDXL uses it.
      EXPECT_LE(max_abs_diff(te->encode(ids, 2, false)[0], ref.tensor(out.at("hidden_states"))[3]), tol);
    }
  }
}

TEST(ClipTextTest, BatchesRowsIndependently) {
  const auto& ref = Reference::get();
  const auto& te = tiny_sd().text_encoder;
  torch::NoGradGuard no_grad;
  const auto a = ref.tensor(std::string("te.p00.ids")), b = ref.tensor(std::string("te.p02.ids"));
  const auto both = te->encode(torch::stack({a, b}), 1);
  EXPECT_LE(max_abs_diff(both[1], ref.tensor(std::string("te.p02.last_hidden_state"))), 1e-4);
  EXPECT_LE(max_abs_diff(both[0], ref.tensor(std::string("te.p00.last_hidden_state"))), 1e-4);
}

TEST(ClipTextTest, CallbackMatchesModelAndRejectsBadClipSkip) {
  const auto& te = tiny_sd().text_encoder;
  const auto fn = engine::models::text_encoder_fn(te);
  const auto ids = Reference::get().tensor(std::string("te.p01.ids")).unsqueeze(0);
  EXPECT_LE(max_abs_diff(fn(ids, 2)[0], Reference::get().tensor(std::string("te.p01.clip_skip2"))), 1e-4);
  try {
    fn(ids, 5);
    FAIL() << "clip skip 5 on a 4-layer encoder must be refused";
  } catch (const engine::Error& e) {
    EXPECT_EQ(e.kind(), engine::ErrorKind::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("between 1 and 4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(fn(torch::zeros({1, 78}, torch::kLong), 1), engine::Error);
}

}  // namespace
}  // namespace kiln::test
