// pybind11 glue: arrays arrive validated, C-contiguous and allocated by Python.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace lowbit_bindings {
namespace py = pybind11;
template <class T>
using CArr = py::array_t<T, py::array::c_style>;

void register_runtime(py::module_& m);
void register_quantize(py::module_& m);
void register_gemm(py::module_& m);
void register_linear(py::module_& m);
}  // namespace lowbit_bindings
