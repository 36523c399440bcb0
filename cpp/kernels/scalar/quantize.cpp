// Portable scalar kernels: built with the baseline flags only, reached on every CPU. They are
// the last word on semantics for the SIMD paths: each must match lowbit.reference bit for bit.
#include <cstring>

#include "lowbit/kernels.h"

namespace lowbit {
namespace scalar {
namespace {

// Round half to even without consulting the floating-point environment (std::round rounds
// ties away from zero, std::nearbyint follows the caller's rounding mode). Callers clamp first,
// so |v| < 2^31: truncation is exact to convert, and v - trunc(v) is exact in float.
inline int32_t rne(float v) {
  const int32_t i = static_cast<int32_t>(v);
  const float d = v - static_cast<float>(i);
  const int32_t odd = i & 1;  // branch-free: the comparisons are random on real data
  const int32_t up = (d > 0.5f) | ((d == 0.5f) & odd);
  const int32_t down = (d < -0.5f) | ((d == -0.5f) & odd);
  return i + up - down;
}

// clamp(rne(x/s) + zp, qmin, qmax) - zp == clamp(rne(x/s), qmin - zp, qmax - zp): the bounds
// are integers and rne is monotone, so clamping first gives the same integer and keeps the
// conversion in range; +-inf land on the bounds. A NaN is reported and replaced by lo.
inline int32_t quantize_one(float x, float s, float lo, float hi, bool& nan) {
  float v = x / s;
  nan |= v != v;
  v = v >= lo ? v : lo;  // a NaN fails the comparison and becomes lo
  v = v > hi ? hi : v;
  return rne(v);
}

bool quantize_f32_q8(const float* x, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                     int32_t qmin, int32_t qmax, uint8_t* out) {
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t z = zp[i * ss];
    const int32_t q = quantize_one(x[i], s[i * ss], float(qmin - z), float(qmax - z), nan) + z;
    out[i] = static_cast<uint8_t>(q);
  }
  return nan;
}

bool quantize_f32_q4p(const float* x, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                      int32_t qmin, int32_t qmax, uint8_t* out) {
  bool nan = false;
  for (int64_t i = 0; i < n; i += 2) {
    uint32_t byte = 0;
    for (int64_t j = i; j < i + 2 && j < n; ++j) {
      const int32_t z = zp[j * ss];
      const int32_t q = quantize_one(x[j], s[j * ss], float(qmin - z), float(qmax - z), nan) + z;
      byte |= (static_cast<uint32_t>(q) & 15u) << (4 * (j - i));
    }
    out[i / 2] = static_cast<uint8_t>(byte);
  }
  return nan;
}

bool fake_quantize_f32(const float* x, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                       int32_t qmin, int32_t qmax, float* out) {
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t z = zp[i * ss];
    const float sc = s[i * ss];
    // The integer round trip turns a -0.0 from rne into +0.0, as dequantize(quantize()) does.
    out[i] = static_cast<float>(quantize_one(x[i], sc, float(qmin - z), float(qmax - z), nan)) * sc;
  }
  return nan;
}

bool fake_quantize_grad_f32(const float* x, const float* g, int64_t n, const float* s,
                            const int32_t* zp, int64_t ss, int32_t qmin, int32_t qmax,
                            float* out) {
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t z = zp[i * ss];
    const float lo = float(qmin - z), hi = float(qmax - z);
    // Clamping to one step outside [lo, hi] keeps in-range answers and makes +-inf finite.
    const float r = static_cast<float>(quantize_one(x[i], s[i * ss], lo - 1.0f, hi + 1.0f, nan));
    out[i] = (r >= lo && r <= hi) ? g[i] : 0.0f;
  }
  return nan;
}

void dequantize_s8_f32(const int8_t* q, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                       float* out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(int32_t(q[i]) - zp[i * ss]) * s[i * ss];
}

void dequantize_u8_f32(const uint8_t* q, int64_t n, const float* s, const int32_t* zp,
                       int64_t ss, float* out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(int32_t(q[i]) - zp[i * ss]) * s[i * ss];
}

inline int32_t nibble(const uint8_t* p, int64_t i) { return (p[i >> 1] >> (4 * (i & 1))) & 15; }
inline int32_t sext4(int32_t v) { return (v ^ 8) - 8; }

void dequantize_s4p_f32(const uint8_t* p, int64_t n, const float* s, const int32_t* zp,
                        int64_t ss, float* out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(sext4(nibble(p, i)) - zp[i * ss]) * s[i * ss];
}

void dequantize_u4p_f32(const uint8_t* p, int64_t n, const float* s, const int32_t* zp,
                        int64_t ss, float* out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(nibble(p, i) - zp[i * ss]) * s[i * ss];
}

bool minmax_f32(const float* x, int64_t n, int64_t ss, float* mn, float* mx) {
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    nan |= v != v;
    if (v < mn[i * ss]) mn[i * ss] = v;
    if (v > mx[i * ss]) mx[i * ss] = v;
  }
  return nan;
}

// (v + bias) & 0xff < 16 checks -8..7 (bias 8, int8 bytes) or 0..15 (bias 0, uint8 bytes).
inline bool bad4(uint8_t v, int32_t bias) { return uint8_t(v + bias) >= 16; }

bool pack_x4(const uint8_t* q, int64_t n, int32_t bias, uint8_t* out) {
  bool bad = false;
  for (int64_t i = 0; i + 1 < n; i += 2) {
    bad |= bad4(q[i], bias) | bad4(q[i + 1], bias);
    out[i / 2] = uint8_t((q[i] & 15) | (q[i + 1] << 4));
  }
  if (n & 1) {
    bad |= bad4(q[n - 1], bias);
    out[n / 2] = q[n - 1] & 15;
  }
  return bad;
}

bool pack_x4_vert(const uint8_t* lo, const uint8_t* hi, int64_t n, int32_t bias, uint8_t* out) {
  bool bad = false;
  for (int64_t i = 0; i < n; ++i) {
    bad |= bad4(lo[i], bias);
    uint8_t b = lo[i] & 15;
    if (hi) {
      bad |= bad4(hi[i], bias);
      b = uint8_t(b | (hi[i] << 4));
    }
    out[i] = b;
  }
  return bad;
}

void unpack_s4(const uint8_t* p, int64_t n, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = uint8_t(sext4(nibble(p, i)));
}

void unpack_u4(const uint8_t* p, int64_t n, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = uint8_t(nibble(p, i));
}

void unpack_s4_vert(const uint8_t* p, int64_t n, uint8_t* lo, uint8_t* hi) {
  for (int64_t i = 0; i < n; ++i) {
    lo[i] = uint8_t(sext4(p[i] & 15));
    if (hi) hi[i] = uint8_t(sext4(p[i] >> 4));
  }
}

void unpack_u4_vert(const uint8_t* p, int64_t n, uint8_t* lo, uint8_t* hi) {
  for (int64_t i = 0; i < n; ++i) {
    lo[i] = p[i] & 15;
    if (hi) hi[i] = p[i] >> 4;
  }
}

}  // namespace

void fill_quantize(KernelTable& t) {
#define LOWBIT_KERNEL(name, type) t.name = name;
#include "lowbit/quantize_kernels.inc"
#undef LOWBIT_KERNEL
}

}  // namespace scalar
}  // namespace lowbit
