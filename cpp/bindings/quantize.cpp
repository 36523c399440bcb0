#include "bindings.h"
#include "lowbit/quantize_ops.h"

namespace lowbit_bindings {
using namespace pybind11::literals;
using lowbit::Layout;

namespace {
// (outer, L, inner, g, so, sg, si), as Python's _checks.Spec.layout produces it.
Layout to_layout(const std::array<int64_t, 7>& t) {
  Layout l;
  l.outer = t[0], l.L = t[1], l.inner = t[2], l.g = t[3], l.so = t[4], l.sg = t[5], l.si = t[6];
  return l;
}
using LayoutT = std::array<int64_t, 7>;
}  // namespace

void register_quantize(py::module_& m) {
  m.def("quantize", [](CArr<float> x, CArr<float> s, CArr<int32_t> zp, LayoutT lay, int32_t qmin,
                       int32_t qmax, bool packed, CArr<uint8_t> out) {
    const float* xp = x.data();
    const float *sp = s.data();
    const int32_t* zpp = zp.data();
    uint8_t* op = out.mutable_data();
    py::gil_scoped_release nogil;
    return lowbit::quantize(xp, to_layout(lay), sp, zpp, qmin, qmax, packed, op);
  }, "x"_a.noconvert(), "s"_a.noconvert(), "zp"_a.noconvert(), "layout"_a, "qmin"_a, "qmax"_a,
     "packed"_a, "out"_a.noconvert());

  m.def("fake_quantize", [](CArr<float> x, CArr<float> s, CArr<int32_t> zp, LayoutT lay,
                            int32_t qmin, int32_t qmax, CArr<float> out) {
    const float* xp = x.data();
    const float* sp = s.data();
    const int32_t* zpp = zp.data();
    float* op = out.mutable_data();
    py::gil_scoped_release nogil;
    return lowbit::fake_quantize(xp, to_layout(lay), sp, zpp, qmin, qmax, op);
  }, "x"_a.noconvert(), "s"_a.noconvert(), "zp"_a.noconvert(), "layout"_a, "qmin"_a, "qmax"_a,
     "out"_a.noconvert());

  m.def("fake_quantize_grad", [](CArr<float> x, CArr<float> g, CArr<float> s, CArr<int32_t> zp,
                                 LayoutT lay, int32_t qmin, int32_t qmax, CArr<float> out) {
    const float* xp = x.data();
    const float* gp = g.data();
    const float* sp = s.data();
    const int32_t* zpp = zp.data();
    float* op = out.mutable_data();
    py::gil_scoped_release nogil;
    return lowbit::fake_quantize_grad(xp, gp, to_layout(lay), sp, zpp, qmin, qmax, op);
  }, "x"_a.noconvert(), "grad"_a.noconvert(), "s"_a.noconvert(), "zp"_a.noconvert(), "layout"_a,
     "qmin"_a, "qmax"_a, "out"_a.noconvert());

  m.def("dequantize", [](CArr<uint8_t> q, int kind, CArr<float> s, CArr<int32_t> zp, LayoutT lay,
                         CArr<float> out) {
    const uint8_t* qp = q.data();
    const float* sp = s.data();
    const int32_t* zpp = zp.data();
    float* op = out.mutable_data();
    py::gil_scoped_release nogil;
    lowbit::dequantize(qp, kind, to_layout(lay), sp, zpp, op);
  }, "q"_a.noconvert(), "kind"_a, "s"_a.noconvert(), "zp"_a.noconvert(), "layout"_a,
     "out"_a.noconvert());

  m.def("minmax", [](CArr<float> x, LayoutT lay, CArr<float> mn, CArr<float> mx) {
    const float* xp = x.data();
    const int64_t nslots = mn.size();
    float* mnp = mn.mutable_data();
    float* mxp = mx.mutable_data();
    py::gil_scoped_release nogil;
    return lowbit::minmax(xp, to_layout(lay), nslots, mnp, mxp);
  }, "x"_a.noconvert(), "layout"_a, "mn"_a.noconvert(), "mx"_a.noconvert());

  m.def("pack_int4", [](CArr<uint8_t> q, int64_t outer, int64_t L, int64_t inner, int32_t bias,
                        CArr<uint8_t> out) {
    const uint8_t* qp = q.data();
    uint8_t* op = out.mutable_data();
    py::gil_scoped_release nogil;
    return lowbit::pack_int4(qp, outer, L, inner, bias, op);
  }, "q"_a.noconvert(), "outer"_a, "L"_a, "inner"_a, "bias"_a, "out"_a.noconvert());

  m.def("unpack_int4", [](CArr<uint8_t> p, int64_t outer, int64_t n, int64_t inner,
                          bool is_signed, CArr<uint8_t> out) {
    const uint8_t* pp = p.data();
    uint8_t* op = out.mutable_data();
    py::gil_scoped_release nogil;
    lowbit::unpack_int4(pp, outer, n, inner, is_signed, op);
  }, "p"_a.noconvert(), "outer"_a, "n"_a, "inner"_a, "signed"_a, "out"_a.noconvert());
}

}  // namespace lowbit_bindings
