// Train config, part 2 of 5: the sources as layers of raw values: a JSON object (a request), a
// kohya TOML or JSON config file (sections flattened as kohya's read_config_from_file does) and
// command-line key=value overrides. Nothing is interpreted here; train_config_load.cpp does that.
// See train_config_detail.h.
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <utility>

#include <toml++/toml.h>

#include "service/training/text_util.h"
#include "service/training/train_config_detail.h"

namespace kiln::service::training {
using namespace detail;

namespace fs = std::filesystem;

ConfigLayer layer_from_json(const nlohmann::json& object, std::string source) {
  if (!object.is_object())
    throw ConfigError({"the configuration" + from(source) + " must be a JSON object of keys, not " + describe(object) +
                       "."});
  return ConfigLayer{std::move(source), object, {}, false};
}

ConfigLayer layer_from_toml(const std::string& text, std::string source) {
  toml::table table;
  try {
    table = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw ConfigError({source + " is not valid TOML: line " + std::to_string(e.source().begin.line) + ", column " +
                       std::to_string(e.source().begin.column) + ": " + std::string(e.description()) + "."});
  }
  std::vector<std::string> errors;
  std::function<json(const toml::node&, const std::string&)> convert = [&](const toml::node& n,
                                                                         const std::string& key) -> json {
    if (auto s = n.as_string()) return s->get();
    if (auto i = n.as_integer()) return i->get();
    if (auto f = n.as_floating_point()) return f->get();
    if (auto b = n.as_boolean()) return b->get();
    if (auto a = n.as_array()) {
      json out = json::array();
      for (const toml::node& item : *a) out.push_back(convert(item, key));
      return out;
    }
    if (auto t = n.as_table()) {
      json out = json::object();
      for (auto&& [k, v] : *t) out[std::string(k.str())] = convert(v, key);
      return out;
    }
    errors.push_back(key + " in " + source + " holds a date or time, which no training option takes.");
    return nullptr;
  };
  json values = json::object();
  std::map<std::string, std::string> section_of;
  auto add = [&](const std::string& key, const json& value, const std::string& section) {
    if (values.contains(key) && values[key] != value) {
      errors.push_back(key + " is given twice in " + source + " with different values: " + describe(values[key]) +
                       (section_of[key].empty() ? "" : " in [" + section_of[key] + "]") + " and " + describe(value) +
                       (section.empty() ? "" : " in [" + section + "]") + ".");
      return;
    }
    values[key] = value;
    section_of[key] = section;
  };
  for (auto&& [k, node] : table) {
    const std::string key(k.str());
    if (const toml::table* section = node.as_table()) {
      // kohya read_config_from_file: a section's keys join the top level; a table inside a section
      // would be a value kohya passes on as a dict, which no option takes.
      for (auto&& [k2, inner] : *section) {
        const std::string key2(k2.str());
        if (inner.is_table()) {
          errors.push_back("[" + key + "." + key2 + "] in " + source +
                           " is a table inside a section; kohya's config files have one level of sections.");
          continue;
        }
        add(key2, convert(inner, key2), key);
      }
    } else {
      add(key, convert(node, key), "");
    }
  }
  if (!errors.empty()) throw ConfigError(errors);
  return ConfigLayer{std::move(source), values, {}, false};
}

ConfigLayer layer_from_file(const std::filesystem::path& path) {
  const std::string source = "file " + path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError({"the config file " + path.string() +
                       (fs::exists(path) ? " cannot be read." : " does not exist.")});
  }
  std::stringstream ss;
  ss << in.rdbuf();
  ConfigLayer layer;
  if (lower(path.extension().string()) == ".json") {
    json j;
    try {
      j = json::parse(ss.str());
    } catch (const json::parse_error& e) {
      throw ConfigError({path.string() + " is not valid JSON: " + e.what()});
    }
    layer = layer_from_json(j, source);
  } else {
    layer = layer_from_toml(ss.str(), source);
  }
  layer.base_dir = fs::absolute(path).parent_path();
  return layer;
}

ConfigLayer layer_from_overrides(const std::vector<std::string>& assignments, std::string source) {
  ConfigLayer layer{std::move(source), json::object(), {}, true};
  std::vector<std::string> errors;
  for (const std::string& a : assignments) {
    const size_t eq = a.find('=');
    const std::string key = eq == std::string::npos ? trim(a) : trim(a.substr(0, eq));
    if (eq == std::string::npos || key.empty()) {
      errors.push_back("'" + a + "'" + from(layer.source) + " is not a key=value setting, like network_dim=32.");
      continue;
    }
    std::string value = trim(a.substr(eq + 1));
    // Quotes around a value are shell leftovers ("--set training_comment='a b'"), not part of it.
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
      layer.values[key] = value.substr(1, value.size() - 2);
      continue;
    }
    layer.values[key] = value;
  }
  if (!errors.empty()) throw ConfigError(errors);
  return layer;
}

}  // namespace kiln::service::training
