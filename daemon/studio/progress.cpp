#include "studio/progress.h"

#include "studio/error.h"

namespace kiln::studio {

void Hooks::check(const std::string& what) const {
  if (cancelled && cancelled()) throw Error(ErrorKind::Cancelled, what + " was cancelled");
}

}  // namespace kiln::studio
