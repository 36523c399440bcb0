// Differential test of the NEON quantization kernels against the scalar ones, bit for bit.
// Built for aarch64 and run under qemu-aarch64 by .ci/neon (or natively on an aarch64 machine):
//
//   aarch64-linux-gnu-g++ -std=c++17 -O2 -ffp-contract=off -static -Icpp/include
//       cpp/kernels/scalar/quantize.cpp cpp/kernels/neon/quantize.cpp
//       tests/neon/test_neon_quantize.cpp -o test_neon_quantize
//
// Every kernel slot of the quantize family runs on both tables with the same inputs: lengths
// 0..300 and a few long ones, both scale strides, every quantized range, scales that make exact
// ties, subnormal and huge scales, and data with +-inf, +-0, subnormals and NaN. Results and
// flags must agree (outputs are compared only where the contract defines them: not after a NaN
// or an out-of-range 4-bit value). A second pass puts every buffer flush against a PROT_NONE
// page (before and after) for lengths 1..256, so any access past an end faults.
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "lowbit/kernels.h"

namespace {

using lowbit::KernelTable;

uint64_t g_state = 0x9E3779B97F4A7C15ull;
uint64_t next() {  // xorshift64*
  g_state ^= g_state >> 12;
  g_state ^= g_state << 25;
  g_state ^= g_state >> 27;
  return g_state * 2685821657736338717ull;
}
int64_t rand_int(int64_t lo, int64_t hi) { return lo + int64_t(next() % uint64_t(hi - lo + 1)); }
double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
float bits_to_float(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

int g_failures = 0;
long g_checks = 0;

template <class T>
bool same(const char* what, const T* a, const T* b, int64_t n, const char* ctx) {
  ++g_checks;
  if (n <= 0 || std::memcmp(a, b, size_t(n) * sizeof(T)) == 0) return true;
  const uint8_t* pa = reinterpret_cast<const uint8_t*>(a);
  const uint8_t* pb = reinterpret_cast<const uint8_t*>(b);
  size_t i = 0;
  while (pa[i] == pb[i]) ++i;
  if (++g_failures <= 20)
    std::printf("MISMATCH %s (%s): byte %zu (element %zu) scalar 0x%02x neon 0x%02x\n", what, ctx,
                i, i / sizeof(T), pa[i], pb[i]);
  return false;
}

void same_flag(const char* what, bool a, bool b, const char* ctx) {
  ++g_checks;
  if (a != b && ++g_failures <= 20)
    std::printf("MISMATCH %s (%s): flag scalar %d neon %d\n", what, ctx, int(a), int(b));
}

struct Range {
  int32_t qmin, qmax;
};
const Range kRanges[] = {{-128, 127}, {0, 255}, {-8, 7}, {0, 15}};

float rand_scale() {
  switch (rand_int(0, 4)) {
    case 0: return std::ldexp(1.0f, int(rand_int(-20, 8)));                   // exact ties
    case 1: return float(0.75 + uniform()) * std::ldexp(1.0f, int(rand_int(-12, 3)));
    case 2: return bits_to_float(uint32_t(rand_int(1, 0x007FFFFF)));          // subnormal
    case 3: return float(1e30 + uniform() * 3e38);
    default: return float(0.001 + 10 * uniform());
  }
}

float rand_x(float s, int32_t z, const Range& r) {
  switch (rand_int(0, 9)) {
    case 0: {
      const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1e-45f, -1e-45f, 1e-40f, 3.4e38f,
                          -3.4e38f, 0.5f, -0.5f, 1.5f, -2.5f};
      return sp[rand_int(0, 12)];
    }
    case 1: case 2: case 3:  // an exact tie k + 0.5 steps (when the scale allows)
      return (float(rand_int(r.qmin - 4, r.qmax + 4) - z) + 0.5f) * s;
    case 4: return bits_to_float(uint32_t(next()) & 0x807FFFFFu);             // subnormal
    default: return float((uniform() * (r.qmax - r.qmin + 8) + r.qmin - 4 - z) * s);
  }
}

struct Case {
  std::vector<float> x, g, s;
  std::vector<int32_t> zp;
  Range r;
  bool nan = false;
};

// Data for n elements; scales and zero points per element (ss == 1) or one (ss == 0).
Case make_case(int64_t n, int64_t ss, const Range& r, bool with_nan) {
  Case c;
  c.r = r;
  const int64_t ns = ss ? std::max<int64_t>(n, 1) : 1;
  c.s.resize(size_t(ns));
  c.zp.resize(size_t(ns));
  for (int64_t i = 0; i < ns; ++i) {
    c.s[size_t(i)] = rand_scale();
    c.zp[size_t(i)] = int32_t(rand_int(r.qmin, r.qmax));
  }
  c.x.resize(size_t(n));
  c.g.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    c.x[size_t(i)] = rand_x(c.s[size_t(i * ss)], c.zp[size_t(i * ss)], r);
    c.g[size_t(i)] = float(uniform() * 2 - 1);
  }
  if (with_nan && n > 0) {
    c.x[size_t(rand_int(0, n - 1))] = bits_to_float(0x7FC00000u | uint32_t(rand_int(0, 255)));
    c.nan = true;
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// One comparison of every kernel on given buffers. Output buffers are provided by the caller so
// the guard-page pass can place them against inaccessible pages.

struct Buffers {
  const float *x, *g, *s;
  const int32_t* zp;
  const uint8_t *q, *p, *hi;   // bytes: q (n), p (ceil(n/2)), hi (n) for the vertical kernels
  uint8_t *o8a, *o8b;          // n bytes each
  float *ofa, *ofb;            // n floats each
};

void compare_all(const KernelTable& ts, const KernelTable& tn, const Buffers& b, int64_t n,
                 int64_t ss, const Range& r, bool nan, const char* ctx) {
  const int64_t nh = (n + 1) / 2;
  bool fa, fb;
  // quantize, unpacked
  fa = ts.quantize_f32_q8(b.x, n, b.s, b.zp, ss, r.qmin, r.qmax, b.o8a);
  fb = tn.quantize_f32_q8(b.x, n, b.s, b.zp, ss, r.qmin, r.qmax, b.o8b);
  same_flag("quantize_f32_q8", fa, fb, ctx);
  if (!nan) same("quantize_f32_q8", b.o8a, b.o8b, n, ctx);
  if (r.qmax <= 15) {
    fa = ts.quantize_f32_q4p(b.x, n, b.s, b.zp, ss, r.qmin, r.qmax, b.o8a);
    fb = tn.quantize_f32_q4p(b.x, n, b.s, b.zp, ss, r.qmin, r.qmax, b.o8b);
    same_flag("quantize_f32_q4p", fa, fb, ctx);
    if (!nan) same("quantize_f32_q4p", b.o8a, b.o8b, nh, ctx);
  }
  fa = ts.fake_quantize_f32(b.x, n, b.s, b.zp, ss, r.qmin, r.qmax, b.ofa);
  fb = tn.fake_quantize_f32(b.x, n, b.s, b.zp, ss, r.qmin, r.qmax, b.ofb);
  same_flag("fake_quantize_f32", fa, fb, ctx);
  if (!nan) same("fake_quantize_f32", b.ofa, b.ofb, n, ctx);
  fa = ts.fake_quantize_grad_f32(b.x, b.g, n, b.s, b.zp, ss, r.qmin, r.qmax, b.ofa);
  fb = tn.fake_quantize_grad_f32(b.x, b.g, n, b.s, b.zp, ss, r.qmin, r.qmax, b.ofb);
  same_flag("fake_quantize_grad_f32", fa, fb, ctx);
  if (!nan) same("fake_quantize_grad_f32", b.ofa, b.ofb, n, ctx);
  // dequantize (zero points of any 8-bit value are legal for 8-bit storage)
  ts.dequantize_s8_f32(reinterpret_cast<const int8_t*>(b.q), n, b.s, b.zp, ss, b.ofa);
  tn.dequantize_s8_f32(reinterpret_cast<const int8_t*>(b.q), n, b.s, b.zp, ss, b.ofb);
  same("dequantize_s8_f32", b.ofa, b.ofb, n, ctx);
  ts.dequantize_u8_f32(b.q, n, b.s, b.zp, ss, b.ofa);
  tn.dequantize_u8_f32(b.q, n, b.s, b.zp, ss, b.ofb);
  same("dequantize_u8_f32", b.ofa, b.ofb, n, ctx);
  ts.dequantize_s4p_f32(b.p, n, b.s, b.zp, ss, b.ofa);
  tn.dequantize_s4p_f32(b.p, n, b.s, b.zp, ss, b.ofb);
  same("dequantize_s4p_f32", b.ofa, b.ofb, n, ctx);
  ts.dequantize_u4p_f32(b.p, n, b.s, b.zp, ss, b.ofa);
  tn.dequantize_u4p_f32(b.p, n, b.s, b.zp, ss, b.ofb);
  same("dequantize_u4p_f32", b.ofa, b.ofb, n, ctx);
  // minmax: running values from +-inf, zeros of either sign, or a finite value
  const float starts[][2] = {{INFINITY, -INFINITY}, {0.0f, -0.0f}, {-0.0f, 0.0f}, {0.25f, -0.25f}};
  for (const auto& st : starts) {
    std::vector<float> mna(size_t(std::max<int64_t>(n, 1)), st[0]), mxa(mna.size(), st[1]);
    std::vector<float> mnb = mna, mxb = mxa;
    fa = ts.minmax_f32(b.x, n, ss, mna.data(), mxa.data());
    fb = tn.minmax_f32(b.x, n, ss, mnb.data(), mxb.data());
    same_flag("minmax_f32", fa, fb, ctx);
    const int64_t slots = ss ? n : 1;
    same("minmax_f32 min", mna.data(), mnb.data(), slots, ctx);
    same("minmax_f32 max", mxa.data(), mxb.data(), slots, ctx);
  }
  // pack / unpack
  for (int32_t bias : {8, 0}) {
    fa = ts.pack_x4(b.q, n, bias, b.o8a);
    fb = tn.pack_x4(b.q, n, bias, b.o8b);
    same_flag("pack_x4", fa, fb, ctx);
    if (!fa) same("pack_x4", b.o8a, b.o8b, nh, ctx);
    for (const uint8_t* hi : {b.hi, static_cast<const uint8_t*>(nullptr)}) {
      fa = ts.pack_x4_vert(b.q, hi, n, bias, b.o8a);
      fb = tn.pack_x4_vert(b.q, hi, n, bias, b.o8b);
      same_flag("pack_x4_vert", fa, fb, ctx);
      if (!fa) same("pack_x4_vert", b.o8a, b.o8b, n, ctx);
    }
  }
  ts.unpack_s4(b.p, n, b.o8a);
  tn.unpack_s4(b.p, n, b.o8b);
  same("unpack_s4", b.o8a, b.o8b, n, ctx);
  ts.unpack_u4(b.p, n, b.o8a);
  tn.unpack_u4(b.p, n, b.o8b);
  same("unpack_u4", b.o8a, b.o8b, n, ctx);
  // vertical unpack of n bytes into two rows (the second half of each output buffer is unused)
  std::vector<uint8_t> la(size_t(n) + 1), ha(size_t(n) + 1), lb(size_t(n) + 1), hb(size_t(n) + 1);
  ts.unpack_s4_vert(b.q, n, la.data(), ha.data());
  tn.unpack_s4_vert(b.q, n, lb.data(), hb.data());
  same("unpack_s4_vert lo", la.data(), lb.data(), n, ctx);
  same("unpack_s4_vert hi", ha.data(), hb.data(), n, ctx);
  ts.unpack_u4_vert(b.q, n, la.data(), nullptr);
  tn.unpack_u4_vert(b.q, n, lb.data(), nullptr);
  same("unpack_u4_vert", la.data(), lb.data(), n, ctx);
}

// Random bytes for q / hi: mostly valid 4-bit values of one kind, sometimes anything.
void fill_bytes(uint8_t* q, int64_t n, int mode) {
  for (int64_t i = 0; i < n; ++i) {
    if (mode == 0) q[i] = uint8_t(rand_int(-8, 7));
    else if (mode == 1) q[i] = uint8_t(rand_int(0, 15));
    else q[i] = uint8_t(next());
  }
  if (mode < 2 && n > 0 && rand_int(0, 4) == 0) q[rand_int(0, n - 1)] = uint8_t(rand_int(16, 247));
}

// minmax where the extreme is a zero of either sign: data drawn from {+0, -0, 1.5, 3} (and
// their negatives for the maximum), sometimes with NaN; the answer's sign depends on order.
void zero_sign_pass(const KernelTable& ts, const KernelTable& tn) {
  const float pos[] = {0.0f, -0.0f, 1.5f, 3.0f, NAN};
  const float starts[][2] = {{INFINITY, -INFINITY}, {0.0f, -0.0f}, {-0.0f, 0.0f}, {2.0f, -2.0f}};
  for (int rep = 0; rep < 20; ++rep) {
    for (int64_t n = 1; n <= 80; ++n) {
      for (float sign : {1.0f, -1.0f}) {
        std::vector<float> x(static_cast<size_t>(n));
        for (auto& v : x) v = sign * pos[rand_int(0, rand_int(0, 7) == 0 ? 4 : 3)];
        for (const auto& st : starts) {
          for (int64_t ss : {0, 1}) {
            const size_t slots = size_t(ss ? n : 1);
            std::vector<float> mna(slots, st[0]), mxa(slots, st[1]), mnb = mna, mxb = mxa;
            const bool fa = ts.minmax_f32(x.data(), n, ss, mna.data(), mxa.data());
            const bool fb = tn.minmax_f32(x.data(), n, ss, mnb.data(), mxb.data());
            char ctx[64];
            std::snprintf(ctx, sizeof ctx, "zero signs n=%lld ss=%lld", (long long)n,
                          (long long)ss);
            same_flag("minmax_f32", fa, fb, ctx);
            same("minmax_f32 min", mna.data(), mnb.data(), int64_t(slots), ctx);
            same("minmax_f32 max", mxa.data(), mxb.data(), int64_t(slots), ctx);
          }
        }
      }
    }
  }
}

void random_pass(const KernelTable& ts, const KernelTable& tn) {
  std::vector<int64_t> lengths;
  for (int64_t n = 0; n <= 300; ++n) lengths.push_back(n);
  for (int64_t n : {511, 512, 513, 1000, 4099}) lengths.push_back(n);
  for (int rep = 0; rep < 3; ++rep) {
    for (int64_t n : lengths) {
      for (int64_t ss : {0, 1}) {
        for (const Range& r : kRanges) {
          const bool nan = rand_int(0, 7) == 0;
          Case c = make_case(n, ss, r, nan);
          std::vector<uint8_t> q(size_t(n) + 1), hi(size_t(n) + 1), p(size_t((n + 1) / 2) + 1);
          fill_bytes(q.data(), n, int(rand_int(0, 2)));
          fill_bytes(hi.data(), n, int(rand_int(0, 2)));
          for (auto& v : p) v = uint8_t(next());
          if (n & 1) p[size_t(n / 2)] &= 15;
          std::vector<uint8_t> o8a(size_t(n) + 1), o8b(size_t(n) + 1);
          std::vector<float> ofa(size_t(n) + 1), ofb(size_t(n) + 1);
          const Buffers b{c.x.data(), c.g.data(), c.s.data(), c.zp.data(), q.data(), p.data(),
                          hi.data(), o8a.data(), o8b.data(), ofa.data(), ofb.data()};
          char ctx[96];
          std::snprintf(ctx, sizeof ctx, "n=%lld ss=%lld range=%d..%d nan=%d", (long long)n,
                        (long long)ss, r.qmin, r.qmax, int(nan));
          compare_all(ts, tn, b, n, ss, r, nan, ctx);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Guard pages: every buffer ends at (after) or starts at (before) an inaccessible page.

struct Guarded {
  uint8_t* base = nullptr;
  size_t cap = 0, page = 0;
  bool after = true;
  Guarded(size_t cap_bytes, bool after_) : after(after_) {
    page = size_t(sysconf(_SC_PAGESIZE));
    cap = (cap_bytes + page - 1) / page * page;
    void* m = mmap(nullptr, cap + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                   0);
    if (m == MAP_FAILED) std::perror("mmap"), std::exit(2);
    base = static_cast<uint8_t*>(m);
    if (mprotect(after ? base + cap : base, page, PROT_NONE) != 0)
      std::perror("mprotect"), std::exit(2);
  }
  template <class T>
  T* take(int64_t n) {  // n elements of T flush against the guard
    const size_t bytes = size_t(n) * sizeof(T);
    return reinterpret_cast<T*>(after ? base + cap - bytes : base + page);
  }
};

void guard_pass(const KernelTable& ts, const KernelTable& tn) {
  for (bool after : {true, false}) {
    std::vector<Guarded> g;
    for (int i = 0; i < 11; ++i) g.emplace_back(4096, after);
    for (int64_t n = 1; n <= 256; ++n) {
      for (int64_t ss : {0, 1}) {
        const Range& r = kRanges[n % 4];
        Case c = make_case(n, ss, r, false);
        const int64_t ns = ss ? n : 1, nh = (n + 1) / 2;
        float* x = g[0].take<float>(n);
        float* gr = g[1].take<float>(n);
        float* s = g[2].take<float>(ns);
        int32_t* zp = g[3].take<int32_t>(ns);
        uint8_t* q = g[4].take<uint8_t>(n);
        uint8_t* p = g[5].take<uint8_t>(nh);
        uint8_t* hi = g[6].take<uint8_t>(n);
        std::memcpy(x, c.x.data(), size_t(n) * 4);
        std::memcpy(gr, c.g.data(), size_t(n) * 4);
        std::memcpy(s, c.s.data(), size_t(ns) * 4);
        std::memcpy(zp, c.zp.data(), size_t(ns) * 4);
        fill_bytes(q, n, int(n % 3));
        fill_bytes(hi, n, int(n % 2));
        for (int64_t i = 0; i < nh; ++i) p[i] = uint8_t(next());
        if (n & 1) p[nh - 1] &= 15;
        // Outputs: bytes of the largest size any kernel writes (n), floats likewise; the packed
        // outputs (ceil(n/2) bytes) sit against the guard in the second round below.
        Buffers b{x, gr, s, zp, q, p, hi, g[7].take<uint8_t>(n), g[8].take<uint8_t>(n),
                  g[9].take<float>(n), g[10].take<float>(n)};
        char ctx[96];
        std::snprintf(ctx, sizeof ctx, "guard %s n=%lld ss=%lld", after ? "after" : "before",
                      (long long)n, (long long)ss);
        compare_all(ts, tn, b, n, ss, r, false, ctx);
        // Packed outputs flush against the guard too.
        uint8_t* pa = g[7].take<uint8_t>(nh);
        uint8_t* pb = g[8].take<uint8_t>(nh);
        if (r.qmax <= 15) {
          const bool fa = ts.quantize_f32_q4p(x, n, s, zp, ss, r.qmin, r.qmax, pa);
          const bool fb = tn.quantize_f32_q4p(x, n, s, zp, ss, r.qmin, r.qmax, pb);
          same_flag("quantize_f32_q4p", fa, fb, ctx);
          same("quantize_f32_q4p", pa, pb, nh, ctx);
        }
        for (int32_t bias : {8, 0}) {
          const bool fa = ts.pack_x4(q, n, bias, pa), fb = tn.pack_x4(q, n, bias, pb);
          same_flag("pack_x4", fa, fb, ctx);
          if (!fa) same("pack_x4", pa, pb, nh, ctx);
        }
      }
    }
    for (auto& m : g) munmap(m.base, m.cap + m.page);
  }
}

}  // namespace

int main() {
  KernelTable ts{}, tn{};
  lowbit::scalar::fill_quantize(ts);
  lowbit::scalar::fill_quantize(tn);
  lowbit::neon::fill_quantize(tn);
  random_pass(ts, tn);
  zero_sign_pass(ts, tn);
  guard_pass(ts, tn);
  std::printf("neon vs scalar: %ld comparisons, %d mismatches\n", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
