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
}

}  // namespace lowbit_bindings
