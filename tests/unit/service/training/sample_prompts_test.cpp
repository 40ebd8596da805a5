#include "service/training/sample_prompts.h"

#include <gtest/gtest.h>

using namespace kiln::service::training;

namespace {

// The only error of a one-line parse, or "" (and the test fails) when there is none.
std::string only_error(const std::string& text) {
  const SamplePromptsResult r = parse_sample_prompts(text);
  EXPECT_EQ(r.errors.size(), 1u) << text;
  EXPECT_TRUE(r.prompts.empty()) << text;
  return r.errors.empty() ? "" : r.errors.front();
}

}  // namespace

TEST(SamplePrompts, ReadsEveryOption) {
  const auto r = parse_sample_prompts(
      "sks speaker on a wooden desk, studio light --n lowres, blurry --w 640 --h 768 --d 1234 --l 6.5 --s 28 "
      "--ss euler_a");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  ASSERT_EQ(r.prompts.size(), 1u);
  const SamplePrompt& p = r.prompts[0];
  EXPECT_EQ(p.prompt, "sks speaker on a wooden desk, studio light");
  EXPECT_EQ(p.negative_prompt, "lowres, blurry");
  EXPECT_EQ(p.width, 640);
  EXPECT_EQ(p.height, 768);
  ASSERT_TRUE(p.seed.has_value());
  EXPECT_EQ(*p.seed, 1234);
  EXPECT_DOUBLE_EQ(p.cfg_scale, 6.5);
  EXPECT_EQ(p.steps, 28);
  EXPECT_EQ(p.sampler, "euler_a");
  EXPECT_EQ(p.line, 1);
}

TEST(SamplePrompts, KohyaDefaultsWhenNoOptions) {
  // kohya sample_image_inference: 30 steps, scale 7.5, random seed, the config's sampler; the size
  // is left to the training resolution (kohya's fixed 512 drew a 64 px model's samples at 512).
  const auto r = parse_sample_prompts("a photo of sks perfume bottle");
  ASSERT_EQ(r.prompts.size(), 1u);
  const SamplePrompt& p = r.prompts[0];
  EXPECT_FALSE(p.width.has_value());
  EXPECT_FALSE(p.height.has_value());
  EXPECT_EQ(p.steps, 30);
  EXPECT_DOUBLE_EQ(p.cfg_scale, 7.5);
  EXPECT_FALSE(p.seed.has_value());
  EXPECT_EQ(p.sampler, "");
  EXPECT_EQ(p.negative_prompt, "");
}

TEST(SamplePrompts, SkipsCommentsAndBlankLinesAndKeepsLineNumbers) {
  const auto r = parse_sample_prompts(
      "# samples for the product LoRA\n"
      "\n"
      "sks speaker, white background --d 1\n"
      "   # an indented comment\n"
      "\t\n"
      "sks speaker, on a beach, sunset --d 2\r\n");
  ASSERT_TRUE(r.errors.empty());
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.prompts[0].line, 3);
  EXPECT_EQ(r.prompts[0].prompt, "sks speaker, white background");
  EXPECT_EQ(r.prompts[1].line, 6);
  EXPECT_EQ(r.prompts[1].prompt, "sks speaker, on a beach, sunset");  // no trailing \r
  EXPECT_EQ(*r.prompts[1].seed, 2);
}

TEST(SamplePrompts, ToleratesOddSpacingAndCase) {
  const auto r = parse_sample_prompts("  1girl,  white hair ,red dress\t--W   768\t--h 512  --N  bad hands  --S\t25   ");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  ASSERT_EQ(r.prompts.size(), 1u);
  const SamplePrompt& p = r.prompts[0];
  EXPECT_EQ(p.prompt, "1girl,  white hair ,red dress");
  EXPECT_EQ(p.width, 768);
  EXPECT_EQ(p.height, 512);
  EXPECT_EQ(p.negative_prompt, "bad hands");
  EXPECT_EQ(p.steps, 25);
}

TEST(SamplePrompts, DashesInsideWordsAreNotOptions) {
  const auto r = parse_sample_prompts("t-shirt, half-body shot, a--b pattern --n over-exposed");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.prompts[0].prompt, "t-shirt, half-body shot, a--b pattern");
  EXPECT_EQ(r.prompts[0].negative_prompt, "over-exposed");
}

TEST(SamplePrompts, FloorsSizesAndClampsStepsAsKohya) {
  const auto r = parse_sample_prompts("x --w 515 --h 100 --s 5000\ny --s 0");
  ASSERT_TRUE(r.errors.empty());
  EXPECT_EQ(r.prompts[0].width, 512);
  EXPECT_EQ(r.prompts[0].height, 96);
  EXPECT_EQ(r.prompts[0].steps, 1000);
  EXPECT_EQ(r.prompts[1].steps, 1);
}

TEST(SamplePrompts, EmptyNegativeIsAllowed) {
  const auto r = parse_sample_prompts("x --n --s 20");
  ASSERT_TRUE(r.errors.empty());
  EXPECT_EQ(r.prompts[0].negative_prompt, "");
  EXPECT_EQ(r.prompts[0].steps, 20);
}

TEST(SamplePrompts, BadValuesAreErrorsNamingTheLine) {
  EXPECT_NE(only_error("x --w abc").find("sample prompt line 1: --w needs a whole number of pixels, got 'abc'"),
            std::string::npos);
  EXPECT_NE(only_error("\n\nx --h 4096").find("line 3: --h 4096 is outside 64..2048"), std::string::npos);
  EXPECT_NE(only_error("x --d -5").find("--d needs a seed"), std::string::npos);
  EXPECT_NE(only_error("x --l high").find("--l needs a CFG scale"), std::string::npos);
  EXPECT_NE(only_error("x --s 2.5").find("--s needs a whole number of steps"), std::string::npos);
  EXPECT_NE(only_error("x --d").find("--d has no value"), std::string::npos);
  EXPECT_NE(only_error("--w 512 --h 512").find("the prompt is empty"), std::string::npos);
  EXPECT_NE(only_error("x --q 3").find("unknown option --q"), std::string::npos);
  EXPECT_NE(only_error("x --cn pose.png").find("--cn is a kohya option Kiln does not support"), std::string::npos);
  EXPECT_NE(only_error("x --ss heun").find("kohya sampler Kiln does not have"), std::string::npos);
  EXPECT_NE(only_error("x --ss turbo").find("not a kohya sampler"), std::string::npos);
}

TEST(SamplePrompts, CollectsErrorsOfEveryLine) {
  const auto r = parse_sample_prompts(std::vector<std::string>{"good one --w 512", "bad --w x", "fine", "worse --s y --d z"});
  EXPECT_EQ(r.prompts.size(), 2u);
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_NE(r.errors[0].find("line 2"), std::string::npos);
  EXPECT_NE(r.errors[1].find("line 4"), std::string::npos);
  EXPECT_NE(r.errors[2].find("line 4"), std::string::npos);
}

TEST(SamplePrompts, MapsKohyaSamplersToTheEngine) {
  EXPECT_EQ(engine_sampler_name("ddim"), "DDIM");
  EXPECT_EQ(engine_sampler_name("euler"), "Euler");
  EXPECT_EQ(engine_sampler_name("k_euler"), "Euler");
  EXPECT_EQ(engine_sampler_name("euler_a"), "Euler a");
  EXPECT_EQ(engine_sampler_name("K_EULER_A"), "Euler a");
  EXPECT_EQ(engine_sampler_name("dpmsolver++"), "DPM++ 2M");
  EXPECT_EQ(engine_sampler_name("dpmsolver"), "");
  EXPECT_EQ(engine_sampler_name("heun"), "");
  const std::vector<std::string> expected = {"ddim", "euler", "euler_a", "dpmsolver++", "k_euler", "k_euler_a"};
  EXPECT_EQ(supported_sample_samplers(), expected);
  EXPECT_EQ(kohya_sample_samplers().size(), 16u);
}
