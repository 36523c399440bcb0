// AVX2 kernels of lb.linear. Built with -mavx2 -mfma -mf16c -mbmi2 -ffp-contract=off only;
// reached only when the dispatcher has seen AVX2 and OS support for YMM state. Semantics:
// cpp/kernels/scalar/linear.cpp. The integer sums and the epilogue match it bit for bit (sums
// wrap the same in any order; the epilogue uses one vmulps / vaddps / vcvtdq2ps per scalar
// operation, in the same order, never an FMA). The weight-only kernels use FMA and their own
// summation order, which a documented tolerance covers.
#include <immintrin.h>

#include "gemm_geometry.h"
#include "lowbit/kernels.h"
#include "tile_sums.h"

namespace lowbit {
namespace avx2 {
namespace {

// ---------------------------------------------------------------------------------------------
// Small M, integer: per-group sums streaming one B panel. Like the GEMM's small-M kernel: B is
// an unsigned byte (or nibble) widened to int16, A an int16 pair broadcast, vpmaddwd sums two
// exact products into int32 and vpaddd wraps like the scalar uint32 sums.

// 8-bit B, rows [0, M) of a (already offset to the first row) over k-pairs [p0, p1): acc = the
// sums. B bytes widened to int16 (vpmovzxbw), one int16 A pair broadcast a row, vpmaddwd.
template <int M>
__attribute__((always_inline)) inline void group_sums(int64_t p0, int64_t p1, const int32_t* a,
                                                      const uint8_t* b, __m256i (&acc)[M][2]) {
  for (int r = 0; r < M; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  // Software prefetch far ahead of the stream (32 KiB, measured best for an 8-bit 4096 x 4096
  // weight coming from DRAM: about twice the rate of the hardware prefetchers alone).
  constexpr int64_t kAhead = 1024;  // k-pairs
#pragma GCC unroll 2
  for (int64_t p = p0; p < p1; ++p) {
    _mm_prefetch(reinterpret_cast<const char*>(b + (p + kAhead) * 2 * kNR), _MM_HINT_T0);
    const __m128i* q = reinterpret_cast<const __m128i*>(b + p * 2 * kNR);
    const __m256i lo = _mm256_cvtepu8_epi16(_mm_loadu_si128(q));      // columns 0..7
    const __m256i hi = _mm256_cvtepu8_epi16(_mm_loadu_si128(q + 1));  // columns 8..15
    // Unrolled so that acc stays in registers: a rolled row loop keeps it on the stack, which
    // made 3 rows cost 4x the time of 2 (measured).
#pragma GCC unroll 4
    for (int r = 0; r < M; ++r) {
      const __m256i av = _mm256_set1_epi32(a[p * kMR + r]);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, lo));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, hi));
    }
  }
}

// 4-bit B against int8 A quads, rows [0, M) over k-pairs [p0, p1) (p0 even): vpmaddubsw of the
// nibbles (unsigned, 0..15) and the activations (int8) sums two exact products into an int16
// lane, |.| <= 2 * 15 * 128 = 3840, so eight steps add up in int16 lanes without saturating
// (<= 30720) before they are widened to int32. A step is two k-pairs (32 bytes of B): the low
// 128-bit lane holds pair 2q (columns 0..7 of the low nibbles; 8..15 of the high ones), the
// high lane pair 2q+1; the A quad word is broadcast and shuffled to match (bytes 0,1 low, 2,3
// high). Half the instructions of widening the nibbles to int16 for vpmaddwd.
template <int M>
__attribute__((always_inline)) inline void group_sums_q4(int64_t p0, int64_t p1, const int32_t* a,
                                                         const uint8_t* b, __m256i (&acc)[M][2]) {
  for (int r = 0; r < M; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  const __m256i m15 = _mm256_set1_epi8(15);
  const __m256i shuf = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                        2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
  int64_t q = p0 / 2;
  const int64_t qend = p1 / 2;  // whole quads; an odd p1 leaves one pair
  for (;;) {
    const bool tail = q >= qend;
    if (tail && !(p1 & 1)) break;
    const int64_t n = tail ? 1 : (qend - q < 8 ? qend - q : 8);
    __m256i s16[M][2];
    for (int r = 0; r < M; ++r) s16[r][0] = s16[r][1] = _mm256_setzero_si256();
    for (int64_t i = 0; i < n; ++i, ++q) {
      _mm_prefetch(reinterpret_cast<const char*>(b + (q + 128) * 2 * kNR), _MM_HINT_T0);  // 4 KiB
      const __m256i v = tail ? _mm256_zextsi128_si256(_mm_loadu_si128(
                                   reinterpret_cast<const __m128i*>(b + q * 2 * kNR)))
                             : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + q * 2 * kNR));
      const __m256i lo = _mm256_and_si256(v, m15);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m15);
#pragma GCC unroll 2
      for (int r = 0; r < M; ++r) {
        const __m256i av = _mm256_shuffle_epi8(_mm256_set1_epi32(a[q * kMR + r]), shuf);
        s16[r][0] = _mm256_add_epi16(s16[r][0], _mm256_maddubs_epi16(lo, av));
        s16[r][1] = _mm256_add_epi16(s16[r][1], _mm256_maddubs_epi16(hi, av));
      }
    }
    for (int r = 0; r < M; ++r)
      for (int h = 0; h < 2; ++h)
        acc[r][h] = _mm256_add_epi32(
            acc[r][h], _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(s16[r][h])),
                                        _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s16[r][h], 1))));
    if (tail) break;
  }
}

// float(C_j) of LinearEpilogue for row r, columns c..c+7, from the sums v (one copy of the
// zero-point correction, shared by every path below).
__attribute__((always_inline)) inline __m256 corrected8(const LinearEpilogue& e, int64_t j, int r,
                                                        int c, __m256i v) {
  const int64_t w = j * e.w_group + c;
  const uint32_t rt = e.rterm[j * e.rt_group + r];
  if (e.zb) {
    v = _mm256_add_epi32(v, _mm256_mullo_epi32(_mm256_set1_epi32(static_cast<int32_t>(rt)),
                                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e.zb + w))));
  } else {
    v = _mm256_add_epi32(v, _mm256_set1_epi32(static_cast<int32_t>(rt * static_cast<uint32_t>(e.zb_all))));
  }
  if (e.za)
    v = _mm256_sub_epi32(v, _mm256_mullo_epi32(_mm256_set1_epi32(e.za[r]),
                                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e.cs + w))));
  return _mm256_cvtepi32_ps(v);
}

// The 16 bias values of the panel (zero past n).
__attribute__((always_inline)) inline void load_bias16(const LinearEpilogue& e, __m256 (&bv)[2]) {
  if (e.n == kNR) {
    bv[0] = _mm256_loadu_ps(e.bias), bv[1] = _mm256_loadu_ps(e.bias + 8);
    return;
  }
  alignas(32) float tmp[kNR] = {};
  for (int c = 0; c < e.n; ++c) tmp[c] = e.bias[c];
  bv[0] = _mm256_load_ps(tmp), bv[1] = _mm256_load_ps(tmp + 8);
}

__attribute__((always_inline)) inline void store16(const LinearEpilogue& e, int r, __m256 lo,
                                                   __m256 hi) {
  float* yr = e.y + r * e.ldy;
  if (e.n == kNR) {
    _mm256_storeu_ps(yr, lo);
    _mm256_storeu_ps(yr + 8, hi);
    return;
  }
  alignas(32) float tmp[kNR];
  _mm256_store_ps(tmp, lo);
  _mm256_store_ps(tmp + 8, hi);
  for (int c = 0; c < e.n; ++c) yr[c] = tmp[c];
}

// Folds group j's sums of rows r0 .. r0+M-1: into the running sums t (per group), or straight
// into y (per channel: the only group).
template <int M>
__attribute__((always_inline)) inline void fold(const LinearEpilogue& e, int64_t j, int r0,
                                                const __m256i (&acc)[M][2], __m256 (*t)[2]) {
  for (int r = 0; r < M; ++r) {
    const __m256 v0 = corrected8(e, j, r0 + r, 0, acc[r][0]);
    const __m256 v1 = corrected8(e, j, r0 + r, 8, acc[r][1]);
    if (e.grouped) {
      const float* ws = e.ws + j * e.w_group;
      t[r][0] = _mm256_add_ps(t[r][0], _mm256_mul_ps(v0, _mm256_loadu_ps(ws)));
      t[r][1] = _mm256_add_ps(t[r][1], _mm256_mul_ps(v1, _mm256_loadu_ps(ws + 8)));
      continue;
    }
    const __m256 as = _mm256_set1_ps(e.as[r0 + r]);
    __m256 y0 = _mm256_mul_ps(v0, _mm256_mul_ps(as, _mm256_loadu_ps(e.ws)));
    __m256 y1 = _mm256_mul_ps(v1, _mm256_mul_ps(as, _mm256_loadu_ps(e.ws + 8)));
    if (e.bias) {
      __m256 bv[2];
      load_bias16(e, bv);
      y0 = _mm256_add_ps(y0, bv[0]), y1 = _mm256_add_ps(y1, bv[1]);
    }
    store16(e, r0 + r, y0, y1);
  }
}

// The group sums of R rows from r0 (R live int32 vector pairs, and for 4-bit B as many int16
// ones), folded into t.
template <int R, bool kFour>
__attribute__((always_inline)) inline void block_group(int64_t p0, int64_t p1, int64_t j, int r0,
                                                       const int32_t* a, const uint8_t* b,
                                                       const LinearEpilogue& e, __m256 (*t)[2]) {
  __m256i acc[R][2];
  if (kFour) {
    group_sums_q4<R>(p0, p1, a + r0, b, acc);
  } else {
    group_sums<R>(p0, p1, a + r0, b, acc);
  }
  fold<R>(e, j, r0, acc, t + r0);
}

// Rows in blocks of Ms... (each block reads the group's slice of B again, from L1 after the
// first): at most 4 rows a block for 8-bit B, 2 for 4-bit B, so that the accumulators fit the
// 16 vector registers.
template <bool kFour, int... Ms>
void small_fused(int64_t kp, int64_t gp, const int32_t* a, const uint8_t* b,
                 const LinearEpilogue& e) {
  constexpr int kM = (Ms + ...);
  __m256 t[kM][2];  // running per-group sums: 0.0f + the first group, as the reference
  for (int r = 0; r < kM; ++r) t[r][0] = t[r][1] = _mm256_setzero_ps();
  for (int64_t p0 = 0, j = 0; p0 < kp; p0 += gp, ++j) {
    const int64_t p1 = p0 + gp < kp ? p0 + gp : kp;
    int r0 = 0;
    ((block_group<Ms, kFour>(p0, p1, j, r0, a, b, e, t), r0 += Ms), ...);
  }
  if (!e.grouped) return;
  for (int r = 0; r < kM; ++r) {
    const __m256 as = _mm256_set1_ps(e.as[r]);
    __m256 y0 = _mm256_mul_ps(t[r][0], as), y1 = _mm256_mul_ps(t[r][1], as);
    if (e.bias) {
      __m256 bv[2];
      load_bias16(e, bv);
      y0 = _mm256_add_ps(y0, bv[0]), y1 = _mm256_add_ps(y1, bv[1]);
    }
    store16(e, r, y0, y1);
  }
}

void linear_small_u8_s32(int64_t kp, int64_t gp, const int32_t* a, int m, const uint8_t* b,
                         const LinearEpilogue& e) {
  switch (m) {
    case 1: return small_fused<false, 1>(kp, gp, a, b, e);
    case 2: return small_fused<false, 2>(kp, gp, a, b, e);
    case 3: return small_fused<false, 3>(kp, gp, a, b, e);
    case 4: return small_fused<false, 4>(kp, gp, a, b, e);
    case 5: return small_fused<false, 3, 2>(kp, gp, a, b, e);
    default: return small_fused<false, 3, 3>(kp, gp, a, b, e);
  }
}

void linear_small_u4_s32(int64_t kp, int64_t gp, const int32_t* a, int m, const uint8_t* b,
                         const LinearEpilogue& e) {
  switch (m) {
    case 1: return small_fused<true, 1>(kp, gp, a, b, e);
    case 2: return small_fused<true, 2>(kp, gp, a, b, e);
    case 3: return small_fused<true, 2, 1>(kp, gp, a, b, e);
    case 4: return small_fused<true, 2, 2>(kp, gp, a, b, e);
    case 5: return small_fused<true, 2, 2, 1>(kp, gp, a, b, e);
    default: return small_fused<true, 2, 2, 2>(kp, gp, a, b, e);
  }
}

// ---------------------------------------------------------------------------------------------
// Epilogue of the large-M path: 8 columns a vector, then the scalar formula for a tail of
// n mod 8 columns.

// float(C_j) for 8 columns at c (see LinearEpilogue), the sums read from e.s.
__attribute__((always_inline)) inline __m256 group_sum8(const LinearEpilogue& e, int64_t j, int r,
                                                        int c) {
  return corrected8(e, j, r, c,
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e.s + j * e.s_group + r * e.lds + c)));
}

#include "generic/linear_epilogue.h"  // corrected, group_sum1: the column tail

void linear_epilogue_s32(const LinearEpilogue& e) {
  const int n8 = e.n & ~7;
  for (int r = 0; r < e.m; ++r) {
    float* yr = e.y + r * e.ldy;
    const float as = e.as[r];
    const __m256 vas = _mm256_set1_ps(as);
    if (!e.grouped) {
      int c = 0;
      for (; c < n8; c += 8) {
        const __m256 scale = _mm256_mul_ps(vas, _mm256_loadu_ps(e.ws + c));
        __m256 v = _mm256_mul_ps(group_sum8(e, 0, r, c), scale);
        if (e.bias) v = _mm256_add_ps(v, _mm256_loadu_ps(e.bias + c));
        _mm256_storeu_ps(yr + c, v);
      }
      for (; c < e.n; ++c) {
        float v = group_sum1(e, 0, r, c) * (as * e.ws[c]);
        if (e.bias) v = v + e.bias[c];
        yr[c] = v;
      }
      continue;
    }
    float* tr = e.t + r * e.ldt;
    int c = 0;
    for (; c < n8; c += 8) {
      __m256 v = e.t_zero ? _mm256_setzero_ps() : _mm256_loadu_ps(tr + c);
      for (int64_t j = 0; j < e.ngroups; ++j)
        v = _mm256_add_ps(v, _mm256_mul_ps(group_sum8(e, j, r, c),
                                           _mm256_loadu_ps(e.ws + j * e.w_group + c)));
      if (!e.finish) {
        _mm256_storeu_ps(tr + c, v);
        continue;
      }
      v = _mm256_mul_ps(v, vas);
      if (e.bias) v = _mm256_add_ps(v, _mm256_loadu_ps(e.bias + c));
      _mm256_storeu_ps(yr + c, v);
    }
    for (; c < e.n; ++c) {
      float v = e.t_zero ? 0.0f : tr[c];
      for (int64_t j = 0; j < e.ngroups; ++j) v = v + group_sum1(e, j, r, c) * e.ws[j * e.w_group + c];
      if (!e.finish) {
        tr[c] = v;
        continue;
      }
      v = v * as;
      if (e.bias) v = v + e.bias[c];
      yr[c] = v;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Large M, per group, fused: the 6x16 register tiles of the integer GEMM (tile_sums.h: pair_sums,
// quad_sums), run once per group, each group's 12 accumulators folded straight into the running
// float sums of the block.


// Folds group j's sums v into the running sums (LinearTileFn); first: t starts at 0.0f;
// last: y = t * as (+ bias) instead of storing t.
__attribute__((always_inline)) inline void fold_tile(const LinearEpilogue& e, int64_t j,
                                                     bool first, bool last,
                                                     const __m256i (&v)[kMR][2]) {
  const float* ws = e.ws + j * e.w_group;
  const __m256 ws0 = _mm256_loadu_ps(ws), ws1 = _mm256_loadu_ps(ws + 8);
  __m256 bv[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  if (last && e.bias) load_bias16(e, bv);
  for (int r = 0; r < e.m; ++r) {
    float* tr = e.t + r * e.ldt;
    const __m256 t0 = first ? _mm256_setzero_ps() : _mm256_loadu_ps(tr);
    const __m256 t1 = first ? _mm256_setzero_ps() : _mm256_loadu_ps(tr + 8);
    const __m256 f0 = _mm256_add_ps(t0, _mm256_mul_ps(corrected8(e, j, r, 0, v[r][0]), ws0));
    const __m256 f1 = _mm256_add_ps(t1, _mm256_mul_ps(corrected8(e, j, r, 8, v[r][1]), ws1));
    if (!last) {
      _mm256_storeu_ps(tr, f0);
      _mm256_storeu_ps(tr + 8, f1);
      continue;
    }
    const __m256 as = _mm256_set1_ps(e.as[r]);
    __m256 y0 = _mm256_mul_ps(f0, as), y1 = _mm256_mul_ps(f1, as);
    if (e.bias) y0 = _mm256_add_ps(y0, bv[0]), y1 = _mm256_add_ps(y1, bv[1]);
    store16(e, r, y0, y1);
  }
}

template <bool kQuads>
void tile_groups(int64_t ng, int64_t gw, int64_t wlast, const int32_t* a, const uint8_t* b,
                 const LinearEpilogue& e) {
  constexpr int64_t kBw = kQuads ? 4 * kNR : 2 * kNR;  // B bytes an A word
  for (int64_t j = 0; j < ng; ++j) {
    const int64_t nw = j == ng - 1 ? wlast : gw;
    __m256i v[kMR][2];
    if (kQuads) {
      quad_sums(nw, a + j * gw * kMR, b + j * gw * kBw, v);
    } else {
      pair_sums(nw, a + j * gw * kMR, b + j * gw * kBw, v);
    }
    fold_tile(e, j, j == 0 && e.t_zero, j == ng - 1 && e.finish, v);
  }
}

void linear_tile_u8_s32(int64_t ng, int64_t gw, int64_t wlast, const int32_t* a,
                        const uint8_t* b, const LinearEpilogue& e) {
  tile_groups<false>(ng, gw, wlast, a, b, e);
}

void linear_tile_q4_s32(int64_t ng, int64_t gw, int64_t wlast, const int32_t* a,
                        const uint8_t* b, const LinearEpilogue& e) {
  tile_groups<true>(ng, gw, wlast, a, b, e);
}

// ---------------------------------------------------------------------------------------------
// Weight-only, small M. A k-pair's 16 columns become four float vectors whose lanes are
// (column, k) pairs: w[q] lane 2i+t = column 4q+i at k = 2p+t. The x pair (x[2p], x[2p+1]),
// broadcast as one 64-bit value, matches that lane order, so one FMA a vector does a pair;
// the two k-lanes of a column are added at the end of each group (vhaddps).

// (u - zb) as float for the four column quads of pair p.
template <bool kFour>
__attribute__((always_inline)) inline void decode_f32(const uint8_t* b, int64_t p,
                                                      const __m256i (&z)[4], __m256 (&w)[4]) {
  if (kFour) {
    const uint8_t* bp = b + p * kNR;
    const __m256i v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bp)));
    const __m256i v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bp + 8)));
    const __m256i m15 = _mm256_set1_epi32(15);
    w[0] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v0, m15), z[0]));  // columns 0..3
    w[1] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v1, m15), z[1]));  // 4..7
    w[2] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v0, 4), z[2]));    // 8..11
    w[3] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v1, 4), z[3]));    // 12..15
    return;
  }
  const uint8_t* bp = b + p * 2 * kNR;
  for (int q = 0; q < 4; ++q)
    w[q] = _mm256_cvtepi32_ps(_mm256_sub_epi32(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bp + 8 * q))), z[q]));
}

// Columns 0..7 and 8..15 of the per-column sums of four (column, k)-lane vectors.
__attribute__((always_inline)) inline void fold_pairs(const __m256 (&acc)[4], __m256& lo,
                                                      __m256& hi) {
  // vhaddps works within 128-bit halves: [c0 c1 c4 c5 | c2 c3 c6 c7]; vpermpd puts them in order.
  lo = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_hadd_ps(acc[0], acc[1])), 0xD8));
  hi = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_hadd_ps(acc[2], acc[3])), 0xD8));
}

// Rows [0, M) of x over every group; U independent accumulator sets (pairs unrolled by U) keep
// the FMA latency hidden when M is small.
template <int M, int U, bool kFour>
void small_f32_rows(int64_t kp, int64_t gp, const float* x, int64_t ldx, const uint8_t* b,
                    const int32_t* zb, const float* ws, int64_t w_group, __m256 (&tot)[M][2]) {
  const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  for (int r = 0; r < M; ++r) tot[r][0] = tot[r][1] = _mm256_setzero_ps();
  for (int64_t p0 = 0, j = 0; p0 < kp; p0 += gp, ++j) {
    const int64_t p1 = p0 + gp < kp ? p0 + gp : kp;
    const int32_t* zj = zb + j * w_group;
    __m256i z[4];
    for (int q = 0; q < 4; ++q)  // zb of columns 4q..4q+3, each twice
      z[q] = _mm256_permutevar8x32_epi32(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(zj + 4 * q))), dup);
    __m256 acc[U][M][4];
    for (int u = 0; u < U; ++u)
      for (int r = 0; r < M; ++r)
        for (int q = 0; q < 4; ++q) acc[u][r][q] = _mm256_setzero_ps();
    int64_t p = p0;
    for (; p + U <= p1; p += U) {
      for (int u = 0; u < U; ++u) {
        _mm_prefetch(reinterpret_cast<const char*>(b + (p + u + 256) * (kFour ? kNR : 2 * kNR)),
                     _MM_HINT_T0);
        __m256 w[4];
        decode_f32<kFour>(b, p + u, z, w);
        for (int r = 0; r < M; ++r) {
          const __m256 xp = _mm256_castpd_ps(
              _mm256_broadcast_sd(reinterpret_cast<const double*>(x + r * ldx + 2 * (p + u))));
          for (int q = 0; q < 4; ++q) acc[u][r][q] = _mm256_fmadd_ps(w[q], xp, acc[u][r][q]);
        }
      }
    }
    for (; p < p1; ++p) {
      __m256 w[4];
      decode_f32<kFour>(b, p, z, w);
      for (int r = 0; r < M; ++r) {
        const __m256 xp = _mm256_castpd_ps(
            _mm256_broadcast_sd(reinterpret_cast<const double*>(x + r * ldx + 2 * p)));
        for (int q = 0; q < 4; ++q) acc[0][r][q] = _mm256_fmadd_ps(w[q], xp, acc[0][r][q]);
      }
    }
    const float* sj = ws + j * w_group;
    const __m256 s0 = _mm256_loadu_ps(sj), s1 = _mm256_loadu_ps(sj + 8);
    for (int r = 0; r < M; ++r) {
      for (int u = 1; u < U; ++u)
        for (int q = 0; q < 4; ++q) acc[0][r][q] = _mm256_add_ps(acc[0][r][q], acc[u][r][q]);
      __m256 lo, hi;
      fold_pairs(acc[0][r], lo, hi);
      tot[r][0] = _mm256_add_ps(tot[r][0], _mm256_mul_ps(lo, s0));
      tot[r][1] = _mm256_add_ps(tot[r][1], _mm256_mul_ps(hi, s1));
    }
  }
}

template <int M, int U, bool kFour>
void small_f32_store(int64_t kp, int64_t gp, const float* x, int64_t ldx, const uint8_t* b,
                     const int32_t* zb, const float* ws, int64_t w_group, const float* bias,
                     float* y, int64_t ldy, int n) {
  __m256 tot[M][2];
  small_f32_rows<M, U, kFour>(kp, gp, x, ldx, b, zb, ws, w_group, tot);
  for (int r = 0; r < M; ++r) {
    __m256 lo = tot[r][0], hi = tot[r][1];
    if (bias) {
      alignas(32) float bb[kNR] = {};
      for (int c = 0; c < n; ++c) bb[c] = bias[c];
      lo = _mm256_add_ps(lo, _mm256_load_ps(bb));
      hi = _mm256_add_ps(hi, _mm256_load_ps(bb + 8));
    }
    float* yr = y + r * ldy;
    if (n == kNR) {
      _mm256_storeu_ps(yr, lo);
      _mm256_storeu_ps(yr + 8, hi);
    } else {
      alignas(32) float tmp[kNR];
      _mm256_store_ps(tmp, lo);
      _mm256_store_ps(tmp + 8, hi);
      for (int c = 0; c < n; ++c) yr[c] = tmp[c];
    }
  }
}

template <bool kFour>
void small_f32(int64_t kp, int64_t gp, const float* x, int64_t ldx, int m, const uint8_t* b,
               const int32_t* zb, const float* ws, int64_t w_group, const float* bias, float* y,
               int64_t ldy, int n) {
  // One row at a time: four accumulators, the four decoded vectors, the zero points and the x
  // pair fit the 16 registers (more rows would spill accumulators every k-pair); the decode,
  // not the FMA latency, bounds a k-pair. Larger M takes the tiled path.
  for (int r = 0; r < m; ++r)
    small_f32_store<1, 1, kFour>(kp, gp, x + r * ldx, ldx, b, zb, ws, w_group, bias, y + r * ldy,
                                 ldy, n);
}

void linear_small_u8_f32(int64_t kp, int64_t gp, const float* x, int64_t ldx, int m,
                         const uint8_t* b, const int32_t* zb, const float* ws, int64_t w_group,
                         const float* bias, float* y, int64_t ldy, int n) {
  small_f32<false>(kp, gp, x, ldx, m, b, zb, ws, w_group, bias, y, ldy, n);
}

void linear_small_u4_f32(int64_t kp, int64_t gp, const float* x, int64_t ldx, int m,
                         const uint8_t* b, const int32_t* zb, const float* ws, int64_t w_group,
                         const float* bias, float* y, int64_t ldy, int n) {
  small_f32<true>(kp, gp, x, ldx, m, b, zb, ws, w_group, bias, y, ldy, n);
}

// ---------------------------------------------------------------------------------------------
// Weight-only, large M: dequantize a B micro-panel to float rows, then a 6x16 FMA tile.

// Columns 0..7 (c = 0) or 8..15 (c = 1) of rows k = 2p and 2p+1, as int32 u values.
template <bool kFour>
__attribute__((always_inline)) inline void unpack_pair(const uint8_t* b, int64_t p, __m256i (&u)[2][2]) {
  const __m256i m16 = _mm256_set1_epi32(0xFFFF);
  if (kFour) {
    // 32-bit lane c: byte (c, k0) | byte (c, k1) << 16, each holding column c (low nibble) and
    // column c + 8 (high nibble).
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + p * kNR)));
    const __m256i m15 = _mm256_set1_epi32(15);
    u[0][0] = _mm256_and_si256(v, m15);
    u[1][0] = _mm256_and_si256(_mm256_srli_epi32(v, 16), m15);
    u[0][1] = _mm256_and_si256(_mm256_srli_epi32(v, 4), m15);
    u[1][1] = _mm256_srli_epi32(v, 20);
    return;
  }
  const __m128i* q = reinterpret_cast<const __m128i*>(b + p * 2 * kNR);
  for (int h = 0; h < 2; ++h) {
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(q + h));  // lane c: (c,k0) | (c,k1) << 16
    u[0][h] = _mm256_and_si256(v, m16);
    u[1][h] = _mm256_srli_epi32(v, 16);
  }
}

template <bool kFour>
void dequant(const uint8_t* b, int64_t p0, int64_t kp, int64_t gp, const int32_t* zb,
             const float* ws, int64_t w_group, float* out) {
  int64_t j = p0 / gp, next = (j + 1) * gp;
  __m256i z0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zb + j * w_group));
  __m256i z1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zb + j * w_group + 8));
  __m256 s0 = _mm256_loadu_ps(ws + j * w_group), s1 = _mm256_loadu_ps(ws + j * w_group + 8);
  for (int64_t p = p0; p < p0 + kp; ++p, out += 2 * kNR) {
    if (p == next) {
      ++j, next += gp;
      z0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zb + j * w_group));
      z1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zb + j * w_group + 8));
      s0 = _mm256_loadu_ps(ws + j * w_group), s1 = _mm256_loadu_ps(ws + j * w_group + 8);
    }
    __m256i u[2][2];
    unpack_pair<kFour>(b, p, u);
    for (int t = 0; t < 2; ++t) {
      _mm256_storeu_ps(out + t * kNR, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(u[t][0], z0)), s0));
      _mm256_storeu_ps(out + t * kNR + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(u[t][1], z1)), s1));
    }
  }
}

void linear_dequant_u8_f32(const uint8_t* b, int64_t p0, int64_t kp, int64_t gp,
                           const int32_t* zb, const float* ws, int64_t w_group, float* out) {
  dequant<false>(b, p0, kp, gp, zb, ws, w_group, out);
}

void linear_dequant_u4_f32(const uint8_t* b, int64_t p0, int64_t kp, int64_t gp,
                           const int32_t* zb, const float* ws, int64_t w_group, float* out) {
  dequant<true>(b, p0, kp, gp, zb, ws, w_group, out);
}

// 6x16 float tile: 12 accumulators, two B vectors and one broadcast (15 registers). Only
// constant indices touch the accumulators, so they stay in registers.
void linear_tile_f32(int64_t kk, const float* a, const float* b, float* c, int64_t ldc, int m,
                     int n, int accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < kk; ++k, a += kMR, b += kNR) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 av = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(av, b0, c00), c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10), c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20), c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30), c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40), c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50), c51 = _mm256_fmadd_ps(av, b1, c51);
  }
  alignas(32) float tmp[kMR][kNR];
  _mm256_store_ps(tmp[0], c00), _mm256_store_ps(tmp[0] + 8, c01);
  _mm256_store_ps(tmp[1], c10), _mm256_store_ps(tmp[1] + 8, c11);
  _mm256_store_ps(tmp[2], c20), _mm256_store_ps(tmp[2] + 8, c21);
  _mm256_store_ps(tmp[3], c30), _mm256_store_ps(tmp[3] + 8, c31);
  _mm256_store_ps(tmp[4], c40), _mm256_store_ps(tmp[4] + 8, c41);
  _mm256_store_ps(tmp[5], c50), _mm256_store_ps(tmp[5] + 8, c51);
  for (int r = 0; r < m; ++r) {
    float* cr = c + r * ldc;
    if (n == kNR) {
      __m256 x0 = _mm256_load_ps(tmp[r]), x1 = _mm256_load_ps(tmp[r] + 8);
      if (accumulate) {
        x0 = _mm256_add_ps(x0, _mm256_loadu_ps(cr));
        x1 = _mm256_add_ps(x1, _mm256_loadu_ps(cr + 8));
      }
      _mm256_storeu_ps(cr, x0);
      _mm256_storeu_ps(cr + 8, x1);
      continue;
    }
    for (int j = 0; j < n; ++j) cr[j] = accumulate ? cr[j] + tmp[r][j] : tmp[r][j];
  }
}

}  // namespace

void fill_linear(KernelTable& t) {
#define LOWBIT_KERNEL(name, type) t.name = name;
#include "lowbit/linear_kernels.inc"
#undef LOWBIT_KERNEL
}

}  // namespace avx2
}  // namespace lowbit
