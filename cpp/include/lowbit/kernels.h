// Kernel signatures shared by every ISA. Plain declarations only: nothing here may be inlined
// into an ISA translation unit (see google/ruy path.h on ODR and per-ISA symbols).
#pragma once
#include <cstdint>

namespace lowbit {

// q = clamp(rne(x[i] / s[i*ss]) + zp[i*ss], qmin, qmax) for i < n, stored as one byte
// (int8 and uint8 share the low byte of the int32). Returns true if any x[i] is NaN; the
// output is then unspecified (callers write to a buffer of their own first).
using QuantizeQ8Fn = bool (*)(const float* x, int64_t n, const float* s, const int32_t* zp,
                              int64_t ss, int32_t qmin, int32_t qmax, uint8_t* out);
// dequantize(quantize(x)) in float32: float(clamp(rne(x/s), qmin-zp, qmax-zp)) * s.
using FakeQuantizeFn = bool (*)(const float* x, int64_t n, const float* s, const int32_t* zp,
                                int64_t ss, int32_t qmin, int32_t qmax, float* out);
// Straight-through estimator: g[i] where qmin <= rne(x/s)+zp <= qmax, else +0.0f.
using FakeQuantizeGradFn = bool (*)(const float* x, const float* g, int64_t n, const float* s,
                                    const int32_t* zp, int64_t ss, int32_t qmin, int32_t qmax,
                                    float* out);
// out[i] = float(int32(q[i]) - zp[i*ss]) * s[i*ss]
using DequantizeS8Fn = void (*)(const int8_t* q, int64_t n, const float* s, const int32_t* zp,
                                int64_t ss, float* out);
using DequantizeU8Fn = void (*)(const uint8_t* q, int64_t n, const float* s, const int32_t* zp,
                                int64_t ss, float* out);
// Packed 4-bit input: element i is nibble (i & 1) of byte i / 2, low nibble first.
using DequantizeP4Fn = void (*)(const uint8_t* p, int64_t n, const float* s, const int32_t* zp,
                                int64_t ss, float* out);
// ss == 0: mn[0] = min(mn[0], x[0..n)), mx[0] likewise. ss == 1: mn[i] = min(mn[i], x[i]).
// Returns true if any x[i] is NaN.
using MinMaxFn = bool (*)(const float* x, int64_t n, int64_t ss, float* mn, float* mx);
// out[i/2] = (q[i] & 15) | (q[i+1] & 15) << 4 for even i < n; an odd n leaves a zero high nibble.
// bias is 8 for int4 input (valid: -8..7), 0 for uint4 (valid: 0..15). Returns true if any
// value is out of range; the output is then unspecified.
using PackFn = bool (*)(const uint8_t* q, int64_t n, int32_t bias, uint8_t* out);
// out[i] = (lo[i] & 15) | (hi[i] & 15) << 4; hi == nullptr gives a zero high nibble.
using PackVertFn = bool (*)(const uint8_t* lo, const uint8_t* hi, int64_t n, int32_t bias,
                            uint8_t* out);
// out[i] = nibble i of p (i < n), sign-extended (s4) or zero-extended (u4).
using UnpackFn = void (*)(const uint8_t* p, int64_t n, uint8_t* out);
// lo[i] = low nibble of p[i], hi[i] = high nibble; hi == nullptr skips it.
using UnpackVertFn = void (*)(const uint8_t* p, int64_t n, uint8_t* lo, uint8_t* hi);

// ---------------------------------------------------------------------------------------------
// Integer GEMM (issue 3). A path's register tile (MR rows x NR columns) and B panel layout are
// its own: its fill_gemm() sets KernelTable::gemm_geometry beside the kernels (GemmGeometry
// below), and the drivers (cpp/runtime) read both from the same table snapshot. The layouts of
// the scalar and avx2 paths ("k2n16", MR = 6, NR = 16; lowbit/gemm.h describes them in full):
//  - A panel: MR rows. For k-pair j, MR words: word r = int16 a[r][2j] in the low half,
//    int16 a[r][2j+1] in the high half (rows past M and k past K are 0).
//  - B panel, 8-bit: NR columns of u = b + bias in 0..255. For k-pair j, 2 NR bytes:
//    byte 2c+t = u[2j+t][c].
//  - B panel, 4-bit: NR columns of u = b + bias in 0..15. For k-pair j, NR bytes: byte 2c+t
//    holds u[2j+t][c] in its low nibble and u[2j+t][c+NR/2] in its high nibble.
// Every kernel computes exact sums of products of int16 A and unsigned B, wrapping modulo 2**32.
// The large-M int4 path uses k-quads instead (4 consecutive k, zero past K):
//  - A quad panel: MR rows; for quad q, MR words: word r = bytes a'[r][4q..4q+3] as int8, where
//    a' = a - 128 for uint8 a (the driver corrects with the zero point), a' = a for int8 a.
//  - B quad panel: NR columns of u in 0..15; for quad q, 4 NR bytes: byte 4c+i = u[4q+i][c] for
//    columns 0..NR/2-1, then the same for columns NR/2..NR-1 (one byte each, high nibble 0).
// A path may also keep k in quads (kb = 4; VNNI's vpdpbusd sums 4 products): the B panels then
// hold, for k-quad q, 4 NR bytes (8-bit: byte 4c+i = u[4q+i][c]) or 2 NR bytes (4-bit: byte
// 4(c mod NR/2)+i holds u[4q+i][c], low nibble for c < NR/2, high for the others), and A words
// against 8-bit B may be k-quads of int8 a' (a8 = 4) instead of int16 k-pairs (a8 = 2).
// An element format of the formats family (lowbit/formats_kernels.inc). Encoding computes
// y = x / s (IEEE division) and then either
//   kind 0, floating point: c = clamp(y, -maxval, maxval) rounded to the format's grid, ties to
//     the even significand (mbits mantissa bits, exponent bias `bias`, subnormals kept); the
//     code is its bit pattern, the sign at bit `sign_bit` (a -0.0 keeps it);
//   kind 1, thresholds: the code is the number of thr[0 .. nthr) below y (thr sorted ascending;
//     a y on a threshold takes the lower code; NaN gives 0, and is reported).
// Decoding is table[code] * s in float32; the table has 16 entries (4-bit codes, the index
// masked to 4 bits) or 256.
struct FormatSpec {
  int kind = 0;
  int mbits = 0, bias = 0, sign_bit = 0;
  float maxval = 0.0f;
  const float* thr = nullptr;
  int nthr = 0;
  const float* table = nullptr;
  int ntable = 0;
  // Drivers only (runtime/quantize_ops.cpp): one codebook per outer slice, thr and table
  // advancing by these per slice (0: one for all).
  int64_t thr_stride = 0, table_stride = 0;
  // Set by the drivers for encode/decode with ss == 0: one scale a group of `group` consecutive
  // elements (a multiple of 16), s[i / group]; 0: one scale for the call.
  int64_t group = 0;
};
// y[i][r] = bias[r] + sum over groups j of s[r * s_stride + j] * (sum over k of group j of
// x[i][k] * value(code[r][k])), for rows r < rows and i < m (m <= 4): the weight-only product of
// lb.linear for weights in a format (row r of W holds `code_bits`-bit codes, 4-bit packed two a
// byte low nibble first, rows ldw bytes apart). value: the spec's table (16 entries: per row
// when table_stride; 256: gathered), or for fp8 (kind 0, code_bits 8) the format's bits decoded
// arithmetically. Groups of g (a multiple of 32, or g >= k; the driver takes any other g to the
// tiled path); float accumulation, not bit-exact (lb.linear's weight-only tolerance).
struct GemvArgs {
  const float* x = nullptr;
  int64_t ldx = 0;
  int m = 0;
  int64_t k = 0;
  const uint8_t* w = nullptr;
  int64_t ldw = 0, rows = 0;
  int code_bits = 4;
  const float* s = nullptr;
  int64_t s_stride = 0, g = 0;
  const float* bias = nullptr;
  float* y = nullptr;
  int64_t ldy = 0;
  FormatSpec f;
};
using GemvFn = void (*)(const GemvArgs& a);
// The weights of gemv_f32 decoded for the float tile kernel (linear_tile_f32): out[k * ldo + c] =
// value(code[r0 + c][k0 + k]) * s[(r0 + c) * s_stride + (k0 + k) / g] for c < nr (rows past
// a.rows: 0) and k < kc.
using GemvPanelFn = void (*)(const GemvArgs& a, int64_t r0, int nr, int64_t k0, int64_t kc,
                             int64_t ldo, float* out);
using EncodeFn = bool (*)(const float* x, int64_t n, const float* s, int64_t ss,
                          const FormatSpec& f, uint8_t* out);
using DecodeFn = void (*)(const uint8_t* c, int64_t n, const float* s, int64_t ss,
                          const FormatSpec& f, float* out);

struct GemmGeometry {
  int mr = 0;  // rows of the register tile and of an A panel (the words of an A k-group)
  int nr = 0;  // columns of the tile and of a B panel
  int kb = 0;  // consecutive k a B panel keeps together per column: 2 (k-pairs) or 4 (k-quads)
  int a8 = 0;  // k an A word holds against 8-bit B: 2 (int16 k-pairs) or 4 (int8 k-quads of a')
  int a4 = 0;  // ... in gemm_small_u4_s32 (4-bit B, small M); every other 4-bit kernel: quads
  int kc = 0;  // K block of the tiled paths, in k-pairs: a B micro-panel stays in L1
  char layout[16] = {};  // the B panel layout's name, recorded by lb.PackedMatrix
  // The A panel of the small-M kernels (gemm_small_*, linear_small_*_s32) holds its m rows only,
  // word r of k-group j at a[j * m + r] (true), or MR rows, at a[j * MR + r] (false). A kernel
  // streaming B at memory speed wants the former: an M = 1 call then reads 4 bytes of A per
  // k-group instead of a cache line per two.
  bool small_a_rows = false;
};

// One MR x NR tile over kp k-pairs: c[r][j] (+)= sum_p a-pair(r,p) . b-pair(p,j) for r < m, j < n
// (accumulate != 0 adds to c, else stores). a: one A panel; b: one 8-bit B panel, both at the
// first k-pair. Rows >= m and columns >= n of c are not touched.
using GemmTileFn = void (*)(int64_t kp, const int32_t* a, const uint8_t* b, int32_t* c,
                            int64_t ldc, int m, int n, int accumulate);
// gemm_s8u4_s32 has the same type with kp counting k-quads, a an A quad panel and b a B quad
// panel: int8 x (0..15) products, of which 8 k-quads (at most 30720 in magnitude) are summed in
// int16 lanes before widening, so nothing saturates.
// The small-M kernel: the same contract for m <= MR rows (the A panel's first m rows, or an A
// panel of m rows: GemmGeometry::small_a_rows), streaming
// one B panel (8-bit for gemm_small_u8_s32, 4-bit for gemm_small_u4_s32) and reading each byte
// of it once.
using GemmSmallFn = void (*)(int64_t kp, const int32_t* a, int m, const uint8_t* b, int32_t* c,
                             int64_t ldc, int n, int accumulate);
// Widens kp k-pairs of a 4-bit B panel (NR bytes each) to ceil(kp/2) k-quads of the B quad
// layout (4 NR bytes each; an odd kp gets a zero pair).
using GemmDecodeFn = void (*)(const uint8_t* b4, int64_t kp, uint8_t* out);
// Packs one B panel: columns [0, n) (n <= NR) of the rows at b (row stride ldb bytes) into
// ceil(k/2) k-pairs at dst, and colsum[c] = sum over k of u[k][c] (wrapping; 0 for c >= n).
// 8-bit: u = byte ^ flip (flip 0x80 turns int8 b into b + 128), k rows.
// 4-bit: rows hold k-pairs as ONNX packs int4 along k (low nibble = even k); u = nibble ^ flip
// (flip 0x8: int4 b -> b + 8); ceil(k/2) rows; an odd k's last high nibble is ignored (u = 0).
using GemmPackBFn = void (*)(const uint8_t* b, int64_t ldb, int64_t k, int n, uint8_t flip,
                             uint8_t* dst, int32_t* colsum);
// Benchmark reference: iters rounds of 12 independent int16 multiply-add pairs into int32
// (384 integer ops a round, registers only); returns a checksum so nothing is optimized away.
using GemmPeakFn = int64_t (*)(int64_t iters);
// ----------------------------------------------------------------------- end of integer GEMM

// ---------------------------------------------------------------------------------------------
// lb.linear (issue 4): y = x @ W.T + bias with W packed as the GEMM's B (lowbit/linear.h has the
// driver). Groups of K are whole k-pairs of the packed B: group j covers k-pairs [j*gp, (j+1)*gp)
// (the last one ends at kp), so one kernel call serves per-channel weights (gp = kp) and
// per-group weights alike.

// The small-M path, fused: m <= MR rows (the first m of an A panel, or an A panel of m rows:
// GemmGeometry::small_a_rows) times one B panel of kp
// k-pairs, every group of the panel in one pass over B. linear_small_u8_s32: 8-bit B, an A panel
// of int16 k-pairs. linear_small_u4_s32: 4-bit B, an A quad panel (int8 a', see the large-M
// int4 path; groups then start on even k-pairs). The int32 sums of group j, S_j[r][c] = sum over its k-pairs p of
// a-pair(r, p) . b-pair(p, c) (wrapping), go through the epilogue e (below; e.s unused, e.t
// unused: the running sums stay in registers) and y is written for rows < e.m = m, columns
// < e.n.
struct LinearEpilogue;
using LinearSmallFn = void (*)(int64_t kp, int64_t gp, const int32_t* a, int m, const uint8_t* b,
                               const LinearEpilogue& e);

// The float epilogue of the integer linear, on an m x n block of output (any m, n). With
//   C_j[r][c] = s[j*s_group + r*lds + c] + rterm[j*rt_group + r] * zb[j*w_group + c]
//               - za[r] * cs[j*w_group + c]     (uint32, wrapping; za null: 0; zb null: zb_all)
// (the exact int32 sums of (a - za)(u - zb) over group j, see linear.h), it computes in float32,
// one rounding per operation, never fused:
//   per channel (grouped false): y = float(C_0) * (as[r] * ws[c])  [then y = y + bias[c]]
//   grouped: v = t_zero ? 0.0f : t[r][c]; for j < ngroups: v = v + float(C_j) * ws[j][c];
//            finish ? y = v * as[r] [then + bias[c]] : t[r][c] = v.
struct LinearEpilogue {
  int m = 0, n = 0, ngroups = 1;
  const int32_t* s = nullptr;
  int64_t s_group = 0, lds = 0;
  const uint32_t* rterm = nullptr;
  int64_t rt_group = 0;
  const int32_t* za = nullptr;
  const int32_t* zb = nullptr;
  int32_t zb_all = 0;
  const int32_t* cs = nullptr;
  const float* ws = nullptr;
  int64_t w_group = 0;
  bool grouped = false, t_zero = true, finish = true;
  float* t = nullptr;
  int64_t ldt = 0;
  const float* as = nullptr;
  const float* bias = nullptr;
  float* y = nullptr;
  int64_t ldy = 0;
};
using LinearEpilogueFn = void (*)(const LinearEpilogue& e);

// The large-M path with per-group weights, fused: one MR x NR block (rows < e.m of the A panel a,
// columns < e.n) over ng consecutive groups. Group j of the call (0-based) takes the A words
// [j*gw, j*gw + (j == ng-1 ? wlast : gw)) and the matching B: linear_tile_u8_s32: int16 k-pair
// words x an 8-bit B panel (2 NR bytes a k-pair); linear_tile_q4_s32: int8 k-quad words x a B
// quad panel (4 NR bytes a quad, gemm_decode_q4). Each group's int32 sums are folded as the
// epilogue's grouped case with ngroups = 1 at group j (e.rterm + j*rt_group; e.zb, e.cs,
// e.ws + j*w_group): t = (j == 0 && e.t_zero ? 0.0f : t) + float(C_j) * ws_j; after the last
// group y = t * as (+ bias) if e.finish, else t is stored. e.t has room for NR columns a row.
using LinearTileFn = void (*)(int64_t ng, int64_t gw, int64_t wlast, const int32_t* a,
                              const uint8_t* b, const LinearEpilogue& e);

// Weight-only, small M: y[r][c] (r < m <= MR, c < n <= NR) for one B panel (8-bit:
// linear_small_u8_f32, 4-bit: linear_small_u4_f32) and float rows x[r * ldx + k] (2*kp floats
// each, zero where the packed B has padding):
//   y = sum_j ws[j][c] * sum_{k in group j} x[r][k] * float(u[k][c] - zb[j][c])  (+ bias[c])
// summed in float32 in an order of the kernel's choosing (weight-only is within a tolerance).
using LinearSmallF32Fn = void (*)(int64_t kp, int64_t gp, const float* x, int64_t ldx, int m,
                                  const uint8_t* b, const int32_t* zb, const float* ws,
                                  int64_t w_group, const float* bias, float* y, int64_t ldy,
                                  int n);
// Weight-only, large M: k-pairs [p0, p0 + kp) of a B panel (b at the panel's start) dequantized
// to float, 2*kp rows of NR from out: out[k][c] = float(u[k][c] - zb[j][c]) * ws[j][c] with
// j = (pair index) / gp the pair's group: exactly lb.dequantize's formula.
using LinearDequantFn = void (*)(const uint8_t* b, int64_t p0, int64_t kp, int64_t gp,
                                 const int32_t* zb, const float* ws, int64_t w_group, float* out);
// MR x NR float tile: c[r][j] (+)= sum_{k < kk} a[k*MR + r] * b[k*NR + j] for r < m, j < n
// (accumulate != 0 adds to c). a: a float A panel of MR rows; b: a dequantized B micro-panel.
using LinearTileF32Fn = void (*)(int64_t kk, const float* a, const float* b, float* c,
                                 int64_t ldc, int m, int n, int accumulate);
// ------------------------------------------------------------------------------ end of linear

struct KernelTable {
#define LOWBIT_KERNEL(name, type) type name;
#include "lowbit/kernel_list.inc"
#undef LOWBIT_KERNEL
  // Set by fill_gemm() with the gemm family's kernels; the linear family's kernels use the same
  // geometry, so a path claims the two families together (runtime/dispatch.cpp checks both).
  GemmGeometry gemm_geometry;
};

// The kernel families, in kernel_list.inc order (its LOWBIT_FAMILY markers name the same ones,
// each followed by its slots); an ISA claims families as LOWBIT_FAM bits.
#define LOWBIT_FAMILIES(X) X(quantize) X(formats) X(gemm) X(linear)
#define LOWBIT_ENUM_(name) name,
enum class Family : unsigned { LOWBIT_FAMILIES(LOWBIT_ENUM_) count };
#undef LOWBIT_ENUM_
#define LOWBIT_FAM(name) (1u << static_cast<unsigned>(::lowbit::Family::name))

// Every ISA of the manifest declares one fill_<family>() per family; a path defines those of
// the families it claims (lowbit/isa_list.inc), and nothing references the others. Scalar fills
// every slot; each other path starts from its parent's table and overrides its families' slots.
#define LOWBIT_DECLARE_FILL_(family) void fill_##family(KernelTable& t);
#define LOWBIT_ISA(isa, parent, families, cpu, emulable) \
  namespace isa {                                         \
  LOWBIT_FAMILIES(LOWBIT_DECLARE_FILL_)                   \
  }
#include "lowbit/isa_list.inc"
#undef LOWBIT_ISA
#undef LOWBIT_DECLARE_FILL_

}  // namespace lowbit
