// generate, shot and bench.generate: each queues a job on the device worker.
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "protocol/methods.h"
#include "service/errors.h"
#include "service/images/pixels.h"
#include "service/jobs/generate_job.h"
#include "service/jobs/generation_support.h"
#include "service/library/model_registry.h"
#include "service/jobs/scheduler.h"
#include "service/jobs/shot_job.h"
#include "studio/error.h"
#include "studio/image.h"
#include "service/server/services.h"
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
  fill_default_size(params, call.services.models);  // the model family's size (SDXL 1024) when none is given
  // The job record keeps what the request said about its images, not the pixels or block names.
  for (const char* key : {"init_image", "mask"})
    if (params.contains(key)) params[key] = {{"width", params[key].at("width")}, {"height", params[key].at("height")}};
  return to_json(call.services.scheduler.submit("generate", params, call.session.client_name(), std::nullopt, inputs));
}

// The product cut-out as 8-bit BGRA with straight alpha, from the request's block or file.
cv::Mat read_product(const Json& params) {
  const auto no_alpha = [](const std::string& what, int channels) {
    throw ServiceError(ErrorCode::InvalidParams,
                       "shot: " + what + " has no alpha channel (" + std::to_string(channels) +
                           " channels); the product must be a cut-out: a layer with transparency, or a PNG with alpha");
  };
  if (params.contains("product_path")) {
    const std::string path = params.at("product_path");
    cv::Mat image;
    try {
      image = studio::read_image_file(path);
    } catch (const studio::Error& e) {
      throw ServiceError(e.kind() == studio::ErrorKind::NotFound ? ErrorCode::NotFound : ErrorCode::InvalidParams,
                         std::string("shot: ") + e.what());
    }
    if (image.channels() != 4) no_alpha("'" + path + "'", image.channels());
    return image;
  }
  const ipc::ShmImage block = ipc::ShmImage::open(protocol::image_ref_from_json(params.at("product")));
  const torch::Tensor rgba = straight_u8_from_shm(block);
  if (rgba.size(2) != 4) no_alpha("the product image", static_cast<int>(rgba.size(2)));
  const cv::Mat view(static_cast<int>(rgba.size(0)), static_cast<int>(rgba.size(1)), CV_8UC4, rgba.data_ptr<uint8_t>());
  cv::Mat bgra;
  cv::cvtColor(view, bgra, cv::COLOR_RGBA2BGRA);
  return bgra;
}

Json shot(Call& call) {
  Json params = call.params;
  fill_default_size(params, call.services.models);
  check_shot_params(params);  // cheap checks before any pixel is read
  ShotInputs inputs = prepare_shot(params, read_product(params));
  // The job record keeps the product's size, not its pixels or block name.
  if (params.contains("product"))
    params["product"] = {{"width", params["product"].at("width")}, {"height", params["product"].at("height")}};
  return to_json(call.services.scheduler.submit("shot", params, call.session.client_name(), std::nullopt, std::move(inputs)));
}

Json bench_generate(Call& call) {
  return to_json(call.services.scheduler.submit("bench.generate", call.params, call.session.client_name()));
}

}  // namespace

void register_generate_handlers(Dispatcher& d) {
  d.add(protocol::method::kGenerate, generate);
  d.add(protocol::method::kShot, shot);
  d.add(protocol::method::kBenchGenerate, bench_generate);
}

}  // namespace kiln::service
