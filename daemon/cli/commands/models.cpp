// kiln models add|list|remove
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "cli/commands/commands.h"
#include "cli/output.h"
#include "protocol/methods.h"

namespace kiln::cli {

std::string model_reference(const std::string& value) {
  // An existing file, or a folder given as a path or holding a diffusers model, is sent as an
  // absolute path; anything else is a registered name — also a bare word that happens to name an
  // unrelated folder here (`--model mini` inside Kiln's source tree, which has a mini/ folder).
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(value);
  const bool bare_word = value.find('/') == std::string::npos;
  if (fs::is_regular_file(p, ec) || (fs::is_directory(p, ec) && (!bare_word || fs::exists(p / "model_index.json", ec))))
    return fs::absolute(p).lexically_normal().string();
  return value;
}

void add_models_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result) {
  auto* models = app.add_subcommand("models", "register and list model checkpoints (files are never copied)");
  models->require_subcommand(1);

  auto* add = models->add_subcommand("add", "register a .safetensors checkpoint or a diffusers folder");
  auto path = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  add->add_option("path", *path, "the checkpoint file or diffusers folder")->required()->check(CLI::ExistingPath);
  add->add_option("--name", *name, "name to use (default: the file name without extension)");
  add->callback([&global, &result, path, name] {
    auto client = connect(global);
    Json params{{"path", std::filesystem::absolute(*path).lexically_normal().string()}};
    if (!name->empty()) params["name"] = *name;
    const Json m = client->call(protocol::method::kModelsAdd, params);
    std::cout << "added model '" << m.at("name").get<std::string>() << "' (" << m.at("family").get<std::string>() << ", "
              << m.at("layout").get<std::string>() << ", " << format_bytes(m.at("size_bytes").get<double>()) << ")\n";
    result.exit_code = kExitOk;
  });

  auto* list = models->add_subcommand("list", "list registered models");
  auto json = std::make_shared<bool>(false);
  list->add_flag("--json", *json, "print JSON");
  list->callback([&global, &result, json] {
    auto client = connect(global);
    const Json answer = client->call(protocol::method::kModelsList);
    if (*json) {
      print_json(answer);
    } else if (answer.at("models").empty()) {
      std::cout << "no models registered; add one with: kiln models add PATH\n";
    } else {
      std::cout << std::left << std::setw(24) << "NAME" << std::setw(8) << "FAMILY" << std::setw(13) << "LAYOUT"
                << std::setw(11) << "SIZE" << std::setw(12) << "HASH" << "PATH\n";
      for (const Json& m : answer.at("models"))
        std::cout << std::left << std::setw(24) << m.value("name", "") << std::setw(8) << m.value("family", "")
                  << std::setw(13) << m.value("layout", "") << std::setw(11) << format_bytes(m.value("size_bytes", 0.0))
                  << std::setw(12) << (m.value("hash", "").empty() ? "-" : m.value("hash", "")) << m.value("path", "") << "\n";
    }
    result.exit_code = kExitOk;
  });

  auto* remove = models->add_subcommand("remove", "forget a registered model (the file stays)");
  auto remove_name = std::make_shared<std::string>();
  remove->add_option("name", *remove_name, "model name")->required();
  remove->callback([&global, &result, remove_name] {
    auto client = connect(global);
    client->call(protocol::method::kModelsRemove, {{"name", *remove_name}});
    std::cout << "removed model '" << *remove_name << "' from the registry (the file is untouched)\n";
    result.exit_code = kExitOk;
  });
}

}  // namespace kiln::cli
