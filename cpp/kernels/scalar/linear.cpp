// Portable scalar kernels of lb.linear: built with the baseline flags only, reached on every CPU.
// The integer sums and the float epilogue define the bits every SIMD path must reproduce (the
// epilogue follows lowbit.reference.linear's float order: one float32 rounding per operation,
// never fused). The weight-only kernels sum in float32 in their own order (a tolerance applies).
#include "gemm_geometry.h"
#include "lowbit/kernels.h"

namespace lowbit {
namespace scalar {
namespace {

inline int32_t lo16(int32_t w) { return static_cast<int16_t>(static_cast<uint32_t>(w) & 0xFFFFu); }
inline int32_t hi16(int32_t w) { return static_cast<int16_t>(static_cast<uint32_t>(w) >> 16); }

// u[2p + t][c] of a B panel: 8-bit byte 2c+t of pair p; 4-bit: nibble of byte 2(c mod 8)+t,
// low for c < 8, high for c >= 8.
inline int32_t u8_at(const uint8_t* b, int64_t p, int t, int c) { return b[p * 2 * kNR + 2 * c + t]; }
inline int32_t u4_at(const uint8_t* b, int64_t p, int t, int c) {
  const uint8_t byte = b[p * kNR + 2 * (c & 7) + t];
  return c < 8 ? byte & 15 : byte >> 4;
}

#include "generic/linear_epilogue.h"

// The per-channel formula: float(C) * (as * ws), then + bias.
inline float per_channel(const LinearEpilogue& e, int r, int c, float v) {
  v = v * (e.as[r] * e.ws[c]);
  return e.bias ? v + e.bias[c] : v;
}

// The end of the per-group formula: t * as, then + bias.
inline float finish_group(const LinearEpilogue& e, int r, int c, float t) {
  t = t * e.as[r];
  return e.bias ? t + e.bias[c] : t;
}

template <bool kFour>
void small_s32(int64_t kp, int64_t gp, const int32_t* a, int m, const uint8_t* b,
               const LinearEpilogue& e) {
  float t[kMR][kNR] = {};  // running per-group sums (0.0f + the first group, as the reference)
  for (int64_t p0 = 0, j = 0; p0 < kp; p0 += gp, ++j) {
    const int64_t p1 = p0 + gp < kp ? p0 + gp : kp;
    uint32_t acc[kMR][kNR] = {};
    for (int64_t p = p0; p < p1; ++p) {
      for (int r = 0; r < m; ++r) {
        int32_t a0, a1;
        if (kFour) {  // A quad word p / 2: bytes 2 (p & 1) and 2 (p & 1) + 1 are this pair
          const uint32_t w = static_cast<uint32_t>(a[(p / 2) * kMR + r]) >> (16 * (p & 1));
          a0 = int8_t(w & 0xFFu), a1 = int8_t((w >> 8) & 0xFFu);
        } else {
          a0 = lo16(a[p * kMR + r]), a1 = hi16(a[p * kMR + r]);
        }
        for (int c = 0; c < kNR; ++c) {
          const int32_t u0 = kFour ? u4_at(b, p, 0, c) : u8_at(b, p, 0, c);
          const int32_t u1 = kFour ? u4_at(b, p, 1, c) : u8_at(b, p, 1, c);
          acc[r][c] += static_cast<uint32_t>(a0 * u0 + a1 * u1);  // |.| <= 2 * 32768 * 255
        }
      }
    }
    for (int r = 0; r < m; ++r) {
      for (int c = 0; c < e.n; ++c) {
        const float v = corrected(e, j, r, c, acc[r][c]);
        if (e.grouped) {
          t[r][c] = t[r][c] + v * e.ws[j * e.w_group + c];
        } else {
          e.y[r * e.ldy + c] = per_channel(e, r, c, v);
        }
      }
    }
  }
  if (e.grouped)
    for (int r = 0; r < m; ++r)
      for (int c = 0; c < e.n; ++c) e.y[r * e.ldy + c] = finish_group(e, r, c, t[r][c]);
}

void linear_small_u8_s32(int64_t kp, int64_t gp, const int32_t* a, int m, const uint8_t* b,
                         const LinearEpilogue& e) {
  small_s32<false>(kp, gp, a, m, b, e);
}

void linear_small_u4_s32(int64_t kp, int64_t gp, const int32_t* a, int m, const uint8_t* b,
                         const LinearEpilogue& e) {
  small_s32<true>(kp, gp, a, m, b, e);
}

void linear_epilogue_s32(const LinearEpilogue& e) {
  for (int r = 0; r < e.m; ++r) {
    float* yr = e.y + r * e.ldy;
    for (int c = 0; c < e.n; ++c) {
      if (!e.grouped) {
        yr[c] = per_channel(e, r, c, corrected(e, 0, r, c, static_cast<uint32_t>(e.s[r * e.lds + c])));
        continue;
      }
      float v = e.t_zero ? 0.0f : e.t[r * e.ldt + c];
      for (int64_t j = 0; j < e.ngroups; ++j)
        v = v + corrected(e, j, r, c, static_cast<uint32_t>(e.s[j * e.s_group + r * e.lds + c])) *
                    e.ws[j * e.w_group + c];
      if (e.finish) {
        yr[c] = finish_group(e, r, c, v);
      } else {
        e.t[r * e.ldt + c] = v;
      }
    }
  }
}

// Sums of one 6x16 block over A words [w0, w1) for linear_tile_*: k-pairs x an 8-bit panel, or
// int8 k-quads x a B quad panel (byte 4c+i of the quad's first 32 bytes: column c, k = 4q+i;
// the next 32 bytes: column c + 8).
template <bool kQuads>
void tile_sums(int64_t w0, int64_t w1, const int32_t* a, const uint8_t* b, int m,
               uint32_t (&acc)[kMR][kNR]) {
  for (int r = 0; r < kMR; ++r)
    for (int c = 0; c < kNR; ++c) acc[r][c] = 0;
  for (int64_t w = w0; w < w1; ++w) {
    for (int r = 0; r < m; ++r) {
      const uint32_t word = static_cast<uint32_t>(a[w * kMR + r]);
      for (int c = 0; c < kNR; ++c) {
        int32_t sum = 0;
        if (kQuads) {
          const uint8_t* bq = b + w * 4 * kNR + (c < 8 ? 4 * c : 2 * kNR + 4 * (c - 8));
          for (int i = 0; i < 4; ++i) sum += int32_t(int8_t(word >> (8 * i))) * bq[i];
        } else {
          sum = lo16(static_cast<int32_t>(word)) * b[w * 2 * kNR + 2 * c] +
                hi16(static_cast<int32_t>(word)) * b[w * 2 * kNR + 2 * c + 1];
        }
        acc[r][c] += static_cast<uint32_t>(sum);
      }
    }
  }
}

template <bool kQuads>
void tile_groups(int64_t ng, int64_t gw, int64_t wlast, const int32_t* a, const uint8_t* b,
                 const LinearEpilogue& e) {
  for (int64_t j = 0; j < ng; ++j) {
    uint32_t acc[kMR][kNR];
    tile_sums<kQuads>(j * gw, j * gw + (j == ng - 1 ? wlast : gw), a, b, e.m, acc);
    for (int r = 0; r < e.m; ++r) {
      for (int c = 0; c < e.n; ++c) {
        float* t = e.t + r * e.ldt + c;
        const float prev = j == 0 && e.t_zero ? 0.0f : *t;
        const float v = prev + corrected(e, j, r, c, acc[r][c]) * e.ws[j * e.w_group + c];
        if (j == ng - 1 && e.finish) {
          e.y[r * e.ldy + c] = finish_group(e, r, c, v);
        } else {
          *t = v;
        }
      }
    }
  }
}

void linear_tile_u8_s32(int64_t ng, int64_t gw, int64_t wlast, const int32_t* a,
                        const uint8_t* b, const LinearEpilogue& e) {
  tile_groups<false>(ng, gw, wlast, a, b, e);
}

void linear_tile_q4_s32(int64_t ng, int64_t gw, int64_t wlast, const int32_t* a,
                        const uint8_t* b, const LinearEpilogue& e) {
  tile_groups<true>(ng, gw, wlast, a, b, e);
}

template <bool kFour>
void small_f32(int64_t kp, int64_t gp, const float* x, int64_t ldx, int m, const uint8_t* b,
               const int32_t* zb, const float* ws, int64_t w_group, const float* bias, float* y,
               int64_t ldy, int n) {
  for (int r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    for (int c = 0; c < n; ++c) {
      float total = 0.0f;
      for (int64_t p0 = 0, j = 0; p0 < kp; p0 += gp, ++j) {
        const int64_t p1 = p0 + gp < kp ? p0 + gp : kp;
        const int32_t z = zb[j * w_group + c];
        float part = 0.0f;
        for (int64_t p = p0; p < p1; ++p) {
          for (int t = 0; t < 2; ++t) {
            const int32_t u = kFour ? u4_at(b, p, t, c) : u8_at(b, p, t, c);
            part = part + xr[2 * p + t] * static_cast<float>(u - z);
          }
        }
        total = total + part * ws[j * w_group + c];
      }
      if (bias) total = total + bias[c];
      y[r * ldy + c] = total;
    }
  }
}

void linear_small_u8_f32(int64_t kp, int64_t gp, const float* x, int64_t ldx, int m,
                         const uint8_t* b, const int32_t* zb, const float* ws, int64_t w_group,
                         const float* bias, float* y, int64_t ldy, int n) {
  small_f32<false>(kp, gp, x, ldx, m, b, zb, ws, w_group, bias, y, ldy, n);
}

void linear_small_u4_f32(int64_t kp, int64_t gp, const float* x, int64_t ldx, int m,
                         const uint8_t* b, const int32_t* zb, const float* ws, int64_t w_group,
                         const float* bias, float* y, int64_t ldy, int n) {
  small_f32<true>(kp, gp, x, ldx, m, b, zb, ws, w_group, bias, y, ldy, n);
}

template <bool kFour>
void dequant(const uint8_t* b, int64_t p0, int64_t kp, int64_t gp, const int32_t* zb,
             const float* ws, int64_t w_group, float* out) {
  for (int64_t p = p0; p < p0 + kp; ++p) {
    const int64_t j = p / gp;
    const int32_t* z = zb + j * w_group;
    const float* s = ws + j * w_group;
    for (int t = 0; t < 2; ++t) {
      float* o = out + (2 * (p - p0) + t) * kNR;
      for (int c = 0; c < kNR; ++c) {
        const int32_t u = kFour ? u4_at(b, p, t, c) : u8_at(b, p, t, c);
        o[c] = static_cast<float>(u - z[c]) * s[c];
      }
    }
  }
}

void linear_dequant_u8_f32(const uint8_t* b, int64_t p0, int64_t kp, int64_t gp,
                           const int32_t* zb, const float* ws, int64_t w_group, float* out) {
  dequant<false>(b, p0, kp, gp, zb, ws, w_group, out);
}

void linear_dequant_u4_f32(const uint8_t* b, int64_t p0, int64_t kp, int64_t gp,
                           const int32_t* zb, const float* ws, int64_t w_group, float* out) {
  dequant<true>(b, p0, kp, gp, zb, ws, w_group, out);
}

void linear_tile_f32(int64_t kk, const float* a, const float* b, float* c, int64_t ldc, int m,
                     int n, int accumulate) {
  float acc[kMR][kNR] = {};
  for (int64_t k = 0; k < kk; ++k)
    for (int r = 0; r < kMR; ++r)
      for (int j = 0; j < kNR; ++j) acc[r][j] = acc[r][j] + a[k * kMR + r] * b[k * kNR + j];
  for (int r = 0; r < m; ++r)
    for (int j = 0; j < n; ++j) c[r * ldc + j] = accumulate ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}

}  // namespace

void fill_linear(KernelTable& t) {
#define LOWBIT_KERNEL(name, type) t.name = name;
#include "lowbit/linear_kernels.inc"
#undef LOWBIT_KERNEL
}

}  // namespace scalar
}  // namespace lowbit
