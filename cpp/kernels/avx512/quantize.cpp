// AVX-512 quantization kernels. Built with -mavx512f -mavx512bw -mavx512dq -mavx512vl plus the
// AVX2 flags, -ffp-contract=off; reached only when the dispatcher has seen those features and OS
// support for ZMM and opmask state. In an emulated build (LOWBIT_SIMDE) the same code compiles
// against SIMDe with the AVX2 flags only (avx512/simde_compat.h) and runs on any AVX2 CPU. The
// bodies are cpp/kernels/generic/quantize.h over the zmm primitives of avx512/simd.h;
// semantics: cpp/kernels/scalar/quantize.cpp, matched bit for bit for every input.
#include "avx512/simd.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace avx512 {
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

}  // namespace avx512
}  // namespace lowbit
