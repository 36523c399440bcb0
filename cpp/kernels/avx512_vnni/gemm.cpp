// AVX-512 VNNI integer-GEMM kernels. Built with the AVX-512 F/BW/DQ/VL + VNNI flags (or against
// SIMDe with the AVX2 flags: LOWBIT_EMULATE_AVX512); reached only when the dispatcher has seen
// those features and OS support for ZMM state. Semantics: cpp/kernels/scalar/gemm.cpp, matched
// bit for bit (integer sums wrap the same way in any order).
//
// Arithmetic: vpdpbusd (never its saturating variant) multiplies the 4 unsigned bytes u of a
// B column's k-quad by the 4 signed bytes a' of an A row's k-quad and adds the 4 products to the
// int32 lane: |sum| <= 4 * 255 * 128, exact, and the lane wraps modulo 2**32 like NumPy int32.
// So B keeps lowbit's unsigned u = b + bias, and A is packed as a' = a (int8) or a ^ 0x80 =
// a - 128 (uint8; the driver corrects through the zero point), for 8-bit and 4-bit B alike.
// Layouts (gemm_geometry.h, "k4n32"): an 8-bit B panel holds, for k-quad q, 128 bytes, byte
// 4c+i = u[4q+i][c]: the two zmm of columns 0..15 and 16..31. A 4-bit panel holds 64 bytes a
// quad, byte 4(c mod 16)+i = u[4q+i][c] in the low nibble for c < 16, in the high one for
// c >= 16: one load, an and and a shift give both vpdpbusd operands.
#include "avx512/simde_compat.h"  // <immintrin.h>, or SIMDe in an emulated build

#include <cstring>

#include "lowbit/kernels.h"
#include "quad_sums.h"

namespace lowbit {
namespace avx512_vnni {
namespace {

// Writes (or adds) one row of 32 sums held in two zmm into c, columns < n.
__attribute__((always_inline)) inline void store_row(int32_t* c, __m512i v0, __m512i v1, int n,
                                                     int accumulate) {
  if (n == kNR) {
    if (accumulate) {
      v0 = _mm512_add_epi32(v0, _mm512_loadu_si512(c));
      v1 = _mm512_add_epi32(v1, _mm512_loadu_si512(c + 16));
    }
    _mm512_storeu_si512(c, v0);
    _mm512_storeu_si512(c + 16, v1);
    return;
  }
  alignas(64) int32_t tmp[kNR];
  _mm512_store_si512(tmp, v0);
  _mm512_store_si512(tmp + 16, v1);
  for (int j = 0; j < n; ++j)
    c[j] = accumulate ? static_cast<int32_t>(static_cast<uint32_t>(c[j]) +
                                             static_cast<uint32_t>(tmp[j]))
                      : tmp[j];
}

// c (rows < M, columns < n) (+)= the sums over kq k-quads of A words a[q * kMR + r] and the B
// panel b (quad_sums.h). M is a template parameter so that exactly the accumulators of M rows
// live in registers: the small-M (decode) calls read each B byte once and spend no multiply-add
// on absent rows.
template <int M, bool kFour, bool kStreamB>
void quad_tile(int64_t kq, const int32_t* a, const uint8_t* b, int32_t* c, int64_t ldc, int n,
               int accumulate) {
  __m512i acc[M][2];
  // the small-M calls (kStreamB) get an A panel of M rows (kGemmGeometry.small_a_rows)
  quad_sums<M, kFour, kStreamB>(0, kq, a, kStreamB ? M : kMR, b, acc);
#pragma GCC unroll 8
  for (int r = 0; r < M; ++r) store_row(c + r * ldc, acc[r][0], acc[r][1], n, accumulate);
}

template <bool kFour, bool kStreamB>
void tile_any(int64_t kq, const int32_t* a, const uint8_t* b, int32_t* c, int64_t ldc, int m,
              int n, int accumulate) {
  switch (m) {
    case 1: return quad_tile<1, kFour, kStreamB>(kq, a, b, c, ldc, n, accumulate);
    case 2: return quad_tile<2, kFour, kStreamB>(kq, a, b, c, ldc, n, accumulate);
    case 3: return quad_tile<3, kFour, kStreamB>(kq, a, b, c, ldc, n, accumulate);
    case 4: return quad_tile<4, kFour, kStreamB>(kq, a, b, c, ldc, n, accumulate);
    case 5: return quad_tile<5, kFour, kStreamB>(kq, a, b, c, ldc, n, accumulate);
    case 6: return quad_tile<6, kFour, kStreamB>(kq, a, b, c, ldc, n, accumulate);
    case 7: return quad_tile<7, kFour, kStreamB>(kq, a, b, c, ldc, n, accumulate);
    default: return quad_tile<8, kFour, kStreamB>(kq, a, b, c, ldc, n, accumulate);
  }
}

// Large M, 8-bit B, and large-M int4 after gemm_decode_q4 (which writes the 8-bit quad layout):
// one kernel. kq counts k-quads (A words).
void gemm_u8_s32(int64_t kq, const int32_t* a, const uint8_t* b, int32_t* c, int64_t ldc, int m,
                 int n, int accumulate) {
  tile_any<false, false>(kq, a, b, c, ldc, m, n, accumulate);
}

void gemm_s8u4_s32(int64_t kq, const int32_t* a, const uint8_t* b, int32_t* c, int64_t ldc, int m,
                   int n, int accumulate) {
  tile_any<false, false>(kq, a, b, c, ldc, m, n, accumulate);
}

void gemm_small_u8_s32(int64_t kq, const int32_t* a, int m, const uint8_t* b, int32_t* c,
                       int64_t ldc, int n, int accumulate) {
  tile_any<false, true>(kq, a, b, c, ldc, m, n, accumulate);
}

void gemm_small_u4_s32(int64_t kq, const int32_t* a, int m, const uint8_t* b, int32_t* c,
                       int64_t ldc, int n, int accumulate) {
  tile_any<true, true>(kq, a, b, c, ldc, m, n, accumulate);
}

// kp k-pairs of a 4-bit panel (ceil(kp/2) k-quads, 64 bytes each) -> the 8-bit quad layout.
void gemm_decode_q4(const uint8_t* b4, int64_t kp, uint8_t* q) {
  const __m512i m15 = _mm512_set1_epi8(15);
  for (int64_t j = 0; j < (kp + 1) / 2; ++j) {
    __m512i b0, b1;
    load_b<true>(b4, j, m15, b0, b1);
    _mm512_storeu_si512(q + j * kQuadBytes8, b0);
    _mm512_storeu_si512(q + j * kQuadBytes8 + 64, b1);
  }
}

// ---------------------------------------------------------------------------------------------
// Packing B (once per PackedMatrix, or per call for a plain b). Column sums: vpdpbusd of each
// quad vector with bytes of 1 adds a column's 4 values to its int32 lane, exactly.

// 16 bytes of a row, columns [c0, c0 + 16) clipped to n, zero past n (never reads past n), xor
// flip on the real columns (columns past n stay 0, not 0 ^ flip).
inline __m128i load16(const uint8_t* row, int c0, int n, uint8_t flip) {
  const int len = n - c0 >= 16 ? 16 : (n > c0 ? n - c0 : 0);
  alignas(16) uint8_t tmp[16] = {};
  if (len == 16) {
    std::memcpy(tmp, row + c0, 16);
  } else if (len > 0) {
    std::memcpy(tmp, row + c0, static_cast<size_t>(len));
  }
  for (int i = 0; i < len; ++i) tmp[i] = static_cast<uint8_t>(tmp[i] ^ flip);
  return _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
}

// The k-quad of 16 columns from 4 rows x0..x3: byte 4c+i = row i, column c.
inline __m512i quad16(__m128i x0, __m128i x1, __m128i x2, __m128i x3) {
  const __m128i t01l = _mm_unpacklo_epi8(x0, x1), t01h = _mm_unpackhi_epi8(x0, x1);
  const __m128i t23l = _mm_unpacklo_epi8(x2, x3), t23h = _mm_unpackhi_epi8(x2, x3);
  __m512i v = _mm512_castsi128_si512(_mm_unpacklo_epi16(t01l, t23l));  // columns 0..3
  v = _mm512_inserti32x4(v, _mm_unpackhi_epi16(t01l, t23l), 1);        // 4..7
  v = _mm512_inserti32x4(v, _mm_unpacklo_epi16(t01h, t23h), 2);        // 8..11
  return _mm512_inserti32x4(v, _mm_unpackhi_epi16(t01h, t23h), 3);     // 12..15
}

void store_colsum(int32_t* colsum, __m512i s0, __m512i s1) {
  _mm512_storeu_si512(colsum, s0);
  _mm512_storeu_si512(colsum + 16, s1);
}

void gemm_pack_b8(const uint8_t* b, int64_t ldb, int64_t k, int n, uint8_t flip, uint8_t* dst,
                  int32_t* colsum) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
  for (int64_t k0 = 0; k0 < k; k0 += 4, dst += kQuadBytes8) {
    __m128i lo[4], hi[4];  // rows k0..k0+3, columns 0..15 / 16..31 (zero past k)
    for (int i = 0; i < 4; ++i) {
      const bool real = k0 + i < k;
      lo[i] = real ? load16(b + (k0 + i) * ldb, 0, n, flip) : _mm_setzero_si128();
      hi[i] = real ? load16(b + (k0 + i) * ldb, 16, n, flip) : _mm_setzero_si128();
    }
    const __m512i q0 = quad16(lo[0], lo[1], lo[2], lo[3]);
    const __m512i q1 = quad16(hi[0], hi[1], hi[2], hi[3]);
    _mm512_storeu_si512(dst, q0);
    _mm512_storeu_si512(dst + 64, q1);
    s0 = _mm512_dpbusd_epi32(s0, q0, ones);
    s1 = _mm512_dpbusd_epi32(s1, q1, ones);
  }
  store_colsum(colsum, s0, s1);
}

// Rows of b hold k-pairs as nibbles (row j: byte c = u[2j][c] | u[2j+1][c] << 4); ceil(k/2) rows;
// an odd k's last high nibble is padding.
void gemm_pack_b4(const uint8_t* b, int64_t ldb, int64_t k, int n, uint8_t flip, uint8_t* dst,
                  int32_t* colsum) {
  const __m512i ones = _mm512_set1_epi8(1);
  const __m128i m15 = _mm_set1_epi8(15);
  const uint8_t flip2 = static_cast<uint8_t>(flip | flip << 4);
  const int64_t kp = (k + 1) / 2;
  __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
  for (int64_t j = 0; j < kp; j += 2, dst += kQuadBytes4) {
    __m128i e[2][2], o[2][2];  // [pair][column half]: even k and odd k nibbles, as bytes
    for (int t = 0; t < 2; ++t) {
      for (int h = 0; h < 2; ++h) {
        __m128i x = j + t < kp ? load16(b + (j + t) * ldb, 16 * h, n, flip2) : _mm_setzero_si128();
        if (2 * (j + t) + 1 == k) x = _mm_and_si128(x, m15);  // odd k: the padding nibble
        e[t][h] = _mm_and_si128(x, m15);
        o[t][h] = _mm_and_si128(_mm_srli_epi16(x, 4), m15);
      }
    }
    const __m512i q0 = quad16(e[0][0], o[0][0], e[1][0], o[1][0]);  // columns 0..15
    const __m512i q1 = quad16(e[0][1], o[0][1], e[1][1], o[1][1]);  // columns 16..31
    // values <= 15: the 16-bit shift moves each byte's nibble within its byte
    _mm512_storeu_si512(dst, _mm512_or_si512(q0, _mm512_slli_epi16(q1, 4)));
    s0 = _mm512_dpbusd_epi32(s0, q0, ones);
    s1 = _mm512_dpbusd_epi32(s1, q1, ones);
  }
  store_colsum(colsum, s0, s1);
}

// Register-only vpdpbusd throughput loop: 12 independent accumulators (two a cycle times a
// latency of up to 6; 24 made GCC spill them to the stack and read half the peak), 12 x 128 =
// 1536 integer ops an iteration = 4 rounds of 384.
int64_t gemm_peak_s32(int64_t iters) {
  if (iters <= 0) return 0;
  constexpr int kAcc = 12;
  __m512i acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_set1_epi32(i);
  __m512i x = _mm512_set1_epi32(0x01020304), y = _mm512_set1_epi32(0x05060708);
  for (int64_t it = 0; it < (iters + 3) / 4; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], x, y);
#ifdef LOWBIT_SIMDE
    __asm__ volatile("" : "+m"(x), "+m"(y));  // not loop-invariant to the compiler
#else
    __asm__ volatile("" : "+v"(x), "+v"(y));
#endif
  }
  __m512i s = acc[0];
  for (int i = 1; i < kAcc; ++i) s = _mm512_add_epi32(s, acc[i]);
  alignas(64) int32_t out[16];
  _mm512_store_si512(out, s);
  return out[0];
}

}  // namespace

void fill_gemm(KernelTable& t) {
#define LOWBIT_KERNEL(name, type) t.name = name;
#include "lowbit/gemm_kernels.inc"
#undef LOWBIT_KERNEL
  t.gemm_geometry = kGemmGeometry;
}

}  // namespace avx512_vnni
}  // namespace lowbit
