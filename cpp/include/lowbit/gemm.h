// Integer GEMM driver: C (int32) = (A - za) (B - zb), wrapping modulo 2**32 like NumPy int32.
//
// B is packed once (lowbit.PackedMatrix keeps the result) into panels of 16 columns, stored as
// unsigned values u = b + bias so that every kernel multiplies int16 A by unsigned B:
//   int8 b: u = b + 128, uint8: u = b, int4: u = b + 8, uint4: u = b.
// Then (a - za)(b - zb) = (a - za)(u - zb'), zb' = zb + bias, and
//   C[i][j] = sum_k a[i][k] u[k][j] - za[i] colsum[j] - zb'[j] rowsum[i] + K za[i] zb'[j]
// with colsum[j] = sum_k u[k][j] (computed when packing B) and rowsum[i] = sum_k a[i][k]
// (computed when packing A), all in uint32 arithmetic. Integer sums are exact modulo 2**32 in
// any order, so the K blocking and the thread split never change a bit.
//
// Packed B: the layout is the active path's (its GemmGeometry, lowbit/kernels.h), named and
// recorded with the packed data; a call under a path of another layout is refused
// (std::invalid_argument), never computed wrong. The scalar and avx2 layout "k2n16": ceil(N/16)
// panels, each ceil(K/2) k-pairs of 32 bytes (8-bit) or 16 bytes (4-bit), plus 16 int32 column
// sums per panel:
//   8-bit: 32 * ceil(N/16) * ceil(K/2) + 64 * ceil(N/16) bytes  (about K*N bytes)
//   4-bit: 16 * ceil(N/16) * ceil(K/2) + 64 * ceil(N/16) bytes  (about K*N/2 bytes)
//
// Work split (cpp/runtime/gemm.cpp): M <= 8 rows take the small-M path, which streams each B
// byte once (4-bit B decoded in registers) and splits the column panels over threads; larger M
// packs A into MR-row panels (int16 k-pairs; int8 k-quads against 4-bit B, whose kernel sums
// vpmaddubsw products of nibbles exactly in int16 lanes) and runs MR x NR register tiles over
// cache blocks (output tiles split over threads, K never split). Every call reads the active
// kernel table once and takes its kernels and geometry from that snapshot.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/kernels.h"

namespace lowbit {

struct PackedB {
  int64_t k = 0, n = 0;  // logical shape of b
  int bits = 8;          // 8 or 4
  int32_t bias = 0;      // u = b + bias
  const uint8_t* data = nullptr;    // gemm_packed_bytes(geometry, k, n, bits) bytes
  const int32_t* colsum = nullptr;  // gemm_colsum_len(geometry, n) words (0 past column n)
  const char* layout = "";          // the GemmGeometry::layout it was packed for
};

// A packed B that owns its memory, as the packing functions return it. The panels start on a
// 64-byte cache line inside `storage`: the small-M kernels stream them at memory speed, and a
// vector load split across two lines costs them time (measured on a Zen 5 core, 4096 x 4096
// int4 linear at batch 1: 0.120 ms unaligned, 0.086 ms aligned).
struct PackedBData {
  std::vector<uint8_t> storage;  // the packed bytes and up to 63 bytes of slack before them
  size_t offset = 0, size = 0;   // the packed bytes are storage[offset, offset + size)
  // size zero bytes, 64-byte aligned
  void allocate(size_t n) {
    storage.assign(n + 63, 0);
    offset = static_cast<size_t>(-reinterpret_cast<uintptr_t>(storage.data()) & 63);
    size = n;
  }
  uint8_t* data() { return storage.data() + offset; }
  const uint8_t* data() const { return storage.data() + offset; }
  std::vector<int32_t> colsum;
  std::string layout;
};

int64_t gemm_packed_bytes(const GemmGeometry& g, int64_t k, int64_t n, int bits);
int64_t gemm_colsum_len(const GemmGeometry& g, int64_t n);
// The geometry of the active path, and of the path of this build (any CPU) that packs in
// `layout` (nullptr if none does).
const GemmGeometry& gemm_geometry();
const GemmGeometry* gemm_geometry_for(const std::string& layout);

// Packs a row-major k x n matrix of int8 (is_signed) or uint8 values, row stride ldb bytes, in
// the active path's layout.
PackedBData gemm_pack_b8(const uint8_t* b, int64_t k, int64_t n, int64_t ldb, bool is_signed);
// Packs int4/uint4 values given two a byte along k (lb.pack_int4(b, axis=0)): byte [i][j]
// holds b[2i][j] in its low nibble and b[2i+1][j] in its high nibble; rows of ldb bytes.
PackedBData gemm_pack_b4(const uint8_t* bp, int64_t k, int64_t n, int64_t ldb, bool is_signed);
// The same as gemm_pack_b8 from B's transpose: row j of w (n rows, ldw bytes apart) holds
// column j of B, k bytes. The usual (out, in) weight W is this w for B = W.T; a panel's k-groups
// are then word copies from n rows (GemmGeometry kb bytes each), so transposing costs nothing
// beyond the packing itself. Byte for byte the result of gemm_pack_b8 on B.
PackedBData gemm_pack_b8_rows(const uint8_t* w, int64_t k, int64_t n, int64_t ldw, bool is_signed);
// The same for 4-bit values: row j of w holds column j of B as k-pairs (ceil(k/2) bytes, value
// 2i in the low nibble of byte i; lb.pack_int4(W, axis=1) for B = W.T). Byte for byte the
// result of gemm_pack_b4 on B's nibbles packed along k.
PackedBData gemm_pack_b4_rows(const uint8_t* w, int64_t k, int64_t n, int64_t ldw, bool is_signed);
// dst (cols x rows, row-major) = the transpose of src (rows x cols, rows lds bytes apart), in
// cache blocks, threads taking bands of source columns: the C-order copy of a Fortran-order
// 8-bit operand (NumPy's own copy walks the strided side a byte at a time).
void transpose_bytes(const uint8_t* src, int64_t rows, int64_t cols, int64_t lds, uint8_t* dst);
// The same with the kernels and geometry of the table t (the drivers' snapshot); bits 8 or 4.
PackedBData gemm_pack(const KernelTable& t, const uint8_t* b, int64_t k, int64_t n, int64_t ldb,
                      bool is_signed, int bits);
// The k x n values of b back (int8 values as their bytes; 4-bit ones sign- or zero-extended),
// from the layout b.layout names. Throws std::invalid_argument if no path of this build has it.
void gemm_unpack_b(const PackedB& b, uint8_t* out);
// b (in its layout b.layout) packed again for the active path: what a PackedMatrix does when
// the active path packs differently (the values are the same, the bytes are not).
PackedBData gemm_repack(const PackedB& b);
// Throws std::invalid_argument unless b.layout is the layout of the table t.
void gemm_check_layout(const KernelTable& t, const PackedB& b);

// Runs the active ISA's multiply-add throughput loop (384 integer ops a round); benchmarks
// time it as the machine's practical peak.
int64_t gemm_peak(int64_t iters);

// Row-major m x k int8 (is_signed) or uint8 matrix, row stride lda bytes.
struct GemmA {
  const uint8_t* data = nullptr;
  int64_t m = 0, k = 0, lda = 0;
  bool is_signed = true;
};

// Zero points: a[i * a_stride], b[j * b_stride] (stride 0: one value for all).
struct GemmZeroPoints {
  const int32_t* a = nullptr;
  int64_t a_stride = 0;
  const int32_t* b = nullptr;
  int64_t b_stride = 0;
};

// c (m x n, row stride ldc) = (a - za) @ (b - zb) in wrapping int32. a.k must equal b.k.
// b must be packed in the active path's layout (else std::invalid_argument, c untouched).
void gemm_s32(const GemmA& a, const PackedB& b, const GemmZeroPoints& zp, int32_t* c,
              int64_t ldc);

// Hook for fused epilogues (a float epilogue per output tile, as lb.linear needs): the same
// product, but each finished tile [i0, i1) x [j0, j1) of int32 results (zero points applied) is
// handed to epilogue(i0, i1, j0, j1, tile, ld) on the thread that computed it, from per-thread
// scratch, instead of being stored. Tiles partition the output; each is delivered once. (lb.linear
// has its own driver, lowbit/linear.h: it quantizes activations while packing A and needs
// per-group K partial sums, which run the tile kernels over each group's range of k-pairs; the
// kernels take any k range.)
using GemmTileEpilogue = std::function<void(int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                                            const int32_t* tile, int64_t ld)>;
void gemm_s32_tiles(const GemmA& a, const PackedB& b, const GemmZeroPoints& zp,
                    const GemmTileEpilogue& epilogue);

}  // namespace lowbit
