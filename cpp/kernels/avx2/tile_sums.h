// The 6x16 register tiles of the AVX2 integer kernels, shared by the GEMM (gemm.cpp) and the
// fused linear (linear.cpp). Included only by translation units built with the avx2 flags, inside
// their anonymous namespace. Semantics: exact int32 sums wrapping like NumPy (scalar/gemm.cpp).
//
// Arithmetic: A is int16 (a widened int8/uint8 value), B an unsigned byte widened to int16 by
// vpmovzxbw, and vpmaddwd multiplies int16 pairs into an exact int32 sum of two products
// (|a0*b0 + a1*b1| <= 2 * 255 * 255 here; vpmaddwd only overflows for -32768 * -32768 twice).
// vpaddd then wraps modulo 2**32 like NumPy int32. Nothing saturates: no vpmaddubsw on 8-bit B,
// no vpdp*s.
//
// Throughput: vpmaddwd issues twice a cycle on Zen 3/4 and most Intel cores (16 int16 MACs
// each); every one needs a vpaddd, so a k-pair of the tile is 12 vpmaddwd + 12 vpaddd +
// 2 vpmovzxbw (B, 16 columns) + 6 vpbroadcastd (A, one pair per row): 16 vector registers
// exactly (12 accumulators, 2 B, the broadcast and one product). The k loops are inline
// assembly: with 16 live vector registers GCC's scheduler spills accumulators to the stack
// (measured: 50 vs 135 GOPS). The accumulators are ordinary operands, so everything outside
// the loops stays C++.
//
// B is prefetched 2 KiB (64 k-pairs) ahead: when few rows pass over a long B panel (M = 9..32,
// K unblocked) the first pass reads B from memory, and the hardware prefetchers alone left it
// latency-bound (measured +10% at 16 x 4096 x 4096). Prefetches never fault, so running past
// the panel's end is harmless.
#ifndef LOWBIT_KERNELS_AVX2_TILE_SUMS_H_
#define LOWBIT_KERNELS_AVX2_TILE_SUMS_H_

#include <immintrin.h>

#include "gemm_geometry.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace avx2 {
namespace {

// One k-pair at byte offsets AO (A, 24 bytes a pair) and BO (B, 32 bytes a pair).
#define LOWBIT_ROW(AO, R, C0, C1)                      \
  "vpbroadcastd " #AO "+4*" #R "(%[a]), %[av]\n\t"     \
  "vpmaddwd %[b0], %[av], %[t]\n\t"                    \
  "vpaddd %[t], %[" #C0 "], %[" #C0 "]\n\t"            \
  "vpmaddwd %[b1], %[av], %[av]\n\t"                   \
  "vpaddd %[av], %[" #C1 "], %[" #C1 "]\n\t"
#define LOWBIT_ZERO(C) "vpxor %[" #C "], %[" #C "], %[" #C "]\n\t"
#define LOWBIT_KPAIR(AO, BO)                           \
  "vpmovzxbw " #BO "(%[b]), %[b0]\n\t"                 \
  "vpmovzxbw " #BO "+16(%[b]), %[b1]\n\t"              \
  LOWBIT_ROW(AO, 0, c00, c01) LOWBIT_ROW(AO, 1, c10, c11) LOWBIT_ROW(AO, 2, c20, c21) \
  LOWBIT_ROW(AO, 3, c30, c31) LOWBIT_ROW(AO, 4, c40, c41) LOWBIT_ROW(AO, 5, c50, c51)

// Sums of a 6x16 block over kp k-pairs: int16 A pairs x 8-bit B (vpmaddwd, exact; vpaddd wraps).
__attribute__((always_inline)) inline void pair_sums(int64_t kp, const int32_t* a,
                                                     const uint8_t* b, __m256i (&v)[kMR][2]) {
  __m256i c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, b0, b1, av, t;
  int64_t n4 = kp / 4, rem = kp % 4;
  __asm__(
      LOWBIT_ZERO(c00) LOWBIT_ZERO(c01) LOWBIT_ZERO(c10) LOWBIT_ZERO(c11) LOWBIT_ZERO(c20)
      LOWBIT_ZERO(c21) LOWBIT_ZERO(c30) LOWBIT_ZERO(c31) LOWBIT_ZERO(c40) LOWBIT_ZERO(c41)
      LOWBIT_ZERO(c50) LOWBIT_ZERO(c51)
      "test %[n4], %[n4]\n\t"
      "jz 2f\n\t"
      ".p2align 5\n"
      "1:\n\t"
      LOWBIT_KPAIR(0, 0) LOWBIT_KPAIR(24, 32)
      "prefetcht0 2048(%[b])\n\t"
      LOWBIT_KPAIR(48, 64) LOWBIT_KPAIR(72, 96)
      "prefetcht0 2112(%[b])\n\t"
      "add $96, %[a]\n\t"
      "add $128, %[b]\n\t"
      "dec %[n4]\n\t"
      "jnz 1b\n"
      "2:\n\t"
      "test %[rem], %[rem]\n\t"
      "jz 4f\n"
      "3:\n\t"
      LOWBIT_KPAIR(0, 0)
      "add $24, %[a]\n\t"
      "add $32, %[b]\n\t"
      "dec %[rem]\n\t"
      "jnz 3b\n"
      "4:\n\t"
      : [a] "+r"(a), [b] "+r"(b), [n4] "+r"(n4), [rem] "+r"(rem),
        [c00] "=&x"(c00), [c01] "=&x"(c01), [c10] "=&x"(c10), [c11] "=&x"(c11),
        [c20] "=&x"(c20), [c21] "=&x"(c21), [c30] "=&x"(c30), [c31] "=&x"(c31),
        [c40] "=&x"(c40), [c41] "=&x"(c41), [c50] "=&x"(c50), [c51] "=&x"(c51),
        [b0] "=&x"(b0), [b1] "=&x"(b1), [av] "=&x"(av), [t] "=&x"(t)
      :
      : "cc", "memory");
  v[0][0] = c00, v[0][1] = c01, v[1][0] = c10, v[1][1] = c11, v[2][0] = c20, v[2][1] = c21;
  v[3][0] = c30, v[3][1] = c31, v[4][0] = c40, v[4][1] = c41, v[5][0] = c50, v[5][1] = c51;
}
#undef LOWBIT_KPAIR
#undef LOWBIT_ROW

// One k-quad row R: int8 A quad (broadcast) x B quads (0..15) with vpmaddubsw, summed in int16.
#define LOWBIT_QROW(R, C0, C1)                     \
  "vpbroadcastd 4*" #R "(%[a]), %[av]\n\t"         \
  "vpmaddubsw %[av], %[b0], %[t]\n\t"              \
  "vpaddw %[t], %[" #C0 "], %[" #C0 "]\n\t"        \
  "vpmaddubsw %[av], %[b1], %[av]\n\t"             \
  "vpaddw %[av], %[" #C1 "], %[" #C1 "]\n\t"

// Sums of a 6x16 block over kq k-quads of a B quad panel: products within [-3840, 3810] a pair,
// at most 8 quads summed in int16 lanes (|.| <= 30720), then widened by vpmaddwd with 1.
__attribute__((always_inline)) inline void quad_sums(int64_t kq, const int32_t* a,
                                                     const uint8_t* b, __m256i (&v)[kMR][2]) {
  for (int r = 0; r < kMR; ++r) v[r][0] = v[r][1] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t q0 = 0; q0 < kq; q0 += 8) {
    int64_t nq = kq - q0 < 8 ? kq - q0 : 8;
    __m256i c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, b0, b1, av, t;
    __asm__(
        LOWBIT_ZERO(c00) LOWBIT_ZERO(c01) LOWBIT_ZERO(c10) LOWBIT_ZERO(c11) LOWBIT_ZERO(c20)
        LOWBIT_ZERO(c21) LOWBIT_ZERO(c30) LOWBIT_ZERO(c31) LOWBIT_ZERO(c40) LOWBIT_ZERO(c41)
        LOWBIT_ZERO(c50) LOWBIT_ZERO(c51)
        ".p2align 5\n"
        "1:\n\t"
        "vmovdqu (%[b]), %[b0]\n\t"
        "vmovdqu 32(%[b]), %[b1]\n\t"
        LOWBIT_QROW(0, c00, c01) LOWBIT_QROW(1, c10, c11) LOWBIT_QROW(2, c20, c21)
        LOWBIT_QROW(3, c30, c31) LOWBIT_QROW(4, c40, c41) LOWBIT_QROW(5, c50, c51)
        "add $24, %[a]\n\t"
        "add $64, %[b]\n\t"
        "dec %[nq]\n\t"
        "jnz 1b\n\t"
        : [a] "+r"(a), [b] "+r"(b), [nq] "+r"(nq),
          [c00] "=&x"(c00), [c01] "=&x"(c01), [c10] "=&x"(c10), [c11] "=&x"(c11),
          [c20] "=&x"(c20), [c21] "=&x"(c21), [c30] "=&x"(c30), [c31] "=&x"(c31),
          [c40] "=&x"(c40), [c41] "=&x"(c41), [c50] "=&x"(c50), [c51] "=&x"(c51),
          [b0] "=&x"(b0), [b1] "=&x"(b1), [av] "=&x"(av), [t] "=&x"(t)
        :
        : "cc", "memory");
    const __m256i part[kMR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                                  {c30, c31}, {c40, c41}, {c50, c51}};
    for (int r = 0; r < kMR; ++r)
      for (int h = 0; h < 2; ++h)
        v[r][h] = _mm256_add_epi32(v[r][h], _mm256_madd_epi16(part[r][h], ones));
  }
}
#undef LOWBIT_QROW
#undef LOWBIT_ZERO

}  // namespace
}  // namespace avx2
}  // namespace lowbit

#endif  // LOWBIT_KERNELS_AVX2_TILE_SUMS_H_
