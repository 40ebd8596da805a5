#include "engine/resources.h"

#include <cstdlib>
#include <string>
#include <system_error>
#include <vector>

#include "engine/error.h"

namespace kiln::engine {
namespace fs = std::filesystem;

namespace {
fs::path executable_dir() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : self.parent_path();
}
}  // namespace

fs::path resource_path(const fs::path& relative) {
  std::vector<fs::path> roots;
  if (const char* env = std::getenv("KILN_RESOURCE_DIR"); env && *env) roots.emplace_back(env);
  if (fs::path exe = executable_dir(); !exe.empty()) roots.push_back(exe / ".." / "share" / "kiln");
  roots.emplace_back(KILN_SOURCE_RESOURCE_DIR);

  std::string tried;
  for (const fs::path& root : roots) {
    fs::path candidate = root / relative;
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) return candidate.lexically_normal();
    tried += "\n  " + candidate.string();
  }
  throw Error(ErrorKind::NotFound, "Kiln's resource file '" + relative.string() +
                                       "' is missing; looked in:" + tried +
                                       "\nReinstall Kiln or set KILN_RESOURCE_DIR to its share/kiln folder.");
}

}  // namespace kiln::engine
