#pragma once
// Captions as kohya reads them: one line of comma-separated tags, the trigger word first (early
// tags weigh most, and keep_tokens=1 keeps it in place when captions are shuffled).
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::studio {

// Tags of a caption: split on commas and line breaks, trimmed, empty ones dropped.
std::vector<std::string> split_tags(std::string_view caption);
std::string join_tags(const std::vector<std::string>& tags);  // "a, b, c"

// Tags are the same when they match ignoring ASCII case and repeated spaces ("Red  Dress" = "red dress").
bool same_tag(std::string_view a, std::string_view b);

// Drops repeated tags (the first spelling stays) and puts `trigger` first (moved there or added);
// an empty trigger only dedupes.
std::vector<std::string> normalize_tags(std::vector<std::string> tags, std::string_view trigger);
std::string normalize_caption(std::string_view caption, std::string_view trigger);

// A batch edit, applied to every caption in this order: replace, remove, add (appended), move to
// the end, dedupe, trigger first. The trigger cannot be removed or replaced (change the dataset's
// trigger instead): Error(InvalidArgument).
struct TagEdit {
  std::vector<std::pair<std::string, std::string>> replace;  // old -> new
  std::vector<std::string> remove;
  std::vector<std::string> add;
  std::vector<std::string> move_to_end;  // e.g. "transparent background", "simple background"
  bool empty() const { return replace.empty() && remove.empty() && add.empty() && move_to_end.empty(); }
};
void validate_tag_edit(const TagEdit& edit, std::string_view trigger);
std::string apply_tag_edit(std::string_view caption, const TagEdit& edit, std::string_view trigger);

// How many captions hold each tag, most frequent first (ties by name): the same counts kohya
// stores as ss_tag_frequency.
std::vector<std::pair<std::string, int>> tag_frequency(const std::vector<std::string>& captions);

// kohya's keep_tokens: 1 when every non-empty caption starts with the trigger, so shuffling
// never moves it; 0 otherwise.
int keep_tokens_hint(const std::vector<std::string>& captions, std::string_view trigger);

}  // namespace kiln::studio
