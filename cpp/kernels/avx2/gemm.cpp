// AVX2 integer-GEMM kernels. Built with -mavx2 -mfma -mf16c -mbmi2 -ffp-contract=off only;
// reached only when the dispatcher has seen AVX2 and OS support for YMM state. Semantics:
// cpp/kernels/scalar/gemm.cpp, matched bit for bit (integer sums wrap the same way in any order).
//
// Arithmetic: A is int16 (a widened int8/uint8 value), B is an unsigned byte widened to int16
// by vpmovzxbw, and vpmaddwd multiplies int16 pairs into an exact int32 sum of two products
// (|a0*b0 + a1*b1| <= 2 * 255 * 255 here; vpmaddwd only overflows for -32768 * -32768 twice).
// vpaddd then wraps modulo 2**32 like NumPy int32. Nothing saturates: no vpmaddubsw, no vpdp*s.
//
// Throughput: vpmaddwd issues twice a cycle on Zen 3/4 and most Intel cores (16 int16 MACs
// each); every one needs a vpaddd, so a k-pair of the 6x16 tile is 12 vpmaddwd + 12 vpaddd +
// 2 vpmovzxbw (B, 16 columns) + 6 vpbroadcastd (A, one pair per row): 16 vector registers
// exactly (12 accumulators, 2 B, the broadcast and one product).
#include <immintrin.h>

#include "lowbit/kernels.h"

namespace lowbit {
namespace avx2 {
namespace {

constexpr int kMR = gemm_layout::kMR;
constexpr int kNR = gemm_layout::kNR;

// Writes (or adds) a 6x16 block held in 12 registers into c, rows < m and columns < n.
// Inlined so that callers' accumulator arrays stay in registers.
__attribute__((always_inline)) inline void store_6x16(const __m256i (&v)[kMR][2], int32_t* c, int64_t ldc, int m, int n,
                int accumulate) {
  if (n == kNR) {
    for (int r = 0; r < m; ++r) {
      __m256i* cr = reinterpret_cast<__m256i*>(c + r * ldc);
      __m256i x0 = v[r][0], x1 = v[r][1];
      if (accumulate) {
        x0 = _mm256_add_epi32(x0, _mm256_loadu_si256(cr));
        x1 = _mm256_add_epi32(x1, _mm256_loadu_si256(cr + 1));
      }
      _mm256_storeu_si256(cr, x0);
      _mm256_storeu_si256(cr + 1, x1);
    }
    return;
  }
  alignas(32) int32_t tmp[kNR];
  for (int r = 0; r < m; ++r) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), v[r][0]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), v[r][1]);
    int32_t* cr = c + r * ldc;
    for (int j = 0; j < n; ++j)
      cr[j] = accumulate ? static_cast<int32_t>(static_cast<uint32_t>(cr[j]) +
                                                static_cast<uint32_t>(tmp[j]))
                         : tmp[j];
  }
}

// ---------------------------------------------------------------------------------------------
// 6x16 tile, 8-bit B. The k loop is inline assembly: with 16 live vector registers GCC's
// scheduler spills accumulators to the stack (measured: 50 vs 135 GOPS). The accumulators are
// ordinary operands, so everything outside the loop stays C++. B is prefetched 2 KiB (64
// k-pairs) ahead: when few rows pass over a long B panel (M = 9..32, K unblocked) the first pass
// reads B from memory, and the hardware prefetchers alone left it latency-bound (measured +10%
// at 16 x 4096 x 4096). Prefetches never fault, so running past the panel's end is harmless.

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

void gemm_u8_s32(int64_t kp, const int32_t* a, const uint8_t* b, int32_t* c, int64_t ldc, int m,
                 int n, int accumulate) {
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
        [b0] "=&x"(b0), [b1] "=&x"(b1), [av] "=&x"(av),
        [t] "=&x"(t)
      :
      : "cc", "memory");
  const __m256i v[kMR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                             {c30, c31}, {c40, c41}, {c50, c51}};
  store_6x16(v, c, ldc, m, n, accumulate);
}
#undef LOWBIT_KPAIR
#undef LOWBIT_ZERO
#undef LOWBIT_ROW

// ---------------------------------------------------------------------------------------------
// Small M (the decoding case): few rows, so the kernel is bound by reading B. Each B byte is
// loaded once and widened in registers. M is a template parameter so the accumulators live in
// registers (2 * M of them).

// The 16 columns of k-pair p as two int16-pair vectors (columns 0..7 and 8..15).
struct BPair {
  __m256i lo, hi;
};

inline BPair load_u8(const uint8_t* b, int64_t p) {
  const __m128i* q = reinterpret_cast<const __m128i*>(b + p * 2 * kNR);
  return {_mm256_cvtepu8_epi16(_mm_loadu_si128(q)), _mm256_cvtepu8_epi16(_mm_loadu_si128(q + 1))};
}

// 4-bit panel: byte 2c+t holds column c (low nibble) and column c+8 (high nibble) of k-pair p;
// widening the bytes to int16 first makes the high nibble a plain 16-bit shift.
inline BPair load_u4(const uint8_t* b, int64_t p, __m256i mask15) {
  const __m256i v = _mm256_cvtepu8_epi16(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + p * kNR)));
  return {_mm256_and_si256(v, mask15), _mm256_srli_epi16(v, 4)};
}

template <int M, bool kFour>
void small_kernel(int64_t kp, const int32_t* a, const uint8_t* b, int32_t* c, int64_t ldc, int n,
                  int accumulate) {
  __m256i acc[kMR][2];
#pragma GCC unroll 6
  for (int r = 0; r < kMR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  const __m256i mask15 = _mm256_set1_epi16(15);
  for (int64_t p = 0; p < kp; ++p) {
    const BPair bp = kFour ? load_u4(b, p, mask15) : load_u8(b, p);
#pragma GCC unroll 6
    for (int r = 0; r < M; ++r) {
      const __m256i av = _mm256_set1_epi32(a[p * kMR + r]);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, bp.lo));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, bp.hi));
    }
  }
  store_6x16(acc, c, ldc, M, n, accumulate);
}

void gemm_decode_u4(const uint8_t* b4, int64_t kp, uint8_t* b8) {
  const __m128i mask15 = _mm_set1_epi8(15);
  for (int64_t p = 0; p < kp; ++p) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b4 + p * kNR));
    __m128i* d = reinterpret_cast<__m128i*>(b8 + p * 2 * kNR);
    _mm_storeu_si128(d, _mm_and_si128(x, mask15));                        // columns 0..7
    _mm_storeu_si128(d + 1, _mm_and_si128(_mm_srli_epi16(x, 4), mask15));  // columns 8..15
  }
}

void gemm_small_u8_s32(int64_t kp, const int32_t* a, int m, const uint8_t* b, int32_t* c,
                       int64_t ldc, int n, int accumulate) {
  switch (m) {
    case 1: return small_kernel<1, false>(kp, a, b, c, ldc, n, accumulate);
    case 2: return small_kernel<2, false>(kp, a, b, c, ldc, n, accumulate);
    case 3: return small_kernel<3, false>(kp, a, b, c, ldc, n, accumulate);
    case 4: return small_kernel<4, false>(kp, a, b, c, ldc, n, accumulate);
    default: return gemm_u8_s32(kp, a, b, c, ldc, m, n, accumulate);  // 5 or 6 rows
  }
}

void gemm_small_u4_s32(int64_t kp, const int32_t* a, int m, const uint8_t* b, int32_t* c,
                       int64_t ldc, int n, int accumulate) {
  switch (m) {
    case 1: return small_kernel<1, true>(kp, a, b, c, ldc, n, accumulate);
    case 2: return small_kernel<2, true>(kp, a, b, c, ldc, n, accumulate);
    case 3: return small_kernel<3, true>(kp, a, b, c, ldc, n, accumulate);
    case 4: return small_kernel<4, true>(kp, a, b, c, ldc, n, accumulate);
    default: break;
  }
  // 5 or 6 rows: decode a chunk of k-pairs into an L1 buffer, then the 6x16 tile kernel.
  constexpr int64_t kChunk = 256;
  alignas(32) uint8_t buf[kChunk * 2 * kNR];
  int64_t p0 = 0;
  do {  // at least once, so kp == 0 still stores zeros
    const int64_t len = kp - p0 < kChunk ? kp - p0 : kChunk;
    gemm_decode_u4(b + p0 * kNR, len, buf);
    gemm_u8_s32(len, a + p0 * kMR, buf, c, ldc, m, n, accumulate || p0 > 0);
    p0 += len;
  } while (p0 < kp);
}

// ---------------------------------------------------------------------------------------------
// Large-M int4: 6x16 tile of int8 A quads x 4-bit B quads with vpmaddubsw. Its products are
// (0..15) * (-128..127), so a pair sum is within [-3840, 3810] (no saturation) and 8 k-quads
// sum to within [-30720, 30480] in the int16 lanes (vpaddw); then vpmaddwd by 1 widens to
// int32. Per 32 multiply-adds that is one vpmaddubsw + one vpaddw and 1/8 of a vpmaddwd, against
// two vpmaddwd + two vpaddd on the int16 path.

#define LOWBIT_QROW(R, C0, C1)                     \
  "vpbroadcastd 4*" #R "(%[a]), %[av]\n\t"         \
  "vpmaddubsw %[av], %[b0], %[t]\n\t"              \
  "vpaddw %[t], %[" #C0 "], %[" #C0 "]\n\t"        \
  "vpmaddubsw %[av], %[b1], %[av]\n\t"             \
  "vpaddw %[av], %[" #C1 "], %[" #C1 "]\n\t"
#define LOWBIT_ZERO(C) "vpxor %[" #C "], %[" #C "], %[" #C "]\n\t"

void gemm_s8u4_s32(int64_t kq, const int32_t* a, const uint8_t* b, int32_t* c, int64_t ldc, int m,
                   int n, int accumulate) {
  __m256i acc[kMR][2];
  for (int r = 0; r < kMR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t q0 = 0; q0 < kq; q0 += 8) {
    int64_t nq = kq - q0 < 8 ? kq - q0 : 8;  // at most 8 k-quads in the int16 lanes
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
        acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(part[r][h], ones));
  }
  store_6x16(acc, c, ldc, m, n, accumulate);
}
#undef LOWBIT_QROW
#undef LOWBIT_ZERO

void gemm_decode_q4(const uint8_t* b4, int64_t kp, uint8_t* q) {
  const __m128i m15 = _mm_set1_epi8(15);
  for (int64_t j = 0; j < kp; j += 2, q += 4 * kNR) {
    const __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b4 + j * kNR));
    const __m128i x1 = j + 1 < kp
                           ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(b4 + (j + 1) * kNR))
                           : _mm_setzero_si128();
    // 16-bit word c of lo0 / lo1 holds column c at k = 4q, 4q+1 / 4q+2, 4q+3.
    const __m128i lo0 = _mm_and_si128(x0, m15), lo1 = _mm_and_si128(x1, m15);
    const __m128i hi0 = _mm_and_si128(_mm_srli_epi16(x0, 4), m15);
    const __m128i hi1 = _mm_and_si128(_mm_srli_epi16(x1, 4), m15);
    __m128i* d = reinterpret_cast<__m128i*>(q);
    _mm_storeu_si128(d, _mm_unpacklo_epi16(lo0, lo1));      // columns 0..3
    _mm_storeu_si128(d + 1, _mm_unpackhi_epi16(lo0, lo1));  // columns 4..7
    _mm_storeu_si128(d + 2, _mm_unpacklo_epi16(hi0, hi1));  // columns 8..11
    _mm_storeu_si128(d + 3, _mm_unpackhi_epi16(hi0, hi1));  // columns 12..15
  }
}

// ---------------------------------------------------------------------------------------------
// Packing B (once per PackedMatrix, or per call for a plain b). Column sums accumulate in 16-bit
// lanes (at most 2 * 255 a k-pair, so 128 k-pairs fit in 65535) and are flushed to 32 bits.

struct ColSums {
  __m256i s16 = _mm256_setzero_si256(), lo = _mm256_setzero_si256(),
          hi = _mm256_setzero_si256();
  void flush() {
    lo = _mm256_add_epi32(lo, _mm256_cvtepu16_epi32(_mm256_castsi256_si128(s16)));
    hi = _mm256_add_epi32(hi, _mm256_cvtepu16_epi32(_mm256_extracti128_si256(s16, 1)));
    s16 = _mm256_setzero_si256();
  }
  void add(__m128i x0, __m128i x1) {  // 16 column values of two rows
    s16 = _mm256_add_epi16(s16, _mm256_add_epi16(_mm256_cvtepu8_epi16(x0),
                                                 _mm256_cvtepu8_epi16(x1)));
  }
  void store(int32_t* colsum) {
    flush();
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(colsum), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(colsum + 8), hi);
  }
};

// 16 bytes of a row, columns [0, n); zeros past n (never reads past n).
inline __m128i load_row(const uint8_t* p, int n) {
  if (n == kNR) return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  alignas(16) uint8_t tmp[kNR] = {};
  for (int c = 0; c < n; ++c) tmp[c] = p[c];
  return _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
}

void gemm_pack_b8(const uint8_t* b, int64_t ldb, int64_t k, int n, uint8_t flip, uint8_t* dst,
                  int32_t* colsum) {
  // Columns past n must stay 0 (not 0 ^ flip): mask the flip to the real columns.
  alignas(16) uint8_t fl[kNR] = {};
  for (int c = 0; c < n; ++c) fl[c] = flip;
  const __m128i vflip = _mm_load_si128(reinterpret_cast<const __m128i*>(fl));
  ColSums sums;
  int64_t pairs = 0;
  for (int64_t k0 = 0; k0 < k; k0 += 2, dst += 2 * kNR) {
    const __m128i x0 = _mm_xor_si128(load_row(b + k0 * ldb, n), vflip);
    const __m128i x1 = k0 + 1 < k ? _mm_xor_si128(load_row(b + (k0 + 1) * ldb, n), vflip)
                                  : _mm_setzero_si128();  // k padding
    // byte 2c+t = row t, column c: interleave the two rows (columns 0..7, then 8..15)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi8(x0, x1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + kNR), _mm_unpackhi_epi8(x0, x1));
    sums.add(x0, x1);
    if (++pairs % 128 == 0) sums.flush();
  }
  sums.store(colsum);
}

void gemm_pack_b4(const uint8_t* b, int64_t ldb, int64_t k, int n, uint8_t flip, uint8_t* dst,
                  int32_t* colsum) {
  alignas(16) uint8_t fl[kNR] = {};
  for (int c = 0; c < n; ++c) fl[c] = static_cast<uint8_t>(flip | (flip << 4));
  const __m128i vflip = _mm_load_si128(reinterpret_cast<const __m128i*>(fl));
  const __m128i m15 = _mm_set1_epi8(15);
  const int64_t kp = (k + 1) / 2;
  ColSums sums;
  for (int64_t j = 0; j < kp; ++j, dst += kNR) {
    __m128i x = _mm_xor_si128(load_row(b + j * ldb, n), vflip);
    if (2 * j + 1 == k) x = _mm_and_si128(x, m15);  // odd k: the last high nibble is padding
    const __m128i lo = _mm_and_si128(x, m15);                     // even k, columns 0..15
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), m15);  // odd k
    // Bytes c < 8 of p: column c | column c+8 << 4 (values <= 15, so the 16-bit shift is safe).
    const __m128i p = _mm_or_si128(lo, _mm_slli_epi16(_mm_srli_si128(lo, 8), 4));
    const __m128i q = _mm_or_si128(hi, _mm_slli_epi16(_mm_srli_si128(hi, 8), 4));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi8(p, q));
    sums.add(lo, hi);
    if ((j + 1) % 2048 == 0) sums.flush();  // at most 30 a k-pair
  }
  sums.store(colsum);
}

// Register-only vpmaddwd + vpaddd throughput loop (the kernel's inner-loop mix without loads).
#define LOWBIT_MA(C) "vpmaddwd %[x], %[y], %[t]\n\t vpaddd %[t], %[" #C "], %[" #C "]\n\t"
#define LOWBIT_Z(C) "vpxor %[" #C "], %[" #C "], %[" #C "]\n\t"
int64_t gemm_peak_s32(int64_t iters) {
  __m256i c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, t;
  const __m256i x = _mm256_set1_epi16(3), y = _mm256_set1_epi16(5);
  if (iters <= 0) return 0;
  __asm__(
      LOWBIT_Z(c0) LOWBIT_Z(c1) LOWBIT_Z(c2) LOWBIT_Z(c3) LOWBIT_Z(c4) LOWBIT_Z(c5)
      LOWBIT_Z(c6) LOWBIT_Z(c7) LOWBIT_Z(c8) LOWBIT_Z(c9) LOWBIT_Z(c10) LOWBIT_Z(c11)
      ".p2align 5\n"
      "1:\n\t"
      LOWBIT_MA(c0) LOWBIT_MA(c1) LOWBIT_MA(c2) LOWBIT_MA(c3) LOWBIT_MA(c4) LOWBIT_MA(c5)
      LOWBIT_MA(c6) LOWBIT_MA(c7) LOWBIT_MA(c8) LOWBIT_MA(c9) LOWBIT_MA(c10) LOWBIT_MA(c11)
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      : [n] "+r"(iters), [c0] "=&x"(c0), [c1] "=&x"(c1), [c2] "=&x"(c2), [c3] "=&x"(c3),
        [c4] "=&x"(c4), [c5] "=&x"(c5), [c6] "=&x"(c6), [c7] "=&x"(c7), [c8] "=&x"(c8),
        [c9] "=&x"(c9), [c10] "=&x"(c10), [c11] "=&x"(c11), [t] "=&x"(t)
      : [x] "x"(x), [y] "x"(y)
      : "cc");
  __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                               _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
  s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(c8, c9), _mm256_add_epi32(c10, c11)));
  return _mm256_extract_epi32(s, 0);
}
#undef LOWBIT_MA
#undef LOWBIT_Z

}  // namespace

void fill_gemm(KernelTable& t) {
#define LOWBIT_KERNEL(name, type) t.name = name;
#include "lowbit/gemm_kernels.inc"
#undef LOWBIT_KERNEL
}

}  // namespace avx2
}  // namespace lowbit
