#include "engine/pretrain/train_state.h"

#include <torch/torch.h>

#include "engine/error.h"
#include "engine/io/safetensors.h"

namespace kiln::engine::pretrain {

namespace {
constexpr const char* kMetaKey = "kiln.train_state";
}

void save_train_state(const std::filesystem::path& path, const NamedTensors& tensors, const nlohmann::json& meta) {
  save_safetensors(path, tensors, {{kMetaKey, meta.dump()}});
}

TrainState load_train_state(const std::filesystem::path& path) {
  const auto file = SafeTensorsFile::open(path);
  const auto it = file->metadata().find(kMetaKey);
  if (it == file->metadata().end())
    throw Error(ErrorKind::BadFormat, "'" + path.string() + "' is not a Kiln Mini training state (no " + kMetaKey +
                                          " metadata)");
  TrainState state;
  try {
    state.meta = nlohmann::json::parse(it->second);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::BadFormat, "'" + path.string() + "': unreadable training-state metadata: " + e.what());
  }
  for (const auto& info : file->tensors()) state.tensors.emplace(info.name, file->tensor(info.name).clone());
  return state;
}

NamedTensors parameters_state(const torch::nn::Module& module, const std::string& prefix) {
  NamedTensors out;
  for (const auto& p : module.named_parameters(/*recurse=*/true))
    out.emplace_back(prefix + p.key(), p.value().detach().to(torch::kFloat32));
  return out;
}

void load_parameters_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& tensors,
                           const std::string& prefix) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.named_parameters(/*recurse=*/true)) {
    const auto it = tensors.find(prefix + p.key());
    if (it == tensors.end() || it->second.sizes() != p.value().sizes())
      throw Error(ErrorKind::BadFormat, "the training state lacks " + prefix + p.key() + " or has another shape for it: it was "
                  "written for other sizes or is damaged; resume with the run's own config.json, or start "
                  "the stage over (kiln-train-base --no-resume)");
    p.value().copy_(it->second);
  }
}

std::map<std::string, torch::Tensor> strip_prefix(const std::map<std::string, torch::Tensor>& tensors,
                                                  const std::string& prefix) {
  std::map<std::string, torch::Tensor> out;
  for (auto it = tensors.lower_bound(prefix); it != tensors.end() && it->first.rfind(prefix, 0) == 0; ++it)
    out.emplace(it->first.substr(prefix.size()), it->second);
  return out;
}

void append(NamedTensors& into, NamedTensors more) {
  for (auto& t : more) into.push_back(std::move(t));
}

}  // namespace kiln::engine::pretrain
