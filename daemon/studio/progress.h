#pragma once
// How long studio operations report progress and learn that they should stop. Both are optional:
// an empty function means "nobody is listening" / "never cancelled".
#include <functional>
#include <string>

namespace kiln::studio {

// done of total units finished; message says what is happening in words ("cropping IMG_0012.jpg").
using ProgressFn = std::function<void(int done, int total, const std::string& message)>;
// Returns true when the caller wants the operation to stop; checked between units of work.
using CancelFn = std::function<bool()>;

struct Hooks {
  ProgressFn progress;
  CancelFn cancelled;

  void report(int done, int total, const std::string& message) const {
    if (progress) progress(done, total, message);
  }
  // Throws Error(Cancelled) naming `what` when the caller asked to stop.
  void check(const std::string& what) const;
};

}  // namespace kiln::studio
