"""Differential fuzzing: hypothesis draws the arguments, and every compiled function must agree
with ``lowbit.reference`` bit for bit (or both must raise the same exception type).

Hypothesis draws the structure (dtype, shape with 0 and 1 dimensions, axis, group size, zero
points, memory layout including negative strides and misaligned starts, value distribution,
ISA path, thread count) and a seed; NumPy draws the values from that seed, which keeps each
example fast. The regular run uses the "ci" profile of conftest.py (a few dozen examples a
test); a long search runs with

    python -m pytest tests/test_fuzz.py --hypothesis-profile=fuzz --hypothesis-show-statistics

(``LOWBIT_FUZZ_EXAMPLES`` sets the examples a test; the default is 100000).
"""

import math

import numpy as np
import pytest
from conftest import (ISAS, QINFO, assert_qparams_same, assert_same, check_vs_ref, forced_isa,
                      num_threads)
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import lowbit as lb
import lowbit.reference as lbr
from lowbit._reference_linear import WEIGHT_ONLY_RTOL

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DISTS = ("normal", "heavy", "equal", "inf", "subnormal", "ties", "huge", "mixed")
LAYOUTS = ("C", "F", "neg", "step", "T", "offset")
THREADS = (1, 2, 3)
F32 = np.float32


# ----------------------------------------------------------------------------------------------
# Values


def float_values(rng, dist, shape, spread=1.0, scale_full=None):
    """float32 data of the named distribution. ``ties`` needs the (broadcast) scales: it puts
    values exactly halfway between two quantization steps when the scale allows it."""
    n = math.prod(shape)
    if dist == "normal":
        v = rng.standard_normal(n) * spread
    elif dist == "heavy":
        v = rng.standard_cauchy(n) * spread
    elif dist == "equal":
        c = rng.choice([0.0, -0.0, 1.0, -2.5, 1e-45, -3e-39, 3.4e38, 1e-3, 7.5, -128.5])
        v = np.full(n, c * (spread if abs(c) < 1e30 and abs(c) > 1e-30 else 1.0))
    elif dist == "inf":
        v = rng.standard_normal(n) * spread
        v[rng.random(n) < 0.2] = np.inf
        v[rng.random(n) < 0.2] = -np.inf
    elif dist == "subnormal":
        v = rng.uniform(-1, 1, n) * 1.2e-38 * rng.random(n) ** 6
    elif dist == "huge":
        v = rng.uniform(-3.4e38, 3.4e38, n)
    elif dist == "ties":
        k = rng.integers(-300, 300, n) + 0.5
        s = np.ones(n) if scale_full is None else np.asarray(scale_full, np.float64).reshape(n)
        v = k * s
    else:  # mixed: a bit of everything
        parts = [float_values(rng, d, (n,), spread, scale_full) for d in DISTS[:-1]]
        pick = rng.integers(0, len(parts), n)
        v = np.choose(pick, parts) if n else np.zeros(0)
    with np.errstate(over="ignore"):
        return np.asarray(v, np.float64).astype(F32).reshape(shape)


def scale_values(rng, kind, shape):
    """Positive finite float32 scales: powers of two (exact ties), arbitrary, subnormal, huge."""
    n = math.prod(shape)
    if kind == "pow2":
        v = np.exp2(rng.integers(-20, 8, n).astype(np.float64))
    elif kind == "uniform":
        v = rng.uniform(1e-3, 10, n)
    elif kind == "subnormal":
        v = rng.uniform(1e-45, 1e-38, n)
    elif kind == "huge":
        v = rng.uniform(1e30, 3.4e38, n)
    else:  # small-mantissa multiples of powers of two
        v = rng.choice([0.75, 1.25, 3.0, 5.0, 0.1], n) * np.exp2(rng.integers(-12, 4, n))
    v = v.astype(F32)
    v[v <= 0] = F32(1e-45)
    return v.reshape(shape)


def relayout(a, kind, axis):
    """A view holding the same values as ``a`` in another memory layout."""
    if a.ndim == 0 or kind == "C":
        return a
    axis %= a.ndim
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "neg":
        return np.flip(np.flip(a, axis).copy(), axis)
    if kind == "step":
        idx = [slice(None)] * a.ndim
        idx[axis] = slice(None, None, 2)
        return np.repeat(a, 2, axis=axis)[tuple(idx)]
    if kind == "T":
        return np.ascontiguousarray(a.T).T
    raw = np.empty(a.nbytes + 1, np.uint8)  # "offset": misaligned start
    out = raw[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


# ----------------------------------------------------------------------------------------------
# Strategies


@st.composite
def shapes(draw, max_dims=4, max_size=600):
    """Shapes of 0..4 dimensions (0 and 1 included); now and then one long 1-D array, large
    enough for the thread pool to split it."""
    if draw(st.integers(0, 39)) == 0:
        return (draw(st.integers(65536, 300_000)),)
    dims = draw(st.lists(st.integers(0, 40), min_size=0, max_size=max_dims))
    while math.prod(dims) > max_size:
        dims[dims.index(max(dims))] //= 2
    return tuple(dims)


@st.composite
def granularities(draw, shape):
    """(axis, group_size), valid for shape (negative axes included)."""
    kind = draw(st.sampled_from(["tensor", "axis", "group"] if shape else ["tensor"]))
    if kind == "tensor":
        return None, None
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    if kind == "axis":
        return axis, None
    length = shape[axis]
    return axis, draw(st.one_of(st.integers(1, max(1, length + 2)), st.sampled_from([1, 2, 32])))


def param_shape(shape, axis, group):
    if axis is None:
        return (1,)
    a = axis % len(shape)
    if group is None:
        return (shape[a],)
    s = list(shape)
    s[a] = -(-shape[a] // group)
    return tuple(s)


def expand(p, shape, axis, group):
    p = np.asarray(p)
    if axis is None:
        return np.broadcast_to(p.reshape(()), shape)
    a = axis % len(shape)
    if group is None:
        view = [1] * len(shape)
        view[a] = shape[a]
        return np.broadcast_to(p.reshape(view), shape)
    return np.take(np.repeat(p, group, axis=a), np.arange(shape[a]), axis=a)


@st.composite
def scales(draw, rng, shape, axis, group):
    """A scale in one of the accepted forms: Python float, 0-d, (1,), or the per-axis/group
    array (float32 or float64)."""
    kind = draw(st.sampled_from(["pow2", "uniform", "subnormal", "huge", "mant"]))
    s = scale_values(rng, kind, param_shape(shape, axis, group))
    if axis is None:
        form = draw(st.sampled_from(["float", "0d", "1"]))
        return float(s[0]) if form == "float" else (s.reshape(()) if form == "0d" else s)
    if draw(st.booleans()):
        s = s.astype(np.float64)
    return s


@st.composite
def zero_points(draw, rng, qdtype, shape, axis, group, lo=None, hi=None):
    """None, a Python int, 0-d / (1,) arrays, or an array of the parameter shape, of any integer
    dtype that holds the range [lo, hi] (default: the quantized dtype's range)."""
    qmin, qmax, _ = QINFO[qdtype]
    lo = qmin if lo is None else lo
    hi = qmax if hi is None else hi
    form = draw(st.sampled_from(["none", "int", "array"] if axis is None else ["none", "array"]))
    if form == "none":
        return None
    if axis is None:
        v = draw(st.integers(lo, hi))
        return v if form == "int" else np.array([v], draw(st.sampled_from(["int32", "int64"])))
    fits = [d for d in ("int8", "uint8", "int16", "int32", "int64")
            if np.iinfo(d).min <= lo and np.iinfo(d).max >= hi]
    z = rng.integers(lo, hi, param_shape(shape, axis, group), endpoint=True)
    return z.astype(draw(st.sampled_from(fits)))


def run_everywhere(draw):
    """(isa, threads) for this example."""
    return draw(st.sampled_from(ISAS)), draw(st.sampled_from(THREADS))


FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


# ----------------------------------------------------------------------------------------------
# Quantization family


@FUZZ
@given(st.data())
def test_quantize(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    qdtype = draw(st.sampled_from(list(QINFO)), label="dtype")
    shape = draw(shapes(), label="shape")
    axis, group = draw(granularities(shape), label="axis, group")
    scale = draw(scales(rng, shape, axis, group), label="scale")
    zp = draw(zero_points(rng, qdtype, shape, axis, group), label="zero_point")
    dist = draw(st.sampled_from(DISTS), label="dist")
    s_full = expand(np.asarray(scale, F32), shape, axis, group)
    x = float_values(rng, dist, shape, spread=float(np.median(s_full)) * 60 if s_full.size else 1,
                     scale_full=s_full)
    x = relayout(x, draw(st.sampled_from(LAYOUTS), label="layout"),
                 draw(st.integers(0, 3), label="layout axis"))
    if draw(st.sampled_from([0] * 9 + [1]), label="float64/16 input"):
        x = x.astype(draw(st.sampled_from([np.float64, np.float16])))
    packed = qdtype in ("int4", "uint4") and len(shape) >= 1 and draw(st.booleans(), label="packed")
    isa, threads = run_everywhere(draw)
    note(f"x.strides={x.strides} isa={isa} threads={threads}")
    with forced_isa(isa), num_threads(threads):
        check_vs_ref("quantize", x, scale, zp, dtype=qdtype, axis=axis, group_size=group,
                     packed=packed)
        check_vs_ref("fake_quantize", x, scale, zp, dtype=qdtype, axis=axis, group_size=group)
        grad = relayout(rng.standard_normal(shape).astype(F32), "neg", 0)
        check_vs_ref("fake_quantize_grad", x, grad, scale, zp, dtype=qdtype, axis=axis,
                     group_size=group)


@FUZZ
@given(st.data())
def test_quantize_out(data):
    """``out=``: written in place (any layout of out), the result equal to the reference."""
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    qdtype = draw(st.sampled_from(list(QINFO)), label="dtype")
    shape = draw(shapes(max_size=200), label="shape")
    axis, group = draw(granularities(shape), label="axis, group")
    scale = draw(scales(rng, shape, axis, group), label="scale")
    zp = draw(zero_points(rng, qdtype, shape, axis, group), label="zero_point")
    x = float_values(rng, draw(st.sampled_from(DISTS)), shape, 30.0)
    layout = draw(st.sampled_from(LAYOUTS), label="out layout")
    storage = QINFO[qdtype][2]
    want = lbr.quantize(x, scale, zp, dtype=qdtype, axis=axis, group_size=group)
    out = relayout(np.zeros(shape, storage), layout, 0)
    isa, threads = run_everywhere(draw)
    with forced_isa(isa), num_threads(threads):
        got = lb.quantize(x, scale, zp, dtype=qdtype, axis=axis, group_size=group, out=out)
        assert got is out
        assert_same(out, want)
        fout = relayout(np.zeros(shape, F32), layout, 0)
        got = lb.dequantize(want, scale, zp, axis=axis, group_size=group, out=fout)
        assert got is fout
        assert_same(fout, lbr.dequantize(want, scale, zp, axis=axis, group_size=group))


@FUZZ
@given(st.data())
def test_dequantize(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    kind = draw(st.sampled_from(["int8", "uint8", "packed-int4", "packed-uint4"]), label="kind")
    shape = draw(shapes(), label="shape")
    if kind.startswith("packed"):
        assume(len(shape) >= 1)
        n = shape[-1]
        q = rng.integers(0, 256, shape[:-1] + ((n + 1) // 2,), dtype=np.uint8)
        if n % 2:
            q[..., -1] &= 15
        packed, qd = kind[7:], kind[7:]
        lo, hi = QINFO[qd][:2]
    else:
        q = rng.integers(0, 256, shape, dtype=np.uint8).view(np.dtype(kind))
        packed, n, qd = None, None, kind
        lo, hi = QINFO[qd][:2]
    axis, group = draw(granularities(shape), label="axis, group")
    scale = draw(scales(rng, shape, axis, group), label="scale")
    zp = draw(zero_points(rng, qd, shape, axis, group, lo, hi), label="zero_point")
    q = relayout(q, draw(st.sampled_from(LAYOUTS), label="layout"), draw(st.integers(0, 3)))
    isa, threads = run_everywhere(draw)
    with forced_isa(isa), num_threads(threads):
        if packed:
            check_vs_ref("dequantize", q, scale, zp, axis=axis, group_size=group, packed=packed,
                         n=n if draw(st.booleans()) else None if n % 2 == 0 else n)
        else:
            check_vs_ref("dequantize", q, scale, zp, axis=axis, group_size=group)


@FUZZ
@given(st.data())
def test_calibrate(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    qdtype = draw(st.sampled_from(list(QINFO)), label="dtype")
    shape = draw(shapes(), label="shape")
    axis, group = draw(granularities(shape), label="axis, group")
    dist = draw(st.sampled_from(DISTS), label="dist")
    x = float_values(rng, dist, shape, spread=draw(st.sampled_from([1e-30, 1e-3, 1.0, 1e3, 1e30])))
    x = relayout(x, draw(st.sampled_from(LAYOUTS)), draw(st.integers(0, 3)))
    method = draw(st.sampled_from(["minmax", "minmax", "percentile"]), label="method")
    kwargs = dict(symmetric=draw(st.booleans()), axis=axis, group_size=group, method=method,
                  percentile=draw(st.sampled_from([99.99, 90.0, 100.0, 50.0])))
    isa, threads = run_everywhere(draw)
    with forced_isa(isa), num_threads(threads):
        try:
            want = lbr.calibrate(x, qdtype, **kwargs)
        except ValueError:
            with pytest.raises(ValueError):
                lb.calibrate(x, qdtype, **kwargs)
            return
        got = lb.calibrate(x, qdtype, **kwargs)
    assert_qparams_same(got, want)


@FUZZ
@given(st.data())
def test_pack_unpack(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    signed = draw(st.booleans(), label="signed")
    shape = draw(shapes(), label="shape")
    assume(len(shape) >= 1)
    axis = draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    lo, hi = (-8, 7) if signed else (0, 15)
    q = rng.integers(lo, hi, shape, endpoint=True).astype(np.int8 if signed else np.uint8)
    if q.size and draw(st.sampled_from([0] * 19 + [1]), label="one value out of range"):
        q.reshape(-1)[rng.integers(q.size)] = hi + 1 if not signed or rng.random() < 0.5 else lo - 1
    q = relayout(q, draw(st.sampled_from(LAYOUTS), label="layout"), draw(st.integers(0, 3)))
    isa, threads = run_everywhere(draw)
    with forced_isa(isa), num_threads(threads):
        p = check_vs_ref("pack_int4", q, axis=axis)
        if p is None:
            return
        n = shape[axis]
        p = relayout(p, draw(st.sampled_from(LAYOUTS), label="packed layout"),
                     draw(st.integers(0, 3)))
        check_vs_ref("unpack_int4", p, signed=signed, axis=axis, n=n)
        check_vs_ref("unpack_int4", p, signed=not signed, axis=axis)


# ----------------------------------------------------------------------------------------------
# Integer GEMM and linear


@FUZZ
@given(st.data())
def test_matmul(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    big = draw(st.sampled_from([0] * 9 + [1]), label="big")
    m = draw(st.integers(0, 200 if big else 20), label="M")
    k = draw(st.integers(0, 300 if big else 70), label="K")
    n = draw(st.integers(0, 100 if big else 40), label="N")
    a_dt = draw(st.sampled_from(["int8", "uint8"]), label="a dtype")
    b_dt = draw(st.sampled_from(list(QINFO)), label="b dtype")
    alo, ahi = QINFO[a_dt][:2]
    blo, bhi = QINFO[b_dt][:2]
    extreme = draw(st.booleans(), label="extremes only")
    a = (rng.choice([alo, ahi], (m, k)) if extreme else
         rng.integers(alo, ahi, (m, k), endpoint=True)).astype(a_dt)
    b = (rng.choice([blo, bhi], (k, n)) if extreme else
         rng.integers(blo, bhi, (k, n), endpoint=True)).astype(QINFO[b_dt][2])
    vector = m == 1 and draw(st.booleans(), label="1-D a")
    if vector:
        a = a[0]
    za = draw(st.one_of(st.integers(alo, ahi), st.just(0),
                        st.builds(lambda s: rng.integers(alo, ahi, s, endpoint=True),
                                  st.just((1,) if vector else (m,)))), label="a_zero_point")
    zb = draw(st.one_of(st.integers(blo, bhi),
                        st.builds(lambda s: rng.integers(blo, bhi, s, endpoint=True),
                                  st.just((n,)))), label="b_zero_point")
    a = relayout(a, draw(st.sampled_from(LAYOUTS), label="a layout"), draw(st.integers(0, 1)))
    isa, threads = run_everywhere(draw)
    prepacked = draw(st.booleans(), label="PackedMatrix")
    with forced_isa(isa), num_threads(threads):
        if b_dt in ("int8", "uint8"):
            b = relayout(b, draw(st.sampled_from(LAYOUTS), label="b layout"), 1)
            want = lbr.matmul_int(a, b, za, zb)
            bb = lb.pack_matrix(b) if prepacked else b
            assert_same(lb.matmul_int(a, bb, za, zb), want)
        else:
            signed = b_dt == "int4"
            bp = lb.pack_int4(b, axis=0)
            want = lbr.matmul_int4(a, bp, k=k, signed=signed, a_zero_point=za, b_zero_point=zb)
            assert_same(want, lbr.matmul_int(a, b, za, zb))
            bpv = relayout(bp, draw(st.sampled_from(LAYOUTS), label="b layout"), 1)
            bb = lb.pack_matrix(bpv, dtype=b_dt, k=k) if prepacked else bpv
            got = lb.matmul_int4(a, bb, k=k, signed=signed, a_zero_point=za, b_zero_point=zb)
            assert_same(got, want)


@FUZZ
@given(st.data())
def test_linear(data):
    draw = data.draw
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    k = draw(st.integers(1, 160), label="in")
    n = draw(st.integers(1, 40), label="out")
    lead = draw(st.lists(st.integers(0, 12), max_size=2), label="leading shape")
    wdt = draw(st.sampled_from(list(QINFO)), label="weight dtype")
    gran = draw(st.sampled_from(["channel", "group", "tensor"]), label="weight granularity")
    axis, group = {"channel": (0, None), "tensor": (None, None),
                   "group": (1, draw(st.sampled_from([1, 2, 7, 16, 32, 128, k])))}[gran]
    act = draw(st.sampled_from(["int8", "uint8", None]), label="act_dtype")
    w = float_values(rng, draw(st.sampled_from(["normal", "heavy", "equal", "ties"])), (n, k))
    if act is None:
        # Float32 sums in any order: keep products and partial sums far from overflow, where
        # the documented bound (relative to the norms) is meaningful.
        w[np.abs(w) > 1e15] = 1e15
    w_q = lb.QTensor.quantize(w, wdt, axis=axis, group_size=group,
                              symmetric=draw(st.booleans(), label="symmetric"))
    dist = draw(st.sampled_from(["normal", "heavy", "equal", "subnormal", "ties", "mixed"]),
                label="x dist")
    x = float_values(rng, dist, tuple(lead) + (k,), spread=draw(st.sampled_from([1e-3, 1, 1e3])))
    x[~np.isfinite(x)] = 0  # linear needs finite activations
    if act is None:
        x[np.abs(x) > 1e15] = 0
    x = relayout(x, draw(st.sampled_from(LAYOUTS), label="x layout"), 0)
    bias = rng.standard_normal(n).astype(F32) if draw(st.booleans(), label="bias") else None
    isa, threads = run_everywhere(draw)
    with forced_isa(isa), num_threads(threads):
        try:
            want = lbr.linear(x, w_q, bias, act_dtype=act)
        except ValueError:
            with pytest.raises(ValueError):
                lb.linear(x, w_q, bias, act_dtype=act)
            return
        got = lb.linear(x, w_q, bias, act_dtype=act)
    if act is not None:
        assert_same(got, want)
        return
    # Weight-only: float32 sums in any order, within the documented bound.
    assert got.shape == want.shape and got.dtype == want.dtype
    x2 = np.asarray(x, np.float64).reshape(-1, k)
    wd = np.asarray(w_q.dequantize(), np.float64)
    bound = WEIGHT_ONLY_RTOL * (np.linalg.norm(x2, axis=1)[:, None] * np.linalg.norm(wd, axis=1)
                                + (0 if bias is None else np.abs(bias.astype(np.float64))))
    # Near underflow a relative bound cannot hold: each float32 product and partial sum may
    # also round to the subnormal grid (half a step each).
    bound += (k + 1) * float(np.finfo(F32).smallest_subnormal)
    err = np.abs(got.reshape(-1, n).astype(np.float64) - want.reshape(-1, n).astype(np.float64))
    assert (err <= bound).all(), f"max excess {np.max(err - bound)}"
