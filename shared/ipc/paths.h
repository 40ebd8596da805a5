#pragma once
// Where the daemon's socket and data live. The daemon and every client resolve them the same way:
//   socket:   --socket, else $KILN_SOCKET, else $XDG_RUNTIME_DIR/kiln/kilnd.sock, else ~/.cache/kiln/kilnd.sock
//   data dir: --data-dir, else $KILN_DATA_DIR, else $XDG_DATA_HOME/kiln, else ~/.local/share/kiln
#include <filesystem>
#include <string>

namespace kiln::ipc {

// $HOME, else the user database's home, else the temp directory.
std::filesystem::path home_dir();

std::filesystem::path default_socket_path();
std::filesystem::path default_data_dir();

// Resolves an explicit value (may be empty) against the defaults above.
std::filesystem::path resolve_socket_path(const std::string& explicit_path);
std::filesystem::path resolve_data_dir(const std::string& explicit_dir);

// Unix socket paths are limited to ~107 bytes; returns a plain-language problem or "".
std::string check_socket_path(const std::filesystem::path& path);

}  // namespace kiln::ipc
