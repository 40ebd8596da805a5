#pragma once
// AUTOMATIC1111's prompt syntax, with A1111's exact semantics (modules/prompt_parser.py and
// modules/extra_networks.py):
//   (x) ×1.1   [x] ÷1.1   (x:w) ×w   nested brackets multiply; brackets left open apply to the
//   rest of the prompt; \( \) \[ \] \\ are literal; a whole-word BREAK starts a new 75-token chunk;
//   <type:arg:arg...> tags (LoRAs, hypernetworks) are taken out of the prompt before all that.
// Prompt editing ([a:b:0.5], [a|b]) is not interpreted: such text is parsed as above.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::engine {

struct WeightedText {
  std::string text;
  double weight = 1.0;  // -1 marks BREAK
  bool is_break() const { return weight == -1.0 && text == "BREAK"; }
  bool operator==(const WeightedText& o) const { return text == o.text && weight == o.weight; }
};

// A1111's parse_prompt_attention: fragments with their weights, equal neighbours merged;
// [{"", 1.0}] for an empty prompt. Error(InvalidArgument) for a weight that is not a number,
// such as "(x:1.2.3)" (A1111 fails on it too).
std::vector<WeightedText> parse_prompt_attention(std::string_view prompt);

// One <type:args> tag, e.g. <lora:detail_tweaker:0.7> → type "lora", items {"detail_tweaker", "0.7"}.
struct ExtraNetworkTag {
  std::string type;
  std::vector<std::string> items;       // the args split on ':'
  std::vector<std::string> positional;  // items without exactly one '='
  std::vector<std::pair<std::string, std::string>> named;  // "key=value" items, in order
  std::string name() const { return positional.empty() ? std::string() : positional.front(); }
};

struct PromptWithNetworks {
  std::string prompt;                     // the prompt with every tag removed
  std::vector<ExtraNetworkTag> networks;  // in prompt order
};

// A1111's extra_networks.parse_prompt: removes every <word:args> tag and returns them.
PromptWithNetworks extract_extra_networks(std::string_view prompt);

// A <lora:...> tag read as A1111's Lora extension reads it: <lora:name[:te[:unet[:dyn]]]>, with
// te=, unet=, dyn= as named overrides; unet defaults to te, te to 1.
struct LoraRequest {
  std::string name;
  double te_multiplier = 1.0;
  double unet_multiplier = 1.0;
  int dyn_dim = 0;  // 0: use the full rank
};
// Error(InvalidArgument) naming the tag when a multiplier is not a number or the name is missing.
LoraRequest lora_request(const ExtraNetworkTag& tag);

}  // namespace kiln::engine
