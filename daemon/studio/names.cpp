#include "studio/names.h"

#include <cctype>
#include <cstdint>
#include <cstdio>

#include "studio/error.h"
#include "studio/text_encoding.h"

namespace kiln::studio {
namespace fs = std::filesystem;
namespace {

// Code points that are invisible, reorder text, or look like a path separator: a name holding
// them could display as something other than what it is.
bool deceptive(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || (cp >= 0x2000 && cp <= 0x200F) ||
         (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || cp == 0xFEFF ||
         cp == 0x2044 || cp == 0x2215 || cp == 0x29F8 || cp == 0xFF0F || cp == 0xFF3C || cp >= 0xFFF0 ||
         (cp >= 0xE000 && cp <= 0xF8FF);
}

// Reason a name is refused, or empty when it is fine.
std::string problem(std::string_view name) {
  if (name.empty()) return "it is empty";
  if (!is_valid_utf8(name)) return "it is not valid UTF-8 text";
  if (utf8_length(name) > kMaxNameCharacters)
    return "it is longer than " + std::to_string(kMaxNameCharacters) + " characters";
  if (name.size() > kMaxNameBytes) return "it is longer than " + std::to_string(kMaxNameBytes) + " bytes";
  if (name == "." || name == "..") return "'.' and '..' name folders themselves";
  if (name.front() == '.') return "it starts with '.' (hidden file names are not allowed)";
  if (name.front() == ' ') return "it starts with a space";
  if (name.back() == ' ' || name.back() == '.') return "it ends with a space or '.'";
  for (std::size_t i = 0; i < name.size();) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x80) {
      if (c == '/' || c == '\\') return "it contains a path separator ('/' or '\\')";
      if (c < 0x20 || c == 0x7F) return "it contains a control character";
      if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ' '))
        return std::string("it contains '") + static_cast<char>(c) + "'";
      ++i;
      continue;
    }
    // Decode the multi-byte character (validity was checked above).
    const std::size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    uint32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(name[i + k]) & 0x3F);
    if (deceptive(cp)) return "it contains an invisible, formatting or look-alike separator character";
    i += len;
  }
  return "";
}

}  // namespace

std::string printable(std::string_view s) {
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out.push_back(ch);
    }
  }
  if (!is_valid_utf8(out)) {  // show invalid bytes escaped too, so the message stays valid UTF-8
    std::string escaped;
    for (const char ch : out) {
      const auto c = static_cast<unsigned char>(ch);
      if (c >= 0x80) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02X", c);
        escaped += buf;
      } else {
        escaped.push_back(ch);
      }
    }
    out = escaped;
  }
  return out;
}

bool is_valid_library_name(std::string_view name) { return problem(name).empty(); }

void validate_library_name(std::string_view name, std::string_view what) {
  const std::string why = problem(name);
  if (why.empty()) return;
  const std::string shown = name.size() > 80 ? printable(name.substr(0, 80)) + "..." : printable(name);
  throw Error(ErrorKind::InvalidName, std::string(what) + " '" + shown + "' is not allowed: " + why +
                                          ". Use 1-64 letters, digits, spaces, '-', '_' or '.', not starting with "
                                          "'.' and not ending with a space or '.'");
}

fs::path safe_join(const fs::path& root, std::string_view relative) {
  const auto refuse = [&](const std::string& why) {
    return Error(ErrorKind::InvalidName, "path '" + printable(relative) + "' is not allowed under " + root.string() +
                                             ": " + why);
  };
  if (relative.empty()) throw refuse("it is empty");
  if (!is_valid_utf8(relative)) throw refuse("it is not valid UTF-8 text");
  if (relative.front() == '/') throw refuse("it is absolute");
  for (const char ch : relative) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) throw refuse("it contains a control character");
    if (c == '\\') throw refuse("it contains a backslash");
  }
  fs::path joined = root;
  for (std::size_t start = 0;;) {
    const std::size_t slash = relative.find('/', start);
    const std::string_view part = relative.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part.empty() || part == "." || part == "..") throw refuse("it has an empty, '.' or '..' component");
    joined /= std::string(part);
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  // Symbolic links already inside root must not lead out of it either.
  std::error_code ec;
  const fs::path real_root = fs::weakly_canonical(root, ec);
  const fs::path real = fs::weakly_canonical(joined, ec);
  if (!ec) {
    const auto rel = real.lexically_relative(real_root);
    if (rel.empty() || *rel.begin() == "..") throw refuse("it leads outside the folder (through a symbolic link)");
  }
  return joined;
}

}  // namespace kiln::studio
