#pragma once
// The parts of ftfy.fix_text (6.3) that matter for prompts, which the CLIP tokenizer applies
// before anything else:
//   * HTML references ending in ';' ("&amp;"), unless the line contains '<' (then it may be HTML);
//   * mojibake: UTF-8 that was decoded as Latin-1 / Windows-1252 ("cafÃ©" → "café",
//     "â€œhiâ€" → "“hi”"), sequence by sequence, repeated for double encoding; C1 controls read
//     as Windows-1252;
//   * Latin ligatures (ﬁ → fi), full-width and half-width forms (ＡＢＣ → ABC, U+3000 → space),
//     curly quotes → ASCII quotes, line breaks → "\n", terminal escapes and invisible controls
//     removed, NFC.
// ftfy decides whether text is mojibake with a statistical "badness" score; Kiln uses a narrower
// structural test instead (a character sequence must re-encode to one valid, plausible UTF-8
// character), which never touches ordinary accented text. ftfy's rarer repairs (other code pages,
// lost bytes, NBSP restored from spaces) are not done.
#include <string>

namespace kiln::engine::text {

std::u32string fix_text(const std::u32string& text);

// Only the mojibake repair, for tests and tools.
std::u32string fix_mojibake(const std::u32string& text);

}  // namespace kiln::engine::text
