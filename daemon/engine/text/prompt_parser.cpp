#include "engine/text/prompt_parser.h"

#include <cctype>
#include <charconv>
#include <cmath>

#include <unicode/uchar.h>

#include "engine/error.h"
#include "engine/text/unicode.h"

namespace kiln::engine {

namespace {

using text::is_space;

// Python's \w for str patterns.
bool is_word(char32_t c) { return c == '_' || text::is_letter(c) || text::is_number(c); }
// Python's \d for str patterns: any decimal digit (Nd), with its value.
int digit_value(char32_t c) {
  if (c >= '0' && c <= '9') return static_cast<int>(c - '0');
  if (c < 0x80 || u_charType(static_cast<UChar32>(c)) != U_DECIMAL_DIGIT_NUMBER) return -1;
  return u_charDigitValue(static_cast<UChar32>(c));
}

// Python's float() of a [+-]?[.\d]+ match: digits of any script, one optional '.'.
bool parse_weight(const std::u32string& s, double& out) {
  std::string ascii;
  for (char32_t c : s) {
    if (c == '+' || c == '-' || c == '.') ascii.push_back(static_cast<char>(c));
    else ascii.push_back(static_cast<char>('0' + digit_value(c)));
  }
  const bool negative = !ascii.empty() && ascii[0] == '-';
  const size_t start = (!ascii.empty() && (ascii[0] == '+' || ascii[0] == '-')) ? 1 : 0;
  const char* first = ascii.data() + start;
  const char* last = ascii.data() + ascii.size();
  if (first == last || *first == '+' || *first == '-') return false;
  double value = 0;
  const auto [end, ec] = std::from_chars(first, last, value, std::chars_format::fixed);
  if (ec != std::errc() || end != last) return false;
  out = negative ? -value : value;
  return true;
}

// re.split(r"\s*\bBREAK\b\s*", text): the pieces between whole-word BREAKs and their spacing.
std::vector<std::u32string> split_break(const std::u32string& s) {
  std::vector<std::u32string> parts;
  size_t piece_begin = 0;
  for (size_t i = 0; i + 5 <= s.size(); ++i) {
    if (s.compare(i, 5, U"BREAK") != 0) continue;
    if ((i > 0 && is_word(s[i - 1])) || (i + 5 < s.size() && is_word(s[i + 5]))) continue;
    // The match starts at the whitespace run before BREAK (but not before the previous piece's end).
    size_t begin = i;
    while (begin > piece_begin && is_space(s[begin - 1])) --begin;
    size_t end = i + 5;
    while (end < s.size() && is_space(s[end])) ++end;
    parts.push_back(s.substr(piece_begin, begin - piece_begin));
    piece_begin = end;
    i = end - 1;
  }
  parts.push_back(s.substr(piece_begin));
  return parts;
}

struct Fragment {
  std::u32string text;
  double weight;
};

}  // namespace

std::vector<WeightedText> parse_prompt_attention(std::string_view prompt_utf8) {
  const std::u32string s = text::utf8_to_utf32(prompt_utf8);
  std::vector<Fragment> res;
  std::vector<size_t> round, square;  // where each open bracket's range starts in `res`
  auto multiply_range = [&](size_t start, double multiplier) {
    for (size_t p = start; p < res.size(); ++p) res[p].weight *= multiplier;
  };
  auto add_text = [&](const std::u32string& t) {
    const auto parts = split_break(t);
    for (size_t k = 0; k < parts.size(); ++k) {
      if (k > 0) res.push_back({U"BREAK", -1.0});
      res.push_back({parts[k], 1.0});
    }
  };

  size_t i = 0;
  while (i < s.size()) {
    const char32_t c = s[i];
    if (c == '\\') {
      // \( \) \[ \] \\ are literals; a lone backslash contributes an empty fragment.
      const bool escape = i + 1 < s.size() && (s[i + 1] == '(' || s[i + 1] == ')' || s[i + 1] == '[' || s[i + 1] == ']' || s[i + 1] == '\\');
      res.push_back({escape ? std::u32string(1, s[i + 1]) : std::u32string(), 1.0});
      i += escape ? 2 : 1;
    } else if (c == '(') {
      round.push_back(res.size());
      ++i;
    } else if (c == '[') {
      square.push_back(res.size());
      ++i;
    } else if (c == ':') {
      // ":" \s* [+-]? [.\d]+ \s* ")" closes a round bracket with an explicit weight.
      size_t j = i + 1;
      while (j < s.size() && is_space(s[j])) ++j;
      const size_t number_begin = j;
      if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
      const size_t digits_begin = j;
      while (j < s.size() && (s[j] == '.' || digit_value(s[j]) >= 0)) ++j;
      const size_t number_end = j;
      while (j < s.size() && is_space(s[j])) ++j;
      const bool weighted = number_end > digits_begin && j < s.size() && s[j] == ')';
      if (weighted && !round.empty()) {
        const std::u32string number = s.substr(number_begin, number_end - number_begin);
        double w = 0;
        if (!parse_weight(number, w))
          throw Error(ErrorKind::InvalidArgument, "The prompt weight '" + text::utf32_to_utf8(number) +
                                                      "' is not a number; write it like (word:1.2).");
        multiply_range(round.back(), w);
        round.pop_back();
        i = j + 1;
      } else if (weighted) {
        add_text(s.substr(i, j + 1 - i));  // nothing to close: the whole ":1.2)" is text
        i = j + 1;
      } else {
        add_text(U":");
        ++i;
      }
    } else if (c == ')' && !round.empty()) {
      multiply_range(round.back(), 1.1);
      round.pop_back();
      ++i;
    } else if (c == ']' && !square.empty()) {
      multiply_range(square.back(), 1 / 1.1);
      square.pop_back();
      ++i;
    } else if (c == ')' || c == ']') {
      add_text(std::u32string(1, c));
      ++i;
    } else {
      size_t j = i;
      while (j < s.size() && s[j] != '\\' && s[j] != '(' && s[j] != ')' && s[j] != '[' && s[j] != ']' && s[j] != ':') ++j;
      add_text(s.substr(i, j - i));
      i = j;
    }
  }
  for (size_t pos : round) multiply_range(pos, 1.1);
  for (size_t pos : square) multiply_range(pos, 1 / 1.1);
  if (res.empty()) res.push_back({U"", 1.0});

  std::vector<WeightedText> out;
  for (auto& f : res) {
    if (!out.empty() && out.back().weight == f.weight) out.back().text += text::utf32_to_utf8(f.text);
    else out.push_back({text::utf32_to_utf8(f.text), f.weight});
  }
  return out;
}

PromptWithNetworks extract_extra_networks(std::string_view prompt_utf8) {
  // re.sub(r"<(\w+):([^>]+)>", ...): leftmost matches, left to right, without overlap.
  const std::u32string s = text::utf8_to_utf32(prompt_utf8);
  PromptWithNetworks result;
  std::u32string kept;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '<') {
      size_t j = i + 1;
      while (j < s.size() && is_word(s[j])) ++j;
      const size_t colon = j;
      if (colon > i + 1 && colon < s.size() && s[colon] == ':') {
        const size_t close = s.find(U'>', colon + 1);
        if (close != std::u32string::npos && close > colon + 1) {
          ExtraNetworkTag tag;
          tag.type = text::utf32_to_utf8(s.substr(i + 1, colon - i - 1));
          const std::string args = text::utf32_to_utf8(s.substr(colon + 1, close - colon - 1));
          for (size_t start = 0;;) {
            const size_t sep = args.find(':', start);
            tag.items.push_back(args.substr(start, sep == std::string::npos ? std::string::npos : sep - start));
            if (sep == std::string::npos) break;
            start = sep + 1;
          }
          for (const auto& item : tag.items) {
            const size_t eq = item.find('=');
            // Python's item.split('=', 2) has two parts only when there is exactly one '='.
            if (eq != std::string::npos && item.find('=', eq + 1) == std::string::npos)
              tag.named.emplace_back(item.substr(0, eq), item.substr(eq + 1));
            else
              tag.positional.push_back(item);
          }
          result.networks.push_back(std::move(tag));
          i = close + 1;
          continue;
        }
      }
    }
    kept.push_back(s[i++]);
  }
  result.prompt = text::utf32_to_utf8(kept);
  return result;
}

namespace {
double multiplier(const std::string& value, const ExtraNetworkTag& tag, const char* what) {
  // Python float(): surrounding whitespace allowed, also "inf"/"nan", which make no sense here.
  const char* first = value.data();
  const char* last = first + value.size();
  while (first < last && std::isspace(static_cast<unsigned char>(*first))) ++first;
  while (last > first && std::isspace(static_cast<unsigned char>(last[-1]))) --last;
  const bool negative = first < last && *first == '-';
  if (first < last && (*first == '+' || *first == '-')) ++first;
  if (first < last && (*first == '+' || *first == '-')) first = last;  // "+-1" is not a number
  double v = 0;
  const auto [end, ec] = std::from_chars(first, last, v);
  if (first == last || ec != std::errc() || end != last || !std::isfinite(v))
    throw Error(ErrorKind::InvalidArgument, "The " + std::string(what) + " '" + value + "' in the prompt tag <" + tag.type + ":" +
                                                tag.name() + ":...> is not a number; write it like <lora:" + tag.name() + ":0.8>.");
  return negative ? -v : v;
}
}  // namespace

LoraRequest lora_request(const ExtraNetworkTag& tag) {
  if (tag.positional.empty() || tag.positional.front().empty())
    throw Error(ErrorKind::InvalidArgument, "A <" + tag.type + ":...> tag in the prompt has no LoRA name; write it like <lora:name:0.8>.");
  LoraRequest r;
  r.name = tag.positional[0];
  auto named = [&](const char* key) -> const std::string* {
    const std::string* found = nullptr;
    for (const auto& [k, v] : tag.named)
      if (k == key) found = &v;  // the last one wins, like a Python dict
    return found;
  };
  if (tag.positional.size() > 1) r.te_multiplier = multiplier(tag.positional[1], tag, "multiplier");
  if (const auto* te = named("te")) r.te_multiplier = multiplier(*te, tag, "te multiplier");
  r.unet_multiplier = tag.positional.size() > 2 ? multiplier(tag.positional[2], tag, "unet multiplier") : r.te_multiplier;
  if (const auto* unet = named("unet")) r.unet_multiplier = multiplier(*unet, tag, "unet multiplier");
  const std::string* dyn = named("dyn");
  if (!dyn && tag.positional.size() > 3) dyn = &tag.positional[3];
  if (dyn) {
    const double d = multiplier(*dyn, tag, "dyn rank");
    if (d < 0 || d != std::floor(d) || d > 1e6)
      throw Error(ErrorKind::InvalidArgument, "The dyn rank '" + *dyn + "' in <" + tag.type + ":" + tag.name() + ":...> must be a whole number.");
    r.dyn_dim = static_cast<int>(d);
  }
  return r;
}

}  // namespace kiln::engine
