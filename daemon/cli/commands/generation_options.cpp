#include "cli/commands/generation_options.h"

#include <iostream>

#include <CLI/CLI.hpp>

namespace kiln::cli {

Json lora_params(const std::vector<std::string>& loras) {
  Json out = Json::array();
  for (const std::string& l : loras) {
    const auto colon = l.rfind(':');
    Json lora{{"name", l.substr(0, colon)}};
    if (colon != std::string::npos) {
      try {
        lora["weight"] = std::stod(l.substr(colon + 1));
      } catch (const std::exception&) {
        throw CLI::ValidationError("--lora", "'" + l + "': the weight after ':' must be a number");
      }
    }
    out.push_back(lora);
  }
  return out;
}

std::filesystem::path numbered(const std::filesystem::path& out, std::size_t index, std::size_t count) {
  if (count == 1) return out;
  return out.parent_path() / (out.stem().string() + "-" + std::to_string(index + 1) + out.extension().string());
}

void copy_output(Client& client, const std::string& from, const std::filesystem::path& to) {
  client.download_file(from, to.string());  // a copy when the daemon is local
}

void warn_about_applied(const Json& result) {
  for (const Json& tag : result.value("unsupported_tags", Json::array()))
    std::cerr << "kiln: warning: " << tag.get<std::string>() << " was not applied: Kiln applies only LoRAs\n";
  for (const Json& lora : result.value("loras", Json::array()))
    if (lora.value("unmatched_keys", 0) > 0)
      std::cerr << "kiln: warning: LoRA " << lora.value("name", "") << ": " << lora.value("unmatched_keys", 0)
                << " keys matched no module of this model (see the job record)\n";
}

}  // namespace kiln::cli
