#include "studio/infotext.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "studio/error.h"

namespace kiln::studio {
namespace {

// Python's str.strip() and regex \s for the ASCII range (plus the separators \x1c-\x1f).
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || (c >= 0x1c && c <= 0x1f);
}
// Python's \w: letters, digits, underscore; bytes of non-ASCII characters count as letters.
bool is_word(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || std::isalnum(u) || c == '_';
}
bool is_key_char(char c) { return is_word(c) || c == ' ' || c == '-' || c == '/'; }

std::string_view strip(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// A1111's re_param, \s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$), applied as findall
// does: try at each position, and after a match go on where it ended. Returns raw values.
std::vector<std::pair<std::string, std::string>> find_params(std::string_view s) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::size_t n = s.size();
  std::size_t p = 0;
  while (p < n) {
    std::size_t q = p;
    while (q < n && is_space(s[q])) ++q;
    // The key is the longest run of key characters (it cannot contain ':'), at least two long.
    const std::size_t key_start = q;
    if (q < n && is_word(s[q])) {
      ++q;
      while (q < n && is_key_char(s[q])) ++q;
    }
    if (q - key_start < 2 || q >= n || s[q] != ':') {
      ++p;
      continue;
    }
    const std::string_view key = s.substr(key_start, q - key_start);
    ++q;
    while (q < n && is_space(s[q])) ++q;
    std::size_t end = std::string_view::npos;  // one past the value
    if (q < n && s[q] == '"') {
      // A quoted value: escapes skip one character; at least one character inside; the closing
      // quote must be followed by ',' or the end, else the value is read unquoted.
      std::size_t r = q + 1;
      while (r < n && s[r] != '"') r += (s[r] == '\\' && r + 1 < n) ? 2 : 1;
      if (r < n && s[r] == '"' && r > q + 1 && (r + 1 == n || s[r + 1] == ',')) end = r + 1;
    }
    if (end == std::string_view::npos) {
      end = s.find(',', q);
      if (end == std::string_view::npos) end = n;
    }
    out.emplace_back(std::string(key), std::string(s.substr(q, end - q)));
    p = end < n && s[end] == ',' ? end + 1 : end;
  }
  return out;
}

std::string unquote(const std::string& v) {
  if (v.size() < 2 || v.front() != '"' || v.back() != '"') return v;
  try {
    const nlohmann::json j = nlohmann::json::parse(v);
    if (j.is_string()) return j.get<std::string>();
  } catch (const nlohmann::json::exception&) {
  }
  return v;  // A1111 keeps what json.loads cannot read
}

template <typename T>
T parse_number(const std::string& key, const std::string& value) {
  const char* begin = value.c_str();
  char* end = nullptr;
  errno = 0;
  T result;
  if constexpr (std::is_same_v<T, double>) {
    result = std::strtod(begin, &end);
  } else {
    const long long v = std::strtoll(begin, &end, 10);
    result = static_cast<T>(v);
    if (static_cast<long long>(result) != v) errno = ERANGE;
  }
  if (value.empty() || end != begin + value.size() || errno == ERANGE || (std::is_same_v<T, double> && !std::isfinite(double(result))))
    throw Error(ErrorKind::BadFormat, "infotext parameter '" + key + "' is '" + value + "', which is not a valid number");
  return result;
}

}  // namespace

std::string format_infotext_number(double value) {
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", value);
    return buf;
  }
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

std::string quote_infotext_value(std::string_view value) {
  bool quote = value.empty() || is_space(value.front()) || is_space(value.back());
  for (const char c : value)
    if (c == ',' || c == ':' || c == '"' || static_cast<unsigned char>(c) < 0x20) quote = true;
  if (!quote) return std::string(value);
  // Like Python's json.dumps(ensure_ascii=False): non-ASCII stays as it is.
  return nlohmann::json(std::string(value)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string format_infotext(const GenerationInfo& info) {
  std::vector<std::pair<std::string, std::string>> params;
  const auto add = [&](const char* key, std::string value) { params.emplace_back(key, std::move(value)); };
  // A1111's order (modules/processing.py, create_infotext); Kiln leaves out what it never uses.
  add("Steps", std::to_string(info.steps));
  add("Sampler", info.sampler);
  if (!info.schedule_type.empty()) add("Schedule type", info.schedule_type);
  add("CFG scale", format_infotext_number(info.cfg_scale));
  add("Seed", std::to_string(info.seed));
  add("Size", std::to_string(info.width) + "x" + std::to_string(info.height));
  if (!info.model_hash.empty()) add("Model hash", info.model_hash);
  if (!info.model.empty()) add("Model", info.model);
  if (info.denoising_strength) add("Denoising strength", format_infotext_number(*info.denoising_strength));
  if (info.clip_skip > 1) add("Clip skip", std::to_string(info.clip_skip));
  if (!info.rng.empty()) add("RNG", info.rng);
  // A1111's extra_generation_params follow: Mask blur first (set by img2img), then the caller's.
  if (info.mask_blur) add("Mask blur", format_infotext_number(*info.mask_blur));
  for (const auto& [key, value] : info.extra) params.emplace_back(key, value);
  if (!info.version.empty()) add("Version", info.version);

  std::string line;
  for (const auto& [key, value] : params) {
    if (!line.empty()) line += ", ";
    line += key + ": " + quote_infotext_value(value);
  }
  std::string text = info.prompt;
  if (!info.negative_prompt.empty()) text += "\nNegative prompt: " + info.negative_prompt;
  text += "\n" + line;
  return std::string(strip(text));
}

const std::string* Infotext::find(std::string_view key) const {
  for (const auto& [k, v] : params)
    if (k == key) return &v;
  return nullptr;
}

Infotext parse_infotext(std::string_view text) {
  std::vector<std::string_view> lines;
  const std::string_view all = strip(text);
  for (std::size_t start = 0;;) {
    const std::size_t nl = all.find('\n', start);
    lines.push_back(all.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  std::string_view last = lines.back();
  lines.pop_back();
  auto raw = find_params(last);
  if (raw.size() < 3) {
    lines.push_back(last);
    raw.clear();
  }

  Infotext out;
  bool negative = false;
  for (std::string_view line : lines) {
    line = strip(line);
    constexpr std::string_view marker = "Negative prompt:";
    if (line.substr(0, marker.size()) == marker) {
      negative = true;
      line = strip(line.substr(marker.size()));
    }
    std::string& target = negative ? out.negative_prompt : out.prompt;
    if (!target.empty()) target += '\n';
    target += line;
  }
  for (auto& [key, value] : raw) {
    if (value.empty()) continue;  // A1111 fails on these (IndexError) and skips them
    out.params.emplace_back(key, value.front() == '"' && value.back() == '"' ? unquote(value) : value);
  }
  return out;
}

GenerationInfo to_generation_info(const Infotext& parsed) {
  GenerationInfo info;
  info.prompt = parsed.prompt;
  info.negative_prompt = parsed.negative_prompt;
  info.rng.clear();  // absent means A1111's default, not Kiln's
  for (const auto& [key, value] : parsed.params) {
    if (key == "Steps") {
      info.steps = parse_number<int>(key, value);
    } else if (key == "Sampler") {
      info.sampler = value;
    } else if (key == "Schedule type") {
      info.schedule_type = value;
    } else if (key == "CFG scale") {
      info.cfg_scale = parse_number<double>(key, value);
    } else if (key == "Seed") {
      info.seed = parse_number<int64_t>(key, value);
    } else if (key == "Size") {
      const std::size_t x = value.find('x');
      if (x == std::string::npos)
        throw Error(ErrorKind::BadFormat, "infotext parameter 'Size' is '" + value + "', not WIDTHxHEIGHT");
      info.width = parse_number<int>(key, value.substr(0, x));
      info.height = parse_number<int>(key, value.substr(x + 1));
    } else if (key == "Model hash") {
      info.model_hash = value;
    } else if (key == "Model") {
      info.model = value;
    } else if (key == "Denoising strength") {
      info.denoising_strength = parse_number<double>(key, value);
    } else if (key == "Clip skip") {
      info.clip_skip = parse_number<int>(key, value);
    } else if (key == "RNG") {
      info.rng = value;
    } else if (key == "Mask blur") {
      info.mask_blur = parse_number<double>(key, value);
    } else if (key == "Version") {
      info.version = value;
    } else {
      info.extra.emplace_back(key, value);
    }
  }
  return info;
}

}  // namespace kiln::studio
