#pragma once
// kilnd logs to <data dir>/logs/kilnd.log (rotating, 3 × 5 MB) and, when asked, to stderr — or to
// the journal when systemd connected stderr to it.
#include <filesystem>
#include <string>

namespace kiln::service {

// Throws std::runtime_error for an unknown level name.
void setup_logging(const std::filesystem::path& log_dir, const std::string& level, bool to_stderr);

}  // namespace kiln::service
