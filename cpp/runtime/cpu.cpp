// CPU feature detection. Built with baseline flags; it only reads CPUID/XGETBV.
#include <cstring>

#include "lowbit/runtime.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define LOWBIT_X86 1
#include <cpuid.h>
#else
#define LOWBIT_X86 0
#endif

namespace lowbit {
namespace {

#if LOWBIT_X86
// XGETBV(0) reads XCR0, the mask of register states the OS saves on a context switch.
// Bits: 1 SSE (XMM), 2 AVX (YMM upper halves), 5 opmask k0-7, 6 ZMM0-15 upper halves,
// 7 ZMM16-31. AVX needs 0x6; AVX-512 needs 0xE6 (simdjson isadetection.h does the same).
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  char vendor[13] = {};
  std::memcpy(vendor + 0, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  f.vendor = vendor;
  __cpuid(1, a, b, c, d);
  const bool osxsave = (c >> 27) & 1;  // leaf 1 ECX bit 27: OS enabled XSAVE/XGETBV
  f.fma = (c >> 12) & 1;               // leaf 1 ECX bit 12
  f.f16c = (c >> 29) & 1;              // leaf 1 ECX bit 29
  const bool avx = (c >> 28) & 1;      // leaf 1 ECX bit 28
  if (osxsave) {
    const uint64_t xcr0 = xgetbv0();
    f.os_avx = avx && (xcr0 & 0x6) == 0x6;
    f.os_avx512 = f.os_avx && (xcr0 & 0xE6) == 0xE6;
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = (b >> 5) & 1;         // leaf 7 EBX bit 5
    f.bmi2 = (b >> 8) & 1;         // leaf 7 EBX bit 8
    f.avx512f = (b >> 16) & 1;     // leaf 7 EBX bit 16
    f.avx512dq = (b >> 17) & 1;    // leaf 7 EBX bit 17
    f.avx512bw = (b >> 30) & 1;    // leaf 7 EBX bit 30
    f.avx512vl = (b >> 31) & 1;    // leaf 7 EBX bit 31
    f.avx512vnni = (c >> 11) & 1;  // leaf 7 ECX bit 11
  }
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    unsigned r[12];
    for (unsigned i = 0; i < 3; ++i)
      __cpuid(0x80000002 + i, r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]);
    char brand[49] = {};
    std::memcpy(brand, r, 48);
    f.brand = brand;
    const auto first = f.brand.find_first_not_of(' ');
    f.brand = first == std::string::npos ? "" : f.brand.substr(first);
  }
  return f;
}
#else
CpuFeatures detect() {
  CpuFeatures f;
#if defined(__aarch64__) || defined(_M_ARM64)
  f.neon = true;  // Advanced SIMD is mandatory on AArch64.
#endif
  return f;
}
#endif

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

std::vector<std::string> cpu_flag_names() {
  const CpuFeatures& f = cpu_features();
  std::vector<std::string> out;
  const std::pair<bool, const char*> flags[] = {
      {f.avx2, "avx2"},         {f.fma, "fma"},           {f.f16c, "f16c"},
      {f.bmi2, "bmi2"},         {f.avx512f, "avx512f"},   {f.avx512bw, "avx512bw"},
      {f.avx512dq, "avx512dq"}, {f.avx512vl, "avx512vl"}, {f.avx512vnni, "avx512vnni"},
      {f.os_avx, "os_avx"},     {f.os_avx512, "os_avx512"}, {f.neon, "neon"}};
  for (const auto& fl : flags)
    if (fl.first) out.push_back(fl.second);
  return out;
}

}  // namespace lowbit
