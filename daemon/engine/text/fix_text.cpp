#include "engine/text/fix_text.h"

#include <algorithm>
#include <array>

#include <unicode/uchar.h>

#include "engine/text/html_unescape.h"
#include "engine/text/unicode.h"

namespace kiln::engine::text {

namespace {

// Windows-1252 characters of bytes 0x80..0x9F (0 where the code page leaves the byte undefined).
constexpr char32_t kCp1252[32] = {0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                  0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,
                                  0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                  0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

// The byte a character came from if its text was decoded as Windows-1252 or Latin-1; -1 if none.
int byte_of(char32_t c) {
  if (c < 0x80 || (c >= 0xA0 && c <= 0xFF)) return static_cast<int>(c);
  if (c <= 0x9F) return static_cast<int>(c);  // a C1 control: Latin-1 decoding
  for (int i = 0; i < 32; ++i)
    if (kCp1252[i] == c) return 0x80 + i;
  return -1;
}

bool is_continuation(int b) { return b >= 0x80 && b <= 0xBF; }

// A character that real UTF-8 text would plausibly contain. Rules out controls, unassigned and
// private-use code points, and, for two-byte sequences, the ranges (IPA, modifier letters,
// combining marks, Syriac..NKo) whose mojibake is ordinary accented capitals next to punctuation.
bool plausible(char32_t c, int length) {
  const int8_t type = u_charType(static_cast<UChar32>(c));
  if (type == U_CONTROL_CHAR || type == U_UNASSIGNED || type == U_PRIVATE_USE_CHAR || type == U_SURROGATE) return false;
  if (length == 2) return (c >= 0xA0 && c <= 0x24F) || (c >= 0x370 && c <= 0x6FF);
  return true;
}

// If text[i..] is one UTF-8 character seen through Windows-1252/Latin-1, returns its length in
// characters (2..4) and sets `decoded`; 0 otherwise.
size_t mojibake_at(const std::u32string& text, size_t i, char32_t& decoded) {
  const int lead = byte_of(text[i]);
  size_t length;
  char32_t c, min;
  if (lead >= 0xC2 && lead <= 0xDB) length = 2, c = lead & 0x1F, min = 0x80;
  else if (lead >= 0xE0 && lead <= 0xEF) length = 3, c = lead & 0x0F, min = 0x800;
  else if (lead >= 0xF0 && lead <= 0xF4) length = 4, c = lead & 0x07, min = 0x10000;
  else return 0;
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    const int b = byte_of(text[i + k]);
    if (!is_continuation(b)) return 0;
    c = (c << 6) | static_cast<char32_t>(b & 0x3F);
  }
  if (c < min || c > 0x10FFFF || !plausible(c, static_cast<int>(length))) return 0;
  decoded = c;
  return length;
}

std::u32string fix_mojibake_once(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    char32_t decoded = 0;
    if (text[i] >= 0x80) {
      if (const size_t n = mojibake_at(text, i, decoded)) {
        out.push_back(decoded);
        i += n;
        continue;
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

char32_t c1_as_cp1252(char32_t c) {
  if (c >= 0x80 && c <= 0x9F && kCp1252[c - 0x80] != 0) return kCp1252[c - 0x80];
  return c;
}

// Latin ligatures and legacy digraphs; ligatures of other scripts and æ/œ are intentional.
const char32_t* ligature(char32_t c) {
  switch (c) {
    case 0x0132: return U"IJ";
    case 0x0133: return U"ij";
    case 0x0149: return U"\u02BCn";
    case 0x01C4: return U"D\u017D";
    case 0x01C5: return U"D\u017E";
    case 0x01C6: return U"d\u017E";
    case 0x01C7: return U"LJ";
    case 0x01C8: return U"Lj";
    case 0x01C9: return U"lj";
    case 0x01CA: return U"NJ";
    case 0x01CB: return U"Nj";
    case 0x01CC: return U"nj";
    case 0x01F1: return U"DZ";
    case 0x01F2: return U"Dz";
    case 0x01F3: return U"dz";
    case 0xFB00: return U"ff";
    case 0xFB01: return U"fi";
    case 0xFB02: return U"fl";
    case 0xFB03: return U"ffi";
    case 0xFB04: return U"ffl";
    case 0xFB05: return U"\u017Ft";
    case 0xFB06: return U"st";
    default: return nullptr;
  }
}

// Half-width and full-width forms (U+FF01..U+FFEF) → their NFKC form; U+3000 → space.
const std::array<std::u32string, 0xFFEF - 0xFF01 + 1>& width_map() {
  static const auto map = [] {
    std::array<std::u32string, 0xFFEF - 0xFF01 + 1> m;
    for (char32_t c = 0xFF01; c <= 0xFFEF; ++c) {
      const std::u32string alt = nfkc(std::u32string(1, c));
      if (alt != std::u32string(1, c)) m[c - 0xFF01] = alt;
    }
    return m;
  }();
  return map;
}

bool is_removed_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

// Steps after the encoding repair, in ftfy's order, fused into one pass where they commute.
std::u32string fix_characters(const std::u32string& text) {
  const auto& widths = width_map();
  std::u32string out;
  out.reserve(text.size());
  // Width and quotes also apply to what a ligature expands to (ftfy runs them afterwards).
  auto width_and_quotes = [&](char32_t c) {
    if (c == 0x3000) c = ' ';
    if (c >= 0xFF01 && c <= 0xFFEF && !widths[c - 0xFF01].empty()) {
      out += widths[c - 0xFF01];
      return;
    }
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
    else if (c >= 0x201C && c <= 0x201F) c = '"';
    out.push_back(c);
  };
  for (char32_t c : text) {
    c = c1_as_cp1252(c);
    if (const char32_t* lig = ligature(c)) {
      for (; *lig; ++lig) width_and_quotes(*lig);
    } else {
      width_and_quotes(c);
    }
  }
  // Line breaks: CRLF, CR, U+2028, U+2029, U+0085 → "\n".
  std::u32string lines;
  lines.reserve(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const char32_t c = out[i];
    if (c == '\r' && i + 1 < out.size() && out[i + 1] == '\n') continue;
    lines.push_back(c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85 ? U'\n' : c);
  }
  // Terminal escapes ESC '[' [0-9;]* letter, then invisible control characters.
  std::u32string clean;
  clean.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] == 0x1B && i + 1 < lines.size() && lines[i + 1] == '[') {
      size_t j = i + 2;
      while (j < lines.size() && ((lines[j] >= '0' && lines[j] <= '9') || lines[j] == ';')) ++j;
      if (j < lines.size() && lines[j] < 0x80 && ((lines[j] | 0x20) >= 'a' && (lines[j] | 0x20) <= 'z')) {
        i = j;
        continue;
      }
    }
    if (!is_removed_control(lines[i])) clean.push_back(lines[i]);
  }
  return clean;
}

std::u32string fix_segment(std::u32string text, bool unescape) {
  for (int round = 0; round < 16; ++round) {  // ftfy repeats until nothing changes
    const std::u32string before = text;
    if (unescape) text = ftfy_unescape_html(text);
    text = fix_mojibake(text);
    text = nfc(fix_characters(text));
    if (text == before) break;
  }
  return text;
}

}  // namespace

std::u32string fix_mojibake(const std::u32string& text) {
  std::u32string current = text;
  for (int round = 0; round < 8; ++round) {  // double-encoded text needs a second pass
    std::u32string next = fix_mojibake_once(current);
    if (next == current) break;
    current = std::move(next);
  }
  return current;
}

std::u32string fix_text(const std::u32string& text) {
  // ftfy works line by line; once a line contains '<' it stops unescaping HTML for the rest.
  std::u32string out;
  out.reserve(text.size());
  bool unescape = true;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(U'\n', pos);
    end = end == std::u32string::npos ? text.size() : end + 1;
    const std::u32string segment = text.substr(pos, end - pos);
    if (segment.find(U'<') != std::u32string::npos) unescape = false;
    out += fix_segment(segment, unescape);
    pos = end;
  }
  return out;
}

}  // namespace kiln::engine::text
