#include "studio/dataset/captions.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "studio/error.h"

namespace kiln::studio {
namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// The comparison key: ASCII lower case, runs of whitespace as one space, underscores as spaces
// (booru tags "long_hair" and "long hair" are one tag).
std::string key(std::string_view tag) {
  std::string out;
  bool space = false;
  for (const char ch : trim(tag)) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isspace(c) || c == '_') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    out.push_back(static_cast<char>(std::tolower(c)));
  }
  return out;
}

bool contains(const std::vector<std::string>& tags, std::string_view tag) {
  return std::any_of(tags.begin(), tags.end(), [&](const std::string& t) { return same_tag(t, tag); });
}

}  // namespace

std::vector<std::string> split_tags(std::string_view caption) {
  std::vector<std::string> tags;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= caption.size(); ++i) {
    if (i == caption.size() || caption[i] == ',' || caption[i] == '\n' || caption[i] == '\r') {
      std::string tag = trim(caption.substr(start, i - start));
      if (!tag.empty()) tags.push_back(std::move(tag));
      start = i + 1;
    }
  }
  return tags;
}

std::string join_tags(const std::vector<std::string>& tags) {
  std::string out;
  for (const std::string& t : tags) {
    if (!out.empty()) out += ", ";
    out += t;
  }
  return out;
}

bool same_tag(std::string_view a, std::string_view b) { return key(a) == key(b); }

std::vector<std::string> normalize_tags(std::vector<std::string> tags, std::string_view trigger) {
  std::vector<std::string> out;
  const std::string trig = trim(trigger);
  if (!trig.empty()) out.push_back(trig);
  for (std::string& t : tags) {
    t = trim(t);
    if (!t.empty() && !contains(out, t)) out.push_back(std::move(t));
  }
  return out;
}

std::string normalize_caption(std::string_view caption, std::string_view trigger) {
  return join_tags(normalize_tags(split_tags(caption), trigger));
}

void validate_tag_edit(const TagEdit& edit, std::string_view trigger) {
  if (trigger.empty()) return;
  for (const std::string& t : edit.remove)
    if (same_tag(t, trigger))
      throw Error(ErrorKind::InvalidArgument, "'" + t + "' is the dataset's trigger word and stays first in every "
                                              "caption; change the trigger in the dataset settings instead");
  for (const auto& [from, to] : edit.replace)
    if (same_tag(from, trigger))
      throw Error(ErrorKind::InvalidArgument, "'" + from + "' is the dataset's trigger word and cannot be replaced in "
                                              "captions; change the trigger in the dataset settings instead");
  for (const std::string& t : edit.move_to_end)
    if (same_tag(t, trigger))
      throw Error(ErrorKind::InvalidArgument, "the trigger word '" + t + "' always stays first");
}

std::string apply_tag_edit(std::string_view caption, const TagEdit& edit, std::string_view trigger) {
  validate_tag_edit(edit, trigger);
  std::vector<std::string> tags = split_tags(caption);
  for (const auto& [from, to] : edit.replace)
    for (std::string& t : tags)
      if (same_tag(t, from)) t = trim(to);
  for (const std::string& r : edit.remove)
    tags.erase(std::remove_if(tags.begin(), tags.end(), [&](const std::string& t) { return same_tag(t, r); }), tags.end());
  for (const std::string& a : edit.add)
    for (const std::string& t : split_tags(a))
      if (!contains(tags, t)) tags.push_back(t);
  for (const std::string& m : edit.move_to_end) {
    // stable_partition keeps the order of the others and of the moved ones.
    std::stable_partition(tags.begin(), tags.end(), [&](const std::string& t) { return !same_tag(t, m); });
  }
  return join_tags(normalize_tags(std::move(tags), trigger));
}

std::vector<std::pair<std::string, int>> tag_frequency(const std::vector<std::string>& captions) {
  std::map<std::string, std::pair<std::string, int>> counts;  // key -> (first spelling, captions holding it)
  for (const std::string& caption : captions) {
    std::vector<std::string> seen;
    for (const std::string& t : split_tags(caption)) {
      const std::string k = key(t);
      if (std::find(seen.begin(), seen.end(), k) != seen.end()) continue;
      seen.push_back(k);
      auto [it, inserted] = counts.try_emplace(k, t, 0);
      ++it->second.second;
    }
  }
  std::vector<std::pair<std::string, int>> out;
  for (auto& [k, v] : counts) out.push_back(v);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

int keep_tokens_hint(const std::vector<std::string>& captions, std::string_view trigger) {
  if (trim(trigger).empty()) return 0;
  bool any = false;
  for (const std::string& c : captions) {
    const auto tags = split_tags(c);
    if (tags.empty()) continue;
    if (!same_tag(tags.front(), trigger)) return 0;
    any = true;
  }
  return any ? 1 : 0;
}

}  // namespace kiln::studio
