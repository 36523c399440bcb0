// The vpdpbusd accumulation loop shared by the GEMM (gemm.cpp) and linear (linear.cpp) kernels of
// the avx512_vnni path: the integer sums of M rows of A words over the k-quads [q0, q1) of one B
// panel ("k4n32", gemm_geometry.h), two zmm of int32 a row (columns 0..15 and 16..31). Included
// after the intrinsics (avx512/simde_compat.h) by both translation units.
#pragma once

#include "gemm_geometry.h"

namespace lowbit {
namespace avx512_vnni {

constexpr int64_t kQuadBytes8 = 4 * kNR;  // bytes a k-quad of an 8-bit B panel
constexpr int64_t kQuadBytes4 = 2 * kNR;  // ... of a 4-bit B panel

// The two B operands of k-quad q: 8-bit panels read them, 4-bit panels split the nibbles (the
// low nibbles are columns 0..15, the high ones 16..31).
template <bool kFour>
__attribute__((always_inline)) inline void load_b(const uint8_t* b, int64_t q, __m512i m15,
                                                  __m512i& b0, __m512i& b1) {
  if (kFour) {
    const __m512i x = _mm512_loadu_si512(b + q * kQuadBytes4);
    b0 = _mm512_and_si512(x, m15);
    b1 = _mm512_and_si512(_mm512_srli_epi16(x, 4), m15);
  } else {
    b0 = _mm512_loadu_si512(b + q * kQuadBytes8);
    b1 = _mm512_loadu_si512(b + q * kQuadBytes8 + 64);
  }
}

// Independent accumulator sets for M rows: vpdpbusd retires up to two a cycle with a latency of
// several, so fewer than about 8 chains leave it idle. M = 1 and 2 (decode) run U sets over
// interleaved k-quads and add them at the end: integer sums wrap the same in any order.
template <int M>
constexpr int kChains = M == 1 ? 4 : (M <= 3 ? 2 : 1);

// acc = the sums of rows 0..M-1 (A words a[q * lda + r]) over k-quads [q0, q1). kStreamB: B
// comes from memory once (the small-M calls) and is prefetched 4 KiB ahead; otherwise B is a
// cache-resident micro-panel met by many A panels, and A, read once a call, is prefetched.
template <int M, bool kFour, bool kStreamB>
__attribute__((always_inline)) inline void quad_sums(int64_t q0, int64_t q1, const int32_t* a,
                                                     int64_t lda, const uint8_t* b,
                                                     __m512i (&acc)[M][2]) {
  constexpr int U = kChains<M>;
  constexpr int64_t kStep = kFour ? kQuadBytes4 : kQuadBytes8;
  const __m512i m15 = _mm512_set1_epi8(15);
  __m512i s[U][M][2];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 8
    for (int r = 0; r < M; ++r) s[u][r][0] = s[u][r][1] = _mm512_setzero_si512();
  auto step = [&](int64_t q, __m512i (&t)[M][2]) __attribute__((always_inline)) {
    if (kStreamB) {
      _mm_prefetch(reinterpret_cast<const char*>(b + q * kStep + 4096), _MM_HINT_T0);
      if (!kFour)
        _mm_prefetch(reinterpret_cast<const char*>(b + q * kStep + 4096 + 64), _MM_HINT_T0);
    } else if (q % 2 == 0) {
      _mm_prefetch(reinterpret_cast<const char*>(a + q * lda + 128), _MM_HINT_T0);
    }
    __m512i b0, b1;
    load_b<kFour>(b, q, m15, b0, b1);
#pragma GCC unroll 8
    for (int r = 0; r < M; ++r) {
      const __m512i av = _mm512_set1_epi32(a[q * lda + r]);
      t[r][0] = _mm512_dpbusd_epi32(t[r][0], b0, av);
      t[r][1] = _mm512_dpbusd_epi32(t[r][1], b1, av);
    }
  };
  int64_t q = q0;
  for (; q + U <= q1; q += U)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) step(q + u, s[u]);
  for (; q < q1; ++q) step(q, s[0]);
#pragma GCC unroll 8
  for (int r = 0; r < M; ++r) {
    acc[r][0] = s[0][r][0], acc[r][1] = s[0][r][1];
#pragma GCC unroll 4
    for (int u = 1; u < U; ++u) {
      acc[r][0] = _mm512_add_epi32(acc[r][0], s[u][r][0]);
      acc[r][1] = _mm512_add_epi32(acc[r][1], s[u][r][1]);
    }
  }
}

}  // namespace avx512_vnni
}  // namespace lowbit
