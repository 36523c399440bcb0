// The NEON path through the real runtime (CPU detection, dispatch tables, thread pool, segment
// drivers of cpp/runtime/quantize_ops.cpp) against the scalar path, bit for bit, for arrays big
// enough to be split over threads and for every granularity. Built for aarch64 with all of
// cpp/runtime and cpp/kernels/{scalar,neon} (the neon path compiled in), run under qemu-aarch64 by
// .ci/neon.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "lowbit/quantize_ops.h"
#include "lowbit/runtime.h"

namespace {

uint64_t g_state = 0x2545F4914F6CDD1Dull;
uint64_t next() {
  g_state ^= g_state >> 12;
  g_state ^= g_state << 25;
  g_state ^= g_state >> 27;
  return g_state * 2685821657736338717ull;
}
double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }

int g_failures = 0, g_checks = 0;

template <class T>
void same(const std::vector<T>& a, const std::vector<T>& b, const std::string& what) {
  ++g_checks;
  if (a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0) return;
  ++g_failures;
  std::printf("MISMATCH %s\n", what.c_str());
}

// Runs f() once on each path and compares what it returns.
template <class F>
void both(const std::string& what, F&& f) {
  lowbit::set_isa("scalar");
  const auto a = f();
  lowbit::set_isa("neon");
  const auto b = f();
  same(a, b, what);
}

}  // namespace

int main() {
  bool has_neon = false;
  for (lowbit::Isa isa : lowbit::available_isas()) has_neon |= isa == lowbit::Isa::neon;
  if (!has_neon) {
    std::printf("FAIL: 'neon' is not among the available paths\n");
    return 1;
  }
  lowbit::set_num_threads(3);
  // (outer, L, inner) with 300k+ elements: the drivers split them into several tasks.
  const int64_t outer = 7, L = 301, inner = 149, n = outer * L * inner;
  std::vector<float> x(static_cast<size_t>(n)), g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    x[size_t(i)] = float((uniform() - 0.5) * 300);
    g[size_t(i)] = float(uniform());
  }
  x[5] = INFINITY, x[77] = -INFINITY, x[1000] = -0.0f, x[size_t(n - 1)] = 1e-42f;
  std::vector<uint8_t> bytes(static_cast<size_t>(n));
  for (auto& b : bytes) b = uint8_t(next());

  struct Gran {
    const char* name;
    lowbit::Layout lay;
    int64_t slots;
  };
  const int64_t groups = (L + 15) / 16;
  std::vector<Gran> grans = {
      {"per-tensor", {1, n, 1, n, 0, 0, 0}, 1},
      {"per-axis inner", {outer, L, inner, 1, 0, 1, 0}, L},
      {"per-axis last", {outer * L, inner, 1, 1, 0, 1, 0}, inner},
      {"per-group", {outer, L, inner, 16, groups * inner, inner, 1}, outer * groups * inner},
  };
  for (const Gran& gr : grans) {
    std::vector<float> s(static_cast<size_t>(gr.slots));
    std::vector<int32_t> zp(static_cast<size_t>(gr.slots));
    for (int64_t i = 0; i < gr.slots; ++i) {
      s[size_t(i)] = float(std::ldexp(1.0, int(next() % 8) - 4) * (next() % 2 ? 1.0 : 0.75));
      zp[size_t(i)] = int32_t(next() % 16);
    }
    const std::string name = gr.name;
    both(name + " quantize uint8", [&] {
      std::vector<uint8_t> out(static_cast<size_t>(n));
      lowbit::quantize(x.data(), gr.lay, s.data(), zp.data(), 0, 255, false, out.data());
      return out;
    });
    both(name + " fake_quantize int4", [&] {
      std::vector<float> out(static_cast<size_t>(n));
      std::vector<int32_t> z4(zp.size());
      for (size_t i = 0; i < zp.size(); ++i) z4[i] = zp[i] - 8;
      lowbit::fake_quantize(x.data(), gr.lay, s.data(), z4.data(), -8, 7, out.data());
      return out;
    });
    both(name + " fake_quantize_grad uint4", [&] {
      std::vector<float> out(static_cast<size_t>(n));
      lowbit::fake_quantize_grad(x.data(), g.data(), gr.lay, s.data(), zp.data(), 0, 15,
                                 out.data());
      return out;
    });
    both(name + " dequantize int8", [&] {
      std::vector<float> out(static_cast<size_t>(n));
      std::vector<int32_t> z8(zp.size());
      for (size_t i = 0; i < zp.size(); ++i) z8[i] = zp[i] * 9 - 70;
      lowbit::dequantize(bytes.data(), 0, gr.lay, s.data(), z8.data(), out.data());
      return out;
    });
    both(name + " minmax", [&] {
      std::vector<float> mn(size_t(gr.slots), INFINITY), mx(size_t(gr.slots), -INFINITY);
      lowbit::minmax(x.data(), gr.lay, gr.slots, mn.data(), mx.data());
      mn.insert(mn.end(), mx.begin(), mx.end());
      return mn;
    });
  }
  // Packed 4-bit along the last axis (rows of odd length: a pad nibble each).
  const lowbit::Layout rows{outer * L, inner, 1, inner, 0, 0, 0};
  const int64_t hb = (inner + 1) / 2;
  const float s1 = 0.5f;
  const int32_t z1 = 3;
  both("quantize packed uint4", [&] {
    std::vector<uint8_t> out(static_cast<size_t>(outer * L * hb));
    lowbit::quantize(x.data(), rows, &s1, &z1, 0, 15, true, out.data());
    return out;
  });
  both("dequantize packed int4", [&] {
    std::vector<float> out(static_cast<size_t>(n));
    const int32_t zm = -2;
    lowbit::dequantize(bytes.data(), 2, rows, &s1, &zm, out.data());
    return out;
  });
  std::vector<uint8_t> q4(static_cast<size_t>(n));
  for (auto& v : q4) v = uint8_t(int(next() % 16) - 8);
  for (int64_t in : {int64_t{1}, inner}) {  // along the last axis, and along axis 1 of (7, 301, 149)
    const int64_t ll = in == 1 ? n / 7 : L, oo = in == 1 ? 7 : outer;
    both("pack_int4 inner=" + std::to_string(in), [&] {
      std::vector<uint8_t> out(static_cast<size_t>(oo * ((ll + 1) / 2) * in));
      lowbit::pack_int4(q4.data(), oo, ll, in, 8, out.data());
      return out;
    });
    both("unpack_int4 inner=" + std::to_string(in), [&] {
      std::vector<uint8_t> out(static_cast<size_t>(oo * ll * in));
      lowbit::unpack_int4(bytes.data(), oo, ll, in, true, out.data());
      return out;
    });
  }
  std::printf("neon runtime vs scalar runtime: %d comparisons, %d mismatches\n", g_checks,
              g_failures);
  return g_failures ? 1 : 0;
}
