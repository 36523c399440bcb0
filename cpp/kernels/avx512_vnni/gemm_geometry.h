// The geometry of the AVX-512 VNNI GEMM and linear kernels (lowbit/kernels.h, GemmGeometry).
// vpdpbusd multiplies 4 unsigned bytes by 4 signed bytes and adds the 4 products to an int32
// lane, so k runs in quads: B panels keep 4 consecutive k of a column together (kb = 4, the u =
// b + bias bytes are the unsigned operand) and A words are int8 k-quads of a' (a, or a - 128 for
// uint8 a; the signed operand, broadcast from memory). The register tile is 8 rows x 32 columns:
// 16 zmm accumulators (enough independent chains for vpdpbusd's latency at two a cycle), 2 B
// vectors a k-quad, each A word broadcast once for both (measured on a Sapphire Rapids core,
// L1-resident operands: 8x32 252 GOPS, 10x32 248, 12x32 223, 14x32 209, 6x64 160; on a Zen 5
// core the 8x32 tile runs at its vpdpbusd peak, 1030 GOPS).
#pragma once
#include "lowbit/kernels.h"

namespace lowbit {
namespace avx512_vnni {

constexpr int kMR = 8;   // rows of the register tile / an A panel
constexpr int kNR = 32;  // columns of the tile / a B panel (two zmm of int32)
// k-pairs (128 k-quads): a B micro-panel of kKC pairs, 16 KiB of 8-bit B, stays in L1 (48 KiB
// on Sapphire Rapids and Zen 5, 32 KiB on Zen 4). Measured on Zen 5, 2048^3: 128 pairs 790
// GOPS, 256 875, 512 895 (a 32 KiB panel, which Zen 4's L1 could not hold with A beside it).
constexpr int kKC = 256;
// B in k-quads; A words int8 k-quads against 8-bit and 4-bit B; small-M A panels of m rows
// (quad_sums.h streams B at memory speed).
constexpr GemmGeometry kGemmGeometry{kMR, kNR, 4, 4, 4, kKC, "k4n32", true};

}  // namespace avx512_vnni
}  // namespace lowbit
