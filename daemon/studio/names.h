#pragma once
// Names that clients send (datasets, LoRAs, models) become folder and file names. Everything that
// turns a client's string into a path goes through here, so none escapes the library folder.
#include <filesystem>
#include <string>
#include <string_view>

namespace kiln::studio {

constexpr std::size_t kMaxNameCharacters = 64;
constexpr std::size_t kMaxNameBytes = 200;  // leaves room for "-000001.safetensors" within NAME_MAX

// Accepts 1–64 characters: letters of any script, digits, '-', '_', '.', and spaces inside the
// name; valid UTF-8; no path separators, control characters, invisible or bidirectional marks;
// not starting with '.', not ending with '.' or a space (Windows drops those). `what` names the
// thing in the message ("dataset name"). Throws Error(InvalidName) saying what is allowed.
void validate_library_name(std::string_view name, std::string_view what);

// True when validate_library_name would accept `name`.
bool is_valid_library_name(std::string_view name);

// root / relative, where `relative` is one or more '/'-separated components, each non-empty and
// not "." or "..", with no backslash, NUL or control character, and the result (following any
// symbolic links that already exist) stays inside root. Throws Error(InvalidName) otherwise.
std::filesystem::path safe_join(const std::filesystem::path& root, std::string_view relative);

// `s` with control characters and invalid bytes shown as \xNN, for quoting untrusted names in messages.
std::string printable(std::string_view s);

}  // namespace kiln::studio
