#pragma once
// kohya's sample prompt syntax (train_util line_to_prompt_dict), one prompt per line:
//   a photo of sks speaker on a desk --n blurry, lowres --w 512 --h 768 --d 42 --l 7 --s 28 --ss euler_a
// Options: --n negative prompt, --w / --h size, --d seed, --l CFG scale, --s steps, --ss sampler.
// Lines starting with # and blank lines are skipped. Defaults as kohya's sample_image_inference
// (30 steps, scale 7.5, a random seed, the config's sample_sampler) except the size: a prompt
// without --w / --h is drawn at the training resolution, not kohya's fixed 512×512, so a model
// trained at 64 or 1024 px samples at its own size. Sizes are floored to a
// multiple of 8 (at least 64) and steps clamped to 1..1000 as kohya does; anything kohya would
// silently skip (a value that is not a number, an option it does not know) is an error here.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::service::training {

struct SamplePrompt {
  std::string prompt;
  std::string negative_prompt;  // --n
  std::optional<int64_t> width;   // --w; unset: the training resolution's width
  std::optional<int64_t> height;  // --h; unset: the training resolution's height
  std::optional<int64_t> seed;  // --d; unset: random
  double cfg_scale = 7.5;       // --l
  int64_t steps = 30;           // --s
  std::string sampler;          // --ss, a kohya name; "" = the config's sample_sampler
  int line = 0;                 // 1-based line it came from
};

struct SamplePromptsResult {
  std::vector<SamplePrompt> prompts;
  std::vector<std::string> errors;  // "sample prompt line 3: ..." each
};

// Parses lines (each may itself hold several lines separated by \n or \r\n).
SamplePromptsResult parse_sample_prompts(const std::vector<std::string>& lines);
SamplePromptsResult parse_sample_prompts(const std::string& text);

// kohya's --sample_sampler names, and the ones Kiln's engine can run.
const std::vector<std::string>& kohya_sample_samplers();
const std::vector<std::string>& supported_sample_samplers();
// The engine's (A1111) name for a kohya sampler name ("euler_a" → "Euler a", "dpmsolver++" →
// "DPM++ 2M", "ddim" → "DDIM"); "" when Kiln has no such sampler.
std::string engine_sampler_name(const std::string& kohya_name);

}  // namespace kiln::service::training
