// Shared by the GEMM driver (gemm.cpp) and the linear driver (linear.cpp): cache-block sizes in
// units of the active path's tile (its GemmGeometry, from the call's table snapshot), the output
// tiling, the thread split of the small-M paths, the writers of A panel words (the layouts of
// lowbit/kernels.h) and the one tile driver of the tiled integer paths. Internal to cpp/runtime.
#ifndef LOWBIT_RUNTIME_BLOCKING_H_
#define LOWBIT_RUNTIME_BLOCKING_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lowbit/kernels.h"
#include "lowbit/runtime.h"

namespace lowbit {
namespace blocking {

// Large M: output tiles of up to kTileRows register tiles of rows x kTilePanels B panels. The
// tile's A block (up to 32 MR rows x kc pairs x 4 bytes, 192 KiB at MR = 6) stays in L2 while it
// meets every B panel; 192 rows make a batch of 128 one row of tiles, so each B micro-panel is
// read from memory once (measured +6% at 128 x 4096 x 4096 against 96-row tiles).
constexpr int64_t kTileRows = 32;
constexpr int64_t kTilePanels = 16;
// M up to this many rows takes the small-M paths (B streamed once, N split over threads).
constexpr int64_t kSmallM = 8;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Bytes of one packed B panel of k rows (lowbit/kernels.h layouts).
inline int64_t panel_bytes(const GemmGeometry& g, int64_t k, int bits) {
  return ceil_div(k, g.kb) * g.kb * g.nr * bits / 8;
}

// Splits [0, n) into about `parts` chunks of at least `min_chunk`; returns the chunk length.
inline int64_t chunk_len(int64_t n, int64_t parts, int64_t min_chunk) {
  return std::max(min_chunk, ceil_div(n, std::max<int64_t>(parts, 1)));
}

// fn(p) for every B panel p < npanels (the small-M paths): threads take chunks of panels.
template <class Fn>
void each_panel_chunk(int64_t npanels, const Fn& fn) {
  const int64_t chunk = chunk_len(npanels, 8 * int64_t(parallel_threads()), 1);
  parallel_for(ceil_div(npanels, chunk), [&](int64_t c) {
    fn(c * chunk, std::min(npanels, c * chunk + chunk));
  });
}

// The output tiles of the tiled paths: mc x nc, shrunk when there are fewer than three per
// thread (any split gives the same bits). Tile q covers rows from (q / tn) mc, columns from
// (q % tn) nc.
struct Tiling {
  int64_t mc = 0, nc = 0, tn = 1, count = 1;
};

inline Tiling tiling(const GemmGeometry& g, int64_t m, int64_t n) {
  Tiling t;
  t.mc = kTileRows * g.mr, t.nc = kTilePanels * g.nr;
  const int64_t want = 3 * int64_t(parallel_threads());
  auto count = [&] { return ceil_div(m, t.mc) * ceil_div(n, t.nc); };
  while (count() < want && t.nc > 4 * g.nr) t.nc /= 2;
  while (count() < want && t.mc > 2 * g.mr) t.mc = ceil_div(t.mc / 2, g.mr) * g.mr;
  t.tn = ceil_div(n, t.nc);
  t.count = count();
  return t;
}

// Prefetches part `part` of `parts` of the cache lines of [p, p + len). The tiled paths fetch
// the next B micro-panel a slice per A panel, so that it is in cache when its turn comes instead
// of stalling its first A panel (measured +6% at 128 x 4096 x 4096).
inline void prefetch_part(const uint8_t* p, int64_t len, int64_t part, int64_t parts) {
  const int64_t lines = ceil_div(len, 64), per = ceil_div(lines, parts);
  const int64_t end = std::min(lines, (part + 1) * per);
  for (int64_t l = part * per; l < end; ++l) __builtin_prefetch(p + l * 64);
}

// Words for the A panels of a small-M call that stay allocated on this thread between calls
// (Tag keeps the GEMM's and linear's apart). A decode step packs a few KiB of A each call; a
// fresh heap block each time sometimes costs page faults, when malloc has just handed the top
// of its heap back to the system (seen on a Zen 5 VM as an M = 1 GEMM 10-25% slower, depending
// on what the process had allocated before). Read only during the call that asked for it.
template <class Tag>
inline int32_t* call_scratch(int64_t words) {
  thread_local std::vector<int32_t> buf;
  if (static_cast<int64_t>(buf.size()) < words) buf.resize(static_cast<size_t>(words));
  return buf.data();
}

// A row of n 8-bit values (int8 if Signed, else uint8) as int16 k-pair words, one every `stride`
// (MR) words of o (an odd n leaves 0 in the last high half). Returns the sum of the values,
// wrapping.
template <bool Signed>
inline uint32_t put_pairs(const uint8_t* g, int64_t n, int32_t* o, int64_t stride) {
  auto v = [g](int64_t i) { return Signed ? int32_t(int8_t(g[i])) : int32_t(g[i]); };
  uint32_t sum = 0;
  int64_t u = 0;
  for (; 2 * u + 1 < n; ++u) {
    const int32_t v0 = v(2 * u), v1 = v(2 * u + 1);
    sum += static_cast<uint32_t>(v0 + v1);
    o[u * stride] = static_cast<int32_t>((uint32_t(v0) & 0xFFFFu) | uint32_t(v1) << 16);
  }
  if (n % 2) {
    sum += static_cast<uint32_t>(v(n - 1));
    o[u * stride] = static_cast<int32_t>(uint32_t(v(n - 1)) & 0xFFFFu);
  }
  return sum;
}

inline uint32_t put_pairs(const uint8_t* g, int64_t n, bool is_signed, int32_t* o,
                          int64_t stride) {
  return is_signed ? put_pairs<true>(g, n, o, stride) : put_pairs<false>(g, n, o, stride);
}

// The sum of a row's n values a' (int8 a, or uint8 a - 128 when flipped), wrapping; a plain
// loop of widening adds that the compiler vectorizes.
inline uint32_t row_sum(const uint8_t* g, int64_t n, bool is_signed) {
  uint32_t sum = 0;
  if (is_signed) {
    for (int64_t i = 0; i < n; ++i) sum += static_cast<uint32_t>(int32_t(int8_t(g[i])));
    return sum;
  }
  for (int64_t i = 0; i < n; ++i) sum += g[i];
  return sum - 128u * static_cast<uint32_t>(n);
}

// The same row as byte k-quad words of int8 a' (a' = value, or value - 128 = byte ^ 0x80 for
// uint8 values), zero past n: a word copy per quad (the word holds k = 4q in its low byte). Returns the sum of a', wrapping.
inline uint32_t put_quads(const uint8_t* g, int64_t n, bool is_signed, int32_t* o,
                          int64_t stride) {
  const uint32_t flip = is_signed ? 0u : 0x80808080u;
  const int64_t full = n / 4;
  for (int64_t q = 0; q < full; ++q) {
    uint32_t w;
    std::memcpy(&w, g + 4 * q, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap32(w);
#endif
    o[q * stride] = static_cast<int32_t>(w ^ flip);
  }
  if (n % 4) {
    uint32_t w = 0;
    for (int64_t b = 0; 4 * full + b < n; ++b)
      w |= uint32_t(g[4 * full + b] ^ (flip & 0xFFu)) << (8 * b);
    o[full * stride] = static_cast<int32_t>(w);
  }
  return row_sum(g, n, is_signed);
}

// The tile driver of the tiled integer paths (the GEMM's large M, linear's per-channel large M):
// the raw int32 sums of output rows [i0, i1) x columns [j0, j1) over all of K into d (row
// stride ld). a: A panels (MR rows, kw words a row: int16 k-pairs or int8 k-quads, op.quads); b: the packed B (kpairs k-pairs a panel, panel_bytes apart). K runs in
// blocks of kwb words; inside a block, B micro-panels (4-bit: decoded to quads first), then A
// panels, the next micro-panel prefetched a slice per A panel.
struct TileOperands {
  const int32_t* a = nullptr;
  int64_t kw = 0;
  bool quads = false;  // A words are k-quads (4-bit B, or the geometry's a8 = 4), else k-pairs
  const uint8_t* b = nullptr;
  int bits = 8;
  int64_t kpairs = 0, pbytes = 0;
};

inline void tile_sums(const KernelTable& t, const TileOperands& op, int64_t kwb, int64_t i0,
                      int64_t i1, int64_t j0, int64_t j1, int32_t* d, int64_t ld,
                      std::vector<uint8_t>& decoded) {
  const GemmGeometry& g = t.gemm_geometry;
  const int64_t mr = g.mr, nr = g.nr;
  const bool four = op.bits == 4, quads = op.quads;
  const GemmTileFn kernel = four ? t.gemm_s8u4_s32 : t.gemm_u8_s32;
  const int64_t bstep = four ? nr : 2 * nr;  // bytes a k-pair of a B panel
  if (four) decoded.resize(static_cast<size_t>(std::max<int64_t>(1, std::min(kwb, op.kw)) * 4 * nr));
  // Loop counters instead of divisions by the (run-time) tile sizes in the inner loops.
  const int64_t a_panels = ceil_div(i1 - i0, mr), a_step = op.kw * mr;
  const int32_t* a0 = op.a + (i0 / mr) * a_step;  // i0 is a multiple of MR
  const uint8_t* b0 = op.b + (j0 / nr) * op.pbytes;  // j0 is a multiple of NR
  for (int64_t k0 = 0; k0 < std::max<int64_t>(op.kw, 1); k0 += kwb) {
    const int64_t kc = std::min(kwb, op.kw - k0);
    const int64_t p0 = quads ? 2 * k0 : k0;  // first k-pair of the block
    const int64_t pn = std::min(quads ? 2 * kc : kc, op.kpairs - p0);
    const uint8_t* bpanel = b0 + p0 * bstep;
    for (int64_t j = j0; j < j1; j += nr, bpanel += op.pbytes) {
      const uint8_t* bp = bpanel;
      const uint8_t* next = j + nr < j1 ? bp + op.pbytes : nullptr;
      if (four) {
        t.gemm_decode_q4(bp, pn, decoded.data());
        bp = decoded.data();
      }
      const int n = static_cast<int>(std::min(nr, j1 - j));
      int32_t* dj = d + (j - j0);
      const int32_t* ap = a0 + k0 * mr;
      for (int64_t ia = 0; ia < a_panels; ++ia, ap += a_step) {
        const int64_t i = i0 + ia * mr;
        const int m = static_cast<int>(std::min(mr, i1 - i));
        if (next) prefetch_part(next, pn * bstep, ia, a_panels);
        kernel(kc, ap, bp, dj + (i - i0) * ld, ld, m, n, k0 > 0);
      }
    }
  }
}

}  // namespace blocking
}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_BLOCKING_H_
