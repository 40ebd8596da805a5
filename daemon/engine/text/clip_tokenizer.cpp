#include "engine/text/clip_tokenizer.h"

#include <zlib.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <queue>
#include <unordered_map>

#include "engine/error.h"
#include "engine/resources.h"
#include "engine/text/fix_text.h"
#include "engine/text/html_unescape.h"
#include "engine/text/unicode.h"

namespace kiln::engine {

using text::is_letter;
using text::is_number;
using text::is_space;

namespace {

constexpr int kMerges = 49152 - 256 - 2;  // merges the reference uses: lines 1..48894
constexpr size_t kCacheLimit = 1 << 16;   // pieces; cleared when full so odd prompts cannot grow it forever

std::string read_gzip(const std::filesystem::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw Error(ErrorKind::NotFound, "Cannot open the CLIP vocabulary '" + path.string() + "'; reinstall Kiln.");
  std::string data;
  char buffer[1 << 16];
  int n;
  while ((n = gzread(file, buffer, sizeof buffer)) > 0) data.append(buffer, static_cast<size_t>(n));
  const bool failed = n < 0;
  gzclose(file);
  if (failed) throw Error(ErrorKind::BadFormat, "The CLIP vocabulary '" + path.string() + "' is not a valid gzip file; reinstall Kiln.");
  return data;
}

// GPT-2's reversible byte → printable character map: printable Latin-1 bytes map to themselves,
// the rest to U+0100 upwards. `order` lists bytes in vocabulary order (printable ones first).
struct ByteAlphabet {
  std::string symbol[256];
  int index[256];
  ByteAlphabet() {
    std::vector<int> order;
    for (int b = '!'; b <= '~'; ++b) order.push_back(b);
    for (int b = 0xA1; b <= 0xAC; ++b) order.push_back(b);
    for (int b = 0xAE; b <= 0xFF; ++b) order.push_back(b);
    std::vector<char32_t> chars(order.begin(), order.end());
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      if (std::find(order.begin(), order.end(), b) != order.end()) continue;
      order.push_back(b);
      chars.push_back(next++);
    }
    for (size_t i = 0; i < order.size(); ++i) {
      symbol[order[i]].clear();
      text::append_utf8(symbol[order[i]], chars[i]);
      index[order[i]] = static_cast<int>(i);
    }
  }
};

uint64_t pair_key(int a, int b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

// The pattern is case-insensitive; after lower-casing only U+017F (long s) still folds onto a
// literal's letter.
bool starts_with_at(const std::u32string& s, size_t i, const char32_t* lit) {
  for (size_t k = 0; lit[k]; ++k) {
    if (i + k >= s.size()) return false;
    const char32_t c = s[i + k];
    if (c != lit[k] && !(lit[k] == 's' && c == 0x17F)) return false;
  }
  return true;
}

// The reference's split pattern, applied at position i; returns the match length (0 for whitespace,
// which no alternative matches). Alternatives are tried in the pattern's order.
size_t piece_at(const std::u32string& s, size_t i) {
  static const char32_t* const kLiterals[] = {U"<|startoftext|>", U"<|endoftext|>", U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
  for (const char32_t* lit : kLiterals)
    if (starts_with_at(s, i, lit)) return std::char_traits<char32_t>::length(lit);
  size_t j = i;
  if (is_letter(s[i])) {
    while (j < s.size() && is_letter(s[j])) ++j;
    return j - i;
  }
  if (is_number(s[i])) return 1;
  while (j < s.size() && !is_space(s[j]) && !is_letter(s[j]) && !is_number(s[j])) ++j;
  return j - i;
}

}  // namespace

struct ClipTokenizer::Impl {
  ByteAlphabet bytes;
  std::vector<std::string> tokens;                 // id → vocabulary string
  std::unordered_map<uint64_t, std::pair<int, int>> merges;  // (left id, right id) → (rank, merged id)

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int>> cache;

  std::vector<int> bpe(const std::string& piece) const;
  std::vector<int> encode(std::string_view utf8) const;
};

ClipTokenizer::ClipTokenizer(const std::filesystem::path& path) : impl_(std::make_unique<Impl>()) {
  const std::string data = read_gzip(path);
  auto bad = [&](const std::string& why) {
    return Error(ErrorKind::BadFormat, "The CLIP vocabulary '" + path.string() + "' is damaged (" + why + "); reinstall Kiln.");
  };
  Impl& m = *impl_;
  m.tokens.reserve(49408);
  for (int i = 0; i < 256; ++i) m.tokens.emplace_back();
  for (int b = 0; b < 256; ++b) m.tokens[m.bytes.index[b]] = m.bytes.symbol[b];
  for (int i = 0; i < 256; ++i) m.tokens.push_back(m.tokens[i] + "</w>");

  std::unordered_map<std::string, int> ids;
  ids.reserve(49408);
  for (int i = 0; i < 512; ++i) ids.emplace(m.tokens[i], i);
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(kMerges);
  size_t pos = data.find('\n');  // line 0 is a version header
  for (int rank = 0; rank < kMerges; ++rank) {
    if (pos == std::string::npos) throw bad("it has fewer than " + std::to_string(kMerges) + " merges");
    const size_t begin = pos + 1;
    pos = data.find('\n', begin);
    const std::string line = data.substr(begin, pos == std::string::npos ? std::string::npos : pos - begin);
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() || line.find(' ', space + 1) != std::string::npos)
      throw bad("merge line " + std::to_string(rank + 1) + " is not two symbols");
    pairs.emplace_back(line.substr(0, space), line.substr(space + 1));
    m.tokens.push_back(pairs.back().first + pairs.back().second);
    ids[m.tokens.back()] = static_cast<int>(m.tokens.size()) - 1;  // a repeated string keeps its last id, as the reference's dict does
  }
  m.tokens.emplace_back("<|startoftext|>");
  m.tokens.emplace_back("<|endoftext|>");

  m.merges.reserve(kMerges);
  for (int rank = 0; rank < kMerges; ++rank) {
    const auto left = ids.find(pairs[rank].first), right = ids.find(pairs[rank].second);
    if (left == ids.end() || right == ids.end()) continue;  // its parts never occur as symbols, so it never applies
    m.merges.emplace(pair_key(left->second, right->second), std::make_pair(rank, ids.at(pairs[rank].first + pairs[rank].second)));
  }
}

ClipTokenizer::~ClipTokenizer() = default;

const ClipTokenizer& ClipTokenizer::bundled() {
  static const ClipTokenizer tokenizer(resource_path("clip/bpe_simple_vocab_16e6.txt.gz"));
  return tokenizer;
}

std::vector<int> ClipTokenizer::Impl::bpe(const std::string& piece) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (auto it = cache.find(piece); it != cache.end()) return it->second;
  }
  // Symbols in a linked list; candidate merges in a heap ordered by (rank, position). Popping the
  // best rank, leftmost first, merges exactly what the reference's rounds merge (every occurrence
  // of the best pair, left to right; a merge only creates pairs of later rank), in O(n log n)
  // instead of O(n²) for very long words.
  const int n = static_cast<int>(piece.size());
  std::vector<int> id(static_cast<size_t>(n)), prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const int index = bytes.index[static_cast<unsigned char>(piece[static_cast<size_t>(i)])];
    id[i] = i + 1 == n ? index + 256 : index;  // the last symbol carries "</w>"
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int rank, pos, left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    const auto it = merges.find(pair_key(id[pos], id[next[pos]]));
    if (it != merges.end()) heap.push({it->second.first, pos, id[pos], id[next[pos]]});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int right = next[c.pos];
    if (id[c.pos] != c.left || right < 0 || id[right] != c.right) continue;  // stale: a symbol changed
    id[c.pos] = merges.at(pair_key(c.left, c.right)).second;
    id[right] = -1;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    consider(prev[c.pos]);
    consider(c.pos);
  }
  std::vector<int> word;
  for (int i = 0; i >= 0 && i < n; i = next[i]) word.push_back(id[i]);
  std::lock_guard<std::mutex> lock(cache_mutex);
  if (cache.size() >= kCacheLimit) cache.clear();
  cache.emplace(piece, word);
  return word;
}

std::vector<int> ClipTokenizer::Impl::encode(std::string_view utf8) const {
  const std::u32string cleaned = text::utf8_to_utf32(ClipTokenizer::clean(utf8));
  std::vector<int> out;
  std::string piece;
  for (size_t i = 0; i < cleaned.size();) {
    const size_t n = piece_at(cleaned, i);
    if (n == 0) {  // whitespace between pieces
      ++i;
      continue;
    }
    piece = text::utf32_to_utf8(std::u32string_view(cleaned).substr(i, n));
    i += n;
    if (piece == "<|startoftext|>") out.push_back(kStartOfText);
    else if (piece == "<|endoftext|>") out.push_back(kEndOfText);
    else {
      const std::vector<int> ids = bpe(piece);
      out.insert(out.end(), ids.begin(), ids.end());
    }
  }
  return out;
}

std::vector<int> ClipTokenizer::encode(std::string_view utf8) const { return impl_->encode(utf8); }

std::vector<std::string> ClipTokenizer::encode_to_strings(std::string_view utf8) const {
  std::vector<std::string> out;
  for (int id : encode(utf8)) out.push_back(token_string(id));
  return out;
}

std::vector<int64_t> ClipTokenizer::context_chunk(const std::vector<int>& ids) {
  std::vector<int64_t> chunk(kContextLength, kEndOfText);
  chunk[0] = kStartOfText;
  const size_t n = std::min<size_t>(ids.size(), kContextLength - 2);
  std::copy(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), chunk.begin() + 1);
  return chunk;  // chunk[n + 1] is already EOS
}

const std::string& ClipTokenizer::token_string(int id) const {
  if (id < 0 || id >= vocab_size())
    throw Error(ErrorKind::InvalidArgument, "CLIP token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                                                std::to_string(vocab_size() - 1) + ").");
  return impl_->tokens[static_cast<size_t>(id)];
}

int ClipTokenizer::vocab_size() const { return static_cast<int>(impl_->tokens.size()); }

std::string ClipTokenizer::clean(std::string_view utf8) {
  std::u32string s = text::fix_text(text::utf8_to_utf32(utf8));
  s = text::html_unescape(text::html_unescape(s));
  // Collapse whitespace runs to one space and trim both ends (strip + \s+ → ' ' + strip).
  std::u32string collapsed;
  collapsed.reserve(s.size());
  for (char32_t c : s) {
    if (is_space(c)) {
      if (!collapsed.empty() && collapsed.back() != ' ') collapsed.push_back(' ');
    } else {
      collapsed.push_back(c);
    }
  }
  if (!collapsed.empty() && collapsed.back() == ' ') collapsed.pop_back();
  return text::utf32_to_utf8(text::to_lower(collapsed));
}

}  // namespace kiln::engine
