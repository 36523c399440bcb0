// Segment drivers for the quantization kernels (see quantize_ops.h). Every element is computed
// independently, so the split over threads never changes a bit of the result.
#include "lowbit/quantize_ops.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <vector>

#include "blocking.h"
#include "lowbit/runtime.h"

namespace lowbit {
namespace {

// Above this many activation rows gemv decodes the weights once per tile for the float tile
// kernel instead of once per four rows.
constexpr int kGemvRows = 12;

// Below this many elements a job runs on the calling thread: waking workers costs more.
constexpr int64_t kMinTask = 1 << 16;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Splits [0, total) into tasks of whole multiples of `align` and runs fn(begin, end) on the pool.
template <class F>
void parallel_ranges(int64_t total, int64_t align, int64_t min_task, F&& fn) {
  if (total <= 0) return;
  const int64_t threads = get_num_threads();
  int64_t chunk = std::max(min_task, ceil_div(total, 4 * threads));
  chunk = ceil_div(chunk, align) * align;
  const int64_t tasks = ceil_div(total, chunk);
  if (tasks == 1) return fn(int64_t{0}, total);
  parallel_for(tasks, [&](int64_t t) { fn(t * chunk, std::min(total, (t + 1) * chunk)); });
}

struct Segment {
  int64_t elem;   // index of the first element in the unpadded (outer, L, inner) array
  int64_t byte;   // index of its byte in the packed layout (packed walks only)
  int64_t n;      // elements in the segment
  int64_t sidx;   // scale index of the first element
  int64_t ss;     // scale stride along the segment (0 or 1)
  int64_t outer;  // its outer index
};

// Walks flat indices [begin, end) of the array laid out with rows padded to Lp (Lp == L, or
// L rounded up to even for packed rows, inner == 1) and calls f(Segment) for each maximal run of
// contiguous elements whose scales are one value or consecutive values. Only the first position
// is found by division; the walk then advances incrementally (segments can be as short as a
// group of 32, so the per-segment cost matters).
template <class F>
void for_each_segment(const Layout& lay, int64_t Lp, int64_t begin, int64_t end, F&& f) {
  if (begin >= end) return;
  const int64_t row = Lp * lay.inner;
  int64_t o = begin / row, r = begin - o * row, l = r / lay.inner, i = r - l * lay.inner;
  for (int64_t e = begin; e < end;) {
    if (l >= lay.L) {  // the pad slot of an odd packed row
      e = ++o * row;
      l = 0;
      continue;
    }
    Segment seg;
    seg.outer = o;
    seg.elem = (o * lay.L + l) * lay.inner + i;
    seg.byte = o * (Lp / 2) + l / 2;
    if (lay.inner == 1) {
      const int64_t b = lay.g == 1 ? l : l / lay.g;
      seg.sidx = o * lay.so + b * lay.sg;
      seg.n = lay.g == 1 ? lay.L - l : std::min((b + 1) * lay.g, lay.L) - l;
      seg.ss = lay.g == 1 ? lay.sg : 0;
    } else {
      seg.sidx = o * lay.so + (l / lay.g) * lay.sg + i * lay.si;
      seg.n = lay.inner - i;
      seg.ss = lay.si;
    }
    seg.n = std::min(seg.n, end - e);
    f(seg);
    e += seg.n;
    if (lay.inner == 1) {
      l += seg.n;
      if (l == Lp) l = 0, ++o;  // an odd packed row stops at L and skips its pad slot above
    } else if ((i += seg.n) == lay.inner) {
      i = 0;
      if (++l == lay.L) l = 0, ++o;
    }
  }
}

// Runs an element-wise kernel over the whole array on the pool; returns the OR of its flags.
template <class F>
bool elementwise(const Layout& lay, int64_t Lp, F&& f) {
  std::atomic<bool> flag{false};
  parallel_ranges(lay.outer * Lp * lay.inner, 64, kMinTask, [&](int64_t b, int64_t e) {
    bool local = false;
    for_each_segment(lay, Lp, b, e, [&](const Segment& seg) { local |= f(seg); });
    if (local) flag.store(true, std::memory_order_relaxed);
  });
  return flag.load();
}

}  // namespace

bool quantize(const float* x, const Layout& lay, const float* s, const int32_t* zp, int32_t qmin,
              int32_t qmax, bool packed, uint8_t* out) {
  const KernelTable& k = active_table();
  if (packed) {
    return elementwise(lay, lay.L + (lay.L & 1), [&](const Segment& g) {
      return k.quantize_f32_q4p(x + g.elem, g.n, s + g.sidx, zp + g.sidx, g.ss, qmin, qmax,
                                out + g.byte);
    });
  }
  return elementwise(lay, lay.L, [&](const Segment& g) {
    return k.quantize_f32_q8(x + g.elem, g.n, s + g.sidx, zp + g.sidx, g.ss, qmin, qmax,
                             out + g.elem);
  });
}

bool fake_quantize(const float* x, const Layout& lay, const float* s, const int32_t* zp,
                   int32_t qmin, int32_t qmax, float* out) {
  const KernelTable& k = active_table();
  return elementwise(lay, lay.L, [&](const Segment& g) {
    return k.fake_quantize_f32(x + g.elem, g.n, s + g.sidx, zp + g.sidx, g.ss, qmin, qmax,
                               out + g.elem);
  });
}

bool fake_quantize_grad(const float* x, const float* grad, const Layout& lay, const float* s,
                        const int32_t* zp, int32_t qmin, int32_t qmax, float* out) {
  const KernelTable& k = active_table();
  return elementwise(lay, lay.L, [&](const Segment& g) {
    return k.fake_quantize_grad_f32(x + g.elem, grad + g.elem, g.n, s + g.sidx, zp + g.sidx,
                                    g.ss, qmin, qmax, out + g.elem);
  });
}

void dequantize(const uint8_t* q, int kind, const Layout& lay, const float* s, const int32_t* zp,
                float* out) {
  const KernelTable& k = active_table();
  if (kind >= 2) {
    const DequantizeP4Fn fn = kind == 2 ? k.dequantize_s4p_f32 : k.dequantize_u4p_f32;
    elementwise(lay, lay.L + (lay.L & 1), [&](const Segment& g) {
      fn(q + g.byte, g.n, s + g.sidx, zp + g.sidx, g.ss, out + g.elem);
      return false;
    });
    return;
  }
  elementwise(lay, lay.L, [&](const Segment& g) {
    if (kind == 0)
      k.dequantize_s8_f32(reinterpret_cast<const int8_t*>(q) + g.elem, g.n, s + g.sidx,
                          zp + g.sidx, g.ss, out + g.elem);
    else
      k.dequantize_u8_f32(q + g.elem, g.n, s + g.sidx, zp + g.sidx, g.ss, out + g.elem);
    return false;
  });
}

namespace {
// The format of outer slice o (its own codebook where the spec has strides).
FormatSpec slice_format(const FormatSpec& f, int64_t o) {
  FormatSpec r = f;
  if (f.thr) r.thr = f.thr + o * f.thr_stride;
  if (f.table) r.table = f.table + o * f.table_stride;
  return r;
}
}  // namespace

namespace {
// Groups along the last axis whose size is a multiple of 16: whole rows (or group-aligned
// pieces of them) a kernel call, the kernel stepping through the scales itself (FormatSpec::
// group), instead of one call a group. fn(pos, n, scale, f) for each piece.
template <class F>
bool grouped_rows(const Layout& lay, bool packed, const FormatSpec& f, const float* s, F&& fn) {
  std::atomic<bool> flag{false};
  const int64_t L = lay.L, g = lay.g;
  auto piece = [&](int64_t o, int64_t l0, int64_t l1) {  // row o, elements [l0, l1), l0 % g == 0
    FormatSpec h = slice_format(f, o);
    h.group = g;
    if (fn(o, l0, l1 - l0, s + o * lay.so + (l0 / g) * lay.sg, h))
      flag.store(true, std::memory_order_relaxed);
  };
  if (L % g == 0 && !(packed && (L & 1))) {  // pieces of whole groups, across rows
    parallel_ranges(lay.outer * L, g, kMinTask, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e;) {
        const int64_t o = p / L, l = p - o * L, len = std::min(e - p, L - l);
        piece(o, l, l + len);
        p += len;
      }
    });
  } else {
    parallel_ranges(lay.outer, 1, std::max<int64_t>(1, kMinTask / std::max<int64_t>(L, 1)),
                    [&](int64_t b, int64_t e) {
                      for (int64_t o = b; o < e; ++o) piece(o, 0, L);
                    });
  }
  return flag.load();
}

bool grouped_layout(const Layout& lay) {
  return lay.inner == 1 && lay.g > 1 && lay.g < lay.L && lay.g % 16 == 0 && lay.sg == 1;
}
}  // namespace

bool encode(const float* x, const Layout& lay, const float* s, const FormatSpec& f, bool packed,
            uint8_t* out) {
  const KernelTable& k = active_table();
  const bool sliced = f.thr_stride != 0 || f.table_stride != 0;
  const EncodeFn fn = packed ? k.encode_f32_p4 : k.encode_f32_u8;
  if (grouped_layout(lay)) {
    const int64_t row_bytes = packed ? (lay.L + 1) / 2 : lay.L;
    return grouped_rows(lay, packed, f, s, [&](int64_t o, int64_t l, int64_t n, const float* sp,
                                               const FormatSpec& h) {
      return fn(x + o * lay.L + l, n, sp, 0, h, out + o * row_bytes + (packed ? l / 2 : l));
    });
  }
  return elementwise(lay, packed ? lay.L + (lay.L & 1) : lay.L, [&](const Segment& g) {
    uint8_t* dst = out + (packed ? g.byte : g.elem);
    if (sliced) return fn(x + g.elem, g.n, s + g.sidx, g.ss, slice_format(f, g.outer), dst);
    return fn(x + g.elem, g.n, s + g.sidx, g.ss, f, dst);
  });
}

void decode(const uint8_t* c, const Layout& lay, const float* s, const FormatSpec& f, bool packed,
            float* out) {
  const KernelTable& k = active_table();
  const bool sliced = f.thr_stride != 0 || f.table_stride != 0;
  const DecodeFn fn = packed ? k.decode_p4_f32 : k.decode_u8_f32;
  if (grouped_layout(lay)) {
    const int64_t row_bytes = packed ? (lay.L + 1) / 2 : lay.L;
    grouped_rows(lay, packed, f, s, [&](int64_t o, int64_t l, int64_t n, const float* sp,
                                        const FormatSpec& h) {
      fn(c + o * row_bytes + (packed ? l / 2 : l), n, sp, 0, h, out + o * lay.L + l);
      return false;
    });
    return;
  }
  elementwise(lay, packed ? lay.L + (lay.L & 1) : lay.L, [&](const Segment& g) {
    const uint8_t* src = c + (packed ? g.byte : g.elem);
    if (sliced)
      fn(src, g.n, s + g.sidx, g.ss, slice_format(f, g.outer), out + g.elem);
    else
      fn(src, g.n, s + g.sidx, g.ss, f, out + g.elem);
    return false;
  });
}

namespace {
// Large m: the weights decoded a B micro-panel (kKC x NR floats) at a time by gemv_panel_f32 and
// multiplied by the float tile kernel of the linear family over A panels of MR rows ([k][MR]),
// each micro-panel decoded once per output tile (tiles of up to 32 MR rows).
constexpr int64_t kKC = 256;
void gemv_tiled(const KernelTable& t, const GemvArgs& a) {
  const GemmGeometry& g = t.gemm_geometry;
  const int64_t mr = g.mr, nr = g.nr, k = a.k, panels = blocking::ceil_div(a.m, mr);
  std::unique_ptr<float[]> ap(new float[static_cast<size_t>(panels * k * mr)]);
  parallel_for(panels, [&](int64_t p) {
    float* o = ap.get() + p * k * mr;
    for (int64_t kk = 0; kk < k; ++kk)
      for (int64_t r = 0; r < mr; ++r) {
        const int64_t i = p * mr + r;
        o[kk * mr + r] = i < a.m ? a.x[i * a.ldx + kk] : 0.0f;
      }
  });
  const blocking::Tiling tl = blocking::tiling(g, a.m, a.rows);
  parallel_for(tl.count, [&](int64_t tile) {
    const int64_t i0 = (tile / tl.tn) * tl.mc, i1 = std::min<int64_t>(a.m, i0 + tl.mc);
    const int64_t j0 = (tile % tl.tn) * tl.nc, j1 = std::min(a.rows, j0 + tl.nc);
    std::vector<float> bf(static_cast<size_t>(kKC * nr));
    for (int64_t p0 = 0; p0 < k; p0 += kKC) {
      const int64_t kc = std::min(kKC, k - p0);
      for (int64_t j = j0; j < j1; j += nr) {
        const int n = static_cast<int>(std::min(nr, j1 - j));
        t.gemv_panel_f32(a, j, n, p0, kc, nr, bf.data());
        if (n < nr)  // columns past the tile: zero (the kernel reads NR of them)
          for (int64_t kk = 0; kk < kc; ++kk)
            std::fill(bf.data() + kk * nr + n, bf.data() + kk * nr + nr, 0.0f);
        for (int64_t i = i0; i < i1; i += mr) {
          const float* a_panel = ap.get() + (i / mr) * k * mr + p0 * mr;
          t.linear_tile_f32(kc, a_panel, bf.data(), a.y + i * a.ldy + j, a.ldy,
                            static_cast<int>(std::min(mr, i1 - i)), n, p0 > 0);
        }
      }
    }
    if (a.bias)
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) a.y[i * a.ldy + j] += a.bias[j];
  });
}
}  // namespace

void gemv(const GemvArgs& a) {
  const KernelTable& k = active_table();
  if (a.m <= 0 || a.rows <= 0) return;
  // many rows, or groups the row kernels cannot step through (not multiples of 32): tiles
  if (a.m > kGemvRows || (a.g < a.k && a.g % 32 != 0)) return gemv_tiled(k, a);
  // a task: at least ~64 Ki codes (rows of k), so small layers stay on one thread
  const int64_t min_rows = std::max<int64_t>(1, kMinTask / std::max<int64_t>(a.k, 1));
  parallel_ranges(a.rows, 1, min_rows, [&](int64_t r0, int64_t r1) {
    for (int i0 = 0; i0 < a.m; i0 += 4) {
      GemvArgs b = a;
      b.x = a.x + i0 * a.ldx;
      b.y = a.y + i0 * a.ldy + r0;
      b.m = std::min(4, a.m - i0);
      b.w = a.w + r0 * a.ldw;
      b.rows = r1 - r0;
      b.s = a.s + r0 * a.s_stride;
      b.bias = a.bias ? a.bias + r0 : nullptr;
      if (a.f.table_stride) b.f.table = a.f.table + r0 * a.f.table_stride;
      k.gemv_f32(b);
    }
  });
}

bool minmax(const float* x, const Layout& lay, int64_t nslots, float* mn, float* mx) {
  const KernelTable& k = active_table();
  const int64_t total = lay.size();
  if (total == 0) return false;
  // One task per thread, each reducing into its own slots; merged in task order afterwards.
  const int64_t threads = get_num_threads();
  const int64_t tasks = std::max<int64_t>(1, std::min(threads, total / kMinTask));
  const int64_t chunk = ceil_div(ceil_div(total, tasks), 64) * 64;
  std::vector<float> part_mn, part_mx;
  if (tasks > 1) {
    part_mn.assign(static_cast<size_t>((tasks - 1) * nslots), std::numeric_limits<float>::infinity());
    part_mx.assign(part_mn.size(), -std::numeric_limits<float>::infinity());
  }
  std::atomic<bool> nan{false};
  parallel_for(tasks, [&](int64_t t) {
    float* tmn = t == 0 ? mn : part_mn.data() + (t - 1) * nslots;
    float* tmx = t == 0 ? mx : part_mx.data() + (t - 1) * nslots;
    bool local = false;
    for_each_segment(lay, lay.L, t * chunk, std::min(total, (t + 1) * chunk),
                     [&](const Segment& g) {
                       local |= k.minmax_f32(x + g.elem, g.n, g.ss, tmn + g.sidx, tmx + g.sidx);
                     });
    if (local) nan.store(true, std::memory_order_relaxed);
  });
  for (int64_t t = 1; t < tasks; ++t) {
    const float* tmn = part_mn.data() + (t - 1) * nslots;
    const float* tmx = part_mx.data() + (t - 1) * nslots;
    for (int64_t j = 0; j < nslots; ++j) {
      if (tmn[j] < mn[j]) mn[j] = tmn[j];
      if (tmx[j] > mx[j]) mx[j] = tmx[j];
    }
  }
  return nan.load();
}

bool pack_int4(const uint8_t* q, int64_t outer, int64_t L, int64_t inner, int32_t bias,
               uint8_t* out) {
  const KernelTable& k = active_table();
  const int64_t Lh = (L + 1) / 2;
  if (outer * L * inner == 0) return false;
  std::atomic<bool> bad{false};
  if (inner == 1) {
    // Rows of L values into rows of Lh bytes; a long row is split at even offsets.
    const int64_t total = outer * L;
    const int64_t row_block = std::max<int64_t>(1, kMinTask / std::max<int64_t>(L, 1));
    if (outer > 1 || L < 2 * kMinTask) {
      parallel_ranges(outer, 1, row_block, [&](int64_t b, int64_t e) {
        bool local = false;
        for (int64_t o = b; o < e; ++o) local |= k.pack_x4(q + o * L, L, bias, out + o * Lh);
        if (local) bad.store(true);
      });
    } else {
      parallel_ranges(total, 128, kMinTask, [&](int64_t b, int64_t e) {
        if (k.pack_x4(q + b, e - b, bias, out + b / 2)) bad.store(true);
      });
    }
    return bad.load();
  }
  // Pairs of rows of `inner` bytes into one row of bytes.
  const int64_t rows = outer * Lh;
  parallel_ranges(rows, 1, std::max<int64_t>(1, kMinTask / inner), [&](int64_t b, int64_t e) {
    bool local = false;
    for (int64_t r = b; r < e; ++r) {
      const int64_t o = r / Lh, j = r - o * Lh;
      const uint8_t* lo = q + (o * L + 2 * j) * inner;
      const uint8_t* hi = 2 * j + 1 < L ? lo + inner : nullptr;
      local |= k.pack_x4_vert(lo, hi, inner, bias, out + r * inner);
    }
    if (local) bad.store(true);
  });
  return bad.load();
}

void unpack_int4(const uint8_t* p, int64_t outer, int64_t n, int64_t inner, bool is_signed,
                 uint8_t* out) {
  const KernelTable& k = active_table();
  const int64_t Lh = (n + 1) / 2;
  if (outer * n * inner == 0) return;
  if (inner == 1) {
    const UnpackFn fn = is_signed ? k.unpack_s4 : k.unpack_u4;
    if (outer > 1 || n < 2 * kMinTask) {
      parallel_ranges(outer, 1, std::max<int64_t>(1, kMinTask / std::max<int64_t>(n, 1)),
                      [&](int64_t b, int64_t e) {
                        for (int64_t o = b; o < e; ++o) fn(p + o * Lh, n, out + o * n);
                      });
    } else {
      parallel_ranges(n, 128, kMinTask,
                      [&](int64_t b, int64_t e) { fn(p + b / 2, e - b, out + b); });
    }
    return;
  }
  const UnpackVertFn fn = is_signed ? k.unpack_s4_vert : k.unpack_u4_vert;
  const int64_t rows = outer * Lh;
  parallel_ranges(rows, 1, std::max<int64_t>(1, kMinTask / inner), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t o = r / Lh, j = r - o * Lh;
      uint8_t* lo = out + (o * n + 2 * j) * inner;
      fn(p + r * inner, inner, lo, 2 * j + 1 < n ? lo + inner : nullptr);
    }
  });
}

}  // namespace lowbit
