#pragma once
// kilnd under systemd (the kilnd.socket and kilnd.service user units): the listening socket
// systemd passes (socket activation), the journal when stderr goes there, and the readiness
// notification of a Type=notify service. Everything is a no-op when kilnd runs on its own.
#include <filesystem>
#include <optional>

namespace kiln::service::systemd {

// The Unix stream socket systemd passed to this process, listening on `expected` (the socket path
// every client uses). nullopt when none was passed. Throws std::runtime_error when systemd passed
// something else (another path, more than one socket), saying how to fix the unit.
std::optional<int> activated_socket(const std::filesystem::path& expected);

// Whether stderr is connected to the journal (systemd sets JOURNAL_STREAM to its device:inode).
bool stderr_is_journal();

// Tells systemd the daemon is ready (Type=notify), or that it is stopping.
void notify_ready();
void notify_stopping();

}  // namespace kiln::service::systemd
