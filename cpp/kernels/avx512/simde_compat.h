// The AVX-512 intrinsics of cpp/kernels/avx512 and cpp/kernels/avx512_vnni, so the kernel code reads
// as ordinary AVX-512 in both builds:
//  - native build (-mavx512f -mavx512bw -mavx512dq -mavx512vl): the compiler's <immintrin.h>;
//  - emulated build (CMake LOWBIT_EMULATE_AVX512=ON defines LOWBIT_SIMDE=1, AVX2 flags only):
//    SIMDe's emulation (simde-py 0.8.2.post1) under the usual _mm512_* names, with the gaps and
//    faults of that version fixed below. Nothing here may need AVX-512 hardware: an intrinsic
//    that neither SIMDe nor this file provides falls through to the compiler's declaration and
//    fails to compile ("target specific option mismatch"), never into an EVEX instruction.
//
// Measured on SIMDe 0.8.2 with g++ 12 (issue 9): its arithmetic, rounding conversions, compares,
// min/max, saturating narrows and shuffles match the hardware bit for bit, but
//  - its masked loads and stores touch all 64 bytes (a fault at a page end, and
//    _mm512_mask_storeu_ps writes zeros into the unmasked lanes): replaced below by copies of
//    the active lanes only, for any mask;
//  - it lacks _mm512_cvt_roundps_epi32, _mm512_stream_ps, the truncating narrow
//    _mm512_cvtepi32_epi8, the widenings _mm512_cvtepi8_epi32 / _mm512_cvtepu8_epi32 /
//    _mm512_cvtepu8_epi16, _mm512_maskz_loadu_epi32 / _epi8, _mm512_mask_storeu_epi8 and
//    _mm_mask_storeu_epi8: defined below by their definitions in Intel's guide, lane by lane;
//  - _mm512_rcp14_ps does not reproduce the hardware's table: not used anywhere.
#pragma once

#ifdef LOWBIT_SIMDE
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#include <cstdint>
#include <cstring>

namespace lowbit {
namespace simde_compat {
namespace {

// Lanes j with bit j of k set, each T of N, from p / to p; nothing else is read or written.
template <class V, class T, int N, class M>
inline V masked_load(M k, const void* p) {
  T v[N] = {};
  const unsigned char* b = static_cast<const unsigned char*>(p);
  for (int j = 0; j < N; ++j)
    if ((k >> j) & 1) std::memcpy(&v[j], b + j * sizeof(T), sizeof(T));
  V r;
  std::memcpy(&r, v, sizeof r);
  return r;
}

template <class T, int N, class M, class V>
inline void masked_store(void* p, M k, V a) {
  T v[N];
  std::memcpy(v, &a, sizeof v);
  unsigned char* b = static_cast<unsigned char*>(p);
  for (int j = 0; j < N; ++j)
    if ((k >> j) & 1) std::memcpy(b + j * sizeof(T), &v[j], sizeof(T));
}

// Lane-wise conversion of N lanes From -> To (C++ conversion: truncation to an unsigned type,
// sign or zero extension to a wider one), as Intel's pseudo-code for vpmov / vpmovsx / vpmovzx.
template <class R, class To, class From, int N, class A>
inline R convert(A a) {
  From in[N];
  To out[N];
  std::memcpy(in, &a, sizeof in);
  for (int j = 0; j < N; ++j) out[j] = static_cast<To>(in[j]);
  R r;
  std::memcpy(&r, out, sizeof r);
  return r;
}

// vpdpbusd (avx512_vnni): src + the sum of the 4 products of unsigned bytes of a and signed
// bytes of b in each int32 lane, wrapping. SIMDe's lane loop is ~70x slower than the hardware;
// on AVX2, each 256-bit half widens the even and odd bytes to int16 (zero-extended for a,
// sign-extended for b), where vpmaddwd sums two exact products (|.| <= 2 * 255 * 128) into an
// int32, and two vpaddd finish the lane: the same integer as the definition, exactly.
inline __m256i dpbusd256(__m256i src, __m256i a, __m256i b) {
  const __m256i lo8 = _mm256_set1_epi16(0x00FF);
  const __m256i a_even = _mm256_and_si256(a, lo8), a_odd = _mm256_srli_epi16(a, 8);
  const __m256i b_even = _mm256_srai_epi16(_mm256_slli_epi16(b, 8), 8);
  const __m256i b_odd = _mm256_srai_epi16(b, 8);
  return _mm256_add_epi32(src, _mm256_add_epi32(_mm256_madd_epi16(a_even, b_even),
                                                _mm256_madd_epi16(a_odd, b_odd)));
}

inline __m512i dpbusd(__m512i src, __m512i a, __m512i b) {
  alignas(64) __m256i s[2], x[2], y[2];
  std::memcpy(s, &src, 64);
  std::memcpy(x, &a, 64);
  std::memcpy(y, &b, 64);
  s[0] = dpbusd256(s[0], x[0], y[0]);
  s[1] = dpbusd256(s[1], x[1], y[1]);
  __m512i r;
  std::memcpy(&r, s, 64);
  return r;
}

// Wrapping integer adds, subtracts and multiplies: SIMDe writes them as GCC vector arithmetic on
// signed lanes, whose overflow is undefined behaviour in C++ (UBSan stops the sanitizer job at
// 127 + 8 in an int8 lane); the AVX2 instructions on the two 256-bit halves wrap by definition.
#define LOWBIT_SC_HALVES_(name, op256)                              \
  inline __m512i name(__m512i a, __m512i b) {                      \
    alignas(64) __m256i x[2], y[2];                                \
    std::memcpy(x, &a, 64);                                        \
    std::memcpy(y, &b, 64);                                        \
    x[0] = op256(x[0], y[0]);                                      \
    x[1] = op256(x[1], y[1]);                                      \
    __m512i r;                                                     \
    std::memcpy(&r, x, 64);                                        \
    return r;                                                      \
  }
LOWBIT_SC_HALVES_(add_epi8, _mm256_add_epi8)
LOWBIT_SC_HALVES_(sub_epi8, _mm256_sub_epi8)
LOWBIT_SC_HALVES_(add_epi16, _mm256_add_epi16)
LOWBIT_SC_HALVES_(sub_epi16, _mm256_sub_epi16)
LOWBIT_SC_HALVES_(add_epi32, _mm256_add_epi32)
LOWBIT_SC_HALVES_(sub_epi32, _mm256_sub_epi32)
LOWBIT_SC_HALVES_(mullo_epi32, _mm256_mullo_epi32)
LOWBIT_SC_HALVES_(add_epi64, _mm256_add_epi64)
LOWBIT_SC_HALVES_(sub_epi64, _mm256_sub_epi64)
#undef LOWBIT_SC_HALVES_

// A gather of 16 floats, lane by lane (scale 4: float indices). Neither SIMDe's emulation nor
// two AVX2 vgatherdps gave the right lanes under qemu-user 7.2 (whose vgatherdps is right in
// the native AVX2 build); the emulated build is for correctness, not speed.
inline __m512 i32gather_ps(__m512i idx, const float* base) {
  alignas(64) int32_t i[16];
  alignas(64) float v[16];
  std::memcpy(i, &idx, 64);
  for (int j = 0; j < 16; ++j) v[j] = base[i[j]];
  __m512 r;
  std::memcpy(&r, v, 64);
  return r;
}

inline void stream_ps(float* p, __m512 a) {  // two 32-byte movntps, both aligned (p is 64-aligned)
  _mm256_stream_ps(p, simde_mm512_castps512_ps256(a));
  _mm256_stream_ps(p + 8, simde_mm512_extractf32x8_ps(a, 1));
}

}  // namespace
}  // namespace simde_compat
}  // namespace lowbit

#define LOWBIT_SC_ ::lowbit::simde_compat::
#undef _mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_ps(k, p) (LOWBIT_SC_ masked_load<__m512, float, 16>((k), (p)))
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps(p, k, a) (LOWBIT_SC_ masked_store<float, 16>((p), (k), (a)))
#undef _mm512_maskz_loadu_epi32
#define _mm512_maskz_loadu_epi32(k, p) (LOWBIT_SC_ masked_load<__m512i, int32_t, 16>((k), (p)))
#undef _mm512_maskz_loadu_epi8
#define _mm512_maskz_loadu_epi8(k, p) (LOWBIT_SC_ masked_load<__m512i, uint8_t, 64>((k), (p)))
#undef _mm512_mask_storeu_epi8
#define _mm512_mask_storeu_epi8(p, k, a) (LOWBIT_SC_ masked_store<uint8_t, 64>((p), (k), (a)))
#undef _mm_mask_storeu_epi8
#define _mm_mask_storeu_epi8(p, k, a) (LOWBIT_SC_ masked_store<uint8_t, 16>((p), (k), (a)))
// vcvtps2dq with an explicit rounding mode == round to an integral float in that mode
// (vrndscaleps, scale 0), then the exact truncating conversion; out-of-range and NaN lanes give
// 0x80000000 either way.
#undef _mm512_cvt_roundps_epi32
#define _mm512_cvt_roundps_epi32(a, r) (simde_mm512_cvttps_epi32(simde_mm512_roundscale_ps((a), (r))))
#undef _mm512_stream_ps
#define _mm512_stream_ps(p, a) (LOWBIT_SC_ stream_ps((p), (a)))
#undef _mm512_cvtepi32_epi8
#define _mm512_cvtepi32_epi8(a) (LOWBIT_SC_ convert<__m128i, uint8_t, uint32_t, 16>(a))
#undef _mm512_cvtepi8_epi32
#define _mm512_cvtepi8_epi32(a) (LOWBIT_SC_ convert<__m512i, int32_t, int8_t, 16>(a))
#undef _mm512_cvtepu8_epi32
#define _mm512_cvtepu8_epi32(a) (LOWBIT_SC_ convert<__m512i, int32_t, uint8_t, 16>(a))
#undef _mm512_cvtepu8_epi16
#define _mm512_cvtepu8_epi16(a) (LOWBIT_SC_ convert<__m512i, uint16_t, uint8_t, 32>(a))
#undef _mm512_add_epi8
#define _mm512_add_epi8(a, b) (LOWBIT_SC_ add_epi8((a), (b)))
#undef _mm512_sub_epi8
#define _mm512_sub_epi8(a, b) (LOWBIT_SC_ sub_epi8((a), (b)))
#undef _mm512_add_epi16
#define _mm512_add_epi16(a, b) (LOWBIT_SC_ add_epi16((a), (b)))
#undef _mm512_sub_epi16
#define _mm512_sub_epi16(a, b) (LOWBIT_SC_ sub_epi16((a), (b)))
#undef _mm512_add_epi32
#define _mm512_add_epi32(a, b) (LOWBIT_SC_ add_epi32((a), (b)))
#undef _mm512_sub_epi32
#define _mm512_sub_epi32(a, b) (LOWBIT_SC_ sub_epi32((a), (b)))
#undef _mm512_mullo_epi32
#define _mm512_mullo_epi32(a, b) (LOWBIT_SC_ mullo_epi32((a), (b)))
#undef _mm512_add_epi64
#define _mm512_add_epi64(a, b) (LOWBIT_SC_ add_epi64((a), (b)))
#undef _mm512_sub_epi64
#define _mm512_sub_epi64(a, b) (LOWBIT_SC_ sub_epi64((a), (b)))
#undef _mm512_i32gather_ps
#define _mm512_i32gather_ps(idx, base, scale) (LOWBIT_SC_ i32gather_ps((idx), (base)))
#undef _mm512_dpbusd_epi32
#define _mm512_dpbusd_epi32(s, a, b) (LOWBIT_SC_ dpbusd((s), (a), (b)))

#else
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), written `__m512 __Y = __Y;`,
// which -Wmaybe-uninitialized then reports inside the header at every inlined use (GCC bug
// 105593, fixed in GCC 13). Diagnostics are placed by location, so this covers the header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
