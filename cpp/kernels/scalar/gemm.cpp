// Portable scalar integer-GEMM kernels: built with the baseline flags only, reached on every CPU.
// They read the packed layouts described in lowbit/kernels.h and define the results every SIMD
// path must reproduce: exact sums of products, wrapping modulo 2**32 (done in uint32, so no
// signed overflow is ever evaluated).
#include "gemm_geometry.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace scalar {
namespace {

// The two int16 halves of an A word.
inline int32_t lo16(int32_t w) { return static_cast<int16_t>(static_cast<uint32_t>(w) & 0xFFFFu); }
inline int32_t hi16(int32_t w) { return static_cast<int16_t>(static_cast<uint32_t>(w) >> 16); }

// acc[r][j] over rows r < m: one k-pair at a time, B columns given as (u0, u1) pairs.
void store_tile(const uint32_t (*acc)[kNR], int m, int n, int32_t* c, int64_t ldc,
                int accumulate) {
  for (int r = 0; r < m; ++r) {
    int32_t* cr = c + r * ldc;
    for (int j = 0; j < n; ++j) {
      const uint32_t prev = accumulate ? static_cast<uint32_t>(cr[j]) : 0u;
      cr[j] = static_cast<int32_t>(prev + acc[r][j]);
    }
  }
}

void gemm_small_u8_s32(int64_t kp, const int32_t* a, int m, const uint8_t* b, int32_t* c,
                       int64_t ldc, int n, int accumulate) {
  uint32_t acc[kMR][kNR] = {};
  for (int64_t p = 0; p < kp; ++p) {
    const int32_t* ap = a + p * kMR;
    const uint8_t* bp = b + p * 2 * kNR;
    for (int r = 0; r < m; ++r) {
      const int32_t a0 = lo16(ap[r]), a1 = hi16(ap[r]);
      // |a0*u0 + a1*u1| <= 2 * 32768 * 255: fits int32.
      for (int j = 0; j < kNR; ++j)
        acc[r][j] += static_cast<uint32_t>(a0 * bp[2 * j] + a1 * bp[2 * j + 1]);
    }
  }
  store_tile(acc, m, n, c, ldc, accumulate);
}

void gemm_u8_s32(int64_t kp, const int32_t* a, const uint8_t* b, int32_t* c, int64_t ldc, int m,
                 int n, int accumulate) {
  gemm_small_u8_s32(kp, a, m, b, c, ldc, n, accumulate);
}

void gemm_small_u4_s32(int64_t kp, const int32_t* a, int m, const uint8_t* b, int32_t* c,
                       int64_t ldc, int n, int accumulate) {
  uint32_t acc[kMR][kNR] = {};
  for (int64_t p = 0; p < kp; ++p) {
    const int32_t* ap = a + p * kMR;
    const uint8_t* bp = b + p * kNR;
    for (int r = 0; r < m; ++r) {
      const int32_t a0 = lo16(ap[r]), a1 = hi16(ap[r]);
      for (int j = 0; j < kNR / 2; ++j) {
        const int32_t x0 = bp[2 * j], x1 = bp[2 * j + 1];
        acc[r][j] += static_cast<uint32_t>(a0 * (x0 & 15) + a1 * (x1 & 15));
        acc[r][j + kNR / 2] += static_cast<uint32_t>(a0 * (x0 >> 4) + a1 * (x1 >> 4));
      }
    }
  }
  store_tile(acc, m, n, c, ldc, accumulate);
}

void gemm_decode_q4(const uint8_t* b4, int64_t kp, uint8_t* q) {
  for (int64_t j = 0; j < kp; ++j) {
    const uint8_t* s = b4 + j * kNR;
    uint8_t* d = q + (j / 2) * 4 * kNR + 2 * (j & 1);  // k = 2j + t is byte 2*(j&1) + t of a quad
    for (int c = 0; c < kNR / 2; ++c) {
      for (int t = 0; t < 2; ++t) {
        d[4 * c + t] = s[2 * c + t] & 15;                // column c
        d[2 * kNR + 4 * c + t] = s[2 * c + t] >> 4;     // column c + 8
      }
    }
  }
  if (kp & 1) {  // the odd pair's partner in its quad is zero
    uint8_t* d = q + (kp / 2) * 4 * kNR;
    for (int c = 0; c < kNR; ++c) {
      d[4 * c + 2] = 0;
      d[4 * c + 3] = 0;
    }
  }
}

void gemm_s8u4_s32(int64_t kq, const int32_t* a, const uint8_t* b, int32_t* c, int64_t ldc, int m,
                   int n, int accumulate) {
  uint32_t acc[kMR][kNR] = {};
  for (int64_t q = 0; q < kq; ++q) {
    const int32_t* aq = a + q * kMR;
    const uint8_t* bq = b + q * 4 * kNR;
    for (int r = 0; r < m; ++r) {
      const uint32_t w = static_cast<uint32_t>(aq[r]);
      for (int j = 0; j < kNR; ++j) {
        const uint8_t* bj = bq + (j < 8 ? 4 * j : 2 * kNR + 4 * (j - 8));
        int32_t sum = 0;
        for (int i = 0; i < 4; ++i) sum += int32_t(int8_t(w >> (8 * i))) * bj[i];
        acc[r][j] += static_cast<uint32_t>(sum);
      }
    }
  }
  store_tile(acc, m, n, c, ldc, accumulate);
}

void gemm_pack_b8(const uint8_t* b, int64_t ldb, int64_t k, int n, uint8_t flip, uint8_t* dst,
                  int32_t* colsum) {
  uint32_t sums[kNR] = {};
  uint8_t r0[kNR] = {}, r1[kNR] = {};  // two rows of the panel, zero past column n
  for (int64_t k0 = 0; k0 < k; k0 += 2, dst += 2 * kNR) {
    const uint8_t* s0 = b + k0 * ldb;
    for (int c = 0; c < n; ++c) r0[c] = s0[c] ^ flip;
    if (k0 + 1 < k) {
      for (int c = 0; c < n; ++c) r1[c] = s0[ldb + c] ^ flip;
    } else {
      for (int c = 0; c < kNR; ++c) r1[c] = 0;  // k padding: never meets a nonzero a
    }
    for (int c = 0; c < kNR; ++c) {
      dst[2 * c] = r0[c];
      dst[2 * c + 1] = r1[c];
      sums[c] += uint32_t(r0[c]) + uint32_t(r1[c]);
    }
  }
  for (int c = 0; c < kNR; ++c) colsum[c] = static_cast<int32_t>(sums[c]);
}

void gemm_pack_b4(const uint8_t* b, int64_t ldb, int64_t k, int n, uint8_t flip, uint8_t* dst,
                  int32_t* colsum) {
  constexpr int kH = kNR / 2;
  const uint8_t flip2 = static_cast<uint8_t>(flip | (flip << 4));
  uint32_t sums[kNR] = {};
  uint8_t x[kNR] = {};  // one source row: byte c = k-pair of column c, zero past column n
  const int64_t kp = (k + 1) / 2;
  for (int64_t j = 0; j < kp; ++j, dst += kNR) {
    for (int c = 0; c < n; ++c) x[c] = b[j * ldb + c] ^ flip2;
    if (2 * j + 1 == k)  // odd k: the last high nibble is padding
      for (int c = 0; c < kNR; ++c) x[c] &= 15;
    for (int c = 0; c < kH; ++c) {
      const uint8_t lo = x[c], hi = x[c + kH];  // columns c and c + 8, both k of the pair
      dst[2 * c] = static_cast<uint8_t>((lo & 15) | (hi << 4));
      dst[2 * c + 1] = static_cast<uint8_t>((lo >> 4) | (hi & 0xF0));
    }
    for (int c = 0; c < kNR; ++c) sums[c] += uint32_t(x[c] & 15) + uint32_t(x[c] >> 4);
  }
  for (int c = 0; c < kNR; ++c) colsum[c] = static_cast<int32_t>(sums[c]);
}

// The same 12 independent multiply-add chains as the AVX2 loop, one lane each.
int64_t gemm_peak_s32(int64_t iters) {
  uint32_t acc[12] = {};
  int32_t a = 3, b = 5;
  for (int64_t i = 0; i < iters; ++i) {
    for (int r = 0; r < 12; ++r) acc[r] += static_cast<uint32_t>(a * (b + r) + b * (a + r));
    a = (a + 1) & 127;
  }
  uint32_t sum = 0;
  for (int r = 0; r < 12; ++r) sum += acc[r];
  return sum;
}

}  // namespace

void fill_gemm(KernelTable& t) {
#define LOWBIT_KERNEL(name, type) t.name = name;
#include "lowbit/gemm_kernels.inc"
#undef LOWBIT_KERNEL
  t.gemm_geometry = kGemmGeometry;
}

}  // namespace scalar
}  // namespace lowbit
