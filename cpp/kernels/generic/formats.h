// The formats family (lowbit/formats_kernels.inc, FormatSpec in lowbit/kernels.h), written once
// over a per-ISA vector header. Semantics: cpp/kernels/scalar/formats.cpp, matched bit for bit.
//
// Included by cpp/kernels/<isa>/quantize.cpp after generic/quantize.h, whose loaders (Bytes8,
// Nibbles), split_stream and store_out it reuses. Beyond the primitives listed there, the vector
// header provides:
//   bits_f float_i      the bits of a float vector as int32 lanes, and back
//   and_i or_i srl_i sll_i select_i(m, a, b)   lane-wise integer operations (shift counts < 32)
//   lt_f(a, b)          a < b, false for NaN
//   count_lt(cnt, t, y) cnt + 1 in the lanes where t < y
//   gather_f(table, idx)  table[idx] lane by lane
//   Lut16 load_lut16(t) lut16_f(lut, idx)   a 16-entry float table in registers, indexed by the
//                       low 4 bits of idx
//   kLut16Search        whether a binary search through lut16_f beats counting 15 compares
//   fma_f(a, b, c)      a * b + c, one rounding;  hsum_f(v)  the sum of the lanes
//   load_u8_i(p) load_nib_i(p)   W codes as int32 lanes, from W bytes / W / 2 bytes of nibbles
//   fp8_f<kE4M3>(p)     W fp8 codes (bytes) as floats: e5m2 values, e4m3 values times 2^-8
//   fp8x2_f<kE4M3>(p, lo, hi)   the same for 2 W codes
//   abs_f and_f or_f    |v|, bitwise and / or of float vectors

// ---------------------------------------------------------------------------------------------
// Encoders: y = x / s, then the code of y (FormatSpec kind 0: floating point, 1: thresholds).

// Floating point: the vector form of scalar encode_fp (clamp, the subnormal scaling and the
// mantissa rounding on the bit pattern computed for every lane, the right one selected).
struct FpEncoder {
  vf lo, hi, min_normal, sub_scale, sub_max;
  vi mag_mask, one, round_half, rebias;
  int sh, sign_bit;
  explicit LOWBIT_INLINE FpEncoder(const FormatSpec& f) {
    lo = set1_f(-f.maxval);
    hi = set1_f(f.maxval);
    const auto pow2 = [](int e) {  // 2^e, -126 <= e <= 127
      const uint32_t b = static_cast<uint32_t>(e + 127) << 23;
      float v;
      std::memcpy(&v, &b, 4);
      return v;
    };
    min_normal = set1_f(pow2(1 - f.bias));
    sub_scale = set1_f(pow2(f.bias - 1 + f.mbits));
    sub_max = set1_f(static_cast<float>(1 << f.mbits));
    sh = 23 - f.mbits;
    sign_bit = f.sign_bit;
    mag_mask = set1_i(0x7FFFFFFF);
    one = set1_i(1);
    round_half = set1_i((1 << (sh - 1)) - 1);
    rebias = set1_i((127 - f.bias) << f.mbits);
  }
  LOWBIT_INLINE vi code(vf y) const {
    const vi b = bits_f(clamp_f(y, lo, hi));  // a NaN lands on lo (reported by the caller)
    const vi mag = and_i(b, mag_mask);
    const vf a = float_i(mag);
    // capped, so that the lanes of the normal range (not selected) stay in int32 range
    const vi sub = rne_i(min_keep(mul_f(a, sub_scale), sub_max));
    const vi r = add_i(add_i(mag, round_half), and_i(srl_i(mag, sh), one));
    const vi nrm = sub_i(srl_i(r, sh), rebias);
    return or_i(select_i(lt_f(a, min_normal), sub, nrm), sll_i(srl_i(b, 31), sign_bit));
  }
};

// Thresholds (always 2^bits - 1 of them, sorted; the drivers check it): the number below y.
struct ThrEncoder {
  Lut16 lut;        // up to 15 thresholds, +inf past them
  vf t[15];         // the same, broadcast (counting, where a register table costs more)
  const float* thr;
  int nthr;
  explicit LOWBIT_INLINE ThrEncoder(const FormatSpec& f) : thr(f.thr), nthr(f.nthr) {
    float tb[16];
    for (int j = 0; j < 16; ++j) tb[j] = j < nthr ? thr[j] : __builtin_inff();
    lut = load_lut16(tb);
    for (int j = 0; j < 15; ++j) t[j] = set1_f(tb[j]);
  }
  LOWBIT_INLINE vi code(vf y) const {
    vi cnt = zero_i();
    if (nthr <= 15 && !kLut16Search) {  // count the thresholds below y
      for (int j = 0; j < nthr; ++j) cnt = count_lt(cnt, t[j], y);
      return cnt;
    }
    // a branch-free binary search (cnt: thr[0 .. cnt) < y), probing the register table up to
    // 15 thresholds, gathering beyond
    for (int step = (nthr + 1) / 2; step > 0; step /= 2) {
      const vi probe = add_i(cnt, set1_i(step)), at = sub_i(probe, set1_i(1));
      const vf tv = nthr <= 15 ? lut16_f(lut, at) : gather_f(thr, at);
      cnt = select_i(lt_f(tv, y), probe, cnt);
    }
    return cnt;
  }
};

// The scales of a call: one (kMode 0), one an element (1, ss = 1), or one a group of f.group
// consecutive elements (2; group a multiple of W, the call starting `off` elements into its
// first group's row).
template <int kMode>
struct EncScale {
  const float* s;
  vf s0;
  int64_t group, off;
  LOWBIT_INLINE EncScale(const float* s_, int64_t group_ = 0, int64_t off_ = 0)
      : s(s_), s0(kMode == 0 ? set1_f(s_[0]) : zero_f()), group(group_), off(off_) {}
  LOWBIT_INLINE vf at(int64_t i) const {
    if constexpr (kMode == 1) return load_f(s + i);
    if constexpr (kMode == 2) return set1_f(s[(off + i) / group]);
    return s0;
  }
  LOWBIT_INLINE vf at(int64_t i, vt t) const {
    if constexpr (kMode == 1) return load_f(s + i, t);
    return at(i);
  }
};

// run(mode) with the scale mode of a call (EncScale).
template <class F>
LOWBIT_INLINE void by_scale_mode(int64_t ss, int64_t group, F&& run) {
  if (ss)
    run(std::integral_constant<int, 1>{});
  else if (group)
    run(std::integral_constant<int, 2>{});
  else
    run(std::integral_constant<int, 0>{});
}

template <bool kPacked, int kMode, class Enc>
bool encode_impl(const float* x, int64_t n, const float* s, int64_t group, const Enc& enc,
                 uint8_t* out) {
  const EncScale<kMode> sc(s, group);
  vm nan = no_lanes();
  auto one = [&](int64_t i) {
    const vf y = div_f(load_f(x + i), sc.at(i));
    nan = mask_or(nan, is_nan(y));
    return enc.code(y);
  };
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    prefetch_block<4 * W>(x, i, n);
    const vi c0 = one(i), c1 = one(i + W), c2 = one(i + 2 * W), c3 = one(i + 3 * W);
    if constexpr (kPacked)
      store_q4x4(out + i / 2, c0, c1, c2, c3);
    else
      store_q8x4(out + i, c0, c1, c2, c3);
  }
  for (; i + W <= n; i += W) {
    if constexpr (kPacked)
      store_q4(out + i / 2, one(i));
    else
      store_q8(out + i, one(i));
  }
  if (i < n) {
    const vt t = tail_mask(n - i);
    const vf y = div_f(load_f(x + i, t), sc.at(i, t));
    nan = mask_or(nan, mask_and(is_nan(y), active(t)));
    // inactive lanes hold code(0), zeroed here: the high nibble of an odd n stays 0
    const vi c = keep_i(t, enc.code(y));
    if constexpr (kPacked)
      store_q4(out + i / 2, c, (n - i + 1) / 2);
    else
      store_q8(out + i, c, n - i);
  }
  return any(nan);
}

template <bool kPacked>
bool encode_any(const float* x, int64_t n, const float* s, int64_t ss, const FormatSpec& f,
                uint8_t* out) {
  if (n <= 0) return false;
  bool nan = false;
  by_scale_mode(ss, f.group, [&](auto mode) {
    constexpr int kMode = decltype(mode)::value;
    if (f.kind == 0)
      nan = encode_impl<kPacked, kMode>(x, n, s, f.group, FpEncoder(f), out);
    else
      nan = encode_impl<kPacked, kMode>(x, n, s, f.group, ThrEncoder(f), out);
  });
  return nan;
}

bool encode_f32_u8(const float* x, int64_t n, const float* s, int64_t ss, const FormatSpec& f,
                   uint8_t* out) {
  return encode_any<false>(x, n, s, ss, f, out);
}

bool encode_f32_p4(const float* x, int64_t n, const float* s, int64_t ss, const FormatSpec& f,
                   uint8_t* out) {
  return encode_any<true>(x, n, s, ss, f, out);
}

// ---------------------------------------------------------------------------------------------
// Decoders: table[code] * s, through a register table (16 entries) or gathers (256).

struct Lut16Values {
  Lut16 lut;
  explicit LOWBIT_INLINE Lut16Values(const FormatSpec& f) : lut(load_lut16(f.table)) {}
  LOWBIT_INLINE vf at(vi code) const { return lut16_f(lut, code); }
};

struct GatherValues {
  const float* table;
  explicit LOWBIT_INLINE GatherValues(const FormatSpec& f) : table(f.table) {}
  LOWBIT_INLINE vf at(vi code) const { return gather_f(table, code); }  // code < 256
};

template <class Src, int kMode, bool kStream, class Val>
void decode_impl(const uint8_t* c, int64_t n, const EncScale<kMode>& sc, const Val& val,
                 float* out) {
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    vi w[4];
    Src::load(c, i, w);
    for (int j = 0; j < 4; ++j)
      store_out<kStream>(out + i + j * W, mul_f(val.at(w[j]), sc.at(i + j * W)));
  }
  if (i < n) {
    vi w[4];
    Src::load(c, i, n - i, w);
    for (int j = 0; j < 4 && i < n; ++j, i += W) {
      if (n - i >= W) {
        store_out<kStream>(out + i, mul_f(val.at(w[j]), sc.at(i)));
      } else {
        const vt t = tail_mask(n - i);
        store_f(out + i, mul_f(val.at(w[j]), sc.at(i, t)), t);
      }
    }
  }
}

template <class Src, class Val>
void decode_any(const uint8_t* c, int64_t n, const float* s, int64_t ss, int64_t group,
                const Val& val, float* out) {
  if (n <= 0) return;
  split_stream(out, n, Src::kPacked, [&](auto stream, int64_t b, int64_t e) {
    constexpr bool kStream = decltype(stream)::value;
    by_scale_mode(ss, group, [&](auto mode) {
      constexpr int kMode = decltype(mode)::value;
      const EncScale<kMode> sc(kMode == 1 ? s + b : s, group, b);
      decode_impl<Src, kMode, kStream>(Src::at(c, b), e - b, sc, val, out + b);
    });
    return false;
  });
}

// fp8 codes through half precision (fp8_f): e4m3 values come times 2^-8 (scaled back, exact),
// and its NaN codes (S.1111.111, 1.875 after the scaling) become the table's NaN, as do e5m2's
// (a half NaN keeps payload bits the table's NaN has not).
template <bool kE4M3, int kMode, bool kStream>
void decode_fp8_impl(const uint8_t* c, int64_t n, const EncScale<kMode>& sc, float* out) {
  const vf up = set1_f(kE4M3 ? 256.0f : 1.0f), nan_mag = set1_f(1.875f);
  uint32_t qnan = 0x7FC00000u;
  float qnan_f;
  std::memcpy(&qnan_f, &qnan, 4);
  const vf nanv = set1_f(qnan_f), sign = set1_f(-0.0f);
  auto value = [&](vf h) {  // the format's value from fp8_f's
    if constexpr (kE4M3) {
      const vf v = mul_f(h, up);
      // |h| == 1.875 only for the NaN codes; the NaN keeps the code's sign, as the table's
      return select_f(eq_f(abs_f(h), nan_mag), or_f(and_f(h, sign), nanv), v);
    } else {  // half NaNs keep their payload: the table's NaN has none
      return select_f(is_nan(h), or_f(and_f(h, sign), nanv), h);
    }
  };
  int64_t i = 0;
  for (; i + W <= n; i += W) store_out<kStream>(out + i, mul_f(value(fp8_f<kE4M3>(c + i)), sc.at(i)));
  if (i < n) {
    uint8_t buf[64] = {};
    std::memcpy(buf, c + i, static_cast<size_t>(n - i));
    const vt t = tail_mask(n - i);
    store_f(out + i, mul_f(value(fp8_f<kE4M3>(buf)), sc.at(i, t)), t);
  }
}

template <bool kE4M3>
void decode_fp8(const uint8_t* c, int64_t n, const float* s, int64_t ss, int64_t group,
                float* out) {
  split_stream(out, n, false, [&](auto stream, int64_t b, int64_t e) {
    constexpr bool kStream = decltype(stream)::value;
    by_scale_mode(ss, group, [&](auto mode) {
      constexpr int kMode = decltype(mode)::value;
      const EncScale<kMode> sc(kMode == 1 ? s + b : s, group, b);
      decode_fp8_impl<kE4M3, kMode, kStream>(c + b, e - b, sc, out + b);
    });
    return false;
  });
}

void decode_u8_f32(const uint8_t* c, int64_t n, const float* s, int64_t ss, const FormatSpec& f,
                   float* out) {
  if (n <= 0) return;
  if (f.kind == 0 && f.ntable == 256) {  // fp8
    if (f.bias == 7)
      decode_fp8<true>(c, n, s, ss, f.group, out);
    else
      decode_fp8<false>(c, n, s, ss, f.group, out);
    return;
  }
  if (f.ntable == 16)
    decode_any<Bytes8<false>>(c, n, s, ss, f.group, Lut16Values(f), out);
  else
    decode_any<Bytes8<false>>(c, n, s, ss, f.group, GatherValues(f), out);
}

void decode_p4_f32(const uint8_t* c, int64_t n, const float* s, int64_t ss, const FormatSpec& f,
                   float* out) {
  decode_any<Nibbles<false>>(c, n, s, ss, f.group, Lut16Values(f), out);
}

// ---------------------------------------------------------------------------------------------
// gemv_f32: weight-only x @ W.T on rows of codes (GemvArgs, kernels.h). Per row of W: every
// group's products accumulate lane-wise for each of the m activation rows, are scaled by the
// group's scale into a running total, which is summed across lanes once at the end.

// Values of W codes: the 16-entry table of the row, gathered from 256, or fp8 bits.
struct GemvDecoder {
  Lut16 lut;
  const float* table;
  LOWBIT_INLINE void init(const GemvArgs& a, int64_t r) {
    table = a.f.table + r * a.f.table_stride;
    lut = load_lut16(table);
  }
  template <int kMode>  // 0: the 16-entry register table, 1: gathered from 256 entries
  LOWBIT_INLINE vf at(vi c) const {
    static_assert(kMode == 0 || kMode == 1, "fp8 codes go through fp8_f");
    if constexpr (kMode == 0) return lut16_f(lut, c);
    return gather_f(table, c);
  }
};

// The end of group j for kR rows of W: its sums, scaled (times `factor`, an exact power of two),
// into the running totals.
template <int kR, int kM>
LOWBIT_INLINE void gemv_scale_group(const GemvArgs& a, int64_t r, int64_t j, float factor,
                                    const vf (&acc)[kR][kM], vf (&tot)[kR][kM]) {
  for (int q = 0; q < kR; ++q) {
    const vf sj = set1_f(a.s[(r + q) * a.s_stride + j] * factor);
    for (int i = 0; i < kM; ++i) tot[q][i] = fma_f(acc[q][i], sj, tot[q][i]);
  }
}

// y for kR rows of W: each total summed across lanes, plus the bias.
template <int kR, int kM>
LOWBIT_INLINE void gemv_store_rows(const GemvArgs& a, int64_t r, const vf (&tot)[kR][kM]) {
  for (int q = 0; q < kR; ++q)
    for (int i = 0; i < kM; ++i) {
      const float y = hsum_f(tot[q][i]);
      a.y[i * a.ldy + r + q] = a.bias ? y + a.bias[r + q] : y;
    }
}

// 8-bit codes, kR rows of W at once (independent accumulators hide the FMA latency, one x load
// serves kR rows), kM activation rows. kMode: 0 / 1 the decoder's tables, 2 / 3 fp8 e5m2 / e4m3.
template <int kMode, bool kShared, int kM, int kR>
void gemv_rows(const GemvArgs& a, int64_t r0, int64_t r1) {
  const int64_t g = a.g >= a.k ? a.k : a.g;
  const int64_t ngroups = a.k ? (a.k + g - 1) / g : 0;
  const int64_t kfull = a.k - a.k % W;  // whole vectors
  for (int64_t r = r0; r + kR <= r1; r += kR) {
    GemvDecoder dec[kR];
    if constexpr (kMode < 2)
      for (int q = 0; q < (kShared ? 1 : kR); ++q) dec[q].init(a, r + q);
    const uint8_t* w[kR];
    for (int q = 0; q < kR; ++q) w[q] = a.w + (r + q) * a.ldw;
    vf tot[kR][kM];
    for (int q = 0; q < kR; ++q)
      for (int i = 0; i < kM; ++i) tot[q][i] = zero_f();
    for (int64_t j = 0; j < ngroups; ++j) {
      const int64_t k0 = j * g, k1 = a.k < k0 + g ? a.k : k0 + g;
      vf acc[kR][kM];
      for (int q = 0; q < kR; ++q)
        for (int i = 0; i < kM; ++i) acc[q][i] = zero_f();
      int64_t kk = k0;
      if constexpr (kMode >= 2) {  // fp8: 2 W codes a step, one widening
        for (; kk + 2 * W <= k1 && kk + 2 * W <= kfull; kk += 2 * W) {
          vf x0[kM], x1[kM];
          for (int i = 0; i < kM; ++i) {
            x0[i] = load_f(a.x + i * a.ldx + kk);
            x1[i] = load_f(a.x + i * a.ldx + kk + W);
          }
          for (int q = 0; q < kR; ++q) {
            vf v0, v1;
            fp8x2_f<kMode == 3>(w[q] + kk, v0, v1);
            for (int i = 0; i < kM; ++i) acc[q][i] = fma_f(v1, x1[i], fma_f(v0, x0[i], acc[q][i]));
          }
        }
      }
      for (; kk + W <= k1 && kk < kfull; kk += W) {
        vf xv[kM];
        for (int i = 0; i < kM; ++i) xv[i] = load_f(a.x + i * a.ldx + kk);
        for (int q = 0; q < kR; ++q) {
          vf v;
          if constexpr (kMode >= 2)
            v = fp8_f<kMode == 3>(w[q] + kk);
          else
            v = dec[kShared ? 0 : q].template at<kMode>(load_u8_i(w[q] + kk));
          for (int i = 0; i < kM; ++i) acc[q][i] = fma_f(v, xv[i], acc[q][i]);
        }
      }
      if (kk < k1) {  // the rows' last, partial vector: codes copied out, x masked
        const int64_t left = k1 - kk;
        const vt t = tail_mask(left);
        vf xv[kM];
        for (int i = 0; i < kM; ++i) xv[i] = load_f(a.x + i * a.ldx + kk, t);
        for (int q = 0; q < kR; ++q) {
          uint8_t buf[64] = {};
          std::memcpy(buf, w[q] + kk, static_cast<size_t>(left));
          vf v;
          if constexpr (kMode >= 2)
            v = fp8_f<kMode == 3>(buf);
          else
            v = dec[kShared ? 0 : q].template at<kMode>(load_u8_i(buf));
          for (int i = 0; i < kM; ++i) acc[q][i] = fma_f(v, xv[i], acc[q][i]);
        }
      }
      // e4m3 values came times 2^-8 (fp8_f): the exact power of two goes into the scale
      gemv_scale_group<kR, kM>(a, r, j, kMode == 3 ? 256.0f : 1.0f, acc, tot);
    }
    gemv_store_rows<kR, kM>(a, r, tot);
  }
}

// 4-bit codes: W bytes a step, their low nibbles (even k) and high nibbles (odd k) in two
// vectors of int32 lanes, against the even and odd elements of x (split once a call into
// xs[i][0 .. kh) and xs[i][kh .. 2 kh), zero past k). Groups start on a whole step (g a multiple
// of 2 W, or one group).
template <bool kShared, int kM, int kR>
void gemv4_rows(const GemvArgs& a, const float* xs, int64_t kh, int64_t r0, int64_t r1) {
  const int64_t g = a.g >= a.k ? a.k : a.g;
  const int64_t ngroups = a.k ? (a.k + g - 1) / g : 0;
  const int64_t nbytes = (a.k + 1) / 2, fullb = nbytes - nbytes % W;
  for (int64_t r = r0; r + kR <= r1; r += kR) {
    GemvDecoder dec[kR];
    for (int q = 0; q < (kShared ? 1 : kR); ++q) dec[q].init(a, r + q);
    const uint8_t* w[kR];
    for (int q = 0; q < kR; ++q) w[q] = a.w + (r + q) * a.ldw;
    vf tot[kR][kM];
    for (int q = 0; q < kR; ++q)
      for (int i = 0; i < kM; ++i) tot[q][i] = zero_f();
    for (int64_t j = 0; j < ngroups; ++j) {
      const int64_t b0 = j * g / 2, b1 = nbytes < (j + 1) * g / 2 || g >= a.k ? nbytes
                                                                               : (j + 1) * g / 2;
      vf acc[kR][kM];
      for (int q = 0; q < kR; ++q)
        for (int i = 0; i < kM; ++i) acc[q][i] = zero_f();
      for (int64_t b = b0; b < b1; b += W) {
        vf xe[kM], xo[kM];
        for (int i = 0; i < kM; ++i) {
          xe[i] = load_f(xs + i * 2 * kh + b);
          xo[i] = load_f(xs + i * 2 * kh + kh + b);
        }
        for (int q = 0; q < kR; ++q) {
          vi c;
          if (b < fullb) {
            c = load_u8_i(w[q] + b);
          } else {  // the row's last bytes, copied out
            uint8_t buf[64] = {};
            std::memcpy(buf, w[q] + b, static_cast<size_t>(nbytes - b));
            c = load_u8_i(buf);
          }
          const GemvDecoder& d = dec[kShared ? 0 : q];
          const vf lo = d.template at<0>(c), hi = d.template at<0>(srl_i(c, 4));
          for (int i = 0; i < kM; ++i) acc[q][i] = fma_f(hi, xo[i], fma_f(lo, xe[i], acc[q][i]));
        }
      }
      gemv_scale_group<kR, kM>(a, r, j, 1.0f, acc, tot);
    }
    gemv_store_rows<kR, kM>(a, r, tot);
  }
}

template <bool kShared, int kM>
void gemv4_m(const GemvArgs& a) {
  constexpr int kR = kM <= 2 ? 4 : 2;
  const int64_t nbytes = (a.k + 1) / 2, kh = (nbytes + W - 1) / W * W;
  float* xs = new float[static_cast<size_t>(kM * 2 * kh)]();
  for (int i = 0; i < kM; ++i)
    for (int64_t kk = 0; kk < a.k; ++kk) xs[i * 2 * kh + (kk & 1) * kh + kk / 2] = a.x[i * a.ldx + kk];
  const int64_t body = a.rows - a.rows % kR;
  gemv4_rows<kShared, kM, kR>(a, xs, kh, 0, body);
  gemv4_rows<kShared, kM, 1>(a, xs, kh, body, a.rows);
  delete[] xs;
}

template <bool kShared>
void gemv4(const GemvArgs& a) {
  switch (a.m) {
    case 1: return gemv4_m<kShared, 1>(a);
    case 2: return gemv4_m<kShared, 2>(a);
    case 3: return gemv4_m<kShared, 3>(a);
    default: return gemv4_m<kShared, 4>(a);
  }
}

template <int kMode, bool kShared, int kM>
void gemv_m(const GemvArgs& a) {
  constexpr int kR = kM <= 2 ? 4 : 2;
  const int64_t body = a.rows - a.rows % kR;
  gemv_rows<kMode, kShared, kM, kR>(a, 0, body);
  gemv_rows<kMode, kShared, kM, 1>(a, body, a.rows);
}

template <int kMode, bool kShared>
void gemv_mode(const GemvArgs& a) {
  switch (a.m) {
    case 1: return gemv_m<kMode, kShared, 1>(a);
    case 2: return gemv_m<kMode, kShared, 2>(a);
    case 3: return gemv_m<kMode, kShared, 3>(a);
    default: return gemv_m<kMode, kShared, 4>(a);
  }
}

void gemv_f32(const GemvArgs& a) {
  if (a.m <= 0 || a.rows <= 0) return;
  const bool shared = a.f.table_stride == 0;
  if (a.code_bits == 4) return shared ? gemv4<true>(a) : gemv4<false>(a);  // a 16-entry table
  if (a.f.kind == 0)  // fp8 bits through half precision: 3 e4m3 (bias 7), 2 e5m2
    return a.f.bias == 7 ? gemv_mode<3, true>(a) : gemv_mode<2, true>(a);
  if (a.f.ntable == 16) return shared ? gemv_mode<0, true>(a) : gemv_mode<0, false>(a);
  return shared ? gemv_mode<1, true>(a) : gemv_mode<1, false>(a);
}

// gemv_panel_f32: each row's codes decoded W at a time by the gemv decoders and scaled (W codes
// share a scale when groups are multiples of W; else a scale an element), then written down the
// panel's column.
template <int kBits, int kMode, bool kShared>
void panel_rows(const GemvArgs& a, int64_t r0, int nr, int64_t k0, int64_t kc, int64_t ldo,
                float* out) {
  const int64_t g = a.g >= a.k ? a.k : a.g;
  alignas(64) float buf[W];
  GemvDecoder dec;
  if (kMode < 2) dec.init(a, 0);
  for (int c = 0; c < nr; ++c) {
    const int64_t r = r0 + c;
    if (r >= a.rows) {
      for (int64_t kk = 0; kk < kc; ++kk) out[kk * ldo + c] = 0.0f;
      continue;
    }
    if (kMode < 2 && !kShared) dec.init(a, r);
    const uint8_t* w = a.w + r * a.ldw;
    const float scale_e4m3 = kMode == 3 ? 256.0f : 1.0f;  // fp8_f's e4m3 values are times 2^-8
    for (int64_t kk = 0; kk < kc; kk += W) {
      const int64_t k = k0 + kk, left = kc - kk < W ? kc - kk : W;
      uint8_t cb[64] = {};
      const int64_t nbytes = kBits == 4 ? (left + 1) / 2 : left;
      std::memcpy(cb, w + (kBits == 4 ? k / 2 : k), static_cast<size_t>(nbytes));
      vf v;
      if constexpr (kMode >= 2)
        v = mul_f(fp8_f<kMode == 3>(cb), set1_f(scale_e4m3));
      else
        v = dec.template at<kMode>(kBits == 4 ? load_nib_i(cb) : load_u8_i(cb));
      if (g % W == 0 && k0 % W == 0) {  // one scale for the W codes
        store_f(buf, mul_f(v, set1_f(a.s[r * a.s_stride + k / g])));
        for (int64_t j = 0; j < left; ++j) out[(kk + j) * ldo + c] = buf[j];
      } else {  // any other group size: a scale an element
        store_f(buf, v);
        for (int64_t j = 0; j < left; ++j)
          out[(kk + j) * ldo + c] = buf[j] * a.s[r * a.s_stride + (k + j) / g];
      }
    }
  }
}

void gemv_panel_f32(const GemvArgs& a, int64_t r0, int nr, int64_t k0, int64_t kc, int64_t ldo,
                    float* out) {
  const bool shared = a.f.table_stride == 0;
  if (a.code_bits == 4) {
    if (shared)
      panel_rows<4, 0, true>(a, r0, nr, k0, kc, ldo, out);
    else
      panel_rows<4, 0, false>(a, r0, nr, k0, kc, ldo, out);
  } else if (a.f.kind == 0) {
    if (a.f.bias == 7)
      panel_rows<8, 3, true>(a, r0, nr, k0, kc, ldo, out);
    else
      panel_rows<8, 2, true>(a, r0, nr, k0, kc, ldo, out);
  } else if (a.f.ntable == 16) {
    if (shared)
      panel_rows<8, 0, true>(a, r0, nr, k0, kc, ldo, out);
    else
      panel_rows<8, 0, false>(a, r0, nr, k0, kc, ldo, out);
  } else {
    if (shared)
      panel_rows<8, 1, true>(a, r0, nr, k0, kc, ldo, out);
    else
      panel_rows<8, 1, false>(a, r0, nr, k0, kc, ldo, out);
  }
}
