#pragma once
// `kiln plugins`: where each host application looks for plugins, putting Kiln's bundles there
// (recording exactly what was written) and taking them away again.
//   Krita      <data home>/krita/pykrita/ (the bundle unpacked) and enable_kiln_krita=true in the
//              [python] group of <config home>/kritarc
//   Blender    <config home>/blender/<version>/scripts/addons/ for each version found (4.2 and later:
//              extensions/user_default/), from its config folders and `blender --version`
//   Photoshop  runs on Windows and macOS only: the .ccx's path and how to install it
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kiln::cli {

enum class Host { Krita, Blender, Photoshop };
std::optional<Host> host_from_name(const std::string& name);  // "krita", "blender", "photoshop"
const char* host_name(Host host);
const std::vector<Host>& all_hosts();

// Where things are; every path follows the environment (HOME, XDG_CONFIG_HOME, XDG_DATA_HOME,
// KILN_PLUGIN_DIR, KILN_DATA_DIR), so tests point it at temporary folders.
struct PluginPaths {
  std::filesystem::path config_home;                // $XDG_CONFIG_HOME or ~/.config
  std::filesystem::path data_home;                  // $XDG_DATA_HOME or ~/.local/share
  std::vector<std::filesystem::path> bundle_dirs;   // $KILN_PLUGIN_DIR, <kiln>/../share/kiln/plugins, the build tree
  std::filesystem::path record;                     // <Kiln data dir>/plugins-installed.json
  static PluginPaths from_environment();
};

struct PluginReport {
  bool ok = true;                  // false: nothing done (no bundle, no host, nothing installed)
  std::vector<std::string> lines;  // what was (or, in a dry run, would be) written, in order
};

// The bundle file of `host` and its version, or nullopt; `looked` lists where it looked.
struct Bundle {
  std::filesystem::path path;
  std::string version;
};
std::optional<Bundle> find_bundle(Host host, const PluginPaths& paths, std::vector<std::filesystem::path>* looked = nullptr);

PluginReport install_plugin(Host host, const PluginPaths& paths, bool dry_run);
PluginReport remove_plugin(Host host, const PluginPaths& paths, bool dry_run);
// One line per host: the bundle found, whether the host was found, what is installed where.
std::vector<std::string> describe_plugins(const PluginPaths& paths);

}  // namespace kiln::cli
