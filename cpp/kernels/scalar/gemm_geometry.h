// The geometry of the scalar GEMM and linear kernels (lowbit/kernels.h, GemmGeometry): their register
// tile, B panel layout and K block. fill_gemm() puts it into the table beside the kernels; the
// drivers read it from there, so only this folder knows these numbers.
#pragma once
#include "lowbit/kernels.h"

namespace lowbit {
namespace scalar {

constexpr int kMR = 6;   // rows of the register tile / an A panel
constexpr int kNR = 16;  // columns of the tile / a B panel
// k-pairs; a B micro-panel of kKC pairs (8 KiB of 8-bit B, or of 4-bit B decoded to quads) stays
// in L1 while it meets every A panel of an output tile.
constexpr int kKC = 256;
// B in k-pairs; A words int16 k-pairs against 8-bit B and in the small-M 4-bit kernel.
constexpr GemmGeometry kGemmGeometry{kMR, kNR, 2, 2, 2, kKC, "k2n16"};

}  // namespace scalar
}  // namespace lowbit
