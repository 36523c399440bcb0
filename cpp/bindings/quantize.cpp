#include "bindings.h"
#include "lowbit/quantize_ops.h"

#include <optional>

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

// (kind, mbits, bias, sign_bit, nthr, thr_stride, ntable, table_stride) and maxval, as
// Python's _formats_api.Format.spec() produces them; thr and table are read-only arrays that
// outlive the call.
using FormatT = std::array<int64_t, 8>;
lowbit::FormatSpec to_format(const FormatT& t, float maxval, const CArr<float>& thr,
                             const CArr<float>& table) {
  lowbit::FormatSpec f;
  f.kind = static_cast<int>(t[0]), f.mbits = static_cast<int>(t[1]);
  f.bias = static_cast<int>(t[2]), f.sign_bit = static_cast<int>(t[3]);
  f.nthr = static_cast<int>(t[4]), f.thr_stride = t[5];
  f.ntable = static_cast<int>(t[6]), f.table_stride = t[7];
  f.maxval = maxval;
  f.thr = thr.size() ? thr.data() : nullptr;
  f.table = table.data();
  if (!(f.ntable == 16 || f.ntable == 256) || table.size() < f.ntable)
    throw std::invalid_argument("format table: 16 or 256 entries");
  if (f.kind == 1 && (f.nthr < 1 || f.nthr > 255 || thr.size() < f.nthr))
    throw std::invalid_argument("format thresholds: 1 to 255");
  if (f.kind != 0 && f.kind != 1) throw std::invalid_argument("format kind");
  return f;
}
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

  m.def("encode", [](CArr<float> x, CArr<float> s, LayoutT lay, FormatT fmt, float maxval,
                     CArr<float> thr, CArr<float> table, bool packed, CArr<uint8_t> out) {
    const lowbit::FormatSpec f = to_format(fmt, maxval, thr, table);
    const float* xp = x.data();
    const float* sp = s.data();
    uint8_t* op = out.mutable_data();
    py::gil_scoped_release nogil;
    return lowbit::encode(xp, to_layout(lay), sp, f, packed, op);
  }, "x"_a.noconvert(), "s"_a.noconvert(), "layout"_a, "fmt"_a, "maxval"_a, "thr"_a.noconvert(),
     "table"_a.noconvert(), "packed"_a, "out"_a.noconvert());

  m.def("decode", [](CArr<uint8_t> c, CArr<float> s, LayoutT lay, FormatT fmt, float maxval,
                     CArr<float> thr, CArr<float> table, bool packed, CArr<float> out) {
    const lowbit::FormatSpec f = to_format(fmt, maxval, thr, table);
    const uint8_t* cp = c.data();
    const float* sp = s.data();
    float* op = out.mutable_data();
    py::gil_scoped_release nogil;
    lowbit::decode(cp, to_layout(lay), sp, f, packed, op);
  }, "c"_a.noconvert(), "s"_a.noconvert(), "layout"_a, "fmt"_a, "maxval"_a, "thr"_a.noconvert(),
     "table"_a.noconvert(), "packed"_a, "out"_a.noconvert());

  // y (m, rows) = x (m, k) @ W.T for W rows of codes (lowbit::GemvArgs); s (rows, s_stride)
  m.def("gemv", [](CArr<float> x, CArr<uint8_t> w, int code_bits, CArr<float> s,
                   int64_t s_stride, int64_t g, FormatT fmt, float maxval, CArr<float> thr,
                   CArr<float> table, std::optional<CArr<float>> bias, CArr<float> y) {
    if (x.ndim() != 2 || w.ndim() != 2 || y.ndim() != 2) throw std::invalid_argument("gemv: 2-D");
    lowbit::GemvArgs a;
    a.f = to_format(fmt, maxval, thr, table);
    a.m = static_cast<int>(x.shape(0));
    a.k = x.shape(1);
    a.ldx = a.k;
    a.rows = w.shape(0);
    a.ldw = w.shape(1);
    a.code_bits = code_bits;
    if ((code_bits != 4 && code_bits != 8) || a.ldw < (code_bits == 4 ? (a.k + 1) / 2 : a.k) ||
        y.shape(0) != a.m || y.shape(1) != a.rows || g <= 0 ||
        s.size() < (a.rows - 1) * s_stride + (a.k + g - 1) / std::max<int64_t>(g, 1) ||
        (bias && bias->size() < a.rows))
      throw std::invalid_argument("gemv: shapes");
    a.x = x.data();
    a.w = w.data();
    a.s = s.data();
    a.s_stride = s_stride;
    a.g = g;
    a.bias = bias ? bias->data() : nullptr;
    a.y = y.mutable_data();
    a.ldy = a.rows;
    py::gil_scoped_release nogil;
    lowbit::gemv(a);
  }, "x"_a.noconvert(), "w"_a.noconvert(), "code_bits"_a, "s"_a.noconvert(), "s_stride"_a,
     "g"_a, "fmt"_a, "maxval"_a, "thr"_a.noconvert(), "table"_a.noconvert(), "bias"_a.none(true),
     "y"_a.noconvert());

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
