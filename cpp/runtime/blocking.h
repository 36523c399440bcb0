// Shared by the GEMM driver (gemm.cpp) and the linear driver (linear.cpp): register-tile and
// cache-block sizes, the small helpers both use, and the writers of A panel words (the layouts
// of lowbit/kernels.h). Internal to cpp/runtime.
#ifndef LOWBIT_RUNTIME_BLOCKING_H_
#define LOWBIT_RUNTIME_BLOCKING_H_

#include <algorithm>
#include <cstdint>

#include "lowbit/kernels.h"

namespace lowbit {
namespace blocking {

constexpr int64_t kMR = gemm_layout::kMR;  // rows of an A panel / of the register tile
constexpr int64_t kNR = gemm_layout::kNR;  // columns of a B panel

// Large M, in k-pairs / rows / columns. A B micro-panel of kKC k-pairs (8 KiB of 8-bit B, or of
// 4-bit B decoded to quads) stays in L1 while it meets every A panel of the tile; the tile's A
// block (up to kMC rows x kKC pairs x 4 bytes, 192 KiB) stays in L2 while it meets every B
// panel. kMC = 192 rows makes a batch of 128 one row of tiles, so each B micro-panel is read
// from memory once (measured +6% at 128 x 4096 x 4096 against 96-row tiles).
constexpr int64_t kKC = 256;
constexpr int64_t kMC = 32 * kMR;  // 192 rows
constexpr int64_t kNC = 16 * kNR;  // 256 columns
// M up to this many rows takes the small-M paths (B streamed once, N split over threads).
constexpr int64_t kSmallM = 8;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Bytes of one packed B panel of k rows (lowbit/kernels.h layouts).
inline int64_t panel_bytes(int64_t k, int bits) {
  return ceil_div(k, 2) * (bits == 8 ? 2 : 1) * kNR;
}

// Splits [0, n) into about `parts` chunks of at least `min_chunk`; returns the chunk length.
inline int64_t chunk_len(int64_t n, int64_t parts, int64_t min_chunk) {
  return std::max(min_chunk, ceil_div(n, std::max<int64_t>(parts, 1)));
}

// Prefetches part `part` of `parts` of the cache lines of [p, p + len). The tiled paths fetch
// the next B micro-panel a slice per A panel, so that it is in cache when its turn comes instead
// of stalling its first A panel (measured +6% at 128 x 4096 x 4096).
inline void prefetch_part(const uint8_t* p, int64_t len, int64_t part, int64_t parts) {
  const int64_t lines = ceil_div(len, 64), per = ceil_div(lines, parts);
  const int64_t end = std::min(lines, (part + 1) * per);
  for (int64_t l = part * per; l < end; ++l) __builtin_prefetch(p + l * 64);
}

// A row of n 8-bit values (int8 if Signed, else uint8) as int16 k-pair words, one every kMR
// words of o (an odd n leaves 0 in the last high half). Returns the sum of the values, wrapping.
template <bool Signed>
inline uint32_t put_pairs(const uint8_t* g, int64_t n, int32_t* o) {
  auto v = [g](int64_t i) { return Signed ? int32_t(int8_t(g[i])) : int32_t(g[i]); };
  uint32_t sum = 0;
  int64_t u = 0;
  for (; 2 * u + 1 < n; ++u) {
    const int32_t v0 = v(2 * u), v1 = v(2 * u + 1);
    sum += static_cast<uint32_t>(v0 + v1);
    o[u * kMR] = static_cast<int32_t>((uint32_t(v0) & 0xFFFFu) | uint32_t(v1) << 16);
  }
  if (n % 2) {
    sum += static_cast<uint32_t>(v(n - 1));
    o[u * kMR] = static_cast<int32_t>(uint32_t(v(n - 1)) & 0xFFFFu);
  }
  return sum;
}

// The same row as byte k-quad words of int8 a' (a' = value, or value - 128 = byte ^ 0x80 for
// uint8 values), zero past n. Returns the sum of a', wrapping.
inline uint32_t put_quads(const uint8_t* g, int64_t n, bool is_signed, int32_t* o) {
  const uint8_t flip = is_signed ? 0 : 0x80;
  uint32_t sum = 0;
  for (int64_t q = 0; 4 * q < n; ++q) {
    uint32_t w = 0;
    for (int64_t b = 0; b < 4 && 4 * q + b < n; ++b) {
      const uint8_t x = static_cast<uint8_t>(g[4 * q + b] ^ flip);
      sum += static_cast<uint32_t>(int32_t(int8_t(x)));
      w |= uint32_t(x) << (8 * b);
    }
    o[q * kMR] = static_cast<int32_t>(w);
  }
  return sum;
}

}  // namespace blocking
}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_BLOCKING_H_
