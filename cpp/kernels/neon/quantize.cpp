// AArch64 Advanced SIMD (NEON) quantization kernels. Built only for aarch64 targets, where NEON
// is part of the base architecture (no extra flags); reached when the dispatcher has set
// cpu_features().neon. Semantics: cpp/kernels/scalar/quantize.cpp, matched bit for bit for every
// input (tests/neon/ runs both on the same inputs under qemu-aarch64 and compares the bits).
//
// Shape of every kernel: a vector loop over whole blocks, then the last partial block copied
// into a small stack buffer padded with harmless values, run through the same block code, and
// copied back; no kernel touches memory outside [0, n). `ss` is 0 (one scale for the segment,
// broadcast once) or 1 (a scale per element).
//
// Instruction choices that keep the bits of the scalar code:
//  - vdivq_f32 is an IEEE division (the contract forbids a reciprocal multiply);
//  - clamping uses compare + select, like the scalar `v >= lo ? v : lo`: FMAX/FMIN would return
//    the NaN instead of lo;
//  - vcvtnq_s32_f32 (FCVTNS) rounds to nearest with ties to even whatever FPCR's rounding mode,
//    and the clamped value is in int32 range;
//  - Linux runs user code with FPCR.FZ = 0, so subnormal inputs and scales are not flushed.
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "lowbit/kernels.h"

namespace lowbit {
namespace neon {
namespace {

// ---------------------------------------------------------------------------------------------
// Scales and zero points: broadcast once (ss == 0) or loaded per element (ss == 1).

struct Consts {
  int32x4_t qmin, qmax;
  float32x4_t s0, lo0, hi0;  // ss == 0 only
  int32x4_t z0;
};

inline Consts make_consts(const float* s, const int32_t* zp, int32_t qmin, int32_t qmax,
                          bool per) {
  Consts c;
  c.qmin = vdupq_n_s32(qmin);
  c.qmax = vdupq_n_s32(qmax);
  if (per) {
    c.s0 = c.lo0 = c.hi0 = vdupq_n_f32(0.0f);
    c.z0 = vdupq_n_s32(0);
  } else {
    const int32_t z = zp[0];  // callers check n > 0 first
    c.s0 = vdupq_n_f32(s[0]);
    c.lo0 = vdupq_n_f32(float(qmin - z));  // the scalar float(qmin - z)
    c.hi0 = vdupq_n_f32(float(qmax - z));
    c.z0 = vdupq_n_s32(z);
  }
  return c;
}

// Four elements' scale, zero point and clamp bounds float(qmin - zp), float(qmax - zp).
template <bool kPer>
struct Quad {
  float32x4_t s, lo, hi;
  int32x4_t z;
  Quad(const Consts& c, const float* s_, const int32_t* zp_) {
    if (kPer) {
      s = vld1q_f32(s_);
      z = vld1q_s32(zp_);
      lo = vcvtq_f32_s32(vsubq_s32(c.qmin, z));
      hi = vcvtq_f32_s32(vsubq_s32(c.qmax, z));
    } else {
      s = c.s0, lo = c.lo0, hi = c.hi0, z = c.z0;
    }
  }
};

// rne(clamp(x / s, lo, hi)) as int32; ORs NaN quotients into `nan`. Equal to the scalar
// quantize_one: a NaN quotient fails `v >= lo` and becomes lo; +-inf land on lo / hi.
inline int32x4_t quant_round(float32x4_t x, float32x4_t s, float32x4_t lo, float32x4_t hi,
                             uint32x4_t& nan) {
  float32x4_t v = vdivq_f32(x, s);
  nan = vorrq_u32(nan, vmvnq_u32(vceqq_f32(v, v)));
  v = vbslq_f32(vcgeq_f32(v, lo), v, lo);
  v = vbslq_f32(vcgtq_f32(v, hi), hi, v);
  return vcvtnq_s32_f32(v);
}

inline bool any(uint32x4_t m) { return vmaxvq_u32(m) != 0; }

// clamp(rne(x/s) + zp, qmin, qmax) of 16 elements, as their 16 low bytes (the scalar
// static_cast<uint8_t>(q)): XTN keeps the low half of each lane, without saturation.
template <bool kPer>
inline uint8x16_t quant16(const Consts& c, const float* x, const float* s, const int32_t* zp,
                          uint32x4_t& nan) {
  int16x4_t h[4];
  for (int j = 0; j < 4; ++j) {
    const Quad<kPer> p(c, s + 4 * j, zp + 4 * j);
    const int32x4_t q = vaddq_s32(quant_round(vld1q_f32(x + 4 * j), p.s, p.lo, p.hi, nan), p.z);
    h[j] = vmovn_s32(q);
  }
  const int8x8_t lo = vmovn_s16(vcombine_s16(h[0], h[1]));
  const int8x8_t hi = vmovn_s16(vcombine_s16(h[2], h[3]));
  return vreinterpretq_u8_s8(vcombine_s8(lo, hi));
}

// The last n < 16 elements: copied into padded buffers (x = 0, s = 1, zp = 0), run through the
// block code; returns the 16 result bytes (only the first n are meaningful).
template <bool kPer>
inline uint8x16_t quant16_tail(const Consts& c, const float* x, const float* s,
                               const int32_t* zp, int64_t n, uint32x4_t& nan) {
  float xb[16] = {}, sb[16];
  int32_t zb[16] = {};
  std::memcpy(xb, x, static_cast<size_t>(n) * sizeof(float));
  if (kPer) {
    for (int j = 0; j < 16; ++j) sb[j] = 1.0f;
    std::memcpy(sb, s, static_cast<size_t>(n) * sizeof(float));
    std::memcpy(zb, zp, static_cast<size_t>(n) * sizeof(int32_t));
  }
  return quant16<kPer>(c, xb, sb, zb, nan);
}

// ---------------------------------------------------------------------------------------------
// quantize_f32_q8 / quantize_f32_q4p

template <bool kPer>
bool quantize_q8_impl(const float* x, int64_t n, const float* s, const int32_t* zp,
                      int32_t qmin, int32_t qmax, uint8_t* out) {
  const Consts c = make_consts(s, zp, qmin, qmax, kPer);
  uint32x4_t nan = vdupq_n_u32(0);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    vst1q_u8(out + i, quant16<kPer>(c, x + i, kPer ? s + i : s, kPer ? zp + i : zp, nan));
  if (i < n) {
    uint8_t r[16];
    vst1q_u8(r, quant16_tail<kPer>(c, x + i, kPer ? s + i : s, kPer ? zp + i : zp, n - i, nan));
    std::memcpy(out + i, r, static_cast<size_t>(n - i));
  }
  return any(nan);
}

bool quantize_f32_q8(const float* x, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                     int32_t qmin, int32_t qmax, uint8_t* out) {
  if (n <= 0) return false;
  return ss == 0 ? quantize_q8_impl<false>(x, n, s, zp, qmin, qmax, out)
                 : quantize_q8_impl<true>(x, n, s, zp, qmin, qmax, out);
}

// 16 quantized bytes -> 8 packed bytes: (q[2j] & 15) | (q[2j+1] & 15) << 4.
inline uint8x8_t pack_pairs(uint8x16_t q) {
  const uint8x16_t even = vuzp1q_u8(q, q), odd = vuzp2q_u8(q, q);
  const uint8x16_t b = vorrq_u8(vandq_u8(even, vdupq_n_u8(15)), vshlq_n_u8(odd, 4));
  return vget_low_u8(b);
}

template <bool kPer>
bool quantize_q4p_impl(const float* x, int64_t n, const float* s, const int32_t* zp,
                       int32_t qmin, int32_t qmax, uint8_t* out) {
  const Consts c = make_consts(s, zp, qmin, qmax, kPer);
  uint32x4_t nan = vdupq_n_u32(0);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    vst1_u8(out + i / 2,
            pack_pairs(quant16<kPer>(c, x + i, kPer ? s + i : s, kPer ? zp + i : zp, nan)));
  if (i < n) {
    const int64_t rem = n - i;
    uint8_t r[8];
    vst1_u8(r, pack_pairs(quant16_tail<kPer>(c, x + i, kPer ? s + i : s, kPer ? zp + i : zp,
                                             rem, nan)));
    if (rem & 1) r[rem / 2] &= 15;  // an odd n leaves a zero high nibble
    std::memcpy(out + i / 2, r, static_cast<size_t>((rem + 1) / 2));
  }
  return any(nan);
}

bool quantize_f32_q4p(const float* x, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                      int32_t qmin, int32_t qmax, uint8_t* out) {
  if (n <= 0) return false;
  return ss == 0 ? quantize_q4p_impl<false>(x, n, s, zp, qmin, qmax, out)
                 : quantize_q4p_impl<true>(x, n, s, zp, qmin, qmax, out);
}

// ---------------------------------------------------------------------------------------------
// fake_quantize_f32 / fake_quantize_grad_f32: four floats a step, a padded buffer for the rest.

// float(rne(clamp(x/s))) * s: the integer round trip turns a -0.0 into +0.0, as the scalar
// kernel (and dequantize(quantize())) does.
template <bool kPer>
inline float32x4_t fake4(const Consts& c, const float* x, const float* s, const int32_t* zp,
                         uint32x4_t& nan) {
  const Quad<kPer> p(c, s, zp);
  const int32x4_t r = quant_round(vld1q_f32(x), p.s, p.lo, p.hi, nan);
  return vmulq_f32(vcvtq_f32_s32(r), p.s);
}

// g where lo <= rne(clamp(x/s, lo - 1, hi + 1)) <= hi, else +0.0 (AND with a zero mask).
template <bool kPer>
inline float32x4_t grad4(const Consts& c, const float* x, const float* g, const float* s,
                         const int32_t* zp, uint32x4_t& nan) {
  const Quad<kPer> p(c, s, zp);
  const float32x4_t one = vdupq_n_f32(1.0f);
  const int32x4_t r =
      quant_round(vld1q_f32(x), p.s, vsubq_f32(p.lo, one), vaddq_f32(p.hi, one), nan);
  const float32x4_t rf = vcvtq_f32_s32(r);
  const uint32x4_t in = vandq_u32(vcgeq_f32(rf, p.lo), vcleq_f32(rf, p.hi));
  return vreinterpretq_f32_u32(vandq_u32(in, vreinterpretq_u32_f32(vld1q_f32(g))));
}

template <bool kPer>
bool fake_quantize_impl(const float* x, int64_t n, const float* s, const int32_t* zp,
                        int32_t qmin, int32_t qmax, float* out) {
  const Consts c = make_consts(s, zp, qmin, qmax, kPer);
  uint32x4_t nan = vdupq_n_u32(0);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    vst1q_f32(out + i, fake4<kPer>(c, x + i, kPer ? s + i : s, kPer ? zp + i : zp, nan));
  if (i < n) {
    const size_t rem = static_cast<size_t>(n - i);
    float xb[4] = {}, sb[4] = {1.0f, 1.0f, 1.0f, 1.0f}, r[4];
    int32_t zb[4] = {};
    std::memcpy(xb, x + i, rem * sizeof(float));
    if (kPer) {
      std::memcpy(sb, s + i, rem * sizeof(float));
      std::memcpy(zb, zp + i, rem * sizeof(int32_t));
    }
    vst1q_f32(r, fake4<kPer>(c, xb, sb, zb, nan));
    std::memcpy(out + i, r, rem * sizeof(float));
  }
  return any(nan);
}

bool fake_quantize_f32(const float* x, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                       int32_t qmin, int32_t qmax, float* out) {
  if (n <= 0) return false;
  return ss == 0 ? fake_quantize_impl<false>(x, n, s, zp, qmin, qmax, out)
                 : fake_quantize_impl<true>(x, n, s, zp, qmin, qmax, out);
}

template <bool kPer>
bool fake_quantize_grad_impl(const float* x, const float* g, int64_t n, const float* s,
                             const int32_t* zp, int32_t qmin, int32_t qmax, float* out) {
  const Consts c = make_consts(s, zp, qmin, qmax, kPer);
  uint32x4_t nan = vdupq_n_u32(0);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    vst1q_f32(out + i,
              grad4<kPer>(c, x + i, g + i, kPer ? s + i : s, kPer ? zp + i : zp, nan));
  if (i < n) {
    const size_t rem = static_cast<size_t>(n - i);
    float xb[4] = {}, gb[4] = {}, sb[4] = {1.0f, 1.0f, 1.0f, 1.0f}, r[4];
    int32_t zb[4] = {};
    std::memcpy(xb, x + i, rem * sizeof(float));
    std::memcpy(gb, g + i, rem * sizeof(float));
    if (kPer) {
      std::memcpy(sb, s + i, rem * sizeof(float));
      std::memcpy(zb, zp + i, rem * sizeof(int32_t));
    }
    vst1q_f32(r, grad4<kPer>(c, xb, gb, sb, zb, nan));
    std::memcpy(out + i, r, rem * sizeof(float));
  }
  return any(nan);
}

bool fake_quantize_grad_f32(const float* x, const float* g, int64_t n, const float* s,
                            const int32_t* zp, int64_t ss, int32_t qmin, int32_t qmax,
                            float* out) {
  if (n <= 0) return false;
  return ss == 0 ? fake_quantize_grad_impl<false>(x, g, n, s, zp, qmin, qmax, out)
                 : fake_quantize_grad_impl<true>(x, g, n, s, zp, qmin, qmax, out);
}

// ---------------------------------------------------------------------------------------------
// Dequantization: out = float(int32(q) - zp) * s, lane by lane. 16 elements a block, given as
// 16 int8 lanes (sign-extended for int8 / int4 data) or 16 uint8 lanes.

template <bool kPer, bool kSigned>
inline void deq16(uint8x16_t v, const float* s, const int32_t* zp, float32x4_t s0, int32x4_t z0,
                  float* out) {
  int32x4_t w[4];
  if (kSigned) {
    const int16x8_t a = vmovl_s8(vget_low_s8(vreinterpretq_s8_u8(v)));
    const int16x8_t b = vmovl_s8(vget_high_s8(vreinterpretq_s8_u8(v)));
    w[0] = vmovl_s16(vget_low_s16(a)), w[1] = vmovl_s16(vget_high_s16(a));
    w[2] = vmovl_s16(vget_low_s16(b)), w[3] = vmovl_s16(vget_high_s16(b));
  } else {
    const uint16x8_t a = vmovl_u8(vget_low_u8(v)), b = vmovl_u8(vget_high_u8(v));
    w[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(a)));
    w[1] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(a)));
    w[2] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(b)));
    w[3] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(b)));
  }
  for (int j = 0; j < 4; ++j) {
    const int32x4_t z = kPer ? vld1q_s32(zp + 4 * j) : z0;
    const float32x4_t sc = kPer ? vld1q_f32(s + 4 * j) : s0;
    vst1q_f32(out + 4 * j, vmulq_f32(vcvtq_f32_s32(vsubq_s32(w[j], z)), sc));
  }
}

// Runs deq16 over n elements whose 16-lane blocks `load(i, buf)` supplies (buf: a 16-byte
// scratch the loader may fill for a partial block); the last partial block goes through buffers.
template <bool kPer, bool kSigned, class Load>
void deq_run(int64_t n, const float* s, const int32_t* zp, float* out, Load&& load) {
  const float32x4_t s0 = kPer ? vdupq_n_f32(0.0f) : vdupq_n_f32(s[0]);
  const int32x4_t z0 = kPer ? vdupq_n_s32(0) : vdupq_n_s32(zp[0]);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    deq16<kPer, kSigned>(load(i, 16), kPer ? s + i : s, kPer ? zp + i : zp, s0, z0, out + i);
  if (i < n) {
    const size_t rem = static_cast<size_t>(n - i);
    float sb[16], r[16];
    int32_t zb[16] = {};
    for (int j = 0; j < 16; ++j) sb[j] = 1.0f;
    if (kPer) {
      std::memcpy(sb, s + i, rem * sizeof(float));
      std::memcpy(zb, zp + i, rem * sizeof(int32_t));
    }
    deq16<kPer, kSigned>(load(i, static_cast<int64_t>(rem)), sb, zb, s0, z0, r);
    std::memcpy(out + i, r, rem * sizeof(float));
  }
}

// Bytes q[i .. i+k) (k <= 16) as 16 lanes, zero past k, never reading past q + i + k.
inline uint8x16_t load_bytes(const uint8_t* q, int64_t k) {
  if (k == 16) return vld1q_u8(q);
  uint8_t b[16] = {};
  std::memcpy(b, q, static_cast<size_t>(k));
  return vld1q_u8(b);
}

template <bool kSigned>
void dequantize_q8(const uint8_t* q, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                   float* out) {
  if (n <= 0) return;
  auto load = [q](int64_t i, int64_t k) { return load_bytes(q + i, k); };
  if (ss == 0)
    deq_run<false, kSigned>(n, s, zp, out, load);
  else
    deq_run<true, kSigned>(n, s, zp, out, load);
}

void dequantize_s8_f32(const int8_t* q, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                       float* out) {
  dequantize_q8<true>(reinterpret_cast<const uint8_t*>(q), n, s, zp, ss, out);
}

void dequantize_u8_f32(const uint8_t* q, int64_t n, const float* s, const int32_t* zp,
                       int64_t ss, float* out) {
  dequantize_q8<false>(q, n, s, zp, ss, out);
}

// 8 packed bytes -> 16 nibbles in element order (low nibble first); signed: (v ^ 8) - 8
// sign-extends a nibble within its byte.
template <bool kSigned>
inline uint8x16_t nibbles16(uint8x8_t b) {
  const uint8x8_t lo = vand_u8(b, vdup_n_u8(15)), hi = vshr_n_u8(b, 4);
  uint8x16_t v = vcombine_u8(vzip1_u8(lo, hi), vzip2_u8(lo, hi));
  if (kSigned) v = vsubq_u8(veorq_u8(v, vdupq_n_u8(8)), vdupq_n_u8(8));
  return v;
}

// Packed bytes p[i/2 ..] for elements [i, i + k) (i even, k <= 16), as 16 nibble lanes.
template <bool kSigned>
inline uint8x16_t load_nibbles(const uint8_t* p, int64_t i, int64_t k) {
  if (k == 16) return nibbles16<kSigned>(vld1_u8(p + i / 2));
  uint8_t b[8] = {};
  std::memcpy(b, p + i / 2, static_cast<size_t>((k + 1) / 2));
  return nibbles16<kSigned>(vld1_u8(b));
}

template <bool kSigned>
void dequantize_p4(const uint8_t* p, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                   float* out) {
  if (n <= 0) return;
  auto load = [p](int64_t i, int64_t k) { return load_nibbles<kSigned>(p, i, k); };
  if (ss == 0)
    deq_run<false, true>(n, s, zp, out, load);  // nibbles are 0..15 or sign-extended: int8 lanes
  else
    deq_run<true, true>(n, s, zp, out, load);
}

void dequantize_s4p_f32(const uint8_t* p, int64_t n, const float* s, const int32_t* zp,
                        int64_t ss, float* out) {
  dequantize_p4<true>(p, n, s, zp, ss, out);
}

void dequantize_u4p_f32(const uint8_t* p, int64_t n, const float* s, const int32_t* zp,
                        int64_t ss, float* out) {
  dequantize_p4<false>(p, n, s, zp, ss, out);
}

// ---------------------------------------------------------------------------------------------
// minmax_f32
//
// Lane by lane, vbslq(v < m, v, m) is the scalar `if (v < m) m = v` (a NaN v fails the test and
// is skipped; a NaN m stays). ss == 1 is therefore the scalar loop four lanes at a time. For
// ss == 0 each lane sees its elements in index order; ignoring the sign of zero, the minimum
// over lanes is the scalar answer. Only when that minimum is a zero can the sign differ: then
// the scalar answer is the running value itself if it already was a zero (no element is
// smaller), else the first zero of x (the element that replaced it). Likewise for the maximum.

inline float first_zero(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (x[i] == 0.0f) return x[i];
  return 0.0f;
}

bool minmax_seg(const float* x, int64_t n, float* mn, float* mx) {
  const float m0 = mn[0], M0 = mx[0];
  float32x4_t a = vdupq_n_f32(m0), b = vdupq_n_f32(M0);
  uint32x4_t nan = vdupq_n_u32(0);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t v = vld1q_f32(x + i);
    a = vbslq_f32(vcltq_f32(v, a), v, a);
    b = vbslq_f32(vcgtq_f32(v, b), v, b);
    nan = vorrq_u32(nan, vmvnq_u32(vceqq_f32(v, v)));
  }
  // Lanes hold no NaN unless m0 / M0 is one, and then every lane does: FMINV / FMAXV are exact.
  float rmn = vminvq_f32(a), rmx = vmaxvq_f32(b);
  bool tail_nan = false;
  for (; i < n; ++i) {  // the scalar loop for the last n % 4 elements
    const float v = x[i];
    tail_nan |= v != v;
    if (v < rmn) rmn = v;
    if (v > rmx) rmx = v;
  }
  if (rmn == 0.0f) rmn = m0 == 0.0f ? m0 : first_zero(x, n);
  if (rmx == 0.0f) rmx = M0 == 0.0f ? M0 : first_zero(x, n);
  mn[0] = rmn;
  mx[0] = rmx;
  return any(nan) || tail_nan;
}

bool minmax_elem(const float* x, int64_t n, float* mn, float* mx) {
  uint32x4_t nan = vdupq_n_u32(0);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t v = vld1q_f32(x + i);
    const float32x4_t a = vld1q_f32(mn + i), b = vld1q_f32(mx + i);
    vst1q_f32(mn + i, vbslq_f32(vcltq_f32(v, a), v, a));
    vst1q_f32(mx + i, vbslq_f32(vcgtq_f32(v, b), v, b));
    nan = vorrq_u32(nan, vmvnq_u32(vceqq_f32(v, v)));
  }
  bool tail_nan = false;
  for (; i < n; ++i) {
    const float v = x[i];
    tail_nan |= v != v;
    if (v < mn[i]) mn[i] = v;
    if (v > mx[i]) mx[i] = v;
  }
  return any(nan) || tail_nan;
}

bool minmax_f32(const float* x, int64_t n, int64_t ss, float* mn, float* mx) {
  if (n <= 0) return false;
  return ss == 0 ? minmax_seg(x, n, mn, mx) : minmax_elem(x, n, mn, mx);
}

// ---------------------------------------------------------------------------------------------
// 4-bit packing. A byte v is in range when uint8(v + bias) < 16 (bias 8: int8 -8..7; bias 0:
// uint8 0..15), so OR-ing the biased bytes and testing the high nibble checks a whole block.
// Padded tails use uint8(-bias), which passes the check.

inline bool out_of_range(uint8x16_t acc) { return vmaxvq_u8(vandq_u8(acc, vdupq_n_u8(0xF0))) != 0; }

bool pack_x4(const uint8_t* q, int64_t n, int32_t bias, uint8_t* out) {
  if (n <= 0) return false;
  const uint8x16_t vb = vdupq_n_u8(static_cast<uint8_t>(bias)), m15 = vdupq_n_u8(15);
  uint8x16_t acc = vdupq_n_u8(0);
  int64_t i = 0;
  auto block = [&](const uint8_t* src) {  // 32 values -> 16 bytes
    const uint8x16x2_t v = vld2q_u8(src);  // val[0]: even elements, val[1]: odd ones
    acc = vorrq_u8(acc, vorrq_u8(vaddq_u8(v.val[0], vb), vaddq_u8(v.val[1], vb)));
    return vorrq_u8(vandq_u8(v.val[0], m15), vshlq_n_u8(v.val[1], 4));
  };
  for (; i + 32 <= n; i += 32) vst1q_u8(out + i / 2, block(q + i));
  if (i < n) {
    const int64_t rem = n - i;
    uint8_t buf[32], res[16];
    std::memset(buf, static_cast<uint8_t>(-bias), sizeof buf);
    std::memcpy(buf, q + i, static_cast<size_t>(rem));
    vst1q_u8(res, block(buf));
    if (rem & 1) res[rem / 2] &= 15;  // an odd n leaves a zero high nibble
    std::memcpy(out + i / 2, res, static_cast<size_t>((rem + 1) / 2));
  }
  return out_of_range(acc);
}

bool pack_x4_vert(const uint8_t* lo, const uint8_t* hi, int64_t n, int32_t bias, uint8_t* out) {
  if (n <= 0) return false;
  const uint8x16_t vb = vdupq_n_u8(static_cast<uint8_t>(bias)), m15 = vdupq_n_u8(15);
  uint8x16_t acc = vdupq_n_u8(0);
  auto block = [&](const uint8_t* l, const uint8_t* h) {  // 16 bytes
    const uint8x16_t a = vld1q_u8(l);
    acc = vorrq_u8(acc, vaddq_u8(a, vb));
    if (!h) return vandq_u8(a, m15);
    const uint8x16_t b = vld1q_u8(h);
    acc = vorrq_u8(acc, vaddq_u8(b, vb));
    return vorrq_u8(vandq_u8(a, m15), vshlq_n_u8(b, 4));
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) vst1q_u8(out + i, block(lo + i, hi ? hi + i : nullptr));
  if (i < n) {
    const size_t rem = static_cast<size_t>(n - i);
    uint8_t la[16], ha[16], res[16];
    std::memset(la, static_cast<uint8_t>(-bias), sizeof la);
    std::memset(ha, static_cast<uint8_t>(-bias), sizeof ha);
    std::memcpy(la, lo + i, rem);
    if (hi) std::memcpy(ha, hi + i, rem);
    vst1q_u8(res, block(la, hi ? ha : nullptr));
    std::memcpy(out + i, res, rem);
  }
  return out_of_range(acc);
}

// ---------------------------------------------------------------------------------------------
// 4-bit unpacking.

template <bool kSigned>
void unpack_impl(const uint8_t* p, int64_t n, uint8_t* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) vst1q_u8(out + i, load_nibbles<kSigned>(p, i, 16));
  if (i < n) {
    uint8_t res[16];
    vst1q_u8(res, load_nibbles<kSigned>(p, i, n - i));
    std::memcpy(out + i, res, static_cast<size_t>(n - i));
  }
}

void unpack_s4(const uint8_t* p, int64_t n, uint8_t* out) {
  if (n > 0) unpack_impl<true>(p, n, out);
}

void unpack_u4(const uint8_t* p, int64_t n, uint8_t* out) {
  if (n > 0) unpack_impl<false>(p, n, out);
}

template <bool kSigned>
inline uint8x16_t finish(uint8x16_t v) {
  return kSigned ? vsubq_u8(veorq_u8(v, vdupq_n_u8(8)), vdupq_n_u8(8)) : v;
}

template <bool kSigned>
void unpack_vert_impl(const uint8_t* p, int64_t n, uint8_t* lo, uint8_t* hi) {
  const uint8x16_t m15 = vdupq_n_u8(15);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const uint8x16_t v = vld1q_u8(p + i);
    vst1q_u8(lo + i, finish<kSigned>(vandq_u8(v, m15)));
    if (hi) vst1q_u8(hi + i, finish<kSigned>(vshrq_n_u8(v, 4)));
  }
  if (i < n) {
    const size_t rem = static_cast<size_t>(n - i);
    const uint8x16_t v = load_bytes(p + i, static_cast<int64_t>(rem));
    uint8_t res[16];
    vst1q_u8(res, finish<kSigned>(vandq_u8(v, m15)));
    std::memcpy(lo + i, res, rem);
    if (hi) {
      vst1q_u8(res, finish<kSigned>(vshrq_n_u8(v, 4)));
      std::memcpy(hi + i, res, rem);
    }
  }
}

void unpack_s4_vert(const uint8_t* p, int64_t n, uint8_t* lo, uint8_t* hi) {
  if (n > 0) unpack_vert_impl<true>(p, n, lo, hi);
}

void unpack_u4_vert(const uint8_t* p, int64_t n, uint8_t* lo, uint8_t* hi) {
  if (n > 0) unpack_vert_impl<false>(p, n, lo, hi);
}

}  // namespace

void fill_quantize(KernelTable& t) {
#define LOWBIT_KERNEL(name, type) t.name = name;
#include "lowbit/quantize_kernels.inc"
#undef LOWBIT_KERNEL
}

}  // namespace neon
}  // namespace lowbit
