#include "service/training/sample_prompts.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "service/training/text_util.h"

namespace kiln::service::training {
namespace {

// Splits a line into the prompt and its options. An option starts at "--" that begins the line or
// follows whitespace (kohya splits on " --"; tabs and repeated spaces are accepted here too). The
// option's name runs to the next whitespace, its value to the next option.
struct RawOption {
  std::string name, value;
};
void split_line(const std::string& line, std::string& prompt, std::vector<RawOption>& options) {
  std::vector<size_t> starts;
  for (size_t i = 0; i + 1 < line.size(); ++i) {
    if (line[i] == '-' && line[i + 1] == '-' && (i == 0 || is_space(line[i - 1]))) starts.push_back(i);
  }
  prompt = trim(line.substr(0, starts.empty() ? line.size() : starts.front()));
  for (size_t k = 0; k < starts.size(); ++k) {
    const size_t end = k + 1 < starts.size() ? starts[k + 1] : line.size();
    std::string body = line.substr(starts[k] + 2, end - starts[k] - 2);
    size_t n = 0;
    while (n < body.size() && !is_space(body[n])) ++n;
    options.push_back({body.substr(0, n), trim(body.substr(n))});
  }
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

void parse_one(const std::string& raw, int line_no, SamplePromptsResult& result) {
  const std::string line = trim(raw);
  if (line.empty() || line[0] == '#') return;
  const std::string where = "sample prompt line " + std::to_string(line_no) + ": ";
  auto error = [&](const std::string& message) { result.errors.push_back(where + message); };

  SamplePrompt p;
  p.line = line_no;
  std::vector<RawOption> options;
  split_line(line, p.prompt, options);
  const size_t errors_before = result.errors.size();
  if (p.prompt.empty()) error("the prompt is empty (the line has only options)");

  for (const RawOption& o : options) {
    const std::string name = lower(o.name);
    auto need_value = [&]() {
      if (!o.value.empty()) return true;
      error("--" + o.name + " has no value");
      return false;
    };
    if (name == "n") {
      // An empty negative prompt is legitimate ("--n" at the end of a template).
      p.negative_prompt = o.value;
    } else if (name == "w" || name == "h") {
      if (!need_value()) continue;
      int64_t v = 0;
      if (!parse_int(o.value, v)) {
        error("--" + o.name + " needs a whole number of pixels, got '" + o.value + "'");
        continue;
      }
      if (v < 64 || v > 2048) {
        error("--" + o.name + " " + o.value + " is outside 64..2048 pixels");
        continue;
      }
      v = std::max<int64_t>(64, v - v % 8);  // kohya floors to a multiple of 8
      (name == "w" ? p.width : p.height) = v;
    } else if (name == "d") {
      if (!need_value()) continue;
      int64_t v = 0;
      if (!parse_int(o.value, v) || v < 0) {
        error("--d needs a seed, a whole number 0 or more, got '" + o.value + "'");
        continue;
      }
      p.seed = v;
    } else if (name == "l") {
      if (!need_value()) continue;
      double v = 0;
      if (!parse_double(o.value, v) || v < 0) {
        error("--l needs a CFG scale, a number 0 or more, got '" + o.value + "'");
        continue;
      }
      p.cfg_scale = v;
    } else if (name == "s") {
      if (!need_value()) continue;
      int64_t v = 0;
      if (!parse_int(o.value, v)) {
        error("--s needs a whole number of steps, got '" + o.value + "'");
        continue;
      }
      p.steps = std::clamp<int64_t>(v, 1, 1000);  // kohya's clamp
    } else if (name == "ss") {
      if (!need_value()) continue;
      const std::string s = lower(o.value);
      const auto& known = kohya_sample_samplers();
      if (std::find(known.begin(), known.end(), s) == known.end()) {
        error("--ss " + o.value + " is not a kohya sampler; use one of " + join(supported_sample_samplers()));
      } else if (engine_sampler_name(s).empty()) {
        error("--ss " + o.value + " is a kohya sampler Kiln does not have; use one of " +
              join(supported_sample_samplers()));
      } else {
        p.sampler = s;
      }
    } else if (name == "cn" || name == "g" || name == "i" || name == "ctr" || name == "rcfg" || name == "fs" ||
               name == "am") {
      error("--" + o.name + " is a kohya option Kiln does not support for SD1.x samples");
    } else {
      error("unknown option --" + o.name + "; the options are --n (negative prompt), --w, --h (size), --d (seed), "
            "--l (CFG scale), --s (steps), --ss (sampler)");
    }
  }
  if (result.errors.size() == errors_before) result.prompts.push_back(std::move(p));
}

}  // namespace

SamplePromptsResult parse_sample_prompts(const std::vector<std::string>& lines) {
  SamplePromptsResult result;
  int line_no = 0;
  for (const std::string& entry : lines) {
    size_t start = 0;
    while (true) {
      const size_t nl = entry.find('\n', start);
      parse_one(entry.substr(start, nl == std::string::npos ? std::string::npos : nl - start), ++line_no, result);
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
  return result;
}

SamplePromptsResult parse_sample_prompts(const std::string& text) {
  return parse_sample_prompts(std::vector<std::string>{text});
}

const std::vector<std::string>& kohya_sample_samplers() {
  // train_util.py --sample_sampler choices.
  static const std::vector<std::string> names = {"ddim",  "pndm",        "lms",       "euler", "euler_a",  "heun",
                                                 "dpm_2", "dpm_2_a",     "dpmsolver", "dpmsolver++",
                                                 "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2",
                                                 "k_dpm_2_a"};
  return names;
}

const std::vector<std::string>& supported_sample_samplers() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& n : kohya_sample_samplers())
      if (!engine_sampler_name(n).empty()) out.push_back(n);
    return out;
  }();
  return names;
}

std::string engine_sampler_name(const std::string& kohya_name) {
  // kohya builds diffusers schedulers: ddim → DDIMScheduler, euler/k_euler → EulerDiscrete,
  // euler_a/k_euler_a → EulerAncestralDiscrete, dpmsolver++ → DPMSolverMultistep (algorithm
  // dpmsolver++, i.e. DPM++ 2M). The engine has exactly these under A1111's names.
  const std::string n = lower(kohya_name);
  if (n == "ddim") return "DDIM";
  if (n == "euler" || n == "k_euler") return "Euler";
  if (n == "euler_a" || n == "k_euler_a") return "Euler a";
  if (n == "dpmsolver++") return "DPM++ 2M";
  return "";
}

}  // namespace kiln::service::training
