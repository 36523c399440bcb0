// Kernel tables per ISA and the active-path switch, all derived from the manifest
// (lowbit/isa_list.inc). Built with baseline flags: it only takes the addresses of ISA code,
// which runs after the CPU check below says it may.
#include <array>
#include <atomic>
#include <cstring>
#include <stdexcept>

#include "lowbit/runtime.h"

namespace lowbit {
namespace {

// What this build compiled: CMake writes lowbit_built.inc with one LOWBIT_BUILT(name, emulated)
// line per path besides scalar (CMakeLists.txt, lowbit_isa()).
template <Isa I>
struct Built {
  static constexpr bool value = I == Isa::scalar, emulated = false;
};
#define LOWBIT_BUILT(isa, emu)                                 \
  template <>                                                  \
  struct Built<Isa::isa> {                                     \
    static constexpr bool value = true, emulated = (emu) != 0; \
  };
#include "lowbit_built.inc"
#undef LOWBIT_BUILT

struct Entry {
  const char* name;
  Isa parent;
  unsigned families;
  bool built, emulated, emulable;
  bool (*cpu)(const CpuFeatures&);  // the path's own checks, beyond its parent's
  void (*fill)(KernelTable&);       // fill_<family>() of each claimed family, if built
};

// One entry a manifest line. A family's fill is referenced only when the path is built and
// claims it (a discarded if-constexpr branch needs no definition), so a path defines exactly
// the fill functions of its families.
#define LOWBIT_FILL_(family) \
  if constexpr (kBuilt && (kFamilies & LOWBIT_FAM(family))) ns::fill_##family(t);
#define LOWBIT_ISA(isa, parent_, families_, cpu_, emulable_)                          \
  Entry{#isa, Isa::parent_, families_, Built<Isa::isa>::value, Built<Isa::isa>::emulated, \
        (emulable_) != 0,                                                              \
        [](const CpuFeatures& f) -> bool {                                             \
          (void)f;                                                                     \
          return cpu_;                                                                 \
        },                                                                             \
        [](KernelTable& t) {                                                           \
          namespace ns = ::lowbit::isa;                                                \
          constexpr bool kBuilt = Built<Isa::isa>::value;                              \
          constexpr unsigned kFamilies = families_;                                    \
          (void)t;                                                                     \
          LOWBIT_FAMILIES(LOWBIT_FILL_)                                                \
        }},
constexpr Entry kManifest[] = {
#include "lowbit/isa_list.inc"
};
#undef LOWBIT_ISA
#undef LOWBIT_FILL_
static_assert(sizeof kManifest / sizeof kManifest[0] == kNumIsa, "one manifest entry an Isa");

constexpr bool manifest_ok() {
  for (int i = 0; i < kNumIsa; ++i) {
    const Entry& e = kManifest[i];
    const int p = static_cast<int>(e.parent);
    if (i == 0 ? p != 0 : p >= i) return false;  // scalar is its own parent; parents first
    if (e.emulated && !e.emulable) return false;  // CMake emulated a path not marked emulable
    if (e.built && !kManifest[p].built) return false;
    // The linear kernels use the GEMM kernels' geometry (KernelTable::gemm_geometry).
    if (!(e.families & LOWBIT_FAM(gemm)) != !(e.families & LOWBIT_FAM(linear))) return false;
  }
  return true;
}
static_assert(manifest_ok(), "lowbit/isa_list.inc: scalar first, parents before children, "
                             "only emulable paths emulated, a built path's parent built, "
                             "gemm and linear claimed together");

const Entry& entry(Isa isa) { return kManifest[static_cast<int>(isa)]; }

// The CPU can run the path: its ancestors' checks and its own (an emulated path runs on its
// host's instructions, so it skips its own).
bool cpu_runs(Isa isa) {
  const Entry& e = entry(isa);
  const bool own = e.emulated || e.cpu(cpu_features());
  return isa == e.parent ? own : own && cpu_runs(e.parent);
}

// Slot bytes differ: the path put its own kernel (or value) there.
template <class T>
bool differs(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) != 0;
}

struct Tables {
  std::array<KernelTable, kNumIsa> table{};
  std::array<std::vector<Isa>, kNumIsa> sources;
  std::array<IsaInfo, kNumIsa> info{};
  std::vector<Isa> available;
  Isa best = Isa::scalar;
  Tables() {
    for (int i = 0; i < kNumIsa; ++i) {
      const Isa isa = static_cast<Isa>(i);
      const Entry& e = kManifest[i];
      const int p = static_cast<int>(e.parent);
      info[i] = {isa, e.parent, e.families, e.built, e.emulated, cpu_runs(isa)};
      if (!e.built || !info[i].cpu) continue;
      // Parents come first, so a runnable path's parent table is already built.
      KernelTable t = i == p ? KernelTable{} : table[p];
      if (e.families & LOWBIT_FAM(gemm)) t.gemm_geometry = GemmGeometry{};
      e.fill(t);
      // A path that fills the GEMM family states its geometry with it.
      const GemmGeometry& g = t.gemm_geometry;
      auto k24 = [](int v) { return v == 2 || v == 4; };
      if (g.mr <= 0 || g.nr <= 0 || g.nr % 2 || !k24(g.kb) || !k24(g.a8) || !k24(g.a4) ||
          g.kc <= 0 || g.kc % 2 || !g.layout[0])
        throw std::logic_error(std::string("lowbit: bad GEMM geometry for ISA ") + e.name);
      std::vector<Isa> src;
      size_t slot = 0;
#define LOWBIT_KERNEL(name, type) \
  src.push_back(i == p || differs(t.name, table[p].name) ? isa : sources[p][slot]), ++slot;
#include "lowbit/kernel_list.inc"
#undef LOWBIT_KERNEL
      table[i] = t;
      sources[i] = std::move(src);
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

const char* isa_name(Isa isa) {
  const int i = static_cast<int>(isa);
  return i >= 0 && i < kNumIsa ? kManifest[i].name : "?";
}

const IsaInfo& isa_info(Isa isa) { return tables().info[static_cast<int>(isa)]; }

std::vector<Isa> available_isas() { return tables().available; }

const KernelTable& table_for(Isa isa) { return tables().table[static_cast<int>(isa)]; }

std::vector<Isa> kernel_sources(Isa isa) { return tables().sources[static_cast<int>(isa)]; }

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
        if (name != kManifest[i].name) continue;
        why = "ISA '" + name + "' is " +
              (!kManifest[i].built ? "not compiled into this build" : "not supported by this CPU");
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
