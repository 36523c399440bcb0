// Portable scalar kernels of the formats family (lowbit/formats_kernels.inc, FormatSpec in
// lowbit/kernels.h): the semantics every SIMD path matches bit for bit, and what
// lowbit.reference computes in NumPy.
#include <algorithm>
#include <cstring>

#include "lowbit/kernels.h"

namespace lowbit {
namespace scalar {
namespace {

inline uint32_t bits_of(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}
inline float float_of(uint32_t b) {
  float v;
  std::memcpy(&v, &b, 4);
  return v;
}

// 2^e as a float for -126 <= e <= 127.
inline float pow2(int e) { return float_of(static_cast<uint32_t>(e + 127) << 23); }

// Round half to even of 0 <= v < 2^23 without the floating-point environment.
inline uint32_t rne_u(float v) {
  const uint32_t i = static_cast<uint32_t>(v);
  const float d = v - static_cast<float>(i);
  return i + ((d > 0.5f) | ((d == 0.5f) & (i & 1u)));
}

// The code of y in a floating-point format (FormatSpec kind 0). NaN is reported and encoded as
// -maxval (the clamp's lower bound, as the vector paths do).
inline uint32_t encode_fp(float y, const FormatSpec& f, bool& nan) {
  nan |= y != y;
  float c = y >= -f.maxval ? y : -f.maxval;  // a NaN fails the comparison
  c = c > f.maxval ? f.maxval : c;
  const uint32_t b = bits_of(c), sign = b >> 31, mag = b & 0x7FFFFFFFu;
  const float a = float_of(mag);
  uint32_t code;
  if (a < pow2(1 - f.bias)) {
    // the format's subnormals: multiples of 2^(1 - bias - mbits); 2^mbits of them is the
    // smallest normal, which is also its code. The scaling is exact.
    code = rne_u(a * pow2(f.bias - 1 + f.mbits));
  } else {
    // a float32 normal: its mantissa rounded to mbits bits on the bit pattern (a carry moves into
    // the exponent), then the exponent rebiased
    const int sh = 23 - f.mbits;
    const uint32_t r = mag + ((1u << (sh - 1)) - 1u) + ((mag >> sh) & 1u);
    code = (r >> sh) - (static_cast<uint32_t>(127 - f.bias) << f.mbits);
  }
  return code | sign << f.sign_bit;
}

// The number of thresholds below y (thr sorted): a binary search, the same count as a linear one.
inline uint32_t encode_thr(float y, const FormatSpec& f, bool& nan) {
  nan |= y != y;
  int lo = 0, hi = f.nthr;  // thr[0 .. lo) < y, thr[hi ..) !< y
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (f.thr[mid] < y)
      lo = mid + 1;
    else
      hi = mid;
  }
  return static_cast<uint32_t>(lo);
}

inline uint32_t encode_one(float x, float s, const FormatSpec& f, bool& nan) {
  const float y = x / s;
  return f.kind == 0 ? encode_fp(y, f, nan) : encode_thr(y, f, nan);
}

// The scale index of element i: per element (ss), per group (f.group) or one.
inline int64_t sidx(int64_t i, int64_t ss, const FormatSpec& f) {
  return f.group ? i / f.group : i * ss;
}

bool encode_f32_u8(const float* x, int64_t n, const float* s, int64_t ss, const FormatSpec& f,
                   uint8_t* out) {
  bool nan = false;
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<uint8_t>(encode_one(x[i], s[sidx(i, ss, f)], f, nan));
  return nan;
}

bool encode_f32_p4(const float* x, int64_t n, const float* s, int64_t ss, const FormatSpec& f,
                   uint8_t* out) {
  bool nan = false;
  for (int64_t i = 0; i < n; i += 2) {
    uint32_t byte = encode_one(x[i], s[sidx(i, ss, f)], f, nan) & 15u;
    if (i + 1 < n) byte |= (encode_one(x[i + 1], s[sidx(i + 1, ss, f)], f, nan) & 15u) << 4;
    out[i / 2] = static_cast<uint8_t>(byte);
  }
  return nan;
}

void decode_u8_f32(const uint8_t* c, int64_t n, const float* s, int64_t ss, const FormatSpec& f,
                   float* out) {
  const uint32_t mask = static_cast<uint32_t>(f.ntable - 1);
  for (int64_t i = 0; i < n; ++i) out[i] = f.table[c[i] & mask] * s[sidx(i, ss, f)];
}

void decode_p4_f32(const uint8_t* c, int64_t n, const float* s, int64_t ss, const FormatSpec& f,
                   float* out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = f.table[(c[i / 2] >> (4 * (i & 1))) & 15u] * s[sidx(i, ss, f)];
}

// The value of code c of row r (GemvArgs): fp8 by its bits, else the row's table.
inline float gemv_value(const GemvArgs& a, int64_t r, uint32_t c) {
  const FormatSpec& f = a.f;
  if (f.kind == 0 && a.code_bits == 8) {
    const uint32_t b = (c & 0x7Fu) << (23 - f.mbits) | (c & 0x80u) << 24;
    return float_of(b) * pow2(127 - f.bias);
  }
  return f.table[r * f.table_stride + (c & static_cast<uint32_t>(f.ntable - 1))];
}

void gemv_f32(const GemvArgs& a) {
  const int64_t ngroups = a.g >= a.k ? 1 : (a.k + a.g - 1) / a.g;
  const int64_t g = a.g >= a.k ? a.k : a.g;
  for (int64_t r = 0; r < a.rows; ++r) {
    const uint8_t* w = a.w + r * a.ldw;
    for (int i = 0; i < a.m; ++i) {
      const float* x = a.x + i * a.ldx;
      float total = 0.0f;
      for (int64_t j = 0; j < ngroups; ++j) {
        float part = 0.0f;
        for (int64_t kk = j * g; kk < std::min(a.k, (j + 1) * g); ++kk) {
          const uint32_t c = a.code_bits == 4 ? (w[kk / 2] >> (4 * (kk & 1))) & 15u : w[kk];
          part = part + x[kk] * gemv_value(a, r, c);
        }
        total = total + part * a.s[r * a.s_stride + j];
      }
      a.y[i * a.ldy + r] = a.bias ? total + a.bias[r] : total;
    }
  }
}

void gemv_panel_f32(const GemvArgs& a, int64_t r0, int nr, int64_t k0, int64_t kc, int64_t ldo,
                    float* out) {
  const int64_t g = a.g >= a.k ? a.k : a.g;
  for (int c = 0; c < nr; ++c) {
    const int64_t r = r0 + c;
    for (int64_t kk = 0; kk < kc; ++kk) {
      float v = 0.0f;
      if (r < a.rows) {
        const int64_t k = k0 + kk;
        const uint8_t* w = a.w + r * a.ldw;
        const uint32_t code = a.code_bits == 4 ? (w[k / 2] >> (4 * (k & 1))) & 15u : w[k];
        v = gemv_value(a, r, code) * a.s[r * a.s_stride + k / g];
      }
      out[kk * ldo + c] = v;
    }
  }
}

}  // namespace

void fill_formats(KernelTable& t) {
#define LOWBIT_KERNEL(name, type) t.name = name;
#include "lowbit/formats_kernels.inc"
#undef LOWBIT_KERNEL
}

}  // namespace scalar
}  // namespace lowbit
