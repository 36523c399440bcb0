// lb.linear driver: y = x @ W.T + bias for float32 x (M x K) and a quantized weight W (N x K)
// packed once as the integer GEMM's B (lowbit/gemm.h: k2n16 panels of u = w + bias).
//
// Integer activations (act int8 / uint8). Each row of x is quantized while A is packed: its
// min/max (the active minmax kernel), its scale and zero point in float32 exactly as
// lowbit.reference.linear computes them (or the static ones), the quantize kernel into a row
// buffer, then the GEMM's A panel layout (int16 k-pairs; int8 k-quads for 4-bit B at large M)
// together with one row sum per K group. No int8 copy of x and no int32 M x N matrix exist:
// each tile of int32 sums goes through the float epilogue (kernels.h, LinearEpilogue) on the
// thread that made it and lands in y:
//   per channel: y = float(acc) * (a_scale[m] * w_scale[n]) [+ bias[n]]
//   per group:   t = 0; t = t + float(acc_j) * w_scale[n, j] for j ascending;
//                y = t * a_scale[m] [+ bias[n]]
// with acc_j = sum over group j of (a - za)(w - zw) in wrapping int32, formed from the kernels'
// raw sums as S + (g_j za - rowsum_j) zb' - za colsum_j (zb' = zw + bias of the packed u).
// Every output element is produced by one thread in this fixed order, so results do not depend
// on the thread count, and match the reference bit for bit.
//
// Groups. Group j holds the true K range [j g, j g + g_j) (g_j = min(g, K - j g)); in the packed
// K it starts at j gpad, where gpad = g when g is a multiple of 4 (then the packed K is K) and
// the next multiple of 4 otherwise (the packed W has u = 0 in the gaps; A is zero there). So
// every group is whole k-pairs and whole k-quads and the kernels run over any group's range.
// Per-channel weights are one group of K (gpad = K).
//
// Weight-only (act none): the packed B dequantized on the fly: at small M each k-pair is widened
// to float in registers and met by FMAs (scales applied per group after the group's sum); at
// large M a micro-panel of B is dequantized (lb.dequantize's formula) into an L1 buffer and a
// 6x16 float FMA tile runs over it. Float32 sums in a fixed order (independent of threads).
//
// Work split: M <= 8 streams B once (column panels split over threads); larger M runs output
// tiles (split over threads, K never split) as in the GEMM driver.
#pragma once
#include <cstdint>
#include <vector>

#include "lowbit/gemm.h"

namespace lowbit {

struct LinearWeights {
  PackedB b;              // b.k: the packed K (see above), b.n = N; b.colsum unused
  int64_t k = 0;          // true K
  int64_t g = 0;          // group size along K (per channel: K)
  int64_t gpad = 0;       // group stride in the packed K
  int64_t ngroups = 1;
  bool grouped = false;   // per-group float formula (else per channel)
  // Per (column, group) tables, panel-major (ceil(N/NR), ngroups, NR) so that a column panel's
  // entries are contiguous and stream with its weights: scale, zero point of u (zw + bias), and
  // the sum of u over the group. Columns past N: scale 1, zero 0.
  const float* ws = nullptr;
  const int32_t* zb = nullptr;
  const int32_t* cs = nullptr;
  // Offset of (column panel jp of NR columns, group jg) in the tables; a panel's groups are NR
  // apart.
  int64_t table(int64_t jp, int64_t jg, int64_t nr) const { return (jp * ngroups + jg) * nr; }
  bool zb_uniform = false;  // every zb is zb[0] (symmetric weights): the kernels skip a multiply
};

enum class LinearAct { kNone, kInt8, kUint8 };

struct LinearInput {
  const float* x = nullptr;  // m rows of k floats, row stride ldx
  int64_t m = 0, ldx = 0;
  LinearAct act = LinearAct::kInt8;
  bool is_static = false;    // static activation scale / zero point for every row
  float scale = 1.0f;
  int32_t zero_point = 0;
  const float* bias = nullptr;  // N floats, or nullptr
};

// Bits of the status linear_f32 returns (0: success; y is then complete).
enum : int {
  kLinearNonFinite = 1,  // dynamic: a NaN or an infinity in x
  kLinearNaN = 2,        // static: a NaN in x
  kLinearOverflow = 4,   // dynamic uint8: a row's range overflows float32
};

// y (m x N, row stride ldy) = linear(x, W). Requires k >= 1 and N >= 1. w.b must be packed in
// the active path's layout (else std::invalid_argument, y untouched).
int linear_f32(const LinearInput& in, const LinearWeights& w, float* y, int64_t ldy);

// A weight packed for linear_f32 on the active path, owning its memory (lb.QTensor caches it,
// keyed by the layout): the GEMM's B of the (kpad, N) matrix W.T with every group starting at a
// multiple of gpad (u = 0 in the gaps), and the per-(column, group) tables of LinearWeights.
struct LinearPacked {
  PackedBData b;
  std::vector<float> ws;  // (ceil(N/NR), ngroups, NR) each
  std::vector<int32_t> zb, cs;
  int64_t kpad = 0, n = 0, k = 0, g = 0, gpad = 0, ngroups = 1;
  int bits = 8, nr = 0;
  bool grouped = false, zb_uniform = false;
};

// W: n rows of k values, row stride ldw bytes: int8 (is_signed) or uint8 bytes for bits 8; for
// bits 4, ceil(k/2) bytes of nibbles packed along k (low nibble first), int4 (is_signed) or
// uint4. scale / zp: n x ngroups (row-major) float32 scales and int32 zero points, ngroups =
// ceil(k/g) when grouped, else 1 (g is then ignored: one group of k).
LinearPacked linear_pack(const uint8_t* w, int64_t n, int64_t k, int64_t ldw, int bits,
                         bool is_signed, bool grouped, int64_t g, const float* scale,
                         const int32_t* zp);

}  // namespace lowbit
