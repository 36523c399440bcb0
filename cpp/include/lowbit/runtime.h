// Run-time services shared by every kernel family: CPU features, the dispatch table, threads.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/kernels.h"

namespace lowbit {

// ISA vocabulary, in manifest order (lowbit/isa_list.inc): parents before children. The same
// names are used for folders, namespaces, CMake targets, lb.available_isas() and LOWBIT_ISA.
enum class Isa : int {
#define LOWBIT_ISA(isa, parent, families, cpu, emulable) isa,
#include "lowbit/isa_list.inc"
#undef LOWBIT_ISA
  count
};
constexpr int kNumIsa = static_cast<int>(Isa::count);
const char* isa_name(Isa isa);

// What the manifest and this build say about one path.
struct IsaInfo {
  Isa isa, parent;
  unsigned families;  // LOWBIT_FAM bits it overrides
  bool built;         // compiled into this build
  bool emulated;      // compiled against SIMDe (LOWBIT_EMULATE_AVX512): runs on its host's CPU
  bool cpu;           // this CPU (and OS) can run it, emulation taken into account
};
const IsaInfo& isa_info(Isa isa);

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false, bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false, avx512vnni = false;
  bool os_avx = false, os_avx512 = false;  // XGETBV: the OS saves YMM / ZMM and opmask state
  bool neon = false;
  std::string vendor, brand;
};
const CpuFeatures& cpu_features();
std::vector<std::string> cpu_flag_names();  // the flags above that are set

// Paths that were compiled in, that this CPU has and whose registers the OS saves.
std::vector<Isa> available_isas();
// Throws std::invalid_argument (ValueError in Python) for an unknown or unavailable name.
void set_isa(const std::string& name);  // "auto" picks the best available
Isa active_isa();
// One atomic load; a kernel call uses one table from start to end, never mixing ISAs.
const KernelTable& active_table();
const KernelTable& table_for(Isa isa);
// For an available path, the ISA that implements each slot of its table, in kernel_list.inc
// order (a slot the path does not override names the ancestor it comes from).
std::vector<Isa> kernel_sources(Isa isa);

// Thread pool of the package's own. parallel_for runs fn(i) for i in [0, n) on up to
// get_num_threads() threads, the caller included; it returns when all are done. Work is split
// by index only, so results never depend on the thread count. Concurrent callers (several Python
// threads with the GIL released) are safe: a call that finds the pool busy runs inline.
void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);
void set_num_threads(int n);
int get_num_threads();

// Jobs below this many multiply-adds (or elements) run on the calling thread alone: waking the
// pool costs tens of microseconds, and 2 threads were measured no faster than 1 below about
// 4 M int8 multiply-adds (lb.linear, 64 x 256 x 256 and 1 x 1024 x 1024).
constexpr int64_t kMinParallelWork = int64_t(1) << 22;
// While a SerialScope made with serial = true is alive, parallel_for on this thread runs
// inline and parallel_threads() is 1. Scopes nest.
class SerialScope {
 public:
  explicit SerialScope(bool serial);
  ~SerialScope();
  SerialScope(const SerialScope&) = delete;
  SerialScope& operator=(const SerialScope&) = delete;

 private:
  bool serial_;
};
// The threads a job started now would use: get_num_threads(), or 1 inside a serial scope.
int parallel_threads();

}  // namespace lowbit
