#pragma once
// Learning-rate schedules as kohya's get_scheduler_fix builds them from diffusers'
// optimization.py: a factor on each parameter group's base lr, evaluated at the number of
// optimizer steps taken so far (LambdaLR: the first step uses factor(0)).
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::engine::lora {

struct LrScheduleOptions {
  // kohya --lr_scheduler: "constant", "constant_with_warmup", "linear", "cosine",
  // "cosine_with_restarts", "polynomial".
  std::string name = "constant";
  int64_t warmup_steps = 0;     // --lr_warmup_steps (already resolved if given as a ratio)
  int64_t training_steps = 0;   // --max_train_steps
  int64_t num_cycles = 1;       // --lr_scheduler_num_cycles (cosine_with_restarts)
  double power = 1.0;           // --lr_scheduler_power (polynomial)
  double lr_end = 1e-7;         // diffusers' polynomial default; kohya does not change it
  double base_lr = 0;           // polynomial: the optimizer's default lr (kohya --learning_rate)
};

class LrSchedule {
 public:
  // Throws Error(InvalidArgument) for an unknown name or inconsistent numbers.
  explicit LrSchedule(LrScheduleOptions options);
  // The multiplier at `step` optimizer steps done.
  double factor(int64_t step) const;
  const LrScheduleOptions& options() const { return options_; }

  static const std::vector<std::string>& names();

 private:
  LrScheduleOptions options_;
};

// kohya's --lr_warmup_steps may be a ratio of the training steps (a value below 1): int(ratio · steps).
int64_t resolve_warmup_steps(double warmup, int64_t training_steps);

}  // namespace kiln::engine::lora
