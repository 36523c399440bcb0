"""Benchmarks of lb.matmul_int / lb.matmul_int4 beside their peers.

Groups are one shape and one operand kind:

- shapes: 256^3, 1024^3, 2048^3 (M = K = N) and the decoding/prefill shapes M = 1, 16, 128
  with K = 4096 and N = 4096 or 11008;
- kinds: ``s8s8`` (int8 a, int8 b), ``u8s8`` (uint8 a, int8 b), ``int4`` (int8 a, int4 b
  packed two a byte along K).

Each group holds lowbit on every ISA path except ``scalar`` (which only runs at 256^3) with
pre-packed weights (``lb.pack_matrix``), at 1 thread and at all threads, and the peers of the
same shape: ``numpy-f32`` (NumPy float32 matmul, the baseline of every ratio; limited to the
thread count through threadpoolctl when it is installed, else NumPy's own thread count),
``ort`` (ONNX Runtime MatMulInteger with a constant B; MatMulNBits with ``accuracy_level=4``
for int4) and ``torch`` (``torch._int_mm``, s8s8 only) when installed. ``test_gemm_peak`` times
the active path's register-only vpmaddwd+vpaddd loop, the practical peak the large shapes are
measured against.

Each entry's ``extra_info`` gets ``ops`` (2*M*N*K), ``gops`` and, where the baseline ran
earlier in the session, ``x_numpy-f32`` / ``x_ort`` (speed-ups) and ``of_peak``. For the whole
table from a saved run::

    python -m pytest bench/test_bench_gemm.py --benchmark-only --benchmark-json=gemm.json
    python bench/_gemm_peers.py gemm.json

OpenBLAS reads ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE``; when they are set the float32
baseline may run slower kernels, so compare with them unset
(``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest bench/...``); each entry records
the ones it saw in ``openblas_env``. Speed is never asserted; results are checked after timing.
"""

from __future__ import annotations


import numpy as np
import pytest

import _gemm_peers as peers
import lowbit as lb

SQUARE = [(256, 256, 256), (1024, 1024, 1024), (2048, 2048, 2048)]
DECODE = [(m, 4096, n) for n in (4096, 11008) for m in (1, 16, 128)]
SHAPES = SQUARE + DECODE
KINDS = ("s8s8", "u8s8", "int4")
PEAK_ITERS = 20_000_000


THREADS = peers.THREADS
FAST_ISAS = [i for i in lb.available_isas() if i != "scalar"] or ["scalar"]


def impls(shape):
    out = [("numpy-f32", t) for t in THREADS]
    isas = FAST_ISAS + (["scalar"] if shape == SQUARE[0] and "scalar" not in FAST_ISAS else [])
    out += [(isa, t) for isa in isas for t in THREADS]
    out += [("ort", t) for t in THREADS] if peers.ort is not None else []
    out += [("torch", t) for t in THREADS] if peers.torch is not None else []
    return out


CASES = [(shape, kind, impl, t) for shape in SHAPES for kind in KINDS
         for impl, t in impls(shape)]

_MEDIANS: dict = {}   # (group, impl, threads) -> median seconds, for ratios within a session
_PEAK: list = []      # GOPS of one thread's peak loop


def _operands(shape, kind):
    m, k, n = shape
    rng = np.random.default_rng(0)
    adt = np.uint8 if kind == "u8s8" else np.int8
    a = rng.integers(np.iinfo(adt).min, np.iinfo(adt).max + 1, (m, k)).astype(adt)
    if kind == "int4":
        w = rng.integers(-8, 8, (k, n)).astype(np.int8)
    else:
        w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    return a, w


def _record(benchmark, group, impl, threads, ops):
    peers.record_ratios(benchmark, _MEDIANS, group, impl, threads, ops)
    info = benchmark.extra_info
    if _PEAK and impl not in ("numpy-f32", "ort", "torch"):
        info["of_peak"] = info["gops"] / (_PEAK[0] * threads)


def test_gemm_peak(benchmark):
    """One thread of the active path's multiply-add loop (384 integer ops a round)."""
    ops = 384 * PEAK_ITERS
    benchmark.group = "gemm-peak"
    benchmark.extra_info.update(impl="peak", threads=1, ops=ops, isa=lb.cpu_info()["isa"])
    saved = lb.get_num_threads()
    lb.set_num_threads(1)
    try:
        benchmark.pedantic(lb._core.gemm_peak, args=(PEAK_ITERS,), rounds=5, warmup_rounds=1)
    finally:
        lb.set_num_threads(saved)
    _PEAK[:] = [ops / benchmark.stats.stats.median / 1e9]
    benchmark.extra_info["gops"] = _PEAK[0]


@pytest.mark.parametrize("shape,kind,impl,threads", CASES,
                         ids=[f"{m}x{k}x{n}-{kind}-{impl}-t{t}"
                              for (m, k, n), kind, impl, t in CASES])
def test_gemm(benchmark, lowbit_env, shape, kind, impl, threads):
    m, k, n = shape
    group = f"gemm-{kind}-{m}x{k}x{n}"
    ops = 2 * m * n * k
    benchmark.group = group
    benchmark.extra_info.update(impl=impl, threads=threads, ops=ops, kind=kind,
                                openblas_env=peers.openblas_env())
    a, w = _operands(shape, kind)
    slow = ops >= 2 * 2048**3 or (impl == "scalar" and ops > 2 * 256**3)
    run = (lambda fn: benchmark.pedantic(fn, rounds=3, warmup_rounds=1)) if slow else benchmark

    if impl == "numpy-f32":
        af, wf = a.astype(np.float32), w.astype(np.float32)
        with peers.blas_threads(threads) as limited:
            benchmark.extra_info["numpy_threads_limited"] = limited
            run(lambda: af @ wf)
        got = None
    elif impl == "ort":
        if kind == "int4":
            runner = peers.ort_matmul_nbits(a.astype(np.float32), w, threads)
            benchmark.extra_info["ort_op"] = "MatMulNBits(accuracy_level=4, block_size=128)"
        else:
            runner = peers.ort_matmul_integer(a, w, threads)
            benchmark.extra_info["ort_op"] = "MatMulInteger"
        run(runner)
        got = None  # MatMulNBits is approximate; MatMulInteger is checked below for the record
        if kind != "int4":
            benchmark.extra_info["ort_exact"] = bool(
                np.array_equal(runner(), peers.exact_int32(a, w)))
    elif impl == "torch":
        runner = peers.torch_int_mm(a, w, threads)
        if runner is None:
            pytest.skip("torch._int_mm does not take these operands")
        run(runner)
        got = runner().numpy()
    else:
        if kind == "int4":
            pm = lb.pack_matrix(lb.pack_int4(w, axis=0), dtype="int4", k=k)
            fn = lambda: lb.matmul_int4(a, pm)  # noqa: E731
        else:
            pm = lb.pack_matrix(w)
            fn = lambda: lb.matmul_int(a, pm)  # noqa: E731
        benchmark.extra_info["packed_nbytes"] = pm.nbytes
        with lowbit_env(impl, threads):
            run(fn)
            got = fn()
    _record(benchmark, group, impl, threads, ops)
    if got is not None:
        np.testing.assert_array_equal(got, peers.exact_int32(a, w))
