// kiln daemon start|stop|status
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "cli/commands/commands.h"
#include "cli/output.h"
#include "client/daemon_launcher.h"
#include "ipc/paths.h"
#include "protocol/methods.h"

namespace kiln::cli {

namespace {
// Connects without starting anything; empty when no daemon answers.
std::unique_ptr<Client> try_connect(const GlobalOptions& global) {
  try {
    return connect(global, /*autostart=*/false);
  } catch (const ConnectionError&) {
    return nullptr;
  }
}

// Gone, or a zombie: kilnd has exited (its socket and lock are released) and only waits for its
// parent to reap it — a host application or a script that started it and has not called wait().
bool has_exited(int pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');  // the name may hold spaces and parentheses; the state follows it
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}
}  // namespace

void add_daemon_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result) {
  auto* daemon = app.add_subcommand("daemon", "start, stop or check the daemon");
  daemon->require_subcommand(1);

  daemon->add_subcommand("start", "start kilnd in the background (if it is not running)")->callback([&global, &result] {
    if (auto running = try_connect(global)) {
      std::cout << "kilnd is already running (pid " << running->server_info().at("pid") << ") on "
                << running->socket_path() << "\n";
      result.exit_code = kExitOk;
      return;
    }
    auto client = connect(global, /*autostart=*/true);
    std::cout << "kilnd started (pid " << client->server_info().at("pid") << ") on " << client->socket_path() << "\n"
              << "  device: " << client->server_info().at("device").get<std::string>() << "\n";
    result.exit_code = kExitOk;
  });

  daemon->add_subcommand("stop", "stop kilnd gracefully (running jobs are saved)")->callback([&global, &result] {
    auto client = try_connect(global);
    if (!client) {
      std::cout << "kilnd is not running\n";
      result.exit_code = kExitOk;
      return;
    }
    const auto pid = client->server_info().at("pid").get<int>();
    client->call(protocol::method::kShutdown);
    client->close();
    // Wait until it has really gone, so `kiln daemon stop && kiln daemon start` is safe.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (has_exited(pid)) {
        std::cout << "kilnd (pid " << pid << ") stopped\n";
        result.exit_code = kExitOk;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    print_error("kilnd (pid " + std::to_string(pid) + ") is still stopping after 30 s; its log says why");
    result.exit_code = kExitError;
  });

  auto* status = daemon->add_subcommand("status", "say whether kilnd is running (exit code 0 if it is, 1 if not)");
  status->callback([&global, &result] {
    if (auto client = try_connect(global)) {
      std::cout << "kilnd is running (pid " << client->server_info().at("pid") << ", version "
                << client->server_info().at("version").get<std::string>() << ") on " << client->socket_path() << "\n";
      result.exit_code = kExitOk;
    } else {
      std::cout << "kilnd is not running (socket " << ipc::resolve_socket_path(global.socket).string() << ")\n";
      result.exit_code = kExitError;
    }
  });
}

}  // namespace kiln::cli
