// lb.linear driver: activation quantization fused into packing A, per-group integer sums and
// the float epilogue per tile, weight-only dequantization on the fly. Built with baseline flags:
// it only calls kernels through the active table. The arithmetic contract is in lowbit/linear.h.
#include "lowbit/linear.h"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <memory>
#include <vector>

#include "blocking.h"
#include "lowbit/kernels.h"
#include "lowbit/runtime.h"

namespace lowbit {
namespace {

using namespace blocking;  // NOLINT: the shared tile and block sizes, ceil_div, ...

// The float path's K block is kKCF k-pairs: its B micro-panel, 2 kKCF rows of NR floats
// (16 KiB at NR = 16), stays in L1 while every A panel of the tile meets it.
constexpr int64_t kKCF = 128;
// A tile's packed A up to this size is kept whole in L2 (no K blocking).
constexpr int64_t kFullKBytes = 192 * 1024;
// Weight-only: the streaming kernel widens each weight to float once a row, the tiled path once
// a tile of up to 192 rows, so only M <= 2 streams.
constexpr int64_t kSmallWeightOnly = 2;

// Where the K groups lie in the packed K (lowbit/linear.h, "Groups").
struct Groups {
  int64_t k = 0, g = 0, gpad = 0, ngroups = 1, kpad = 0;
  int64_t kp = 0;  // k-pairs of the packed K
  int64_t gp = 0;  // k-pairs a group (the last may have fewer)
  int64_t len(int64_t j) const { return std::min(g, k - j * g); }  // true elements of group j
};

Groups groups(const LinearWeights& w) {
  Groups q;
  q.k = w.k, q.g = w.g, q.gpad = w.gpad, q.ngroups = w.ngroups, q.kpad = w.b.k;
  q.kp = ceil_div(q.kpad, 2);
  q.gp = q.ngroups == 1 ? q.kp : q.gpad / 2;
  return q;
}

// ---------------------------------------------------------------------------------------------
// Activations

// Round half to even of a value already clamped to the int32 range (no floating-point
// environment involved; as the scalar quantize kernel does).
int32_t rne(float v) {
  const int32_t i = static_cast<int32_t>(v);
  const float d = v - static_cast<float>(i);
  return i + ((d > 0.5f) | ((d == 0.5f) & (i & 1))) - ((d < -0.5f) | ((d == -0.5f) & (i & 1)));
}

// A row's dynamic scale and zero point, as lowbit.reference.linear's dynamic_act_qparams (the
// min-max formulas of calibrate, float32): int8: absmax / 127, zero point 0; uint8:
// lo = min(0, min x), hi = max(0, max x), (hi - lo) / 255, zp = clamp(rne(0 - lo / scale), 0,
// 255); a zero or subnormal scale becomes 1.0. Returns a status bit, 0 on success.
int row_qparams(const KernelTable& t, const float* x, int64_t k, LinearAct act, float& scale,
                int32_t& zp) {
  float mn = INFINITY, mx = -INFINITY;
  if (t.minmax_f32(x, k, 0, &mn, &mx) || !std::isfinite(mn) || !std::isfinite(mx))
    return kLinearNonFinite;
  if (act == LinearAct::kInt8) {
    scale = std::max(std::fabs(mn), std::fabs(mx)) / 127.0f;
    if (!(scale >= FLT_MIN)) scale = 1.0f;
    zp = 0;
    return 0;
  }
  const float lo = mn < 0.0f ? mn : 0.0f, hi = mx > 0.0f ? mx : 0.0f;
  scale = (hi - lo) / 255.0f;
  if (!std::isfinite(scale)) return kLinearOverflow;
  if (scale < FLT_MIN) scale = 1.0f;
  float v = 0.0f - lo / scale;
  v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
  zp = rne(v);
  return 0;
}

// Quantized activations in the GEMM's A panel layout (kernels.h): int16 k-pairs, or int8
// k-quads of a' = a - off (off = 128 for uint8 activations, so they fit int8). Positions that
// are not real k (group gaps, the tail) hold 0: they meet u = 0 in the packed B.
struct QRowScratch;  // the tag of pack_act's row buffer (blocking.h, call_scratch)

struct ActPanels {
  std::unique_ptr<int32_t[]> owned;  // the words, unless they are the small-M call scratch
  int32_t* data = nullptr;           // panels x kw x MR words
  std::vector<uint32_t> rterm;      // [group][row]: g_j * za' - sum over group j of a'
  std::vector<int32_t> za;          // [row]: za' = zero point - off
  std::vector<float> as;            // [row]: scale
  int64_t panels = 0, kw = 0, mpad = 0, mr = 0;
  bool quads = false;
  bool any_za = false;
  const int32_t* panel(int64_t p) const { return data + p * kw * mr; }
};

// small: panels for the small-M kernels (of the rows present only where the geometry says so:
// small_a_rows), packed on the calling thread; else MR-row panels, packed in parallel.
int pack_act(const KernelTable& t, const LinearInput& in, const Groups& q, bool quads, bool small,
             ActPanels& pa) {
  const bool sgn = in.act == LinearAct::kInt8;
  const int32_t qmin = sgn ? -128 : 0, qmax = sgn ? 127 : 255;
  const int32_t off = quads && !sgn ? 128 : 0;
  const int64_t step = quads ? 4 : 2;
  const int64_t mr = t.gemm_geometry.mr;
  pa.mr = mr;
  pa.quads = quads;
  pa.panels = ceil_div(in.m, mr);
  pa.mpad = pa.panels * mr;
  pa.kw = ceil_div(q.kpad, step);
  const int64_t words = std::max<int64_t>(1, pa.panels * pa.kw * mr);
  if (small) {
    pa.data = call_scratch<ActPanels>(words);
  } else {
    pa.owned.reset(new int32_t[words]);
    pa.data = pa.owned.get();
  }
  pa.rterm.assign(static_cast<size_t>(q.ngroups * pa.mpad), 0u);
  pa.za.assign(static_cast<size_t>(pa.mpad), 0);
  pa.as.assign(static_cast<size_t>(pa.mpad), 1.0f);
  std::atomic<int> status{0};
  std::atomic<bool> any_za{false};
  auto one = [&](int64_t p) {
    // one row's quantized bytes, on this thread's scratch (each thread packs its own panels)
    uint8_t* qrow = reinterpret_cast<uint8_t*>(call_scratch<QRowScratch>(q.k / 4 + 1));
    int32_t* out = pa.data + p * pa.kw * mr;
    const int64_t ld = small && t.gemm_geometry.small_a_rows ? std::min(mr, in.m - p * mr) : mr;
    for (int64_t r = 0; r < ld; ++r) {
      const int64_t i = p * mr + r;
      int32_t* o = out + r;  // word w of this row at o[w * ld]
      int st = 0;
      float scale = in.scale;
      int32_t zp = in.zero_point;
      if (i < in.m) {
        const float* x = in.x + i * in.ldx;
        if (!in.is_static) st = row_qparams(t, x, q.k, in.act, scale, zp);
        if (!st && t.quantize_f32_q8(x, q.k, &scale, &zp, 0, qmin, qmax, qrow)) st = kLinearNaN;
      }
      if (i >= in.m || st) {  // padding row (or a failed one: the call reports it)
        status.fetch_or(st);
        for (int64_t w = 0; w < pa.kw; ++w) o[w * ld] = 0;
        continue;
      }
      const int32_t za = zp - off;
      pa.as[i] = scale;
      pa.za[i] = za;
      if (za) any_za.store(true, std::memory_order_relaxed);
      // Group j's len true values go to packed positions j*gpad.. (a whole number of words:
      // gpad is a multiple of the step); everything else is 0.
      int64_t w = 0;  // next word to write
      for (int64_t j = 0; j < q.ngroups; ++j) {
        const uint8_t* g = qrow + j * q.g;
        const int64_t len = q.len(j), w0 = j * q.gpad / step;
        for (; w < w0; ++w) o[w * ld] = 0;
        int32_t* ow = o + w0 * ld;
        const uint32_t sum = quads ? put_quads(g, len, sgn, ow, ld)  // sum of a' over the group
                                   : put_pairs(g, len, sgn, ow, ld);
        pa.rterm[j * pa.mpad + i] = static_cast<uint32_t>(len) * static_cast<uint32_t>(za) - sum;
        w = w0 + ceil_div(len, step);
      }
      for (; w < pa.kw; ++w) o[w * ld] = 0;
    }
  };
  if (!small) {
    parallel_for(pa.panels, one);
  } else {
    for (int64_t p = 0; p < pa.panels; ++p) one(p);
  }
  pa.any_za = any_za.load();
  return status.load();
}

// The epilogue fields for output rows from i, columns from j = jp NR (column panel jp) and
// groups from jg.
LinearEpilogue epilogue_for(const LinearWeights& w, const LinearInput& in, const ActPanels& pa,
                            int64_t nr, int64_t i, int64_t jp, int64_t jg, float* y,
                            int64_t ldy) {
  const int64_t j = jp * nr;
  LinearEpilogue e;
  e.rterm = pa.rterm.data() + jg * pa.mpad + i;
  e.rt_group = pa.mpad;
  e.za = pa.any_za ? pa.za.data() + i : nullptr;
  const int64_t wj = w.table(jp, jg, nr);
  e.zb = w.zb_uniform ? nullptr : w.zb + wj;
  e.zb_all = w.zb[0];
  e.cs = w.cs + wj, e.ws = w.ws + wj;
  e.w_group = nr;
  e.grouped = w.grouped;
  e.as = pa.as.data() + i;
  e.bias = in.bias ? in.bias + j : nullptr;
  e.y = y + i * ldy + j;
  e.ldy = ldy;
  return e;
}

// ---------------------------------------------------------------------------------------------
// Integer paths

// fn(p) for every B panel p < npanels (the small-M paths): threads take chunks of panels.
template <class Fn>
void each_panel(int64_t npanels, const Fn& fn) {
  each_panel_chunk(npanels, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) fn(p);
  });
}

// M <= kSmallM: each B panel is streamed once per A panel (once for M <= MR) by the fused small-M
// kernel, which folds the sums of each group into running float sums (in group order) as it
// goes and writes y. Threads take chunks of column panels.
void small_int(const KernelTable& t, const LinearInput& in, const LinearWeights& w,
               const Groups& q, const ActPanels& pa, float* y, int64_t ldy) {
  const GemmGeometry& g = t.gemm_geometry;
  const int64_t mr = g.mr, nr = g.nr;
  const int64_t n_all = w.b.n;
  const int64_t pbytes = panel_bytes(g, q.kpad, w.b.bits);
  const LinearSmallFn kernel = w.b.bits == 8 ? t.linear_small_u8_s32 : t.linear_small_u4_s32;
  each_panel(ceil_div(n_all, nr), [&](int64_t p) {
    const int64_t j = p * nr;
    for (int64_t ia = 0; ia < pa.panels; ++ia) {
      const int m = static_cast<int>(std::min(mr, in.m - ia * mr));
      LinearEpilogue e = epilogue_for(w, in, pa, nr, ia * mr, p, 0, y, ldy);
      e.m = m;
      e.n = static_cast<int>(std::min(nr, n_all - j));
      e.ngroups = static_cast<int>(q.ngroups);
      kernel(q.kp, q.gp, pa.panel(ia), m, w.b.data + p * pbytes, e);
    }
  });
}

// M > kSmallM: output tiles split over threads. Per channel: the shared tile driver (blocking.h)
// sums the tile over K into a per-thread buffer, then one epilogue writes the tile. Per group:
// K blocks of whole groups; for each block, B micro-panel and A panel, the fused tile kernel
// folds the sums of every group of the block, in order, into float running sums (a per-thread
// tile buffer; the last block writes y). 8-bit B: int16 A pairs x the stored panel; 4-bit B:
// int8 A quads x a B micro-panel decoded to quads.
void large_int(const KernelTable& t, const LinearInput& in, const LinearWeights& w,
               const Groups& q, const ActPanels& pa, float* y, int64_t ldy) {
  const GemmGeometry& g = t.gemm_geometry;
  const int64_t mr = g.mr, nr = g.nr;
  const bool four = w.b.bits == 4, quads = pa.quads;
  const int64_t n_all = w.b.n;
  const int64_t pbytes = panel_bytes(g, q.kpad, w.b.bits);
  const int64_t kw = pa.kw;                  // A words a row: k-pairs, or k-quads
  const int64_t kwc = quads ? g.kc / 2 : g.kc;  // words a K block (kc k-pairs either way)
  // words and k-pairs a group (the last group takes what is left)
  const int64_t gw = q.ngroups == 1 ? kw : (quads ? q.gpad / 4 : q.gpad / 2);
  const LinearTileFn tile_fn = four ? t.linear_tile_q4_s32 : t.linear_tile_u8_s32;
  const Tiling tl = tiling(g, in.m, n_all);
  const int64_t bstep = four ? nr : 2 * nr;  // bytes a k-pair of a B panel
  TileOperands op;
  op.a = pa.data, op.kw = kw, op.quads = quads;
  op.b = w.b.data, op.bits = w.b.bits;
  op.kpairs = q.kp, op.pbytes = pbytes;
  parallel_for(tl.count, [&](int64_t tile) {
    const int64_t i0 = (tile / tl.tn) * tl.mc, i1 = std::min(in.m, i0 + tl.mc);
    const int64_t j0 = (tile % tl.tn) * tl.nc, j1 = std::min(n_all, j0 + tl.nc);
    const int64_t ld = j1 - j0;
    // Few rows (M = 9..32 or so): all of the tile's A fits in L2, so K is not blocked and each
    // B micro-panel is read from start to end (a sequential stream, at memory speed) while
    // every A panel meets it. Else K blocks of about kc k-pairs keep A's block in L2 and a
    // B micro-panel's block in L1.
    const bool full_k = (i1 - i0) * kw * 4 <= kFullKBytes;
    const int64_t kwb = full_k ? kw : kwc;
    std::vector<uint8_t> decoded;  // B quads (4-bit B)
    if (!w.grouped) {
      std::vector<int32_t> sc(static_cast<size_t>((i1 - i0) * ld));
      tile_sums(t, op, kwb, i0, i1, j0, j1, sc.data(), ld, decoded);
      LinearEpilogue e = epilogue_for(w, in, pa, nr, i0, j0 / nr, 0, y, ldy);
      e.m = static_cast<int>(i1 - i0), e.n = static_cast<int>(ld);
      e.s = sc.data(), e.lds = ld;
      t.linear_epilogue_s32(e);
      return;
    }
    // Blocks of whole groups of about kc k-pairs: the fused tile kernel runs every group of a
    // block and folds each into the running sums tb (rows of ldt floats, room for NR columns).
    const int64_t nb = full_k ? q.ngroups : std::max<int64_t>(1, g.kc / q.gp);  // groups a block
    const int64_t ldt = ceil_div(ld, nr) * nr;
    std::vector<float> tb(static_cast<size_t>((i1 - i0) * ldt));
    if (four) decoded.resize(static_cast<size_t>(ceil_div(std::min(nb * q.gp, q.kp), 2) * 4 * nr));
    for (int64_t jg0 = 0; jg0 < q.ngroups; jg0 += nb) {
      const int64_t ng = std::min(nb, q.ngroups - jg0);
      const bool last = jg0 + ng == q.ngroups;
      const int64_t w0 = jg0 * gw, wlast = last ? kw - (q.ngroups - 1) * gw : gw;
      const int64_t pp0 = jg0 * q.gp, pn = last ? q.kp - pp0 : ng * q.gp;
      const int64_t a_panels = ceil_div(i1 - i0, mr);
      for (int64_t j = j0, jp = j0 / nr; j < j1; j += nr, ++jp) {
        const uint8_t* bp = w.b.data + jp * pbytes + pp0 * bstep;
        const uint8_t* next = j + nr < j1 ? bp + pbytes : nullptr;
        if (four) {
          t.gemm_decode_q4(bp, pn, decoded.data());
          bp = decoded.data();
        }
        const int32_t* ap = pa.panel(i0 / mr) + w0 * mr;
        for (int64_t ia = 0; ia < a_panels; ++ia, ap += kw * mr) {
          const int64_t i = i0 + ia * mr;
          if (next) prefetch_part(next, pn * bstep, ia, a_panels);
          LinearEpilogue e = epilogue_for(w, in, pa, nr, i, jp, jg0, y, ldy);
          e.m = static_cast<int>(std::min(mr, i1 - i));
          e.n = static_cast<int>(std::min(nr, j1 - j));
          e.t = tb.data() + (i - i0) * ldt + (j - j0), e.ldt = ldt;
          e.t_zero = jg0 == 0;
          e.finish = last;
          tile_fn(ng, gw, wlast, ap, bp, e);
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Weight-only paths

// x rows copied to the packed K (2 kp floats a row, zero in the gaps and past K).
void pad_rows(const LinearInput& in, const Groups& q, int64_t i0, int64_t rows, float* out,
              int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * ldo;
    std::fill(o, o + ldo, 0.0f);
    const float* x = in.x + (i0 + r) * in.ldx;
    for (int64_t j = 0; j < q.ngroups; ++j)
      std::copy(x + j * q.g, x + j * q.g + q.len(j), o + j * q.gpad);
  }
}

void small_f32(const KernelTable& t, const LinearInput& in, const LinearWeights& w,
               const Groups& q, float* y, int64_t ldy) {
  const GemmGeometry& g = t.gemm_geometry;
  const int64_t mr = g.mr, nr = g.nr;
  const int64_t ldx = 2 * q.kp;
  std::vector<float> xp(static_cast<size_t>(in.m * ldx));
  pad_rows(in, q, 0, in.m, xp.data(), ldx);
  const int64_t n_all = w.b.n;
  const int64_t pbytes = panel_bytes(g, q.kpad, w.b.bits);
  const LinearSmallF32Fn kernel = w.b.bits == 8 ? t.linear_small_u8_f32 : t.linear_small_u4_f32;
  each_panel(ceil_div(n_all, nr), [&](int64_t p) {
    const int64_t j = p * nr;
    const int n = static_cast<int>(std::min(nr, n_all - j));
    for (int64_t i = 0; i < in.m; i += mr) {
      const int m = static_cast<int>(std::min(mr, in.m - i));
      kernel(q.kp, q.gp, xp.data() + i * ldx, ldx, m, w.b.data + p * pbytes,
             w.zb + w.table(p, 0, nr), w.ws + w.table(p, 0, nr), nr,
             in.bias ? in.bias + j : nullptr, y + i * ldy + j, ldy, n);
    }
  });
}

void large_f32(const KernelTable& t, const LinearInput& in, const LinearWeights& w,
               const Groups& q, float* y, int64_t ldy) {
  const GemmGeometry& g = t.gemm_geometry;
  const int64_t mr = g.mr, nr = g.nr;
  // A: float panels of MR rows, [k][row] over the packed K (zero in the gaps and past M).
  const int64_t kk = 2 * q.kp, panels = ceil_div(in.m, mr);
  std::unique_ptr<float[]> a(new float[panels * kk * mr]);
  parallel_for(panels, [&](int64_t p) {
    const int64_t rows = std::min(mr, in.m - p * mr);
    std::vector<float> xp(static_cast<size_t>(rows * kk));
    pad_rows(in, q, p * mr, rows, xp.data(), kk);
    float* ap = a.get() + p * kk * mr;
    for (int64_t k = 0; k < kk; ++k)
      for (int64_t r = 0; r < mr; ++r) ap[k * mr + r] = r < rows ? xp[r * kk + k] : 0.0f;
  });
  const int64_t n_all = w.b.n;
  const int64_t pbytes = panel_bytes(g, q.kpad, w.b.bits);
  const LinearDequantFn dequant = w.b.bits == 8 ? t.linear_dequant_u8_f32 : t.linear_dequant_u4_f32;
  // Tiles of up to 32 MR rows (A block: 192 rows x 256 k x 4 bytes at MR = 6, in L2), so a batch
  // of 128 is one tile row and each B micro-panel is dequantized once.
  const Tiling tl = tiling(g, in.m, n_all);
  parallel_for(tl.count, [&](int64_t tile) {
    const int64_t i0 = (tile / tl.tn) * tl.mc, i1 = std::min(in.m, i0 + tl.mc);
    const int64_t j0 = (tile % tl.tn) * tl.nc, j1 = std::min(n_all, j0 + tl.nc);
    std::vector<float> bf(static_cast<size_t>(kKCF * 2 * nr));
    for (int64_t p0 = 0; p0 < q.kp; p0 += kKCF) {
      const int64_t kc = std::min(kKCF, q.kp - p0);
      for (int64_t j = j0, jp = j0 / nr; j < j1; j += nr, ++jp) {
        dequant(w.b.data + jp * pbytes, p0, kc, q.gp, w.zb + w.table(jp, 0, nr),
                w.ws + w.table(jp, 0, nr), nr, bf.data());
        const int n = static_cast<int>(std::min(nr, j1 - j));
        const float* ap = a.get() + (i0 / mr) * kk * mr + 2 * p0 * mr;
        for (int64_t i = i0; i < i1; i += mr, ap += kk * mr) {
          const int m = static_cast<int>(std::min(mr, i1 - i));
          t.linear_tile_f32(2 * kc, ap, bf.data(),
                            y + i * ldy + j, ldy, m, n, p0 > 0);
        }
      }
    }
    if (in.bias) {
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) y[i * ldy + j] = y[i * ldy + j] + in.bias[j];
    }
  });
}

}  // namespace

LinearPacked linear_pack(const uint8_t* w, int64_t n, int64_t k, int64_t ldw, int bits,
                         bool is_signed, bool grouped, int64_t g, const float* scale,
                         const int32_t* zp) {
  const KernelTable& t = active_table();  // the layout and kernels of one path
  const int64_t nr = t.gemm_geometry.nr;
  LinearPacked p;
  p.n = n, p.k = k, p.bits = bits, p.nr = static_cast<int>(nr), p.grouped = grouped;
  p.g = grouped ? g : k;
  p.ngroups = grouped ? ceil_div(k, g) : 1;
  // Groups start on k-quads of the packed K: a group size that is not a multiple of 4 is padded.
  p.gpad = p.ngroups == 1 ? k : (p.g % 4 == 0 ? p.g : p.g + (4 - p.g % 4));
  p.kpad = (p.ngroups - 1) * p.gpad + (k - (p.ngroups - 1) * p.g);
  const bool four = bits == 4;
  const int32_t bias = is_signed ? (four ? 8 : 128) : 0;  // u = w + bias (lowbit/gemm.h)
  auto value = [&](int64_t i, int64_t kk) -> int32_t {  // w[i][kk] as an integer
    const uint8_t* row = w + i * ldw;
    if (!four) return is_signed ? int32_t(int8_t(row[kk])) : int32_t(row[kk]);
    const int32_t u = (row[kk / 2] >> (4 * (kk & 1))) & 15;
    return is_signed ? ((u ^ 8) - 8) : u;
  };
  auto pos = [&](int64_t kk) { return (kk / p.g) * p.gpad + kk % p.g; };  // in the packed K
  // B = W.T over the packed K, as the GEMM packer reads it: 8-bit, kpad rows of n bytes;
  // 4-bit, ceil(kpad/2) rows of n bytes holding k-pairs. The gaps hold -bias (u = 0). Blocked
  // transposition: 64 x 64 blocks, so that neither side is walked across pages.
  const int64_t rows = four ? ceil_div(p.kpad, 2) : p.kpad;
  const uint8_t pad = static_cast<uint8_t>(four ? ((-bias) & 15) * 0x11 : (-bias) & 0xFF);
  std::vector<uint8_t> bt(static_cast<size_t>(std::max<int64_t>(1, rows * n)), pad);
  constexpr int64_t kBlock = 64;
  parallel_for(ceil_div(n, kBlock), [&](int64_t bi) {
    const int64_t i0 = bi * kBlock, i1 = std::min(n, i0 + kBlock);
    for (int64_t k0 = 0; k0 < k; k0 += kBlock) {
      for (int64_t i = i0; i < i1; ++i) {
        for (int64_t kk = k0; kk < std::min(k, k0 + kBlock); ++kk) {
          const int64_t q = pos(kk);
          const uint8_t v = static_cast<uint8_t>(value(i, kk));
          if (!four) {
            bt[q * n + i] = v;
          } else {
            uint8_t& byte = bt[(q / 2) * n + i];
            const int sh = 4 * (q & 1);
            byte = static_cast<uint8_t>((byte & ~(15 << sh)) | ((v & 15) << sh));
          }
        }
      }
    }
  });
  p.b = gemm_pack(t, bt.data(), p.kpad, n, n, is_signed, bits);
  // (column, group) tables, panel-major; columns past n: scale 1, zero point and sum 0.
  const int64_t len = ceil_div(n, nr) * p.ngroups * nr;
  p.ws.assign(static_cast<size_t>(len), 1.0f);
  p.zb.assign(static_cast<size_t>(len), 0);
  p.cs.assign(static_cast<size_t>(len), 0);
  parallel_for(n, [&](int64_t i) {
    for (int64_t j = 0; j < p.ngroups; ++j) {
      const int64_t at = (i / nr) * p.ngroups * nr + j * nr + i % nr;
      p.ws[at] = scale[i * p.ngroups + j];
      p.zb[at] = static_cast<int32_t>(static_cast<uint32_t>(zp[i * p.ngroups + j]) + uint32_t(bias));
      uint32_t sum = 0;  // of u over the group, wrapping
      for (int64_t kk = j * p.g; kk < std::min(k, (j + 1) * p.g); ++kk)
        sum += static_cast<uint32_t>(value(i, kk) + bias);
      p.cs[at] = static_cast<int32_t>(sum);
    }
  });
  p.zb_uniform = true;  // symmetric weights: every zb is zb[0], the kernels skip a multiply
  for (int64_t i = 0; i < n * p.ngroups; ++i)
    if (zp[i] != zp[0]) p.zb_uniform = false;
  return p;
}

int linear_f32(const LinearInput& in, const LinearWeights& w, float* y, int64_t ldy) {
  const KernelTable& t = active_table();  // one table for the whole call
  gemm_check_layout(t, w.b);
  if (in.m <= 0 || w.b.n <= 0 || w.k <= 0) return 0;
  const Groups q = groups(w);
  const bool small = in.m <= kSmallM;
  const SerialScope serial(double(in.m) * double(w.b.n) * double(w.k) < double(kMinParallelWork));
  if (in.act == LinearAct::kNone) {
    if (in.m <= kSmallWeightOnly) {
      small_f32(t, in, w, q, y, ldy);
    } else {
      large_f32(t, in, w, q, y, ldy);
    }
    return 0;
  }
  ActPanels pa;
  // A words: int8 k-quads against 4-bit B and where the path's 8-bit kernels take them.
  const int status = pack_act(t, in, q, w.b.bits == 4 || t.gemm_geometry.a8 == 4, small, pa);
  if (status) return status;
  if (small) {
    small_int(t, in, w, q, pa, y, ldy);
  } else {
    large_int(t, in, w, q, pa, y, ldy);
  }
  return 0;
}

}  // namespace lowbit
