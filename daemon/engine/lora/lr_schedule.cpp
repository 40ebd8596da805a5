#include "engine/lora/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace kiln::engine::lora {

namespace {
constexpr double kPi = 3.14159265358979323846;
}

const std::vector<std::string>& LrSchedule::names() {
  static const std::vector<std::string> n{"constant", "constant_with_warmup", "linear",
                                          "cosine",   "cosine_with_restarts", "polynomial"};
  return n;
}

LrSchedule::LrSchedule(LrScheduleOptions o) : options_(std::move(o)) {
  const auto& n = names();
  if (std::find(n.begin(), n.end(), options_.name) == n.end())
    throw Error(ErrorKind::InvalidArgument, "unknown lr scheduler \"" + options_.name +
                                                "\"; use constant, constant_with_warmup, linear, cosine, "
                                                "cosine_with_restarts or polynomial");
  if (options_.warmup_steps < 0) throw Error(ErrorKind::InvalidArgument, "lr warmup steps cannot be negative");
  const bool needs_total = options_.name != "constant" && options_.name != "constant_with_warmup";
  if (needs_total && options_.training_steps <= 0)
    throw Error(ErrorKind::InvalidArgument, "the " + options_.name + " lr scheduler needs the number of training steps");
  if (options_.name == "polynomial" && !(options_.base_lr > options_.lr_end))
    throw Error(ErrorKind::InvalidArgument, "the polynomial lr scheduler needs a learning rate above its end value " +
                                                std::to_string(options_.lr_end));
}

double LrSchedule::factor(int64_t step) const {
  const auto& o = options_;
  const double s = static_cast<double>(step);
  const double warmup = static_cast<double>(o.warmup_steps);
  if (o.name == "constant") return 1.0;
  // Linear warmup from 0, the same in every diffusers schedule.
  if (step < o.warmup_steps) return s / std::max(1.0, warmup);
  if (o.name == "constant_with_warmup") return 1.0;
  const double total = static_cast<double>(o.training_steps);
  const double decay_steps = std::max(1.0, total - warmup);
  const double progress = (s - warmup) / decay_steps;
  if (o.name == "linear") return std::max(0.0, (total - s) / decay_steps);
  if (o.name == "cosine") return std::max(0.0, 0.5 * (1.0 + std::cos(kPi * 0.5 * 2.0 * progress)));  // num_cycles 0.5
  if (o.name == "cosine_with_restarts") {
    if (progress >= 1.0) return 0.0;
    return std::max(0.0, 0.5 * (1.0 + std::cos(kPi * std::fmod(static_cast<double>(o.num_cycles) * progress, 1.0))));
  }
  // polynomial: decays from base_lr to lr_end, then stays at lr_end.
  if (step > o.training_steps) return o.lr_end / o.base_lr;
  const double pct_remaining = 1.0 - (s - warmup) / (total - warmup);
  const double decayed = (o.base_lr - o.lr_end) * std::pow(pct_remaining, o.power) + o.lr_end;
  return decayed / o.base_lr;
}

int64_t resolve_warmup_steps(double warmup, int64_t training_steps) {
  if (warmup < 0) throw Error(ErrorKind::InvalidArgument, "lr warmup cannot be negative");
  // kohya: int(ratio · steps), truncating.
  if (warmup < 1.0 && warmup > 0) return static_cast<int64_t>(warmup * static_cast<double>(training_steps));
  return static_cast<int64_t>(warmup);
}

}  // namespace kiln::engine::lora
