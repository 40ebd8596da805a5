#include "scene_classifier.h"

#include <cmath>

#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/modules/pooling.h>
#include <torch/optim/adamw.h>

#include "engine/pretrain/train_state.h"

namespace kiln::mini {

namespace nn = torch::nn;
namespace sm = studio::mini;

namespace {

int64_t index_of(const std::vector<std::string>& names, const std::string& name) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<int64_t>(i);
  return -1;
}

// conv 3×3 → GroupNorm → SiLU, `stride` 2 halving the side.
void add_conv_block(nn::Sequential& seq, int64_t in, int64_t out, int64_t stride) {
  seq->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1)));
  seq->push_back(nn::GroupNorm(nn::GroupNormOptions(8, out)));
  seq->push_back(nn::SiLU());
}

torch::Tensor normalise(const torch::Tensor& pictures) {  // uint8 → float [-1, 1]
  return pictures.to(torch::kFloat32).div(127.5).sub(1.0);
}

}  // namespace

SceneLabels labels_of(const std::vector<sm::SceneSpec>& specs) {
  std::vector<int64_t> o, c, s;
  for (const auto& spec : specs) {
    o.push_back(index_of(sm::object_classes(), spec.object));
    c.push_back(index_of(sm::colour_names(), spec.colour));
    s.push_back(index_of(sm::surface_names(), spec.surface));
  }
  return {torch::tensor(o, torch::kInt64), torch::tensor(c, torch::kInt64), torch::tensor(s, torch::kInt64)};
}

SceneClassifierImpl::SceneClassifierImpl() {
  // 64 → 32 → 16 → 8 → 4, then global average pooling: enough for silhouettes and colours.
  nn::Sequential f;
  const int64_t widths[][3] = {{3, 32, 1}, {32, 32, 2}, {32, 64, 1}, {64, 64, 2}, {64, 128, 1}, {128, 128, 2}, {128, 128, 2}};
  for (const auto& w : widths) add_conv_block(f, w[0], w[1], w[2]);
  f->push_back(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)));
  features_ = register_module("features", f);
  object_ = register_module("object", nn::Linear(128, static_cast<int64_t>(sm::object_classes().size())));
  colour_ = register_module("colour", nn::Linear(128, static_cast<int64_t>(sm::colour_names().size())));
  surface_ = register_module("surface", nn::Linear(128, static_cast<int64_t>(sm::surface_names().size())));
}

SceneLogits SceneClassifierImpl::forward(const torch::Tensor& pictures) {
  const auto f = features_->forward(pictures).flatten(1);
  return {object_->forward(f), colour_->forward(f), surface_->forward(f)};
}

void train_scene_classifier(SceneClassifier& model, const torch::Tensor& pictures, const SceneLabels& labels,
                            const ClassifierTraining& options) {
  model->train();
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(options.lr).weight_decay(1e-4));
  auto gen = at::detail::createCPUGenerator(options.seed);
  const int64_t n = pictures.size(0);
  double avg = 0;
  for (int64_t step = 0; step < options.steps; ++step) {
    const double lr = options.lr * 0.5 * (1 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(options.steps)));
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    const auto idx = torch::randint(0, n, {options.batch}, gen, torch::kInt64);
    auto x = normalise(pictures.index_select(0, idx));
    const auto flip = torch::rand({options.batch, 1, 1, 1}, gen) < 0.5;
    x = torch::where(flip, x.flip({3}), x);
    const auto out = model->forward(x);
    namespace F = torch::nn::functional;
    const auto loss = F::cross_entropy(out.object, labels.object.index_select(0, idx)) +
                      F::cross_entropy(out.colour, labels.colour.index_select(0, idx)) +
                      F::cross_entropy(out.surface, labels.surface.index_select(0, idx));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    avg = step == 0 ? loss.item<double>() : 0.95 * avg + 0.05 * loss.item<double>();
    if (options.on_progress && (step + 1) % 50 == 0) options.on_progress(step + 1, avg);
  }
  model->eval();
}

SceneGuess classify(SceneClassifier& model, const torch::Tensor& pictures) {
  torch::NoGradGuard no_grad;
  model->eval();
  SceneGuess g;
  std::vector<torch::Tensor> o, c, s;
  for (int64_t i = 0; i < pictures.size(0); i += 256) {
    const auto out = model->forward(normalise(pictures.narrow(0, i, std::min<int64_t>(256, pictures.size(0) - i))));
    o.push_back(out.object.argmax(1));
    c.push_back(out.colour.argmax(1));
    s.push_back(out.surface.argmax(1));
  }
  return {torch::cat(o), torch::cat(c), torch::cat(s)};
}

void save_scene_classifier(SceneClassifier& model, const std::filesystem::path& path) {
  engine::pretrain::save_train_state(path, engine::pretrain::parameters_state(*model, ""),
                                     {{"kiln.model", "Kiln Mini scene classifier"}});
}

void load_scene_classifier(SceneClassifier& model, const std::filesystem::path& path) {
  const auto state = engine::pretrain::load_train_state(path);
  engine::pretrain::load_parameters_state(*model, state.tensors, "");
  model->eval();
}

}  // namespace kiln::mini
