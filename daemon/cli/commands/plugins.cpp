// kiln plugins install|remove|list: Kiln's plugin bundles put where Krita and Blender look for them
// (and Photoshop's package pointed at), undone with remove. No daemon is needed.
#include <iostream>

#include "cli/commands/commands.h"
#include "cli/output.h"
#include "cli/plugins/plugin_install.h"

namespace kiln::cli {

namespace {
Host parse_host(const std::string& name) {
  if (const auto host = host_from_name(name)) return *host;
  throw CLI::ValidationError("HOST", "'" + name + "' is not a host Kiln has a plugin for: krita, blender or photoshop");
}

int print(const PluginReport& report) {
  for (const std::string& line : report.lines) (report.ok ? std::cout : std::cerr) << line << "\n";
  return report.ok ? kExitOk : kExitError;
}
}  // namespace

void add_plugins_commands(CLI::App& app, const GlobalOptions&, CommandResult& result) {
  auto* plugins = app.add_subcommand("plugins", "install Kiln's plugins into Krita and Blender (and find Photoshop's)");
  plugins->require_subcommand(1);

  auto host = std::make_shared<std::string>();
  auto dry_run = std::make_shared<bool>(false);
  auto* install = plugins->add_subcommand("install", "put a plugin where its application looks for it");
  install->add_option("host", *host, "krita, blender or photoshop")->required();
  install->add_flag("--dry-run", *dry_run, "say what would be written, write nothing");
  install->callback([&result, host, dry_run] {
    result.exit_code = print(install_plugin(parse_host(*host), PluginPaths::from_environment(), *dry_run));
  });

  auto* remove = plugins->add_subcommand("remove", "take away what `kiln plugins install` wrote");
  remove->add_option("host", *host, "krita, blender or photoshop")->required();
  remove->add_flag("--dry-run", *dry_run, "say what would be removed, remove nothing");
  remove->callback([&result, host, dry_run] {
    result.exit_code = print(remove_plugin(parse_host(*host), PluginPaths::from_environment(), *dry_run));
  });

  auto* list = plugins->add_subcommand("list", "the bundles, the applications found and what is installed");
  list->callback([&result] {
    for (const std::string& line : describe_plugins(PluginPaths::from_environment())) std::cout << line << "\n";
    result.exit_code = kExitOk;
  });
}

}  // namespace kiln::cli
