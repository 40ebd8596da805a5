#pragma once
// What `kiln generate` and `kiln shot` share: LoRA options, numbered output files and the warnings a
// finished generation can carry.
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "client/client.h"

namespace kiln::cli {

// --lora NAME or NAME:WEIGHT (repeatable) → the request's `loras`. Throws CLI::ValidationError.
Json lora_params(const std::vector<std::string>& loras);

// out.png → out.png for one image; out-1.png, out-2.png, ... for several.
std::filesystem::path numbered(const std::filesystem::path& out, std::size_t index, std::size_t count);

// Copies a PNG the daemon wrote to where the user asked (creating folders), downloading it from a
// remote daemon.
void copy_output(Client& client, const std::string& from, const std::filesystem::path& to);

// Warnings on stderr: tags Kiln did not apply, LoRA keys that matched nothing.
void warn_about_applied(const Json& result);

}  // namespace kiln::cli
