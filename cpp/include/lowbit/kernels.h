// Kernel signatures shared by every ISA. Plain declarations only: nothing here may be inlined
// into an ISA translation unit (see google/ruy path.h on ODR and per-ISA symbols).
#pragma once
#include <cstdint>

namespace lowbit {

// q = clamp(rne(x[i] / s[i*ss]) + zp[i*ss], qmin, qmax) for i < n, stored as one byte
// (int8 and uint8 share the low byte of the int32). Returns true if any x[i] is NaN; the
// output is then unspecified (callers write to a buffer of their own first).
using QuantizeQ8Fn = bool (*)(const float* x, int64_t n, const float* s, const int32_t* zp,
                              int64_t ss, int32_t qmin, int32_t qmax, uint8_t* out);
// dequantize(quantize(x)) in float32: float(clamp(rne(x/s), qmin-zp, qmax-zp)) * s.
using FakeQuantizeFn = bool (*)(const float* x, int64_t n, const float* s, const int32_t* zp,
                                int64_t ss, int32_t qmin, int32_t qmax, float* out);
// Straight-through estimator: g[i] where qmin <= rne(x/s)+zp <= qmax, else +0.0f.
using FakeQuantizeGradFn = bool (*)(const float* x, const float* g, int64_t n, const float* s,
                                    const int32_t* zp, int64_t ss, int32_t qmin, int32_t qmax,
                                    float* out);
// out[i] = float(int32(q[i]) - zp[i*ss]) * s[i*ss]
using DequantizeS8Fn = void (*)(const int8_t* q, int64_t n, const float* s, const int32_t* zp,
                                int64_t ss, float* out);
using DequantizeU8Fn = void (*)(const uint8_t* q, int64_t n, const float* s, const int32_t* zp,
                                int64_t ss, float* out);
// Packed 4-bit input: element i is nibble (i & 1) of byte i / 2, low nibble first.
using DequantizeP4Fn = void (*)(const uint8_t* p, int64_t n, const float* s, const int32_t* zp,
                                int64_t ss, float* out);
// ss == 0: mn[0] = min(mn[0], x[0..n)), mx[0] likewise. ss == 1: mn[i] = min(mn[i], x[i]).
// Returns true if any x[i] is NaN.
using MinMaxFn = bool (*)(const float* x, int64_t n, int64_t ss, float* mn, float* mx);
// out[i/2] = (q[i] & 15) | (q[i+1] & 15) << 4 for even i < n; an odd n leaves a zero high nibble.
// bias is 8 for int4 input (valid: -8..7), 0 for uint4 (valid: 0..15). Returns true if any
// value is out of range; the output is then unspecified.
using PackFn = bool (*)(const uint8_t* q, int64_t n, int32_t bias, uint8_t* out);
// out[i] = (lo[i] & 15) | (hi[i] & 15) << 4; hi == nullptr gives a zero high nibble.
using PackVertFn = bool (*)(const uint8_t* lo, const uint8_t* hi, int64_t n, int32_t bias,
                            uint8_t* out);
// out[i] = nibble i of p (i < n), sign-extended (s4) or zero-extended (u4).
using UnpackFn = void (*)(const uint8_t* p, int64_t n, uint8_t* out);
// lo[i] = low nibble of p[i], hi[i] = high nibble; hi == nullptr skips it.
using UnpackVertFn = void (*)(const uint8_t* p, int64_t n, uint8_t* lo, uint8_t* hi);

struct KernelTable {
#define LOWBIT_KERNEL(name, type) type name;
#include "lowbit/kernel_list.inc"
#undef LOWBIT_KERNEL
};

// Each ISA overrides the slots it improves; scalar fills every slot.
#define LOWBIT_DECLARE_ISA(isa)        \
  namespace isa {                      \
  void fill_quantize(KernelTable& t);  \
  void fill_gemm(KernelTable& t);      \
  }
LOWBIT_DECLARE_ISA(scalar)
LOWBIT_DECLARE_ISA(avx2)
LOWBIT_DECLARE_ISA(avx512)
LOWBIT_DECLARE_ISA(avx512_vnni)
LOWBIT_DECLARE_ISA(neon)
#undef LOWBIT_DECLARE_ISA

}  // namespace lowbit
