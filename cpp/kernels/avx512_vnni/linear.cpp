// AVX-512 VNNI kernels of lb.linear. Built like gemm.cpp (native AVX-512 F/BW/DQ/VL + VNNI, or
// SIMDe-emulated). Semantics: cpp/kernels/scalar/linear.cpp. The integer sums (vpdpbusd, exact,
// wrapping) and the epilogue match it bit for bit: one vmulps / vaddps / vcvtdq2ps a scalar
// operation, in the same order, never an FMA. The weight-only kernels use FMA and their own
// summation order, which the documented tolerance covers. Layouts: gemm.cpp ("k4n32": k-quads,
// 32 columns a panel, A words int8 k-quads).
#include "avx512/simde_compat.h"  // <immintrin.h>, or SIMDe in an emulated build

#include <type_traits>

#include "lowbit/kernels.h"
#include "quad_sums.h"

namespace lowbit {
namespace avx512_vnni {
namespace {

// 16 consecutive floats / int32 of a row, columns [0, n) (n <= 16), zero past n; never touches
// memory past n.
inline __m512 load_ps_n(const float* p, int n) {
  if (n >= 16) return _mm512_loadu_ps(p);
  alignas(64) float tmp[16] = {};
  for (int c = 0; c < n; ++c) tmp[c] = p[c];
  return _mm512_load_ps(tmp);
}

inline void store_ps_n(float* p, __m512 v, int n) {
  if (n >= 16) {
    _mm512_storeu_ps(p, v);
    return;
  }
  alignas(64) float tmp[16];
  _mm512_store_ps(tmp, v);
  for (int c = 0; c < n; ++c) p[c] = tmp[c];
}

inline int clip16(int n, int h) { return n - 16 * h < 0 ? 0 : (n - 16 * h > 16 ? 16 : n - 16 * h); }

// float(C_j) of LinearEpilogue for row r, columns c..c+15 (both tables have NR entries a group,
// so the 16 loads never leave them), from the sums v.
__attribute__((always_inline)) inline __m512 corrected16(const LinearEpilogue& e, int64_t j, int r,
                                                         int c, __m512i v) {
  const int64_t w = j * e.w_group + c;
  const uint32_t rt = e.rterm[j * e.rt_group + r];
  if (e.zb) {
    v = _mm512_add_epi32(v, _mm512_mullo_epi32(_mm512_set1_epi32(static_cast<int32_t>(rt)),
                                               _mm512_loadu_si512(e.zb + w)));
  } else {
    v = _mm512_add_epi32(v, _mm512_set1_epi32(static_cast<int32_t>(rt * static_cast<uint32_t>(e.zb_all))));
  }
  if (e.za)
    v = _mm512_sub_epi32(v, _mm512_mullo_epi32(_mm512_set1_epi32(e.za[r]),
                                               _mm512_loadu_si512(e.cs + w)));
  return _mm512_cvtepi32_ps(v);
}

// y row r = (lo, hi) [+ bias], columns < e.n.
__attribute__((always_inline)) inline void store_y(const LinearEpilogue& e, int r, __m512 lo,
                                                   __m512 hi) {
  if (e.bias) {
    lo = _mm512_add_ps(lo, load_ps_n(e.bias, clip16(e.n, 0)));
    hi = _mm512_add_ps(hi, load_ps_n(e.bias + 16, clip16(e.n, 1)));
  }
  float* yr = e.y + r * e.ldy;
  store_ps_n(yr, lo, clip16(e.n, 0));
  if (e.n > 16) store_ps_n(yr + 16, hi, clip16(e.n, 1));
}

// Folds group j's sums of rows r0 .. r0+M-1 into the running sums t (per group), or straight
// into y (per channel: the only group).
template <int M>
__attribute__((always_inline)) inline void fold(const LinearEpilogue& e, int64_t j, int r0,
                                                const __m512i (&acc)[M][2], __m512 (*t)[2]) {
  for (int r = 0; r < M; ++r) {
    const __m512 v0 = corrected16(e, j, r0 + r, 0, acc[r][0]);
    const __m512 v1 = corrected16(e, j, r0 + r, 16, acc[r][1]);
    if (e.grouped) {
      const float* ws = e.ws + j * e.w_group;
      t[r][0] = _mm512_add_ps(t[r][0], _mm512_mul_ps(v0, _mm512_loadu_ps(ws)));
      t[r][1] = _mm512_add_ps(t[r][1], _mm512_mul_ps(v1, _mm512_loadu_ps(ws + 16)));
      continue;
    }
    const __m512 as = _mm512_set1_ps(e.as[r0 + r]);
    store_y(e, r0 + r, _mm512_mul_ps(v0, _mm512_mul_ps(as, _mm512_loadu_ps(e.ws))),
            _mm512_mul_ps(v1, _mm512_mul_ps(as, _mm512_loadu_ps(e.ws + 16))));
  }
}

// Small M, fused: rows in blocks of Ms... (each block reads the group's slice of B again, from
// L1 after the first), every group in one pass; the A panel holds the kM rows only
// (kGemmGeometry.small_a_rows). Groups [p0, p1) in k-pairs start on k-quads
// (lowbit/linear.h); only the end of K may be half a quad (zero in A and B).
template <bool kFour, int... Ms>
void small_fused(int64_t kp, int64_t gp, const int32_t* a, const uint8_t* b,
                 const LinearEpilogue& e) {
  constexpr int kM = (Ms + ...);
  __m512 t[kM][2];  // running per-group sums: 0.0f + the first group, as the reference
  for (int r = 0; r < kM; ++r) t[r][0] = t[r][1] = _mm512_setzero_ps();
  for (int64_t p0 = 0, j = 0; p0 < kp; p0 += gp, ++j) {
    const int64_t p1 = p0 + gp < kp ? p0 + gp : kp;
    int r0 = 0;
    auto block = [&](auto rows) {
      constexpr int R = decltype(rows)::value;
      __m512i acc[R][2];
      quad_sums<R, kFour, true>(p0 / 2, (p1 + 1) / 2, a + r0, kM, b, acc);
      fold<R>(e, j, r0, acc, t + r0);
      r0 += R;
    };
    (block(std::integral_constant<int, Ms>{}), ...);
  }
  if (!e.grouped) return;
  for (int r = 0; r < kM; ++r) {
    const __m512 as = _mm512_set1_ps(e.as[r]);
    store_y(e, r, _mm512_mul_ps(t[r][0], as), _mm512_mul_ps(t[r][1], as));
  }
}

template <bool kFour>
void small_any(int64_t kp, int64_t gp, const int32_t* a, int m, const uint8_t* b,
               const LinearEpilogue& e) {
  switch (m) {
    case 1: return small_fused<kFour, 1>(kp, gp, a, b, e);
    case 2: return small_fused<kFour, 2>(kp, gp, a, b, e);
    case 3: return small_fused<kFour, 3>(kp, gp, a, b, e);
    case 4: return small_fused<kFour, 4>(kp, gp, a, b, e);
    case 5: return small_fused<kFour, 4, 1>(kp, gp, a, b, e);
    case 6: return small_fused<kFour, 4, 2>(kp, gp, a, b, e);
    case 7: return small_fused<kFour, 4, 3>(kp, gp, a, b, e);
    default: return small_fused<kFour, 4, 4>(kp, gp, a, b, e);
  }
}

void linear_small_u8_s32(int64_t kp, int64_t gp, const int32_t* a, int m, const uint8_t* b,
                         const LinearEpilogue& e) {
  small_any<false>(kp, gp, a, m, b, e);
}

void linear_small_u4_s32(int64_t kp, int64_t gp, const int32_t* a, int m, const uint8_t* b,
                         const LinearEpilogue& e) {
  small_any<true>(kp, gp, a, m, b, e);
}

// ---------------------------------------------------------------------------------------------
// Epilogue of the large-M path: 16 columns a vector, then the scalar formula for a tail of
// n mod 16 columns.

#include "generic/linear_epilogue.h"  // corrected, group_sum1: the column tail

__attribute__((always_inline)) inline __m512 group_sum16(const LinearEpilogue& e, int64_t j, int r,
                                                         int c) {
  return corrected16(e, j, r, c, _mm512_loadu_si512(e.s + j * e.s_group + r * e.lds + c));
}

void linear_epilogue_s32(const LinearEpilogue& e) {
  const int n16 = e.n & ~15;
  for (int r = 0; r < e.m; ++r) {
    float* yr = e.y + r * e.ldy;
    const float as = e.as[r];
    const __m512 vas = _mm512_set1_ps(as);
    if (!e.grouped) {
      int c = 0;
      for (; c < n16; c += 16) {
        const __m512 scale = _mm512_mul_ps(vas, _mm512_loadu_ps(e.ws + c));
        __m512 v = _mm512_mul_ps(group_sum16(e, 0, r, c), scale);
        if (e.bias) v = _mm512_add_ps(v, _mm512_loadu_ps(e.bias + c));
        _mm512_storeu_ps(yr + c, v);
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
    for (; c < n16; c += 16) {
      __m512 v = e.t_zero ? _mm512_setzero_ps() : _mm512_loadu_ps(tr + c);
      for (int64_t j = 0; j < e.ngroups; ++j)
        v = _mm512_add_ps(v, _mm512_mul_ps(group_sum16(e, j, r, c),
                                           _mm512_loadu_ps(e.ws + j * e.w_group + c)));
      if (!e.finish) {
        _mm512_storeu_ps(tr + c, v);
        continue;
      }
      v = _mm512_mul_ps(v, vas);
      if (e.bias) v = _mm512_add_ps(v, _mm512_loadu_ps(e.bias + c));
      _mm512_storeu_ps(yr + c, v);
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
// Large M, per group, fused: the 8x32 register tile of the integer GEMM run once per group, its
// 16 accumulators folded straight into the running float sums of the block. A group's words are
// k-quads of a (A quad panel) against the B quad panel (8-bit, or 4-bit decoded by
// gemm_decode_q4: the same layout), 4 NR bytes a word.

__attribute__((always_inline)) inline void fold_tile(const LinearEpilogue& e, int64_t j,
                                                     bool first, bool last,
                                                     const __m512i (&v)[kMR][2]) {
  const float* ws = e.ws + j * e.w_group;
  const __m512 ws0 = _mm512_loadu_ps(ws), ws1 = _mm512_loadu_ps(ws + 16);
  for (int r = 0; r < e.m; ++r) {
    float* tr = e.t + r * e.ldt;  // room for NR columns
    const __m512 t0 = first ? _mm512_setzero_ps() : _mm512_loadu_ps(tr);
    const __m512 t1 = first ? _mm512_setzero_ps() : _mm512_loadu_ps(tr + 16);
    const __m512 f0 = _mm512_add_ps(t0, _mm512_mul_ps(corrected16(e, j, r, 0, v[r][0]), ws0));
    const __m512 f1 = _mm512_add_ps(t1, _mm512_mul_ps(corrected16(e, j, r, 16, v[r][1]), ws1));
    if (!last) {
      _mm512_storeu_ps(tr, f0);
      _mm512_storeu_ps(tr + 16, f1);
      continue;
    }
    const __m512 as = _mm512_set1_ps(e.as[r]);
    store_y(e, r, _mm512_mul_ps(f0, as), _mm512_mul_ps(f1, as));
  }
}

void tile_groups(int64_t ng, int64_t gw, int64_t wlast, const int32_t* a, const uint8_t* b,
                 const LinearEpilogue& e) {
  for (int64_t j = 0; j < ng; ++j) {
    const int64_t nw = j == ng - 1 ? wlast : gw;
    __m512i v[kMR][2];
    quad_sums<kMR, false, false>(0, nw, a + j * gw * kMR, kMR, b + j * gw * kQuadBytes8, v);
    fold_tile(e, j, j == 0 && e.t_zero, j == ng - 1 && e.finish, v);
  }
}

void linear_tile_u8_s32(int64_t ng, int64_t gw, int64_t wlast, const int32_t* a,
                        const uint8_t* b, const LinearEpilogue& e) {
  tile_groups(ng, gw, wlast, a, b, e);
}

void linear_tile_q4_s32(int64_t ng, int64_t gw, int64_t wlast, const int32_t* a,
                        const uint8_t* b, const LinearEpilogue& e) {
  tile_groups(ng, gw, wlast, a, b, e);
}

// ---------------------------------------------------------------------------------------------
// Weight-only. Int32 lane c of a B quad vector holds column c's 4 k values (a byte each; 4-bit:
// the low nibbles are columns 0..15, the high ones 16..31), so a shift and a mask give the
// column values of one k as int32 lanes: float(u - zb) meets the broadcast x[k] in an FMA.

// (u - zb) as float for k = 4q + i, columns 0..15 (w[0]) and 16..31 (w[1]).
template <bool kFour>
__attribute__((always_inline)) inline void decode_k(const uint8_t* b, int64_t q, int i,
                                                    const __m512i (&z)[2], __m512 (&w)[2]) {
  const __m512i m = _mm512_set1_epi32(kFour ? 15 : 255);
  if (kFour) {
    const __m512i x = _mm512_loadu_si512(b + q * kQuadBytes4);
    const __m512i lo = _mm512_and_si512(_mm512_srli_epi32(x, 8 * i), m);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi32(x, 8 * i + 4), m);
    w[0] = _mm512_cvtepi32_ps(_mm512_sub_epi32(lo, z[0]));
    w[1] = _mm512_cvtepi32_ps(_mm512_sub_epi32(hi, z[1]));
    return;
  }
  for (int h = 0; h < 2; ++h) {
    const __m512i x = _mm512_loadu_si512(b + q * kQuadBytes8 + 64 * h);
    w[h] = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(_mm512_srli_epi32(x, 8 * i), m), z[h]));
  }
}

// Weight-only, small M: one row at a time (its 2 x 4 accumulators, one per k of the quad, hide
// the FMA latency), every group: y = sum_j ws_j * sum_{k in j} x[k] (u - zb_j) (+ bias).
template <bool kFour>
void small_f32_row(int64_t kp, int64_t gp, const float* x, const uint8_t* b, const int32_t* zb,
                   const float* ws, int64_t w_group, const float* bias, float* y, int n) {
  __m512 tot0 = _mm512_setzero_ps(), tot1 = _mm512_setzero_ps();
  constexpr int64_t kStep = kFour ? kQuadBytes4 : kQuadBytes8;
  for (int64_t p0 = 0, j = 0; p0 < kp; p0 += gp, ++j) {
    const int64_t p1 = p0 + gp < kp ? p0 + gp : kp;
    const __m512i z[2] = {_mm512_loadu_si512(zb + j * w_group),
                          _mm512_loadu_si512(zb + j * w_group + 16)};
    __m512 acc[4][2];
    for (int i = 0; i < 4; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    // x holds 2 kp floats (zero where B has padding): the half quad at the end of K reads k
    // values 4q+2, 4q+3 only when they exist.
    for (int64_t q = p0 / 2; q < (p1 + 1) / 2; ++q) {
      _mm_prefetch(reinterpret_cast<const char*>(b + q * kStep + 4096), _MM_HINT_T0);
      if (!kFour) _mm_prefetch(reinterpret_cast<const char*>(b + q * kStep + 4096 + 64), _MM_HINT_T0);
      const int kn = 2 * (q + 1) <= p1 ? 4 : 2;
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        if (i >= kn) break;
        __m512 w[2];
        decode_k<kFour>(b, q, i, z, w);
        const __m512 xv = _mm512_set1_ps(x[4 * q + i]);
        acc[i][0] = _mm512_fmadd_ps(w[0], xv, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(w[1], xv, acc[i][1]);
      }
    }
    const __m512 s0 = _mm512_add_ps(_mm512_add_ps(acc[0][0], acc[1][0]), _mm512_add_ps(acc[2][0], acc[3][0]));
    const __m512 s1 = _mm512_add_ps(_mm512_add_ps(acc[0][1], acc[1][1]), _mm512_add_ps(acc[2][1], acc[3][1]));
    tot0 = _mm512_add_ps(tot0, _mm512_mul_ps(s0, _mm512_loadu_ps(ws + j * w_group)));
    tot1 = _mm512_add_ps(tot1, _mm512_mul_ps(s1, _mm512_loadu_ps(ws + j * w_group + 16)));
  }
  if (bias) {
    tot0 = _mm512_add_ps(tot0, load_ps_n(bias, clip16(n, 0)));
    tot1 = _mm512_add_ps(tot1, load_ps_n(bias + 16, clip16(n, 1)));
  }
  store_ps_n(y, tot0, clip16(n, 0));
  if (n > 16) store_ps_n(y + 16, tot1, clip16(n, 1));
}

template <bool kFour>
void small_f32(int64_t kp, int64_t gp, const float* x, int64_t ldx, int m, const uint8_t* b,
               const int32_t* zb, const float* ws, int64_t w_group, const float* bias, float* y,
               int64_t ldy, int n) {
  for (int r = 0; r < m; ++r)
    small_f32_row<kFour>(kp, gp, x + r * ldx, b, zb, ws, w_group, bias, y + r * ldy, n);
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

// Weight-only, large M: k-pairs [p0, p0 + kp) (p0 even: a K block starts on a quad) dequantized
// to 2 kp rows of NR floats, out[k][c] = float(u - zb_j) * ws_j.
template <bool kFour>
void dequant(const uint8_t* b, int64_t p0, int64_t kp, int64_t gp, const int32_t* zb,
             const float* ws, int64_t w_group, float* out) {
  for (int64_t p = p0; p < p0 + kp; ++p) {
    const int64_t j = p / gp;
    const __m512i z[2] = {_mm512_loadu_si512(zb + j * w_group),
                          _mm512_loadu_si512(zb + j * w_group + 16)};
    const __m512 s0 = _mm512_loadu_ps(ws + j * w_group), s1 = _mm512_loadu_ps(ws + j * w_group + 16);
    for (int t = 0; t < 2; ++t, out += kNR) {
      __m512 w[2];
      decode_k<kFour>(b, p / 2, static_cast<int>(2 * (p & 1) + t), z, w);
      _mm512_storeu_ps(out, _mm512_mul_ps(w[0], s0));
      _mm512_storeu_ps(out + 16, _mm512_mul_ps(w[1], s1));
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

// 8x32 float tile: 16 accumulators, two B vectors and one broadcast.
void linear_tile_f32(int64_t kk, const float* a, const float* b, float* c, int64_t ldc, int m,
                     int n, int accumulate) {
  __m512 acc[kMR][2];
#pragma GCC unroll 8
  for (int r = 0; r < kMR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kk; ++k, a += kMR, b += kNR) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 8
    for (int r = 0; r < kMR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < m; ++r) {
    float* cr = c + r * ldc;
    for (int h = 0; h < 2; ++h) {
      const int nh = clip16(n, h);
      if (!nh) break;
      __m512 v = acc[r][h];
      if (accumulate) v = _mm512_add_ps(v, load_ps_n(cr + 16 * h, nh));
      store_ps_n(cr + 16 * h, v, nh);
    }
  }
}

}  // namespace

void fill_linear(KernelTable& t) {
#define LOWBIT_KERNEL(name, type) t.name = name;
#include "lowbit/linear_kernels.inc"
#undef LOWBIT_KERNEL
}

}  // namespace avx512_vnni
}  // namespace lowbit
