// Integer GEMM driver: packing, cache blocking, zero-point corrections and the thread split
// around the per-ISA kernels of lowbit/kernels.h. Built with baseline flags: it only calls the
// kernels through the active table. The arithmetic contract is in lowbit/gemm.h.
#include "lowbit/gemm.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "blocking.h"
#include "transpose.h"
#include "lowbit/kernels.h"
#include "lowbit/runtime.h"

namespace lowbit {
namespace {

using namespace blocking;  // NOLINT: the shared block sizes, tile driver, ceil_div, ...

// ---------------------------------------------------------------------------------------------
// Packing

// One A panel (rows i0 .. i0+MR-1, zero past m): word r of k-group j holds row r's int16 k-pair
// (pairs) or int8 k-quad of a' (quads, the int4 large-M format: a' = a for int8 a, a - 128 =
// byte ^ 0x80 for uint8 a). rowsum[r] = the sum of row r's values (of a' for quads).
void pack_a_panel(const GemmA& a, int64_t i0, int64_t mr, int64_t kw, bool quads, int32_t* out,
                  uint32_t* rowsum) {
  for (int64_t r = 0; r < mr; ++r) {
    const int64_t i = i0 + r;
    if (i >= a.m) {
      for (int64_t j = 0; j < kw; ++j) out[j * mr + r] = 0;
      continue;
    }
    const uint8_t* row = a.data + i * a.lda;
    rowsum[r] = quads ? put_quads(row, a.k, a.is_signed, out + r, mr)
                      : put_pairs(row, a.k, a.is_signed, out + r, mr);
  }
}

// c[i][j] += zb'[j] * (K za[i] - rowsum[i]) - za[i] colsum[j] for rows [i0, i1), columns
// [j0, j1): the expansion of (a - za)(u - zb') beyond sum a u, in uint32. ct points at element
// (i0, j0), rows ldt apart. When the packed A holds a' = a - a_off, za' = za - a_off keeps
// (a - za) = (a' - za').
void correct(const PackedB& b, const GemmZeroPoints& zp, const uint32_t* rowsum, int32_t a_off,
             int64_t i0, int64_t i1, int64_t j0, int64_t j1, int32_t* ct, int64_t ldt) {
  const uint32_t k = static_cast<uint32_t>(b.k);
  const int64_t w = j1 - j0;
  // zb'[j] once per tile, so that the row loop is two multiply-adds over contiguous arrays
  std::vector<uint32_t> zb(static_cast<size_t>(w));
  for (int64_t j = 0; j < w; ++j)
    zb[j] = static_cast<uint32_t>(zp.b[(j0 + j) * zp.b_stride]) + static_cast<uint32_t>(b.bias);
  const uint32_t* cs = reinterpret_cast<const uint32_t*>(b.colsum) + j0;
  for (int64_t i = i0; i < i1; ++i) {
    const uint32_t za =
        static_cast<uint32_t>(zp.a[i * zp.a_stride]) - static_cast<uint32_t>(a_off);
    const uint32_t t = k * za - rowsum[i];
    uint32_t* ci = reinterpret_cast<uint32_t*>(ct + (i - i0) * ldt);
    for (int64_t j = 0; j < w; ++j) ci[j] += zb[j] * t - za * cs[j];
  }
}

// Where finished tiles go: straight into c (epilogue == nullptr), or into per-thread scratch
// handed to the epilogue.
struct Output {
  int32_t* c = nullptr;
  int64_t ldc = 0;
  const GemmTileEpilogue* epilogue = nullptr;
};

// The destination of tile [i0, i1) x [j0, j1): (pointer to its first element, row stride).
struct TileDst {
  int32_t* p;
  int64_t ld;
};
TileDst tile_dst(const Output& out, std::vector<int32_t>& scratch, int64_t i0, int64_t i1,
                 int64_t j0, int64_t j1) {
  if (!out.epilogue) return {out.c + i0 * out.ldc + j0, out.ldc};
  scratch.resize(static_cast<size_t>((i1 - i0) * (j1 - j0)));
  return {scratch.data(), j1 - j0};
}

void finish(const Output& out, const TileDst& d, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  if (out.epilogue) (*out.epilogue)(i0, i1, j0, j1, d.p, d.ld);
}

struct PackedA {
  std::unique_ptr<int32_t[]> owned;   // the words, unless they are the small-M call scratch
  int32_t* data = nullptr;            // panels x kw x MR words
  std::unique_ptr<uint32_t[]> rowsum;  // panels x MR
  int64_t panels = 0, kw = 0;
};

// quads: the int4 large-M format (k-quads of int8 a' = a - 128 for uint8 a, a for int8 a),
// else k-pairs of int16. small: panels for the small-M kernels, of the rows present only where
// the geometry says so (small_a_rows; panels stay kw x MR words apart).
PackedA pack_a(const GemmGeometry& g, const GemmA& a, bool parallel, bool quads = false,
               bool small = false) {
  PackedA p;
  p.panels = ceil_div(a.m, g.mr);
  p.kw = quads ? ceil_div(a.k, 4) : ceil_div(a.k, 2);  // words a row of a panel
  const int64_t words = std::max<int64_t>(1, p.panels * p.kw * g.mr);
  if (small) {
    p.data = call_scratch<PackedA>(words);
  } else {
    p.owned.reset(new int32_t[words]);
    p.data = p.owned.get();
  }
  p.rowsum.reset(new uint32_t[p.panels * g.mr]);
  auto one = [&](int64_t q) {
    const int64_t rows = small && g.small_a_rows ? std::min<int64_t>(g.mr, a.m - q * g.mr) : g.mr;
    pack_a_panel(a, q * g.mr, rows, p.kw, quads, p.data + q * p.kw * g.mr,
                 p.rowsum.get() + q * g.mr);
  };
  if (parallel) {
    parallel_for(p.panels, one);
  } else {
    for (int64_t q = 0; q < p.panels; ++q) one(q);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// The two paths

// M <= kSmallM: each B panel is read once per A panel (once for M <= MR) by the small-M kernel,
// which keeps all K in registers; threads take chunks of column panels.
void gemm_small(const KernelTable& t, const GemmA& a, const PackedB& b, const GemmZeroPoints& zp,
                const Output& out) {
  const GemmGeometry& g = t.gemm_geometry;
  const int64_t mr = g.mr, nr = g.nr;
  const bool quads = (b.bits == 8 ? g.a8 : g.a4) == 4;
  const int32_t a_off = quads && !a.is_signed ? 128 : 0;
  const PackedA pa = pack_a(g, a, false, quads, true);
  const int64_t pbytes = panel_bytes(g, b.k, b.bits);
  const GemmSmallFn kernel = b.bits == 8 ? t.gemm_small_u8_s32 : t.gemm_small_u4_s32;
  each_panel_chunk(ceil_div(b.n, nr), [&](int64_t p0, int64_t p1) {
    const int64_t j0 = p0 * nr, j1 = std::min(b.n, p1 * nr);
    std::vector<int32_t> scratch;
    const TileDst d = tile_dst(out, scratch, 0, a.m, j0, j1);
    for (int64_t p = p0; p < p1; ++p) {
      const int n = static_cast<int>(std::min(nr, b.n - p * nr));
      for (int64_t ia = 0; ia < pa.panels; ++ia) {
        const int m = static_cast<int>(std::min(mr, a.m - ia * mr));
        kernel(pa.kw, pa.data + ia * pa.kw * mr, m, b.data + p * pbytes,
               d.p + ia * mr * d.ld + (p * nr - j0), d.ld, n, 0);
      }
    }
    correct(b, zp, pa.rowsum.get(), a_off, 0, a.m, j0, j1, d.p, d.ld);
    finish(out, d, 0, a.m, j0, j1);
  });
}

// M > kSmallM: A packed once into MR-row panels; output tiles split over threads, each run by
// the shared tile driver (blocking.h) in K blocks of kc k-pairs. 8-bit B: A words (the
// geometry's a8) x the stored panel (read in place). 4-bit B: int8 A quads x a B micro-panel
// decoded to quads.
void gemm_large(const KernelTable& t, const GemmA& a, const PackedB& b, const GemmZeroPoints& zp,
                const Output& out) {
  const GemmGeometry& g = t.gemm_geometry;
  const bool quads = b.bits == 4 || g.a8 == 4;  // A words: int8 k-quads of a', else k-pairs
  const int32_t a_off = quads && !a.is_signed ? 128 : 0;
  const PackedA pa = pack_a(g, a, true, quads);
  TileOperands op;
  op.a = pa.data, op.kw = pa.kw, op.quads = quads;
  op.b = b.data, op.bits = b.bits;
  op.kpairs = ceil_div(b.k, 2), op.pbytes = panel_bytes(g, b.k, b.bits);
  const int64_t kwb = quads ? g.kc / 2 : g.kc;  // words a K block (kc k-pairs either way)
  const Tiling tl = tiling(g, a.m, b.n);
  parallel_for(tl.count, [&](int64_t q) {
    const int64_t i0 = (q / tl.tn) * tl.mc, i1 = std::min(a.m, i0 + tl.mc);
    const int64_t j0 = (q % tl.tn) * tl.nc, j1 = std::min(b.n, j0 + tl.nc);
    std::vector<int32_t> scratch;
    std::vector<uint8_t> decoded;
    const TileDst d = tile_dst(out, scratch, i0, i1, j0, j1);
    tile_sums(t, op, kwb, i0, i1, j0, j1, d.p, d.ld, decoded);
    correct(b, zp, pa.rowsum.get(), a_off, i0, i1, j0, j1, d.p, d.ld);
    finish(out, d, i0, i1, j0, j1);
  });
}

}  // namespace

int64_t gemm_packed_bytes(const GemmGeometry& g, int64_t k, int64_t n, int bits) {
  return ceil_div(n, g.nr) * panel_bytes(g, k, bits);
}

int64_t gemm_colsum_len(const GemmGeometry& g, int64_t n) { return ceil_div(n, g.nr) * g.nr; }

const GemmGeometry& gemm_geometry() { return active_table().gemm_geometry; }

const GemmGeometry* gemm_geometry_for(const std::string& layout) {
  for (Isa isa : available_isas()) {
    const GemmGeometry& g = table_for(isa).gemm_geometry;
    if (layout == g.layout) return &g;
  }
  return nullptr;
}

void gemm_check_layout(const KernelTable& t, const PackedB& b) {
  if (std::strcmp(b.layout, t.gemm_geometry.layout) != 0)
    throw std::invalid_argument(std::string("the weight was packed in layout '") + b.layout +
                                "', the active ISA path uses '" + t.gemm_geometry.layout + "'");
}

namespace {
// Packs every B panel of b with the table's panel kernel. Threads take chunks of panels; inside
// a chunk, blocks of source rows are packed into every panel of the chunk before moving on, so
// each row (often a page of its own) is fetched once, not once a panel.
PackedBData pack_panels(const KernelTable& t, GemmPackBFn fn, const uint8_t* b, int64_t k,
                        int64_t n, int64_t ldb, uint8_t flip, int bits) {
  const GemmGeometry& g = t.gemm_geometry;
  const int64_t nr = g.nr;
  PackedBData out;
  out.allocate(static_cast<size_t>(gemm_packed_bytes(g, k, n, bits)));
  out.colsum.resize(static_cast<size_t>(gemm_colsum_len(g, n)));
  out.layout = g.layout;
  uint8_t* data = out.data();
  int32_t* colsum = out.colsum.data();
  constexpr int64_t kRows = 64;  // source rows a block (k-pairs for 8-bit, pairs of k for 4-bit)
  const int64_t npanels = ceil_div(n, nr), pbytes = panel_bytes(g, k, bits);
  const int64_t rows = bits == 8 ? k : ceil_div(k, 2);
  const int64_t chunk = chunk_len(npanels, 4 * int64_t(parallel_threads()), 4);
  parallel_for(ceil_div(npanels, chunk), [&](int64_t q) {
    const int64_t p0 = q * chunk, p1 = std::min(npanels, p0 + chunk);
    std::vector<uint32_t> sums(static_cast<size_t>((p1 - p0) * nr), 0u);
    std::vector<int32_t> cs(static_cast<size_t>(nr));
    for (int64_t r0 = 0; r0 < std::max<int64_t>(rows, 1); r0 += kRows) {
      const int64_t rn = std::min(kRows, rows - r0);
      // 8-bit: rows r0.. are k = r0.. (r0 even, so k-pairs stay aligned); 4-bit: row j holds
      // k = 2j, 2j+1, the last block may end on an odd k.
      const int64_t ksub = bits == 8 ? rn : std::min(2 * rn, k - 2 * r0);
      const int64_t dst_off = bits == 8 ? (r0 / 2) * 2 * nr : r0 * nr;
      for (int64_t p = p0; p < p1; ++p) {
        fn(b + r0 * ldb + p * nr, ldb, ksub, static_cast<int>(std::min(nr, n - p * nr)), flip,
           data + p * pbytes + dst_off, cs.data());
        for (int64_t c = 0; c < nr; ++c) sums[(p - p0) * nr + c] += static_cast<uint32_t>(cs[c]);
      }
    }
    for (int64_t i = 0; i < (p1 - p0) * nr; ++i) colsum[p0 * nr + i] = static_cast<int32_t>(sums[i]);
  });
  return out;
}
}  // namespace

PackedBData gemm_pack(const KernelTable& t, const uint8_t* b, int64_t k, int64_t n, int64_t ldb,
                      bool is_signed, int bits) {
  if (bits == 8) return pack_panels(t, t.gemm_pack_b8, b, k, n, ldb, is_signed ? 0x80 : 0, 8);
  return pack_panels(t, t.gemm_pack_b4, b, k, n, ldb, is_signed ? 0x8 : 0, 4);
}

PackedBData gemm_pack_b8(const uint8_t* b, int64_t k, int64_t n, int64_t ldb, bool is_signed) {
  return gemm_pack(active_table(), b, k, n, ldb, is_signed, 8);
}

PackedBData gemm_pack_b4(const uint8_t* bp, int64_t k, int64_t n, int64_t ldb, bool is_signed) {
  return gemm_pack(active_table(), bp, k, n, ldb, is_signed, 4);
}

namespace {
// One panel from the rows of B's transpose (gemm_pack_b8_rows): byte kb c + i of k-group q is
// u[kb q + i][c] = w[c][kb q + i] ^ flip, a kb-byte word of row c: squares of R columns x R
// k-groups (16 bytes of each row) transposed in registers, a k-group of R columns a store.
// Blocks of kQ k-groups keep the panel's written part in L1 while the nr rows are read.
template <int kKb>
void pack_rows_panel(const uint8_t* w, int64_t ldw, int64_t k, int64_t cols, int64_t nr,
                     uint8_t flip, uint8_t* panel, int32_t* colsum) {
  constexpr int64_t kQ = 512 / kKb;  // 512 bytes of each row a block
  const int64_t full = k / kKb;  // whole k-groups; the tail group is completed below
  const uint32_t fw = flip * 0x01010101u;  // every byte: any kKb of them, either byte order
  // groups [qa, qb) of columns [ca, cb), a word at a time
  auto words = [&](int64_t ca, int64_t cb, int64_t qa, int64_t qb) {
    for (int64_t c = ca; c < cb; ++c)
      for (int64_t q = qa; q < qb; ++q) {
        uint32_t v = 0;
        std::memcpy(&v, w + c * ldw + q * kKb, kKb);
        v ^= fw;
        std::memcpy(panel + q * kKb * nr + kKb * c, &v, kKb);
      }
  };
  for (int64_t q0 = 0; q0 < full; q0 += kQ) {
    const int64_t q1 = std::min(full, q0 + kQ);
    int64_t c = 0;
#if LOWBIT_HAVE_SHUFFLEVECTOR
    constexpr int R = 16 / kKb;  // R columns x R k-groups: one square of words
    for (; c + R <= cols; c += R) {
      int64_t q = q0;
      for (; q + R <= q1; q += R) {
        transpose::u8x16 v[R];
        for (int r = 0; r < R; ++r) v[r] = transpose::load(w + (c + r) * ldw + q * kKb) ^ flip;
        transpose::square<kKb>(v);
        for (int j = 0; j < R; ++j) transpose::store(panel + (q + j) * kKb * nr + kKb * c, v[j]);
      }
      words(c, c + R, q, q1);
    }
#endif
    words(c, cols, q0, q1);
  }
  for (int64_t c = 0; c < cols; ++c) {
    const uint8_t* src = w + c * ldw;
    for (int64_t kk = full * kKb; kk < k; ++kk)  // the last group's real k (the rest stays 0)
      panel[full * kKb * nr + kKb * c + (kk - full * kKb)] = static_cast<uint8_t>(src[kk] ^ flip);
    uint32_t sum = 0;  // of u = byte ^ flip, wrapping; a plain loop the compiler vectorizes
    for (int64_t kk = 0; kk < k; ++kk) sum += static_cast<uint8_t>(src[kk] ^ flip);
    colsum[c] = static_cast<int32_t>(sum);
  }
}
}  // namespace

// The packers from B's transpose: every panel of the active path's layout, threads taking
// panels; panel(p, cols, dst, colsum) packs panel p (cols real columns).
template <class PanelFn>
PackedBData pack_from_rows(int64_t k, int64_t n, int bits, const PanelFn& panel) {
  const KernelTable& t = active_table();
  const GemmGeometry& g = t.gemm_geometry;
  const int64_t nr = g.nr, npanels = ceil_div(n, nr), pbytes = panel_bytes(g, k, bits);
  PackedBData out;
  out.allocate(static_cast<size_t>(gemm_packed_bytes(g, k, n, bits)));  // padding: u = 0
  out.colsum.assign(static_cast<size_t>(gemm_colsum_len(g, n)), 0);
  out.layout = g.layout;
  parallel_for(npanels, [&](int64_t p) {
    panel(g, p, std::min(nr, n - p * nr), out.data() + p * pbytes, out.colsum.data() + p * nr);
  });
  return out;
}

PackedBData gemm_pack_b8_rows(const uint8_t* w, int64_t k, int64_t n, int64_t ldw,
                              bool is_signed) {
  const uint8_t flip = is_signed ? 0x80 : 0;
  return pack_from_rows(k, n, 8, [&](const GemmGeometry& g, int64_t p, int64_t cols,
                                     uint8_t* dst, int32_t* cs) {
    const uint8_t* src = w + p * g.nr * ldw;
    if (g.kb == 4) {
      pack_rows_panel<4>(src, ldw, k, cols, g.nr, flip, dst, cs);
    } else {
      pack_rows_panel<2>(src, ldw, k, cols, g.nr, flip, dst, cs);
    }
  });
}

namespace {
// One 4-bit panel from the rows of B's transpose (gemm_pack_b4_rows). Row c holds column c's
// k-pairs, value 2j in the low nibble of byte j. Byte kb (c mod NR/2) + i of k-group q holds
// u[kb q + i][c] (low nibble for c < NR/2, high for the others; kernels.h), u = nibble ^ flip.
template <int kKb>
void pack4_rows_panel(const uint8_t* w, int64_t ldw, int64_t k, int64_t cols, int64_t nr,
                      uint8_t flip, uint8_t* panel, int32_t* colsum) {
  const int64_t half = nr / 2, gbytes = kKb * half;  // bytes a k-group of the panel
  const uint8_t f2 = static_cast<uint8_t>(flip * 0x11);  // both nibbles of a byte
  int64_t kdone = 0;  // k below this are in the panel
#if LOWBIT_HAVE_SHUFFLEVECTOR
  // Whole panels, 16 source bytes (32 k, G k-groups) of the column pairs (c, c + NR/2) a step:
  // low nibbles from c, high from c + NR/2, bytes put back in k order (L = even k, H = odd k),
  // then R x R squares of k-group words transposed so that a store is one k-group of R pairs.
  if (cols == nr) {
    using transpose::u8x16;
    constexpr int R = 16 / kKb, G = 32 / kKb;
    const int64_t steps = k / 32;
    for (int64_t s = 0; s < steps; ++s)
      for (int64_t cb = 0; cb < half; cb += R) {
        u8x16 lo[R], hi[R];
        for (int r = 0; r < R; ++r) {
          const u8x16 a = transpose::load(w + (cb + r) * ldw + 16 * s) ^ f2;
          const u8x16 b = transpose::load(w + (cb + r + half) * ldw + 16 * s) ^ f2;
          const u8x16 l = (a & 15) | (b << 4), h = (a >> 4) | (b & 0xF0);
          lo[r] = transpose::zip8(l, h, false);
          hi[r] = transpose::zip8(l, h, true);
        }
        transpose::square<kKb>(lo);
        transpose::square<kKb>(hi);
        for (int j = 0; j < R; ++j) {
          transpose::store(panel + (G * s + j) * gbytes + kKb * cb, lo[j]);
          transpose::store(panel + (G * s + R + j) * gbytes + kKb * cb, hi[j]);
        }
      }
    kdone = 32 * steps;
  }
#endif
  // the rest, a nibble at a time, or-ed into its byte (the other half-panel's nibble kept)
  for (int64_t c = 0; c < cols; ++c) {
    const uint8_t* src = w + c * ldw;
    uint8_t* d = panel + kKb * (c % half);
    const int sh = c < half ? 0 : 4;
    for (int64_t kk = kdone; kk < k; ++kk) {
      const uint32_t u = ((src[kk / 2] >> (4 * (kk & 1))) & 15u) ^ flip;
      uint8_t& byte = d[(kk / kKb) * gbytes + kk % kKb];
      byte = static_cast<uint8_t>(byte | u << sh);
    }
    uint32_t sum = 0;  // of u over the real k; a plain loop the compiler vectorizes
    for (int64_t j = 0; j < k / 2; ++j) {
      const uint8_t x = static_cast<uint8_t>(src[j] ^ f2);
      sum += static_cast<uint32_t>((x & 15) + (x >> 4));
    }
    if (k % 2) sum += (src[k / 2] & 15u) ^ flip;
    colsum[c] = static_cast<int32_t>(sum);
  }
}
}  // namespace

PackedBData gemm_pack_b4_rows(const uint8_t* w, int64_t k, int64_t n, int64_t ldw,
                              bool is_signed) {
  const uint8_t flip = is_signed ? 0x8 : 0;
  return pack_from_rows(k, n, 4, [&](const GemmGeometry& g, int64_t p, int64_t cols,
                                     uint8_t* dst, int32_t* cs) {
    const uint8_t* src = w + p * g.nr * ldw;
    if (g.kb == 4) {
      pack4_rows_panel<4>(src, ldw, k, cols, g.nr, flip, dst, cs);
    } else {
      pack4_rows_panel<2>(src, ldw, k, cols, g.nr, flip, dst, cs);
    }
  });
}

void transpose_bytes(const uint8_t* src, int64_t rows, int64_t cols, int64_t lds, uint8_t* dst) {
  constexpr int64_t kB = 64;  // a 64 x 64 block: both sides stay in L1
  parallel_for(ceil_div(cols, kB), [&](int64_t bc) {
    const int64_t c0 = bc * kB, c1 = std::min(cols, c0 + kB);
    for (int64_t r0 = 0; r0 < rows; r0 += kB) {
      const int64_t r1 = std::min(rows, r0 + kB);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) dst[c * rows + r] = src[r * lds + c];
    }
  });
}

void gemm_unpack_b(const PackedB& b, uint8_t* out) {
  const GemmGeometry* gp = gemm_geometry_for(b.layout);
  if (!gp)
    throw std::invalid_argument(std::string("no ISA path of this build packs in layout '") +
                                b.layout + "'");
  const int64_t nr = gp->nr, pbytes = panel_bytes(*gp, b.k, b.bits);
  const int64_t kb = gp->kb;
  for (int64_t k = 0; k < b.k; ++k) {
    const int64_t grp = k / kb, t = k % kb;
    for (int64_t j = 0; j < b.n; ++j) {
      const uint8_t* panel = b.data + (j / nr) * pbytes;
      const int64_t c = j % nr;
      int32_t u;
      if (b.bits == 8) {
        u = panel[grp * kb * nr + kb * c + t];  // byte kb c + t of the k-group
      } else {  // byte kb (c mod NR/2) + t: column c < NR/2 in the low nibble, the others high
        const uint8_t byte = panel[grp * kb * nr / 2 + kb * (c % (nr / 2)) + t];
        u = c < nr / 2 ? byte & 15 : byte >> 4;
      }
      out[k * b.n + j] = static_cast<uint8_t>(u - b.bias);
    }
  }
}

PackedBData gemm_repack(const PackedB& b) {
  std::vector<uint8_t> v(static_cast<size_t>(std::max<int64_t>(1, b.k * b.n)));
  gemm_unpack_b(b, v.data());
  const bool is_signed = b.bias != 0;
  if (b.bits == 8) return gemm_pack_b8(v.data(), b.k, b.n, b.n, is_signed);
  // 4-bit: rows of k-pairs, value 2i in the low nibble of row i, 2i+1 in the high one.
  const int64_t rows = ceil_div(b.k, 2);
  std::vector<uint8_t> p(static_cast<size_t>(std::max<int64_t>(1, rows * b.n)), 0);
  for (int64_t k = 0; k < b.k; ++k)
    for (int64_t j = 0; j < b.n; ++j)
      p[(k / 2) * b.n + j] |= static_cast<uint8_t>((v[k * b.n + j] & 15) << (4 * (k & 1)));
  return gemm_pack_b4(p.data(), b.k, b.n, b.n, is_signed);
}

int64_t gemm_peak(int64_t iters) { return active_table().gemm_peak_s32(iters); }

namespace {
void run(const GemmA& a, const PackedB& b, const GemmZeroPoints& zp, const Output& out) {
  const KernelTable& t = active_table();  // one table for the whole call
  gemm_check_layout(t, b);
  if (a.m <= 0 || b.n <= 0) return;
  const SerialScope serial(double(a.m) * double(b.n) * double(a.k) < double(kMinParallelWork));
  if (a.m <= kSmallM) {
    gemm_small(t, a, b, zp, out);
  } else {
    gemm_large(t, a, b, zp, out);
  }
}
}  // namespace
void gemm_s32(const GemmA& a, const PackedB& b, const GemmZeroPoints& zp, int32_t* c,
              int64_t ldc) {
  Output out;
  out.c = c, out.ldc = ldc;
  run(a, b, zp, out);
}

void gemm_s32_tiles(const GemmA& a, const PackedB& b, const GemmZeroPoints& zp,
                    const GemmTileEpilogue& epilogue) {
  Output out;
  out.epilogue = &epilogue;
  run(a, b, zp, out);
}

}  // namespace lowbit
