// AVX2 vector primitives for the generic kernel bodies (cpp/kernels/generic/, whose quantize.h
// lists the contract): 8 float lanes in a ymm, masks as all-ones float lanes. Intrinsics only.
// Included only by translation units of cpp/kernels/avx2 (-mavx2 -mfma -mf16c -mbmi2).
#pragma once
#include <immintrin.h>

#include "generic/simd_prelude.h"

namespace lowbit {
namespace avx2 {
namespace {

constexpr int64_t kLanes = 8;
constexpr int64_t kStreamAlign = 32;  // movntps ymm

using vf = __m256;
using vi = __m256i;
using vm = __m256;    // all-ones lanes (compare results)
using vu8 = __m256i;  // 32 bytes
struct vt {           // the first k lanes, as an all-ones int mask (vmaskmov)
  __m256i m;
};

LOWBIT_INLINE vt tail_mask(int64_t k) {
  return {_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(k)),
                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))};
}
LOWBIT_INLINE vm active(vt t) { return _mm256_castsi256_ps(t.m); }

// ---------------------------------------------------------------------------------------------
// Floats and int32

LOWBIT_INLINE vf set1_f(float v) { return _mm256_set1_ps(v); }
LOWBIT_INLINE vi set1_i(int32_t v) { return _mm256_set1_epi32(v); }
LOWBIT_INLINE vf zero_f() { return _mm256_setzero_ps(); }
LOWBIT_INLINE vi zero_i() { return _mm256_setzero_si256(); }
LOWBIT_INLINE vf load_f(const float* p) { return _mm256_loadu_ps(p); }
LOWBIT_INLINE vi load_i(const int32_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
// Float stores leave in program order (LOWBIT_STORE_ORDER, generic/simd_prelude.h).
LOWBIT_INLINE void store_f(float* p, vf v) {
  _mm256_storeu_ps(p, v);
  LOWBIT_STORE_ORDER();
}
// vmaskmov: masked-off lanes neither load nor fault, nor store.
LOWBIT_INLINE vf load_f(const float* p, vt t) { return _mm256_maskload_ps(p, t.m); }
LOWBIT_INLINE vi load_i(const int32_t* p, vt t) { return _mm256_maskload_epi32(p, t.m); }
LOWBIT_INLINE void store_f(float* p, vf v, vt t) { _mm256_maskstore_ps(p, t.m, v); }
LOWBIT_INLINE void stream_f(float* p, vf v) {
  _mm256_stream_ps(p, v);
  LOWBIT_STORE_ORDER();
}
LOWBIT_INLINE void stream_fence() { _mm_sfence(); }
LOWBIT_INLINE void prefetch(const float* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
}

LOWBIT_INLINE vf div_f(vf a, vf b) { return _mm256_div_ps(a, b); }
LOWBIT_INLINE vf mul_f(vf a, vf b) { return _mm256_mul_ps(a, b); }
LOWBIT_INLINE vf add_f(vf a, vf b) { return _mm256_add_ps(a, b); }
LOWBIT_INLINE vf sub_f(vf a, vf b) { return _mm256_sub_ps(a, b); }
LOWBIT_INLINE vi add_i(vi a, vi b) { return _mm256_add_epi32(a, b); }
LOWBIT_INLINE vi sub_i(vi a, vi b) { return _mm256_sub_epi32(a, b); }
LOWBIT_INLINE vf cvt_f(vi a) { return _mm256_cvtepi32_ps(a); }

// max_ps returns its second operand (lo) when v is NaN.
LOWBIT_INLINE vf clamp_f(vf v, vf lo, vf hi) { return _mm256_min_ps(_mm256_max_ps(v, lo), hi); }
// The rounding mode is explicit, so MXCSR's RC field cannot change it; the rounded value is
// integral and in range, so cvtt is exact.
LOWBIT_INLINE vf rne_f(vf v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
LOWBIT_INLINE vi rne_i(vf v) { return _mm256_cvttps_epi32(rne_f(v)); }
// minps/maxps are `a < b ? a : b` / `a > b ? a : b`.
LOWBIT_INLINE vf min_keep(vf v, vf m) { return _mm256_min_ps(v, m); }
LOWBIT_INLINE vf max_keep(vf v, vf m) { return _mm256_max_ps(v, m); }

LOWBIT_INLINE vm is_nan(vf v) { return _mm256_cmp_ps(v, v, _CMP_UNORD_Q); }
LOWBIT_INLINE vm either_nan(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_UNORD_Q); }
LOWBIT_INLINE vm ge_f(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
LOWBIT_INLINE vm le_f(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
LOWBIT_INLINE vm eq_f(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
LOWBIT_INLINE vm no_lanes() { return _mm256_setzero_ps(); }
LOWBIT_INLINE vm mask_or(vm a, vm b) { return _mm256_or_ps(a, b); }
LOWBIT_INLINE vm mask_and(vm a, vm b) { return _mm256_and_ps(a, b); }
LOWBIT_INLINE bool any(vm m) { return _mm256_movemask_ps(m) != 0; }
LOWBIT_INLINE int first_lane(vm m) { return __builtin_ctz(static_cast<unsigned>(_mm256_movemask_ps(m))); }
LOWBIT_INLINE vf select_f(vm m, vf a, vf b) { return _mm256_blendv_ps(b, a, m); }
LOWBIT_INLINE vf keep_f(vm m, vf v) { return _mm256_and_ps(m, v); }
LOWBIT_INLINE vi keep_i(vt t, vi v) { return _mm256_and_si256(v, t.m); }

LOWBIT_INLINE float hmin(vf v) {
  __m128 t = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  t = _mm_min_ps(t, _mm_movehl_ps(t, t));
  t = _mm_min_ss(t, _mm_movehdup_ps(t));
  return _mm_cvtss_f32(t);
}
LOWBIT_INLINE float hmax(vf v) {
  __m128 t = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  t = _mm_max_ps(t, _mm_movehl_ps(t, t));
  t = _mm_max_ss(t, _mm_movehdup_ps(t));
  return _mm_cvtss_f32(t);
}
// A zero lane's sign bit is set in (v == 0) & v for -0.0 and in (v == 0) & ~v for +0.0.
LOWBIT_INLINE int zero_signs(vf v) {
  const vm z = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_EQ_OQ);
  return (_mm256_movemask_ps(_mm256_andnot_ps(v, z)) != 0 ? 1 : 0) |
         (_mm256_movemask_ps(_mm256_and_ps(z, v)) != 0 ? 2 : 0);
}

// ---------------------------------------------------------------------------------------------
// int32 -> bytes (vpshufb narrows)

// Byte 0 of each int32 (exact for every int32 value): vpshufb moves byte 0 of the four dwords of
// a lane into dword kSlot of that lane, zeroing the rest.
#define LOWBIT_B(j) static_cast<char>((j) % 16 / 4 == kSlot ? 4 * ((j) % 4) : -1)
template <int kSlot>
LOWBIT_INLINE __m256i dword_low_bytes(__m256i q) {
  return _mm256_shuffle_epi8(
      q, _mm256_setr_epi8(LOWBIT_B(0), LOWBIT_B(1), LOWBIT_B(2), LOWBIT_B(3), LOWBIT_B(4),
                          LOWBIT_B(5), LOWBIT_B(6), LOWBIT_B(7), LOWBIT_B(8), LOWBIT_B(9),
                          LOWBIT_B(10), LOWBIT_B(11), LOWBIT_B(12), LOWBIT_B(13), LOWBIT_B(14),
                          LOWBIT_B(15), LOWBIT_B(16), LOWBIT_B(17), LOWBIT_B(18), LOWBIT_B(19),
                          LOWBIT_B(20), LOWBIT_B(21), LOWBIT_B(22), LOWBIT_B(23), LOWBIT_B(24),
                          LOWBIT_B(25), LOWBIT_B(26), LOWBIT_B(27), LOWBIT_B(28), LOWBIT_B(29),
                          LOWBIT_B(30), LOWBIT_B(31)));
}
#undef LOWBIT_B

// 32 int32 (a: elements 0-7, b: 8-15, ...) -> their 32 low bytes in order.
LOWBIT_INLINE void store_q8x4(uint8_t* p, vi a, vi b, vi c, vi d) {
  const __m256i t = _mm256_or_si256(_mm256_or_si256(dword_low_bytes<0>(a), dword_low_bytes<1>(b)),
                                    _mm256_or_si256(dword_low_bytes<2>(c), dword_low_bytes<3>(d)));
  // Lane 0 holds elements 0-3, 8-11, 16-19, 24-27; lane 1 the other groups of four.
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                      _mm256_permutevar8x32_epi32(t, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

// 8 int32 -> their 8 low bytes, as a little-endian uint64.
LOWBIT_INLINE uint64_t narrow8(vi q) {
  const __m256i t = dword_low_bytes<0>(q);
  const __m128i b = _mm_unpacklo_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
  return static_cast<uint64_t>(_mm_cvtsi128_si64(b));
}
LOWBIT_INLINE void store_q8(uint8_t* p, vi q) {
  const uint64_t v = narrow8(q);
  std::memcpy(p, &v, 8);
}
LOWBIT_INLINE void store_q8(uint8_t* p, vi q, int64_t k) {
  const uint64_t v = narrow8(q);
  std::memcpy(p, &v, static_cast<size_t>(k));
}

// Eight int32 values -> (q[2j] & 15) | (q[2j+1] & 15) << 4 in byte 0 of 64-bit lane j (bits 8-31
// of that lane are zero): the odd element's low nibble sits at bit 32 and moves to bit 4.
LOWBIT_INLINE __m256i pair_nibbles(__m256i q) {
  const __m256i t = _mm256_and_si256(q, _mm256_set1_epi32(15));
  return _mm256_or_si256(t, _mm256_srli_epi64(t, 28));
}

// Bytes 0 and 8 of each lane (its two pair bytes) into bytes 2*kSlot, 2*kSlot+1 of that lane.
#define LOWBIT_B(j) \
  static_cast<char>((j) % 16 == 2 * kSlot ? 0 : (j) % 16 == 2 * kSlot + 1 ? 8 : -1)
template <int kSlot>
LOWBIT_INLINE __m256i qword_low_bytes(__m256i y) {
  return _mm256_shuffle_epi8(
      y, _mm256_setr_epi8(LOWBIT_B(0), LOWBIT_B(1), LOWBIT_B(2), LOWBIT_B(3), LOWBIT_B(4),
                          LOWBIT_B(5), LOWBIT_B(6), LOWBIT_B(7), LOWBIT_B(8), LOWBIT_B(9),
                          LOWBIT_B(10), LOWBIT_B(11), LOWBIT_B(12), LOWBIT_B(13), LOWBIT_B(14),
                          LOWBIT_B(15), LOWBIT_B(16), LOWBIT_B(17), LOWBIT_B(18), LOWBIT_B(19),
                          LOWBIT_B(20), LOWBIT_B(21), LOWBIT_B(22), LOWBIT_B(23), LOWBIT_B(24),
                          LOWBIT_B(25), LOWBIT_B(26), LOWBIT_B(27), LOWBIT_B(28), LOWBIT_B(29),
                          LOWBIT_B(30), LOWBIT_B(31)));
}
#undef LOWBIT_B

// 32 int32 -> 16 packed bytes.
LOWBIT_INLINE void store_q4x4(uint8_t* p, vi a, vi b, vi c, vi d) {
  const __m256i y0 = pair_nibbles(a), y1 = pair_nibbles(b);
  const __m256i y2 = pair_nibbles(c), y3 = pair_nibbles(d);
  // Lane 0 now holds pair bytes 0,1, 4,5, 8,9, 12,13 and lane 1 bytes 2,3, 6,7, ...
  const __m256i t = _mm256_or_si256(_mm256_or_si256(qword_low_bytes<0>(y0), qword_low_bytes<1>(y1)),
                                    _mm256_or_si256(qword_low_bytes<2>(y2), qword_low_bytes<3>(y3)));
  const __m128i r = _mm_unpacklo_epi16(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), r);
}

// Eight int32 values -> four packed bytes, little-endian.
LOWBIT_INLINE uint32_t pack8_nibbles(vi q) {
  const __m256i y = qword_low_bytes<0>(pair_nibbles(q));
  const __m128i b = _mm_unpacklo_epi16(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(b));
}
LOWBIT_INLINE void store_q4(uint8_t* p, vi q) {
  const uint32_t v = pack8_nibbles(q);
  std::memcpy(p, &v, 4);
}
LOWBIT_INLINE void store_q4(uint8_t* p, vi q, int64_t k) {
  const uint32_t v = pack8_nibbles(q);
  std::memcpy(p, &v, static_cast<size_t>(k));
}

// ---------------------------------------------------------------------------------------------
// Bytes. Partial loads and stores go through a stack buffer: AVX2 has no byte-masked move.

LOWBIT_INLINE vu8 load_u8(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
LOWBIT_INLINE vu8 load_u8(const uint8_t* p, int64_t k) {
  alignas(32) uint8_t b[32] = {};
  std::memcpy(b, p, static_cast<size_t>(k));
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
}
LOWBIT_INLINE vu8 load_u8_half(const uint8_t* p) {
  return _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
LOWBIT_INLINE void store_u8(uint8_t* p, vu8 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
}
LOWBIT_INLINE void store_u8(uint8_t* p, vu8 v, int64_t k) {
  alignas(32) uint8_t b[32];
  _mm256_store_si256(reinterpret_cast<__m256i*>(b), v);
  std::memcpy(p, b, static_cast<size_t>(k));
}
LOWBIT_INLINE vu8 set1_u8(uint8_t v) { return _mm256_set1_epi8(static_cast<char>(v)); }
LOWBIT_INLINE vu8 zero_u8() { return _mm256_setzero_si256(); }
LOWBIT_INLINE vu8 add_u8(vu8 a, vu8 b) { return _mm256_add_epi8(a, b); }
LOWBIT_INLINE vu8 sub_u8(vu8 a, vu8 b) { return _mm256_sub_epi8(a, b); }
LOWBIT_INLINE vu8 and_u8(vu8 a, vu8 b) { return _mm256_and_si256(a, b); }
LOWBIT_INLINE vu8 or_u8(vu8 a, vu8 b) { return _mm256_or_si256(a, b); }
LOWBIT_INLINE vu8 xor_u8(vu8 a, vu8 b) { return _mm256_xor_si256(a, b); }
LOWBIT_INLINE bool any_high_nibble(vu8 v) {
  return !_mm256_testz_si256(v, _mm256_set1_epi8(static_cast<char>(0xF0)));
}
LOWBIT_INLINE vu8 low_nibbles(vu8 v) { return _mm256_and_si256(v, _mm256_set1_epi8(15)); }
LOWBIT_INLINE vu8 high_nibbles(vu8 v) {
  return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(15));
}

// 64 bytes -> 32: in each 16-bit word (lo | hi << 8), (w & 0x0F) | ((w >> 4) & 0xF0) is the byte
// (lo & 15) | (hi & 15) << 4 with a zero high byte, so packus is exact; it interleaves 128-bit
// lanes, which the 0xD8 permute undoes.
LOWBIT_INLINE vu8 pack_pairs(vu8 a, vu8 b) {
  const __m256i m0f = _mm256_set1_epi16(0x0F), mf0 = _mm256_set1_epi16(0xF0);
  const __m256i ca = _mm256_or_si256(_mm256_and_si256(a, m0f),
                                     _mm256_and_si256(_mm256_srli_epi16(a, 4), mf0));
  const __m256i cb = _mm256_or_si256(_mm256_and_si256(b, m0f),
                                     _mm256_and_si256(_mm256_srli_epi16(b, 4), mf0));
  return _mm256_permute4x64_epi64(_mm256_packus_epi16(ca, cb), 0xD8);
}

// (hi << 4) within 16-bit words, masked per byte, is each byte's low nibble moved up.
LOWBIT_INLINE vu8 pack_vert(vu8 lo, vu8 hi) {
  return _mm256_or_si256(_mm256_and_si256(lo, _mm256_set1_epi8(15)),
                         _mm256_and_si256(_mm256_slli_epi16(hi, 4),
                                          _mm256_set1_epi8(static_cast<char>(0xF0))));
}

// 32 packed bytes -> 64 nibbles in element order (r0: elements 0-31, r1: 32-63).
LOWBIT_INLINE void unpack_nibbles(vu8 p, vu8& r0, vu8& r1) {
  const __m256i l = low_nibbles(p), h = high_nibbles(p);
  // Per 128-bit lane: ul = bytes 0-7 of the lane interleaved, uh = bytes 8-15.
  const __m256i ul = _mm256_unpacklo_epi8(l, h), uh = _mm256_unpackhi_epi8(l, h);
  r0 = _mm256_permute2x128_si256(ul, uh, 0x20);
  r1 = _mm256_permute2x128_si256(ul, uh, 0x31);
}

// Eight bytes (the low 64 bits of b) -> int32: sign-extended for int8, zero-extended for uint8.
template <bool kSigned>
LOWBIT_INLINE vi widen8(__m128i b) {
  if constexpr (kSigned) return _mm256_cvtepi8_epi32(b);
  return _mm256_cvtepu8_epi32(b);
}
// 16 + 16 bytes -> four vectors of 8 int32.
template <bool kSigned>
LOWBIT_INLINE void widen4(__m128i a, __m128i b, vi w[4]) {
  w[0] = widen8<kSigned>(a);
  w[1] = widen8<kSigned>(_mm_srli_si128(a, 8));
  w[2] = widen8<kSigned>(b);
  w[3] = widen8<kSigned>(_mm_srli_si128(b, 8));
}
template <bool kSigned>
LOWBIT_INLINE void widen4(vu8 y, vi w[4]) {
  widen4<kSigned>(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1), w);
}
// The same from memory: two xmm loads, no lane extract.
template <bool kSigned>
LOWBIT_INLINE void load_widen4(const uint8_t* p, vi w[4]) {
  widen4<kSigned>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)),
                  _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)), w);
}

// 16 packed bytes (the low half of y) -> 32 nibbles, one a byte (lo: elements 0-15, hi:
// 16-31), then to int32. Signed: (v ^ 8) - 8 sign-extends a nibble inside its byte.
template <bool kSigned>
LOWBIT_INLINE void widen_nibbles4(vu8 y, vi w[4]) {
  const __m128i b = _mm256_castsi256_si128(y), m15 = _mm_set1_epi8(15);
  const __m128i l = _mm_and_si128(b, m15);
  const __m128i h = _mm_and_si128(_mm_srli_epi16(b, 4), m15);
  __m128i lo = _mm_unpacklo_epi8(l, h), hi = _mm_unpackhi_epi8(l, h);
  if constexpr (kSigned) {
    const __m128i e = _mm_set1_epi8(8);
    lo = _mm_sub_epi8(_mm_xor_si128(lo, e), e);
    hi = _mm_sub_epi8(_mm_xor_si128(hi, e), e);
  }
  w[0] = _mm256_cvtepi8_epi32(lo);
  w[1] = _mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8));
  w[2] = _mm256_cvtepi8_epi32(hi);
  w[3] = _mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8));
}


// --- the formats family (generic/formats.h) ---------------------------------------------------
LOWBIT_INLINE vi bits_f(vf v) { return _mm256_castps_si256(v); }
LOWBIT_INLINE vf float_i(vi v) { return _mm256_castsi256_ps(v); }
LOWBIT_INLINE vi and_i(vi a, vi b) { return _mm256_and_si256(a, b); }
LOWBIT_INLINE vi or_i(vi a, vi b) { return _mm256_or_si256(a, b); }
LOWBIT_INLINE vi srl_i(vi v, int n) { return _mm256_srl_epi32(v, _mm_cvtsi32_si128(n)); }
LOWBIT_INLINE vi sll_i(vi v, int n) { return _mm256_sll_epi32(v, _mm_cvtsi32_si128(n)); }
LOWBIT_INLINE vm lt_f(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
LOWBIT_INLINE vi select_i(vm m, vi a, vi b) {
  return _mm256_blendv_epi8(b, a, _mm256_castps_si256(m));
}
// cnt + 1 in the lanes where t < y
LOWBIT_INLINE vi count_lt(vi cnt, vf t, vf y) {
  return _mm256_sub_epi32(cnt, _mm256_castps_si256(_mm256_cmp_ps(t, y, _CMP_LT_OQ)));
}
LOWBIT_INLINE vf gather_f(const float* table, vi idx) { return _mm256_i32gather_ps(table, idx, 4); }
// A 16-entry float table in registers: two 8-lane permutes, bit 3 of the index choosing.
// two permutes and a blend a probe: counting is faster (Zen 5: 7.3 against 5.7 GB/s)
constexpr bool kLut16Search = false;
struct Lut16 {
  __m256 lo, hi;
};
LOWBIT_INLINE Lut16 load_lut16(const float* t) { return {_mm256_loadu_ps(t), _mm256_loadu_ps(t + 8)}; }
LOWBIT_INLINE vf lut16_f(const Lut16& t, vi idx) {
  const __m256 a = _mm256_permutevar8x32_ps(t.lo, idx), b = _mm256_permutevar8x32_ps(t.hi, idx);
  return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

LOWBIT_INLINE vf fma_f(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
LOWBIT_INLINE float hsum_f(vf v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
// W codes as int32 lanes: bytes / nibbles (W / 2 bytes, low nibble first)
LOWBIT_INLINE vi load_u8_i(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
LOWBIT_INLINE vi load_nib_i(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  const __m128i x = _mm_cvtsi32_si128(v), m = _mm_set1_epi8(15);
  const __m128i lo = _mm_and_si128(x, m), hi = _mm_and_si128(_mm_srli_epi16(x, 4), m);
  return _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));
}

// W fp8 codes (bytes) as floats through half precision (F16C): e5m2 is the top byte of a
// half; e4m3's bits moved under a half's (the sign from bit 14 to 15 by adding it to itself)
// give its value times 2^-8. Exact, subnormals included (no NaN codes reach this).
template <bool kE4M3>
LOWBIT_INLINE vf fp8_f(const uint8_t* p) {
  const __m128i w = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  __m128i h;
  if constexpr (kE4M3) {
    const __m128i u = _mm_slli_epi16(w, 7);
    h = _mm_add_epi16(u, _mm_and_si128(u, _mm_set1_epi16(0x4000)));
  } else {
    h = _mm_slli_epi16(w, 8);
  }
  return _mm256_cvtph_ps(h);
}

LOWBIT_INLINE vf abs_f(vf v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
LOWBIT_INLINE vf and_f(vf a, vf b) { return _mm256_and_ps(a, b); }
LOWBIT_INLINE vf or_f(vf a, vf b) { return _mm256_or_ps(a, b); }

// 2 W fp8 codes as two float vectors (fp8_f's values, one widening for both).
template <bool kE4M3>
LOWBIT_INLINE void fp8x2_f(const uint8_t* p, vf& lo, vf& hi) {
  const __m256i w = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  __m256i h;
  if constexpr (kE4M3) {
    const __m256i u = _mm256_slli_epi16(w, 7);
    h = _mm256_add_epi16(u, _mm256_and_si256(u, _mm256_set1_epi16(0x4000)));
  } else {
    h = _mm256_slli_epi16(w, 8);
  }
  lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
  hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
}

}  // namespace
}  // namespace avx2
}  // namespace lowbit
