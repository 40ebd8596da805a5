#include "cli/plugins/plugin_install.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "cli/plugins/zip_archive.h"
#include "ipc/paths.h"

namespace kiln::cli {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr const char* kKritaKey = "enable_kiln_krita";

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

fs::path home() {
  const std::string h = env("HOME");
  if (h.empty()) throw std::runtime_error("HOME is not set: kiln cannot tell where your applications keep their plugins");
  return h;
}

fs::path executable_dir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : self.parent_path();
}

// An executable named `name` on PATH, or empty.
fs::path on_path(const std::string& name) {
  std::stringstream path(env("PATH"));
  std::string dir;
  while (std::getline(path, dir, ':')) {
    if (dir.empty()) continue;
    const fs::path candidate = fs::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// "3.4" from `blender --version` ("Blender 3.4.1"), or empty.
std::string blender_version(const fs::path& blender) {
  const std::string command = "'" + blender.string() + "' --version 2>/dev/null";
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return "";
  std::array<char, 256> line{};
  std::string first = std::fgets(line.data(), line.size(), p) ? line.data() : "";
  ::pclose(p);
  std::smatch m;
  return std::regex_search(first, m, std::regex(R"(Blender (\d+)\.(\d+))")) ? m[1].str() + "." + m[2].str() : "";
}

bool at_least(const std::string& version, int major, int minor) {
  int a = 0, b = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &a, &b) != 2) return false;
  return a > major || (a == major && b >= minor);
}

std::string shown(const fs::path& p) {
  const std::string h = env("HOME"), s = p.string();
  return !h.empty() && s.rfind(h + "/", 0) == 0 ? "~" + s.substr(h.size()) : s;
}

void write_atomically(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  const fs::path partial = path.string() + ".kiln-partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + path.string());
  }
  fs::rename(partial, path);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// ---- the record of what was installed ----------------------------------------------------------

Json read_record(const PluginPaths& paths) {
  if (!fs::exists(paths.record)) return Json::object();
  Json j = Json::parse(read_file(paths.record), nullptr, false);
  return j.is_object() ? j : Json::object();
}

void write_record(const PluginPaths& paths, const Json& record) { write_atomically(paths.record, record.dump(2) + "\n"); }

// ---- kritarc: one key in the [python] group ----------------------------------------------------

// The value of `key` in [python], or nullopt.
std::optional<std::string> kritarc_value(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  bool in_python = false;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '[') in_python = line.rfind("[python]", 0) == 0;
    else if (in_python && line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  }
  return std::nullopt;
}

// `text` with `key` in [python] set to `value` (nullopt: removed), the group added when missing.
std::string kritarc_with(const std::string& text, const std::string& key, const std::optional<std::string>& value) {
  std::istringstream in(text);
  std::string line, out;
  bool in_python = false, seen_group = false, done = false;
  auto emit = [&] {
    if (value && !done) out += key + "=" + *value + "\n";
    done = true;
  };
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '[') {
      if (in_python) emit();
      in_python = line.rfind("[python]", 0) == 0;
      seen_group = seen_group || in_python;
    } else if (in_python && line.rfind(key + "=", 0) == 0) {
      emit();
      continue;
    }
    out += line + "\n";
  }
  if (in_python) emit();
  if (!seen_group && value) out += std::string(out.empty() || out.back() == '\n' ? "" : "\n") + "\n[python]\n" + key + "=" + *value + "\n";
  return out;
}

// ---- files written -----------------------------------------------------------------------------

void remove_written(const Json& files, const fs::path& stop_at, PluginReport& report, bool dry_run) {
  for (const Json& f : files) {
    const fs::path p = f.get<std::string>();
    std::error_code ec;
    if (!fs::exists(p, ec)) continue;
    report.lines.push_back((dry_run ? "would remove " : "removed ") + shown(p));
    if (!dry_run) fs::remove(p, ec);
  }
  // Folders the bundle made and that are now empty.
  for (const Json& f : files) {
    fs::path dir = fs::path(f.get<std::string>()).parent_path();
    while (!dry_run && dir != stop_at && dir.string().size() > stop_at.string().size()) {
      std::error_code ec;
      if (!fs::is_empty(dir, ec) || ec) break;
      fs::remove(dir, ec);
      dir = dir.parent_path();
    }
  }
}

Json paths_json(const std::vector<fs::path>& written) {
  Json j = Json::array();
  for (const fs::path& p : written) j.push_back(p.string());
  return j;
}

// ---- hosts -------------------------------------------------------------------------------------

std::vector<std::string> blender_versions(const PluginPaths& paths) {
  std::vector<std::string> versions;
  std::error_code ec;
  const fs::path root = paths.config_home / "blender";
  if (fs::is_directory(root, ec))
    for (const auto& entry : fs::directory_iterator(root, ec)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_directory() && std::regex_match(name, std::regex(R"(\d+\.\d+)"))) versions.push_back(name);
    }
  if (const fs::path blender = on_path("blender"); !blender.empty())
    if (const std::string v = blender_version(blender); !v.empty() && std::find(versions.begin(), versions.end(), v) == versions.end())
      versions.push_back(v);
  std::sort(versions.begin(), versions.end());
  return versions;
}

fs::path blender_target(const PluginPaths& paths, const std::string& version) {
  const fs::path base = paths.config_home / "blender" / version;
  return at_least(version, 4, 2) ? base / "extensions" / "user_default" : base / "scripts" / "addons";
}

bool krita_found(const PluginPaths& paths) {
  std::error_code ec;
  return !on_path("krita").empty() || fs::is_directory(paths.data_home / "krita", ec);
}

PluginReport no_bundle(Host host, const std::vector<fs::path>& looked) {
  PluginReport r;
  r.ok = false;
  std::string where;
  for (const fs::path& p : looked) where += "\n  " + p.string();
  r.lines.push_back(std::string("no ") + host_name(host) + " bundle found; looked in:" + where +
                    "\nInstall Kiln's package, or build the bundle (installers/" + host_name(host) +
                    "/) and set KILN_PLUGIN_DIR to its folder.");
  return r;
}

PluginReport install_krita(const PluginPaths& paths, const Bundle& bundle, bool dry_run) {
  PluginReport r;
  if (!krita_found(paths)) {
    r.ok = false;
    r.lines.push_back("Krita was not found (no `krita` on PATH, no " + shown(paths.data_home / "krita") +
                      "): install Krita 5.1 or later (Debian: sudo apt install krita), start it once, then run this again.");
    return r;
  }
  const fs::path target = paths.data_home / "krita" / "pykrita";
  const std::vector<fs::path> written = extract_zip(bundle.path, target, dry_run);
  for (const fs::path& p : written) r.lines.push_back((dry_run ? "would write " : "wrote ") + shown(p));
  const fs::path kritarc = paths.config_home / "kritarc";
  const std::string text = fs::exists(kritarc) ? read_file(kritarc) : "";
  const std::optional<std::string> previous = kritarc_value(text, kKritaKey);
  r.lines.push_back(std::string(dry_run ? "would set " : "set ") + kKritaKey + "=true in [python] of " + shown(kritarc) +
                    (previous ? " (was " + *previous + ")" : ""));
  if (dry_run) return r;
  write_atomically(kritarc, kritarc_with(text, kKritaKey, std::string("true")));
  Json record = read_record(paths);
  Json entry{{"version", bundle.version}, {"bundle", bundle.path.string()}, {"root", target.string()},
             {"files", paths_json(written)}, {"kritarc", kritarc.string()}};
  entry["kritarc_previous"] = previous ? Json(*previous) : Json(nullptr);
  record["krita"] = entry;
  write_record(paths, record);
  r.lines.push_back("restart Krita: Kiln's docker is under Settings > Dockers > Kiln");
  return r;
}

PluginReport install_blender(const PluginPaths& paths, const Bundle& bundle, bool dry_run) {
  PluginReport r;
  const std::vector<std::string> versions = blender_versions(paths);
  if (versions.empty()) {
    r.ok = false;
    r.lines.push_back("Blender was not found (no `blender` on PATH, no version folder in " +
                      shown(paths.config_home / "blender") + "): install Blender 3.4 or later and start it once.");
    return r;
  }
  Json targets = Json::array();
  for (const std::string& v : versions) {
    const fs::path target = blender_target(paths, v);
    const std::vector<fs::path> written = extract_zip(bundle.path, target, dry_run);
    r.lines.push_back("Blender " + v + ": " + (dry_run ? "would write " : "wrote ") + std::to_string(written.size()) +
                      " files under " + shown(target / "kiln_blender"));
    targets.push_back({{"version", v}, {"root", target.string()}, {"files", paths_json(written)}});
  }
  if (dry_run) return r;
  Json record = read_record(paths);
  record["blender"] = {{"version", bundle.version}, {"bundle", bundle.path.string()}, {"targets", targets}};
  write_record(paths, record);
  r.lines.push_back("enable it in Blender: Edit > Preferences > Add-ons, search \"Kiln\" (4.2+: Get Extensions > Installed)");
  return r;
}

PluginReport install_photoshop(const Bundle& bundle) {
  PluginReport r;
  r.lines.push_back("Photoshop runs on Windows and macOS, not on Linux: nothing to install here.");
  r.lines.push_back("The panel is " + bundle.path.string() +
                    ": copy it to the Photoshop machine and double-click it (Creative Cloud installs it), or load it "
                    "with Adobe's UXP Developer Tool. It talks to a Kiln daemon on that machine.");
  return r;
}

}  // namespace

std::optional<Host> host_from_name(const std::string& name) {
  if (name == "krita") return Host::Krita;
  if (name == "blender") return Host::Blender;
  if (name == "photoshop") return Host::Photoshop;
  return std::nullopt;
}

const char* host_name(Host host) {
  switch (host) {
    case Host::Krita: return "krita";
    case Host::Blender: return "blender";
    case Host::Photoshop: return "photoshop";
  }
  return "?";
}

const std::vector<Host>& all_hosts() {
  static const std::vector<Host> hosts{Host::Krita, Host::Blender, Host::Photoshop};
  return hosts;
}

PluginPaths PluginPaths::from_environment() {
  PluginPaths p;
  p.config_home = env("XDG_CONFIG_HOME").empty() ? home() / ".config" : fs::path(env("XDG_CONFIG_HOME"));
  p.data_home = env("XDG_DATA_HOME").empty() ? home() / ".local" / "share" : fs::path(env("XDG_DATA_HOME"));
  if (!env("KILN_PLUGIN_DIR").empty()) p.bundle_dirs.emplace_back(env("KILN_PLUGIN_DIR"));
  if (const fs::path exe = executable_dir(); !exe.empty()) {
    p.bundle_dirs.push_back((exe / ".." / "share" / "kiln" / "plugins").lexically_normal());  // the package
    p.bundle_dirs.push_back((exe / "..").lexically_normal());  // a build tree: build/{krita,blender,photoshop}
  }
  p.record = ipc::resolve_data_dir("") / "plugins-installed.json";
  return p;
}

std::optional<Bundle> find_bundle(Host host, const PluginPaths& paths, std::vector<fs::path>* looked) {
  const std::string name = host_name(host);
  const std::regex pattern(host == Host::Photoshop ? R"(kiln[-_]?photoshop[-_]?(.*)\.ccx|(.*)\.ccx)"
                                                   : "kiln-" + name + R"(-(.+)\.zip)");
  for (const fs::path& dir : paths.bundle_dirs)
    for (const fs::path& folder : {dir, dir / name}) {
      if (looked) looked->push_back(folder);
      std::error_code ec;
      if (!fs::is_directory(folder, ec)) continue;
      for (const auto& entry : fs::directory_iterator(folder, ec)) {
        std::smatch m;
        const std::string file = entry.path().filename().string();
        if (entry.is_regular_file() && std::regex_match(file, m, pattern))
          return Bundle{entry.path(), m[1].matched ? m[1].str() : (m.size() > 2 ? m[2].str() : "")};
      }
    }
  return std::nullopt;
}

PluginReport install_plugin(Host host, const PluginPaths& paths, bool dry_run) {
  std::vector<fs::path> looked;
  const auto bundle = find_bundle(host, paths, &looked);
  if (!bundle) return no_bundle(host, looked);
  switch (host) {
    case Host::Krita: return install_krita(paths, *bundle, dry_run);
    case Host::Blender: return install_blender(paths, *bundle, dry_run);
    case Host::Photoshop: return install_photoshop(*bundle);
  }
  return {};
}

PluginReport remove_plugin(Host host, const PluginPaths& paths, bool dry_run) {
  PluginReport r;
  Json record = read_record(paths);
  const std::string name = host_name(host);
  if (!record.contains(name)) {
    r.ok = false;
    r.lines.push_back(std::string("kiln did not install the ") + name + " plugin (nothing in " + shown(paths.record) +
                      "); a plugin installed by hand is removed from the application itself");
    return r;
  }
  const Json& entry = record.at(name);
  if (host == Host::Krita) {
    remove_written(entry.at("files"), entry.at("root").get<std::string>(), r, dry_run);
    const fs::path kritarc = entry.at("kritarc").get<std::string>();
    const Json& previous = entry.at("kritarc_previous");
    r.lines.push_back(std::string(dry_run ? "would " : "") + (previous.is_null() ? "remove " : "restore ") + kKritaKey +
                      (previous.is_null() ? "" : "=" + previous.get<std::string>()) + " in " + shown(kritarc));
    if (!dry_run && fs::exists(kritarc))
      write_atomically(kritarc, kritarc_with(read_file(kritarc), kKritaKey,
                                             previous.is_null() ? std::nullopt : std::optional<std::string>(previous.get<std::string>())));
  } else {
    for (const Json& t : entry.at("targets")) remove_written(t.at("files"), t.at("root").get<std::string>(), r, dry_run);
  }
  if (!dry_run) {
    record.erase(name);
    write_record(paths, record);
  }
  return r;
}

std::vector<std::string> describe_plugins(const PluginPaths& paths) {
  const Json record = read_record(paths);
  std::vector<std::string> lines;
  for (Host host : all_hosts()) {
    const std::string name = host_name(host);
    const auto bundle = find_bundle(host, paths);
    std::string line = name + ": " + (bundle ? "bundle " + bundle->version + " (" + bundle->path.string() + ")" : "no bundle");
    if (host == Host::Krita) line += krita_found(paths) ? "; Krita found" : "; Krita not found";
    if (host == Host::Blender) {
      const auto versions = blender_versions(paths);
      std::string list;
      for (const auto& v : versions) list += (list.empty() ? "" : ", ") + v;
      line += versions.empty() ? "; Blender not found" : "; Blender " + list;
    }
    if (host == Host::Photoshop) line += "; Photoshop runs on Windows and macOS";
    if (record.contains(name)) line += "; installed " + record.at(name).value("version", std::string("?"));
    lines.push_back(line);
  }
  return lines;
}

}  // namespace kiln::cli
