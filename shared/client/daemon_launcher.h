#pragma once
// Starting kilnd on demand, fully detached from the client (its own session, no inherited
// descriptors, stdio on /dev/null: it logs to its data dir).
#include <filesystem>
#include <string>

namespace kiln {

// explicit_path, else $KILN_DAEMON, else a `kilnd` beside the program or library that contains
// this code (or in ../bin from there), else $PATH. Throws ConnectionError naming where it looked.
std::filesystem::path find_daemon_executable(const std::string& explicit_path);

// Launches `exe --socket socket [--data-dir data_dir]` as a detached process. Throws ConnectionError.
void spawn_daemon(const std::filesystem::path& exe, const std::filesystem::path& socket, const std::string& data_dir);

}  // namespace kiln
