#include "protocol/methods.h"

#include <algorithm>
#include <string>
#include <tuple>

#include "protocol/image_ref.h"

namespace kiln::protocol {

const std::vector<MethodSpec>& all_methods() {
  using P = ParamType;
  // How a dataset is prepared (studio/dataset/settings.h): datasets.create and datasets.prepare.
  const auto with_dataset_settings = [](std::vector<ParamSpec> params) {
    const std::vector<ParamSpec> settings = {
        {"preset", P::String, false, "product, character, anime, style or custom (default): sets the defaults below"},
        {"trigger", P::String, false, "the word the LoRA learns, first in every caption (default: the dataset's name)"},
        {"repeats", P::Integer, false, "kohya repeats per epoch, 1..1000 (folder <repeats>_<trigger>; default 10)"},
        {"epochs", P::Integer, false, "epochs, for the step estimate only (default 10)"},
        {"batch_size", P::Integer, false, "batch size, for the step estimate only (default 1)"},
        {"crop", P::String, false, "center, focus (the subject: alpha or saliency) or face"},
        {"size", P::String, false, "square (crop to resolution x resolution) or bucket (keep the aspect ratio)"},
        {"resolution", P::Integer, false, "training side in pixels, a multiple of 64, 256..2048 (default 512)"},
        {"background", P::String, false, "what transparent pixels become: white or grey"},
        {"center_subject", P::Boolean, false, "product layout: the subject centred on the background with a margin"},
        {"margin", P::Number, false, "free space around a centred subject, 0..0.4 of the side (default 0.08)"},
        {"flip", P::Boolean, false, "add a mirrored copy of every image"},
        {"face_enhance", P::Boolean, false, "add a face-only crop of every image with a face"}};
    params.insert(params.end(), settings.begin(), settings.end());
    return params;
  };
  static std::vector<MethodSpec> specs = {
      {method::kHello, "Handshake: names the client and agrees a protocol version. Must be the first call.",
       {{"client", P::String, true, "client name and version, e.g. \"krita-plugin 0.1\""},
        {"protocol", P::Integer, true, "highest protocol version the client speaks"},
        {"min_protocol", P::Integer, false, "lowest protocol version the client speaks (default: protocol)"},
        {"token", P::String, false, "remote connections: the token from `kiln remote token create` (required there)"},
        {"compression", P::String, false,
         "remote connections: \"zstd\" to have images sent to this client compressed, or \"none\" (default)"}},
       true},
      {method::kStatus, "Daemon version, protocol, compute device, paths and the job queue.", {}},
      {method::kShutdown, "Stops the daemon gracefully: running jobs are stopped and their records saved.", {}},
      {method::kJobsList, "Lists job records, newest first.",
       {{"state", P::String, false, "only jobs in this state"},
        {"limit", P::Integer, false, "at most this many (default 100)"}}},
      {method::kJobsGet, "One job record.", {{"id", P::String, true, "job id"}}},
      {method::kJobsCancel, "Cancels a queued, running or paused job.", {{"id", P::String, true, "job id"}}},
      {method::kJobsPause, "Pauses a long job between its steps.", {{"id", P::String, true, "job id"}}},
      {method::kJobsResume, "Resumes a paused job, or re-queues an interrupted resumable one.",
       {{"id", P::String, true, "job id"}}},
      {method::kJobsSubscribe, "Sends job.progress and job.state notifications for one job, or all jobs.",
       {{"id", P::String, false, "job id; omit for every job"}}},
      {method::kJobsUnsubscribe, "Stops notifications for one job, or all.", {{"id", P::String, false, "job id"}}},
      {method::kJobsSimulate, "Queues a built-in job that simulates steps (for tests and demos).",
       {{"steps", P::Integer, true, "number of steps, 1..1000000"},
        {"step_ms", P::Integer, false, "milliseconds per step, 0..60000 (default 10)"},
        {"priority", P::String, false, "\"interactive\" or \"long\" (default long)"},
        {"fail_at_step", P::Integer, false, "fail with an error at this step"},
        {"preview_every", P::Integer, false, "attach a small preview image every N steps"}}},
      {method::kImageEcho, "Copies an image into a new shared-memory block and returns it (IPC round trip).",
       {{"image", P::Image, true, "the image to echo"},
        {"into", P::Image, false,
         "a block of the caller's to write the result into (same size, channels and sample type); "
         "without it the daemon creates one that the caller takes over",
         kResultImage},
        {"fresh_mappings", P::Boolean, false,
         "map the blocks afresh instead of reusing this session's mappings (the old path, for kiln bench ipc)"}}},
      {method::kModelsList, "The registered model checkpoints.", {}},
      {method::kModelsAdd, "Registers a checkpoint (never copied): a .safetensors file or a diffusers folder.",
       {{"path", P::String, true, "absolute path of the file or folder"},
        {"name", P::String, false, "name to use (default: the file's name without extension)"}}},
      {method::kModelsRemove, "Forgets a registered model (the file stays).", {{"name", P::String, true, "model name"}}},
      {method::kGenerate, "Queues an image generation: txt2img, img2img (init_image) or inpainting (init_image + mask).",
       {{"model", P::String, true, "registered model name, or absolute path of a checkpoint"},
        {"prompt", P::String, true, "prompt, A1111 syntax: (x:1.2), [x], BREAK, <lora:name:weight>"},
        {"negative", P::String, false, "negative prompt"},
        {"sampler", P::String, false, "Euler, Euler a (default), DPM++ 2M, DPM++ 2M Karras, DDIM"},
        {"steps", P::Integer, false, "sampling steps (default 20)"},
        {"cfg", P::Number, false, "classifier-free guidance scale (default 7)"},
        {"seed", P::Integer, false, "seed; -1 (default) picks one and reports it"},
        {"width", P::Integer, false, "multiple of 8 (default: the model's, 512 SD1.x / 1024 SDXL, or the init image's)"},
        {"height", P::Integer, false, "multiple of 8 (default: the model's, 512 SD1.x / 1024 SDXL, or the init image's)"},
        {"clip_skip", P::Integer, false, "1 (default) = last CLIP layer; 2 for anime models"},
        {"batch_size", P::Integer, false, "images per pass (default 1)"},
        {"batch_count", P::Integer, false, "passes (default 1); image k gets seed + k"},
        {"init_image", P::Image, false, "img2img source, the output's size"},
        {"strength", P::Number, false, "denoising strength for img2img, 0..1 (default 0.75)"},
        {"mask", P::Image, false, "inpainting mask, white = repaint (needs init_image)"},
        {"mask_blur", P::Number, false, "mask blur in pixels (default 4)"},
        {"inpaint_fill", P::String, false, "masked content: \"original\" (default) or \"fill\""},
        {"tiling", P::Boolean, false, "seamless tiling for textures: the image wraps around at its edges (default false)"},
        {"preview_every", P::Integer, false, "a preview image every N steps (default 5, 0 = none)"},
        {"loras", P::Array, false, "LoRAs besides the prompt's tags: [{\"name\": N, \"weight\": 0.8, \"te\"?: w, \"unet\"?: w}]"},
        {"save", P::Boolean, false, "write PNGs with infotext to the outputs folder (default true)"}}},
      {method::kShot,
       "Queues a product shot: a scene generated around a product cut-out, the product's opaque pixels kept exactly.",
       {{"model", P::String, true, "registered model name or checkpoint path; an inpainting model gives the best scenes"},
        {"prompt", P::String, true, "the scene, A1111 syntax; <lora:name:weight> and trigger words work as in generate"},
        {"product", P::Image, false, "the product cut-out, RGBA: its alpha is the cut-out (this or product_path)"},
        {"product_path", P::String, false, "absolute path of an image file with alpha (PNG, WebP, TIFF), instead of product"},
        {"negative", P::String, false, "negative prompt"},
        {"width", P::Integer, false, "output width, a multiple of 8 (default: the model's, 512 SD1.x / 1024 SDXL)"},
        {"height", P::Integer, false, "output height, a multiple of 8 (default: the model's, 512 SD1.x / 1024 SDXL)"},
        {"fill", P::Number, false, "auto placement: the product spans this fraction of the frame's width or height (default 0.5)"},
        {"ground", P::Number, false, "auto placement: the product rests on this line, a fraction of the height (default 0.9)"},
        {"x", P::Integer, false, "explicit placement: the product layer's left edge in the output (needs y)"},
        {"y", P::Integer, false, "explicit placement: the product layer's top edge in the output (needs x)"},
        {"scale", P::Number, false, "explicit placement: the product's scale, 1 keeps its pixels 1:1 (default 1)"},
        {"edge", P::Integer, false, "pixels of the product's edge the model repaints, for shadow and transition, 0..64 (default 4)"},
        {"harmonize", P::Number, false,
         "0..0.5: a light img2img pass so light and colour fit; the product's interior is restored (default 0)"},
        {"count", P::Integer, false, "variations, 1..16; variation k gets seed + k (default 1)"},
        {"sampler", P::String, false, "Euler, Euler a (default), DPM++ 2M, DPM++ 2M Karras, DDIM"},
        {"steps", P::Integer, false, "sampling steps (default 20)"},
        {"cfg", P::Number, false, "classifier-free guidance scale (default 7)"},
        {"seed", P::Integer, false, "seed; -1 (default) picks one and reports it"},
        {"strength", P::Number, false, "denoising strength of the scene, 0..1 (default 1)"},
        {"clip_skip", P::Integer, false, "1 (default) = last CLIP layer; 2 for anime models"},
        {"loras", P::Array, false, "LoRAs besides the prompt's tags: [{\"name\": N, \"weight\": 0.8}]"},
        {"preview_every", P::Integer, false, "a preview image every N steps (default 5, 0 = none)"},
        {"save", P::Boolean, false, "write the PNGs with infotext to the outputs folder (default true)"}}},
      {method::kLorasList, "The LoRA library: every LoRA with its epoch files, rank, alpha and trigger words.", {}},
      {method::kLorasGet, "One LoRA of the library, with its metadata.", {{"name", P::String, true, "LoRA name"}}},
      {method::kLorasAdd, "Copies a kohya LoRA file into the library.",
       {{"path", P::String, true, "absolute path of the .safetensors file"},
        {"name", P::String, false, "name to use in <lora:NAME:w> (default: the file name without extension)"}}},
      {method::kLorasRemove, "Deletes a LoRA and all its files from the library.", {{"name", P::String, true, "LoRA name"}}},
      {method::kLorasUseEpoch,
       "Makes one epoch file the LoRA that <lora:NAME:w> uses (its final file becomes a copy of it); every epoch "
       "file stays, the trained final one kept as its epoch's file. Result: the LoRA as loras.get, with chosen_epoch.",
       {{"name", P::String, true, "LoRA name"},
        {"epoch", P::Integer, true, "the epoch whose file to use (loras.get lists them; the last epoch undoes a choice)"}}},
      {method::kDatasetsCreate, "Creates an empty dataset (kohya folder layout) in the data dir.",
       with_dataset_settings({{"name", P::String, true, "dataset name: 1-64 letters, digits, spaces, '-', '_', '.'"}})},
      {method::kDatasetsList, "The datasets: name, preset, trigger, image count.", {}},
      {method::kDatasetsGet,
       "One dataset: settings, every image (source name, stored file, caption, findings), checks. A finding is "
       "{code, message (naming the image, with the numbers and the limit), action (what to do), other? (the id a "
       "near_duplicate repeats)}.",
       {{"name", P::String, true, "dataset name"}}},
      {method::kDatasetsRemove, "Deletes a dataset and all its files.", {{"name", P::String, true, "dataset name"}}},
      {method::kDatasetsAddImages,
       "Queues a job that imports, prepares and checks images: result {added, errors, images}; a bad input is an "
       "error naming it and the rest go on. Input pixels are copied when the job is queued.",
       {{"name", P::String, true, "dataset name"},
        {"images", P::Array, false, "[{\"image\": image reference, \"name\"?: layer or file name, \"caption\"?: tags}]"},
        {"paths", P::Array, false, "absolute paths of image files or folders (their image files, not recursive)"}}},
      {method::kDatasetsRemoveImages, "Removes images and their files from a dataset; result: the dataset as datasets.get.",
       {{"name", P::String, true, "dataset name"}, {"ids", P::Array, true, "image ids, e.g. [\"0003\"]"}}},
      {method::kDatasetsSetCaption, "Sets one image's caption (trigger first, repeated tags dropped).",
       {{"name", P::String, true, "dataset name"},
        {"id", P::String, true, "image id"},
        {"caption", P::String, true, "comma-separated tags"}}},
      {method::kDatasetsTags,
       "Batch-edits captions in this order: replace, remove, add, move to the end, dedupe; the trigger stays first.",
       {{"name", P::String, true, "dataset name"},
        {"add", P::Any, false, "a tag or a list of tags to append where missing"},
        {"remove", P::Any, false, "a tag or a list of tags to delete"},
        {"replace", P::Any, false, "\"OLD=NEW\", {\"old\": O, \"new\": N}, or a list of those"},
        {"move_to_end", P::Any, false, "a tag or a list of tags to move to the end (e.g. \"simple background\")"},
        {"dedupe", P::Boolean, false, "drop repeated tags (every edit does; alone, it is the only edit)"},
        {"ids", P::Array, false, "only these image ids (default: every image)"}}},
      {method::kDatasetsTagStats, "How many captions hold each tag, most frequent first.",
       {{"name", P::String, true, "dataset name"}}},
      {method::kDatasetsPrepare,
       "Queues a job that prepares every image again from its original, with changed settings when given.",
       with_dataset_settings({{"name", P::String, true, "dataset name"}})},
      {method::kDatasetsAutoTag,
       "Queues a job that tags every image with an installed WD1.4-style tagger (<data dir>/taggers/<tagger>/).",
       {{"name", P::String, true, "dataset name"},
        {"threshold", P::Number, false, "general tags above this probability, 0..1 (default 0.35)"},
        {"character_threshold", P::Number, false, "character tags above this probability, 0..1 (default 0.85)"},
        {"replace", P::Boolean, false, "true: caption = trigger + found tags; false (default): found tags appended"},
        {"tagger", P::String, false, "folder under <data dir>/taggers holding model.onnx and selected_tags.csv (default wd14)"}}},
      {method::kDatasetsThumbnails,
       "Small previews of a dataset's images as shared-memory images the caller takes over: {dataset, images: "
       "[{id, image, source_width, source_height}]}, in the dataset's order.",
       {{"name", P::String, true, "dataset name"},
        {"ids", P::Array, false, "only these image ids (default: every image)"},
        {"size", P::Integer, false, "the longer side in pixels, 16..512 (default 128); never enlarged"},
        {"source", P::String, false, "\"training\" (default: the prepared image kohya trains on) or \"original\" (alpha kept)"}}},
      {method::kTrain,
       "Queues a LoRA training (kohya train_network.py semantics): one file per save, samples, loss curve; resumable.",
       {{"base", P::String, false, "base model: a registered name or an absolute checkpoint path"},
        {"data", P::String, false, "absolute path of a kohya train_data_dir (N_name subfolders with images and captions)"},
        {"dataset", P::String, false, "a Kiln dataset name instead of data"},
        {"name", P::String, false, "the LoRA's name (kohya output_name): files name-000001.safetensors ... name.safetensors"},
        {"preset", P::String, false, "product, character, anime, style or custom (default custom without a config file)"},
        {"config_file", P::String, false, "absolute path of a kohya TOML or a JSON config"},
        {"config", P::Object, false, "kohya keys and values, e.g. {\"network_dim\": 16, \"max_train_epochs\": 10}"},
        {"set", P::Array, false, "\"key=value\" overrides, applied last (as kiln train --set)"}}},
      {method::kTrainPlan,
       "What a train request would do, without queuing it: every resolved value (config, origins), the images, "
       "repeats, epochs and exact step count, the time estimated from earlier runs, and the warnings. Refused as "
       "train refuses.",
       {{"base", P::String, false, "as train"},
        {"data", P::String, false, "as train"},
        {"dataset", P::String, false, "as train"},
        {"name", P::String, false, "as train (default: the dataset's name)"},
        {"preset", P::String, false, "as train"},
        {"config_file", P::String, false, "as train"},
        {"config", P::Object, false, "as train"},
        {"set", P::Array, false, "as train"}}},
      {method::kTrainHistory,
       "A training job's live record, running or finished: its loss at every step, the samples of every epoch and "
       "the files saved so far, for a view that attaches at any time: {id, state, lora, loss: [{step, epoch, loss, "
       "lr}], next, samples: [{epoch, step, index, prompt, path}], files: [{epoch, step, path}], progress}.",
       {{"id", P::String, true, "job id of a train job (jobs.list shows them)"},
        {"from", P::Integer, false, "skip the first N loss points (the 'next' of an earlier answer; default 0)"}}},
      {method::kLoraGrid,
       "Queues the validation grid of a LoRA: X = its saved files (epochs), Y = strengths, one seed and prompt.",
       {{"lora", P::String, true, "LoRA name in the library"},
        {"prompt", P::String, false, "prompt (default: the LoRA's trigger word)"},
        {"prompt2", P::String, false, "a second prompt that changes attributes (hair, clothes, background): its own rows"},
        {"negative", P::String, false, "negative prompt"},
        {"model", P::String, false, "base model (default: the one the LoRA was trained on)"},
        {"strengths", P::Array, false, "LoRA strengths of the rows (default 0.1 ... 1.0)"},
        {"epochs", P::Any, false, "\"all\" (default: every epoch file and the final one) or a list of epoch numbers"},
        {"seed", P::Integer, false, "one seed for every cell (default 1234)"},
        {"steps", P::Integer, false, "sampling steps (default 20)"},
        {"cfg", P::Number, false, "CFG scale (default 7)"},
        {"sampler", P::String, false, "sampler (default Euler a)"},
        {"width", P::Integer, false, "cell width (default: the training resolution)"},
        {"height", P::Integer, false, "cell height (default: the training resolution)"},
        {"clip_skip", P::Integer, false, "clip skip (default: the training's)"},
        {"out", P::String, false, "absolute path of the PNG (default: grid.png in the LoRA's folder)"}}},
      {method::kRemoteTokensCreate,
       "Creates a token for a remote client (shown once; only its hash is kept). Local socket only.",
       {{"name", P::String, false, "a name to recognise it by, 1-64 letters, digits, '.', '-', '_' (default token-<id>)"},
        {"read_only", P::Boolean, false, "true: it may generate and read, not train, change, delete or shut down"}},
       false, Access::Local},
      {method::kRemoteTokensList, "The remote tokens (id, name, read-only, created, last used; never the token).", {}, false,
       Access::Local},
      {method::kRemoteTokensRevoke, "Revokes a remote token; sessions using it are closed at once.",
       {{"id", P::String, true, "the token's id or name"}}, false, Access::Local},
      {method::kFilesUpload,
       "Remote clients: stores the one file attachment of this request on the daemon's machine and returns its path, "
       "for the methods that take paths (datasets.add_images, loras.add, train's config_file).",
       {{"name", P::String, true, "the file's name (its last path component is kept)"},
        {"folder", P::String, false,
         "put it beside earlier uploads: the folder name of a path files.upload returned (an image and its caption file "
         "must be side by side)"}},
       false, Access::Remote},
      {method::kFilesDownload,
       "Remote clients: sends a file of the data dir's outputs/, loras/ or datasets/ as an attachment of the answer.",
       {{"path", P::String, true, "the daemon-side path a result named (an output PNG, a LoRA file, a grid)"}}, false,
       Access::Remote},
      {method::kBenchGenerate, "Queues a generation benchmark: per-step time and peak memory.",
       {{"model", P::String, false,
         "\"sd15-random\" (default: full-size SD1.5 with random weights), \"sdxl-random\" (full-size SDXL) or a model"},
        {"width", P::Integer, false, "default: the model's (512 SD1.x, 1024 SDXL)"},
        {"height", P::Integer, false, "default: the model's (512 SD1.x, 1024 SDXL)"},
        {"steps", P::Integer, false, "default 4"},
        {"sampler", P::String, false, "default Euler a"}}},
  };
  static const bool classified = [] {
    // Read-only remote tokens may call these; every other method needs a full token (a method
    // added without thinking about it is safe by default), and the ones above say Local/Remote.
    const std::vector<std::string> readable = {
        method::kHello,         method::kStatus,        method::kJobsList,      method::kJobsGet,
        method::kJobsSubscribe, method::kJobsUnsubscribe, method::kImageEcho,   method::kModelsList,
        method::kGenerate,      method::kShot,          method::kLorasList,     method::kLorasGet,
        method::kDatasetsList,  method::kDatasetsGet,   method::kDatasetsTagStats, method::kFilesDownload,
        method::kDatasetsThumbnails, method::kTrainPlan, method::kTrainHistory};
    // Parameters that name files on the daemon's machine.
    const std::vector<std::tuple<std::string, std::string, unsigned>> paths = {
        {method::kModelsAdd, "path", kDaemonPath},     {method::kGenerate, "model", kDaemonPath},
        {method::kShot, "model", kDaemonPath},         {method::kShot, "product_path", kDaemonPath},
        {method::kLorasAdd, "path", kDaemonPath},      {method::kDatasetsAddImages, "paths", kDaemonPath},
        {method::kTrain, "base", kDaemonPath},         {method::kTrain, "data", kDaemonPath},
        {method::kTrain, "config_file", kDaemonPath},  {method::kTrainPlan, "base", kDaemonPath},
        {method::kTrainPlan, "data", kDaemonPath},     {method::kTrainPlan, "config_file", kDaemonPath},
        {method::kLoraGrid, "model", kDaemonPath},
        {method::kLoraGrid, "out", kDaemonOutPath},    {method::kBenchGenerate, "model", kDaemonPath},
        {method::kFilesDownload, "path", kDaemonPath}};
    for (MethodSpec& spec : specs) {
      if (spec.access == Access::Write && std::find(readable.begin(), readable.end(), spec.name) != readable.end())
        spec.access = Access::Read;
      for (ParamSpec& p : spec.params)
        for (const auto& [m, name, flags] : paths)
          if (m == spec.name && name == p.name) p.flags |= flags;
    }
    return true;
  }();
  (void)classified;
  return specs;
}

const MethodSpec* find_method(std::string_view name) {
  for (const MethodSpec& spec : all_methods())
    if (name == spec.name) return &spec;
  return nullptr;
}

const char* access_name(Access access) {
  switch (access) {
    case Access::Read: return "read";
    case Access::Write: return "write";
    case Access::Local: return "local";
    case Access::Remote: return "remote";
  }
  return "?";
}

const char* param_type_name(ParamType type) {
  switch (type) {
    case ParamType::String: return "a string";
    case ParamType::Integer: return "an integer";
    case ParamType::Number: return "a number";
    case ParamType::Boolean: return "true or false";
    case ParamType::Object: return "an object";
    case ParamType::Array: return "an array";
    case ParamType::Image: return "an image reference";
    case ParamType::Any: return "any value";
  }
  return "a value";
}

namespace {
bool has_type(const Json& v, ParamType type) {
  switch (type) {
    case ParamType::String: return v.is_string();
    case ParamType::Integer: return v.is_number_integer() || v.is_number_unsigned();
    case ParamType::Number: return v.is_number();
    case ParamType::Boolean: return v.is_boolean();
    case ParamType::Object: return v.is_object();
    case ParamType::Array: return v.is_array();
    case ParamType::Image: return v.is_object();
    case ParamType::Any: return true;
  }
  return false;
}

RpcError invalid(std::string message) { return RpcError{ErrorCode::InvalidParams, std::move(message), nullptr}; }
}  // namespace

std::optional<RpcError> validate_params(const MethodSpec& spec, const Json& params) {
  const std::string method = spec.name;
  if (!params.is_object()) return invalid(method + ": params must be an object");
  for (auto it = params.begin(); it != params.end(); ++it) {
    const ParamSpec* known = nullptr;
    for (const ParamSpec& p : spec.params)
      if (it.key() == p.name) known = &p;
    if (!known) {
      std::string names;
      for (const ParamSpec& p : spec.params) names += std::string(names.empty() ? "" : ", ") + p.name;
      return invalid(method + ": unknown parameter '" + it.key() + "'" +
                     (names.empty() ? " (it takes none)" : " (it takes: " + names + ")"));
    }
    if (!has_type(it.value(), known->type))
      return invalid(method + ": parameter '" + it.key() + "' must be " + param_type_name(known->type) + ", not " +
                     it.value().type_name());
    if (known->type == ParamType::Image) {
      if (auto problem = check_image_ref(it.value())) return invalid(method + ": parameter '" + it.key() + "': " + *problem);
    }
  }
  for (const ParamSpec& p : spec.params)
    if (p.required && !params.contains(p.name))
      return invalid(method + ": missing parameter '" + p.name + "' (" + p.help + ")");
  return std::nullopt;
}

}  // namespace kiln::protocol
