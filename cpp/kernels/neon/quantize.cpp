// AArch64 Advanced SIMD (NEON) quantization kernels. Built only for aarch64 targets, where NEON
// is part of the base architecture (no extra flags); reached when the dispatcher has set
// cpu_features().neon. The bodies are cpp/kernels/generic/quantize.h over the primitives of
// neon/simd.h; semantics: cpp/kernels/scalar/quantize.cpp, matched bit for bit for every input
// (tests/neon/ runs both on the same inputs under qemu-aarch64 and compares the bits).
#include "lowbit/kernels.h"
#include "neon/simd.h"

namespace lowbit {
namespace neon {
namespace {
#include "generic/quantize.h"
}  // namespace

void fill_quantize(KernelTable& t) {
#define LOWBIT_KERNEL(name, type) t.name = name;
#include "lowbit/quantize_kernels.inc"
#undef LOWBIT_KERNEL
}

}  // namespace neon
}  // namespace lowbit
