#include "engine/text/clip_tokenizer.h"

#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/error.h"
#include "engine/text/fix_text.h"
#include "engine/text/html_unescape.h"
#include "engine/text/unicode.h"
#include "support/reference.h"
#include "unit/engine/io/test_files.h"

namespace kiln::engine {
namespace {

const ClipTokenizer& tok() { return ClipTokenizer::bundled(); }

std::string fixed(const std::string& s) { return text::utf32_to_utf8(text::fix_text(text::utf8_to_utf32(s))); }
std::string unescaped(const std::string& s) { return text::utf32_to_utf8(text::html_unescape(text::utf8_to_utf32(s))); }

TEST(ClipTokenizer, EveryReferenceCaseIsExact) {
  const auto& ref = kiln::test::Reference::get();
  const auto cases = ref.cases_of_kind("tokenize");
  ASSERT_EQ(cases.size(), 17u);
  for (const auto* c : cases) {
    const std::string prompt = c->at("inputs").at("prompt");
    SCOPED_TRACE(c->at("id").get<std::string>() + ": " + prompt);
    const auto& expected = c->at("expected");
    const std::vector<int> ids = tok().encode(prompt);
    EXPECT_EQ(ids, expected.at("tokens_untruncated").get<std::vector<int>>());
    const auto ids77 = ClipTokenizer::context_chunk(ids);
    EXPECT_EQ(ids77, expected.at("ids77").get<std::vector<int64_t>>());
    EXPECT_TRUE(torch::equal(torch::tensor(ids77), ref.tensor(c->at("outputs").at("ids77"))));
    if (expected.contains("bpe_strings") && expected.at("bpe_strings").is_array()) {
      const auto want = expected.at("bpe_strings").get<std::vector<std::string>>();
      auto got = tok().encode_to_strings(prompt);
      ASSERT_GE(got.size(), want.size());
      got.resize(want.size());
      EXPECT_EQ(got, want);
    }
  }
}

TEST(ClipTokenizer, ContextChunkTruncatesAndPads) {
  std::vector<int64_t> empty(77, ClipTokenizer::kEndOfText);
  empty[0] = ClipTokenizer::kStartOfText;
  EXPECT_EQ(ClipTokenizer::context_chunk({}), empty);
  std::vector<int> many(100);
  for (int i = 0; i < 100; ++i) many[i] = i;
  const auto chunk = ClipTokenizer::context_chunk(many);
  ASSERT_EQ(chunk.size(), 77u);
  EXPECT_EQ(chunk[0], 49406);
  EXPECT_EQ(chunk[1], 0);
  EXPECT_EQ(chunk[75], 74);
  EXPECT_EQ(chunk[76], 49407);
}

TEST(ClipTokenizer, VocabularyLayout) {
  EXPECT_EQ(tok().vocab_size(), 49408);
  EXPECT_EQ(tok().token_string(0), "!");
  EXPECT_EQ(tok().token_string(256), "!</w>");
  EXPECT_EQ(tok().token_string(320), "a</w>");
  EXPECT_EQ(tok().token_string(49406), "<|startoftext|>");
  EXPECT_EQ(tok().token_string(49407), "<|endoftext|>");
  EXPECT_THROW(tok().token_string(49408), Error);
  EXPECT_THROW(tok().token_string(-1), Error);
}

TEST(ClipTokenizer, CleaningFollowsTheReferenceSteps) {
  EXPECT_EQ(ClipTokenizer::clean("  A\u00A0\u00A0B\t\nC\u3000D  "), "a b c d");
  EXPECT_EQ(ClipTokenizer::clean("&amp;amp; &lt;3 &eacute"), "& <3 \u00e9");  // nested, and a legacy name without ';'
  EXPECT_EQ(ClipTokenizer::clean("\u201cQuote\u201d \u2018it\u2019s\u2019"), "\"quote\" 'it's'");
  EXPECT_EQ(ClipTokenizer::clean("\uFB01ne \uFF26\uFF35\uFF2C\uFF2C \u0149"), "fine full 'n");
  EXPECT_EQ(ClipTokenizer::clean("STRASSE \u0130stanbul \u039F\u0394\u039F\u03A3"), "strasse i\u0307stanbul \u03bf\u03b4\u03bf\u03c2");
  EXPECT_EQ(ClipTokenizer::clean("e\u0301"), "\u00e9");  // NFC
  EXPECT_EQ(ClipTokenizer::clean("a\x1b[31mred\x1b[0m\u200b\ufeff!"), "ared\u200b!");
  EXPECT_EQ(ClipTokenizer::clean(""), "");
}

TEST(ClipTokenizer, MojibakeIsRepaired) {
  EXPECT_EQ(fixed("caf\u00c3\u00a9 cr\u00c3\u00a8me"), "caf\u00e9 cr\u00e8me");                // UTF-8 read as Latin-1
  EXPECT_EQ(fixed("\u00e2\u20ac\u0153hi\u00e2\u20ac\u009d"), "\"hi\"");                      // read as Windows-1252, then uncurled
  EXPECT_EQ(fixed("\u00c3\u0192\u00c2\u00a9"), "\u00e9");                                   // encoded twice
  EXPECT_EQ(fixed("\u00f0\u0178\u02dc\u20ac smile"), "\U0001F600 smile");                    // 4-byte emoji
  EXPECT_EQ(fixed("\u00d0\u00bf\u00d1\u20ac\u00d0\u00b8\u00d0\u00b2\u00d0\u00b5\u00d1\u201a"), "\u043f\u0440\u0438\u0432\u0435\u0442");
  EXPECT_EQ(fixed("d\u00e9j\u00e0 vu, caf\u00c3\u00a9"), "d\u00e9j\u00e0 vu, caf\u00e9");       // mixed with correct text
  EXPECT_EQ(fixed("it\u0092s"), "it's");                                                   // C1 control as Windows-1252
}

TEST(ClipTokenizer, CorrectTextIsLeftAlone) {
  for (const char* s : {"caf\u00e9 cr\u00e8me br\u00fbl\u00e9e", "na\u00efve Zo\u00eb \u00c6r\u00f8sk\u00f8bing stra\u00dfe \u00c0\u00c9\u00ce\u00d5\u00dc",
                        "\u00abL'\u00c9T\u00c9\u00bb", "Stra\u00df\u2026", "S\u00c3O PAULO", "\u00a9 2024 \u00b0C \u00b1 \u00bd",
                        "\u4e1c\u4eac \U0001F338", "\u00c2 \u00c3", "x \u00d7 y"})
    EXPECT_EQ(text::utf32_to_utf8(text::fix_mojibake(text::utf8_to_utf32(s))), s);
}

TEST(ClipTokenizer, HtmlUnescapeMatchesPython) {
  EXPECT_EQ(unescaped("&amp; &amp &AMP; &ampx &notit; &notin; &#65;&#x42;&#X43 &#0; &#x80; &#xD800; &#1114112; &#99999999999999999999;"),
            "& & & &x \u00acit; \u2209 ABC \ufffd \u20ac \ufffd \ufffd \ufffd");
  EXPECT_EQ(unescaped("&#1; &#x7f;x &#xFFFE;y &#13;"), " x y \r");
  EXPECT_EQ(unescaped("& &; &# &#x; &nosuchname; a&b"), "& &; &# &#x; &nosuchname; a&b");
  EXPECT_EQ(unescaped("&NotNestedGreaterGreater;"), "\u2aa2\u0338");  // two code points
  EXPECT_EQ(unescaped("&abcdefghijabcdefghijabcdefghijabcdefghij;"), "&abcdefghijabcdefghijabcdefghijabcdefghij;");
  // ftfy's own pass only takes ';'-terminated references and some all-caps names.
  auto ftfy = [](const std::string& s) { return text::utf32_to_utf8(text::ftfy_unescape_html(text::utf8_to_utf32(s))); };
  EXPECT_EQ(ftfy("this&not that &not; P&EACUTE;REZ &#x41; &#xZZ; &#65"), "this&not that \u00ac P\u00c9REZ A &#xZZ; &#65");
}

TEST(ClipTokenizer, SplitsLikeTheReferencePattern) {
  auto strings = [](const std::string& s) { return tok().encode_to_strings(s); };
  EXPECT_EQ(strings("don't"), (std::vector<std::string>{"don</w>", "'t</w>"}));
  // At '!' the punctuation run wins and swallows "<|", so no special token is produced.
  // "</w>" closes each piece, so the joined symbols show the split: x | !<| | endoftext | |>.
  std::string joined;
  for (const auto& symbol : strings("x!<|endoftext|>")) joined += symbol;
  EXPECT_EQ(joined, "x</w>!<|</w>endoftext</w>|></w>");
  const auto ids = tok().encode("x!<|endoftext|>");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), ClipTokenizer::kEndOfText), 0);
  EXPECT_EQ(tok().encode("a<|startoftext|>b"), (std::vector<int>{320, 49406, 321}));
  EXPECT_EQ(strings("\u00bd\u00b2"), (std::vector<std::string>{"\u00c2\u00bd</w>", "\u00c2\u00b2</w>"}));  // \p{N} one at a time
}

TEST(ClipTokenizer, IsDeterministicAcrossThreadsAndCalls) {
  const std::string prompt = "masterpiece, best quality, a (red:1.2) fox in the snow, caf\u00e9, \U0001F98A";
  const std::vector<int> first = tok().encode(prompt);
  ASSERT_FALSE(first.empty());
  std::vector<std::vector<int>> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) results[t] = tok().encode(prompt + " " + std::to_string(i % 7));
    });
  for (auto& th : threads) th.join();
  for (const auto& r : results) EXPECT_EQ(std::vector<int>(r.begin(), r.begin() + static_cast<long>(first.size())), first);
  EXPECT_EQ(tok().encode(prompt), first);
}

TEST(ClipTokenizer, MissingOrBrokenVocabularyIsReported) {
  try {
    ClipTokenizer t("/nonexistent/bpe.txt.gz");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/bpe.txt.gz"), std::string::npos);
  }
  kiln::test::TempDir dir;
  kiln::test::write_bytes(dir / "short.txt", "#version: 0.2\ni n\nt h\n");
  try {
    ClipTokenizer t(dir / "short.txt");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadFormat) << e.what();
    EXPECT_NE(std::string(e.what()).find("short.txt"), std::string::npos);
  }
}

TEST(ClipTokenizer, HuggingFaceMergesFileGivesTheSameTokens) {
  // diffusers' tokenizer/merges.txt is the same merge list, uncompressed.
  ClipTokenizer hf(kiln::test::sd15_tiny_dir() / "diffusers/tokenizer/merges.txt");
  for (const char* prompt : {"a photo of a cat", "caf\u00e9 \U0001F431 \u4e1c\u4eac, 1girl"})
    EXPECT_EQ(hf.encode(prompt), tok().encode(prompt));
}

}  // namespace
}  // namespace kiln::engine
