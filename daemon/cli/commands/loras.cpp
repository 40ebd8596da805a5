// kiln loras add|list|show|use|export|remove
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "cli/commands/commands.h"
#include "cli/commands/transfers.h"
#include "cli/output.h"
#include "protocol/methods.h"

namespace kiln::cli {

namespace {
// Which weights <lora:NAME:w> gives: an epoch chosen with `kiln loras use`, else the final file.
std::string uses(const Json& l) {
  if (l.value("chosen_epoch", Json()).is_number()) return "epoch " + std::to_string(l.at("chosen_epoch").get<int>());
  return l.at("file").is_null() ? "-" : "final";
}

std::string summary(const Json& info) {
  if (info.contains("error")) return "unreadable: " + info.value("error", "");
  char buf[64];
  std::snprintf(buf, sizeof buf, "rank %lld, alpha %g", static_cast<long long>(info.value("rank", 0)), info.value("alpha", 0.0));
  std::string s = buf;
  if (info.value("has_conv", false)) s += ", conv " + std::to_string(info.value("conv_rank", 0));
  return s;
}

void print_lora(const Json& l) {
  const Json& info = l.at("info");
  std::cout << l.value("name", "") << "\n  folder:   " << l.value("folder", "") << "\n";
  if (!l.at("file").is_null()) std::cout << "  file:     " << l.at("file").get<std::string>() << "\n";
  std::cout << "  network:  " << summary(info) << "\n";
  if (info.contains("base_model_version")) std::cout << "  base:     " << info.value("base_model_version", "") << "\n";
  if (info.contains("trigger_words") && !info.at("trigger_words").empty()) {
    std::cout << "  triggers: ";
    for (const Json& w : info.at("trigger_words")) std::cout << w.get<std::string>() << " ";
    std::cout << "\n";
  }
  if (!l.at("epochs").empty()) {
    std::cout << "  epochs:   ";
    for (const Json& e : l.at("epochs")) std::cout << e.value("epoch", 0) << " ";
    std::cout << "\n";
  }
  if (l.value("chosen_epoch", Json()).is_number())
    std::cout << "  uses:     epoch " << l.at("chosen_epoch").get<int>() << " (its file is the final one; kiln loras use NAME EPOCH)\n";
  for (const char* key : {"grid", "loss_curve", "config"})
    if (!l.at(key).is_null()) std::cout << "  " << std::left << std::setw(10) << (std::string(key) + ":") << l.at(key).get<std::string>() << "\n";
  std::cout << "  use:      <lora:" << l.value("name", "") << ":0.8>\n";
}
}  // namespace

void add_loras_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result) {
  auto* loras = app.add_subcommand("loras", "the LoRA library: add, list, show, remove");
  loras->require_subcommand(1);

  auto* add = loras->add_subcommand("add", "copy a kohya LoRA .safetensors file into the library");
  auto file = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  add->add_option("file", *file, "the LoRA file")->required()->check(CLI::ExistingFile);
  add->add_option("--name", *name, "name for <lora:NAME:w> (default: the file name)");
  add->callback([&global, &result, file, name] {
    auto client = connect(global);
    Json params{{"path", file_for_daemon(*client, *file)}};  // uploaded when the daemon is remote
    if (!name->empty()) params["name"] = *name;
    print_lora(client->call(protocol::method::kLorasAdd, params));
    result.exit_code = kExitOk;
  });

  auto* list = loras->add_subcommand("list", "list the library");
  auto json = std::make_shared<bool>(false);
  list->add_flag("--json", *json, "print JSON");
  list->callback([&global, &result, json] {
    auto client = connect(global);
    const Json answer = client->call(protocol::method::kLorasList);
    if (*json) {
      print_json(answer);
    } else if (answer.at("loras").empty()) {
      std::cout << "the LoRA library is empty: train one with `kiln train` or add one with `kiln loras add FILE`\n";
    } else {
      std::cout << std::left << std::setw(28) << "NAME" << std::setw(24) << "NETWORK" << std::setw(8) << "EPOCHS" << std::setw(10)
                << "USES" << "TRIGGERS\n";
      for (const Json& l : answer.at("loras")) {
        std::string triggers;
        for (const Json& w : l.at("info").value("trigger_words", Json::array())) triggers += w.get<std::string>() + " ";
        std::cout << std::left << std::setw(28) << l.value("name", "") << std::setw(24) << summary(l.at("info")) << std::setw(8)
                  << l.at("epochs").size() << std::setw(10) << uses(l) << triggers << "\n";
      }
    }
    result.exit_code = kExitOk;
  });

  auto* show = loras->add_subcommand("show", "one LoRA: files, rank, alpha, trigger words, grid");
  auto show_name = std::make_shared<std::string>();
  auto show_json = std::make_shared<bool>(false);
  show->add_option("name", *show_name, "LoRA name")->required();
  show->add_flag("--json", *show_json, "print JSON");
  show->callback([&global, &result, show_name, show_json] {
    auto client = connect(global);
    const Json l = client->call(protocol::method::kLorasGet, {{"name", *show_name}});
    if (*show_json) print_json(l);
    else print_lora(l);
    result.exit_code = kExitOk;
  });

  auto* use = loras->add_subcommand("use", "make one epoch's file the LoRA that <lora:NAME:w> gives (all files kept)");
  auto use_name = std::make_shared<std::string>();
  auto use_epoch = std::make_shared<int>(0);
  use->add_option("name", *use_name, "LoRA name")->required();
  use->add_option("epoch", *use_epoch, "the epoch (kiln loras show NAME lists them; the last one undoes a choice)")->required();
  use->callback([&global, &result, use_name, use_epoch] {
    auto client = connect(global);
    print_lora(client->call(protocol::method::kLorasUseEpoch, {{"name", *use_name}, {"epoch", *use_epoch}}));
    result.exit_code = kExitOk;
  });

  auto* exported = loras->add_subcommand("export", "copy a LoRA's file out of the library (downloaded from a remote daemon)");
  auto export_name = std::make_shared<std::string>();
  auto export_out = std::make_shared<std::string>();
  auto export_epoch = std::make_shared<int>(0);
  exported->add_option("name", *export_name, "LoRA name")->required();
  exported->add_option("--out", *export_out, "the .safetensors file to write")->required();
  exported->add_option("--epoch", *export_epoch, "an epoch's file instead of the final one")->check(CLI::PositiveNumber);
  exported->callback([&global, &result, export_name, export_out, export_epoch] {
    auto client = connect(global);
    const Json l = client->call(protocol::method::kLorasGet, {{"name", *export_name}});
    std::string file;
    if (*export_epoch > 0) {
      for (const Json& e : l.at("epochs"))
        if (e.value("epoch", 0) == *export_epoch) file = e.value("path", "");
      if (file.empty()) throw std::runtime_error("LoRA '" + *export_name + "' has no file of epoch " + std::to_string(*export_epoch) +
                                                 " (`kiln loras show " + *export_name + "` lists its epochs)");
    } else if (l.at("file").is_string()) {
      file = l.at("file").get<std::string>();
    } else {
      throw std::runtime_error("LoRA '" + *export_name + "' has no final file yet; export an epoch with --epoch N");
    }
    fetch_file(*client, file, *export_out);
    std::cout << "wrote " << *export_out << " (" << format_bytes(double(std::filesystem::file_size(*export_out))) << ", "
              << (client->is_remote() ? "downloaded from " + client->socket_path() : "copied from " + file) << ")\n";
    result.exit_code = kExitOk;
  });

  auto* remove = loras->add_subcommand("remove", "delete a LoRA and all its files from the library");
  auto remove_name = std::make_shared<std::string>();
  remove->add_option("name", *remove_name, "LoRA name")->required();
  remove->callback([&global, &result, remove_name] {
    auto client = connect(global);
    client->call(protocol::method::kLorasRemove, {{"name", *remove_name}});
    std::cout << "removed LoRA '" << *remove_name << "' and its files\n";
    result.exit_code = kExitOk;
  });
}

}  // namespace kiln::cli
