#pragma once
// The `shot` job: a product shot. The product cut-out is placed in the frame, the model paints the
// scene around it (an inpainting checkpoint when the model is one, else the ordinary model with
// masked content "fill"), and the product is composited back so that its opaque pixels are exactly
// the product's. Optionally a light img2img pass harmonizes light and colour, after which the
// product's interior is restored. Each variation yields the composite, the scene alone and the
// placement, saved as PNGs with A1111 infotext.
#include <filesystem>

#include <opencv2/core.hpp>

#include "service/jobs/job_context.h"
#include "studio/shot/compose.h"
#include "studio/shot/placement.h"

namespace kiln::service {

struct Compute;
class ImageLeases;
class LoraLibrary;
class ModelRegistry;

// What the request handler prepares from the product's pixels before the job is queued.
struct ShotInputs {
  studio::shot::Placement placement;
  studio::shot::ProductLayer product;  // placed in the frame
  cv::Mat repaint;                     // 8-bit, 255 = the model paints here
};

// Checks the JSON parameters (everything but the product's pixels). Throws ServiceError(InvalidParams).
void check_shot_params(const Json& params);

// Places `product_bgra` (8-bit BGRA, straight alpha) as `params` ask and builds the repaint mask.
// Throws ServiceError(InvalidParams) naming the problem: no opaque pixel, a placement outside the
// frame, a product larger than the frame at that scale.
ShotInputs prepare_shot(const Json& params, const cv::Mat& product_bgra);

JobType make_shot_job_type(Compute& compute, ModelRegistry& models, LoraLibrary& loras, ImageLeases& leases,
                           std::filesystem::path outputs_dir);

}  // namespace kiln::service
