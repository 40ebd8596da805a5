#pragma once
// Every `kiln` subcommand: each adds itself to the CLI11 app and runs over kiln::Client.
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "client/client.h"

namespace kiln::cli {

struct GlobalOptions {
  std::string remote;    // --remote NAME|kiln+tls://HOST:PORT, else $KILN_REMOTE, else the local daemon
  std::string socket;    // --socket, else $KILN_SOCKET, else the per-user default
  std::string data_dir;  // --data-dir: given to a daemon the CLI starts
  bool no_autostart = false;
};

// Connects (starting kilnd unless disabled). Throws ConnectionError / RpcError.
std::unique_ptr<Client> connect(const GlobalOptions& global, bool autostart = true);

// The result a subcommand leaves for main() to return.
struct CommandResult {
  int exit_code = 0;
};

void add_status_command(CLI::App& app, const GlobalOptions& global, CommandResult& result);
void add_jobs_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result);
void add_daemon_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result);
void add_bench_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result);
void add_bench_ipc_command(CLI::App& bench, const GlobalOptions& global, CommandResult& result);
void add_bench_generate_command(CLI::App& bench, const GlobalOptions& global, CommandResult& result);
void add_bench_train_command(CLI::App& bench, const GlobalOptions& global, CommandResult& result);
void add_models_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result);
void add_loras_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result);
void add_dataset_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result);
void add_generate_command(CLI::App& app, const GlobalOptions& global, CommandResult& result);
void add_shot_command(CLI::App& app, const GlobalOptions& global, CommandResult& result);
void add_plugins_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result);
void add_train_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result);
void add_remote_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result);

}  // namespace kiln::cli
