// Kernel tables per ISA and the active-path switch. Built with baseline flags: it only takes
// the addresses of ISA code, which runs after the CPU check below says it may.
#include <array>
#include <atomic>
#include <mutex>
#include <stdexcept>

#include "lowbit/runtime.h"

#ifndef LOWBIT_BUILT_AVX2
#define LOWBIT_BUILT_AVX2 0
#endif
#ifndef LOWBIT_BUILT_AVX512
#define LOWBIT_BUILT_AVX512 0
#endif
#ifndef LOWBIT_BUILT_AVX512_VNNI
#define LOWBIT_BUILT_AVX512_VNNI 0
#endif
#ifndef LOWBIT_BUILT_NEON
#define LOWBIT_BUILT_NEON 0
#endif

namespace lowbit {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Vnni: return "avx512_vnni";
    case Isa::kNeon: return "neon";
    default: return "?";
  }
}

namespace {

constexpr int kNumIsa = static_cast<int>(Isa::kCount);

bool built(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return LOWBIT_BUILT_AVX2;
    case Isa::kAvx512: return LOWBIT_BUILT_AVX512;
    case Isa::kAvx512Vnni: return LOWBIT_BUILT_AVX512_VNNI;
    case Isa::kNeon: return LOWBIT_BUILT_NEON;
    default: return false;
  }
}

bool cpu_has(Isa isa) {
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.os_avx && f.avx2 && f.fma && f.f16c && f.bmi2;
  const bool avx512 = avx2 && f.os_avx512 && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl;
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return avx2;
    case Isa::kAvx512: return avx512;
    case Isa::kAvx512Vnni: return avx512 && f.avx512vnni;
    case Isa::kNeon: return f.neon;
    default: return false;
  }
}

// x86 paths form a chain (each includes the one below); NEON stands alone above scalar.
bool at_least(Isa have, Isa want) {
  if (want == Isa::kScalar) return true;
  if (have == Isa::kNeon || want == Isa::kNeon) return have == want;
  return static_cast<int>(have) >= static_cast<int>(want);
}

KernelTable build_table(Isa isa) {
  KernelTable t{};
  scalar::fill_quantize(t);  // every slot filled
  scalar::fill_gemm(t);
  scalar::fill_linear(t);
#if LOWBIT_BUILT_AVX2
  if (at_least(isa, Isa::kAvx2)) avx2::fill_quantize(t);
  if (at_least(isa, Isa::kAvx2)) avx2::fill_gemm(t);
  if (at_least(isa, Isa::kAvx2)) avx2::fill_linear(t);
#endif
#if LOWBIT_BUILT_AVX512
  if (at_least(isa, Isa::kAvx512)) avx512::fill_quantize(t);
#endif
#if LOWBIT_BUILT_NEON
  if (at_least(isa, Isa::kNeon)) neon::fill_quantize(t);
#endif
  (void)isa;
  return t;
}

struct Tables {
  std::array<KernelTable, kNumIsa> table{};
  std::vector<Isa> available;
  Isa best = Isa::kScalar;
  Tables() {
    for (int i = 0; i < kNumIsa; ++i) {
      const Isa isa = static_cast<Isa>(i);
      if (!built(isa) || !cpu_has(isa)) continue;
      table[i] = build_table(isa);
      available.push_back(isa);
      best = isa;
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

std::atomic<const KernelTable*> g_active{nullptr};
std::atomic<int> g_active_isa{-1};

}  // namespace

std::vector<Isa> available_isas() { return tables().available; }

const KernelTable& table_for(Isa isa) { return tables().table[static_cast<int>(isa)]; }

void set_isa(const std::string& name) {
  const Tables& t = tables();
  Isa chosen = t.best;
  if (name != "auto") {
    bool found = false;
    for (Isa isa : t.available)
      if (name == isa_name(isa)) chosen = isa, found = true;
    if (!found) {
      // A known path says why it is refused: not compiled into this build, or not on this CPU.
      std::string why = "unknown ISA '" + name + "'";
      for (int i = 0; i < kNumIsa; ++i) {
        const Isa isa = static_cast<Isa>(i);
        if (name != isa_name(isa)) continue;
        why = "ISA '" + name + "' is " +
              (!built(isa) ? "not compiled into this build" : "not supported by this CPU");
      }
      std::string msg = why + "; choose one of: 'auto'";
      for (Isa isa : t.available) msg += std::string(", '") + isa_name(isa) + "'";
      throw std::invalid_argument(msg);
    }
  }
  // The table pointer is what kernels read; the ISA index is informational.
  g_active.store(&t.table[static_cast<int>(chosen)], std::memory_order_release);
  g_active_isa.store(static_cast<int>(chosen), std::memory_order_release);
}

Isa active_isa() {
  if (g_active_isa.load(std::memory_order_acquire) < 0) set_isa("auto");
  return static_cast<Isa>(g_active_isa.load(std::memory_order_acquire));
}

const KernelTable& active_table() {
  const KernelTable* t = g_active.load(std::memory_order_acquire);
  if (!t) {
    set_isa("auto");
    t = g_active.load(std::memory_order_acquire);
  }
  return *t;
}

}  // namespace lowbit
