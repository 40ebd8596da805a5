#pragma once
// HTML character references, decoded the two ways the CLIP tokenizer's reference applies them.
#include <string>

namespace kiln::engine::text {

// Python's html.unescape(): named references with or without ';' (longest legacy prefix when
// unterminated), decimal and hex references with the HTML5 replacements for invalid numbers.
std::u32string html_unescape(const std::u32string& text);

// ftfy's unescape_html(): only references ending in ';' ("&amp;", "&#39;"), plus all-caps spellings
// such as "&EACUTE;"; ambiguous text like "this&not that" is left alone.
std::u32string ftfy_unescape_html(const std::u32string& text);

}  // namespace kiln::engine::text
