#pragma once
// Small Unicode helpers for the text pipeline. Text is processed as UTF-32 code points, the unit
// Python's str (and so the reference tokenizer) works in; ICU supplies properties, case mapping
// and normalisation.
#include <string>
#include <string_view>

namespace kiln::engine::text {

// Invalid UTF-8 bytes become U+FFFD (as Python's errors="replace" does).
std::u32string utf8_to_utf32(std::string_view utf8);
std::string utf32_to_utf8(std::u32string_view text);
void append_utf8(std::string& out, char32_t c);

// Python's str.isspace(): the characters `\s` and str.strip() treat as whitespace.
bool is_space(char32_t c);
bool is_letter(char32_t c);  // \p{L}
bool is_number(char32_t c);  // \p{N}

std::u32string nfc(const std::u32string& text);
std::u32string nfkc(const std::u32string& text);
// Full Unicode lower-casing as Python's str.lower() does it (context-free apart from final sigma).
std::u32string to_lower(const std::u32string& text);

}  // namespace kiln::engine::text
