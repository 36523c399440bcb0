"""Transposed weights: ``pack_matrix(w.T)``, ``matmul_int(x, w.T)`` and ``matmul_int4`` on the
transposed nibbles, with the usual ``(out, in)`` weight ``w``, against the same calls on a
contiguous ``(K, N)`` copy, 4096 x 4096, batch 8, one thread, on every compiled path (issue 13:
within 1.3x of the contiguous case); and ``linear`` W8A8 on Fortran-order activations against
C-order ones (the float activations are copied to C order, a small part of the call).

    python -m pytest bench/test_bench_strided.py --benchmark-only

Each transposed entry's ``extra_info["x_contiguous"]`` is its median over the contiguous one's
(> 1: slower), the contiguous case timed first in the same session. Results are checked after
timing; speed is never asserted.
"""

from __future__ import annotations

import numpy as np
import pytest

import lowbit as lb

K = N = 4096
M = 8
ISAS = [i for i in lb.available_isas() if i != "scalar"] or ["scalar"]
_MEDIANS: dict = {}


@pytest.fixture(scope="module")
def operands():
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (N, K), dtype=np.int8)  # (out, in)
    x = rng.integers(-128, 128, (M, K), dtype=np.int8)
    return x, w, np.ascontiguousarray(w.T)


_WQ: dict = {}


def _linear_weight(w):
    if "w" not in _WQ:
        _WQ["w"] = lb.QTensor.quantize(w.astype(np.float32) / 64, dtype="int8", axis=0)
    return _WQ["w"]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("op", ["pack_matrix", "matmul_int", "matmul_int4", "linear"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_transposed_weight(benchmark, operands, isa, op, layout):
    x, w, b = operands
    operand = b if layout == "contiguous" else w.T
    if op == "pack_matrix":
        fn = lambda: lb.pack_matrix(operand)  # noqa: E731
    elif op == "matmul_int":
        fn = lambda: lb.matmul_int(x, operand)  # noqa: E731
    elif op == "linear":  # (out, in) float weight, int8 per channel; x C- or Fortran-order
        wq = _linear_weight(w)
        xf = (x / 16).astype(np.float32)
        operand_x = xf if layout == "contiguous" else np.asfortranarray(xf)
        fn = lambda: lb.linear(operand_x, wq)  # noqa: E731
    else:  # int4 nibbles of the (out, in) weight packed along in, transposed: (ceil(K/2), N)
        w4 = lb.pack_int4((w >> 4).astype(np.int8), axis=1)
        operand4 = np.ascontiguousarray(w4.T) if layout == "contiguous" else w4.T
        fn = lambda: lb.matmul_int4(x, operand4, k=K)  # noqa: E731
    benchmark.group = f"{op}-{K}x{N}-{isa}"
    benchmark.extra_info.update(isa=isa, layout=layout, threads=1)
    saved_isa, saved_threads = lb.cpu_info()["isa"], lb.get_num_threads()
    lb.set_isa(isa)
    lb.set_num_threads(1)
    try:
        benchmark(fn)
        got = fn()
    finally:
        lb.set_isa(saved_isa)
        lb.set_num_threads(saved_threads)
    if benchmark.stats is not None:  # None under --benchmark-disable
        median = benchmark.stats.stats.median
        _MEDIANS[(op, isa, layout)] = median
        base = _MEDIANS.get((op, isa, "contiguous"))
        if layout == "transposed" and base:
            benchmark.extra_info["x_contiguous"] = median / base
    if op == "linear":
        np.testing.assert_array_equal(got, lb.linear(xf, wq))
    elif op == "matmul_int":
        np.testing.assert_array_equal(got, x.astype(np.int64) @ b.astype(np.int64))
    elif op == "matmul_int4":
        np.testing.assert_array_equal(got, x.astype(np.int64) @ (w >> 4).T.astype(np.int64))
    else:
        np.testing.assert_array_equal(got.to_array(), b)
