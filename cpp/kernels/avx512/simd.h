// AVX-512 (F, BW, DQ, VL) vector primitives for the generic kernel bodies (cpp/kernels/generic/,
// whose quantize.h lists the contract): 16 float lanes in a zmm, lane masks in __mmask16, tails
// through masked loads and stores (which neither read nor fault past the active lanes).
// Intrinsics only; no VBMI, no rcp14. Included only by translation units of cpp/kernels/avx512,
// built natively or against SIMDe (avx512/simde_compat.h).
#pragma once
#include "avx512/simde_compat.h"
#include "generic/simd_prelude.h"

namespace lowbit {
namespace avx512 {
namespace {

constexpr int64_t kLanes = 16;
constexpr int64_t kStreamAlign = 64;  // movntps zmm

using vf = __m512;
using vi = __m512i;
using vm = __mmask16;
using vu8 = __m512i;  // 64 bytes
struct vt {           // the first k lanes
  __mmask16 m;
};

LOWBIT_INLINE vt tail_mask(int64_t k) { return {static_cast<__mmask16>((1u << k) - 1u)}; }
LOWBIT_INLINE vm active(vt t) { return t.m; }
// The first k bytes of a zmm (k <= 64) / of an xmm (k <= 16).
LOWBIT_INLINE __mmask64 byte_mask(int64_t k) {
  return k >= 64 ? ~__mmask64{0} : (__mmask64{1} << k) - 1;
}
LOWBIT_INLINE __mmask16 byte_mask16(int64_t k) { return static_cast<__mmask16>((1u << k) - 1u); }

// ---------------------------------------------------------------------------------------------
// Floats and int32

LOWBIT_INLINE vf set1_f(float v) { return _mm512_set1_ps(v); }
LOWBIT_INLINE vi set1_i(int32_t v) { return _mm512_set1_epi32(v); }
LOWBIT_INLINE vf zero_f() { return _mm512_setzero_ps(); }
LOWBIT_INLINE vi zero_i() { return _mm512_setzero_si512(); }
LOWBIT_INLINE vf load_f(const float* p) { return _mm512_loadu_ps(p); }
LOWBIT_INLINE vi load_i(const int32_t* p) { return _mm512_loadu_si512(p); }
LOWBIT_INLINE void store_f(float* p, vf v) {
  _mm512_storeu_ps(p, v);
  LOWBIT_STORE_ORDER();
}
LOWBIT_INLINE vf load_f(const float* p, vt t) { return _mm512_maskz_loadu_ps(t.m, p); }
LOWBIT_INLINE vi load_i(const int32_t* p, vt t) { return _mm512_maskz_loadu_epi32(t.m, p); }
LOWBIT_INLINE void store_f(float* p, vf v, vt t) { _mm512_mask_storeu_ps(p, t.m, v); }
LOWBIT_INLINE void stream_f(float* p, vf v) {
  _mm512_stream_ps(p, v);
  LOWBIT_STORE_ORDER();
}
LOWBIT_INLINE void stream_fence() { _mm_sfence(); }
LOWBIT_INLINE void prefetch(const float* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
}

LOWBIT_INLINE vf div_f(vf a, vf b) { return _mm512_div_ps(a, b); }
LOWBIT_INLINE vf mul_f(vf a, vf b) { return _mm512_mul_ps(a, b); }
LOWBIT_INLINE vf add_f(vf a, vf b) { return _mm512_add_ps(a, b); }
LOWBIT_INLINE vf sub_f(vf a, vf b) { return _mm512_sub_ps(a, b); }
LOWBIT_INLINE vi add_i(vi a, vi b) { return _mm512_add_epi32(a, b); }
LOWBIT_INLINE vi sub_i(vi a, vi b) { return _mm512_sub_epi32(a, b); }
LOWBIT_INLINE vf cvt_f(vi a) { return _mm512_cvtepi32_ps(a); }

// vmaxps returns its second operand (lo) when v is NaN, as the SSE/AVX forms do.
LOWBIT_INLINE vf clamp_f(vf v, vf lo, vf hi) { return _mm512_min_ps(_mm512_max_ps(v, lo), hi); }
// Embedded rounding: ties to even whatever MXCSR says, exceptions suppressed.
LOWBIT_INLINE vi rne_i(vf v) {
  return _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
LOWBIT_INLINE vf rne_f(vf v) {
  return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
LOWBIT_INLINE vf min_keep(vf v, vf m) { return _mm512_min_ps(v, m); }
LOWBIT_INLINE vf max_keep(vf v, vf m) { return _mm512_max_ps(v, m); }

LOWBIT_INLINE vm is_nan(vf v) { return _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q); }
LOWBIT_INLINE vm either_nan(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q); }
LOWBIT_INLINE vm ge_f(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
LOWBIT_INLINE vm le_f(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
LOWBIT_INLINE vm eq_f(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
LOWBIT_INLINE vm no_lanes() { return 0; }
LOWBIT_INLINE vm mask_or(vm a, vm b) { return static_cast<vm>(a | b); }
LOWBIT_INLINE vm mask_and(vm a, vm b) { return static_cast<vm>(a & b); }
LOWBIT_INLINE bool any(vm m) { return m != 0; }
LOWBIT_INLINE int first_lane(vm m) { return __builtin_ctz(m); }
LOWBIT_INLINE vf select_f(vm m, vf a, vf b) { return _mm512_mask_mov_ps(b, m, a); }
LOWBIT_INLINE vf keep_f(vm m, vf v) { return _mm512_maskz_mov_ps(m, v); }
LOWBIT_INLINE vi keep_i(vt t, vi v) { return _mm512_maskz_mov_epi32(t.m, v); }

LOWBIT_INLINE float hmin(vf v) {
  const __m256 h = _mm256_min_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 t = _mm_min_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  t = _mm_min_ps(t, _mm_movehl_ps(t, t));
  t = _mm_min_ss(t, _mm_movehdup_ps(t));
  return _mm_cvtss_f32(t);
}
LOWBIT_INLINE float hmax(vf v) {
  const __m256 h = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 t = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  t = _mm_max_ps(t, _mm_movehl_ps(t, t));
  t = _mm_max_ss(t, _mm_movehdup_ps(t));
  return _mm_cvtss_f32(t);
}
LOWBIT_INLINE int zero_signs(vf v) {
  const unsigned z = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_EQ_OQ);
  const unsigned neg = _mm512_movepi32_mask(_mm512_castps_si512(v));  // sign bits
  return ((z & ~neg) != 0 ? 1 : 0) | ((z & neg) != 0 ? 2 : 0);
}

// ---------------------------------------------------------------------------------------------
// int32 -> bytes. vpmovdb truncates: the low byte of every int32, exact for any value.

LOWBIT_INLINE __m128i low_bytes(vi q) { return _mm512_cvtepi32_epi8(q); }
LOWBIT_INLINE void store_q8x4(uint8_t* p, vi a, vi b, vi c, vi d) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), low_bytes(a));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 16), low_bytes(b));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 32), low_bytes(c));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 48), low_bytes(d));
}
LOWBIT_INLINE void store_q8(uint8_t* p, vi q) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), low_bytes(q));
}
LOWBIT_INLINE void store_q8(uint8_t* p, vi q, int64_t k) {
  _mm_mask_storeu_epi8(p, byte_mask16(k), low_bytes(q));
}

// 16 bytes -> 8 words (lo | hi << 8) -> (w & 0x0F) | ((w >> 4) & 0xF0): the byte
// (lo & 15) | (hi & 15) << 4 with a zero high byte, so packus is exact.
LOWBIT_INLINE __m128i pair_words(__m128i b) {
  return _mm_or_si128(_mm_and_si128(b, _mm_set1_epi16(0x0F)),
                      _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi16(0xF0)));
}
LOWBIT_INLINE void store_q4x4(uint8_t* p, vi a, vi b, vi c, vi d) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                   _mm_packus_epi16(pair_words(low_bytes(a)), pair_words(low_bytes(b))));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 16),
                   _mm_packus_epi16(pair_words(low_bytes(c)), pair_words(low_bytes(d))));
}
LOWBIT_INLINE __m128i pack16_nibbles(vi q) {  // 8 packed bytes in the low half
  return _mm_packus_epi16(pair_words(low_bytes(q)), _mm_setzero_si128());
}
LOWBIT_INLINE void store_q4(uint8_t* p, vi q) {
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), pack16_nibbles(q));
}
LOWBIT_INLINE void store_q4(uint8_t* p, vi q, int64_t k) {
  _mm_mask_storeu_epi8(p, byte_mask16(k), pack16_nibbles(q));
}

// ---------------------------------------------------------------------------------------------
// Bytes

LOWBIT_INLINE vu8 load_u8(const uint8_t* p) { return _mm512_loadu_si512(p); }
LOWBIT_INLINE vu8 load_u8(const uint8_t* p, int64_t k) {
  return _mm512_maskz_loadu_epi8(byte_mask(k), p);
}
LOWBIT_INLINE vu8 load_u8_half(const uint8_t* p) {
  return _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
LOWBIT_INLINE void store_u8(uint8_t* p, vu8 v) { _mm512_storeu_si512(p, v); }
LOWBIT_INLINE void store_u8(uint8_t* p, vu8 v, int64_t k) {
  _mm512_mask_storeu_epi8(p, byte_mask(k), v);
}
LOWBIT_INLINE vu8 set1_u8(uint8_t v) { return _mm512_set1_epi8(static_cast<char>(v)); }
LOWBIT_INLINE vu8 zero_u8() { return _mm512_setzero_si512(); }
LOWBIT_INLINE vu8 add_u8(vu8 a, vu8 b) { return _mm512_add_epi8(a, b); }
LOWBIT_INLINE vu8 sub_u8(vu8 a, vu8 b) { return _mm512_sub_epi8(a, b); }
LOWBIT_INLINE vu8 and_u8(vu8 a, vu8 b) { return _mm512_and_si512(a, b); }
LOWBIT_INLINE vu8 or_u8(vu8 a, vu8 b) { return _mm512_or_si512(a, b); }
LOWBIT_INLINE vu8 xor_u8(vu8 a, vu8 b) { return _mm512_xor_si512(a, b); }
LOWBIT_INLINE bool any_high_nibble(vu8 v) {
  return _mm512_test_epi8_mask(v, _mm512_set1_epi8(static_cast<char>(0xF0))) != 0;
}
LOWBIT_INLINE vu8 low_nibbles(vu8 v) { return _mm512_and_si512(v, _mm512_set1_epi8(15)); }
LOWBIT_INLINE vu8 high_nibbles(vu8 v) {
  return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(15));
}

// 128 bytes -> 64: pair_words on 32 words of each input, then vpmovwb (truncating; the high
// bytes are zero) keeps them in order.
LOWBIT_INLINE __m512i pair_words(__m512i a) {
  return _mm512_or_si512(_mm512_and_si512(a, _mm512_set1_epi16(0x0F)),
                         _mm512_and_si512(_mm512_srli_epi16(a, 4), _mm512_set1_epi16(0xF0)));
}
LOWBIT_INLINE vu8 pack_pairs(vu8 a, vu8 b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi16_epi8(pair_words(a))),
                            _mm512_cvtepi16_epi8(pair_words(b)), 1);
}
LOWBIT_INLINE vu8 pack_vert(vu8 lo, vu8 hi) {
  return _mm512_or_si512(_mm512_and_si512(lo, _mm512_set1_epi8(15)),
                         _mm512_and_si512(_mm512_slli_epi16(hi, 4),
                                          _mm512_set1_epi8(static_cast<char>(0xF0))));
}

// 32 packed bytes -> 64 nibbles in element order: zero-extended to words w = byte, the byte
// pair (w & 0x0F) | ((w << 4) & 0x0F00) is (low nibble, high nibble).
LOWBIT_INLINE __m512i nibbles64(__m256i b) {
  const __m512i w = _mm512_cvtepu8_epi16(b);
  return _mm512_or_si512(_mm512_and_si512(w, _mm512_set1_epi16(0x000F)),
                         _mm512_and_si512(_mm512_slli_epi16(w, 4), _mm512_set1_epi16(0x0F00)));
}
LOWBIT_INLINE void unpack_nibbles(vu8 p, vu8& r0, vu8& r1) {
  r0 = nibbles64(_mm512_castsi512_si256(p));
  r1 = nibbles64(_mm512_extracti64x4_epi64(p, 1));
}

// 64 bytes -> four vectors of 16 int32: sign-extended for int8, zero-extended for uint8.
template <bool kSigned>
LOWBIT_INLINE vi widen16(__m128i b) {
  if constexpr (kSigned) return _mm512_cvtepi8_epi32(b);
  return _mm512_cvtepu8_epi32(b);
}
template <bool kSigned>
LOWBIT_INLINE void widen4(vu8 y, vi w[4]) {
  w[0] = widen16<kSigned>(_mm512_extracti32x4_epi32(y, 0));
  w[1] = widen16<kSigned>(_mm512_extracti32x4_epi32(y, 1));
  w[2] = widen16<kSigned>(_mm512_extracti32x4_epi32(y, 2));
  w[3] = widen16<kSigned>(_mm512_extracti32x4_epi32(y, 3));
}
// The same from memory: vpmovsxbd / vpmovzxbd straight from each 16 bytes.
template <bool kSigned>
LOWBIT_INLINE void load_widen4(const uint8_t* p, vi w[4]) {
  w[0] = widen16<kSigned>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  w[1] = widen16<kSigned>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)));
  w[2] = widen16<kSigned>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32)));
  w[3] = widen16<kSigned>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48)));
}
// 32 packed bytes (the low half of y) -> 64 int32; signed: (v ^ 8) - 8 sign-extends a nibble
// within its byte.
template <bool kSigned>
LOWBIT_INLINE void widen_nibbles4(vu8 y, vi w[4]) {
  __m512i v = nibbles64(_mm512_castsi512_si256(y));
  if constexpr (kSigned) {
    const __m512i e = _mm512_set1_epi8(8);
    v = _mm512_sub_epi8(_mm512_xor_si512(v, e), e);
  }
  widen4<true>(v, w);
}


// --- the formats family (generic/formats.h) ---------------------------------------------------
LOWBIT_INLINE vi bits_f(vf v) { return _mm512_castps_si512(v); }
LOWBIT_INLINE vf float_i(vi v) { return _mm512_castsi512_ps(v); }
LOWBIT_INLINE vi and_i(vi a, vi b) { return _mm512_and_si512(a, b); }
LOWBIT_INLINE vi or_i(vi a, vi b) { return _mm512_or_si512(a, b); }
LOWBIT_INLINE vi srl_i(vi v, int n) { return _mm512_srl_epi32(v, _mm_cvtsi32_si128(n)); }
LOWBIT_INLINE vi sll_i(vi v, int n) { return _mm512_sll_epi32(v, _mm_cvtsi32_si128(n)); }
LOWBIT_INLINE vm lt_f(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
LOWBIT_INLINE vi select_i(vm m, vi a, vi b) { return _mm512_mask_mov_epi32(b, m, a); }
// cnt + 1 in the lanes where t < y
LOWBIT_INLINE vi count_lt(vi cnt, vf t, vf y) {
  return _mm512_mask_add_epi32(cnt, _mm512_cmp_ps_mask(t, y, _CMP_LT_OQ), cnt,
                               _mm512_set1_epi32(1));
}
LOWBIT_INLINE vf gather_f(const float* table, vi idx) {
  return _mm512_i32gather_ps(idx, table, 4);  // scale 4 (an emulated build assumes it)
}
// A 16-entry float table in one register.
// one vpermps a probe: 14.6 against 8.9 GB/s for nf4 on Zen 5
constexpr bool kLut16Search = true;
struct Lut16 {
  __m512 t;
};
LOWBIT_INLINE Lut16 load_lut16(const float* t) { return {_mm512_loadu_ps(t)}; }
LOWBIT_INLINE vf lut16_f(const Lut16& t, vi idx) { return _mm512_permutexvar_ps(idx, t.t); }

LOWBIT_INLINE vf fma_f(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
LOWBIT_INLINE float hsum_f(vf v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
// W codes as int32 lanes: bytes / nibbles (W / 2 bytes, low nibble first)
LOWBIT_INLINE vi load_u8_i(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
LOWBIT_INLINE vi load_nib_i(const uint8_t* p) {
  const __m128i x = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)), m = _mm_set1_epi8(15);
  const __m128i lo = _mm_and_si128(x, m), hi = _mm_and_si128(_mm_srli_epi16(x, 4), m);
  return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));
}

// W fp8 codes (bytes) as floats through half precision: e5m2 is the top byte of a half;
// e4m3's bits moved under a half's (the sign from bit 14 to 15 by adding it to itself) give its
// value times 2^-8. Exact, subnormals included (no NaN codes reach this).
template <bool kE4M3>
LOWBIT_INLINE vf fp8_f(const uint8_t* p) {
  const __m256i w = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  __m256i h;
  if constexpr (kE4M3) {
    const __m256i u = _mm256_slli_epi16(w, 7);
    h = _mm256_add_epi16(u, _mm256_and_si256(u, _mm256_set1_epi16(0x4000)));
  } else {
    h = _mm256_slli_epi16(w, 8);
  }
  return _mm512_cvtph_ps(h);
}

LOWBIT_INLINE vf abs_f(vf v) { return _mm512_abs_ps(v); }
LOWBIT_INLINE vf and_f(vf a, vf b) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}
LOWBIT_INLINE vf or_f(vf a, vf b) {
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}

// 2 W fp8 codes as two float vectors (fp8_f's values, one widening for both).
template <bool kE4M3>
LOWBIT_INLINE void fp8x2_f(const uint8_t* p, vf& lo, vf& hi) {
  const __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  __m512i h;
  if constexpr (kE4M3) {
    const __m512i u = _mm512_slli_epi16(w, 7);
    h = _mm512_add_epi16(u, _mm512_and_si512(u, _mm512_set1_epi16(0x4000)));
  } else {
    h = _mm512_slli_epi16(w, 8);
  }
  lo = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
  hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
}

}  // namespace
}  // namespace avx512
}  // namespace lowbit
