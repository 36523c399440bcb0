"""Benchmarks of the quantization kernels beside their baselines.

Each group is one operation at one size (256 Ki and 16 Mi float32 elements, as 512x512 and
4096x4096 matrices) and holds:

- ``numpy-ref``: ``lowbit.reference`` (plain NumPy, allocates its result), one thread;
- every ISA path of ``lb.available_isas()`` at 1 thread and at all threads. ``dequantize``
  writes into a preallocated ``out=``; ``quantize`` allocates and returns its result, as
  ``lb.quantize(x, s)`` is normally called (with ``out=`` it quantizes into a scratch buffer
  and copies, because a NaN found late must leave the caller's ``out`` untouched);
- ``ort`` (when onnxruntime and onnx are installed): ONNX Runtime's QuantizeLinear /
  DequantizeLinear (opset 21; INT4 with ``block_size=128``) in this process, with constant
  scale and zero-point initializers, ``intra_op_num_threads`` = the thread count,
  ``inter_op_num_threads=1`` and IOBinding onto preallocated buffers (its fastest mode).

Every result is checked against ``lowbit.reference`` after timing; speed is never asserted.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import _gemm_peers as peers
import lowbit as lb
import lowbit.reference as lbr

try:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError:
    ort = None

REF_IMPL = "numpy-ref"  # the names bench/conftest.py matches baselines by
ORT_IMPL = "ort"


SHAPES = {"256Ki": (512, 512), "16Mi": (4096, 4096)}
GROUP = 128
SLOW_N = 1 << 22  # numpy-ref at this size and above runs a few pedantic rounds only
SLOW_ROUNDS = 3

THREADS = peers.THREADS
IMPLS = [(REF_IMPL, 1)] + [(isa, t) for isa in lb.available_isas() for t in THREADS]
IMPLS_ORT = IMPLS + ([(ORT_IMPL, t) for t in THREADS] if ort is not None else [])


def _ids(params):
    return [f"{impl}-t{t}" for impl, t in params]


size_param = pytest.mark.parametrize("size", list(SHAPES))
impl_param = pytest.mark.parametrize(("impl", "threads"), IMPLS, ids=_ids(IMPLS))
impl_ort_param = pytest.mark.parametrize(("impl", "threads"), IMPLS_ORT, ids=_ids(IMPLS_ORT))


class Data:
    """Inputs and reference results for one shape, computed on first use and then kept."""

    def __init__(self, shape):
        rows, cols = shape
        self.shape = shape
        self.n = rows * cols
        self.x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        # About 1 in 1000 values saturates in each granularity.
        self.s = np.float32(3.3 / 127)
        self.s_chan = np.linspace(0.02, 0.03, rows, dtype=np.float32)
        self.s_group = (np.abs(self.x).reshape(rows, cols // GROUP, GROUP).max(-1) / 7).astype(
            np.float32
        )

    @functools.cached_property
    def q8(self):
        return lbr.quantize(self.x, self.s)

    @functools.cached_property
    def q8_chan(self):
        return lbr.quantize(self.x, self.s_chan, axis=0)

    @functools.cached_property
    def q4(self):
        return lbr.quantize(self.x, self.s_group, dtype="int4", axis=-1, group_size=GROUP)

    @functools.cached_property
    def p4(self):
        return lbr.quantize(
            self.x, self.s_group, dtype="int4", axis=-1, group_size=GROUP, packed=True
        )

    @functools.cached_property
    def dq8(self):
        return lbr.dequantize(self.q8, self.s)

    @functools.cached_property
    def dq8_chan(self):
        return lbr.dequantize(self.q8_chan, self.s_chan, axis=0)

    @functools.cached_property
    def dq4(self):
        return lbr.dequantize(
            self.p4, self.s_group, axis=-1, group_size=GROUP, packed="int4", n=self.shape[1]
        )


@pytest.fixture(scope="module")
def data():
    cache = {}

    def get(size):
        if size not in cache:
            cache[size] = Data(SHAPES[size])
        return cache[size]

    return get


# --- ONNX Runtime ------------------------------------------------------------------------------


def _ort_model(op, x_type, y_type, shape, scale, zp_type=None, axis=None, block_size=None):
    """One QuantizeLinear/DequantizeLinear node; scale (and zero point 0) are initializers."""
    inits = [numpy_helper.from_array(np.asarray(scale, np.float32), "scale")]
    inputs = ["x", "scale"]
    if zp_type is not None:  # QuantizeLinear picks its output type from the zero point
        dims = list(np.shape(scale))
        inits.append(helper.make_tensor("zp", zp_type, dims, [0] * int(np.prod(dims))))
        inputs.append("zp")
    attrs = {}
    if axis is not None:
        attrs["axis"] = axis
    if block_size is not None:
        attrs["block_size"] = block_size
    graph = helper.make_graph(
        [helper.make_node(op, inputs, ["y"], **attrs)],
        "lowbit_bench",
        [helper.make_tensor_value_info("x", x_type, list(shape))],
        [helper.make_tensor_value_info("y", y_type, list(shape))],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10  # INT4 needs IR >= 10; keep it at what onnxruntime >= 1.20 reads
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _ort_session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def _time_ort(benchmark, model, threads, x, x_type, out, y_type, shape):
    """Bind x and the preallocated out by pointer (INT4 buffers are packed ONNX INT4), then time.

    Binding raw pointers is what lets INT4 in and out: NumPy has no int4 dtype, and the
    packed bytes of ONNX INT4 are exactly lowbit's packing along an even-length last axis.
    """
    sess = _ort_session(model, threads)
    io = sess.io_binding()
    io.bind_input("x", "cpu", 0, x_type, list(shape), x.ctypes.data)
    io.bind_output("y", "cpu", 0, y_type, list(shape), out.ctypes.data)
    benchmark(sess.run_with_iobinding, io)
    del io, sess  # release ORT's thread pool before the next benchmark
    return out


# --- timing helpers ----------------------------------------------------------------------------


def _time_ref(benchmark, size, fn, /, *args, **kwargs):
    if size >= SLOW_N:
        return benchmark.pedantic(fn, args, kwargs, rounds=SLOW_ROUNDS, warmup_rounds=0)
    return benchmark(fn, *args, **kwargs)


def _time_lowbit(benchmark, lowbit_env, impl, threads, fn, /, *args, **kwargs):
    with lowbit_env(impl, threads):
        return benchmark(fn, *args, **kwargs)


def _assert_same_bits(got, expected, what):
    assert got.dtype == expected.dtype and got.shape == expected.shape, what
    if got.dtype == np.float32:
        got, expected = got.view(np.uint32), expected.view(np.uint32)
    np.testing.assert_array_equal(got, expected, err_msg=what)


# --- quantize / dequantize int8 ----------------------------------------------------------------


@size_param
@impl_ort_param
def test_quantize_int8_per_tensor(benchmark, describe, lowbit_env, data, size, impl, threads):
    d = data(size)
    describe(group=f"quantize-int8-per-tensor-{size}", impl=impl, threads=threads, n=d.n,
             bytes_moved=4 * d.n + d.n)
    if impl == REF_IMPL:
        got = _time_ref(benchmark, d.n, lbr.quantize, d.x, d.s)
    elif impl == ORT_IMPL:
        model = _ort_model("QuantizeLinear", TensorProto.FLOAT, TensorProto.INT8, d.shape,
                           d.s, TensorProto.INT8)
        got = _time_ort(benchmark, model, threads, d.x, TensorProto.FLOAT,
                        np.empty(d.shape, np.int8), TensorProto.INT8, d.shape)
    else:
        got = _time_lowbit(benchmark, lowbit_env, impl, threads, lb.quantize, d.x, d.s)
    _assert_same_bits(got, d.q8, impl)


@size_param
@impl_ort_param
def test_quantize_int8_per_channel(benchmark, describe, lowbit_env, data, size, impl, threads):
    d = data(size)
    describe(group=f"quantize-int8-per-channel-{size}", impl=impl, threads=threads, n=d.n,
             bytes_moved=4 * d.n + d.n)
    if impl == REF_IMPL:
        got = _time_ref(benchmark, d.n, lbr.quantize, d.x, d.s_chan, axis=0)
    elif impl == ORT_IMPL:
        model = _ort_model("QuantizeLinear", TensorProto.FLOAT, TensorProto.INT8, d.shape,
                           d.s_chan, TensorProto.INT8, axis=0)
        got = _time_ort(benchmark, model, threads, d.x, TensorProto.FLOAT,
                        np.empty(d.shape, np.int8), TensorProto.INT8, d.shape)
    else:
        got = _time_lowbit(benchmark, lowbit_env, impl, threads, lb.quantize, d.x, d.s_chan,
                           axis=0)
    _assert_same_bits(got, d.q8_chan, impl)


@size_param
@impl_ort_param
def test_dequantize_int8_per_tensor(benchmark, describe, lowbit_env, data, size, impl, threads):
    d = data(size)
    q = d.q8
    describe(group=f"dequantize-int8-per-tensor-{size}", impl=impl, threads=threads, n=d.n,
             bytes_moved=d.n + 4 * d.n)
    if impl == REF_IMPL:
        got = _time_ref(benchmark, d.n, lbr.dequantize, q, d.s)
    elif impl == ORT_IMPL:
        model = _ort_model("DequantizeLinear", TensorProto.INT8, TensorProto.FLOAT, d.shape, d.s)
        got = _time_ort(benchmark, model, threads, q, TensorProto.INT8,
                        np.empty(d.shape, np.float32), TensorProto.FLOAT, d.shape)
    else:
        got = np.empty(d.shape, np.float32)
        _time_lowbit(benchmark, lowbit_env, impl, threads, lb.dequantize, q, d.s, out=got)
    _assert_same_bits(got, d.dq8, impl)


@size_param
@impl_ort_param
def test_dequantize_int8_per_channel(benchmark, describe, lowbit_env, data, size, impl, threads):
    d = data(size)
    q = d.q8_chan
    describe(group=f"dequantize-int8-per-channel-{size}", impl=impl, threads=threads, n=d.n,
             bytes_moved=d.n + 4 * d.n)
    if impl == REF_IMPL:
        got = _time_ref(benchmark, d.n, lbr.dequantize, q, d.s_chan, axis=0)
    elif impl == ORT_IMPL:
        model = _ort_model("DequantizeLinear", TensorProto.INT8, TensorProto.FLOAT, d.shape,
                           d.s_chan, axis=0)
        got = _time_ort(benchmark, model, threads, q, TensorProto.INT8,
                        np.empty(d.shape, np.float32), TensorProto.FLOAT, d.shape)
    else:
        got = np.empty(d.shape, np.float32)
        _time_lowbit(benchmark, lowbit_env, impl, threads, lb.dequantize, q, d.s_chan, axis=0,
                     out=got)
    _assert_same_bits(got, d.dq8_chan, impl)


# --- int4, per group of 128 along the last axis, packed ----------------------------------------


@size_param
@impl_ort_param
def test_quantize_int4_group128_packed(benchmark, describe, lowbit_env, data, size, impl,
                                       threads):
    d = data(size)
    rows, cols = d.shape
    kw = dict(dtype="int4", axis=-1, group_size=GROUP, packed=True)
    describe(group=f"quantize-int4-g128-packed-{size}", impl=impl, threads=threads, n=d.n,
             bytes_moved=4 * d.n + d.n // 2)
    if impl == REF_IMPL:
        got = _time_ref(benchmark, d.n, lbr.quantize, d.x, d.s_group, **kw)
    elif impl == ORT_IMPL:
        model = _ort_model("QuantizeLinear", TensorProto.FLOAT, TensorProto.INT4, d.shape,
                           d.s_group, TensorProto.INT4, axis=1, block_size=GROUP)
        got = _time_ort(benchmark, model, threads, d.x, TensorProto.FLOAT,
                        np.empty((rows, cols // 2), np.uint8), TensorProto.INT4, d.shape)
    else:
        got = _time_lowbit(benchmark, lowbit_env, impl, threads, lb.quantize, d.x, d.s_group,
                           **kw)
    _assert_same_bits(got, d.p4, impl)


@size_param
@impl_ort_param
def test_dequantize_int4_group128_packed(benchmark, describe, lowbit_env, data, size, impl,
                                         threads):
    d = data(size)
    p = d.p4
    kw = dict(axis=-1, group_size=GROUP, packed="int4", n=d.shape[1])
    describe(group=f"dequantize-int4-g128-packed-{size}", impl=impl, threads=threads, n=d.n,
             bytes_moved=d.n // 2 + 4 * d.n)
    if impl == REF_IMPL:
        got = _time_ref(benchmark, d.n, lbr.dequantize, p, d.s_group, **kw)
    elif impl == ORT_IMPL:
        model = _ort_model("DequantizeLinear", TensorProto.INT4, TensorProto.FLOAT, d.shape,
                           d.s_group, axis=1, block_size=GROUP)
        got = _time_ort(benchmark, model, threads, p, TensorProto.INT4,
                        np.empty(d.shape, np.float32), TensorProto.FLOAT, d.shape)
    else:
        got = np.empty(d.shape, np.float32)
        _time_lowbit(benchmark, lowbit_env, impl, threads, lb.dequantize, p, d.s_group, **kw,
                     out=got)
    _assert_same_bits(got, d.dq4, impl)


# --- int4 nibble packing -----------------------------------------------------------------------


@size_param
@impl_param
def test_pack_int4(benchmark, describe, lowbit_env, data, size, impl, threads):
    d = data(size)
    q = d.q4
    describe(group=f"pack-int4-{size}", impl=impl, threads=threads, n=d.n,
             bytes_moved=d.n + d.n // 2)
    if impl == REF_IMPL:
        got = _time_ref(benchmark, d.n, lbr.pack_int4, q, axis=-1)
    else:
        got = _time_lowbit(benchmark, lowbit_env, impl, threads, lb.pack_int4, q, axis=-1)
    _assert_same_bits(got, d.p4, impl)


@size_param
@impl_param
def test_unpack_int4(benchmark, describe, lowbit_env, data, size, impl, threads):
    d = data(size)
    p = d.p4
    describe(group=f"unpack-int4-{size}", impl=impl, threads=threads, n=d.n,
             bytes_moved=d.n // 2 + d.n)
    if impl == REF_IMPL:
        got = _time_ref(benchmark, d.n, lbr.unpack_int4, p, axis=-1, n=d.shape[1])
    else:
        got = _time_lowbit(benchmark, lowbit_env, impl, threads, lb.unpack_int4, p, axis=-1,
                           n=d.shape[1])
    _assert_same_bits(got, d.q4, impl)


# --- calibration (min-max, symmetric) ----------------------------------------------------------


def _assert_same_qparams(got, expected, what):
    _assert_same_bits(np.asarray(got.scale), np.asarray(expected.scale), what)
    _assert_same_bits(np.asarray(got.zero_point), np.asarray(expected.zero_point), what)


@size_param
@impl_param
def test_calibrate_minmax_int8_per_tensor(benchmark, describe, lowbit_env, data, size, impl,
                                          threads):
    d = data(size)
    describe(group=f"calibrate-minmax-int8-per-tensor-{size}", impl=impl, threads=threads,
             n=d.n, bytes_moved=4 * d.n)
    if impl == REF_IMPL:
        got = _time_ref(benchmark, d.n, lbr.calibrate, d.x, "int8")
    else:
        got = _time_lowbit(benchmark, lowbit_env, impl, threads, lb.calibrate, d.x, "int8")
    _assert_same_qparams(got, lbr.calibrate(d.x, "int8"), impl)


@size_param
@impl_param
def test_calibrate_minmax_int4_group128(benchmark, describe, lowbit_env, data, size, impl,
                                        threads):
    d = data(size)
    kw = dict(axis=-1, group_size=GROUP)
    describe(group=f"calibrate-minmax-int4-g128-{size}", impl=impl, threads=threads, n=d.n,
             bytes_moved=4 * d.n + 5 * (d.n // GROUP))  # + scales, zero points
    if impl == REF_IMPL:
        got = _time_ref(benchmark, d.n, lbr.calibrate, d.x, "int4", **kw)
    else:
        got = _time_lowbit(benchmark, lowbit_env, impl, threads, lb.calibrate, d.x, "int4", **kw)
    _assert_same_qparams(got, lbr.calibrate(d.x, "int4", **kw), impl)
