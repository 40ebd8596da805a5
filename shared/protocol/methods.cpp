#include "protocol/methods.h"

#include <string>

#include "protocol/image_ref.h"

namespace kiln::protocol {

const std::vector<MethodSpec>& all_methods() {
  using P = ParamType;
  static const std::vector<MethodSpec> specs = {
      {method::kHello, "Handshake: names the client and agrees a protocol version. Must be the first call.",
       {{"client", P::String, true, "client name and version, e.g. \"krita-plugin 0.1\""},
        {"protocol", P::Integer, true, "highest protocol version the client speaks"},
        {"min_protocol", P::Integer, false, "lowest protocol version the client speaks (default: protocol)"}},
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
         "without it the daemon creates one that the caller takes over"}}},
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
        {"width", P::Integer, false, "multiple of 8 (default 512, or the init image's)"},
        {"height", P::Integer, false, "multiple of 8 (default 512, or the init image's)"},
        {"clip_skip", P::Integer, false, "1 (default) = last CLIP layer; 2 for anime models"},
        {"batch_size", P::Integer, false, "images per pass (default 1)"},
        {"batch_count", P::Integer, false, "passes (default 1); image k gets seed + k"},
        {"init_image", P::Image, false, "img2img source, the output's size"},
        {"strength", P::Number, false, "denoising strength for img2img, 0..1 (default 0.75)"},
        {"mask", P::Image, false, "inpainting mask, white = repaint (needs init_image)"},
        {"mask_blur", P::Number, false, "mask blur in pixels (default 4)"},
        {"inpaint_fill", P::String, false, "masked content: \"original\" (default) or \"fill\""},
        {"preview_every", P::Integer, false, "a preview image every N steps (default 5, 0 = none)"},
        {"loras", P::Array, false, "LoRAs besides the prompt's tags: [{\"name\": N, \"weight\": 0.8, \"te\"?: w, \"unet\"?: w}]"},
        {"save", P::Boolean, false, "write PNGs with infotext to the outputs folder (default true)"}}},
      {method::kLorasList, "The LoRA library: every LoRA with its epoch files, rank, alpha and trigger words.", {}},
      {method::kLorasGet, "One LoRA of the library, with its metadata.", {{"name", P::String, true, "LoRA name"}}},
      {method::kLorasAdd, "Copies a kohya LoRA file into the library.",
       {{"path", P::String, true, "absolute path of the .safetensors file"},
        {"name", P::String, false, "name to use in <lora:NAME:w> (default: the file name without extension)"}}},
      {method::kLorasRemove, "Deletes a LoRA and all its files from the library.", {{"name", P::String, true, "LoRA name"}}},
      {method::kBenchGenerate, "Queues a generation benchmark: per-step time and peak memory.",
       {{"model", P::String, false, "\"sd15-random\" (default: full-size SD1.5 with random weights) or a model"},
        {"width", P::Integer, false, "default 512"},
        {"height", P::Integer, false, "default 512"},
        {"steps", P::Integer, false, "default 4"},
        {"sampler", P::String, false, "default Euler a"}}},
  };
  return specs;
}

const MethodSpec* find_method(std::string_view name) {
  for (const MethodSpec& spec : all_methods())
    if (name == spec.name) return &spec;
  return nullptr;
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
