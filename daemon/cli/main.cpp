// kiln: Kiln's command line. A client of kilnd like the plugins; starts the daemon if needed.
// Exit codes: 0 ok, 1 error, 2 usage.
#include <iostream>

#include "cli/commands/commands.h"
#include "cli/output.h"
#include "protocol/version.h"

namespace kiln::cli {

std::unique_ptr<Client> connect(const GlobalOptions& global, bool autostart) {
  ClientOptions options;
  options.remote = global.remote;
  options.socket_path = global.socket;
  options.data_dir = global.data_dir;
  options.client_name = std::string("kiln-cli ") + protocol::kKilnVersion;
  options.autostart = autostart && !global.no_autostart;
  auto client = std::make_unique<Client>(options);
  client->connect();
  return client;
}

}  // namespace kiln::cli

int main(int argc, char** argv) {
  using namespace kiln::cli;
  GlobalOptions global;
  CommandResult result;
  CLI::App app{"kiln — train and use LoRAs with the Kiln daemon (kilnd)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("kiln ") + kiln::protocol::kKilnVersion);
  app.add_option("--remote", global.remote,
                 "a remote kilnd: a saved remote's NAME (kiln remote add) or kiln+tls://HOST:PORT (token from $KILN_TOKEN); "
                 "default: $KILN_REMOTE, else the local daemon");
  app.add_option("--socket", global.socket, "daemon socket (default: $KILN_SOCKET or the per-user default)");
  app.add_option("--data-dir", global.data_dir, "data dir for a daemon kiln starts (default: $KILN_DATA_DIR or ~/.local/share/kiln)");
  app.add_flag("--no-autostart", global.no_autostart, "fail instead of starting kilnd when it is not running");

  add_status_command(app, global, result);
  add_jobs_commands(app, global, result);
  add_daemon_commands(app, global, result);
  add_models_commands(app, global, result);
  add_loras_commands(app, global, result);
  add_dataset_commands(app, global, result);
  add_generate_command(app, global, result);
  add_shot_command(app, global, result);
  add_plugins_commands(app, global, result);
  add_train_commands(app, global, result);
  add_bench_commands(app, global, result);
  add_remote_commands(app, global, result);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  } catch (const CLI::Error& e) {  // raised inside a callback: a usage problem as well
    print_error(e.what());
    return kExitUsage;
  } catch (const kiln::RpcError& e) {
    print_error(e.what());
    return kExitError;
  } catch (const kiln::ConnectionError& e) {
    print_error(e.what());
    return kExitError;
  } catch (const std::exception& e) {
    print_error(e.what());
    return kExitError;
  }
  return result.exit_code;
}
