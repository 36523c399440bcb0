// pybind11 glue for lb.linear (lowbit/linear.h). Python (src/lowbit/_linear.py) validates the
// arguments, packs and caches the weights, makes x C-contiguous float32 and allocates y; the
// checks here only guard the C++ side against a mismatched call.
#include <array>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "lowbit/linear.h"

namespace lowbit_bindings {
using namespace pybind11::literals;

namespace {
void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("lowbit._core linear: ") + what);
}
// (kpad, n, bits, k, g, gpad, ngroups, grouped, zb_uniform) of the packed weight.
using GeometryT = std::array<int64_t, 9>;
}  // namespace

void register_linear(py::module_& m) {
  // w: (n, k) int8/uint8 viewed as uint8 (bits 8) or (n, ceil(k/2)) nibbles packed along k
  // (bits 4); scale: (n, ngroups) float32, zp: (n, ngroups) int32. Packs for the active path:
  // returns (data, colsum, layout, geometry, ws, zb, cs) with geometry the tuple linear_f32
  // takes and ws / zb / cs of shape (ceil(n/NR), ngroups, NR).
  m.def("linear_pack", [](CArr<uint8_t> w, int64_t k, int bits, bool is_signed, bool grouped,
                          int64_t g, CArr<float> scale, CArr<int32_t> zp) {
    require(bits == 8 || bits == 4, "bits must be 8 or 4");
    require(w.ndim() == 2 && k >= 1 && w.shape(1) == (bits == 8 ? k : (k + 1) / 2),
            "w must be (n, k) or (n, ceil(k/2)) for 4-bit");
    require(!grouped || g >= 1, "group size");
    const int64_t n = w.shape(0), ngroups = grouped ? (k + g - 1) / g : 1;
    require(scale.ndim() == 2 && scale.shape(0) == n && scale.shape(1) == ngroups,
            "scale must be (n, ngroups)");
    require(zp.ndim() == 2 && zp.shape(0) == n && zp.shape(1) == ngroups,
            "zp must be (n, ngroups)");
    const uint8_t* wp = w.data();
    const float* sp = scale.data();
    const int32_t* zpp = zp.data();
    lowbit::LinearPacked p;
    {
      py::gil_scoped_release nogil;
      p = lowbit::linear_pack(wp, n, k, w.shape(1), bits, is_signed, grouped, g, sp, zpp);
    }
    const GeometryT geo{p.kpad, p.n, p.bits, p.k, p.g, p.gpad, p.ngroups, p.grouped ? 1 : 0,
                        p.zb_uniform ? 1 : 0};
    const std::vector<py::ssize_t> tshape{(p.n + p.nr - 1) / p.nr, p.ngroups, p.nr};
    const auto nc = static_cast<py::ssize_t>(p.b.colsum.size());
    return py::make_tuple(adopt_packed(std::move(p.b)), adopt(std::move(p.b.colsum), {nc}),
                          p.b.layout, geo, adopt(std::move(p.ws), tshape),
                          adopt(std::move(p.zb), tshape), adopt(std::move(p.cs), tshape));
  }, "w"_a.noconvert(), "k"_a, "bits"_a, "is_signed"_a, "grouped"_a, "g"_a,
     "scale"_a.noconvert(), "zp"_a.noconvert());

  // x: (m, k) float32; data: the packed B of the (kpad, n) weight in `layout` (the active
  // path's, else ValueError); ws / zb / cs: (ceil(n/NR), ngroups, NR);
  // bias: (n,) if has_bias; act: 0 weight-only, 1 int8, 2 uint8; out: (m, n) float32.
  // Returns the status bits of lowbit::linear_f32 (0: done).
  m.def("linear_f32", [](CArr<float> x, CArr<uint8_t> data, const std::string& layout,
                         GeometryT geo, CArr<float> ws,
                         CArr<int32_t> zb, CArr<int32_t> cs, bool has_bias, CArr<float> bias,
                         int act, bool is_static, float scale, int32_t zero_point,
                         CArr<float> out) {
    lowbit::LinearWeights w;
    w.b.k = geo[0], w.b.n = geo[1], w.b.bits = static_cast<int>(geo[2]);
    w.k = geo[3], w.g = geo[4], w.gpad = geo[5], w.ngroups = geo[6], w.grouped = geo[7] != 0;
    w.zb_uniform = geo[8] != 0;
    require(w.b.bits == 8 || w.b.bits == 4, "bits must be 8 or 4");
    require(x.ndim() == 2 && x.shape(1) == w.k, "x must be (m, k)");
    const lowbit::GemmGeometry* g = lowbit::gemm_geometry_for(layout);
    if (!g)
      throw std::invalid_argument("the packed weight's layout '" + layout +
                                  "' is used by no ISA path of this build");
    const int64_t nr = g->nr;
    require(data.size() == lowbit::gemm_packed_bytes(*g, w.b.k, w.b.n, w.b.bits),
            "packed data size");
    require(w.ngroups >= 1 && w.g >= 1 && w.gpad >= 1, "groups");
    require(ws.ndim() == 3 && ws.shape(0) == (w.b.n + nr - 1) / nr && ws.shape(1) == w.ngroups &&
            ws.shape(2) == nr, "ws must be (ceil(n/NR), ngroups, NR)");
    require(zb.size() == ws.size() && cs.size() == ws.size(), "zb / cs must be shaped like ws");
    require(!has_bias || bias.size() == w.b.n, "bias must be (n,)");
    require(act >= 0 && act <= 2, "act");
    const int64_t mm = x.shape(0);
    require(out.ndim() == 2 && out.shape(0) == mm && out.shape(1) == w.b.n, "out must be (m, n)");
    w.b.data = data.data();
    w.b.layout = g->layout;
    w.ws = ws.data(), w.zb = zb.data(), w.cs = cs.data();
    lowbit::LinearInput in;
    in.x = x.data(), in.m = mm, in.ldx = w.k;
    in.act = act == 0 ? lowbit::LinearAct::kNone
                      : (act == 1 ? lowbit::LinearAct::kInt8 : lowbit::LinearAct::kUint8);
    in.is_static = is_static, in.scale = scale, in.zero_point = zero_point;
    in.bias = has_bias ? bias.data() : nullptr;
    float* op = out.mutable_data();
    py::gil_scoped_release nogil;
    return lowbit::linear_f32(in, w, op, w.b.n);
  }, "x"_a.noconvert(), "data"_a.noconvert(), "layout"_a, "geometry"_a, "ws"_a.noconvert(),
     "zb"_a.noconvert(), "cs"_a.noconvert(), "has_bias"_a, "bias"_a.noconvert(), "act"_a,
     "is_static"_a, "scale"_a, "zero_point"_a, "out"_a.noconvert());
}

}  // namespace lowbit_bindings
