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

// The packed B of a PackedMatrix; its sizes are checked against the geometry of its layout.
lowbit::PackedB packed_b(const CArr<uint8_t>& data, const CArr<int32_t>& colsum, int64_t k,
                         int64_t n, int bits, bool is_signed, const std::string& layout) {
  require(bits == 8 || bits == 4, "bits must be 8 or 4");
  require(k >= 0 && n >= 0, "negative shape");
  const lowbit::GemmGeometry* g = lowbit::gemm_geometry_for(layout);
  if (!g)
    throw std::invalid_argument("this PackedMatrix was packed in layout '" + layout +
                                "', which no ISA path of this build uses; pack it again with "
                                "lb.pack_matrix");
  require(data.size() == lowbit::gemm_packed_bytes(*g, k, n, bits), "packed data size");
  require(colsum.size() == lowbit::gemm_colsum_len(*g, n), "column sums size");
  lowbit::PackedB b;
  b.k = k, b.n = n, b.bits = bits;
  b.bias = is_signed ? (bits == 8 ? 128 : 8) : 0;
  b.data = data.data();
  b.colsum = colsum.data();
  b.layout = g->layout;
  return b;
}

py::tuple packed_tuple(lowbit::PackedBData&& p) {
  const auto nc = static_cast<py::ssize_t>(p.colsum.size());
  return py::make_tuple(adopt_packed(std::move(p)), adopt(std::move(p.colsum), {nc}), p.layout);
}
}  // namespace

void register_gemm(py::module_& m) {
  // The active path's GEMM geometry (lowbit/kernels.h, GemmGeometry).
  m.def("gemm_layout", [] { return std::string(lowbit::gemm_geometry().layout); });
  m.def("gemm_geometry", [] {
    const lowbit::GemmGeometry& g = lowbit::gemm_geometry();
    return py::dict("mr"_a = g.mr, "nr"_a = g.nr, "kb"_a = g.kb, "kc"_a = g.kc,
                    "layout"_a = std::string(g.layout));
  });

  // The active ISA's multiply-add throughput loop: iters rounds of 384 integer ops.
  m.def("gemm_peak", [](int64_t iters) {
    py::gil_scoped_release nogil;
    return lowbit::gemm_peak(iters);
  }, "iters"_a);

  // b: (k, n) int8/uint8 viewed as uint8. Returns (data, colsum, layout), packed for the active
  // path.
  m.def("gemm_pack_b8", [](CArr<uint8_t> b, bool is_signed) {
    require(b.ndim() == 2, "b must be 2-D");
    const int64_t k = b.shape(0), n = b.shape(1);
    const uint8_t* bp = b.data();
    lowbit::PackedBData p;
    {
      py::gil_scoped_release nogil;
      p = lowbit::gemm_pack_b8(bp, k, n, n, is_signed);
    }
    return packed_tuple(std::move(p));
  }, "b"_a.noconvert(), "is_signed"_a);

  // w: (n, k) int8/uint8 viewed as uint8, the transpose of B (k, n): the (out, in) weight of
  // B = W.T. Returns (data, colsum, layout), byte for byte gemm_pack_b8 of B.
  m.def("gemm_pack_b8_rows", [](CArr<uint8_t> w, bool is_signed) {
    require(w.ndim() == 2, "w must be 2-D");
    const int64_t n = w.shape(0), k = w.shape(1);
    const uint8_t* wp = w.data();
    lowbit::PackedBData p;
    {
      py::gil_scoped_release nogil;
      p = lowbit::gemm_pack_b8_rows(wp, k, n, k, is_signed);
    }
    return packed_tuple(std::move(p));
  }, "w"_a.noconvert(), "is_signed"_a);

  // w: (n, ceil(k/2)) nibbles, row j = column j of B packed along k. Returns (data, colsum,
  // layout), byte for byte gemm_pack_b4 of B's (ceil(k/2), n) nibbles.
  m.def("gemm_pack_b4_rows", [](CArr<uint8_t> w, int64_t k, bool is_signed) {
    require(w.ndim() == 2 && w.shape(1) == (k + 1) / 2, "w must be (n, ceil(k/2))");
    const int64_t n = w.shape(0);
    const uint8_t* wp = w.data();
    lowbit::PackedBData p;
    {
      py::gil_scoped_release nogil;
      p = lowbit::gemm_pack_b4_rows(wp, k, n, w.shape(1), is_signed);
    }
    return packed_tuple(std::move(p));
  }, "w"_a.noconvert(), "k"_a, "is_signed"_a);

  // src: (rows, cols) bytes; returns the (cols, rows) C-order transpose.
  m.def("transpose_u8", [](CArr<uint8_t> src) {
    require(src.ndim() == 2, "src must be 2-D");
    const int64_t rows = src.shape(0), cols = src.shape(1);
    py::array_t<uint8_t> out({static_cast<py::ssize_t>(cols), static_cast<py::ssize_t>(rows)});
    const uint8_t* sp = src.data();
    uint8_t* op = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      lowbit::transpose_bytes(sp, rows, cols, cols, op);
    }
    return out;
  }, "src"_a.noconvert());

  // bp: (ceil(k/2), n) nibbles packed along k. Returns (data, colsum, layout).
  m.def("gemm_pack_b4", [](CArr<uint8_t> bp, int64_t k, bool is_signed) {
    require(bp.ndim() == 2 && bp.shape(0) == (k + 1) / 2, "b_packed must be (ceil(k/2), n)");
    const int64_t n = bp.shape(1);
    const uint8_t* src = bp.data();
    lowbit::PackedBData p;
    {
      py::gil_scoped_release nogil;
      p = lowbit::gemm_pack_b4(src, k, n, n, is_signed);
    }
    return packed_tuple(std::move(p));
  }, "bp"_a.noconvert(), "k"_a, "is_signed"_a);

  // The (k, n) values of a packed B (int8 values as uint8 bytes), decoded from its layout.
  m.def("gemm_unpack_b", [](CArr<uint8_t> data, CArr<int32_t> colsum, int64_t k, int64_t n,
                            int bits, bool is_signed, const std::string& layout) {
    const lowbit::PackedB b = packed_b(data, colsum, k, n, bits, is_signed, layout);
    py::array_t<uint8_t> out({static_cast<py::ssize_t>(k), static_cast<py::ssize_t>(n)});
    uint8_t* op = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      lowbit::gemm_unpack_b(b, op);
    }
    return out;
  }, "data"_a.noconvert(), "colsum"_a.noconvert(), "k"_a, "n"_a, "bits"_a, "is_signed"_a,
     "layout"_a);

  // A packed B in `layout` packed again for the active path: (data, colsum, layout).
  m.def("gemm_repack", [](CArr<uint8_t> data, CArr<int32_t> colsum, int64_t k, int64_t n,
                          int bits, bool is_signed, const std::string& layout) {
    const lowbit::PackedB b = packed_b(data, colsum, k, n, bits, is_signed, layout);
    lowbit::PackedBData p;
    {
      py::gil_scoped_release nogil;
      p = lowbit::gemm_repack(b);
    }
    return packed_tuple(std::move(p));
  }, "data"_a.noconvert(), "colsum"_a.noconvert(), "k"_a, "n"_a, "bits"_a, "is_signed"_a,
     "layout"_a);

  // a: (m, k) int8/uint8 viewed as uint8; za: (1,) or (m,); zb: (1,) or (n,); out: (m, n).
  // layout: the PackedMatrix's (a ValueError, out untouched, unless the active path uses it).
  // tiles=True runs the fused-epilogue driver (gemm_s32_tiles) with an epilogue that copies
  // each tile into out: the tests check that hook against the direct path.
  m.def("gemm_s32", [](CArr<uint8_t> a, bool a_signed, CArr<uint8_t> data, CArr<int32_t> colsum,
                       int64_t k, int64_t n, int bits, bool b_signed, const std::string& layout,
                       CArr<int32_t> za, CArr<int32_t> zb, CArr<int32_t> out, bool tiles) {
    require(a.ndim() == 2 && a.shape(1) == k, "a must be (m, k)");
    const int64_t mm = a.shape(0);
    require(out.ndim() == 2 && out.shape(0) == mm && out.shape(1) == n, "out must be (m, n)");
    require(za.size() == 1 || za.size() == mm, "a_zero_point size");
    require(zb.size() == 1 || zb.size() == n, "b_zero_point size");
    const lowbit::PackedB b = packed_b(data, colsum, k, n, bits, b_signed, layout);
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
     "n"_a, "bits"_a, "b_signed"_a, "layout"_a, "za"_a.noconvert(), "zb"_a.noconvert(),
     "out"_a.noconvert(), "tiles"_a = false);
}

}  // namespace lowbit_bindings
