// Drivers of the quantization kernels: split an array into segments of one granularity, and the
// segments over the thread pool. Python validates everything and hands over C-contiguous data.
#pragma once
#include <cstdint>

#include "lowbit/kernels.h"

namespace lowbit {

// x is viewed as C-contiguous (outer, L, inner); `g` consecutive elements along L share a scale.
// The scale (and zero point) of element (o, l, i) is s[o*so + (l/g)*sg + i*si].
//   per-tensor: outer=1, L=size, inner=1, g=L, so=sg=si=0
//   per-axis a: g=1, so=0, sg=1, si=0
//   per-group : g, so=ceil(L/g)*inner, sg=inner, si=1
struct Layout {
  int64_t outer = 1, L = 0, inner = 1, g = 1, so = 0, sg = 0, si = 0;
  int64_t size() const { return outer * L * inner; }
};

// Each returns true when x holds a NaN (out is then unspecified). Packed variants need inner == 1
// (4-bit pairs along the last axis, rows of ceil(L/2) bytes) and g == 1, g >= L or g even.
bool quantize(const float* x, const Layout& lay, const float* s, const int32_t* zp, int32_t qmin,
              int32_t qmax, bool packed, uint8_t* out);
bool fake_quantize(const float* x, const Layout& lay, const float* s, const int32_t* zp,
                   int32_t qmin, int32_t qmax, float* out);
bool fake_quantize_grad(const float* x, const float* grad, const Layout& lay, const float* s,
                        const int32_t* zp, int32_t qmin, int32_t qmax, float* out);
// kind: 0 int8, 1 uint8, 2 packed int4, 3 packed uint4.
void dequantize(const uint8_t* q, int kind, const Layout& lay, const float* s, const int32_t* zp,
                float* out);
// The formats family: codes of an element format (FormatSpec, lowbit/kernels.h), one a byte or
// packed (4-bit codes, as quantize's packed), and their values. encode returns true on a NaN.
bool encode(const float* x, const Layout& lay, const float* s, const FormatSpec& f, bool packed,
            uint8_t* out);
void decode(const uint8_t* c, const Layout& lay, const float* s, const FormatSpec& f, bool packed,
            float* out);
// The weight-only product of lb.linear on rows of codes (GemvArgs, kernels.h), any m: rows of W
// split over the threads, activation rows four at a time.
void gemv(const GemvArgs& a);
// mn/mx hold one slot per scale entry, initialised by the caller (+inf / -inf).
bool minmax(const float* x, const Layout& lay, int64_t nslots, float* mn, float* mx);

// q viewed as (outer, L, inner) bytes, packed along L into (outer, ceil(L/2), inner).
// bias 8: int4 values; 0: uint4. Returns true if a value is out of range.
bool pack_int4(const uint8_t* q, int64_t outer, int64_t L, int64_t inner, int32_t bias,
               uint8_t* out);
// p viewed as (outer, ceil(n/2), inner) into (outer, n, inner).
void unpack_int4(const uint8_t* p, int64_t outer, int64_t n, int64_t inner, bool is_signed,
                 uint8_t* out);

}  // namespace lowbit
