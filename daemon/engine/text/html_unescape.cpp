#include "engine/text/html_unescape.h"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace kiln::engine::text {

namespace {

struct HtmlEntity {
  const char* name;  // without '&'; with ';' when the reference has one
  const char32_t* text;
};
#include "engine/text/html_entities.inc"

template <size_t N>
const char32_t* lookup(const HtmlEntity (&table)[N], std::string_view name) {
  const auto* end = table + N;
  const auto* it = std::lower_bound(table, end, name, [](const HtmlEntity& e, std::string_view n) { return std::string_view(e.name) < n; });
  return it != end && std::string_view(it->name) == name ? it->text : nullptr;
}

// Entity names are ASCII in the tables; anything else cannot match.
bool to_ascii(const char32_t* begin, const char32_t* end, std::string& out) {
  out.clear();
  for (const char32_t* p = begin; p != end; ++p) {
    if (*p >= 0x80) return false;
    out.push_back(static_cast<char>(*p));
  }
  return true;
}

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_ascii_alnum(char32_t c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }
bool is_hex(char32_t c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
int hex_value(char32_t c) { return is_digit(c) ? static_cast<int>(c - '0') : static_cast<int>((c | 0x20) - 'a' + 10); }

// Windows-1252 meanings of 0x80..0x9F that HTML5 gives to numeric references in that range.
constexpr char32_t kCp1252High[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                      0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
                                      0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                      0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};

// Numbers HTML5 drops entirely: most C0/C1 controls and the noncharacters.
bool is_dropped(uint64_t n) {
  return (n >= 0x1 && n <= 0x8) || n == 0xB || (n >= 0xE && n <= 0x1F) || (n >= 0x7F && n <= 0x9F) ||
         (n >= 0xFDD0 && n <= 0xFDEF) || (n & 0xFFFE) == 0xFFFE;
}

void append_number(std::u32string& out, uint64_t n) {
  if (n == 0) out.push_back(0xFFFD);
  else if (n == 0x0D) out.push_back(0x0D);
  else if (n >= 0x80 && n <= 0x9F) out.push_back(kCp1252High[n - 0x80]);
  else if ((n >= 0xD800 && n <= 0xDFFF) || n > 0x10FFFF) out.push_back(0xFFFD);
  else if (!is_dropped(n)) out.push_back(static_cast<char32_t>(n));
}

// Parses a numeric reference at s[i] == '&', s[i+1] == '#'. Returns the index after it, or i.
size_t numeric_reference(const std::u32string& s, size_t i, std::u32string& out) {
  size_t j = i + 2;
  const bool hex = j < s.size() && (s[j] == 'x' || s[j] == 'X');
  if (hex) ++j;
  const size_t digits_begin = j;
  uint64_t n = 0;
  for (; j < s.size() && (hex ? is_hex(s[j]) : is_digit(s[j])); ++j)
    n = std::min<uint64_t>(n * (hex ? 16 : 10) + static_cast<uint64_t>(hex ? hex_value(s[j]) : s[j] - '0'), 0x110000);  // saturate: any larger value means U+FFFD
  if (j == digits_begin) return i;
  if (j < s.size() && s[j] == ';') ++j;
  append_number(out, n);
  return j;
}

bool is_name_char(char32_t c) { return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';'; }

}  // namespace

std::u32string html_unescape(const std::u32string& s) {
  if (s.find(U'&') == std::u32string::npos) return s;
  std::u32string out;
  out.reserve(s.size());
  std::string name;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&' || i + 1 >= s.size()) {
      out.push_back(s[i++]);
      continue;
    }
    if (s[i + 1] == '#') {
      const size_t next = numeric_reference(s, i, out);
      if (next == i) out.push_back(s[i++]);
      else i = next;
      continue;
    }
    // A name of 1..32 characters, then an optional ';'.
    size_t j = i + 1;
    while (j < s.size() && j - (i + 1) < 32 && is_name_char(s[j])) ++j;
    if (j == i + 1) {
      out.push_back(s[i++]);
      continue;
    }
    if (j < s.size() && s[j] == ';') ++j;
    const char32_t* begin = s.data() + i + 1;
    const char32_t* end = s.data() + j;
    if (to_ascii(begin, end, name)) {
      if (const char32_t* text = lookup(kHtml5Entities, name)) {
        out += text;
        i = j;
        continue;
      }
    }
    // Longest legacy name (no ';') that prefixes the reference, at least two characters long.
    bool replaced = false;
    for (size_t len = static_cast<size_t>(end - begin) - 1; len >= 2 && !replaced; --len) {
      if (!to_ascii(begin, begin + len, name)) continue;
      if (const char32_t* text = lookup(kHtml5Entities, name)) {
        out += text;
        out.append(begin + len, end);
        replaced = true;
      }
    }
    if (!replaced) out.append(s, i, j - i);
    i = j;
  }
  return out;
}

std::u32string ftfy_unescape_html(const std::u32string& s) {
  if (s.find(U'&') == std::u32string::npos) return s;
  std::u32string out;
  out.reserve(s.size());
  std::string name;
  size_t i = 0;
  while (i < s.size()) {
    // "&" "#"? then 1..24 ASCII alphanumerics then ";"
    if (s[i] == '&') {
      size_t j = i + 1;
      if (j < s.size() && s[j] == '#') ++j;
      const size_t body = j;
      while (j < s.size() && j - body < 24 && is_ascii_alnum(s[j])) ++j;
      if (j > body && j < s.size() && s[j] == ';') {
        const std::u32string ref = s.substr(i, j + 1 - i);
        to_ascii(ref.data() + 1, ref.data() + ref.size(), name);
        const char32_t* text = s[i + 1] == '#' ? nullptr : lookup(kHtml5Entities, name);
        if (!text && s[i + 1] != '#') text = lookup(kUpperCaseEntities, name);
        if (text) {
          out += text;
        } else if (s[i + 1] == '#') {
          // Decoded only when the whole reference, ';' included, is consumed.
          const std::u32string decoded = html_unescape(ref);
          out += decoded.find(U';') == std::u32string::npos ? decoded : ref;
        } else {
          out += ref;
        }
        i = j + 1;
        continue;
      }
      // No reference here: this '&' is plain text; scanning resumes after it (a later '&' may start one).
    }
    out.push_back(s[i++]);
  }
  return out;
}

}  // namespace kiln::engine::text
