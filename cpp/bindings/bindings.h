// pybind11 glue: arrays arrive validated, C-contiguous and allocated by Python.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <utility>
#include <vector>

namespace lowbit_bindings {
namespace py = pybind11;
template <class T>
using CArr = py::array_t<T, py::array::c_style>;

// A NumPy array that takes over v's memory (no copy; freed with the array).
template <class T>
py::array_t<T> adopt(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* owner = new std::vector<T>(std::move(v));
  py::capsule free_it(owner, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owner->data(), free_it);
}

void register_runtime(py::module_& m);
void register_quantize(py::module_& m);
void register_gemm(py::module_& m);
void register_linear(py::module_& m);
}  // namespace lowbit_bindings
