#include "support/reference.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace kiln::test {
namespace fs = std::filesystem;

fs::path fixtures_dir() {
  if (const char* env = std::getenv("KILN_FIXTURES_DIR"); env && *env) return env;
  return KILN_TEST_FIXTURES_DIR;
}

fs::path sd15_tiny_dir() { return fixtures_dir() / "sd15-tiny"; }
fs::path sd15_inpaint_tiny_dir() { return fixtures_dir() / "sd15-inpaint-tiny"; }
fs::path sdxl_tiny_dir() { return fixtures_dir() / "sdxl-tiny"; }

const Reference& Reference::get() { return get("sd15-tiny"); }

const Reference& Reference::get(const std::string& fixture) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Reference>> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = loaded[fixture];
  if (!slot) {
    const fs::path dir = fixtures_dir() / fixture;
    std::ifstream in(dir / "reference.json");
    if (!in) throw std::runtime_error("cannot open " + (dir / "reference.json").string());
    slot.reset(new Reference());
    slot->json_ = nlohmann::json::parse(in);
    slot->tensors_ = engine::SafeTensorsFile::open(dir / "reference.safetensors");
  }
  return *slot;
}

const nlohmann::json& Reference::case_by_id(const std::string& id) const {
  for (const auto& c : json_.at("cases"))
    if (c.at("id") == id) return c;
  ADD_FAILURE() << "reference.json has no case '" << id << "'";
  static const nlohmann::json empty = nlohmann::json::object();
  return empty;
}

std::vector<const nlohmann::json*> Reference::cases_of_kind(const std::string& kind) const {
  std::vector<const nlohmann::json*> out;
  for (const auto& c : json_.at("cases"))
    if (c.at("kind") == kind) out.push_back(&c);
  return out;
}

torch::Tensor Reference::tensor(const std::string& name) const { return tensors_->tensor(name); }

torch::Tensor Reference::tensor(const nlohmann::json& ref) const {
  return tensor(ref.at("tensor").get<std::string>());
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return INFINITY;
  return (a.to(torch::kFloat64).cpu() - b.to(torch::kFloat64).cpu()).abs().max().item<double>();
}

}  // namespace kiln::test
