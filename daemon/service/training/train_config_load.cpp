// Train config, part 3 of 5: layered loading. Each source (preset, config file, request,
// command-line overrides; parsed in train_config_sources.cpp) is normalised (aliases, kohya's
// network_args and optimizer_args), merged lowest precedence first, and read into typed values;
// every problem is collected and reported at once. See train_config_detail.h.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <utility>

#include "service/training/presets.h"
#include "service/training/text_util.h"
#include "service/training/train_config_detail.h"

namespace kiln::service::training {
using namespace detail;

namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- loose (command-line) values

json guess_loose(const std::string& text) {
  const std::string s = trim(text);
  const std::string l = lower(s);
  if (l == "none" || l == "null") return nullptr;
  bool b = false;
  if (l == "true" || l == "false" || l == "yes" || l == "no" || l == "on" || l == "off") {
    parse_bool_text(l, b);
    return b;
  }
  int64_t i = 0;
  if (parse_int(s, i)) return i;
  double d = 0;
  if (parse_double(s, d)) return d;
  return s;
}

// Splits "a=1,b=0.9,0.99" into ["a=1", "b=0.9,0.99"]: a comma starts a new item only when what
// follows holds an '='.
std::vector<std::string> split_assignments(const std::string& text) {
  std::vector<std::string> pieces;
  std::string cur;
  std::stringstream ss(text);
  std::string part;
  std::vector<std::string> parts;
  while (std::getline(ss, part, ',')) parts.push_back(part);
  for (const std::string& p : parts) {
    if (!cur.empty() && p.find('=') != std::string::npos) {
      pieces.push_back(trim(cur));
      cur.clear();
    }
    cur += (cur.empty() ? "" : ",") + p;
  }
  if (!trim(cur).empty()) pieces.push_back(trim(cur));
  return pieces;
}

// A command-line string read as what `key` needs. Values that do not parse stay text, and the
// typed reading reports them.
json convert_loose(const std::string& key, const json& value) {
  if (!value.is_string()) return value;
  const std::string text = value.get<std::string>();
  const std::string t = trim(text);
  const std::string l = lower(t);
  const KeyInfo* info = find_implemented(key);
  static const KeyInfo network_args{"network_args", Kind::NetworkArgs};
  if (key == "network_args") info = &network_args;
  if (!info) return guess_loose(text);
  if (l == "none" || l == "null") return nullptr;
  switch (info->kind) {
    case Kind::Bool: {
      bool b = false;
      if (t.empty()) return nullptr;
      return parse_bool_text(t, b) ? json(b) : json(text);
    }
    case Kind::Int: {
      int64_t i = 0;
      double d = 0;
      if (t.empty()) return nullptr;
      if (parse_int(t, i)) return i;
      if (parse_double(t, d)) return d;  // reported as "not a whole number"
      return text;
    }
    case Kind::Float: {
      double d = 0;
      if (t.empty()) return nullptr;
      return parse_double(t, d) ? json(d) : json(text);
    }
    case Kind::BatchSize:
    case Kind::Warmup: {
      int64_t i = 0;
      double d = 0;
      if (t.empty()) return nullptr;
      if (parse_int(t, i)) return i;
      if (parse_double(t, d)) return d;
      return t;
    }
    case Kind::OptimizerArgs:
    case Kind::NetworkArgs: {
      if (!t.empty() && t.front() == '[') {
        try {
          return json::parse(t);
        } catch (const json::exception&) {
          return text;
        }
      }
      json list = json::array();
      for (const std::string& item : split_assignments(t)) list.push_back(item);
      return list;
    }
    case Kind::String:
    case Kind::Resolution:
    case Kind::Prompts:
      return text;
  }
  return text;
}

// ---------------------------------------------------------------- normalising a layer

// "k=v" items of kohya's network_args / optimizer_args, or an object.
bool assignments(const std::string& key, const json& value, const std::string& source, Problems& p,
                 std::vector<std::pair<std::string, json>>& out) {
  if (value.is_null()) return true;
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) out.emplace_back(it.key(), it.value());
    return true;
  }
  if (!value.is_array()) {
    p.error(key + " must be a list of \"name=value\" texts (kohya's form) or a table, not " + describe(value) +
            from(source) + ".");
    return false;
  }
  for (const json& item : value) {
    if (!item.is_string() || item.get<std::string>().find('=') == std::string::npos) {
      p.error(key + " items must be \"name=value\" texts, like \"weight_decay=0.01\"; got " + describe(item) +
              from(source) + ".");
      return false;
    }
    const std::string s = item.get<std::string>();
    const size_t eq = s.find('=');
    out.emplace_back(trim(s.substr(0, eq)), json(trim(s.substr(eq + 1))));
  }
  return true;
}

// A number from JSON or from kohya's Python-literal text.
std::optional<double> number_of(const json& v) {
  if (v.is_number()) return v.get<double>();
  double d = 0;
  if (v.is_string() && parse_double(v.get<std::string>(), d)) return d;
  return std::nullopt;
}

json normalise_optimizer_args(const json& value, const std::string& source, Problems& p) {
  std::vector<std::pair<std::string, json>> items;
  if (!assignments("optimizer_args", value, source, p, items)) return nullptr;
  json out = json::object();
  for (const auto& [name, v] : items) {
    if (name == "betas") {
      std::vector<double> betas;
      if (v.is_array()) {
        for (const json& b : v)
          if (auto d = number_of(b)) betas.push_back(*d);
      } else if (v.is_string()) {
        std::string s = v.get<std::string>();
        s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '(' || c == ')' || c == '[' || c == ']'; }),
                s.end());
        std::stringstream ss(s);
        std::string part;
        while (std::getline(ss, part, ','))
          if (double d = 0; parse_double(part, d)) betas.push_back(d);
          else betas.push_back(NAN);
      }
      if (betas.size() != 2 || std::isnan(betas[0]) || std::isnan(betas[1])) {
        p.error("optimizer_args betas must be two numbers, like betas=0.9,0.999; got " + describe(v) + from(source) +
                ".");
        continue;
      }
      out["betas"] = betas;
    } else if (std::find(kOptimizerArgNames.begin(), kOptimizerArgNames.end(), name) != kOptimizerArgNames.end()) {
      const auto d = number_of(v);
      if (!d) {
        p.error("optimizer_args " + name + " must be a number, not " + describe(v) + from(source) + ".");
        continue;
      }
      out[name] = *d;
    } else {
      const std::string hint = suggestion(name, kOptimizerArgNames);
      p.error("optimizer_args " + name + " is not supported" + from(source) + "; Kiln takes " +
              join(kOptimizerArgNames) + (hint.empty() ? "." : hint));
    }
  }
  return out;
}

struct Layer {
  std::string source;
  json values = json::object();
  fs::path base_dir;
};

void put(Layer& out, const std::string& key, const json& value, const std::string& given_as, Problems& p) {
  if (out.values.contains(key) && out.values[key] != value) {
    p.error(given_as + " and " + key + " disagree (" + describe(value) + " and " + describe(out.values[key]) + ")" +
            from(out.source) + ".");
    return;
  }
  out.values[key] = value;
}

Layer normalise(const ConfigLayer& in, Problems& p) {
  Layer out{in.source, json::object(), in.base_dir};
  if (!in.values.is_object()) {
    p.error("the configuration" + from(in.source) + " must be a table of keys, not " + describe(in.values) + ".");
    return out;
  }
  for (auto it = in.values.begin(); it != in.values.end(); ++it) {
    std::string key = it.key();
    json value = in.loose ? convert_loose(aliases().count(key) ? aliases().at(key) : key, it.value()) : it.value();
    if (auto a = aliases().find(key); a != aliases().end()) {
      put(out, a->second, value, key, p);
      continue;
    }
    if (key == "use_8bit_adam" || key == "use_lion_optimizer") {
      if (value.is_null()) continue;
      if (!value.is_boolean()) {
        p.error(key + " must be true or false, not " + describe(value) + from(in.source) + ".");
        continue;
      }
      if (!value.get<bool>()) continue;
      const std::string type = key == "use_8bit_adam" ? "AdamW8bit" : "Lion";
      const json* given = in.values.contains("optimizer_type") ? &in.values["optimizer_type"] : nullptr;
      if (given && given->is_string() && !given->get<std::string>().empty() &&
          lower(given->get<std::string>()) != lower(type)) {
        p.error(key + " and optimizer_type = " + given->get<std::string>() + " are both given" + from(in.source) +
                "; keep optimizer_type.");
        continue;
      }
      out.values["optimizer_type"] = type;
      continue;
    }
    if (key == "network_args") {
      std::vector<std::pair<std::string, json>> items;
      if (!assignments(key, value, in.source, p, items)) continue;
      for (const auto& [name, v] : items) {
        if (name != "conv_dim" && name != "conv_alpha") {
          p.error("network_args " + name + " is not supported; Kiln's networks.lora takes conv_dim and conv_alpha" +
                  from(in.source) + ".");
          continue;
        }
        json typed = v;
        if (v.is_string()) {  // kohya's list holds text
          int64_t i = 0;
          double d = 0;
          if (name == "conv_dim" && parse_int(v.get<std::string>(), i)) typed = i;
          else if (parse_double(v.get<std::string>(), d)) typed = d;
        }
        put(out, name, typed, "network_args " + name, p);
      }
      continue;
    }
    if (key == "optimizer_args") {
      out.values[key] = normalise_optimizer_args(value, in.source, p);
      continue;
    }
    put(out, key, value, key, p);
  }
  // kohya: both in one source, max_train_epochs wins.
  if (out.values.contains("max_train_epochs") && !out.values["max_train_epochs"].is_null() &&
      out.values.contains("max_train_steps") && !out.values["max_train_steps"].is_null()) {
    p.notes.push_back("max_train_steps is ignored because max_train_epochs is also set" + from(in.source) +
                      " (kohya's rule: the epochs decide the steps).");
  }
  return out;
}

// ---------------------------------------------------------------- merging

struct Merged {
  json values = json::object();
  std::map<std::string, std::string> origin;
  std::map<std::string, fs::path> base_dir;
};

Merged merge(const std::vector<Layer>& layers) {
  Merged m;
  for (const Layer& layer : layers) {
    // A higher source that sets max_train_steps but not max_train_epochs means steps: an epoch
    // count from below (a preset's 10) would otherwise silently win, as kohya lets epochs win.
    if (layer.values.contains("max_train_steps") && !layer.values.contains("max_train_epochs")) {
      m.values.erase("max_train_epochs");
      m.origin.erase("max_train_epochs");
    }
    for (auto it = layer.values.begin(); it != layer.values.end(); ++it) {
      m.values[it.key()] = it.value();
      m.origin[it.key()] = layer.source;
      m.base_dir[it.key()] = layer.base_dir;
    }
  }
  return m;
}

// ---------------------------------------------------------------- typed reading

class Reader {
 public:
  Reader(const Merged& m, Problems& p) : m_(m), p_(p) {}

  const json* raw(const std::string& key) const {
    auto it = m_.values.find(key);
    if (it == m_.values.end() || it->is_null()) return nullptr;
    return &*it;
  }
  std::string origin(const std::string& key) const {
    auto it = m_.origin.find(key);
    return it == m_.origin.end() ? "" : it->second;
  }
  fs::path base_dir(const std::string& key) const {
    auto it = m_.base_dir.find(key);
    return it == m_.base_dir.end() ? fs::path() : it->second;
  }
  void type_error(const std::string& key, const std::string& wanted, const json& v) {
    p_.error(key + " must be " + wanted + ", not " + describe(v) + from(origin(key)) + ".");
  }

  std::optional<bool> boolean(const std::string& key) {
    const json* v = raw(key);
    if (!v) return std::nullopt;
    if (v->is_boolean()) return v->get<bool>();
    type_error(key, "true or false", *v);
    return std::nullopt;
  }
  std::optional<int64_t> integer(const std::string& key) {
    const json* v = raw(key);
    if (!v) return std::nullopt;
    if (v->is_number_integer()) return v->get<int64_t>();
    if (v->is_number_unsigned()) {
      if (v->get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(v->get<uint64_t>());
    }
    // 10.0 from a JSON writer is still ten.
    if (v->is_number_float() && std::trunc(v->get<double>()) == v->get<double>() && std::abs(v->get<double>()) < 9e15)
      return static_cast<int64_t>(v->get<double>());
    type_error(key, "a whole number", *v);
    return std::nullopt;
  }
  std::optional<double> number(const std::string& key) {
    const json* v = raw(key);
    if (!v) return std::nullopt;
    if (v->is_number()) {
      const double d = v->get<double>();
      if (std::isfinite(d)) return d;
    }
    type_error(key, "a number", *v);
    return std::nullopt;
  }
  std::optional<std::string> text(const std::string& key) {
    const json* v = raw(key);
    if (!v) return std::nullopt;
    if (v->is_string()) return v->get<std::string>();
    type_error(key, "a text", *v);
    return std::nullopt;
  }

 private:
  const Merged& m_;
  Problems& p_;
};

fs::path resolve_path(const std::string& given, const fs::path& layer_dir, const fs::path& working_dir) {
  fs::path p(given);
  if (!given.empty() && given[0] == '~') {
    if (const char* home = std::getenv("HOME")) p = fs::path(home) / given.substr(given.size() > 1 ? 2 : 1);
  }
  if (p.is_relative()) {
    const fs::path base = !layer_dir.empty() ? layer_dir : working_dir;
    if (!base.empty()) p = base / p;
  }
  return p.lexically_normal();
}

std::optional<std::string> read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  std::stringstream ss(text);
  while (std::getline(ss, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

// The resolution: 512, "512", "512,768", "512x768", [512, 768].
std::optional<TrainResolution> read_resolution(Reader& r, const std::string& key) {
  const json* v = r.raw(key);
  if (!v) return std::nullopt;
  auto bad = [&]() {
    r.type_error(key, "a size like 512 or \"512,768\" (width,height)", *v);
    return std::nullopt;
  };
  if (v->is_number_integer()) return TrainResolution{v->get<int64_t>(), v->get<int64_t>()};
  if (v->is_array()) {
    if (v->size() == 2 && (*v)[0].is_number_integer() && (*v)[1].is_number_integer())
      return TrainResolution{(*v)[0].get<int64_t>(), (*v)[1].get<int64_t>()};
    if (v->size() == 1 && (*v)[0].is_number_integer())
      return TrainResolution{(*v)[0].get<int64_t>(), (*v)[0].get<int64_t>()};
    return bad();
  }
  if (!v->is_string()) return bad();
  std::string s = v->get<std::string>();
  std::replace(s.begin(), s.end(), 'x', ',');
  std::replace(s.begin(), s.end(), 'X', ',');
  const size_t comma = s.find(',');
  int64_t w = 0, h = 0;
  if (comma == std::string::npos) {
    if (!parse_int(s, w)) return bad();
    return TrainResolution{w, w};
  }
  if (!parse_int(s.substr(0, comma), w) || !parse_int(s.substr(comma + 1), h)) return bad();
  return TrainResolution{w, h};
}

void read_config(Reader& r, const TrainEnvironment& env, TrainConfig& c, Problems& p) {
  // c.family is set by the caller: "auto" batch sizes depend on it.
  if (auto v = r.text("preset")) c.preset = lower(*v);
  if (auto v = r.text("device")) c.device = lower(trim(*v));
  else c.device = "auto";
  if (auto v = r.text("pretrained_model_name_or_path")) {
    c.pretrained_model_name_or_path = *v;
    if (looks_like_path(*v))
      c.pretrained_model_name_or_path =
          resolve_path(*v, r.base_dir("pretrained_model_name_or_path"), env.working_dir).string();
  }
  if (auto v = r.text("train_data_dir"))
    if (!v->empty()) c.train_data_dir = resolve_path(*v, r.base_dir("train_data_dir"), env.working_dir).string();
  if (auto v = r.text("dataset")) c.dataset = *v;
  if (auto v = r.integer("num_repeats")) c.num_repeats = *v;
  if (auto v = r.text("output_name")) c.output_name = *v;
  if (auto v = r.text("training_comment")) c.training_comment = *v;

  if (auto v = read_resolution(r, "resolution")) c.resolution = *v;
  if (auto v = r.boolean("enable_bucket")) c.enable_bucket = *v;
  if (auto v = r.integer("min_bucket_reso")) c.min_bucket_reso = *v;
  if (auto v = r.integer("max_bucket_reso")) c.max_bucket_reso = *v;
  if (auto v = r.integer("bucket_reso_steps")) c.bucket_reso_steps = *v;
  if (auto v = r.boolean("bucket_no_upscale")) c.bucket_no_upscale = *v;

  // train_batch_size: a number or "auto" (free memory decides).
  if (const json* v = r.raw("train_batch_size")) {
    if (v->is_string() && lower(trim(v->get<std::string>())) == "auto") {
      c.train_batch_size = env.free_memory_bytes ? batch_size_for_memory(*env.free_memory_bytes, c.family) : 1;
    } else if (v->is_string()) {
      r.type_error("train_batch_size", "a whole number or \"auto\"", *v);
    } else if (auto b = r.integer("train_batch_size")) {
      c.train_batch_size = *b;
    }
  }
  if (auto v = r.integer("max_train_epochs")) c.max_train_epochs = *v;
  if (auto v = r.integer("max_train_steps")) c.max_train_steps = *v;
  if (auto v = r.integer("gradient_accumulation_steps")) c.gradient_accumulation_steps = *v;

  if (auto v = r.number("learning_rate")) c.learning_rate = *v;
  if (auto v = r.number("unet_lr")) c.unet_lr = *v;
  if (auto v = r.number("text_encoder_lr")) c.text_encoder_lr = *v;
  if (auto v = r.text("lr_scheduler")) c.lr_scheduler = lower(trim(*v));
  // kohya's int_or_float: steps, a ratio below 1, or a percentage.
  if (const json* v = r.raw("lr_warmup_steps")) {
    if (v->is_string()) {
      const std::string s = trim(v->get<std::string>());
      double d = 0;
      if (ends_with(s, "%") && parse_double(s.substr(0, s.size() - 1), d)) c.lr_warmup_steps = d / 100.0;
      else if (parse_double(s, d)) c.lr_warmup_steps = d;
      else r.type_error("lr_warmup_steps", "a number of steps, a ratio below 1 or a percentage like \"10%\"", *v);
    } else if (auto d = r.number("lr_warmup_steps")) {
      c.lr_warmup_steps = *d;
    }
  }
  if (auto v = r.integer("lr_scheduler_num_cycles")) c.lr_scheduler_num_cycles = *v;
  if (auto v = r.number("lr_scheduler_power")) c.lr_scheduler_power = *v;

  if (auto v = r.text("optimizer_type")) {
    const std::string t = trim(*v);
    c.optimizer_type = t.empty() ? "AdamW" : canonical(t, optimizer_names());  // kohya: "" = AdamW
  }
  if (const json* v = r.raw("optimizer_args")) {
    if (v->is_object()) {
      auto get = [&](const char* name) -> std::optional<double> {
        if (v->contains(name) && (*v)[name].is_number()) return (*v)[name].get<double>();
        return std::nullopt;
      };
      c.optimizer_args.weight_decay = get("weight_decay");
      c.optimizer_args.eps = get("eps");
      c.optimizer_args.momentum = get("momentum");
      if (v->contains("betas") && (*v)["betas"].is_array() && (*v)["betas"].size() == 2) {
        c.optimizer_args.beta1 = (*v)["betas"][0].get<double>();
        c.optimizer_args.beta2 = (*v)["betas"][1].get<double>();
      }
    }
  }
  if (auto v = r.number("max_grad_norm")) c.max_grad_norm = *v;

  if (auto v = r.text("network_module")) c.network_module = trim(*v);
  if (auto v = r.integer("network_dim")) c.network_dim = *v;
  if (auto v = r.number("network_alpha")) c.network_alpha = *v;
  if (auto v = r.integer("conv_dim")) c.conv_dim = *v;
  if (auto v = r.number("conv_alpha")) c.conv_alpha = *v;
  if (auto v = r.boolean("network_train_unet_only")) c.network_train_unet_only = *v;
  if (auto v = r.boolean("network_train_text_encoder_only")) c.network_train_text_encoder_only = *v;

  if (auto v = r.integer("clip_skip")) c.clip_skip = *v;
  if (auto v = r.integer("max_token_length")) c.max_token_length = *v;
  if (auto v = r.boolean("shuffle_caption")) c.shuffle_caption = *v;
  if (auto v = r.integer("keep_tokens")) c.keep_tokens = *v;
  if (auto v = r.number("caption_dropout_rate")) c.caption_dropout_rate = *v;
  if (auto v = r.text("caption_extension")) c.caption_extension = trim(*v);

  if (auto v = r.number("noise_offset")) c.noise_offset = *v;
  if (auto v = r.number("min_snr_gamma")) c.min_snr_gamma = *v;

  if (auto v = r.boolean("cache_latents")) c.cache_latents = *v;
  if (auto v = r.boolean("cache_latents_to_disk")) c.cache_latents_to_disk = *v;
  if (auto v = r.boolean("gradient_checkpointing")) c.gradient_checkpointing = *v;
  if (auto v = r.text("mixed_precision")) c.mixed_precision = lower(trim(*v));
  if (auto v = r.text("save_precision")) c.save_precision = lower(trim(*v));

  if (auto v = r.integer("seed")) c.seed = *v;
  if (auto v = r.integer("save_every_n_epochs")) c.save_every_n_epochs = *v;
  if (auto v = r.integer("save_every_n_steps")) c.save_every_n_steps = *v;
  if (auto v = r.integer("sample_every_n_steps")) c.sample_every_n_steps = *v;
  if (auto v = r.integer("sample_every_n_epochs")) c.sample_every_n_epochs = *v;
  if (auto v = r.boolean("sample_at_first")) c.sample_at_first = *v;
  if (auto v = r.text("sample_sampler")) c.sample_sampler = lower(trim(*v));

  // sample_prompts: a list of lines, several lines of text, a .txt file, or one prompt.
  auto read_prompt_file = [&](const std::string& key, const std::string& given) {
    const fs::path path = resolve_path(given, r.base_dir(key), env.working_dir);
    const std::string l = lower(path.extension().string());
    if (l == ".toml" || l == ".json") {
      p.error(key + " " + path.string() + ": Kiln reads sample prompts from a .txt file, one prompt per line in "
              "kohya's syntax (--n --w --h --d --l --s).");
      return;
    }
    auto text = read_text_file(path);
    if (!text) {
      p.error(key + " names the file " + path.string() + ", which cannot be read" +
              (fs::exists(path) ? "." : " (it does not exist)."));
      return;
    }
    c.sample_prompts = split_lines(*text);
    c.sample_prompts_file = path.string();
  };
  if (const json* v = r.raw("sample_prompts")) {
    if (v->is_array()) {
      for (const json& line : *v) {
        if (!line.is_string()) {
          p.error("sample_prompts must be a list of prompt texts, but one item is " + describe(line) +
                  from(r.origin("sample_prompts")) + ".");
          c.sample_prompts.clear();
          break;
        }
        for (const std::string& l : split_lines(line.get<std::string>())) c.sample_prompts.push_back(l);
      }
    } else if (v->is_string()) {
      const std::string s = v->get<std::string>();
      const std::string l = lower(trim(s));
      const bool file_like = s.find('\n') == std::string::npos &&
                             (ends_with(l, ".txt") || ends_with(l, ".toml") || ends_with(l, ".json") ||
                              fs::is_regular_file(resolve_path(trim(s), r.base_dir("sample_prompts"), env.working_dir)));
      if (file_like) read_prompt_file("sample_prompts", trim(s));
      else c.sample_prompts = split_lines(s);
    } else {
      r.type_error("sample_prompts", "a list of prompts, prompt text or the path of a .txt file", *v);
    }
  }
  if (auto v = r.text("sample_prompts_file")) {
    if (c.sample_prompts.empty() && r.raw("sample_prompts") == nullptr) read_prompt_file("sample_prompts_file", *v);
    else if (c.sample_prompts_file.empty()) c.sample_prompts_file = *v;  // the record of where they came from
  }
}


// "auto" and unset values that depend on where the training runs.
void resolve_environment(TrainConfig& c, const TrainEnvironment& env) {
  if (c.device.empty() || c.device == "auto") c.device = env.cuda_available ? "cuda" : "cpu";
  if (c.mixed_precision == "auto") c.mixed_precision = c.device.rfind("cuda", 0) == 0 ? "fp16" : "no";
}


// kohya options that are set to something Kiln does not do.
void check_foreign(const Merged& m, Problems& p) {
  for (auto it = m.values.begin(); it != m.values.end(); ++it) {
    const std::string& key = it.key();
    if (find_implemented(key)) continue;
    const std::string source = m.origin.count(key) ? m.origin.at(key) : "";
    const ForeignKey* f = find_foreign(key);
    if (!f) {
      const std::string hint = suggestion(key, all_key_names());
      p.error("unknown key '" + key + "'" + from(source) + (hint.empty() ? "." : hint));
      continue;
    }
    const json& v = it.value();
    const json neutral = json::parse(f->neutral);
    const bool empty = v.is_null() || (v.is_boolean() && !v.get<bool>()) || (v.is_string() && v.get<std::string>().empty()) ||
                       (v.is_number() && v.get<double>() == 0) || (v.is_array() && v.empty()) ||
                       (v.is_object() && v.empty());
    const bool is_neutral = v == neutral || (neutral.is_null() && empty) ||
                            (v.is_number() && neutral.is_number() && v.get<double>() == neutral.get<double>());
    if (is_neutral) continue;
    if (f->what == Foreign::Ignored) {
      p.notes.push_back(key + " = " + (v.is_string() ? v.get<std::string>() : v.dump()) + " is ignored" + from(source) +
                        ": " + f->why + ".");
    } else {
      p.error(key + " = " + (v.is_string() ? v.get<std::string>() : v.dump()) + " is not supported" + from(source) +
              ": " + f->why + ".");
    }
  }
}

}  // namespace

namespace {

TrainConfig build(const std::vector<ConfigLayer>& given, const TrainEnvironment& env, Problems& p) {
  std::vector<Layer> layers;
  for (const ConfigLayer& l : given) layers.push_back(normalise(l, p));
  Merged m = merge(layers);

  // The base model's family decides the preset's values (and "auto" batch sizes).
  engine::ModelFamily family = engine::ModelFamily::Unknown;
  int64_t native_size = 0;
  if (auto it = m.values.find("pretrained_model_name_or_path"); env.model_family && it != m.values.end() && it->is_string()) {
    std::string base = it->get<std::string>();
    if (looks_like_path(base))
      base = resolve_path(base, m.base_dir["pretrained_model_name_or_path"], env.working_dir).string();
    family = env.model_family(base);
    if (env.model_native_size) native_size = env.model_native_size(base);
  }

  // The preset named by any source goes under all of them.
  std::string preset_name;
  if (auto it = m.values.find("preset"); it != m.values.end() && !it->is_null()) {
    if (!it->is_string()) {
      p.error("preset must be a text, one of " + join(preset_names()) + ", not " + describe(*it) + ".");
    } else if (!it->get<std::string>().empty()) {
      preset_name = it->get<std::string>();
      if (const Preset* preset = find_preset(preset_name)) {
        const json values = preset_values(*preset, family);
        const std::string source = "preset " + preset->name + family_training(family).preset_label;
        ConfigLayer pl{source, values, {}, false};
        layers.insert(layers.begin(), normalise(pl, p));
        m = merge(layers);
        // The preset's alpha keeps its ratio to the rank when a higher source changes only the rank.
        const auto alpha_origin = m.origin.find("network_alpha");
        const auto dim_origin = m.origin.find("network_dim");
        const auto dim = m.values.find("network_dim");
        if (alpha_origin != m.origin.end() && alpha_origin->second == pl.source && dim_origin != m.origin.end() &&
            dim_origin->second != pl.source && dim != m.values.end() && dim->is_number_integer() &&
            values.contains("network_dim") && values.contains("network_alpha")) {
          const double ratio = values["network_alpha"].get<double>() / values["network_dim"].get<double>();
          const double alpha = dim->get<double>() * ratio;
          if (alpha != m.values["network_alpha"].get<double>()) {
            m.values["network_alpha"] = alpha;
            p.notes.push_back("network_alpha is " + num(alpha) + ": the " + preset->name +
                              " preset's alpha/dim ratio (" + num(ratio) + ") applied to network_dim " + dim->dump() +
                              "; set network_alpha to choose it yourself.");
          }
        }
      }  // an unknown name is reported by validate_train_config, with a suggestion
    }
  }

  check_foreign(m, p);
  TrainConfig c;
  c.family = family;
  c.native_size = native_size;
  Reader reader(m, p);
  read_config(reader, env, c, p);
  for (auto it = m.values.begin(); it != m.values.end(); ++it)
    if (find_implemented(it.key()) && !it->is_null()) c.origins[it.key()] = m.origin[it.key()];
  resolve_environment(c, env);
  c.notes = p.notes;
  return c;
}

}  // namespace

TrainConfig build_train_config(const std::vector<ConfigLayer>& layers, const TrainEnvironment& env) {
  Problems p;
  TrainConfig c = build(layers, env, p);
  if (p.errors.empty()) {
    for (std::string& e : validate_train_config(c, env)) p.errors.push_back(std::move(e));
  }
  // Type errors first, then range errors of what did read; each problem once.
  else {
    for (std::string& e : validate_train_config(c, env))
      if (std::find(p.errors.begin(), p.errors.end(), e) == p.errors.end()) p.errors.push_back(std::move(e));
  }
  if (!p.errors.empty()) throw ConfigError(p.errors);
  return c;
}

TrainConfig load_train_config(const ConfigSources& sources, const TrainEnvironment& env) {
  std::vector<ConfigLayer> layers;
  std::vector<std::string> errors;
  auto add = [&](const std::function<ConfigLayer()>& make) {
    try {
      layers.push_back(make());
    } catch (const ConfigError& e) {
      errors.insert(errors.end(), e.problems().begin(), e.problems().end());
    }
  };
  if (!sources.config_file.empty()) add([&] { return layer_from_file(sources.config_file); });
  json request = sources.request.is_null() ? json::object() : sources.request;
  if (request.is_object() && !sources.preset.empty() && !request.contains("preset")) request["preset"] = sources.preset;
  add([&] { return layer_from_json(request, "request"); });
  if (!sources.overrides.empty()) add([&] { return layer_from_overrides(sources.overrides); });
  if (!errors.empty()) throw ConfigError(errors);

  // Neither a preset nor a file: start from `custom`, not from kohya's bare defaults.
  bool has_preset = false;
  for (const ConfigLayer& l : layers)
    if (l.values.contains("preset") && !l.values["preset"].is_null()) has_preset = true;
  if (!has_preset && sources.config_file.empty()) layers.insert(layers.begin(), ConfigLayer{"default", {{"preset", "custom"}}, {}, false});
  return build_train_config(layers, env);
}

TrainConfig train_config_from_json(const nlohmann::json& object, const TrainEnvironment& env) {
  return build_train_config({layer_from_json(object, "config")}, env);
}

}  // namespace kiln::service::training
