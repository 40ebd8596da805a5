#pragma once
// Small UTF-8 helpers shared by PNG text chunks, names and captions.
#include <optional>
#include <string>
#include <string_view>

namespace kiln::studio {

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// Latin-1 bytes for `utf8` when every code point is at most U+00FF (PNG tEXt's character set);
// nullopt otherwise, or when `utf8` is not valid UTF-8.
std::optional<std::string> utf8_to_latin1(std::string_view utf8);

// UTF-8 for Latin-1 bytes (always succeeds).
std::string latin1_to_utf8(std::string_view latin1);

// Number of code points in valid UTF-8.
std::size_t utf8_length(std::string_view utf8);

}  // namespace kiln::studio
