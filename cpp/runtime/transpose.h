// Word transposes in 16-byte vectors for the packers that read B's transpose (gemm.cpp):
// a square block of R = 16 / sizeof(T) rows of R words becomes R vectors, vector j holding
// word j of every row. Portable vector extensions (GCC >= 12, Clang): SSE2 unpacks on x86-64's
// baseline, zip/uzp on AArch64; a scalar loop where the compiler has none.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define LOWBIT_HAVE_SHUFFLEVECTOR 1
#endif
#endif

namespace lowbit {
namespace transpose {

#if LOWBIT_HAVE_SHUFFLEVECTOR
typedef uint8_t u8x16 __attribute__((vector_size(16)));
typedef uint16_t u16x8 __attribute__((vector_size(16)));
typedef uint32_t u32x4 __attribute__((vector_size(16)));
typedef uint64_t u64x2 __attribute__((vector_size(16)));

inline u8x16 load(const uint8_t* p) {
  u8x16 v;
  std::memcpy(&v, p, 16);
  return v;
}
inline void store(uint8_t* p, u8x16 v) { std::memcpy(p, &v, 16); }

template <class V>
inline V as(u8x16 v) {
  V r;
  std::memcpy(&r, &v, 16);
  return r;
}
template <class V>
inline u8x16 bytes(V v) {
  u8x16 r;
  std::memcpy(&r, &v, 16);
  return r;
}

// interleave the low (hi = false) or high halves of a and b, element by element
inline u8x16 zip16(u8x16 a, u8x16 b, bool hi) {
  const u16x8 x = as<u16x8>(a), y = as<u16x8>(b);
  return hi ? bytes(__builtin_shufflevector(x, y, 4, 12, 5, 13, 6, 14, 7, 15))
            : bytes(__builtin_shufflevector(x, y, 0, 8, 1, 9, 2, 10, 3, 11));
}
inline u8x16 zip32(u8x16 a, u8x16 b, bool hi) {
  const u32x4 x = as<u32x4>(a), y = as<u32x4>(b);
  return hi ? bytes(__builtin_shufflevector(x, y, 2, 6, 3, 7))
            : bytes(__builtin_shufflevector(x, y, 0, 4, 1, 5));
}
inline u8x16 zip64(u8x16 a, u8x16 b, bool hi) {
  const u64x2 x = as<u64x2>(a), y = as<u64x2>(b);
  return hi ? bytes(__builtin_shufflevector(x, y, 1, 3)) : bytes(__builtin_shufflevector(x, y, 0, 2));
}
// bytes of a and b interleaved: a0 b0 a1 b1 ... of the low (hi = false) or high halves
inline u8x16 zip8(u8x16 a, u8x16 b, bool hi) {
  return hi ? __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30,
                                      15, 31)
            : __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}

// In place: v[r] (row r, R words of W bytes) -> v[j] (word j of rows 0 .. R-1), R = 16 / W.
template <int W>
inline void square(u8x16* v) {
  static_assert(W == 2 || W == 4, "2- or 4-byte words");
  constexpr int R = 16 / W;
  u8x16 t[R];
  if (W == 2) {  // three rounds: 16-, 32-, 64-bit zips
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = zip16(v[2 * i], v[2 * i + 1], false);
      t[2 * i + 1] = zip16(v[2 * i], v[2 * i + 1], true);
    }
    u8x16 s[R];
    for (int i = 0; i < 2; ++i)
      for (int h = 0; h < 2; ++h) {
        s[4 * i + 2 * h] = zip32(t[4 * i + h], t[4 * i + 2 + h], false);
        s[4 * i + 2 * h + 1] = zip32(t[4 * i + h], t[4 * i + 2 + h], true);
      }
    // s[4i + m] holds words 2m, 2m+1 of rows 4i .. 4i+3
    for (int m = 0; m < 4; ++m) {
      v[2 * m] = zip64(s[m], s[4 + m], false);
      v[2 * m + 1] = zip64(s[m], s[4 + m], true);
    }
  } else {  // two rounds: 32-, 64-bit zips
    t[0] = zip32(v[0], v[1], false);
    t[1] = zip32(v[0], v[1], true);
    t[2] = zip32(v[2], v[3], false);
    t[3] = zip32(v[2], v[3], true);
    v[0] = zip64(t[0], t[2], false);
    v[1] = zip64(t[0], t[2], true);
    v[2] = zip64(t[1], t[3], false);
    v[3] = zip64(t[1], t[3], true);
  }
}
#endif

}  // namespace transpose
}  // namespace lowbit
