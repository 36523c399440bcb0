// Integer GEMM driver: packing, cache blocking, zero-point corrections and the thread split
// around the per-ISA kernels of lowbit/kernels.h. Built with baseline flags: it only calls the
// kernels through the active table. The arithmetic contract is in lowbit/gemm.h.
#include "lowbit/gemm.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "blocking.h"
#include "lowbit/kernels.h"
#include "lowbit/runtime.h"

namespace lowbit {
namespace {

using namespace blocking;  // NOLINT: the shared tile and block sizes, ceil_div, ...

// ---------------------------------------------------------------------------------------------
// Packing

// One 6-row A panel (rows i0 .. i0+5, zero past m): word r of k-pair j holds int16 a[r][2j]
// (low half) and a[r][2j+1] (high half). rowsum[r] = sum_k a[i0+r][k] for rows < m.
void pack_a_panel(const GemmA& a, int64_t i0, int64_t kp, int32_t* out, uint32_t* rowsum) {
  for (int64_t r = 0; r < kMR; ++r) {
    const int64_t i = i0 + r;
    if (i >= a.m) {
      for (int64_t j = 0; j < kp; ++j) out[j * kMR + r] = 0;
      continue;
    }
    const uint8_t* row = a.data + i * a.lda;
    rowsum[r] = a.is_signed ? put_pairs<true>(row, a.k, out + r) : put_pairs<false>(row, a.k, out + r);
  }
}

// One 6-row A quad panel for the int4 large-M kernel: word r of k-quad q holds the int8 bytes
// a'[r][4q..4q+3], a' = a for int8 a and a - 128 (a byte xor 0x80) for uint8 a;
// rowsum[r] = sum_k a'[r][k].
void pack_a_quad_panel(const GemmA& a, int64_t i0, int64_t kq, int32_t* out, uint32_t* rowsum) {
  for (int64_t r = 0; r < kMR; ++r) {
    const int64_t i = i0 + r;
    if (i >= a.m) {
      for (int64_t q = 0; q < kq; ++q) out[q * kMR + r] = 0;
      continue;
    }
    rowsum[r] = put_quads(a.data + i * a.lda, a.k, a.is_signed, out + r);
  }
}

// c[i][j] += zb'[j] * (K za[i] - rowsum[i]) - za[i] colsum[j] for rows [i0, i1), columns
// [j0, j1): the expansion of (a - za)(u - zb') beyond sum a u, in uint32. ct points at element
// (i0, j0), rows ldt apart. When the packed A holds a' = a - a_off, za' = za - a_off keeps
// (a - za) = (a' - za').
void correct(const PackedB& b, const GemmZeroPoints& zp, const uint32_t* rowsum, int32_t a_off,
             int64_t i0, int64_t i1, int64_t j0, int64_t j1, int32_t* ct, int64_t ldt) {
  const uint32_t k = static_cast<uint32_t>(b.k);
  for (int64_t i = i0; i < i1; ++i) {
    const uint32_t za =
        static_cast<uint32_t>(zp.a[i * zp.a_stride]) - static_cast<uint32_t>(a_off);
    const uint32_t t = k * za - rowsum[i];
    int32_t* ci = ct + (i - i0) * ldt - j0;
    for (int64_t j = j0; j < j1; ++j) {
      const uint32_t zb = static_cast<uint32_t>(zp.b[j * zp.b_stride]) +
                          static_cast<uint32_t>(b.bias);
      const uint32_t cs = static_cast<uint32_t>(b.colsum[j]);
      ci[j] = static_cast<int32_t>(static_cast<uint32_t>(ci[j]) + zb * t - za * cs);
    }
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
  std::unique_ptr<int32_t[]> data;    // panels x kp x 6 words
  std::unique_ptr<uint32_t[]> rowsum;  // panels x 6
  int64_t panels = 0, kp = 0;
  const int32_t* panel(int64_t p) const { return data.get() + p * kp * kMR; }
};

// quads: the int4 large-M format (k-quads of int8 a' = a - 128 for uint8 a, a for int8 a),
// else k-pairs of int16.
PackedA pack_a(const GemmA& a, bool parallel, bool quads = false) {
  PackedA p;
  p.panels = ceil_div(a.m, kMR);
  p.kp = quads ? ceil_div(a.k, 4) : ceil_div(a.k, 2);  // words a row of a panel
  p.data.reset(new int32_t[std::max<int64_t>(1, p.panels * p.kp * kMR)]);
  p.rowsum.reset(new uint32_t[p.panels * kMR]);
  auto one = [&](int64_t q) {
    int32_t* out = p.data.get() + q * p.kp * kMR;
    uint32_t* rs = p.rowsum.get() + q * kMR;
    if (quads) {
      pack_a_quad_panel(a, q * kMR, p.kp, out, rs);
    } else {
      pack_a_panel(a, q * kMR, p.kp, out, rs);
    }
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

// M <= kSmallM: each B panel is read once per 6-row A panel (once for M <= 6) by the small-M
// kernel, which keeps all K in registers; threads take chunks of column panels.
void gemm_small(const KernelTable& t, const GemmA& a, const PackedB& b, const GemmZeroPoints& zp,
                const Output& out) {
  const PackedA pa = pack_a(a, false);
  const int64_t npanels = ceil_div(b.n, kNR);
  const int64_t pbytes = panel_bytes(b.k, b.bits);
  const GemmSmallFn kernel = b.bits == 8 ? t.gemm_small_u8_s32 : t.gemm_small_u4_s32;
  const int64_t chunk = chunk_len(npanels, 8 * int64_t(parallel_threads()), 1);
  parallel_for(ceil_div(npanels, chunk), [&](int64_t q) {
    const int64_t p0 = q * chunk, p1 = std::min(npanels, p0 + chunk);
    const int64_t j0 = p0 * kNR, j1 = std::min(b.n, p1 * kNR);
    std::vector<int32_t> scratch;
    const TileDst d = tile_dst(out, scratch, 0, a.m, j0, j1);
    for (int64_t p = p0; p < p1; ++p) {
      const int n = static_cast<int>(std::min(kNR, b.n - p * kNR));
      for (int64_t ia = 0; ia < pa.panels; ++ia) {
        const int m = static_cast<int>(std::min(kMR, a.m - ia * kMR));
        kernel(pa.kp, pa.panel(ia), m, b.data + p * pbytes, d.p + ia * kMR * d.ld + (p * kNR - j0),
               d.ld, n, 0);
      }
    }
    correct(b, zp, pa.rowsum.get(), 0, 0, a.m, j0, j1, d.p, d.ld);
    finish(out, d, 0, a.m, j0, j1);
  });
}

// M > kSmallM: A packed once into 6-row panels; output tiles of mc x nc split over threads;
// inside a tile, K blocks, then B micro-panels, then A panels. 8-bit B: int16 A pairs x the
// stored panel (read in place). 4-bit B: int8 A quads x a B micro-panel decoded to quads.
void gemm_large(const KernelTable& t, const GemmA& a, const PackedB& b, const GemmZeroPoints& zp,
                const Output& out) {
  const bool four = b.bits == 4;
  const int32_t a_off = four && !a.is_signed ? 128 : 0;
  const PackedA pa = pack_a(a, true, four);
  const int64_t kw = pa.kp;                  // A words a row: k-pairs, or k-quads for int4
  const int64_t kwc = four ? kKC / 2 : kKC;  // words a K block (kKC k-pairs either way)
  const int64_t bp_pairs = ceil_div(b.k, 2);
  const int64_t pbytes = panel_bytes(b.k, b.bits);
  const GemmTileFn kernel = four ? t.gemm_s8u4_s32 : t.gemm_u8_s32;
  // Smaller tiles when there are few, so every thread gets work (any split gives the same bits).
  int64_t mc = kMC, nc = kNC;
  const int64_t want = 3 * int64_t(parallel_threads());
  auto tiles = [&] { return ceil_div(a.m, mc) * ceil_div(b.n, nc); };
  while (tiles() < want && nc > 4 * kNR) nc /= 2;
  while (tiles() < want && mc > 2 * kMR) mc = ceil_div(mc / 2, kMR) * kMR;
  const int64_t tn = ceil_div(b.n, nc);
  parallel_for(tiles(), [&](int64_t q) {
    const int64_t i0 = (q / tn) * mc, i1 = std::min(a.m, i0 + mc);
    const int64_t j0 = (q % tn) * nc, j1 = std::min(b.n, j0 + nc);
    std::vector<int32_t> scratch;
    const TileDst d = tile_dst(out, scratch, i0, i1, j0, j1);
    alignas(64) uint8_t decoded[kKC * 2 * kNR];  // one B quad micro-panel (int4 B only)
    const int64_t bstep = four ? kNR : 2 * kNR;  // bytes a k-pair of a B panel
    for (int64_t k0 = 0; k0 < std::max<int64_t>(kw, 1); k0 += kwc) {
      const int64_t kc = std::min(kwc, kw - k0);
      const int64_t p0 = four ? 2 * k0 : k0;  // first k-pair of the block
      const int64_t pn = std::min(four ? 2 * kc : kc, bp_pairs - p0);
      for (int64_t j = j0; j < j1; j += kNR) {
        const uint8_t* bp = b.data + (j / kNR) * pbytes + p0 * bstep;
        const uint8_t* next = j + kNR < j1 ? bp + pbytes : nullptr;
        if (four) {
          t.gemm_decode_q4(bp, pn, decoded);
          bp = decoded;
        }
        const int n = static_cast<int>(std::min(kNR, j1 - j));
        for (int64_t i = i0; i < i1; i += kMR) {
          const int m = static_cast<int>(std::min(kMR, i1 - i));
          if (next) prefetch_part(next, pn * bstep, (i - i0) / kMR, ceil_div(i1 - i0, kMR));
          kernel(kc, pa.panel(i / kMR) + k0 * kMR, bp, d.p + (i - i0) * d.ld + (j - j0), d.ld, m,
                 n, k0 > 0);
        }
      }
    }
    correct(b, zp, pa.rowsum.get(), a_off, i0, i1, j0, j1, d.p, d.ld);
    finish(out, d, i0, i1, j0, j1);
  });
}

}  // namespace

int64_t gemm_packed_bytes(int64_t k, int64_t n, int bits) {
  return ceil_div(n, kNR) * panel_bytes(k, bits);
}

int64_t gemm_colsum_len(int64_t n) { return ceil_div(n, kNR) * kNR; }

namespace {
// Packs every 16-column panel of b with the active ISA's panel kernel. Threads take chunks of
// panels; inside a chunk, blocks of source rows are packed into every panel of the chunk before
// moving on, so each row (often a page of its own) is fetched once, not once a panel.
void pack_panels(GemmPackBFn fn, const uint8_t* b, int64_t k, int64_t n, int64_t ldb,
                 uint8_t flip, int bits, uint8_t* data, int32_t* colsum) {
  constexpr int64_t kRows = 64;  // source rows a block (k-pairs for 8-bit, pairs of k for 4-bit)
  const int64_t npanels = ceil_div(n, kNR), pbytes = panel_bytes(k, bits);
  const int64_t rows = bits == 8 ? k : ceil_div(k, 2);
  const int64_t chunk = chunk_len(npanels, 4 * int64_t(parallel_threads()), 4);
  parallel_for(ceil_div(npanels, chunk), [&](int64_t q) {
    const int64_t p0 = q * chunk, p1 = std::min(npanels, p0 + chunk);
    std::vector<uint32_t> sums(static_cast<size_t>((p1 - p0) * kNR), 0u);
    for (int64_t r0 = 0; r0 < std::max<int64_t>(rows, 1); r0 += kRows) {
      const int64_t nr = std::min(kRows, rows - r0);
      // 8-bit: rows r0.. are k = r0.. (r0 even, so k-pairs stay aligned); 4-bit: row j holds
      // k = 2j, 2j+1, the last block may end on an odd k.
      const int64_t ksub = bits == 8 ? nr : std::min(2 * nr, k - 2 * r0);
      const int64_t dst_off = bits == 8 ? (r0 / 2) * 2 * kNR : r0 * kNR;
      for (int64_t p = p0; p < p1; ++p) {
        int32_t cs[kNR];
        fn(b + r0 * ldb + p * kNR, ldb, ksub, static_cast<int>(std::min(kNR, n - p * kNR)),
           flip, data + p * pbytes + dst_off, cs);
        for (int64_t c = 0; c < kNR; ++c) sums[(p - p0) * kNR + c] += static_cast<uint32_t>(cs[c]);
      }
    }
    for (int64_t i = 0; i < (p1 - p0) * kNR; ++i) colsum[p0 * kNR + i] = static_cast<int32_t>(sums[i]);
  });
}
}  // namespace

void gemm_pack_b8(const uint8_t* b, int64_t k, int64_t n, int64_t ldb, bool is_signed,
                  uint8_t* data, int32_t* colsum) {
  const KernelTable& t = active_table();
  pack_panels(t.gemm_pack_b8, b, k, n, ldb, is_signed ? 0x80 : 0, 8, data, colsum);
}

void gemm_pack_b4(const uint8_t* bp, int64_t k, int64_t n, int64_t ldb, bool is_signed,
                  uint8_t* data, int32_t* colsum) {
  const KernelTable& t = active_table();
  pack_panels(t.gemm_pack_b4, bp, k, n, ldb, is_signed ? 0x8 : 0, 4, data, colsum);
}

int64_t gemm_peak(int64_t iters) { return active_table().gemm_peak_s32(iters); }

namespace {
void run(const GemmA& a, const PackedB& b, const GemmZeroPoints& zp, const Output& out) {
  if (a.m <= 0 || b.n <= 0) return;
  const KernelTable& t = active_table();  // one table for the whole call
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
