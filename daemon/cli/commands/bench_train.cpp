// kiln bench train: LoRA training speed and peak memory. Training benchmarks measure the engine
// alone (each configuration in its own process, so its peak memory is its own), so this runs the
// bench_train program installed beside kiln rather than a daemon job.
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "cli/commands/commands.h"
#include "cli/output.h"

namespace kiln::cli {

void add_bench_train_command(CLI::App& bench, const GlobalOptions&, CommandResult& result) {
  auto* cmd = bench.add_subcommand(
      "train",
      "step time and peak memory of LoRA training: the tiny model and a full-size SD1.5 (random weights) at 512, or "
      "with --full sdxl a full-size SDXL at 1024 (JSON). By default the case kohya is measured on beside it "
      "(../shared/refbench): rank 32, batch 1, UNet + text encoder, cached latents, no gradient checkpointing. "
      "Options go to bench_train (bench_train --help): --device cpu|cuda|auto --precision auto|fp32|fp16|bf16 "
      "--full sd15|sdxl --size PX --steps N --rank R --batch B --optimizer NAME --checkpointing off|on|both "
      "--latents cached|encoded|both --no-tiny --no-full --profile");
  cmd->allow_extras();
  cmd->callback([cmd, &result] {
    std::error_code ec;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    const std::filesystem::path program = self.parent_path() / "bench_train";
    if (ec || !std::filesystem::exists(program)) {
      print_error("bench_train is not installed beside kiln (" + program.string() +
                  "); build it with the KILN_BENCH option (on by default)");
      result.exit_code = kExitError;
      return;
    }
    std::vector<std::string> args = {program.string()};
    for (const std::string& extra : cmd->remaining()) args.push_back(extra);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::cout.flush();
    ::execv(program.c_str(), argv.data());
    print_error("could not run " + program.string());
    result.exit_code = kExitError;
  });
}

}  // namespace kiln::cli
