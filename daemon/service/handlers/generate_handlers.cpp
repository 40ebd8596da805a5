// generate and bench.generate: both queue a job on the device worker.
#include <torch/torch.h>

#include "protocol/methods.h"
#include "service/errors.h"
#include "service/images/pixels.h"
#include "service/jobs/generate_job.h"
#include "service/jobs/scheduler.h"
#include "service/server/session.h"

namespace kiln::service {

using Json = nlohmann::json;
using protocol::ErrorCode;

namespace {

// Copies an input image out of the client's block now, so the client may drop it at once.
torch::Tensor read_input(const Json& ref, bool as_mask) {
  const ipc::ShmImage image = ipc::ShmImage::open(protocol::image_ref_from_json(ref));
  return as_mask ? mask_from_shm(image) : rgb_from_shm(image);
}

Json generate(Call& call) {
  Json params = call.params;
  GenerateInputs inputs;
  if (params.contains("init_image")) {
    inputs.init_image = read_input(params.at("init_image"), false);
    const int64_t h = inputs.init_image.size(0), w = inputs.init_image.size(1);
    if (!params.contains("width")) params["width"] = w;
    if (!params.contains("height")) params["height"] = h;
    if (params.at("width") != w || params.at("height") != h)
      throw ServiceError(ErrorCode::InvalidParams, "generate: the init image is " + std::to_string(w) + "x" + std::to_string(h) +
                                                       " but width x height is " + params.at("width").dump() + "x" +
                                                       params.at("height").dump() + "; resize it or leave the size out");
  }
  if (params.contains("mask")) {
    inputs.mask = read_input(params.at("mask"), true);
    if (inputs.init_image.defined() && inputs.mask.sizes() != inputs.init_image.sizes().slice(0, 2))
      throw ServiceError(ErrorCode::InvalidParams, "generate: the mask must be the size of the init image");
  }
  // The job record keeps what the request said about its images, not the pixels or block names.
  for (const char* key : {"init_image", "mask"})
    if (params.contains(key)) params[key] = {{"width", params[key].at("width")}, {"height", params[key].at("height")}};
  return to_json(call.services.scheduler.submit("generate", params, call.session.client_name(), std::nullopt, inputs));
}

Json bench_generate(Call& call) {
  return to_json(call.services.scheduler.submit("bench.generate", call.params, call.session.client_name()));
}

}  // namespace

void register_generate_handlers(Dispatcher& d) {
  d.add(protocol::method::kGenerate, generate);
  d.add(protocol::method::kBenchGenerate, bench_generate);
}

}  // namespace kiln::service
