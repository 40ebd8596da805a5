#include "studio/infotext.h"

#include <gtest/gtest.h>

#include "studio/error.h"

namespace kiln::studio {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

GenerationInfo sample() {
  GenerationInfo info;
  info.prompt = "a photo of a cat";
  info.negative_prompt = "blurry";
  info.steps = 20;
  info.sampler = "Euler a";
  info.cfg_scale = 7;
  info.seed = 1234;
  info.width = 512;
  info.height = 768;
  info.model_hash = "abcdef0123";
  info.model = "name";
  info.denoising_strength = 0.5;
  info.clip_skip = 2;
  info.rng.clear();
  return info;
}

void expect_same(const GenerationInfo& a, const GenerationInfo& b) {
  EXPECT_EQ(a.prompt, b.prompt);
  EXPECT_EQ(a.negative_prompt, b.negative_prompt);
  EXPECT_EQ(a.steps, b.steps);
  EXPECT_EQ(a.sampler, b.sampler);
  EXPECT_EQ(a.schedule_type, b.schedule_type);
  EXPECT_EQ(a.cfg_scale, b.cfg_scale);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.model_hash, b.model_hash);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.denoising_strength, b.denoising_strength);
  EXPECT_EQ(a.clip_skip, b.clip_skip);
  EXPECT_EQ(a.rng, b.rng);
  EXPECT_EQ(a.mask_blur, b.mask_blur);
  EXPECT_EQ(a.extra, b.extra);
  EXPECT_EQ(a.version, b.version);
}

TEST(Infotext, FormatsA1111Layout) {
  EXPECT_EQ(format_infotext(sample()),
            "a photo of a cat\n"
            "Negative prompt: blurry\n"
            "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: abcdef0123, "
            "Model: name, Denoising strength: 0.5, Clip skip: 2");
}

TEST(Infotext, OmitsWhatA1111Omits) {
  GenerationInfo info;
  info.prompt = "cat";
  info.seed = 42;
  info.cfg_scale = 7.5;
  // No negative prompt line, no Clip skip at 1, no model; Kiln's CPU noise is stated as A1111's RNG.
  EXPECT_EQ(format_infotext(info), "cat\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512, RNG: CPU");
}

TEST(Infotext, ExtraParametersFollowInOrderAndAreQuotedWhenNeeded) {
  GenerationInfo info = sample();
  info.mask_blur = 4;
  info.extra = {{"Lora hashes", "product: 0123456789ab, style: ba9876543210"}, {"Hires upscale", "2"}};
  info.version = "kiln 0.1.0";
  EXPECT_EQ(format_infotext(info),
            "a photo of a cat\nNegative prompt: blurry\n"
            "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: abcdef0123, Model: name, "
            "Denoising strength: 0.5, Clip skip: 2, Mask blur: 4, "
            "Lora hashes: \"product: 0123456789ab, style: ba9876543210\", Hires upscale: 2, Version: kiln 0.1.0");
}

TEST(Infotext, QuotesValuesLikeJson) {
  EXPECT_EQ(quote_infotext_value("plain value"), "plain value");
  EXPECT_EQ(quote_infotext_value("a, b"), "\"a, b\"");
  EXPECT_EQ(quote_infotext_value("k: v"), "\"k: v\"");
  EXPECT_EQ(quote_infotext_value("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(quote_infotext_value("two\nlines"), "\"two\\nlines\"");
  EXPECT_EQ(quote_infotext_value("猫, 🐱"), "\"猫, 🐱\"");  // non-ASCII stays as it is (ensure_ascii=False)
  EXPECT_EQ(quote_infotext_value(""), "\"\"");
}

TEST(Infotext, NumbersLookLikeA1111s) {
  EXPECT_EQ(format_infotext_number(7), "7");
  EXPECT_EQ(format_infotext_number(7.5), "7.5");
  EXPECT_EQ(format_infotext_number(0.75), "0.75");
  EXPECT_EQ(format_infotext_number(0.1), "0.1");
  EXPECT_EQ(format_infotext_number(0.1 + 0.2), "0.30000000000000004");  // Python's repr
  EXPECT_EQ(format_infotext_number(-1.25), "-1.25");
}

TEST(Infotext, RoundTripsEverything) {
  std::vector<GenerationInfo> cases;
  cases.push_back(sample());
  {
    GenerationInfo info = sample();
    info.prompt = "masterpiece, (best quality:1.2)\na second line, <lora:product:0.8>\nthird: line";
    info.negative_prompt = "lowres, \"bad hands\"\nworst quality";
    info.model = "my, model: v2 \"final\"";
    info.extra = {{"Lora hashes", "product: 0123456789ab"}, {"Note", "say \"hi\" \\ backslash"}, {"Blank", ""}};
    info.mask_blur = 4;
    info.rng = "CPU";
    info.version = "kiln 0.1.0";
    info.schedule_type = "Karras";
    cases.push_back(info);
  }
  {
    GenerationInfo info = sample();
    info.prompt = "一只橘猫坐在窗台上, 油画风格, ✨";
    info.negative_prompt = "";  // no Negative prompt line at all
    info.model = "模型";
    info.denoising_strength.reset();
    info.clip_skip = 1;
    info.seed = 4294967295LL * 3;
    info.cfg_scale = 0.1 + 0.2;
    cases.push_back(info);
  }
  for (const GenerationInfo& info : cases) {
    const std::string text = format_infotext(info);
    SCOPED_TRACE(text);
    expect_same(to_generation_info(parse_infotext(text)), info);
  }
}

// Expected values below come from running A1111's own parsing rules (its re_param regex and line
// handling in modules/infotext_utils.py) on the same strings.
TEST(Infotext, ParsesLikeA1111) {
  {
    const Infotext t = parse_infotext(
        "a cat\nSteps: 20, Sampler: Euler a, Template: \"abc\" x, Seed: 5, Empty: , Lora hashes: \"a: 1, b: 2\", "
        "Quoted: \"say \\\"hi\\\"\", Broken: \"no end, Last: 1");
    EXPECT_EQ(t.prompt, "a cat");
    EXPECT_EQ(t.negative_prompt, "");
    EXPECT_EQ(t.params, (Params{{"Steps", "20"},
                                {"Sampler", "Euler a"},
                                {"Template", "\"abc\" x"},
                                {"Seed", "5"},
                                {"Lora hashes", "a: 1, b: 2"},
                                {"Quoted", "say \"hi\""},
                                {"Broken", "\"no end"},
                                {"Last", "1"}}));
  }
  {
    const Infotext t = parse_infotext(
        "  line one  \n\n  line two\nNegative prompt:   bad,  worse\n more bad \nSteps: 20, Sampler: Euler a, CFG scale: 7.5");
    EXPECT_EQ(t.prompt, "line one\n\nline two");
    EXPECT_EQ(t.negative_prompt, "bad,  worse\nmore bad");
    EXPECT_EQ(t.params, (Params{{"Steps", "20"}, {"Sampler", "Euler a"}, {"CFG scale", "7.5"}}));
  }
  {
    // Fewer than three parameters: the last line is prompt text.
    const Infotext t = parse_infotext("only a prompt: with colon, Steps: 3");
    EXPECT_EQ(t.prompt, "only a prompt: with colon, Steps: 3");
    EXPECT_TRUE(t.params.empty());
  }
  {
    const Infotext t = parse_infotext(
        "p\nSteps: 20,Sampler: DPM++ 2M Karras,  CFG scale: 7, Size: 512x768, Model: a/b-c, ÜberKey: ok, Wrap: \"x\" ");
    EXPECT_EQ(t.params, (Params{{"Steps", "20"},
                                {"Sampler", "DPM++ 2M Karras"},
                                {"CFG scale", "7"},
                                {"Size", "512x768"},
                                {"Model", "a/b-c"},
                                {"ÜberKey", "ok"},
                                {"Wrap", "x"}}));
  }
  {
    const Infotext t = parse_infotext("girl\nNegative prompt: \nugly\nSteps: 20, Sampler: Euler a, CFG scale: 7");
    EXPECT_EQ(t.prompt, "girl");
    EXPECT_EQ(t.negative_prompt, "ugly");
  }
}

TEST(Infotext, MalformedNumbersNameTheParameter) {
  try {
    to_generation_info(parse_infotext("p\nSteps: many, Sampler: Euler a, CFG scale: 7"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadFormat);
    EXPECT_NE(std::string(e.what()).find("Steps"), std::string::npos);
  }
  EXPECT_THROW(to_generation_info(parse_infotext("p\nSteps: 2, Sampler: Euler a, Size: 512")), Error);
}

}  // namespace
}  // namespace kiln::studio
