// AVX2 integer-GEMM kernels. Built with -mavx2 -mfma -mf16c -mbmi2 -ffp-contract=off only;
// reached only when the dispatcher has seen AVX2 and OS support for YMM state. Semantics:
// cpp/kernels/scalar/gemm.cpp, matched bit for bit (integer sums wrap the same way in any order).
// The 6x16 register tiles and their arithmetic (exact vpmaddwd sums, nothing saturates) are in
// tile_sums.h, shared with the fused linear kernels.
#include <immintrin.h>

#include "gemm_geometry.h"
#include "lowbit/kernels.h"
#include "tile_sums.h"

namespace lowbit {
namespace avx2 {
namespace {

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
// 6x16 tile, 8-bit B: tile_sums.h's pair_sums (gemm_u8_s32, below, picks it for 5 or 6 rows).

void tile_u8(int64_t kp, const int32_t* a, const uint8_t* b, int32_t* c, int64_t ldc, int m, int n,
             int accumulate) {
  __m256i v[kMR][2];
  pair_sums(kp, a, b, v);
  store_6x16(v, c, ldc, m, n, accumulate);
}

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

// 8-bit B, any m <= 6: up to 4 rows run the small-M kernel, whose register tile holds only
// those rows (the 6-row tile would spend a third or more of its multiply-adds on zero rows: the
// last A panel of a tiled M, M mod 6, measured +8-11 % at 16 x 4096 x 4096); 5 or 6 rows the
// 6x16 tile. The small-M slot is the same function.
void gemm_u8_s32(int64_t kp, const int32_t* a, const uint8_t* b, int32_t* c, int64_t ldc, int m,
                 int n, int accumulate) {
  switch (m) {
    case 1: return small_kernel<1, false>(kp, a, b, c, ldc, n, accumulate);
    case 2: return small_kernel<2, false>(kp, a, b, c, ldc, n, accumulate);
    case 3: return small_kernel<3, false>(kp, a, b, c, ldc, n, accumulate);
    case 4: return small_kernel<4, false>(kp, a, b, c, ldc, n, accumulate);
    default: return tile_u8(kp, a, b, c, ldc, m, n, accumulate);
  }
}

void gemm_small_u8_s32(int64_t kp, const int32_t* a, int m, const uint8_t* b, int32_t* c,
                       int64_t ldc, int n, int accumulate) {
  gemm_u8_s32(kp, a, b, c, ldc, m, n, accumulate);
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
    tile_u8(len, a + p0 * kMR, buf, c, ldc, m, n, accumulate || p0 > 0);
    p0 += len;
  } while (p0 < kp);
}

// ---------------------------------------------------------------------------------------------
// Large-M int4: 6x16 tile of int8 A quads x 4-bit B quads (tile_sums.h's quad_sums: vpmaddubsw,
// (0..15) * (-128..127) products summed in int16 lanes for up to 8 k-quads, then widened). Per
// 32 multiply-adds that is one vpmaddubsw + one vpaddw and 1/8 of a vpmaddwd, against two
// vpmaddwd + two vpaddd on the int16 path.

void gemm_s8u4_s32(int64_t kq, const int32_t* a, const uint8_t* b, int32_t* c, int64_t ldc, int m,
                   int n, int accumulate) {
  __m256i v[kMR][2];
  quad_sums(kq, a, b, v);
  store_6x16(v, c, ldc, m, n, accumulate);
}

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
  t.gemm_geometry = kGemmGeometry;
}

}  // namespace avx2
}  // namespace lowbit
