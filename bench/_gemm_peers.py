"""Peers and helpers for bench/test_bench_gemm.py (not a test module).

- ``numpy_f32``: NumPy's float32 matmul of the same shape, the baseline of every ratio, limited
  to the benchmark's thread count through threadpoolctl when that is installed.
- ``ort_matmul_integer`` / ``ort_matmul_nbits``: ONNX Runtime ``MatMulInteger`` (constant B) and
  ``MatMulNBits`` (4-bit constant B, ``accuracy_level=4``: int8 activations) in this process.
- ``torch_int_mm``: ``torch._int_mm`` when torch is importable (never installed by lowbit).
- ``exact_int32``: an exact int32 product for checking results after timing (float64 BLAS).
- ``THREADS``, ``record_ratios``: the thread counts and the GOPS / speed-up bookkeeping shared
  by test_bench_gemm.py and test_bench_linear.py.
- ``summarize``: the GOPS / ratio table from a ``--benchmark-json`` file:
  ``python bench/_gemm_peers.py bench.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

import numpy as np

try:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # the optional "bench" extra
    ort = None

try:
    import threadpoolctl
except ImportError:
    threadpoolctl = None

try:  # only if already installed; lowbit never installs torch
    import torch
except ImportError:
    torch = None

def all_threads() -> int:
    """Number of CPUs this process may run on (the "all threads" setting)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


#: The thread counts every benchmark runs at: one, and all this process may use.
THREADS = sorted({1, all_threads()})


def record_ratios(benchmark, medians: dict, group: str, impl: str, threads: int, ops: int,
                  bases=("numpy-f32", "torch", "ort")) -> None:
    """Store this entry's median in ``medians`` and put ``gops`` and ``x_<base>`` (the median
    of each base timed earlier in the session, same group and thread count, over this one)
    into its ``extra_info``."""
    median = benchmark.stats.stats.median
    medians[(group, impl, threads)] = median
    info = benchmark.extra_info
    info["gops"] = ops / median / 1e9
    for base in bases:
        t = medians.get((group, base, threads))
        if t is not None and impl != base:
            info[f"x_{base}"] = t / median


# Environment variables that change OpenBLAS's kernel choice (and so NumPy's float32 speed).
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def openblas_env() -> dict:
    return {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ}


@contextlib.contextmanager
def blas_threads(n: int):
    """Limit NumPy's BLAS to n threads when threadpoolctl is installed (else leave it alone)."""
    if threadpoolctl is None:
        yield False
        return
    with threadpoolctl.threadpool_limits(limits=n, user_api="blas"):
        yield True


def exact_int32(a, b, za=0, zb=0) -> np.ndarray:
    """(a - za) @ (b - zb) exactly, as int32.

    float64 BLAS is exact here: every operand is an integer of magnitude <= 383, so every
    partial sum is an integer below K * 383**2, which stays under 2**53 for K < 6e10; the final
    sum is reduced modulo 2**32 like the int32 contract.
    """
    a64 = np.asarray(a, np.float64) - np.asarray(za, np.float64).reshape(-1, 1)
    b64 = np.asarray(b, np.float64) - np.asarray(zb, np.float64).reshape(1, -1)
    assert a64.shape[-1] * 383.0 * 383.0 < 2.0**53
    exact = (a64 @ b64).astype(np.int64)
    return ((exact + 2**31) % 2**32 - 2**31).astype(np.int32)


# ----------------------------------------------------------------------------------------------
# ONNX Runtime


def _session(graph, threads: int):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid("com.microsoft", 1)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _bound_runner(sess, x: np.ndarray, out_shape, out_dtype):
    """A zero-argument callable running sess on x into a preallocated output (IOBinding)."""
    binding = sess.io_binding()
    out = np.empty(out_shape, out_dtype)
    binding.bind_cpu_input("A", x)
    binding.bind_output("Y", "cpu", element_type=out_dtype, shape=out.shape,
                        buffer_ptr=out.ctypes.data)

    def run():
        sess.run_with_iobinding(binding)
        return out

    return run


def ort_matmul_integer(a: np.ndarray, b: np.ndarray, threads: int):
    """ONNX Runtime MatMulInteger with b as a constant initializer; returns a runner."""
    k, n = b.shape
    a_type = helper.np_dtype_to_tensor_dtype(a.dtype)
    node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
    graph = helper.make_graph(
        [node], "matmul_integer", [helper.make_tensor_value_info("A", a_type, [None, k])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [None, n])],
        initializer=[numpy_helper.from_array(b, "B")])
    return _bound_runner(_session(graph, threads), a, (a.shape[0], n), np.int32)


def ort_matmul_nbits(a_f32: np.ndarray, w_int4: np.ndarray, threads: int, block_size: int = 128):
    """ONNX Runtime MatMulNBits (4-bit weights w_int4 (K, N) in -8..7, unit scales, default
    zero point 8) with accuracy_level=4, i.e. int8 activations; returns a runner."""
    k, n = w_int4.shape
    assert k % block_size == 0
    q = (w_int4.astype(np.int16) + 8).astype(np.uint8).T.reshape(n, k // block_size, block_size)
    blob = (q[:, :, 0::2] | (q[:, :, 1::2] << 4)).astype(np.uint8)
    scales = np.ones(n * (k // block_size), np.float32)
    node = helper.make_node("MatMulNBits", ["A", "B", "scales"], ["Y"], domain="com.microsoft",
                            K=k, N=n, bits=4, block_size=block_size, accuracy_level=4)
    graph = helper.make_graph(
        [node], "matmul_nbits", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [None, k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n])],
        initializer=[numpy_helper.from_array(blob, "B"), numpy_helper.from_array(scales, "scales")])
    return _bound_runner(_session(graph, threads), a_f32, (a_f32.shape[0], n), np.float32)


def torch_int_mm(a: np.ndarray, b: np.ndarray, threads: int):
    """torch._int_mm (int8 x int8 -> int32) on CPU; returns a runner, or None without torch."""
    if torch is None or a.dtype != np.int8 or b.dtype != np.int8:
        return None
    ta, tb = torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.ascontiguousarray(b))

    def run():
        saved = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return torch._int_mm(ta, tb)
        finally:
            torch.set_num_threads(saved)

    try:
        run()
    except RuntimeError:  # shapes torch does not support on CPU
        return None
    return run


# ----------------------------------------------------------------------------------------------
# Summary


def derive(entries):
    """entries: dicts with group, impl, threads, ops, median. Adds gops and ratio_* keys.

    Baselines per group: numpy-f32 (same thread count, else any), ort and torch (same thread
    count), and the peak loop (peak GOPS per thread times the thread count).
    """
    by_group = {}
    peak = None
    for e in entries:
        e["gops"] = e["ops"] / e["median"] / 1e9
        if e["impl"] == "peak":
            peak = e["gops"]
        by_group.setdefault(e["group"], []).append(e)
    for members in by_group.values():
        base = {(e["impl"], e["threads"]): e["median"] for e in members}
        for e in members:
            for name in ("numpy-f32", "ort", "torch"):
                t = base.get((name, e["threads"]))
                if t is None and name == "numpy-f32":
                    t = next((m["median"] for m in members if m["impl"] == name), None)
                if t is not None and e["impl"] != name:
                    e[f"x_{name}"] = t / e["median"]
            if peak and e["impl"] not in ("numpy-f32", "ort", "torch", "peak"):
                e["of_peak"] = e["gops"] / (peak * e["threads"])
    return entries


def summarize(path: str) -> str:
    with open(path) as f:
        data = json.load(f)
    entries = []
    for b in data["benchmarks"]:
        info = b["extra_info"]
        if "ops" not in info:
            continue
        entries.append(dict(group=b["group"], impl=info["impl"], threads=info["threads"],
                            ops=info["ops"], median=b["stats"]["median"]))
    derive(entries)
    lines = [f"{'group':<34} {'impl':<10} {'thr':>3} {'GOPS':>8} {'x np-f32':>8} {'x ort':>6} "
             f"{'of peak':>7}"]
    for e in entries:
        fmt = lambda k, f: "" if k not in e else format(e[k], f)  # noqa: E731
        lines.append(f"{e['group']:<34} {e['impl']:<10} {e['threads']:>3} {e['gops']:>8.1f} "
                     f"{fmt('x_numpy-f32', '.2f'):>8} {fmt('x_ort', '.2f'):>6} "
                     f"{fmt('of_peak', '.0%'):>7}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(sys.argv[1]))
