// kiln status [--json]
#include <iostream>

#include "cli/commands/commands.h"
#include "cli/output.h"
#include "protocol/methods.h"

namespace kiln::cli {

void add_status_command(CLI::App& app, const GlobalOptions& global, CommandResult& result) {
  auto* cmd = app.add_subcommand("status", "show the daemon's version, device and job queue");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "print the status object as JSON");
  cmd->callback([&global, &result, json] {
    auto client = connect(global);
    const Json s = client->call(protocol::method::kStatus);
    if (*json) {
      print_json(s);
      return;
    }
    const Json& q = s.at("queue");
    std::cout << "kilnd " << s.at("version").get<std::string>() << " (pid " << s.at("pid") << ", protocol "
              << s.at("protocol") << ", up " << format_duration(s.at("uptime_s").get<double>()) << ")\n"
              << "  device:   " << s.at("device").get<std::string>() << "\n"
              << "  socket:   " << s.at("socket").get<std::string>() << "\n"
              << "  data dir: " << s.at("data_dir").get<std::string>() << "\n"
              << "  clients:  " << s.at("clients") << "\n"
              << "  jobs:     " << q.at("running") << " running, " << q.at("queued") << " queued, " << q.at("paused")
              << " paused\n";
    const Json remote = s.value("remote", Json::object());
    if (remote.value("listening", false))
      std::cout << "  remote:   listening on " << remote.value("address", "") << " (TLS, certificate "
                << remote.value("fingerprint", "") << "), " << remote.value("clients", 0) << " remote client(s)\n";
    result.exit_code = kExitOk;
  });
}

}  // namespace kiln::cli
