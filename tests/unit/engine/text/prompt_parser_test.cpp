#include "engine/text/prompt_parser.h"

#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "engine/error.h"
#include "support/reference.h"

namespace kiln::engine {
namespace {

void expect_fragments(const std::vector<WeightedText>& got, const nlohmann::json& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].text, want[i][0].get<std::string>()) << "fragment " << i;
    const double w = want[i][1].get<double>();
    EXPECT_LE(std::abs(got[i].weight - w), 1e-12 * std::abs(w)) << "fragment " << i << " '" << got[i].text << "'";
  }
}

std::vector<WeightedText> parse(const std::string& s) { return parse_prompt_attention(s); }

TEST(PromptParser, EveryReferenceCaseIsExact) {
  const auto cases = kiln::test::Reference::get().cases_of_kind("a1111_parse");
  ASSERT_EQ(cases.size(), 14u);
  for (const auto* c : cases) {
    const std::string prompt = c->at("inputs").at("prompt");
    SCOPED_TRACE(c->at("id").get<std::string>() + ": " + prompt);
    const auto& expected = c->at("expected");
    expect_fragments(parse_prompt_attention(prompt), expected.at("parse_prompt_attention"));

    const PromptWithNetworks extracted = extract_extra_networks(prompt);
    EXPECT_EQ(extracted.prompt, expected.at("extra_networks").at("prompt_without_tags").get<std::string>());
    std::map<std::string, std::vector<std::vector<std::string>>> grouped;
    for (const auto& tag : extracted.networks) grouped[tag.type].push_back(tag.items);
    std::map<std::string, std::vector<std::vector<std::string>>> want;
    for (const auto& [type, list] : expected.at("extra_networks").at("networks").items())
      want[type] = list.get<std::vector<std::vector<std::string>>>();
    EXPECT_EQ(grouped, want);
    expect_fragments(parse_prompt_attention(extracted.prompt), expected.at("parse_prompt_attention_after_extra_networks"));
  }
}

TEST(PromptParser, WeightsAndBrackets) {
  EXPECT_EQ(parse("a (b: 1.5 ) c"), (std::vector<WeightedText>{{"a ", 1.0}, {"b", 1.5}, {" c", 1.0}}));  // spaces allowed
  EXPECT_EQ(parse("x:1.2) y"), (std::vector<WeightedText>{{"x:1.2) y", 1.0}}));  // nothing to close: text
  EXPECT_EQ(parse("(a:1.5x)"), (std::vector<WeightedText>{{"a:1.5x", 1.1}}));
  EXPECT_EQ(parse("a) b]"), (std::vector<WeightedText>{{"a) b]", 1.0}}));
  EXPECT_EQ(parse("(a [b] c)"), (std::vector<WeightedText>{{"a ", 1.1}, {"b", 1.1 * (1 / 1.1)}, {" c", 1.1}}));
  EXPECT_EQ(parse("(a:.5) (b:2.)"), (std::vector<WeightedText>{{"a", 0.5}, {" ", 1.0}, {"b", 2.0}}));
  EXPECT_EQ(parse("(a:\u0661.\u0665)"), (std::vector<WeightedText>{{"a", 1.5}}));  // Python's \d and float() take any digits
  EXPECT_EQ(parse("a\\b"), (std::vector<WeightedText>{{"ab", 1.0}}));  // a lone backslash vanishes
  EXPECT_EQ(parse("(caf\u00e9) \\\\"), (std::vector<WeightedText>{{"caf\u00e9", 1.1}, {" \\", 1.0}}));
  for (const char* bad : {"(x:1.2.3)", "(x:.)", "(x:+.)"}) {
    try {
      parse(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find("not a number"), std::string::npos) << e.what();
    }
  }
}

TEST(PromptParser, Break) {
  const auto two = parse("a BREAK  BREAK b");
  EXPECT_EQ(two, (std::vector<WeightedText>{{"a", 1}, {"BREAK", -1}, {"", 1}, {"BREAK", -1}, {"b", 1}}));
  EXPECT_TRUE(two[1].is_break());
  EXPECT_EQ(parse("a,BREAK,b"), (std::vector<WeightedText>{{"a,", 1}, {"BREAK", -1}, {",b", 1}}));
  EXPECT_EQ(parse("_BREAK \u00e9BREAK BREAK2"), (std::vector<WeightedText>{{"_BREAK \u00e9BREAK BREAK2", 1}}));
  const auto inside = parse("(x BREAK)");  // emphasised to -1.1, so no longer a BREAK marker
  EXPECT_EQ(inside, (std::vector<WeightedText>{{"x", 1.1}, {"BREAK", -1 * 1.1}, {"", 1.1}}));
  EXPECT_FALSE(inside[1].is_break());
}

TEST(PromptParser, ExtraNetworks) {
  const auto p = extract_extra_networks("<lora:a:te=0.5:x=1=2> text <not a tag> <lora:> <hypernet:h:1>");
  EXPECT_EQ(p.prompt, " text <not a tag> <lora:> ");
  ASSERT_EQ(p.networks.size(), 2u);
  EXPECT_EQ(p.networks[0].type, "lora");
  EXPECT_EQ(p.networks[0].items, (std::vector<std::string>{"a", "te=0.5", "x=1=2"}));
  EXPECT_EQ(p.networks[0].positional, (std::vector<std::string>{"a", "x=1=2"}));
  EXPECT_EQ(p.networks[0].named, (std::vector<std::pair<std::string, std::string>>{{"te", "0.5"}}));
  EXPECT_EQ(p.networks[1].name(), "h");
  // [^>]+ spans '<' and line breaks, as in A1111.
  EXPECT_EQ(extract_extra_networks("<lora:a<b\nc>d").prompt, "d");
}

TEST(PromptParser, LoraRequests) {
  auto req = [](const std::string& tag) { return lora_request(extract_extra_networks(tag).networks.at(0)); };
  LoraRequest r = req("<lora:style>");
  EXPECT_EQ(r.name, "style");
  EXPECT_EQ(r.te_multiplier, 1.0);
  EXPECT_EQ(r.unet_multiplier, 1.0);
  EXPECT_EQ(r.dyn_dim, 0);
  r = req("<lora:style:0.6>");
  EXPECT_EQ(r.te_multiplier, 0.6);
  EXPECT_EQ(r.unet_multiplier, 0.6);
  r = req("<lora:style:0.6:-0.25:8>");
  EXPECT_EQ(r.unet_multiplier, -0.25);
  EXPECT_EQ(r.dyn_dim, 8);
  r = req("<lora:style:0.6:unet=0.9:te=0.1:dyn=4>");
  EXPECT_EQ(r.te_multiplier, 0.1);
  EXPECT_EQ(r.unet_multiplier, 0.9);
  EXPECT_EQ(r.dyn_dim, 4);
  for (const char* bad : {"<lora:style:strong>", "<lora:style:1:nan>", "<lora:style:+-1>", "<lora:te=1>", "<lora:s:1:1:2.5>"})
    EXPECT_THROW(req(bad), Error) << bad;
}

}  // namespace
}  // namespace kiln::engine
