// pybind11 glue for the integer GEMM (lowbit/gemm.h). Python (src/lowbit/_gemm.py) validates,
// makes inputs C-contiguous (signed data viewed as uint8) and allocates every output; the
// checks here only guard the C++ side against a mismatched call.
#include <stdexcept>

#include "bindings.h"
#include "lowbit/gemm.h"

namespace lowbit_bindings {
using namespace pybind11::literals;

namespace {
void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("lowbit._core gemm: ") + what);
}

lowbit::PackedB packed_b(const CArr<uint8_t>& data, const CArr<int32_t>& colsum, int64_t k,
                         int64_t n, int bits, bool is_signed) {
  require(bits == 8 || bits == 4, "bits must be 8 or 4");
  require(k >= 0 && n >= 0, "negative shape");
  require(data.size() == lowbit::gemm_packed_bytes(k, n, bits), "packed data size");
  require(colsum.size() == lowbit::gemm_colsum_len(n), "column sums size");
  lowbit::PackedB b;
  b.k = k, b.n = n, b.bits = bits;
  b.bias = is_signed ? (bits == 8 ? 128 : 8) : 0;
  b.data = data.data();
  b.colsum = colsum.data();
  return b;
}
}  // namespace

void register_gemm(py::module_& m) {
  m.def("gemm_layout", [] { return std::string(lowbit::kGemmLayout); });
  m.def("gemm_packed_bytes", &lowbit::gemm_packed_bytes, "k"_a, "n"_a, "bits"_a);
  m.def("gemm_colsum_len", &lowbit::gemm_colsum_len, "n"_a);

  // The active ISA's multiply-add throughput loop: iters rounds of 384 integer ops.
  m.def("gemm_peak", [](int64_t iters) {
    py::gil_scoped_release nogil;
    return lowbit::gemm_peak(iters);
  }, "iters"_a);

  // b: (k, n) int8/uint8 viewed as uint8.
  m.def("gemm_pack_b8", [](CArr<uint8_t> b, bool is_signed, CArr<uint8_t> data,
                           CArr<int32_t> colsum) {
    require(b.ndim() == 2, "b must be 2-D");
    const int64_t k = b.shape(0), n = b.shape(1);
    require(data.size() == lowbit::gemm_packed_bytes(k, n, 8), "packed data size");
    require(colsum.size() == lowbit::gemm_colsum_len(n), "column sums size");
    const uint8_t* bp = b.data();
    uint8_t* dp = data.mutable_data();
    int32_t* cp = colsum.mutable_data();
    py::gil_scoped_release nogil;
    lowbit::gemm_pack_b8(bp, k, n, n, is_signed, dp, cp);
  }, "b"_a.noconvert(), "is_signed"_a, "data"_a.noconvert(), "colsum"_a.noconvert());

  // bp: (ceil(k/2), n) nibbles packed along k.
  m.def("gemm_pack_b4", [](CArr<uint8_t> bp, int64_t k, bool is_signed, CArr<uint8_t> data,
                           CArr<int32_t> colsum) {
    require(bp.ndim() == 2 && bp.shape(0) == (k + 1) / 2, "b_packed must be (ceil(k/2), n)");
    const int64_t n = bp.shape(1);
    require(data.size() == lowbit::gemm_packed_bytes(k, n, 4), "packed data size");
    require(colsum.size() == lowbit::gemm_colsum_len(n), "column sums size");
    const uint8_t* src = bp.data();
    uint8_t* dp = data.mutable_data();
    int32_t* cp = colsum.mutable_data();
    py::gil_scoped_release nogil;
    lowbit::gemm_pack_b4(src, k, n, n, is_signed, dp, cp);
  }, "bp"_a.noconvert(), "k"_a, "is_signed"_a, "data"_a.noconvert(), "colsum"_a.noconvert());

  // a: (m, k) int8/uint8 viewed as uint8; za: (1,) or (m,); zb: (1,) or (n,); out: (m, n).
  // tiles=True runs the fused-epilogue driver (gemm_s32_tiles) with an epilogue that copies
  // each tile into out: the tests check that hook against the direct path.
  m.def("gemm_s32", [](CArr<uint8_t> a, bool a_signed, CArr<uint8_t> data, CArr<int32_t> colsum,
                       int64_t k, int64_t n, int bits, bool b_signed, CArr<int32_t> za,
                       CArr<int32_t> zb, CArr<int32_t> out, bool tiles) {
    require(a.ndim() == 2 && a.shape(1) == k, "a must be (m, k)");
    const int64_t mm = a.shape(0);
    require(out.ndim() == 2 && out.shape(0) == mm && out.shape(1) == n, "out must be (m, n)");
    require(za.size() == 1 || za.size() == mm, "a_zero_point size");
    require(zb.size() == 1 || zb.size() == n, "b_zero_point size");
    const lowbit::PackedB b = packed_b(data, colsum, k, n, bits, b_signed);
    lowbit::GemmA ga;
    ga.data = a.data(), ga.m = mm, ga.k = k, ga.lda = k, ga.is_signed = a_signed;
    lowbit::GemmZeroPoints zp;
    zp.a = za.data(), zp.a_stride = za.size() == 1 ? 0 : 1;
    zp.b = zb.data(), zp.b_stride = zb.size() == 1 ? 0 : 1;
    int32_t* op = out.mutable_data();
    py::gil_scoped_release nogil;
    if (!tiles) {
      lowbit::gemm_s32(ga, b, zp, op, n);
      return;
    }
    lowbit::gemm_s32_tiles(ga, b, zp, [op, n](int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                                              const int32_t* t, int64_t ld) {
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) op[i * n + j] = t[(i - i0) * ld + (j - j0)];
    });
  }, "a"_a.noconvert(), "a_signed"_a, "data"_a.noconvert(), "colsum"_a.noconvert(), "k"_a,
     "n"_a, "bits"_a, "b_signed"_a, "za"_a.noconvert(), "zb"_a.noconvert(),
     "out"_a.noconvert(), "tiles"_a = false);
}

}  // namespace lowbit_bindings
