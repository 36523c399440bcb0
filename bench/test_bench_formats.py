"""Encoders and decoders of the floating-point and non-uniform formats, 16 Mi float32 (4096 x
4096), one thread, on every compiled path beside their NumPy reference (``lowbit.reference``).

    python -m pytest bench/test_bench_formats.py --benchmark-only

Issue 11's targets: every encoder >= 5 GB/s of input on avx2 and >= 20x its reference, every
decoder >= 8 GB/s of output. Each entry's ``extra_info["io_gbps"]`` is that figure (4 bytes an
element over the median time: the float input of an encoder, the float output of a decoder);
``speedup_vs_numpy_ref`` (bench/conftest.py) the ratio. Results are checked against the
reference after timing; speed is never asserted.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import lowbit as lb
import lowbit.reference as lbr

REF_IMPL = "numpy-ref"
SHAPE = (4096, 4096)
N = SHAPE[0] * SHAPE[1]
IMPLS = [REF_IMPL] + list(lb.available_isas())


@functools.lru_cache(maxsize=None)
def _x():
    return (np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32) * 0.02)


@functools.lru_cache(maxsize=None)
def _levels(bits):
    return lbr.fit_codebook(_x()[:64], bits, iters=5)


def _cases():
    """name -> (encode(api), decode(api, encoded)); api is lowbit or lowbit.reference."""
    x = _x()
    s = np.float32(np.abs(x).max() / 448)
    sg = (np.abs(x).reshape(4096, 64, 64).max(-1) / 1.0).astype(np.float32)
    return {
        "fp8_e4m3": (lambda m: m.quantize(x, s, dtype="fp8_e4m3"),
                     lambda m, c: m.dequantize(c, s, dtype="fp8_e4m3")),
        "fp8_e5m2": (lambda m: m.quantize(x, s, dtype="fp8_e5m2"),
                     lambda m, c: m.dequantize(c, s, dtype="fp8_e5m2")),
        "fp4_e2m1 packed": (lambda m: m.quantize(x, s * 60, dtype="fp4_e2m1", packed=True),
                            lambda m, c: m.dequantize(c, s * 60, dtype="fp4_e2m1", packed=True)),
        "nf4 g64 packed": (
            lambda m: m.quantize(x, sg, dtype="nf4", axis=1, group_size=64, packed=True),
            lambda m, c: m.dequantize(c, sg, dtype="nf4", axis=1, group_size=64, packed=True)),
        "mxfp4 packed": (lambda m: m.quantize_mx(x, "mxfp4_e2m1", packed=True),
                         lambda m, c: m.dequantize_mx(*c, "mxfp4_e2m1", packed=True)),
        "mxfp8_e4m3": (lambda m: m.quantize_mx(x, "mxfp8_e4m3"),
                       lambda m, c: m.dequantize_mx(*c, "mxfp8_e4m3")),
        "mxint8": (lambda m: m.quantize_mx(x, "mxint8"),
                   lambda m, c: m.dequantize_mx(*c, "mxint8")),
        "codebook 4-bit": (lambda m: m.quantize_codebook(x, _levels(4)),
                           lambda m, c: m.dequantize_codebook(c, _levels(4))),
        "codebook 8-bit": (lambda m: m.quantize_codebook(x, _levels(8)),
                           lambda m, c: m.dequantize_codebook(c, _levels(8))),
    }


CASES = list(_cases())
_REF_OUT: dict = {}


def _ref(name, kind):
    if (name, kind) not in _REF_OUT:
        enc, dec = _cases()[name]
        c = enc(lbr)
        _REF_OUT[(name, "encode")] = c
        _REF_OUT[(name, "decode")] = dec(lbr, c)
    return _REF_OUT[(name, kind)]


def _same(a, b):
    if isinstance(a, tuple):
        for u, v in zip(a, b):
            _same(u, v)
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["encode", "decode"])
@pytest.mark.parametrize("name", CASES)
def test_format(benchmark, describe, lowbit_env, name, kind, impl):
    enc, dec = _cases()[name]
    describe(group=f"{kind}-{name}-16Mi", impl=impl, threads=1, n=N, bytes_moved=4 * N)
    codes = _ref(name, "encode")
    if impl == REF_IMPL:
        fn = (lambda: enc(lbr)) if kind == "encode" else (lambda: dec(lbr, codes))
        got = benchmark.pedantic(fn, rounds=2, warmup_rounds=0)
    else:
        fn = (lambda: enc(lb)) if kind == "encode" else (lambda: dec(lb, codes))
        with lowbit_env(impl, 1):
            got = benchmark(fn)
    if benchmark.stats is not None:
        benchmark.extra_info["io_gbps"] = 4 * N / benchmark.stats.stats.median / 1e9
    _same(got, _ref(name, kind))


# --- weight-only linear on the formats (issue 11, item 5) ----------------------------------------

LINEAR = {
    "numpy-f32": None,
    "int8 weight-only": {"dtype": "int8", "axis": 0},
    "int4 g128 weight-only": {"dtype": "int4", "axis": 1, "group_size": 128},
    "fp8_e4m3": {"dtype": "fp8_e4m3", "axis": 0},
    "fp8_e5m2": {"dtype": "fp8_e5m2", "axis": 0},
    "nf4 g64": {"dtype": "nf4", "axis": 1, "group_size": 64},
    "fp4_e2m1 g32": {"dtype": "fp4_e2m1", "axis": 1, "group_size": 32},
    "mxfp4": {"dtype": "mxfp4_e2m1", "axis": 1},
    "codebook4 per row": {"dtype": "codebook4", "axis": 0},
}


@functools.lru_cache(maxsize=None)
def _linear_operands(name):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4096, 4096), dtype=np.float32)
    kw = LINEAR[name]
    return w if kw is None else lb.QTensor.quantize(w, **kw)


@pytest.mark.parametrize("isa", [i for i in lb.available_isas() if i != "scalar"] or ["scalar"])
@pytest.mark.parametrize("batch", [1, 128])
@pytest.mark.parametrize("name", list(LINEAR))
def test_linear_weight_only(benchmark, lowbit_env, name, batch, isa):
    """4096 -> 4096 weight-only ``lb.linear`` (1 thread) beside lowbit's int8/int4 weight-only
    and NumPy's float32 ``x @ W.T`` (``extra_info["x_int4"]``, ``["x_int8"]``, ``["x_numpy"]``:
    their median time over this one; > 1 is faster)."""
    if name == "numpy-f32" and isa != lb.available_isas()[-1]:
        pytest.skip("NumPy once")
    w = _linear_operands(name)
    x = np.random.default_rng(2).standard_normal((batch, 4096), dtype=np.float32)
    benchmark.group = f"linear-weight-only-4096x4096-b{batch}-{isa}"
    benchmark.extra_info.update(impl=name, isa=isa, batch=batch, threads=1)
    with lowbit_env(isa, 1):
        fn = (lambda: x @ w.T) if LINEAR[name] is None else (
            lambda: lb.linear(x, w, act_dtype=None))
        benchmark(fn)
    if benchmark.stats is not None:
        med = benchmark.stats.stats.median
        _LINEAR_MED[(name, batch, isa)] = med
        for key, base in (("x_int4", "int4 g128 weight-only"), ("x_int8", "int8 weight-only"),
                          ("x_numpy", "numpy-f32")):
            other = _LINEAR_MED.get((base, batch, isa)) or _LINEAR_MED.get(
                (base, batch, lb.available_isas()[-1]))
            if other:
                benchmark.extra_info[key] = other / med


_LINEAR_MED: dict = {}
