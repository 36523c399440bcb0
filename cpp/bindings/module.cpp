#include "bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "lowbit compiled kernels (private; use the lowbit package)";
  lowbit_bindings::register_runtime(m);
  lowbit_bindings::register_quantize(m);
  lowbit_bindings::register_gemm(m);
  lowbit_bindings::register_linear(m);
}
