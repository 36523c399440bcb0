// AVX2 quantization kernels. Built with -mavx2 -mfma -mf16c -mbmi2 -ffp-contract=off only;
// reached only when the dispatcher has seen AVX2 (+FMA, F16C, BMI2) and OS support for YMM
// state. The bodies are cpp/kernels/generic/quantize.h over the ymm primitives of avx2/simd.h;
// semantics: cpp/kernels/scalar/quantize.cpp, matched bit for bit for every input.
#include "avx2/simd.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace avx2 {
namespace {
#include "generic/quantize.h"
#include "generic/formats.h"
}  // namespace

void fill_quantize(KernelTable& t) {
#define LOWBIT_KERNEL(name, type) t.name = name;
#include "lowbit/quantize_kernels.inc"
#undef LOWBIT_KERNEL
}

void fill_formats(KernelTable& t) {
#define LOWBIT_KERNEL(name, type) t.name = name;
#include "lowbit/formats_kernels.inc"
#undef LOWBIT_KERNEL
}

}  // namespace avx2
}  // namespace lowbit
