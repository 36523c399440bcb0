#include <stdexcept>

#include "bindings.h"
#include "lowbit/runtime.h"

namespace lowbit_bindings {
using namespace pybind11::literals;

void register_runtime(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (lowbit::Isa isa : lowbit::available_isas()) out.push_back(lowbit::isa_name(isa));
    return out;
  });
  m.def("set_isa", [](const std::string& name) { lowbit::set_isa(name); }, "name"_a);
  m.def("active_isa", [] { return std::string(lowbit::isa_name(lowbit::active_isa())); });
  m.def("cpu_flags", &lowbit::cpu_flag_names);
  m.def("cpu_vendor", [] { return lowbit::cpu_features().vendor; });
  m.def("cpu_brand", [] { return lowbit::cpu_features().brand; });
  m.def("set_num_threads", &lowbit::set_num_threads, "n"_a);
  m.def("get_num_threads", &lowbit::get_num_threads);
  m.def("kernels", [] {
    std::vector<std::string> names;
#define LOWBIT_KERNEL(name, type) names.push_back(#name);
#include "lowbit/kernel_list.inc"
#undef LOWBIT_KERNEL
    return names;
  });
  // slot -> family, in kernels() order
  m.def("kernel_families", [] {
    std::vector<std::pair<std::string, std::string>> out;
    std::string family;
#define LOWBIT_FAMILY(name) family = #name;
#define LOWBIT_KERNEL(name, type) out.emplace_back(#name, family);
#include "lowbit/kernel_list.inc"
#undef LOWBIT_KERNEL
#undef LOWBIT_FAMILY
    return out;
  });
  // Every manifest line (lowbit/isa_list.inc), with what this build and CPU make of it.
  m.def("isa_manifest", [] {
    py::list out;
    std::vector<std::string> families;
#define LOWBIT_FAMILY_NAME_(name) families.push_back(#name);
    LOWBIT_FAMILIES(LOWBIT_FAMILY_NAME_)
#undef LOWBIT_FAMILY_NAME_
    for (int i = 0; i < lowbit::kNumIsa; ++i) {
      const lowbit::IsaInfo& e = lowbit::isa_info(static_cast<lowbit::Isa>(i));
      py::list fams;
      for (size_t f = 0; f < families.size(); ++f)
        if (e.families & (1u << f)) fams.append(families[f]);
      py::dict d;
      d["name"] = lowbit::isa_name(e.isa);
      d["parent"] = lowbit::isa_name(e.parent);
      d["families"] = fams;
      d["built"] = e.built;
      d["emulated"] = e.emulated;
      d["cpu"] = e.cpu;
      out.append(d);
    }
    return out;
  });
  // slot -> the ISA whose kernel the path's table holds (ValueError for an unavailable path).
  m.def("kernel_sources", [](const std::string& name) {
    for (lowbit::Isa isa : lowbit::available_isas()) {
      if (name != lowbit::isa_name(isa)) continue;
      std::vector<std::string> slots;
#define LOWBIT_KERNEL(slot, type) slots.push_back(#slot);
#include "lowbit/kernel_list.inc"
#undef LOWBIT_KERNEL
      const std::vector<lowbit::Isa> src = lowbit::kernel_sources(isa);
      py::dict d;
      for (size_t i = 0; i < slots.size(); ++i) d[py::str(slots[i])] = lowbit::isa_name(src[i]);
      return d;
    }
    throw std::invalid_argument("kernel_sources: '" + name + "' is not an available ISA");
  }, "isa"_a);
}

}  // namespace lowbit_bindings
