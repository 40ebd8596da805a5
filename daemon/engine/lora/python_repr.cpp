#include "engine/lora/python_repr.h"

#include <charconv>
#include <cmath>

namespace kiln::engine::lora {

std::string python_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const double a = std::abs(v);
  // Python's repr: shortest round-trip digits, positional for 1e-4 ≤ |v| < 1e16, else exponent.
  const bool positional = a == 0 || (a >= 1e-4 && a < 1e16);
  auto res = std::to_chars(buf, buf + sizeof(buf), v, positional ? std::chars_format::fixed : std::chars_format::scientific);
  std::string s(buf, res.ptr);
  if (positional && s.find('.') == std::string::npos) s += ".0";
  return s;
}

}  // namespace kiln::engine::lora
