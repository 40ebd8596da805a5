#pragma once
// Per-operator time and memory of a stretch of engine work, from LibTorch's own profiler, for the
// benchmark programs (`bench_generate --profile`, `bench_train --profile`). Self time is an
// operator's time minus the operators it called, so the rows add up to the wall time.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kiln::engine {

struct OpStat {
  std::string name;  // "aten::mkldnn_convolution", "aten::native_group_norm", …
  int64_t calls = 0;
  double self_ms = 0, total_ms = 0;
  int64_t allocated_bytes = 0;  // CPU tensor memory this operator allocated itself
};

struct OpProfileResult {
  std::vector<OpStat> ops;  // by self time, largest first
  double wall_ms = 0;
  int64_t peak_tensor_bytes = 0;  // highest live CPU tensor memory above the start
};

// Records every operator from construction to stop(). Only one may be active per thread.
class OpProfile {
 public:
  OpProfile();
  ~OpProfile();
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;
  OpProfileResult stop();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

nlohmann::json to_json(const OpProfileResult& result, size_t top = 25);
// A fixed-width table for people: op, calls, self ms, share, total ms, allocated MiB.
std::string format_table(const OpProfileResult& result, size_t top = 25);

}  // namespace kiln::engine
