// pybind11 glue: arrays arrive validated, C-contiguous and allocated by Python.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "lowbit/gemm.h"

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

// The packed bytes of p as a 1-D uint8 array on their 64-byte boundary (no copy; the array
// keeps p's storage alive). Leaves p.colsum and p.layout to the caller.
inline py::array_t<uint8_t> adopt_packed(lowbit::PackedBData&& p) {
  auto* owner = new std::vector<uint8_t>(std::move(p.storage));
  py::capsule free_it(owner, [](void* q) { delete static_cast<std::vector<uint8_t>*>(q); });
  return py::array_t<uint8_t>({static_cast<py::ssize_t>(p.size)}, {py::ssize_t(1)},
                              owner->data() + p.offset, free_it);
}

void register_runtime(py::module_& m);
void register_quantize(py::module_& m);
void register_gemm(py::module_& m);
void register_linear(py::module_& m);
}  // namespace lowbit_bindings
