"""Benchmarks of lb.linear (4096 -> 4096) beside its peers, in one process.

Groups are one batch size and one weight format, ``linear-{fmt}-{M}x4096x4096``:

- ``w8a8``: int8 weights per output channel, activations quantized to int8 per row;
- ``w4a8``: int4 weights in groups of 128 along the input (Q4_0 x Q8_0 style), int8 activations;
- ``w4``: the same int4 weights, weight-only (float activations, dequantized on the fly);

at batch M = 1 (decoding), 16 and 128. Each group holds lowbit on every ISA path except
``scalar`` (the weights packed once, as a QTensor caches them), at 1 thread and at all threads,
and its peers of the same shape:

- ``numpy-f32``: ``x @ W.T`` in float32 (the float weight), the baseline of every ratio, limited
  to the benchmark's thread count through threadpoolctl when that is installed;
- ``torch`` (w8a8, when torch is importable; lowbit never installs it): torch's dynamic
  quantized Linear (``torch.ao.quantization.quantize_dynamic`` of an ``nn.Linear``, int8
  weights per channel), ``torch.set_num_threads`` set to the benchmark's thread count;
- ``ort`` (when onnxruntime is installed): w4a8: ``MatMulNBits`` (com.microsoft; bits=4,
  block_size=128, accuracy_level=4, i.e. int8 activations) on the same int4 weights and scales;
  w4: the same op with accuracy_level=1 (float32 compute, weight-only); w8a8:
  ``DynamicQuantizeMatMul`` (com.microsoft; uint8 activations, the same int8 weights).

Each entry's ``extra_info`` gets ``ops`` (2*M*N*K), ``gops`` and the speed-ups ``x_numpy-f32``,
``x_torch``, ``x_ort`` (same thread count) against the peers timed earlier in the session (peers
run first in each group). After timing, lowbit's result is checked against
``lowbit.reference.linear`` (bit for bit with integer activations, within
``WEIGHT_ONLY_RTOL`` weight-only) on a few rows, and each peer's relative error against the float
product is recorded (``rel_err_vs_f32``). Speed is never asserted. For the table::

    python -m pytest bench/test_bench_linear.py --benchmark-only --benchmark-json=linear.json
    python bench/_gemm_peers.py linear.json

OpenBLAS reads ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE``; when they are set NumPy's float32
baseline may run slower kernels, so measure with them unset::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest bench/test_bench_linear.py

(each entry records the ones it saw in ``openblas_env``). Tests never unset them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import _gemm_peers as peers
import lowbit as lb
import lowbit.reference as lbr
from lowbit._reference_linear import WEIGHT_ONLY_RTOL

K = N = 4096
BATCHES = (1, 16, 128)
FORMATS = ("w8a8", "w4a8", "w4")
GROUP = 128


THREADS = peers.THREADS
FAST_ISAS = [i for i in lb.available_isas() if i != "scalar"] or ["scalar"]


def impls(fmt):
    out = [("numpy-f32", t) for t in THREADS]
    if fmt == "w8a8" and peers.torch is not None:
        out += [("torch", t) for t in THREADS]
    if peers.ort is not None:
        out += [("ort", t) for t in THREADS]
    out += [(isa, t) for isa in FAST_ISAS for t in THREADS]
    return out


CASES = [(m, fmt, impl, t) for m in BATCHES for fmt in FORMATS for impl, t in impls(fmt)]

_MEDIANS: dict = {}  # (group, impl, threads) -> median seconds, for ratios within a session
_WEIGHTS: dict = {}  # fmt -> (float W, QTensor): quantized once per session


def _weights(fmt):
    if fmt not in _WEIGHTS:
        w = (np.random.default_rng(1).standard_normal((N, K)) * 0.02).astype(np.float32)
        if fmt == "w8a8":
            w_q = lb.QTensor.quantize(w, "int8", axis=0)
        else:
            w_q = _WEIGHTS["w4a8"][1] if "w4a8" in _WEIGHTS else lb.QTensor.quantize(
                w, "int4", axis=1, group_size=GROUP)
        _WEIGHTS[fmt] = (w, w_q)
    return _WEIGHTS[fmt]


# ----------------------------------------------------------------------------------------------
# Peers


def torch_dynamic_linear(w: np.ndarray, threads: int):
    """torch's dynamic quantized Linear (int8 weights per channel) of W; returns f(x)."""
    torch = peers.torch
    lin = torch.nn.Linear(K, N, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
    with warnings.catch_warnings():  # torch.ao.quantization announces its deprecation
        warnings.simplefilter("ignore")
        qlin = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8, inplace=False)

    def run(x):
        saved = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                return qlin(x)
        finally:
            torch.set_num_threads(saved)

    return run


def _nbits_blob(w_q):
    """MatMulNBits' B (N, K/128, 64) uint8 and scales from an int4 group-128 QTensor: ONNX
    packs q = w + 8 (default zero point 8), element 2i in the low nibble."""
    q = (w_q.int_repr().astype(np.int16) + 8).astype(np.uint8).reshape(N, K // GROUP, GROUP)
    blob = (q[:, :, 0::2] | (q[:, :, 1::2] << 4)).astype(np.uint8)
    return blob, np.ascontiguousarray(w_q.scale.reshape(-1))


def ort_runner(fmt, w_q, x, threads):
    """ONNX Runtime's peer of fmt on input x (float32); returns a zero-argument runner."""
    helper, numpy_helper, TensorProto = peers.helper, peers.numpy_helper, peers.TensorProto
    a_info = helper.make_tensor_value_info("A", TensorProto.FLOAT, [None, K])
    y_info = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, N])
    if fmt == "w8a8":
        b = np.ascontiguousarray(w_q.int_repr().T)                     # (K, N) int8
        node = helper.make_node("DynamicQuantizeMatMul", ["A", "B", "b_scale", "b_zp"], ["Y"],
                                domain="com.microsoft")
        inits = [numpy_helper.from_array(b, "B"),
                 numpy_helper.from_array(np.ascontiguousarray(w_q.scale), "b_scale"),
                 numpy_helper.from_array(np.zeros(N, np.int8), "b_zp")]
    else:
        blob, scales = _nbits_blob(w_q)
        node = helper.make_node("MatMulNBits", ["A", "B", "scales"], ["Y"], domain="com.microsoft",
                                K=K, N=N, bits=4, block_size=GROUP,
                                accuracy_level=4 if fmt == "w4a8" else 1)
        inits = [numpy_helper.from_array(blob, "B"), numpy_helper.from_array(scales, "scales")]
    graph = helper.make_graph([node], f"linear_{fmt}", [a_info], [y_info], initializer=inits)
    return peers._bound_runner(peers._session(graph, threads), x, (x.shape[0], N), np.float32)


# ----------------------------------------------------------------------------------------------
# Benchmarks


def _rel_err(y, ref):
    return float(np.linalg.norm(np.asarray(y, np.float64) - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("m,fmt,impl,threads", CASES,
                         ids=[f"{fmt}-{m}x{K}x{N}-{impl}-t{t}" for m, fmt, impl, t in CASES])
def test_linear(benchmark, lowbit_env, m, fmt, impl, threads):
    group = f"linear-{fmt}-{m}x{K}x{N}"
    ops = 2 * m * N * K
    benchmark.group = group
    benchmark.extra_info.update(impl=impl, threads=threads, ops=ops, fmt=fmt, m=m,
                                openblas_env=peers.openblas_env())
    w, w_q = _weights(fmt)
    x = np.random.default_rng(m).standard_normal((m, K)).astype(np.float32)
    act = None if fmt == "w4" else "int8"
    slow = m * N * K >= 16 * 4096 * 4096
    run = (lambda fn: benchmark.pedantic(fn, rounds=5, warmup_rounds=1)) if slow else benchmark
    ref_f32 = x.astype(np.float64) @ w.T.astype(np.float64)

    if impl == "numpy-f32":
        wt = w.T
        with peers.blas_threads(threads) as limited:
            benchmark.extra_info["numpy_threads_limited"] = limited
            y = run(lambda: x @ wt)
        benchmark.extra_info["rel_err_vs_f32"] = _rel_err(y, ref_f32)
    elif impl == "torch":
        fn = torch_dynamic_linear(w, threads)
        tx = peers.torch.from_numpy(x)
        y = run(lambda: fn(tx))
        benchmark.extra_info["rel_err_vs_f32"] = _rel_err(y.numpy(), ref_f32)
        benchmark.extra_info["peer"] = "torch.ao quantize_dynamic(nn.Linear), qint8"
    elif impl == "ort":
        try:
            runner = ort_runner(fmt, w_q, x, threads)
        except Exception as e:  # noqa: BLE001 - an op this onnxruntime lacks
            pytest.skip(f"onnxruntime cannot run the {fmt} peer: {e}")
        y = run(runner)
        benchmark.extra_info["rel_err_vs_f32"] = _rel_err(y, ref_f32)
        benchmark.extra_info["peer"] = ("DynamicQuantizeMatMul" if fmt == "w8a8" else
                                        f"MatMulNBits(bits=4, block_size={GROUP}, accuracy_level="
                                        f"{4 if fmt == 'w4a8' else 1})")
    else:
        lb.linear(x, w_q, act_dtype=act)  # pack the weights into the QTensor's cache (untimed)
        with lowbit_env(impl, threads):
            y = run(lambda: lb.linear(x, w_q, act_dtype=act))
            got = lb.linear(x[:3], w_q, act_dtype=act)
        benchmark.extra_info["rel_err_vs_f32"] = _rel_err(y, ref_f32)
        want = lbr.linear(x[:3], w_q, act_dtype=act)
        if act is None:
            w_hat = w_q.dequantize()
            bound = WEIGHT_ONLY_RTOL * (np.linalg.norm(x[:3], axis=1)[:, None]
                                        * np.linalg.norm(w_hat, axis=1)[None, :])
            assert (np.abs(y[:3].astype(np.float64) - want) <= bound).all()
        else:
            np.testing.assert_array_equal(y[:3].view(np.uint32), want.view(np.uint32))
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    peers.record_ratios(benchmark, _MEDIANS, group, impl, threads, ops)
