#include "engine/lora/optimizers.h"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "engine/error.h"

namespace kiln::engine::lora {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

double or_default(double v, double fallback) { return v < 0 ? fallback : v; }

const torch::Tensor& find(const std::map<std::string, torch::Tensor>& m, const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) throw Error(ErrorKind::InvalidArgument, "the optimizer state lacks \"" + key + "\"");
  return it->second;
}

// Shared by all optimizers: one slot per parameter (groups flattened), with named state tensors
// created on the first step that has a gradient, and a per-parameter step count like torch's.
class SlotOptimizer : public Optimizer {
 public:
  explicit SlotOptimizer(std::vector<ParamGroup> groups) : Optimizer(std::move(groups)) {
    size_t n = 0;
    for (const auto& g : groups_) n += g.params.size();
    slots_.resize(n);
  }

  void step() override {
    torch::NoGradGuard no_grad;
    size_t k = 0;
    for (size_t g = 0; g < groups_.size(); ++g) {
      for (auto& p : groups_[g].params) {
        Slot& s = slots_[k++];
        const auto grad = p.grad();
        if (!grad.defined()) continue;
        ++s.step;
        update(p, grad, s, lrs_[g]);
      }
    }
  }

  std::vector<std::pair<std::string, torch::Tensor>> state() const override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    std::vector<int64_t> steps;
    for (size_t k = 0; k < slots_.size(); ++k) {
      steps.push_back(slots_[k].step);
      for (const auto& [name, t] : slots_[k].tensors) out.emplace_back("p" + std::to_string(k) + "." + name, t.cpu());
    }
    out.emplace_back("steps", torch::tensor(steps, torch::kInt64));
    return out;
  }

  void load_state(const std::map<std::string, torch::Tensor>& state) override {
    const auto steps = find(state, "steps");
    if (steps.numel() != static_cast<int64_t>(slots_.size()))
      throw Error(ErrorKind::InvalidArgument, "the optimizer state is for " + std::to_string(steps.numel()) +
                                                  " tensors, this network has " + std::to_string(slots_.size()));
    size_t k = 0;
    for (const auto& g : groups_) {
      for (const auto& p : g.params) {
        Slot& s = slots_[k];
        s.step = steps[static_cast<int64_t>(k)].item<int64_t>();
        s.tensors.clear();
        const std::string prefix = "p" + std::to_string(k) + ".";
        for (const auto& [key, t] : state) {
          if (key.rfind(prefix, 0) != 0) continue;
          // Moments live beside their parameter; 8-bit codes and scales keep their own dtype.
          const bool moment = t.is_floating_point() && t.sizes() == p.sizes();
          s.tensors[key.substr(prefix.size())] = moment ? t.to(p.options().requires_grad(false)).clone() : t.to(p.device()).clone();
        }
        if (s.step > 0 && s.tensors.empty())
          throw Error(ErrorKind::InvalidArgument, "the optimizer state has no moments for parameter " + std::to_string(k));
        ++k;
      }
    }
  }

  int64_t state_bytes() const override {
    int64_t n = 0;
    for (const auto& s : slots_)
      for (const auto& [name, t] : s.tensors) n += static_cast<int64_t>(t.nbytes());
    return n;
  }

 protected:
  struct Slot {
    int64_t step = 0;
    std::map<std::string, torch::Tensor> tensors;
    torch::Tensor& get(const std::string& name, const torch::Tensor& like) {
      auto& t = tensors[name];
      if (!t.defined()) t = torch::zeros_like(like, torch::MemoryFormat::Preserve).set_requires_grad(false);
      return t;
    }
  };
  virtual void update(torch::Tensor& p, const torch::Tensor& grad, Slot& s, double lr) = 0;
  std::vector<Slot> slots_;
};

// torch.optim.AdamW's single-tensor update.
void adamw_update(torch::Tensor& p, const torch::Tensor& grad, torch::Tensor& exp_avg, torch::Tensor& exp_avg_sq,
                  int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay) {
  if (weight_decay != 0) p.mul_(1.0 - lr * weight_decay);
  exp_avg.lerp_(grad, 1.0 - beta1);
  exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1.0 - beta2);
  const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const auto denom = (exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(eps);
  p.addcdiv_(exp_avg, denom, -lr / bias_correction1);
}

class AdamW : public SlotOptimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, const OptimizerOptions& o)
      : SlotOptimizer(std::move(groups)),
        beta1_(or_default(o.beta1, 0.9)),
        beta2_(or_default(o.beta2, 0.999)),
        eps_(o.eps),
        wd_(or_default(o.weight_decay, 0.01)) {}
  std::string kohya_name() const override { return "torch.optim.adamw.AdamW"; }

 protected:
  void update(torch::Tensor& p, const torch::Tensor& grad, Slot& s, double lr) override {
    adamw_update(p, grad, s.get("exp_avg", p), s.get("exp_avg_sq", p), s.step, lr, beta1_, beta2_, eps_, wd_);
  }
  double beta1_, beta2_, eps_, wd_;
};

class AdamW8bit : public AdamW {
 public:
  static constexpr int64_t kMinElements = 4096;  // smaller tensors keep float32 moments
  static constexpr int64_t kBlock = 2048;
  AdamW8bit(std::vector<ParamGroup> groups, const OptimizerOptions& o)
      : AdamW(std::move(groups), o), signed_(dynamic_code(true)), unsigned_(dynamic_code(false)) {}
  std::string kohya_name() const override { return "bitsandbytes.optim.adamw.AdamW8bit"; }

 protected:
  void update(torch::Tensor& p, const torch::Tensor& grad, Slot& s, double lr) override {
    if (p.numel() < kMinElements) return AdamW::update(p, grad, s, lr);
    const auto& sc = code(signed_, p), &uc = code(unsigned_, p);
    torch::Tensor m, v;
    if (s.tensors.count("exp_avg.codes")) {
      m = dequantize_blockwise({s.tensors["exp_avg.codes"], s.tensors["exp_avg.absmax"]}, sc, kBlock).view_as(p);
      v = dequantize_blockwise({s.tensors["exp_avg_sq.codes"], s.tensors["exp_avg_sq.absmax"]}, uc, kBlock).view_as(p);
    } else {
      m = torch::zeros(p.sizes(), p.options().dtype(torch::kFloat32));
      v = torch::zeros(p.sizes(), p.options().dtype(torch::kFloat32));
    }
    adamw_update(p, grad, m, v, s.step, lr, beta1_, beta2_, eps_, wd_);
    auto qm = quantize_blockwise(m, sc, kBlock), qv = quantize_blockwise(v, uc, kBlock);
    s.tensors["exp_avg.codes"] = qm.codes;
    s.tensors["exp_avg.absmax"] = qm.absmax;
    s.tensors["exp_avg_sq.codes"] = qv.codes;
    s.tensors["exp_avg_sq.absmax"] = qv.absmax;
  }

 private:
  const torch::Tensor& code(torch::Tensor& table, const torch::Tensor& p) {
    if (table.device() != p.device()) table = table.to(p.device());
    return table;
  }
  torch::Tensor signed_, unsigned_;
};

// lion_pytorch: the update is the sign of an interpolation of momentum and gradient.
class Lion : public SlotOptimizer {
 public:
  Lion(std::vector<ParamGroup> groups, const OptimizerOptions& o)
      : SlotOptimizer(std::move(groups)),
        beta1_(or_default(o.beta1, 0.9)),
        beta2_(or_default(o.beta2, 0.99)),
        wd_(or_default(o.weight_decay, 0.0)) {}
  std::string kohya_name() const override { return "lion_pytorch.lion_pytorch.Lion"; }

 protected:
  void update(torch::Tensor& p, const torch::Tensor& grad, Slot& s, double lr) override {
    auto& exp_avg = s.get("exp_avg", p);
    if (wd_ != 0) p.mul_(1.0 - lr * wd_);
    const auto direction = (exp_avg * beta1_).add_(grad, 1.0 - beta1_).sign_();
    p.add_(direction, -lr);
    exp_avg.mul_(beta2_).add_(grad, 1.0 - beta2_);
  }
  double beta1_, beta2_, wd_;
};

// torch.optim.SGD(momentum, nesterov=True, dampening 0).
class SgdNesterov : public SlotOptimizer {
 public:
  SgdNesterov(std::vector<ParamGroup> groups, const OptimizerOptions& o)
      : SlotOptimizer(std::move(groups)), momentum_(o.momentum), wd_(or_default(o.weight_decay, 0.0)) {}
  std::string kohya_name() const override { return "torch.optim.sgd.SGD"; }

 protected:
  void update(torch::Tensor& p, const torch::Tensor& grad, Slot& s, double lr) override {
    auto d = wd_ != 0 ? grad.add(p, wd_) : grad;
    auto it = s.tensors.find("momentum_buffer");
    if (it == s.tensors.end()) {
      it = s.tensors.emplace("momentum_buffer", d.clone()).first;
    } else {
      it->second.mul_(momentum_).add_(d);
    }
    p.add_(d.add(it->second, momentum_), -lr);
  }
  double momentum_, wd_;
};

}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  for (const auto& g : groups_) lrs_.push_back(g.lr);
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.mutable_grad() = torch::Tensor();
}

const std::vector<std::string>& optimizer_types() {
  static const std::vector<std::string> t{"AdamW", "AdamW8bit", "Lion", "SGDNesterov"};
  return t;
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerOptions& o, std::vector<ParamGroup> groups) {
  const std::string t = lower(o.type);
  if (t == "adamw") return std::make_unique<AdamW>(std::move(groups), o);
  if (t == "adamw8bit") return std::make_unique<AdamW8bit>(std::move(groups), o);
  if (t == "lion") return std::make_unique<Lion>(std::move(groups), o);
  if (t == "sgdnesterov") return std::make_unique<SgdNesterov>(std::move(groups), o);
  throw Error(ErrorKind::InvalidArgument,
              "unknown optimizer \"" + o.type + "\"; Kiln has AdamW, AdamW8bit, Lion and SGDNesterov");
}

torch::Tensor dynamic_code(bool is_signed) {
  // Magnitudes 10^-6 … 1 in seven decades; decade i has 2^i (signed) or 2^(i+1) (unsigned)
  // values at the midpoints of an even split of [0.1, 1]: larger values get finer steps.
  std::vector<float> values{0.0f, 1.0f};
  constexpr int kDecades = 7;
  for (int i = 0; i < kDecades; ++i) {
    const int64_t items = int64_t(1) << (is_signed ? i : i + 1);
    const double scale = std::pow(10.0, i - (kDecades - 1));
    for (int64_t j = 0; j < items; ++j) {
      const double mid = 0.1 + 0.9 * (static_cast<double>(j) + 0.5) / static_cast<double>(items);
      values.push_back(static_cast<float>(scale * mid));
      if (is_signed) values.push_back(static_cast<float>(-scale * mid));
    }
  }
  std::sort(values.begin(), values.end());
  return torch::tensor(values, torch::kFloat32);
}

Quantized quantize_blockwise(const torch::Tensor& x, const torch::Tensor& code, int64_t block) {
  torch::NoGradGuard no_grad;
  const int64_t n = x.numel(), blocks = (n + block - 1) / block;
  auto flat = x.detach().reshape({-1}).to(torch::kFloat32);
  auto padded = torch::constant_pad_nd(flat, {0, blocks * block - n}).view({blocks, block});
  auto absmax = padded.abs().amax(1);
  auto normalized = padded / absmax.clamp_min(1e-30).unsqueeze(1);
  // The nearest code: compare with the midpoints between neighbouring codes.
  auto midpoints = (code.narrow(0, 1, code.size(0) - 1) + code.narrow(0, 0, code.size(0) - 1)) * 0.5;
  auto index = torch::bucketize(normalized, midpoints);
  return {index.reshape({-1}).narrow(0, 0, n).to(torch::kUInt8).view(x.sizes()), absmax};
}

torch::Tensor dequantize_blockwise(const Quantized& q, const torch::Tensor& code, int64_t block) {
  const int64_t n = q.codes.numel();
  auto values = code.index_select(0, q.codes.reshape({-1}).to(torch::kLong));
  auto scale = q.absmax.repeat_interleave(block).narrow(0, 0, n);
  return (values * scale).view(q.codes.sizes());
}

}  // namespace kiln::engine::lora
