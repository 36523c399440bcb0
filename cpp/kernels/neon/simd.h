// AArch64 Advanced SIMD (NEON) vector primitives for the generic kernel bodies
// (cpp/kernels/generic/, whose quantize.h lists the contract): 4 float lanes in a q register,
// masks as all-ones lanes. NEON has no masked loads or stores, so tails copy the active lanes
// through a small stack buffer. Intrinsics only. Included only by translation units of
// cpp/kernels/neon (aarch64, no extra flags).
//
// Instruction choices that keep the bits of the scalar code:
//  - vdivq_f32 is an IEEE division (the contract forbids a reciprocal multiply);
//  - clamping uses compare + select, like the scalar `v >= lo ? v : lo`: FMAX/FMIN would return
//    the NaN instead of lo; min_keep/max_keep likewise select instead of FMIN/FMAX;
//  - vcvtnq_s32_f32 (FCVTNS) and vrndnq_f32 (FRINTN) round to nearest with ties to even
//    whatever FPCR's rounding mode;
//  - Linux runs user code with FPCR.FZ = 0, so subnormal inputs and scales are not flushed.
#pragma once
#include <arm_neon.h>

#include "generic/simd_prelude.h"

namespace lowbit {
namespace neon {
namespace {

constexpr int64_t kLanes = 4;
// No streaming stores: AArch64's non-temporal pair store (STNP) has no intrinsic, so every
// store is a normal one (stream_f below exists for the generic code's name lookup only).
constexpr int64_t kStreamAlign = 0;

using vf = float32x4_t;
using vi = int32x4_t;
using vm = uint32x4_t;
using vu8 = uint8x16_t;
struct vt {  // the first k lanes: the lane mask and the count the buffer copies use
  uint32x4_t m;
  int64_t k;
};

LOWBIT_INLINE vt tail_mask(int64_t k) {
  const uint32x4_t iota = {0, 1, 2, 3};
  return {vcltq_u32(iota, vdupq_n_u32(static_cast<uint32_t>(k))), k};
}
LOWBIT_INLINE vm active(vt t) { return t.m; }

// ---------------------------------------------------------------------------------------------
// Floats and int32

LOWBIT_INLINE vf set1_f(float v) { return vdupq_n_f32(v); }
LOWBIT_INLINE vi set1_i(int32_t v) { return vdupq_n_s32(v); }
LOWBIT_INLINE vf zero_f() { return vdupq_n_f32(0.0f); }
LOWBIT_INLINE vi zero_i() { return vdupq_n_s32(0); }
LOWBIT_INLINE vf load_f(const float* p) { return vld1q_f32(p); }
LOWBIT_INLINE vi load_i(const int32_t* p) { return vld1q_s32(p); }
LOWBIT_INLINE void store_f(float* p, vf v) { vst1q_f32(p, v); }
LOWBIT_INLINE vf load_f(const float* p, vt t) {
  float b[4] = {};
  std::memcpy(b, p, static_cast<size_t>(t.k) * sizeof(float));
  return vld1q_f32(b);
}
LOWBIT_INLINE vi load_i(const int32_t* p, vt t) {
  int32_t b[4] = {};
  std::memcpy(b, p, static_cast<size_t>(t.k) * sizeof(int32_t));
  return vld1q_s32(b);
}
LOWBIT_INLINE void store_f(float* p, vf v, vt t) {
  float b[4];
  vst1q_f32(b, v);
  std::memcpy(p, b, static_cast<size_t>(t.k) * sizeof(float));
}
LOWBIT_INLINE void stream_f(float* p, vf v) { vst1q_f32(p, v); }
LOWBIT_INLINE void stream_fence() {}
// No software prefetch: the NEON kernels never had one, and it has not been measured on NEON
// hardware.
LOWBIT_INLINE void prefetch(const float*) {}

LOWBIT_INLINE vf div_f(vf a, vf b) { return vdivq_f32(a, b); }
LOWBIT_INLINE vf mul_f(vf a, vf b) { return vmulq_f32(a, b); }
LOWBIT_INLINE vf add_f(vf a, vf b) { return vaddq_f32(a, b); }
LOWBIT_INLINE vf sub_f(vf a, vf b) { return vsubq_f32(a, b); }
LOWBIT_INLINE vi add_i(vi a, vi b) { return vaddq_s32(a, b); }
LOWBIT_INLINE vi sub_i(vi a, vi b) { return vsubq_s32(a, b); }
LOWBIT_INLINE vf cvt_f(vi a) { return vcvtq_f32_s32(a); }

LOWBIT_INLINE vf clamp_f(vf v, vf lo, vf hi) {
  v = vbslq_f32(vcgeq_f32(v, lo), v, lo);  // a NaN fails the comparison and becomes lo
  return vbslq_f32(vcgtq_f32(v, hi), hi, v);
}
LOWBIT_INLINE vi rne_i(vf v) { return vcvtnq_s32_f32(v); }
LOWBIT_INLINE vf rne_f(vf v) { return vrndnq_f32(v); }
LOWBIT_INLINE vf min_keep(vf v, vf m) { return vbslq_f32(vcltq_f32(v, m), v, m); }
LOWBIT_INLINE vf max_keep(vf v, vf m) { return vbslq_f32(vcgtq_f32(v, m), v, m); }

LOWBIT_INLINE vm is_nan(vf v) { return vmvnq_u32(vceqq_f32(v, v)); }
LOWBIT_INLINE vm either_nan(vf a, vf b) {
  return vmvnq_u32(vandq_u32(vceqq_f32(a, a), vceqq_f32(b, b)));
}
LOWBIT_INLINE vm ge_f(vf a, vf b) { return vcgeq_f32(a, b); }
LOWBIT_INLINE vm le_f(vf a, vf b) { return vcleq_f32(a, b); }
LOWBIT_INLINE vm eq_f(vf a, vf b) { return vceqq_f32(a, b); }
LOWBIT_INLINE vm no_lanes() { return vdupq_n_u32(0); }
LOWBIT_INLINE vm mask_or(vm a, vm b) { return vorrq_u32(a, b); }
LOWBIT_INLINE vm mask_and(vm a, vm b) { return vandq_u32(a, b); }
LOWBIT_INLINE bool any(vm m) { return vmaxvq_u32(m) != 0; }
LOWBIT_INLINE int first_lane(vm m) {  // 16 bits a lane after the narrow
  const uint64_t b = vget_lane_u64(vreinterpret_u64_u16(vmovn_u32(m)), 0);
  return __builtin_ctzll(b) >> 4;
}
LOWBIT_INLINE vf select_f(vm m, vf a, vf b) { return vbslq_f32(m, a, b); }
LOWBIT_INLINE vf keep_f(vm m, vf v) {
  return vreinterpretq_f32_u32(vandq_u32(m, vreinterpretq_u32_f32(v)));
}
LOWBIT_INLINE vi keep_i(vt t, vi v) { return vandq_s32(v, vreinterpretq_s32_u32(t.m)); }

// Lanes hold no NaN unless all do (a NaN running value): FMINV / FMAXV are exact here.
LOWBIT_INLINE float hmin(vf v) { return vminvq_f32(v); }
LOWBIT_INLINE float hmax(vf v) { return vmaxvq_f32(v); }
LOWBIT_INLINE int zero_signs(vf v) {
  const uint32x4_t z = vceqq_f32(v, vdupq_n_f32(0.0f));
  const uint32x4_t neg = vcltq_s32(vreinterpretq_s32_f32(v), vdupq_n_s32(0));  // sign bits
  return (vmaxvq_u32(vbicq_u32(z, neg)) != 0 ? 1 : 0) |
         (vmaxvq_u32(vandq_u32(z, neg)) != 0 ? 2 : 0);
}

// ---------------------------------------------------------------------------------------------
// int32 -> bytes. XTN keeps the low half of each lane, without saturation: the low byte of an
// int32 after two of them (the scalar static_cast<uint8_t>(q)).

LOWBIT_INLINE uint8x16_t low_bytes16(vi a, vi b, vi c, vi d) {
  const int8x8_t lo = vmovn_s16(vcombine_s16(vmovn_s32(a), vmovn_s32(b)));
  const int8x8_t hi = vmovn_s16(vcombine_s16(vmovn_s32(c), vmovn_s32(d)));
  return vreinterpretq_u8_s8(vcombine_s8(lo, hi));
}
LOWBIT_INLINE uint8x8_t low_bytes4(vi q) {  // bytes 0-3 (repeated in 4-7)
  const int16x4_t h = vmovn_s32(q);
  return vreinterpret_u8_s8(vmovn_s16(vcombine_s16(h, h)));
}
LOWBIT_INLINE void store_q8x4(uint8_t* p, vi a, vi b, vi c, vi d) {
  vst1q_u8(p, low_bytes16(a, b, c, d));
}
LOWBIT_INLINE void store_q8(uint8_t* p, vi q) {
  const uint32_t v = vget_lane_u32(vreinterpret_u32_u8(low_bytes4(q)), 0);
  std::memcpy(p, &v, 4);
}
LOWBIT_INLINE void store_q8(uint8_t* p, vi q, int64_t k) {
  const uint32_t v = vget_lane_u32(vreinterpret_u32_u8(low_bytes4(q)), 0);
  std::memcpy(p, &v, static_cast<size_t>(k));
}

// (q[2j] & 15) | q[2j+1] << 4 from the even and odd bytes.
LOWBIT_INLINE void store_q4x4(uint8_t* p, vi a, vi b, vi c, vi d) {
  const uint8x16_t q = low_bytes16(a, b, c, d);
  const uint8x16_t r = vorrq_u8(vandq_u8(vuzp1q_u8(q, q), vdupq_n_u8(15)), vshlq_n_u8(vuzp2q_u8(q, q), 4));
  vst1_u8(p, vget_low_u8(r));
}
LOWBIT_INLINE uint16_t pack4_nibbles(vi q) {  // four int32 -> two packed bytes
  const uint8x8_t b = low_bytes4(q);
  const uint8x8_t r = vorr_u8(vand_u8(vuzp1_u8(b, b), vdup_n_u8(15)), vshl_n_u8(vuzp2_u8(b, b), 4));
  return vget_lane_u16(vreinterpret_u16_u8(r), 0);
}
LOWBIT_INLINE void store_q4(uint8_t* p, vi q) {
  const uint16_t v = pack4_nibbles(q);
  std::memcpy(p, &v, 2);
}
LOWBIT_INLINE void store_q4(uint8_t* p, vi q, int64_t k) {
  const uint16_t v = pack4_nibbles(q);
  std::memcpy(p, &v, static_cast<size_t>(k));
}

// ---------------------------------------------------------------------------------------------
// Bytes

LOWBIT_INLINE vu8 load_u8(const uint8_t* p) { return vld1q_u8(p); }
LOWBIT_INLINE vu8 load_u8(const uint8_t* p, int64_t k) {
  uint8_t b[16] = {};
  std::memcpy(b, p, static_cast<size_t>(k));
  return vld1q_u8(b);
}
LOWBIT_INLINE vu8 load_u8_half(const uint8_t* p) { return vcombine_u8(vld1_u8(p), vdup_n_u8(0)); }
LOWBIT_INLINE void store_u8(uint8_t* p, vu8 v) { vst1q_u8(p, v); }
LOWBIT_INLINE void store_u8(uint8_t* p, vu8 v, int64_t k) {
  uint8_t b[16];
  vst1q_u8(b, v);
  std::memcpy(p, b, static_cast<size_t>(k));
}
LOWBIT_INLINE vu8 set1_u8(uint8_t v) { return vdupq_n_u8(v); }
LOWBIT_INLINE vu8 zero_u8() { return vdupq_n_u8(0); }
LOWBIT_INLINE vu8 add_u8(vu8 a, vu8 b) { return vaddq_u8(a, b); }
LOWBIT_INLINE vu8 sub_u8(vu8 a, vu8 b) { return vsubq_u8(a, b); }
LOWBIT_INLINE vu8 and_u8(vu8 a, vu8 b) { return vandq_u8(a, b); }
LOWBIT_INLINE vu8 or_u8(vu8 a, vu8 b) { return vorrq_u8(a, b); }
LOWBIT_INLINE vu8 xor_u8(vu8 a, vu8 b) { return veorq_u8(a, b); }
LOWBIT_INLINE bool any_high_nibble(vu8 v) { return vmaxvq_u8(vandq_u8(v, vdupq_n_u8(0xF0))) != 0; }
LOWBIT_INLINE vu8 low_nibbles(vu8 v) { return vandq_u8(v, vdupq_n_u8(15)); }
LOWBIT_INLINE vu8 high_nibbles(vu8 v) { return vshrq_n_u8(v, 4); }

// 32 bytes (a then b) -> 16: UZP1/UZP2 take the even and the odd elements.
LOWBIT_INLINE vu8 pack_pairs(vu8 a, vu8 b) {
  return vorrq_u8(vandq_u8(vuzp1q_u8(a, b), vdupq_n_u8(15)), vshlq_n_u8(vuzp2q_u8(a, b), 4));
}
LOWBIT_INLINE vu8 pack_vert(vu8 lo, vu8 hi) {
  return vorrq_u8(vandq_u8(lo, vdupq_n_u8(15)), vshlq_n_u8(hi, 4));
}
// 16 packed bytes -> 32 nibbles in element order (ZIP interleaves low and high nibbles).
LOWBIT_INLINE void unpack_nibbles(vu8 p, vu8& r0, vu8& r1) {
  const uint8x16_t l = vandq_u8(p, vdupq_n_u8(15)), h = vshrq_n_u8(p, 4);
  r0 = vzip1q_u8(l, h);
  r1 = vzip2q_u8(l, h);
}

// 16 bytes -> four vectors of 4 int32: sign-extended for int8, zero-extended for uint8.
template <bool kSigned>
LOWBIT_INLINE void widen4(vu8 v, vi w[4]) {
  if constexpr (kSigned) {
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
}
template <bool kSigned>
LOWBIT_INLINE void load_widen4(const uint8_t* p, vi w[4]) {
  widen4<kSigned>(vld1q_u8(p), w);
}
// 8 packed bytes (the low half of y) -> 16 int32; signed: (v ^ 8) - 8 sign-extends a nibble
// within its byte.
template <bool kSigned>
LOWBIT_INLINE void widen_nibbles4(vu8 y, vi w[4]) {
  const uint8x8_t b = vget_low_u8(y);
  const uint8x8_t lo = vand_u8(b, vdup_n_u8(15)), hi = vshr_n_u8(b, 4);
  uint8x16_t v = vcombine_u8(vzip1_u8(lo, hi), vzip2_u8(lo, hi));
  if constexpr (kSigned) v = vsubq_u8(veorq_u8(v, vdupq_n_u8(8)), vdupq_n_u8(8));
  widen4<true>(v, w);
}

}  // namespace
}  // namespace neon
}  // namespace lowbit
