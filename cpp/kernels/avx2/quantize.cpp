// AVX2 quantization kernels. Built with -mavx2 -mfma -mf16c -mbmi2 -ffp-contract=off only;
// reached only when the dispatcher has seen AVX2 (+FMA, F16C, BMI2) and OS support for YMM
// state. Semantics: cpp/kernels/scalar/quantize.cpp, matched bit for bit for every input.
//
// Shared shape of every kernel: an unrolled main loop, a one-vector loop, then a tail that never
// touches memory past `n` (masked loads/stores for float data; a small padded stack buffer for
// byte data). The tail runs the same vector code as the body, so it cannot drift from it. `ss` is
// 0 (one scale for the segment, broadcast once) or 1 (a scale per element). Large float outputs
// are written with streaming stores (see kStreamBytes).
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "lowbit/kernels.h"

namespace lowbit {
namespace avx2 {
namespace {

// Software prefetch of float input 1 KiB ahead. The division-bound quantize loops leave the
// hardware prefetcher short of DRAM read bandwidth (measured: 16M-float quantize 20-30% faster
// with it). A prefetch never faults, but it is kept inside [x, x + n) all the same.
constexpr int64_t kPrefetch = 256;  // floats
inline void prefetch_ahead(const float* x, int64_t i, int64_t n) {
  if (i + kPrefetch < n) _mm_prefetch(reinterpret_cast<const char*>(x + i + kPrefetch), _MM_HINT_T0);
}

// Lanes [0, k) of an 8-lane mask set, for 0 <= k <= 8.
inline __m256i lane_mask(int64_t k) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(k)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// ---------------------------------------------------------------------------------------------
// Scales and zero points. QuantParams<false> (ss == 0) broadcasts them once; QuantParams<true>
// (ss == 1) loads eight of each per vector. The object lives in the kernel's frame and is read
// field by field, so the compiler keeps the broadcasts in registers.

template <bool kPer>
struct QuantParams {
  const float* s;
  const int32_t* zp;
  __m256i qmin, qmax;
  __m256 s0, lo0, hi0;  // ss == 0 only
  __m256i z0;

  // Reads s[0]/zp[0] only when ss == 0, and only for n > 0 (checked by every caller).
  QuantParams(const float* s_, const int32_t* zp_, int32_t qmin_, int32_t qmax_)
      : s(s_), zp(zp_), qmin(_mm256_set1_epi32(qmin_)), qmax(_mm256_set1_epi32(qmax_)) {
    if (kPer) {
      s0 = lo0 = hi0 = _mm256_setzero_ps();
      z0 = _mm256_setzero_si256();
    } else {
      const int32_t z = zp[0];
      // The same int subtraction and int->float conversion as the scalar float(qmin - z).
      s0 = _mm256_set1_ps(s[0]);
      lo0 = _mm256_set1_ps(float(qmin_ - z));
      hi0 = _mm256_set1_ps(float(qmax_ - z));
      z0 = _mm256_set1_epi32(z);
    }
  }
  // Elements i..i+7; the masked forms give inactive lanes s = 0 and zp = 0, whose results are
  // discarded (and whose NaN flags are masked off).
  __m256i zero(int64_t i) const {
    return kPer ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zp + i)) : z0;
  }
  __m256i zero(int64_t i, __m256i m) const { return kPer ? _mm256_maskload_epi32(zp + i, m) : z0; }
  __m256 scale(int64_t i) const { return kPer ? _mm256_loadu_ps(s + i) : s0; }
  __m256 scale(int64_t i, __m256i m) const { return kPer ? _mm256_maskload_ps(s + i, m) : s0; }
  __m256 lo(__m256i z) const {
    return kPer ? _mm256_cvtepi32_ps(_mm256_sub_epi32(qmin, z)) : lo0;  // float(qmin - zp)
  }
  __m256 hi(__m256i z) const {
    return kPer ? _mm256_cvtepi32_ps(_mm256_sub_epi32(qmax, z)) : hi0;  // float(qmax - zp)
  }
};

// rne(clamp(x / s, lo, hi)) as an exact integer-valued float; ORs NaN quotients into `nan`.
// Equal to the scalar quantize_one: max_ps returns its second operand (lo) when the quotient is
// NaN, like `if (!(v >= lo)) v = lo`; where they differ (v == lo == 0 with other zero signs) the
// integer is the same. +-inf land on lo/hi. The rounding mode is explicit, so MXCSR's RC field
// cannot change it; the value is integral and in range, so cvtt is exact.
inline __m256 quant_round(__m256 x, __m256 s, __m256 lo, __m256 hi, __m256& nan) {
  __m256 v = _mm256_div_ps(x, s);  // IEEE division, as the contract requires
  nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
  return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// clamp(rne(x/s) + zp, qmin, qmax) as int32 for elements i..i+7: the value before narrowing.
template <bool kPer>
inline __m256i quant_q(const QuantParams<kPer>& p, const float* x, int64_t i, __m256& nan) {
  const __m256i z = p.zero(i);
  const __m256 r = quant_round(_mm256_loadu_ps(x + i), p.scale(i), p.lo(z), p.hi(z), nan);
  return _mm256_add_epi32(_mm256_cvttps_epi32(r), z);
}

// The same for the first k < 8 elements; inactive lanes are garbage but raise no flag.
template <bool kPer>
inline __m256i quant_q_masked(const QuantParams<kPer>& p, const float* x, int64_t i, __m256i m,
                              __m256& nan) {
  const __m256i z = p.zero(i, m);
  __m256 tnan = _mm256_setzero_ps();
  const __m256 r =
      quant_round(_mm256_maskload_ps(x + i, m), p.scale(i, m), p.lo(z), p.hi(z), tnan);
  nan = _mm256_or_ps(nan, _mm256_and_ps(tnan, _mm256_castsi256_ps(m)));
  return _mm256_add_epi32(_mm256_cvttps_epi32(r), z);
}

// Byte 0 of each int32 (the scalar `static_cast<uint8_t>(q)`), exact for every int32 value.
// vpshufb moves byte 0 of the four dwords of a lane into dword kSlot of that lane, zeroing the rest.
#define LOWBIT_B(j) static_cast<char>((j) % 16 / 4 == kSlot ? 4 * ((j) % 4) : -1)
template <int kSlot>
inline __m256i dword_low_bytes(__m256i q) {
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
inline __m256i narrow32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i t = _mm256_or_si256(_mm256_or_si256(dword_low_bytes<0>(a), dword_low_bytes<1>(b)),
                                    _mm256_or_si256(dword_low_bytes<2>(c), dword_low_bytes<3>(d)));
  // Lane 0 holds elements 0-3, 8-11, 16-19, 24-27; lane 1 the other groups of four.
  return _mm256_permutevar8x32_epi32(t, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// 8 int32 -> their 8 low bytes, as a little-endian uint64.
inline uint64_t narrow8(__m256i q) {
  const __m256i t = dword_low_bytes<0>(q);
  const __m128i b = _mm_unpacklo_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
  return static_cast<uint64_t>(_mm_cvtsi128_si64(b));
}

// ---------------------------------------------------------------------------------------------
// quantize_f32_q8

template <bool kPer>
bool quantize_q8_impl(const float* x, int64_t n, const float* s, const int32_t* zp, int32_t qmin,
                      int32_t qmax, uint8_t* out) {
  const QuantParams<kPer> p(s, zp, qmin, qmax);
  __m256 nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    prefetch_ahead(x, i, n);
    prefetch_ahead(x, i + 16, n);
    const __m256i q0 = quant_q(p, x, i, nan), q1 = quant_q(p, x, i + 8, nan);
    const __m256i q2 = quant_q(p, x, i + 16, nan), q3 = quant_q(p, x, i + 24, nan);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), narrow32(q0, q1, q2, q3));
  }
  for (; i + 8 <= n; i += 8) {
    const uint64_t v = narrow8(quant_q(p, x, i, nan));
    std::memcpy(out + i, &v, 8);
  }
  if (i < n) {
    const uint64_t v = narrow8(quant_q_masked(p, x, i, lane_mask(n - i), nan));
    std::memcpy(out + i, &v, static_cast<size_t>(n - i));
  }
  return _mm256_movemask_ps(nan) != 0;
}

bool quantize_f32_q8(const float* x, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                     int32_t qmin, int32_t qmax, uint8_t* out) {
  if (n <= 0) return false;
  return ss == 0 ? quantize_q8_impl<false>(x, n, s, zp, qmin, qmax, out)
                 : quantize_q8_impl<true>(x, n, s, zp, qmin, qmax, out);
}

// ---------------------------------------------------------------------------------------------
// quantize_f32_q4p

// Eight int32 values -> (q[2j] & 15) | (q[2j+1] & 15) << 4 in byte 0 of 64-bit lane j (bits 8-31
// of that lane are zero): the odd element's low nibble sits at bit 32 and moves to bit 4.
inline __m256i pair_nibbles(__m256i q) {
  const __m256i t = _mm256_and_si256(q, _mm256_set1_epi32(15));
  return _mm256_or_si256(t, _mm256_srli_epi64(t, 28));
}

// Bytes 0 and 8 of each lane (its two pair bytes) into bytes 2*kSlot, 2*kSlot+1 of that lane.
#define LOWBIT_B(j) \
  static_cast<char>((j) % 16 == 2 * kSlot ? 0 : (j) % 16 == 2 * kSlot + 1 ? 8 : -1)
template <int kSlot>
inline __m256i qword_low_bytes(__m256i y) {
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

// Eight int32 values -> four packed bytes, little-endian.
inline uint32_t pack8_nibbles(__m256i q) {
  const __m256i y = qword_low_bytes<0>(pair_nibbles(q));
  const __m128i b = _mm_unpacklo_epi16(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(b));
}

template <bool kPer>
bool quantize_q4p_impl(const float* x, int64_t n, const float* s, const int32_t* zp, int32_t qmin,
                       int32_t qmax, uint8_t* out) {
  const QuantParams<kPer> p(s, zp, qmin, qmax);
  __m256 nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    prefetch_ahead(x, i, n);
    prefetch_ahead(x, i + 16, n);
    const __m256i y0 = pair_nibbles(quant_q(p, x, i, nan));
    const __m256i y1 = pair_nibbles(quant_q(p, x, i + 8, nan));
    const __m256i y2 = pair_nibbles(quant_q(p, x, i + 16, nan));
    const __m256i y3 = pair_nibbles(quant_q(p, x, i + 24, nan));
    // Lane 0 now holds pair bytes 0,1, 4,5, 8,9, 12,13 and lane 1 bytes 2,3, 6,7, ...
    const __m256i t = _mm256_or_si256(_mm256_or_si256(qword_low_bytes<0>(y0), qword_low_bytes<1>(y1)),
                                      _mm256_or_si256(qword_low_bytes<2>(y2), qword_low_bytes<3>(y3)));
    const __m128i r = _mm_unpacklo_epi16(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i / 2), r);
  }
  for (; i + 8 <= n; i += 8) {
    const uint32_t v = pack8_nibbles(quant_q(p, x, i, nan));
    std::memcpy(out + i / 2, &v, 4);
  }
  if (i < n) {
    const __m256i m = lane_mask(n - i);
    // Zeroing the inactive lanes leaves the zero high nibble an odd n needs.
    const uint32_t v = pack8_nibbles(_mm256_and_si256(quant_q_masked(p, x, i, m, nan), m));
    std::memcpy(out + i / 2, &v, static_cast<size_t>((n - i + 1) / 2));
  }
  return _mm256_movemask_ps(nan) != 0;
}

bool quantize_f32_q4p(const float* x, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                      int32_t qmin, int32_t qmax, uint8_t* out) {
  if (n <= 0) return false;
  return ss == 0 ? quantize_q4p_impl<false>(x, n, s, zp, qmin, qmax, out)
                 : quantize_q4p_impl<true>(x, n, s, zp, qmin, qmax, out);
}

// ---------------------------------------------------------------------------------------------
// Float outputs. A call that writes at least kStreamBytes streams its body past the caches
// (movntps): the result cannot stay cached anyway, and skipping the read-for-ownership of every
// output line cuts DRAM traffic (dequantize of 16M int8 elements ran 1.7x faster on the
// development machine; quantize, whose output is a fifth of its traffic, gains nothing, so it
// does not stream). The drivers hand each thread chunks of a quarter of its share, so with two
// threads only tensors of 8M+ floats (32 MiB, about the size of a last-level cache) stream.
// Smaller outputs use normal stores, so a consumer finds them in cache. Streaming changes no bit.
constexpr int64_t kStreamBytes = int64_t{4} << 20;

template <bool kStream>
inline void store_ps(float* p, __m256 v) {
  if (kStream)
    _mm256_stream_ps(p, v);  // p is 32-byte aligned (split_stream)
  else
    _mm256_storeu_ps(p, v);
}

// Calls run(std::false_type, 0, n) for a small or misaligned output; otherwise runs the first
// h < 8 elements with normal stores and [h, n) with streaming stores from the 32-byte aligned
// out + h, then fences so the streamed data is visible before the caller signals completion.
// `even_head` (packed input) requires h even so the streamed part starts on a whole byte.
template <class F>
inline bool split_stream(const float* out, int64_t n, bool even_head, F&& run) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(out);
  const int64_t h = static_cast<int64_t>(((32 - (a & 31)) & 31) >> 2);
  if (n * int64_t{4} < kStreamBytes || (a & 3) != 0 || (even_head && (h & 1)))
    return run(std::false_type{}, int64_t{0}, n);
  bool flag = h > 0 && run(std::false_type{}, int64_t{0}, h);
  flag |= run(std::true_type{}, h, n);
  _mm_sfence();
  return flag;
}

// ---------------------------------------------------------------------------------------------
// fake_quantize_f32 / fake_quantize_grad_f32

// float(int32(q)) * s: the integer round trip turns a -0.0 from rounding into +0.0, as the
// scalar kernel (and dequantize(quantize())) does.
template <bool kPer>
inline __m256 fake_one(const QuantParams<kPer>& p, __m256 x, __m256 sc, __m256i z, __m256& nan) {
  const __m256i r = _mm256_cvttps_epi32(quant_round(x, sc, p.lo(z), p.hi(z), nan));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(r), sc);
}

template <bool kPer, bool kStream>
bool fake_quantize_impl(const float* x, int64_t n, const float* s, const int32_t* zp,
                        int32_t qmin, int32_t qmax, float* out) {
  const QuantParams<kPer> p(s, zp, qmin, qmax);
  __m256 nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    prefetch_ahead(x, i, n);
    store_ps<kStream>(out + i, fake_one(p, _mm256_loadu_ps(x + i), p.scale(i), p.zero(i), nan));
    store_ps<kStream>(out + i + 8, fake_one(p, _mm256_loadu_ps(x + i + 8), p.scale(i + 8),
                                            p.zero(i + 8), nan));
  }
  for (; i + 8 <= n; i += 8)
    store_ps<kStream>(out + i, fake_one(p, _mm256_loadu_ps(x + i), p.scale(i), p.zero(i), nan));
  if (i < n) {
    const __m256i m = lane_mask(n - i);
    __m256 tnan = _mm256_setzero_ps();
    const __m256 r =
        fake_one(p, _mm256_maskload_ps(x + i, m), p.scale(i, m), p.zero(i, m), tnan);
    nan = _mm256_or_ps(nan, _mm256_and_ps(tnan, _mm256_castsi256_ps(m)));
    _mm256_maskstore_ps(out + i, m, r);
  }
  return _mm256_movemask_ps(nan) != 0;
}

template <bool kPer>
bool fake_quantize_run(const float* x, int64_t n, const float* s, const int32_t* zp,
                       int32_t qmin, int32_t qmax, float* out) {
  return split_stream(out, n, false, [&](auto stream, int64_t b, int64_t e) {
    const int64_t o = kPer ? b : 0;
    return fake_quantize_impl<kPer, decltype(stream)::value>(x + b, e - b, s + o, zp + o, qmin,
                                                             qmax, out + b);
  });
}

bool fake_quantize_f32(const float* x, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                       int32_t qmin, int32_t qmax, float* out) {
  if (n <= 0) return false;
  return ss == 0 ? fake_quantize_run<false>(x, n, s, zp, qmin, qmax, out)
                 : fake_quantize_run<true>(x, n, s, zp, qmin, qmax, out);
}

// g where lo <= rne(x/s) <= hi, else +0.0 (the AND with an all-zero mask). Clamping to one step
// outside [lo, hi] (lo - 1.0f, hi + 1.0f in float, as the scalar kernel does) keeps in-range
// answers, and a NaN quotient lands on lo - 1 (out of range) in both. The comparison of the
// rounded float equals the scalar comparison of float(int32(...)): only the sign of a zero can
// differ, and comparisons ignore it.
template <bool kPer>
inline __m256 grad_one(const QuantParams<kPer>& p, __m256 x, __m256 g, __m256 sc, __m256i z,
                       __m256& nan) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 lo = p.lo(z), hi = p.hi(z);
  const __m256 r = quant_round(x, sc, _mm256_sub_ps(lo, one), _mm256_add_ps(hi, one), nan);
  const __m256 in =
      _mm256_and_ps(_mm256_cmp_ps(r, lo, _CMP_GE_OQ), _mm256_cmp_ps(r, hi, _CMP_LE_OQ));
  return _mm256_and_ps(in, g);
}

template <bool kPer, bool kStream>
bool fake_quantize_grad_impl(const float* x, const float* g, int64_t n, const float* s,
                             const int32_t* zp, int32_t qmin, int32_t qmax, float* out) {
  const QuantParams<kPer> p(s, zp, qmin, qmax);
  __m256 nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    prefetch_ahead(x, i, n);
    prefetch_ahead(g, i, n);
    store_ps<kStream>(out + i, grad_one(p, _mm256_loadu_ps(x + i), _mm256_loadu_ps(g + i),
                                        p.scale(i), p.zero(i), nan));
    store_ps<kStream>(out + i + 8, grad_one(p, _mm256_loadu_ps(x + i + 8),
                                            _mm256_loadu_ps(g + i + 8), p.scale(i + 8),
                                            p.zero(i + 8), nan));
  }
  for (; i + 8 <= n; i += 8)
    store_ps<kStream>(out + i, grad_one(p, _mm256_loadu_ps(x + i), _mm256_loadu_ps(g + i),
                                        p.scale(i), p.zero(i), nan));
  if (i < n) {
    const __m256i m = lane_mask(n - i);
    __m256 tnan = _mm256_setzero_ps();
    const __m256 r = grad_one(p, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(g + i, m),
                              p.scale(i, m), p.zero(i, m), tnan);
    nan = _mm256_or_ps(nan, _mm256_and_ps(tnan, _mm256_castsi256_ps(m)));
    _mm256_maskstore_ps(out + i, m, r);
  }
  return _mm256_movemask_ps(nan) != 0;
}

template <bool kPer>
bool fake_quantize_grad_run(const float* x, const float* g, int64_t n, const float* s,
                            const int32_t* zp, int32_t qmin, int32_t qmax, float* out) {
  return split_stream(out, n, false, [&](auto stream, int64_t b, int64_t e) {
    const int64_t o = kPer ? b : 0;
    return fake_quantize_grad_impl<kPer, decltype(stream)::value>(x + b, g + b, e - b, s + o,
                                                                  zp + o, qmin, qmax, out + b);
  });
}

bool fake_quantize_grad_f32(const float* x, const float* g, int64_t n, const float* s,
                            const int32_t* zp, int64_t ss, int32_t qmin, int32_t qmax,
                            float* out) {
  if (n <= 0) return false;
  return ss == 0 ? fake_quantize_grad_run<false>(x, g, n, s, zp, qmin, qmax, out)
                 : fake_quantize_grad_run<true>(x, g, n, s, zp, qmin, qmax, out);
}

// ---------------------------------------------------------------------------------------------
// Dequantization: out = float(int32(q) - zp) * s, the scalar expression lane by lane.

template <bool kPer>
struct DeqParams {
  const float* s;
  const int32_t* zp;
  __m256 s0;  // ss == 0 only
  __m256i z0;

  DeqParams(const float* s_, const int32_t* zp_) : s(s_), zp(zp_) {
    s0 = kPer ? _mm256_setzero_ps() : _mm256_set1_ps(s[0]);
    z0 = kPer ? _mm256_setzero_si256() : _mm256_set1_epi32(zp[0]);
  }
  // Elements i..i+7 (the masked form reads only the active lanes' scales and zero points).
  __m256 apply(__m256i q, int64_t i) const {
    if (!kPer) return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, z0)), s0);
    const __m256i z = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zp + i));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, z)), _mm256_loadu_ps(s + i));
  }
  __m256 apply(__m256i q, int64_t i, __m256i m) const {
    if (!kPer) return apply(q, i);
    const __m256i z = _mm256_maskload_epi32(zp + i, m);
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, z)), _mm256_maskload_ps(s + i, m));
  }
};

// Widens eight bytes (the low 64 bits of b) to int32: signed for int8, zero-extended for uint8.
template <bool kSigned>
inline __m256i widen8(__m128i b) {
  return kSigned ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
}

template <bool kSigned, bool kPer, bool kStream>
bool dequantize_q8_impl(const uint8_t* q, int64_t n, const float* s, const int32_t* zp,
                        float* out) {
  const DeqParams<kPer> c(s, zp);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i + 16));
    store_ps<kStream>(out + i, c.apply(widen8<kSigned>(a), i));
    store_ps<kStream>(out + i + 8, c.apply(widen8<kSigned>(_mm_srli_si128(a, 8)), i + 8));
    store_ps<kStream>(out + i + 16, c.apply(widen8<kSigned>(b), i + 16));
    store_ps<kStream>(out + i + 24, c.apply(widen8<kSigned>(_mm_srli_si128(b, 8)), i + 24));
  }
  for (; i + 8 <= n; i += 8) {
    const __m128i a = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + i));
    store_ps<kStream>(out + i, c.apply(widen8<kSigned>(a), i));
  }
  if (i < n) {
    uint64_t buf = 0;
    std::memcpy(&buf, q + i, static_cast<size_t>(n - i));
    const __m256i m = lane_mask(n - i);
    const __m128i a = _mm_cvtsi64_si128(static_cast<int64_t>(buf));
    _mm256_maskstore_ps(out + i, m, c.apply(widen8<kSigned>(a), i, m));
  }
  return false;
}

template <bool kSigned, bool kPer>
void dequantize_q8_run(const uint8_t* q, int64_t n, const float* s, const int32_t* zp,
                       float* out) {
  split_stream(out, n, false, [&](auto stream, int64_t b, int64_t e) {
    const int64_t o = kPer ? b : 0;
    return dequantize_q8_impl<kSigned, kPer, decltype(stream)::value>(q + b, e - b, s + o,
                                                                      zp + o, out + b);
  });
}

void dequantize_s8_f32(const int8_t* q, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                       float* out) {
  if (n <= 0) return;
  const uint8_t* p = reinterpret_cast<const uint8_t*>(q);
  if (ss == 0)
    dequantize_q8_run<true, false>(p, n, s, zp, out);
  else
    dequantize_q8_run<true, true>(p, n, s, zp, out);
}

void dequantize_u8_f32(const uint8_t* q, int64_t n, const float* s, const int32_t* zp,
                       int64_t ss, float* out) {
  if (n <= 0) return;
  if (ss == 0)
    dequantize_q8_run<false, false>(q, n, s, zp, out);
  else
    dequantize_q8_run<false, true>(q, n, s, zp, out);
}

// 16 packed bytes -> 32 nibbles in element order (low nibble first), one a byte: lo holds
// elements 0-15, hi elements 16-31. Signed: (v ^ 8) - 8 sign-extends a nibble inside its byte.
template <bool kSigned>
inline void expand_nibbles(__m128i b, __m128i& lo, __m128i& hi) {
  const __m128i m15 = _mm_set1_epi8(15);
  const __m128i l = _mm_and_si128(b, m15);
  const __m128i h = _mm_and_si128(_mm_srli_epi16(b, 4), m15);
  lo = _mm_unpacklo_epi8(l, h);
  hi = _mm_unpackhi_epi8(l, h);
  if (kSigned) {
    const __m128i e = _mm_set1_epi8(8);
    lo = _mm_sub_epi8(_mm_xor_si128(lo, e), e);
    hi = _mm_sub_epi8(_mm_xor_si128(hi, e), e);
  }
}

// p points at the byte holding element 0 (low nibble).
template <bool kSigned, bool kPer, bool kStream>
bool dequantize_p4_impl(const uint8_t* p, int64_t n, const float* s, const int32_t* zp,
                        float* out) {
  const DeqParams<kPer> c(s, zp);
  int64_t i = 0;
  __m128i lo, hi;
  for (; i + 32 <= n; i += 32) {
    expand_nibbles<kSigned>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i / 2)), lo, hi);
    store_ps<kStream>(out + i, c.apply(_mm256_cvtepi8_epi32(lo), i));
    store_ps<kStream>(out + i + 8, c.apply(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)), i + 8));
    store_ps<kStream>(out + i + 16, c.apply(_mm256_cvtepi8_epi32(hi), i + 16));
    store_ps<kStream>(out + i + 24, c.apply(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)), i + 24));
  }
  if (i < n) {
    // Fewer than 32 elements: copy their ceil(rem / 2) bytes, expand, store lane-masked.
    alignas(16) uint8_t buf[16] = {};
    const int64_t rem = n - i;
    std::memcpy(buf, p + i / 2, static_cast<size_t>((rem + 1) / 2));
    expand_nibbles<kSigned>(_mm_load_si128(reinterpret_cast<const __m128i*>(buf)), lo, hi);
    const __m128i part[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4 && i < n; ++k, i += 8) {
      const __m256i v = _mm256_cvtepi8_epi32(part[k]);
      if (n - i >= 8) {
        store_ps<kStream>(out + i, c.apply(v, i));
      } else {
        const __m256i m = lane_mask(n - i);
        _mm256_maskstore_ps(out + i, m, c.apply(v, i, m));
      }
    }
  }
  return false;
}

template <bool kSigned, bool kPer>
void dequantize_p4_run(const uint8_t* p, int64_t n, const float* s, const int32_t* zp,
                       float* out) {
  split_stream(out, n, true, [&](auto stream, int64_t b, int64_t e) {
    const int64_t o = kPer ? b : 0;
    return dequantize_p4_impl<kSigned, kPer, decltype(stream)::value>(p + b / 2, e - b, s + o,
                                                                      zp + o, out + b);
  });
}

void dequantize_s4p_f32(const uint8_t* p, int64_t n, const float* s, const int32_t* zp,
                        int64_t ss, float* out) {
  if (n <= 0) return;
  if (ss == 0)
    dequantize_p4_run<true, false>(p, n, s, zp, out);
  else
    dequantize_p4_run<true, true>(p, n, s, zp, out);
}

void dequantize_u4p_f32(const uint8_t* p, int64_t n, const float* s, const int32_t* zp,
                        int64_t ss, float* out) {
  if (n <= 0) return;
  if (ss == 0)
    dequantize_p4_run<false, false>(p, n, s, zp, out);
  else
    dequantize_p4_run<false, true>(p, n, s, zp, out);
}

// ---------------------------------------------------------------------------------------------
// minmax_f32
//
// _mm256_min_ps(v, m) is `v < m ? v : m` and _mm256_max_ps(v, m) is `v > m ? v : m`: exactly the
// scalar `if (v < mn) mn = v` / `if (v > mx) mx = v`, NaN handling and +-0 included. So ss == 1 is
// the scalar loop lane by lane. For ss == 0 each accumulator lane sees its elements in index
// order and keeps the first of equal values, as the scalar loop does; lanes can then disagree
// only on the sign of a zero minimum (maximum), and only then is the scalar answer (the first
// zero of x, since the running value was nonzero before it) looked up.

inline float hmin(__m256 v) {
  __m128 t = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  t = _mm_min_ps(t, _mm_movehl_ps(t, t));
  t = _mm_min_ss(t, _mm_movehdup_ps(t));
  return _mm_cvtss_f32(t);
}

inline float hmax(__m256 v) {
  __m128 t = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  t = _mm_max_ps(t, _mm_movehl_ps(t, t));
  t = _mm_max_ss(t, _mm_movehdup_ps(t));
  return _mm_cvtss_f32(t);
}

// Lanes holding +0.0 (bit 0) and -0.0 (bit 1) in any of the four accumulators.
inline int zero_signs(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 z = _mm256_or_ps(
      _mm256_or_ps(_mm256_and_ps(_mm256_cmp_ps(a, zero, _CMP_EQ_OQ), a),
                   _mm256_and_ps(_mm256_cmp_ps(b, zero, _CMP_EQ_OQ), b)),
      _mm256_or_ps(_mm256_and_ps(_mm256_cmp_ps(c, zero, _CMP_EQ_OQ), c),
                   _mm256_and_ps(_mm256_cmp_ps(d, zero, _CMP_EQ_OQ), d)));
  const __m256 p = _mm256_or_ps(
      _mm256_or_ps(_mm256_andnot_ps(a, _mm256_cmp_ps(a, zero, _CMP_EQ_OQ)),
                   _mm256_andnot_ps(b, _mm256_cmp_ps(b, zero, _CMP_EQ_OQ))),
      _mm256_or_ps(_mm256_andnot_ps(c, _mm256_cmp_ps(c, zero, _CMP_EQ_OQ)),
                   _mm256_andnot_ps(d, _mm256_cmp_ps(d, zero, _CMP_EQ_OQ))));
  // z: sign bit set where some accumulator holds -0.0; p: sign bit set where one holds +0.0.
  return (_mm256_movemask_ps(p) != 0 ? 1 : 0) | (_mm256_movemask_ps(z) != 0 ? 2 : 0);
}

// The first x[i] == 0 (one exists whenever this is called).
inline float first_zero(const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const int bits =
        _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), _mm256_setzero_ps(), _CMP_EQ_OQ));
    if (bits) return x[i + __builtin_ctz(static_cast<unsigned>(bits))];
  }
  for (; i < n; ++i)
    if (x[i] == 0.0f) return x[i];
  return 0.0f;
}

bool minmax_seg(const float* x, int64_t n, float* mn, float* mx) {
  const float m0 = mn[0], M0 = mx[0];
  __m256 a0 = _mm256_set1_ps(m0), a1 = a0, a2 = a0, a3 = a0;
  __m256 b0 = _mm256_set1_ps(M0), b1 = b0, b2 = b0, b3 = b0;
  __m256 nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    const __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
    a0 = _mm256_min_ps(v0, a0);
    a1 = _mm256_min_ps(v1, a1);
    a2 = _mm256_min_ps(v2, a2);
    a3 = _mm256_min_ps(v3, a3);
    b0 = _mm256_max_ps(v0, b0);
    b1 = _mm256_max_ps(v1, b1);
    b2 = _mm256_max_ps(v2, b2);
    b3 = _mm256_max_ps(v3, b3);
    nan = _mm256_or_ps(nan, _mm256_or_ps(_mm256_cmp_ps(v0, v1, _CMP_UNORD_Q),
                                         _mm256_cmp_ps(v2, v3, _CMP_UNORD_Q)));
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    a0 = _mm256_min_ps(v, a0);
    b0 = _mm256_max_ps(v, b0);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  if (i < n) {
    // Inactive lanes become NaN, which min_ps/max_ps skip (v < m is false) like the scalar loop.
    const __m256i m = lane_mask(n - i);
    const __m256 v = _mm256_blendv_ps(_mm256_set1_ps(__builtin_nanf("")),
                                      _mm256_maskload_ps(x + i, m), _mm256_castsi256_ps(m));
    a0 = _mm256_min_ps(v, a0);
    b0 = _mm256_max_ps(v, b0);
    nan = _mm256_or_ps(nan, _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q),
                                          _mm256_castsi256_ps(m)));
  }
  // Ignoring the sign of zero, the lanes agree on the minimum value (x's NaNs never enter; a NaN
  // m0 stays in every lane). The tree order only matters for mixed zeros, handled below.
  float rmn = hmin(_mm256_min_ps(_mm256_min_ps(a0, a1), _mm256_min_ps(a2, a3)));
  float rmx = hmax(_mm256_max_ps(_mm256_max_ps(b0, b1), _mm256_max_ps(b2, b3)));
  if (rmn == 0.0f && zero_signs(a0, a1, a2, a3) == 3) rmn = first_zero(x, n);
  if (rmx == 0.0f && zero_signs(b0, b1, b2, b3) == 3) rmx = first_zero(x, n);
  mn[0] = rmn;
  mx[0] = rmx;
  return _mm256_movemask_ps(nan) != 0;
}

bool minmax_elem(const float* x, int64_t n, float* mn, float* mx) {
  __m256 nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(mn + i, _mm256_min_ps(v, _mm256_loadu_ps(mn + i)));
    _mm256_storeu_ps(mx + i, _mm256_max_ps(v, _mm256_loadu_ps(mx + i)));
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  if (i < n) {
    const __m256i m = lane_mask(n - i);
    const __m256 v = _mm256_maskload_ps(x + i, m);
    _mm256_maskstore_ps(mn + i, m, _mm256_min_ps(v, _mm256_maskload_ps(mn + i, m)));
    _mm256_maskstore_ps(mx + i, m, _mm256_max_ps(v, _mm256_maskload_ps(mx + i, m)));
    nan = _mm256_or_ps(nan, _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q),
                                          _mm256_castsi256_ps(m)));
  }
  return _mm256_movemask_ps(nan) != 0;
}

bool minmax_f32(const float* x, int64_t n, int64_t ss, float* mn, float* mx) {
  if (n <= 0) return false;
  return ss == 0 ? minmax_seg(x, n, mn, mx) : minmax_elem(x, n, mn, mx);
}

// ---------------------------------------------------------------------------------------------
// 4-bit packing. A byte v is in range when uint8(v + bias) < 16 (bias 8: int8 -8..7; bias 0:
// uint8 0..15), so OR-ing the biased bytes and testing the high nibble checks a whole block.
// Stack-buffer tails are padded with uint8(-bias), which passes the check.

// 64 bytes -> 32: in each 16-bit word (lo | hi << 8), (w & 0x0F) | ((w >> 4) & 0xF0) is the byte
// (lo & 15) | (hi & 15) << 4 with a zero high byte, so packus is exact; it interleaves 128-bit
// lanes, which the 0xD8 permute undoes.
inline __m256i pack64(__m256i a, __m256i b) {
  const __m256i m0f = _mm256_set1_epi16(0x0F), mf0 = _mm256_set1_epi16(0xF0);
  const __m256i ca = _mm256_or_si256(_mm256_and_si256(a, m0f),
                                     _mm256_and_si256(_mm256_srli_epi16(a, 4), mf0));
  const __m256i cb = _mm256_or_si256(_mm256_and_si256(b, m0f),
                                     _mm256_and_si256(_mm256_srli_epi16(b, 4), mf0));
  return _mm256_permute4x64_epi64(_mm256_packus_epi16(ca, cb), 0xD8);
}

bool pack_x4(const uint8_t* q, int64_t n, int32_t bias, uint8_t* out) {
  if (n <= 0) return false;
  const __m256i vb = _mm256_set1_epi8(static_cast<char>(bias));
  __m256i acc = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i + 32));
    acc = _mm256_or_si256(acc, _mm256_or_si256(_mm256_add_epi8(a, vb), _mm256_add_epi8(b, vb)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i / 2), pack64(a, b));
  }
  if (i < n) {
    const int64_t rem = n - i;
    alignas(32) uint8_t buf[64];
    alignas(32) uint8_t res[32];
    std::memset(buf, static_cast<uint8_t>(-bias), sizeof buf);
    std::memcpy(buf, q + i, static_cast<size_t>(rem));
    const __m256i a = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
    const __m256i b = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf + 32));
    acc = _mm256_or_si256(acc, _mm256_or_si256(_mm256_add_epi8(a, vb), _mm256_add_epi8(b, vb)));
    _mm256_store_si256(reinterpret_cast<__m256i*>(res), pack64(a, b));
    if (rem & 1) res[rem / 2] &= 15;  // an odd n leaves a zero high nibble
    std::memcpy(out + i / 2, res, static_cast<size_t>((rem + 1) / 2));
  }
  return !_mm256_testz_si256(acc, _mm256_set1_epi8(static_cast<char>(0xF0)));
}

inline __m256i pack_pair(__m256i lo, __m256i hi) {
  // (hi << 4) within 16-bit words, masked per byte, is each byte's low nibble moved up.
  return _mm256_or_si256(_mm256_and_si256(lo, _mm256_set1_epi8(15)),
                         _mm256_and_si256(_mm256_slli_epi16(hi, 4),
                                          _mm256_set1_epi8(static_cast<char>(0xF0))));
}

bool pack_x4_vert(const uint8_t* lo, const uint8_t* hi, int64_t n, int32_t bias, uint8_t* out) {
  if (n <= 0) return false;
  const __m256i vb = _mm256_set1_epi8(static_cast<char>(bias));
  const __m256i m15 = _mm256_set1_epi8(15);
  __m256i acc = _mm256_setzero_si256();
  int64_t i = 0;
  if (hi) {
    for (; i + 32 <= n; i += 32) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo + i));
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi + i));
      acc = _mm256_or_si256(acc, _mm256_or_si256(_mm256_add_epi8(a, vb), _mm256_add_epi8(b, vb)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), pack_pair(a, b));
    }
    if (i < n) {
      const size_t rem = static_cast<size_t>(n - i);
      alignas(32) uint8_t ba[32], bb[32], res[32];
      std::memset(ba, static_cast<uint8_t>(-bias), sizeof ba);
      std::memset(bb, static_cast<uint8_t>(-bias), sizeof bb);
      std::memcpy(ba, lo + i, rem);
      std::memcpy(bb, hi + i, rem);
      const __m256i a = _mm256_load_si256(reinterpret_cast<const __m256i*>(ba));
      const __m256i b = _mm256_load_si256(reinterpret_cast<const __m256i*>(bb));
      acc = _mm256_or_si256(acc, _mm256_or_si256(_mm256_add_epi8(a, vb), _mm256_add_epi8(b, vb)));
      _mm256_store_si256(reinterpret_cast<__m256i*>(res), pack_pair(a, b));
      std::memcpy(out + i, res, rem);
    }
  } else {
    for (; i + 32 <= n; i += 32) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo + i));
      acc = _mm256_or_si256(acc, _mm256_add_epi8(a, vb));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_and_si256(a, m15));
    }
    if (i < n) {
      const size_t rem = static_cast<size_t>(n - i);
      alignas(32) uint8_t ba[32], res[32];
      std::memset(ba, static_cast<uint8_t>(-bias), sizeof ba);
      std::memcpy(ba, lo + i, rem);
      const __m256i a = _mm256_load_si256(reinterpret_cast<const __m256i*>(ba));
      acc = _mm256_or_si256(acc, _mm256_add_epi8(a, vb));
      _mm256_store_si256(reinterpret_cast<__m256i*>(res), _mm256_and_si256(a, m15));
      std::memcpy(out + i, res, rem);
    }
  }
  return !_mm256_testz_si256(acc, _mm256_set1_epi8(static_cast<char>(0xF0)));
}

// ---------------------------------------------------------------------------------------------
// 4-bit unpacking: nibbles split with and/shift; (v ^ 8) - 8 sign-extends within the byte.

template <bool kSigned>
inline __m256i finish_nibbles(__m256i v) {
  if (!kSigned) return v;
  const __m256i e = _mm256_set1_epi8(8);
  return _mm256_sub_epi8(_mm256_xor_si256(v, e), e);
}

// 32 packed bytes -> 64 nibbles in element order (r0: elements 0-31, r1: 32-63).
template <bool kSigned>
inline void unpack64(__m256i p, __m256i& r0, __m256i& r1) {
  const __m256i m15 = _mm256_set1_epi8(15);
  const __m256i l = _mm256_and_si256(p, m15);
  const __m256i h = _mm256_and_si256(_mm256_srli_epi16(p, 4), m15);
  // Per 128-bit lane: ul = bytes 0-7 of the lane interleaved, uh = bytes 8-15.
  const __m256i ul = finish_nibbles<kSigned>(_mm256_unpacklo_epi8(l, h));
  const __m256i uh = finish_nibbles<kSigned>(_mm256_unpackhi_epi8(l, h));
  r0 = _mm256_permute2x128_si256(ul, uh, 0x20);
  r1 = _mm256_permute2x128_si256(ul, uh, 0x31);
}

template <bool kSigned>
void unpack_impl(const uint8_t* p, int64_t n, uint8_t* out) {
  int64_t i = 0;
  __m256i r0, r1;
  for (; i + 64 <= n; i += 64) {
    unpack64<kSigned>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i / 2)), r0, r1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), r0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 32), r1);
  }
  if (i < n) {
    const int64_t rem = n - i;
    alignas(32) uint8_t buf[32] = {};
    alignas(32) uint8_t res[64];
    std::memcpy(buf, p + i / 2, static_cast<size_t>((rem + 1) / 2));
    unpack64<kSigned>(_mm256_load_si256(reinterpret_cast<const __m256i*>(buf)), r0, r1);
    _mm256_store_si256(reinterpret_cast<__m256i*>(res), r0);
    _mm256_store_si256(reinterpret_cast<__m256i*>(res + 32), r1);
    std::memcpy(out + i, res, static_cast<size_t>(rem));
  }
}

void unpack_s4(const uint8_t* p, int64_t n, uint8_t* out) {
  if (n > 0) unpack_impl<true>(p, n, out);
}

void unpack_u4(const uint8_t* p, int64_t n, uint8_t* out) {
  if (n > 0) unpack_impl<false>(p, n, out);
}

template <bool kSigned>
void unpack_vert_impl(const uint8_t* p, int64_t n, uint8_t* lo, uint8_t* hi) {
  const __m256i m15 = _mm256_set1_epi8(15);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + i),
                        finish_nibbles<kSigned>(_mm256_and_si256(v, m15)));
    if (hi)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + i),
                          finish_nibbles<kSigned>(_mm256_and_si256(_mm256_srli_epi16(v, 4), m15)));
  }
  if (i < n) {
    const size_t rem = static_cast<size_t>(n - i);
    alignas(32) uint8_t buf[32] = {};
    alignas(32) uint8_t res[32];
    std::memcpy(buf, p + i, rem);
    const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
    _mm256_store_si256(reinterpret_cast<__m256i*>(res),
                       finish_nibbles<kSigned>(_mm256_and_si256(v, m15)));
    std::memcpy(lo + i, res, rem);
    if (hi) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(res),
                         finish_nibbles<kSigned>(_mm256_and_si256(_mm256_srli_epi16(v, 4), m15)));
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

}  // namespace avx2
}  // namespace lowbit
