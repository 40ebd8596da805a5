#pragma once
// Numbers spelled as Python prints them, for metadata that Python tools wrote first (kohya writes
// str(float) into its ss_* keys). Plain C++, no LibTorch.
#include <string>

namespace kiln::engine::lora {

// Python's repr(float): "2.0", "0.0001", "1e-05", "nan", "inf".
std::string python_float(double v);

}  // namespace kiln::engine::lora
