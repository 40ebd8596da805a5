// kiln generate: txt2img, img2img (--init) and inpainting (--init --mask) on the daemon.
#include <filesystem>
#include <iostream>

#include "cli/commands/commands.h"
#include "cli/commands/generation_options.h"
#include "cli/commands/job_watch.h"
#include "cli/image_files.h"
#include "cli/output.h"
#include "protocol/methods.h"

namespace kiln::cli {

std::string model_reference(const std::string& value);  // commands/models.cpp

namespace {
struct GenerateArgs {
  std::string model, prompt, negative, sampler = "Euler a", init, mask, inpaint_fill = "original", out;
  int steps = 20, clip_skip = 1, batch = 1, batch_count = 1;
  double cfg = 7, strength = 0.75, mask_blur = 4;
  int64_t seed = -1;
  std::optional<int> width, height;
  std::vector<std::string> loras;
  bool json = false, tiling = false;
};

}  // namespace

void add_generate_command(CLI::App& app, const GlobalOptions& global, CommandResult& result) {
  auto a = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "generate images (txt2img, img2img with --init, inpainting with --mask)");
  cmd->add_option("--model", a->model, "registered model name or checkpoint path")->required();
  cmd->add_option("--prompt", a->prompt, "prompt in A1111 syntax: (word:1.2), [word], BREAK")->required();
  cmd->add_option("--negative", a->negative, "negative prompt");
  cmd->add_option("--sampler", a->sampler, "Euler, Euler a, DPM++ 2M, DPM++ 2M Karras, DDIM")->capture_default_str();
  cmd->add_option("--steps", a->steps, "sampling steps")->check(CLI::Range(1, 500))->capture_default_str();
  cmd->add_option("--cfg", a->cfg, "guidance scale")->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed; -1 picks one")->capture_default_str();
  cmd->add_option("--width", a->width, "multiple of 8 (default: the model's, 512 SD1.x / 1024 SDXL, or the --init image's)");
  cmd->add_option("--height", a->height, "multiple of 8 (default: the model's, 512 SD1.x / 1024 SDXL, or the --init image's)");
  cmd->add_option("--clip-skip", a->clip_skip, "1 = last CLIP layer; 2 for anime models")->check(CLI::Range(1, 12))->capture_default_str();
  cmd->add_option("--init", a->init, "img2img: the source image")->check(CLI::ExistingFile);
  cmd->add_option("--strength", a->strength, "img2img denoising strength")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--mask", a->mask, "inpainting mask (white = repaint); needs --init")->check(CLI::ExistingFile);
  cmd->add_option("--mask-blur", a->mask_blur, "mask blur in pixels")->capture_default_str();
  cmd->add_option("--inpaint-fill", a->inpaint_fill, "masked content")->check(CLI::IsMember({"original", "fill"}))->capture_default_str();
  cmd->add_option("--batch", a->batch, "images per pass")->check(CLI::Range(1, 16))->capture_default_str();
  cmd->add_option("--batch-count", a->batch_count, "passes; image k gets seed + k")->check(CLI::Range(1, 100))->capture_default_str();
  cmd->add_option("--lora", a->loras, "a LoRA of the library as NAME or NAME:WEIGHT (repeatable); <lora:NAME:W> in the prompt works too");
  cmd->add_option("--out", a->out, "PNG file to write (several images: FILE-1.png, FILE-2.png, ...)")->required();
  cmd->add_flag("--tiling", a->tiling, "seamless tiling for textures: the image wraps around at its edges");
  cmd->add_flag("--json", a->json, "print the job's final record as JSON");
  cmd->callback([&global, &result, a] {
    if (!a->mask.empty() && a->init.empty()) throw CLI::ValidationError("--mask", "inpainting needs --init as well");
    auto client = connect(global);
    Json params{{"model", model_reference(a->model)}, {"prompt", a->prompt},   {"negative", a->negative},
                {"sampler", a->sampler},               {"steps", a->steps},     {"cfg", a->cfg},
                {"seed", a->seed},                     {"clip_skip", a->clip_skip}, {"batch_size", a->batch},
                {"batch_count", a->batch_count}};
    if (!a->loras.empty()) params["loras"] = lora_params(a->loras);
    if (a->tiling) params["tiling"] = true;
    if (a->width) params["width"] = *a->width;
    if (a->height) params["height"] = *a->height;
    std::optional<ipc::ShmImage> init, mask;
    std::optional<std::pair<int, int>> size;
    if (a->width && a->height) size = std::make_pair(*a->width, *a->height);
    if (!a->init.empty()) {
      init = load_image_file(*client, a->init, ImageRole::Color, size);
      params["init_image"] = protocol::to_json(init->ref());
      params["strength"] = a->strength;
      size = std::make_pair(int(init->desc().width), int(init->desc().height));
    }
    if (!a->mask.empty()) {
      mask = load_image_file(*client, a->mask, ImageRole::Mask, size);
      params["mask"] = protocol::to_json(mask->ref());
      params["mask_blur"] = a->mask_blur;
      params["inpaint_fill"] = a->inpaint_fill;
    }
    const Json job = client->call(protocol::method::kGenerate, params);
    init.reset();  // the daemon copied the pixels when it queued the job
    mask.reset();
    Json final_record;
    result.exit_code = watch_job(*client, job.at("id"), false, &final_record);
    if (result.exit_code != kExitOk) return;
    const Json& images = final_record.at("result").at("images");
    for (std::size_t i = 0; i < images.size(); ++i) {
      const std::filesystem::path target = numbered(a->out, i, images.size());
      copy_output(*client, images[i].at("png").get<std::string>(), target);
      if (!a->json) std::cout << "wrote " << target.string() << " (seed " << images[i].at("seed") << ")\n";
    }
    warn_about_applied(final_record.at("result"));
    if (a->json) print_json(final_record);
  });
}

}  // namespace kiln::cli
