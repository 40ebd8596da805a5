#include "engine/op_profile.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <unordered_map>

namespace kiln::engine {

namespace prof = torch::autograd::profiler;

struct OpProfile::State {
  bool running = false;
  std::chrono::steady_clock::time_point start;
};

OpProfile::OpProfile() : state_(std::make_unique<State>()) {
  prof::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU,
                                                                   /*report_input_shapes=*/false,
                                                                   /*profile_memory=*/true));
  state_->running = true;
  state_->start = std::chrono::steady_clock::now();
}

OpProfile::~OpProfile() {
  if (state_ && state_->running) prof::disableProfilerLegacy();
}

OpProfileResult OpProfile::stop() {
  OpProfileResult r;
  if (!state_->running) return r;
  r.wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - state_->start).count();
  const auto lists = prof::disableProfilerLegacy();
  state_->running = false;

  std::map<std::string, OpStat> by_name;
  int64_t live = 0;
  for (const auto& events : lists) {
    // Each thread's events are in order: push, nested pushes and pops, pop. A stack pairs them and
    // takes the children's time out of their parent's.
    struct Open {
      const prof::LegacyEvent* push;
      double child_us;
    };
    std::vector<Open> stack;
    for (const auto& e : events) {
      switch (e.kind()) {
        case prof::EventKind::PushRange:
          stack.push_back({&e, 0.0});
          break;
        case prof::EventKind::PopRange: {
          if (stack.empty()) break;
          const Open open = stack.back();
          stack.pop_back();
          const double us = open.push->cpuElapsedUs(e);
          auto& s = by_name[open.push->name()];
          s.name = open.push->name();
          s.calls += 1;
          s.total_ms += us / 1000.0;
          s.self_ms += (us - open.child_us) / 1000.0;
          if (!stack.empty()) stack.back().child_us += us;
          break;
        }
        case prof::EventKind::MemoryAlloc: {
          if (e.device() != -1) break;  // CPU tensors only
          live += e.cpuMemoryUsage();
          r.peak_tensor_bytes = std::max(r.peak_tensor_bytes, live);
          if (e.cpuMemoryUsage() > 0 && !stack.empty()) by_name[stack.back().push->name()].allocated_bytes += e.cpuMemoryUsage();
          break;
        }
        default:
          break;
      }
    }
  }
  for (auto& [name, s] : by_name)
    if (s.calls > 0) r.ops.push_back(std::move(s));
  std::sort(r.ops.begin(), r.ops.end(), [](const OpStat& a, const OpStat& b) { return a.self_ms > b.self_ms; });
  return r;
}

nlohmann::json to_json(const OpProfileResult& result, size_t top) {
  auto ops = nlohmann::json::array();
  for (size_t i = 0; i < result.ops.size() && i < top; ++i) {
    const auto& s = result.ops[i];
    ops.push_back({{"op", s.name},
                   {"calls", s.calls},
                   {"self_ms", s.self_ms},
                   {"total_ms", s.total_ms},
                   {"allocated_mib", double(s.allocated_bytes) / (1 << 20)}});
  }
  return {{"wall_ms", result.wall_ms}, {"peak_tensor_mib", double(result.peak_tensor_bytes) / (1 << 20)}, {"ops", ops}};
}

std::string format_table(const OpProfileResult& result, size_t top) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-40s %7s %10s %6s %10s %10s\n", "operator", "calls", "self ms", "share",
                "total ms", "alloc MiB");
  out += line;
  for (size_t i = 0; i < result.ops.size() && i < top; ++i) {
    const auto& s = result.ops[i];
    std::snprintf(line, sizeof line, "%-40.40s %7lld %10.1f %5.1f%% %10.1f %10.1f\n", s.name.c_str(),
                  static_cast<long long>(s.calls), s.self_ms, 100.0 * s.self_ms / std::max(1e-9, result.wall_ms),
                  s.total_ms, double(s.allocated_bytes) / (1 << 20));
    out += line;
  }
  std::snprintf(line, sizeof line, "wall %.1f ms, peak tensor memory %.1f MiB\n", result.wall_ms,
                double(result.peak_tensor_bytes) / (1 << 20));
  return out + line;
}

}  // namespace kiln::engine
