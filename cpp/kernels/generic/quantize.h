// The quantize family (lowbit/quantize_kernels.inc), written once over a per-ISA vector header.
// Semantics: cpp/kernels/scalar/quantize.cpp, matched bit for bit for every input.
//
// Included by cpp/kernels/<isa>/quantize.cpp inside namespace lowbit::<isa> { namespace { ... } },
// after <isa>/simd.h, so every ISA compiles its own internal-linkage copy with its own flags
// (the simdjson generic/ + simd.h pattern; see STYLE.md section 2). It includes nothing itself.
//
// The vector header provides (all LOWBIT_INLINE, intrinsics only):
//   kLanes         W, the float / int32 lanes of a vector; a byte vector holds B = 4 W bytes
//   kStreamAlign   alignment in bytes of a streaming (non-temporal) float store, 0 if none
//   vf vi vm vu8   float, int32, lane-mask and byte vectors; vt: the first k lanes (tail_mask(k),
//                  0 < k < W; active(t) is its vm)
//   set1_f set1_i zero_f zero_i   load_f load_i store_f stream_f stream_fence prefetch
//   load_f(p, t) load_i(p, t) store_f(p, v, t)   touch only the active lanes' memory
//                  (inactive lanes load as 0)
//   div_f mul_f add_f sub_f add_i sub_i cvt_f   IEEE arithmetic, int32 -> float
//   clamp_f(v, lo, hi)  max then min: a NaN v gives lo, like the scalar `v >= lo ? v : lo`
//   rne_i(v) rne_f(v)   round half to even (to int32 / to an integral float), whatever the
//                  caller's rounding mode; v is already clamped to int32 range
//   min_keep(v, m) max_keep(v, m)   `v < m ? v : m`, `v > m ? v : m` lane by lane
//   is_nan either_nan ge_f le_f eq_f no_lanes mask_or mask_and any first_lane
//   select_f(m, a, b)   m ? a : b;  keep_f(m, v) keep_i(t, v): v in the chosen lanes, else 0
//   hmin hmax      reductions of lanes that agree except for the sign of a zero, or are all NaN
//   zero_signs(v)  bit 0: some lane is +0.0, bit 1: some lane is -0.0
//   store_q8x4(p, a, b, c, d)  the low byte of every int32 lane, 4 W bytes
//   store_q8(p, q), store_q8(p, q, k)   the same for one vector: W bytes / the first k
//   store_q4x4(p, a, b, c, d)  (q[2j] & 15) | (q[2j+1] & 15) << 4: 2 W bytes
//   store_q4(p, q), store_q4(p, q, k)   one vector: W / 2 bytes / the first k
//   load_u8 store_u8, load_u8(p, k) store_u8(p, v, k)   B bytes / the first k <= B (loads
//                  zero-fill, neither touches memory past k); load_u8_half: 2 W bytes, low half
//   set1_u8 zero_u8 add_u8 sub_u8 and_u8 or_u8 xor_u8 any_high_nibble
//   pack_pairs(a, b)  2 B bytes (a then b) -> B: (v[2j] & 15) | v[2j+1] << 4
//   pack_vert(lo, hi) (lo & 15) | hi << 4;  low_nibbles high_nibbles: v & 15, v >> 4
//   unpack_nibbles(p, r0, r1)  B packed bytes -> 2 B nibbles in element order (zero-extended)
//   widen4<kSigned>(bytes, w)  4 W bytes -> four int32 vectors (sign- or zero-extended);
//                  load_widen4<kSigned>(p, w) the same straight from memory
//   widen_nibbles4<kSigned>(packed, w)  the low 2 W packed bytes -> four int32 vectors
//
// Shape of every kernel: an unrolled main loop, a one-vector loop where it pays, then a tail
// through the masked primitives, which never touch memory past `n`. The tail runs the same
// vector code as the body, so it cannot drift from it. `ss` is 0 (one scale for the segment,
// broadcast once: QuantParams<false>) or 1 (one per element: QuantParams<true>); the split is a
// template parameter so the per-tensor loops keep their broadcasts in registers.

constexpr int64_t W = kLanes;
constexpr int64_t B = 4 * kLanes;

// Software prefetch of float input 16 KiB ahead, one per 64-byte line of a block. The
// division-bound quantize loops leave the hardware prefetcher short of DRAM read bandwidth
// (measured on AVX2: 16M-float quantize 20-30% faster with it). At AVX-512 rates 1 KiB ahead is
// under 100 ns, less than a DRAM access: on a Zen 5 core, 16 Mi int8 per-tensor quantize took
// 2.41 ms with 1 KiB, 1.71 with 16 KiB, 1.63 with 32 KiB (AVX2 2.88, 2.12, 2.15); 16 KiB stays
// within every L1 it is fetched into. A prefetch never faults, but it
// is kept inside [x, x + n) all the same: one test a block, which skips the last block's lines
// (a test a line cost the AVX-512 loop 12 instructions per 64 floats).
constexpr int64_t kPrefetch = 4096;  // floats
template <int64_t kBlock>
LOWBIT_INLINE void prefetch_block(const float* x, int64_t i, int64_t n) {
  if (i + kPrefetch + kBlock > n) return;
  for (int64_t j = 0; j < kBlock; j += 16) prefetch(x + i + j + kPrefetch);
}

// ---------------------------------------------------------------------------------------------
// Scales and zero points. The object lives in the kernel's frame and is read field by field, so
// the compiler keeps the broadcasts in registers.

template <bool kPer>
struct QuantParams {
  const float* s;
  const int32_t* zp;
  vi qmin, qmax;
  vf s0, lo0, hi0;  // ss == 0 only
  vi z0;

  // Reads s[0]/zp[0] only when ss == 0, and only for n > 0 (checked by every caller).
  LOWBIT_INLINE QuantParams(const float* s_, const int32_t* zp_, int32_t qmin_, int32_t qmax_)
      : s(s_), zp(zp_), qmin(set1_i(qmin_)), qmax(set1_i(qmax_)) {
    if constexpr (kPer) {
      s0 = lo0 = hi0 = zero_f();
      z0 = zero_i();
    } else {
      const int32_t z = zp[0];
      // The same int subtraction and int->float conversion as the scalar float(qmin - z).
      s0 = set1_f(s[0]);
      lo0 = set1_f(float(qmin_ - z));
      hi0 = set1_f(float(qmax_ - z));
      z0 = set1_i(z);
    }
  }
  // Elements i..i+W-1; the masked forms give inactive lanes s = 0 and zp = 0, whose results are
  // discarded (and whose NaN flags are masked off).
  LOWBIT_INLINE vi zero(int64_t i) const {
    if constexpr (kPer) return load_i(zp + i);
    return z0;
  }
  LOWBIT_INLINE vi zero(int64_t i, vt m) const {
    if constexpr (kPer) return load_i(zp + i, m);
    return z0;
  }
  LOWBIT_INLINE vf scale(int64_t i) const {
    if constexpr (kPer) return load_f(s + i);
    return s0;
  }
  LOWBIT_INLINE vf scale(int64_t i, vt m) const {
    if constexpr (kPer) return load_f(s + i, m);
    return s0;
  }
  LOWBIT_INLINE vf lo(vi z) const {  // float(qmin - zp)
    if constexpr (kPer) return cvt_f(sub_i(qmin, z));
    return lo0;
  }
  LOWBIT_INLINE vf hi(vi z) const {  // float(qmax - zp)
    if constexpr (kPer) return cvt_f(sub_i(qmax, z));
    return hi0;
  }
};

// x / s, its NaN lanes OR-ed into `nan`. IEEE division, as the contract requires.
LOWBIT_INLINE vf quotient(vf x, vf s, vm& nan) {
  const vf v = div_f(x, s);
  nan = mask_or(nan, is_nan(v));
  return v;
}

// clamp(rne(x/s) + zp, qmin, qmax) as int32 for elements i..i+W-1, the value before narrowing:
// clamp(rne(x/s) + zp, qmin, qmax) == rne(clamp(x/s, qmin - zp, qmax - zp)) + zp, because the
// bounds are integers and rne is monotone; clamping first keeps the conversion in range, and a
// NaN quotient lands on lo as in the scalar quantize_one. Where max/min and the scalar select
// differ (v == lo == 0 with other zero signs) the integer is the same.
template <bool kPer>
LOWBIT_INLINE vi quant_q(const QuantParams<kPer>& p, const float* x, int64_t i, vm& nan) {
  const vi z = p.zero(i);
  const vf v = quotient(load_f(x + i), p.scale(i), nan);
  return add_i(rne_i(clamp_f(v, p.lo(z), p.hi(z))), z);
}

// The same for the first lanes of t; inactive lanes are garbage but raise no flag.
template <bool kPer>
LOWBIT_INLINE vi quant_q(const QuantParams<kPer>& p, const float* x, int64_t i, vt t, vm& nan) {
  const vi z = p.zero(i, t);
  vm tnan = no_lanes();
  const vf v = quotient(load_f(x + i, t), p.scale(i, t), tnan);
  nan = mask_or(nan, mask_and(tnan, active(t)));
  return add_i(rne_i(clamp_f(v, p.lo(z), p.hi(z))), z);
}

// ---------------------------------------------------------------------------------------------
// quantize_f32_q8: the low byte of each int32 (the scalar `static_cast<uint8_t>(q)`).

template <bool kPer>
bool quantize_q8_impl(const float* x, int64_t n, const float* s, const int32_t* zp, int32_t qmin,
                      int32_t qmax, uint8_t* out) {
  const QuantParams<kPer> p(s, zp, qmin, qmax);
  vm nan = no_lanes();
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    prefetch_block<4 * W>(x, i, n);
    const vi q0 = quant_q(p, x, i, nan), q1 = quant_q(p, x, i + W, nan);
    const vi q2 = quant_q(p, x, i + 2 * W, nan), q3 = quant_q(p, x, i + 3 * W, nan);
    store_q8x4(out + i, q0, q1, q2, q3);
  }
  for (; i + W <= n; i += W) store_q8(out + i, quant_q(p, x, i, nan));
  if (i < n) store_q8(out + i, quant_q(p, x, i, tail_mask(n - i), nan), n - i);
  return any(nan);
}

bool quantize_f32_q8(const float* x, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                     int32_t qmin, int32_t qmax, uint8_t* out) {
  if (n <= 0) return false;
  return ss == 0 ? quantize_q8_impl<false>(x, n, s, zp, qmin, qmax, out)
                 : quantize_q8_impl<true>(x, n, s, zp, qmin, qmax, out);
}

// ---------------------------------------------------------------------------------------------
// quantize_f32_q4p: two values a byte, low nibble first.

template <bool kPer>
bool quantize_q4p_impl(const float* x, int64_t n, const float* s, const int32_t* zp, int32_t qmin,
                       int32_t qmax, uint8_t* out) {
  const QuantParams<kPer> p(s, zp, qmin, qmax);
  vm nan = no_lanes();
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    prefetch_block<4 * W>(x, i, n);
    const vi q0 = quant_q(p, x, i, nan), q1 = quant_q(p, x, i + W, nan);
    const vi q2 = quant_q(p, x, i + 2 * W, nan), q3 = quant_q(p, x, i + 3 * W, nan);
    store_q4x4(out + i / 2, q0, q1, q2, q3);
  }
  for (; i + W <= n; i += W) store_q4(out + i / 2, quant_q(p, x, i, nan));
  if (i < n) {
    const vt t = tail_mask(n - i);
    // Zeroing the inactive lanes leaves the zero high nibble an odd n needs.
    store_q4(out + i / 2, keep_i(t, quant_q(p, x, i, t, nan)), (n - i + 1) / 2);
  }
  return any(nan);
}

bool quantize_f32_q4p(const float* x, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                      int32_t qmin, int32_t qmax, uint8_t* out) {
  if (n <= 0) return false;
  return ss == 0 ? quantize_q4p_impl<false>(x, n, s, zp, qmin, qmax, out)
                 : quantize_q4p_impl<true>(x, n, s, zp, qmin, qmax, out);
}

// ---------------------------------------------------------------------------------------------
// Float outputs. A call that writes at least kStreamBytes streams its body past the caches
// (non-temporal stores, where the ISA has them): the result cannot stay cached anyway, and
// skipping the read-for-ownership of every output line cuts DRAM traffic (dequantize of 16M int8
// elements ran 1.7x faster with AVX2 on the development machine; quantize, whose output is a
// fifth of its traffic, gains nothing, so it does not stream). The drivers hand each thread
// chunks of a quarter of its share, so with two threads only tensors of 8M+ floats (32 MiB,
// about the size of a last-level cache) stream. Smaller outputs use normal stores, so a
// consumer finds them in cache. Streaming changes no bit.
constexpr int64_t kStreamBytes = int64_t{4} << 20;

template <bool kStream>
LOWBIT_INLINE void store_out(float* p, vf v) {
  if constexpr (kStream)
    stream_f(p, v);  // p is kStreamAlign-aligned (split_stream)
  else
    store_f(p, v);
}

// Calls run(std::false_type, 0, n) for a small or misaligned output; otherwise runs the first
// h < W elements with normal stores and [h, n) with streaming stores from the kStreamAlign
// aligned out + h, then fences so the streamed data is visible before the caller signals
// completion. `even_head` (packed input) requires h even so the streamed part starts on a whole
// byte.
template <class F>
LOWBIT_INLINE bool split_stream(const float* out, int64_t n, bool even_head, F&& run) {
  if constexpr (kStreamAlign == 0) {
    (void)even_head;
    return run(std::false_type{}, int64_t{0}, n);
  } else {
    constexpr uintptr_t kA = kStreamAlign;
    const uintptr_t a = reinterpret_cast<uintptr_t>(out);
    const int64_t h = static_cast<int64_t>(((kA - (a & (kA - 1))) & (kA - 1)) >> 2);
    if (n * int64_t{4} < kStreamBytes || (a & 3) != 0 || (even_head && (h & 1)))
      return run(std::false_type{}, int64_t{0}, n);
    bool flag = h > 0 && run(std::false_type{}, int64_t{0}, h);
    flag |= run(std::true_type{}, h, n);
    stream_fence();
    return flag;
  }
}

// ---------------------------------------------------------------------------------------------
// fake_quantize_f32 / fake_quantize_grad_f32

// float(int32(q)) * s: the integer round trip turns a -0.0 from rounding into +0.0, as the
// scalar kernel (and dequantize(quantize())) does.
template <bool kPer>
LOWBIT_INLINE vf fake_one(const QuantParams<kPer>& p, vf x, vf sc, vi z, vm& nan) {
  const vf v = quotient(x, sc, nan);
  return mul_f(cvt_f(rne_i(clamp_f(v, p.lo(z), p.hi(z)))), sc);
}

template <bool kPer, bool kStream>
bool fake_quantize_impl(const float* x, int64_t n, const float* s, const int32_t* zp,
                        int32_t qmin, int32_t qmax, float* out) {
  const QuantParams<kPer> p(s, zp, qmin, qmax);
  vm nan = no_lanes();
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    prefetch_block<2 * W>(x, i, n);
    store_out<kStream>(out + i, fake_one(p, load_f(x + i), p.scale(i), p.zero(i), nan));
    store_out<kStream>(out + i + W,
                       fake_one(p, load_f(x + i + W), p.scale(i + W), p.zero(i + W), nan));
  }
  for (; i + W <= n; i += W)
    store_out<kStream>(out + i, fake_one(p, load_f(x + i), p.scale(i), p.zero(i), nan));
  if (i < n) {
    const vt t = tail_mask(n - i);
    vm tnan = no_lanes();
    const vf r = fake_one(p, load_f(x + i, t), p.scale(i, t), p.zero(i, t), tnan);
    nan = mask_or(nan, mask_and(tnan, active(t)));
    store_f(out + i, r, t);
  }
  return any(nan);
}

template <bool kPer>
bool fake_quantize_run(const float* x, int64_t n, const float* s, const int32_t* zp,
                       int32_t qmin, int32_t qmax, float* out) {
  return split_stream(out, n, false, [&](auto stream, int64_t b, int64_t e) {
    const int64_t o = kPer ? b : 0;
    return fake_quantize_impl<kPer, decltype(stream)::value>(x + b, e - b, s + o, zp + o, qmin,
                                                             qmax, out + b);
  });
}

bool fake_quantize_f32(const float* x, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                       int32_t qmin, int32_t qmax, float* out) {
  if (n <= 0) return false;
  return ss == 0 ? fake_quantize_run<false>(x, n, s, zp, qmin, qmax, out)
                 : fake_quantize_run<true>(x, n, s, zp, qmin, qmax, out);
}

// g where lo <= rne(x/s) <= hi, else +0.0. Clamping to one step outside [lo, hi] (lo - 1.0f,
// hi + 1.0f in float, as the scalar kernel does) keeps in-range answers, and a NaN quotient
// lands on lo - 1 (out of range) in both. The comparison of the rounded float equals the scalar
// comparison of float(int32(...)): only the sign of a zero can differ, and comparisons ignore it.
template <bool kPer>
LOWBIT_INLINE vf grad_one(const QuantParams<kPer>& p, vf x, vf g, vf sc, vi z, vm& nan) {
  const vf one = set1_f(1.0f);
  const vf lo = p.lo(z), hi = p.hi(z);
  const vf r = rne_f(clamp_f(quotient(x, sc, nan), sub_f(lo, one), add_f(hi, one)));
  return keep_f(mask_and(ge_f(r, lo), le_f(r, hi)), g);
}

template <bool kPer, bool kStream>
bool fake_quantize_grad_impl(const float* x, const float* g, int64_t n, const float* s,
                             const int32_t* zp, int32_t qmin, int32_t qmax, float* out) {
  const QuantParams<kPer> p(s, zp, qmin, qmax);
  vm nan = no_lanes();
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    prefetch_block<2 * W>(x, i, n);
    prefetch_block<2 * W>(g, i, n);
    store_out<kStream>(out + i,
                       grad_one(p, load_f(x + i), load_f(g + i), p.scale(i), p.zero(i), nan));
    store_out<kStream>(out + i + W, grad_one(p, load_f(x + i + W), load_f(g + i + W),
                                             p.scale(i + W), p.zero(i + W), nan));
  }
  for (; i + W <= n; i += W)
    store_out<kStream>(out + i,
                       grad_one(p, load_f(x + i), load_f(g + i), p.scale(i), p.zero(i), nan));
  if (i < n) {
    const vt t = tail_mask(n - i);
    vm tnan = no_lanes();
    const vf r = grad_one(p, load_f(x + i, t), load_f(g + i, t), p.scale(i, t), p.zero(i, t),
                          tnan);
    nan = mask_or(nan, mask_and(tnan, active(t)));
    store_f(out + i, r, t);
  }
  return any(nan);
}

template <bool kPer>
bool fake_quantize_grad_run(const float* x, const float* g, int64_t n, const float* s,
                            const int32_t* zp, int32_t qmin, int32_t qmax, float* out) {
  return split_stream(out, n, false, [&](auto stream, int64_t b, int64_t e) {
    const int64_t o = kPer ? b : 0;
    return fake_quantize_grad_impl<kPer, decltype(stream)::value>(x + b, g + b, e - b, s + o,
                                                                  zp + o, qmin, qmax, out + b);
  });
}

bool fake_quantize_grad_f32(const float* x, const float* g, int64_t n, const float* s,
                            const int32_t* zp, int64_t ss, int32_t qmin, int32_t qmax,
                            float* out) {
  if (n <= 0) return false;
  return ss == 0 ? fake_quantize_grad_run<false>(x, g, n, s, zp, qmin, qmax, out)
                 : fake_quantize_grad_run<true>(x, g, n, s, zp, qmin, qmax, out);
}

// ---------------------------------------------------------------------------------------------
// Dequantization: out = float(int32(q) - zp) * s, the scalar expression lane by lane.

template <bool kPer>
struct DeqParams {
  const float* s;
  const int32_t* zp;
  vf s0;  // ss == 0 only
  vi z0;

  LOWBIT_INLINE DeqParams(const float* s_, const int32_t* zp_) : s(s_), zp(zp_) {
    s0 = kPer ? zero_f() : set1_f(s[0]);
    z0 = kPer ? zero_i() : set1_i(zp[0]);
  }
  // Elements i..i+W-1 (the masked form reads only the active lanes' scales and zero points).
  LOWBIT_INLINE vf apply(vi q, int64_t i) const {
    if constexpr (!kPer) return mul_f(cvt_f(sub_i(q, z0)), s0);
    return mul_f(cvt_f(sub_i(q, load_i(zp + i))), load_f(s + i));
  }
  LOWBIT_INLINE vf apply(vi q, int64_t i, vt t) const {
    if constexpr (!kPer) return apply(q, i);
    return mul_f(cvt_f(sub_i(q, load_i(zp + i, t))), load_f(s + i, t));
  }
};

// Where the int32 lanes of 4 W elements come from. Unpacked 8-bit data: one byte an element,
// sign-extended (int8) or zero-extended (uint8).
template <bool kSigned>
struct Bytes8 {
  static constexpr bool kPacked = false;
  static LOWBIT_INLINE const uint8_t* at(const uint8_t* q, int64_t i) { return q + i; }
  static LOWBIT_INLINE void load(const uint8_t* q, int64_t i, vi w[4]) {
    load_widen4<kSigned>(q + i, w);
  }
  static LOWBIT_INLINE void load(const uint8_t* q, int64_t i, int64_t k, vi w[4]) {
    widen4<kSigned>(load_u8(q + i, k), w);
  }
};

// Packed 4-bit data: element i is nibble (i & 1) of byte i / 2 (i even at every call).
template <bool kSigned>
struct Nibbles {
  static constexpr bool kPacked = true;
  static LOWBIT_INLINE const uint8_t* at(const uint8_t* p, int64_t i) { return p + i / 2; }
  static LOWBIT_INLINE void load(const uint8_t* p, int64_t i, vi w[4]) {
    widen_nibbles4<kSigned>(load_u8_half(p + i / 2), w);
  }
  static LOWBIT_INLINE void load(const uint8_t* p, int64_t i, int64_t k, vi w[4]) {
    widen_nibbles4<kSigned>(load_u8(p + i / 2, (k + 1) / 2), w);
  }
};

template <class Src, bool kPer, bool kStream>
bool dequantize_impl(const uint8_t* q, int64_t n, const float* s, const int32_t* zp,
                     float* out) {
  const DeqParams<kPer> c(s, zp);
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    vi w[4];
    Src::load(q, i, w);
    for (int j = 0; j < 4; ++j) store_out<kStream>(out + i + j * W, c.apply(w[j], i + j * W));
  }
  if (i < n) {
    // Fewer than 4 W elements: their bytes in one masked load, then whole vectors, then a
    // lane-masked one.
    vi w[4];
    Src::load(q, i, n - i, w);
    for (int j = 0; j < 4 && i < n; ++j, i += W) {
      if (n - i >= W) {
        store_out<kStream>(out + i, c.apply(w[j], i));
      } else {
        const vt t = tail_mask(n - i);
        store_f(out + i, c.apply(w[j], i, t), t);
      }
    }
  }
  return false;
}

template <class Src, bool kPer>
void dequantize_run(const uint8_t* q, int64_t n, const float* s, const int32_t* zp, float* out) {
  split_stream(out, n, Src::kPacked, [&](auto stream, int64_t b, int64_t e) {
    const int64_t o = kPer ? b : 0;
    return dequantize_impl<Src, kPer, decltype(stream)::value>(Src::at(q, b), e - b, s + o,
                                                               zp + o, out + b);
  });
}

template <class Src>
void dequantize_any(const uint8_t* q, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                    float* out) {
  if (n <= 0) return;
  if (ss == 0)
    dequantize_run<Src, false>(q, n, s, zp, out);
  else
    dequantize_run<Src, true>(q, n, s, zp, out);
}

void dequantize_s8_f32(const int8_t* q, int64_t n, const float* s, const int32_t* zp, int64_t ss,
                       float* out) {
  dequantize_any<Bytes8<true>>(reinterpret_cast<const uint8_t*>(q), n, s, zp, ss, out);
}

void dequantize_u8_f32(const uint8_t* q, int64_t n, const float* s, const int32_t* zp,
                       int64_t ss, float* out) {
  dequantize_any<Bytes8<false>>(q, n, s, zp, ss, out);
}

void dequantize_s4p_f32(const uint8_t* p, int64_t n, const float* s, const int32_t* zp,
                        int64_t ss, float* out) {
  dequantize_any<Nibbles<true>>(p, n, s, zp, ss, out);
}

void dequantize_u4p_f32(const uint8_t* p, int64_t n, const float* s, const int32_t* zp,
                        int64_t ss, float* out) {
  dequantize_any<Nibbles<false>>(p, n, s, zp, ss, out);
}

// ---------------------------------------------------------------------------------------------
// minmax_f32
//
// min_keep(v, m) is `v < m ? v : m` and max_keep(v, m) is `v > m ? v : m`: exactly the scalar
// `if (v < mn) mn = v` / `if (v > mx) mx = v`, NaN handling and +-0 included. So ss == 1 is the
// scalar loop lane by lane. For ss == 0 each accumulator lane sees its elements in index order
// and keeps the first of equal values, as the scalar loop does; lanes can then disagree only on
// the sign of a zero minimum (maximum), and only then is the scalar answer (the first zero of x,
// since the running value was nonzero before it) looked up.

// The first x[i] == 0 (one exists whenever this is called).
float first_zero(const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const vm z = eq_f(load_f(x + i), zero_f());
    if (any(z)) return x[i + first_lane(z)];
  }
  for (; i < n; ++i)
    if (x[i] == 0.0f) return x[i];
  return 0.0f;
}

bool minmax_seg(const float* x, int64_t n, float* mn, float* mx) {
  const float m0 = mn[0], M0 = mx[0];
  vf a0 = set1_f(m0), a1 = a0, a2 = a0, a3 = a0;
  vf b0 = set1_f(M0), b1 = b0, b2 = b0, b3 = b0;
  vm nan = no_lanes();
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    const vf v0 = load_f(x + i), v1 = load_f(x + i + W);
    const vf v2 = load_f(x + i + 2 * W), v3 = load_f(x + i + 3 * W);
    a0 = min_keep(v0, a0);
    a1 = min_keep(v1, a1);
    a2 = min_keep(v2, a2);
    a3 = min_keep(v3, a3);
    b0 = max_keep(v0, b0);
    b1 = max_keep(v1, b1);
    b2 = max_keep(v2, b2);
    b3 = max_keep(v3, b3);
    nan = mask_or(nan, mask_or(either_nan(v0, v1), either_nan(v2, v3)));
  }
  for (; i + W <= n; i += W) {
    const vf v = load_f(x + i);
    a0 = min_keep(v, a0);
    b0 = max_keep(v, b0);
    nan = mask_or(nan, is_nan(v));
  }
  if (i < n) {
    // Inactive lanes become NaN, which min_keep/max_keep skip (v < m is false) like the scalar
    // loop.
    const vt t = tail_mask(n - i);
    const vf v = select_f(active(t), load_f(x + i, t), set1_f(__builtin_nanf("")));
    a0 = min_keep(v, a0);
    b0 = max_keep(v, b0);
    nan = mask_or(nan, mask_and(is_nan(v), active(t)));
  }
  // Ignoring the sign of zero, the lanes agree on the minimum value (x's NaNs never enter; a NaN
  // m0 stays in every lane). The tree order only matters for mixed zeros, handled below.
  float rmn = hmin(min_keep(min_keep(a0, a1), min_keep(a2, a3)));
  float rmx = hmax(max_keep(max_keep(b0, b1), max_keep(b2, b3)));
  if (rmn == 0.0f && (zero_signs(a0) | zero_signs(a1) | zero_signs(a2) | zero_signs(a3)) == 3)
    rmn = first_zero(x, n);
  if (rmx == 0.0f && (zero_signs(b0) | zero_signs(b1) | zero_signs(b2) | zero_signs(b3)) == 3)
    rmx = first_zero(x, n);
  mn[0] = rmn;
  mx[0] = rmx;
  return any(nan);
}

bool minmax_elem(const float* x, int64_t n, float* mn, float* mx) {
  vm nan = no_lanes();
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const vf v = load_f(x + i);
    store_f(mn + i, min_keep(v, load_f(mn + i)));
    store_f(mx + i, max_keep(v, load_f(mx + i)));
    nan = mask_or(nan, is_nan(v));
  }
  if (i < n) {
    const vt t = tail_mask(n - i);
    const vf v = load_f(x + i, t);
    store_f(mn + i, min_keep(v, load_f(mn + i, t)), t);
    store_f(mx + i, max_keep(v, load_f(mx + i, t)), t);
    nan = mask_or(nan, mask_and(is_nan(v), active(t)));
  }
  return any(nan);
}

bool minmax_f32(const float* x, int64_t n, int64_t ss, float* mn, float* mx) {
  if (n <= 0) return false;
  return ss == 0 ? minmax_seg(x, n, mn, mx) : minmax_elem(x, n, mn, mx);
}

// ---------------------------------------------------------------------------------------------
// 4-bit packing. A byte v is in range when uint8(v + bias) < 16 (bias 8: int8 -8..7; bias 0:
// uint8 0..15), so OR-ing the biased bytes and testing the high nibble checks a whole block.
// Tails load zeros past the end: uint8(0 + bias) < 16 passes the check for both biases, and a
// zero value gives the zero high nibble an odd n needs.

bool pack_x4(const uint8_t* q, int64_t n, int32_t bias, uint8_t* out) {
  if (n <= 0) return false;
  const vu8 vb = set1_u8(static_cast<uint8_t>(bias));
  vu8 acc = zero_u8();
  int64_t i = 0;
  for (; i + 2 * B <= n; i += 2 * B) {
    const vu8 a = load_u8(q + i), b = load_u8(q + i + B);
    acc = or_u8(acc, or_u8(add_u8(a, vb), add_u8(b, vb)));
    store_u8(out + i / 2, pack_pairs(a, b));
  }
  if (i < n) {
    const int64_t rem = n - i;
    const vu8 a = load_u8(q + i, rem < B ? rem : B);
    const vu8 b = rem > B ? load_u8(q + i + B, rem - B) : zero_u8();
    acc = or_u8(acc, or_u8(add_u8(a, vb), add_u8(b, vb)));
    store_u8(out + i / 2, pack_pairs(a, b), (rem + 1) / 2);
  }
  return any_high_nibble(acc);
}

bool pack_x4_vert(const uint8_t* lo, const uint8_t* hi, int64_t n, int32_t bias, uint8_t* out) {
  if (n <= 0) return false;
  const vu8 vb = set1_u8(static_cast<uint8_t>(bias));
  vu8 acc = zero_u8();
  int64_t i = 0;
  if (hi) {
    for (; i + B <= n; i += B) {
      const vu8 a = load_u8(lo + i), b = load_u8(hi + i);
      acc = or_u8(acc, or_u8(add_u8(a, vb), add_u8(b, vb)));
      store_u8(out + i, pack_vert(a, b));
    }
    if (i < n) {
      const vu8 a = load_u8(lo + i, n - i), b = load_u8(hi + i, n - i);
      acc = or_u8(acc, or_u8(add_u8(a, vb), add_u8(b, vb)));
      store_u8(out + i, pack_vert(a, b), n - i);
    }
  } else {
    for (; i + B <= n; i += B) {
      const vu8 a = load_u8(lo + i);
      acc = or_u8(acc, add_u8(a, vb));
      store_u8(out + i, low_nibbles(a));
    }
    if (i < n) {
      const vu8 a = load_u8(lo + i, n - i);
      acc = or_u8(acc, add_u8(a, vb));
      store_u8(out + i, low_nibbles(a), n - i);
    }
  }
  return any_high_nibble(acc);
}

// ---------------------------------------------------------------------------------------------
// 4-bit unpacking; (v ^ 8) - 8 sign-extends a nibble within its byte.

template <bool kSigned>
LOWBIT_INLINE vu8 finish_nibbles(vu8 v) {
  if constexpr (!kSigned) return v;
  const vu8 e = set1_u8(8);
  return sub_u8(xor_u8(v, e), e);
}

template <bool kSigned>
void unpack_impl(const uint8_t* p, int64_t n, uint8_t* out) {
  int64_t i = 0;
  vu8 r0, r1;
  for (; i + 2 * B <= n; i += 2 * B) {
    unpack_nibbles(load_u8(p + i / 2), r0, r1);
    store_u8(out + i, finish_nibbles<kSigned>(r0));
    store_u8(out + i + B, finish_nibbles<kSigned>(r1));
  }
  if (i < n) {
    const int64_t rem = n - i;
    unpack_nibbles(load_u8(p + i / 2, (rem + 1) / 2), r0, r1);
    store_u8(out + i, finish_nibbles<kSigned>(r0), rem < B ? rem : B);
    if (rem > B) store_u8(out + i + B, finish_nibbles<kSigned>(r1), rem - B);
  }
}

void unpack_s4(const uint8_t* p, int64_t n, uint8_t* out) {
  if (n > 0) unpack_impl<true>(p, n, out);
}

void unpack_u4(const uint8_t* p, int64_t n, uint8_t* out) {
  if (n > 0) unpack_impl<false>(p, n, out);
}

template <bool kSigned>
void unpack_vert_impl(const uint8_t* p, int64_t n, uint8_t* lo, uint8_t* hi) {
  int64_t i = 0;
  for (; i + B <= n; i += B) {
    const vu8 v = load_u8(p + i);
    store_u8(lo + i, finish_nibbles<kSigned>(low_nibbles(v)));
    if (hi) store_u8(hi + i, finish_nibbles<kSigned>(high_nibbles(v)));
  }
  if (i < n) {
    const vu8 v = load_u8(p + i, n - i);
    store_u8(lo + i, finish_nibbles<kSigned>(low_nibbles(v)), n - i);
    if (hi) store_u8(hi + i, finish_nibbles<kSigned>(high_nibbles(v)), n - i);
  }
}

void unpack_s4_vert(const uint8_t* p, int64_t n, uint8_t* lo, uint8_t* hi) {
  if (n > 0) unpack_vert_impl<true>(p, n, lo, hi);
}

void unpack_u4_vert(const uint8_t* p, int64_t n, uint8_t* lo, uint8_t* hi) {
  if (n > 0) unpack_vert_impl<false>(p, n, lo, hi);
}
