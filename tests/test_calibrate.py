"""calibrate (minmax / percentile / mse, symmetric and asymmetric, per tensor / axis / group)
against lowbit.reference on every ISA, plus the API.md formulas checked by hand."""

import dataclasses
import warnings

import numpy as np
import pytest
from conftest import (
    BIG,
    ISAS,
    QDTYPES,
    QINFO,
    assert_qparams_same,
    assert_same,
    expand,
    forced_isa,
    param_shape,
)
from hypothesis import given
from hypothesis import strategies as st

import lowbit as lb
import lowbit.reference as lbr

F32 = np.float32
QMAX_SYM = {"int8": 127, "uint8": 127, "int4": 7, "uint4": 7}
ZP_SYM = {"int8": 0, "uint8": 128, "int4": 0, "uint4": 8}
GRANULARITIES = [(None, None), (0, None), (1, None), (2, None), (-1, None), (1, 3), (-1, 5),
                 (0, 2), (2, 33), (2, 40)]


def slice_data(rng, shape, axis=None, group_size=None):
    """Data whose slices (per the granularity) have very different magnitudes and offsets:
    some all-positive, some all-negative, some straddling zero, with exact zeros sprinkled in."""
    pshape = param_shape(shape, axis, group_size)
    mag = np.exp2(rng.integers(-10, 10, size=pshape)).astype(np.float64)
    shift = rng.choice(np.array([0.0, 2.5, -2.5, 0.3]), size=pshape)
    mag_full = expand(mag, shape, axis, group_size)
    shift_full = expand(shift, shape, axis, group_size)
    x = (rng.standard_normal(shape) + shift_full) * mag_full
    x[rng.random(shape) < 0.05] = 0.0
    return x.astype(np.float32)


def slice_mse(x, qp):
    """Per-slice mean squared error of fake_quantize (from the reference), in float64."""
    fq = lbr.fake_quantize(x, qp.scale, qp.zero_point, dtype=qp.dtype, axis=qp.axis,
                           group_size=qp.group_size)
    err = (fq.astype(np.float64) - x.astype(np.float64)) ** 2
    if qp.axis is None:
        return np.array([err.mean()])
    axis = qp.axis % x.ndim
    if qp.group_size is None:
        others = tuple(i for i in range(x.ndim) if i != axis)
        return err.mean(axis=others)
    starts = np.arange(0, x.shape[axis], qp.group_size)
    sums = np.add.reduceat(err, starts, axis=axis)
    counts = np.minimum(qp.group_size, x.shape[axis] - starts)
    view = [1] * x.ndim
    view[axis] = len(starts)
    return sums / counts.reshape(view)


def assert_calibrate_same(got, want, x, msg=""):
    """Exact agreement, except where API.md allows it for method="mse": two candidates whose
    errors differ by less than 1e-9 relative. Each differing slice must be such a near tie."""
    try:
        assert_qparams_same(got, want, msg)
        return
    except AssertionError:
        pass
    assert got.dtype == want.dtype and got.axis == want.axis, msg
    assert got.group_size == want.group_size, msg
    assert got.scale.shape == want.scale.shape and got.scale.dtype == want.scale.dtype, msg
    assert got.zero_point.dtype == want.zero_point.dtype, msg
    e_got, e_want = slice_mse(x, got), slice_mse(x, want)
    differ = (got.scale.view(np.uint32) != want.scale.view(np.uint32)) | (
        got.zero_point != want.zero_point)
    differ = np.broadcast_to(differ, e_got.shape)
    rel = np.abs(e_got - e_want) / np.maximum(np.maximum(e_got, e_want), 1e-300)
    bad = differ & ~(rel < 1e-9)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        pytest.fail(f"{msg}: calibrate differs from the reference at slice {i}: "
                    f"scale {got.scale[i]!r} vs {want.scale[i]!r}, zero point "
                    f"{got.zero_point[i]} vs {want.zero_point[i]}, mse {e_got[i]!r} vs "
                    f"{e_want[i]!r} (not a near tie)")


def calibrate_both(x, *args, **kwargs):
    return lb.calibrate(x, *args, **kwargs), lbr.calibrate(x, *args, **kwargs)


# ----------------------------------------------------------------------------------------------
# Agreement with the reference


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("method", ["minmax", "percentile"])
@pytest.mark.parametrize("axis,group_size", GRANULARITIES)
def test_calibrate_matches_reference(isa, qdtype, symmetric, method, axis, group_size, rng):
    shape = (4, 7, 33)
    x = slice_data(rng, shape, axis, group_size)
    kw = dict(symmetric=symmetric, axis=axis, group_size=group_size, method=method)
    got, want = calibrate_both(x, qdtype, **kw)
    assert_qparams_same(got, want, f"{isa} {qdtype} {kw}")
    check_fields(got, x.shape, qdtype, axis, group_size)


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("axis,group_size", [(None, None), (0, None), (-1, None), (1, 4),
                                             (-1, 7)])
def test_calibrate_mse_matches_reference(isa, qdtype, symmetric, axis, group_size, rng):
    shape = (3, 5, 21)
    x = slice_data(rng, shape, axis, group_size)
    # Heavy tails make the clipped candidates win often.
    x[rng.random(shape) < 0.02] *= 40
    kw = dict(symmetric=symmetric, axis=axis, group_size=group_size, method="mse")
    got, want = calibrate_both(x, qdtype, **kw)
    assert_calibrate_same(got, want, x, f"{isa} {qdtype} {kw}")
    check_fields(got, x.shape, qdtype, axis, group_size)


@pytest.mark.parametrize("p", [100.0, 99.99, 99.0, 90.0, 50.0, 75.5])
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
def test_calibrate_percentile_values(isa, p, symmetric, rng):
    x = slice_data(rng, (6, 50), 0)
    for axis, g in [(None, None), (0, None), (1, 8)]:
        got, want = calibrate_both(x, "int8", symmetric=symmetric, axis=axis, group_size=g,
                                   method="percentile", percentile=p)
        assert_qparams_same(got, want, f"{isa} p={p} axis={axis} g={g}")


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
def test_calibrate_big(isa, qdtype, symmetric, rng):
    x = (rng.standard_normal(BIG) * 3 + 0.5).astype(np.float32)
    x[12345] = 40.0  # a maximum inside the data...
    x[-1] = -41.0  # ...and a minimum in the tail
    got, want = calibrate_both(x, qdtype, symmetric=symmetric)
    assert_qparams_same(got, want, f"{isa}")
    x2 = x[: 1024 * 1023].reshape(1024, 1023)
    for axis in (0, 1):
        got, want = calibrate_both(x2, qdtype, symmetric=symmetric, axis=axis)
        assert_qparams_same(got, want, f"{isa} axis={axis}")
    got, want = calibrate_both(x2, qdtype, symmetric=symmetric, axis=1, group_size=32)
    assert_qparams_same(got, want, f"{isa} groups")


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
def test_calibrate_every_length(isa, method, rng):
    lengths = range(1, 70) if method != "mse" else [1, 2, 3, 7, 8, 9, 16, 17, 33, 64, 65]
    for n in lengths:
        x = (rng.standard_normal(n) * 2 - 0.3).astype(np.float32)
        if n > 3:
            x[rng.integers(n)] = 9.0  # the extreme somewhere in body or tail
        for qdtype, symmetric in (("int8", True), ("uint8", False), ("uint4", False)):
            got, want = calibrate_both(x, qdtype, symmetric=symmetric, method=method)
            assert_calibrate_same(got, want, x, f"{isa} n={n} {qdtype} sym={symmetric}")


def test_calibrate_layouts_and_casts(isa, rng):
    x = slice_data(rng, (9, 31), 1)
    for axis in (None, 0, 1):
        want = lbr.calibrate(x, "int8", axis=axis, symmetric=False)
        for name, xv in [("F", np.asfortranarray(x)), ("stride2", np.repeat(x, 2, 1)[:, ::2]),
                         ("neg", x[::-1].copy()[::-1]), ("float64", x.astype(np.float64))]:
            assert_qparams_same(lb.calibrate(xv, "int8", axis=axis, symmetric=False), want,
                                f"{isa} {name} axis={axis}")
    # float64 data is rounded to float32 before anything else: a range that only exists in
    # float64 collapses.
    x64 = np.array([1.0, 1.0 + 2.0**-40, -1.0 - 2.0**-40])
    assert_qparams_same(lb.calibrate(x64, "int8", symmetric=False),
                        lbr.calibrate(x64.astype(np.float32), "int8", symmetric=False), isa)
    x16 = x.astype(np.float16)
    assert_qparams_same(lb.calibrate(x16, "uint4"), lbr.calibrate(x16.astype(np.float32),
                                                                  "uint4"), f"{isa} float16")


# ----------------------------------------------------------------------------------------------
# Fields, formulas and special ranges, checked without the reference


def check_fields(qp, shape, qdtype, axis, group_size):
    storage = QINFO[qdtype][2]
    assert qp.dtype == qdtype
    assert qp.group_size == group_size
    if axis is None:
        assert qp.axis is None
    else:
        assert qp.axis % len(shape) == axis % len(shape)
    assert isinstance(qp.scale, np.ndarray) and isinstance(qp.zero_point, np.ndarray)
    assert qp.scale.dtype == np.float32
    assert qp.zero_point.dtype == storage
    assert qp.scale.shape == param_shape(shape, axis, group_size)
    assert qp.zero_point.shape == qp.scale.shape
    s = qp.scale
    assert np.all(np.isfinite(s)) and np.all(s >= np.finfo(np.float32).tiny), s
    qmin, qmax, _ = QINFO[qdtype]
    assert np.all((qp.zero_point >= qmin) & (qp.zero_point <= qmax))


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("axis,group_size", GRANULARITIES)
def test_qparams_fields(qdtype, axis, group_size, rng):
    x = slice_data(rng, (4, 7, 33), axis, group_size)
    for symmetric in (True, False):
        for method in ("minmax", "percentile", "mse"):
            qp = lb.calibrate(x, qdtype, symmetric=symmetric, axis=axis, group_size=group_size,
                              method=method)
            check_fields(qp, x.shape, qdtype, axis, group_size)


def test_qparams_is_immutable(rng):
    qp = lb.calibrate(rng.standard_normal(10).astype(np.float32))
    with pytest.raises((AttributeError, TypeError, dataclasses.FrozenInstanceError)):
        qp.scale = np.ones(1, np.float32)
    with pytest.raises((AttributeError, TypeError)):
        qp.dtype = "uint8"
    assert qp.dtype == "int8"  # calibrate's default dtype
    assert qp.axis is None and qp.group_size is None


def minmax_expected(x, qdtype, symmetric):
    """API.md's min-max formulas for one slice, step by step in float32."""
    qmin, qmax, storage = QINFO[qdtype]
    x = np.asarray(x, np.float32)
    if symmetric:
        scale = F32(np.max(np.abs(x))) / F32(QMAX_SYM[qdtype])
        if not scale >= np.finfo(np.float32).tiny:
            scale = F32(1.0)
        return scale, ZP_SYM[qdtype]
    lo = min(F32(0), F32(x.min()))
    hi = max(F32(0), F32(x.max()))
    scale = (F32(hi) - F32(lo)) / F32(qmax - qmin)
    if not scale >= np.finfo(np.float32).tiny:
        scale = F32(1.0)
    zp = np.clip(np.rint(F32(qmin) - F32(lo) / scale), qmin, qmax)
    return F32(scale), int(zp)


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
def test_minmax_formulas(isa, qdtype, symmetric, rng):
    cases = [
        rng.standard_normal(37) * 3,
        rng.uniform(0.5, 4.0, 20),  # all positive: lo = min(0, ...) = 0
        -rng.uniform(0.5, 4.0, 20),  # all negative: hi = 0
        np.array([-1.0, 3.0]),
        np.array([-127.0, 1.0]),
        np.array([0.1, 0.2, -0.7]),
        np.array([3.4028235e38, -1.0]),  # symmetric: the largest float is still fine
    ]
    for x in cases:
        x = np.asarray(x, np.float32)
        if not symmetric and np.isinf(F32(x.max()) - F32(min(0, x.min()))):
            continue
        qp = lb.calibrate(x, qdtype, symmetric=symmetric)
        scale, zp = minmax_expected(x, qdtype, symmetric)
        assert_same(qp.scale, np.array([scale], np.float32), f"{isa} x={x[:4]}")
        assert qp.zero_point.tolist() == [zp], f"{isa} x={x[:4]}"


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
def test_zero_and_subnormal_scale_become_one(isa, qdtype, symmetric, method):
    qmin, qmax, storage = QINFO[qdtype]
    tiny_ranges = [
        np.zeros(10, np.float32),
        np.array([0.0, -0.0], np.float32),
        np.full(5, 1e-40, np.float32),  # subnormal data
        np.array([1e-38, -1e-39, 0.0], np.float32),  # normal data, subnormal scale
        np.array([1e-45], np.float32),
    ]
    for x in tiny_ranges:
        qp = lb.calibrate(x, qdtype, symmetric=symmetric, method=method)
        assert_same(qp.scale, np.array([1.0], np.float32), f"{isa} x={x}")
        if symmetric:
            assert qp.zero_point.tolist() == [ZP_SYM[qdtype]]
        else:  # lo is (almost) 0, so zp = clamp(rne(qmin - lo / 1.0)) = qmin
            assert qp.zero_point.tolist() == [qmin]
        assert_qparams_same(qp, lbr.calibrate(x, qdtype, symmetric=symmetric, method=method))
    # Per axis: only the degenerate slice gets 1.0.
    x = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5], [1e-40, 0.0, -1e-41]], np.float32)
    qp = lb.calibrate(x, qdtype, symmetric=symmetric, axis=0, method=method)
    assert qp.scale[0] == 1.0 and qp.scale[2] == 1.0 and qp.scale[1] != 1.0
    assert_qparams_same(qp, lbr.calibrate(x, qdtype, symmetric=symmetric, axis=0, method=method))


def test_smallest_normal_scale_is_kept(isa):
    x = np.array([127 * 2.0**-126, -1e-38], np.float32)
    qp = lb.calibrate(x, "int8")
    assert qp.scale.tolist() == [2.0**-126]
    x = np.array([126 * 2.0**-126], np.float32)
    assert lb.calibrate(x, "int8").scale.tolist() == [1.0]


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
def test_scale_overflow_raises(isa, qdtype, method):
    x = np.array([-3e38, 3e38, 1.0], np.float32)  # hi - lo overflows to inf
    x2 = np.array([[1.0, -1.0], [-3e38, 3e38], [2.0, 5.0]], np.float32)
    kw = dict(symmetric=False, method=method, percentile=100.0)
    # (Whether NumPy's percentile may warn on its way there is test_calibrate_emits_no_warnings.)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError):
            lb.calibrate(x, qdtype, **kw)
        with pytest.raises(ValueError):
            lbr.calibrate(x, qdtype, **kw)
        with pytest.raises(ValueError):
            lb.calibrate(x2, qdtype, axis=0, **kw)
    # The symmetric range of the same data is representable.
    qp = lb.calibrate(x, qdtype, symmetric=True)
    assert np.isfinite(qp.scale).all()


@pytest.mark.parametrize("impl", [lb, lbr], ids=["lowbit", "reference"])
@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
@pytest.mark.parametrize("p", [100.0, 99.99, 75.0])
def test_calibrate_never_returns_a_bad_scale(impl, method, p):
    """Finite data near the float32 limits: either ValueError (the range overflows) or valid
    parameters; never a NaN, infinite or subnormal scale."""
    cases = [np.array([-3e38, 3e38], np.float32), np.array([-3e38, 3e38, 1.0], np.float32),
             np.array([3.4e38, -3.4e38] * 3, np.float32), np.array([[-3e38, 3e38]] * 2, np.float32)]
    for x in cases:
        for symmetric in (True, False):
            for qdtype in ("int8", "uint4"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    try:
                        qp = impl.calibrate(x, qdtype, symmetric=symmetric, method=method,
                                            percentile=p)
                    except ValueError:
                        continue
                check_fields(qp, x.shape, qdtype, None, None)


@pytest.mark.parametrize("impl", [lb, lbr], ids=["lowbit", "reference"])
@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
def test_calibrate_emits_no_warnings(impl, method):
    """Finite data near the float32 limits: a result or a ValueError, never a RuntimeWarning
    from intermediate arithmetic (filterwarnings=error makes any warning fail here)."""
    for x in (np.array([-3e38, 3e38, 1.0], np.float32), np.array([3.4e38, -3.4e38], np.float32),
              np.array([3.4e38, 3.3e38, 1e-45], np.float32)):
        for symmetric in (True, False):
            try:
                impl.calibrate(x, "int8", symmetric=symmetric, method=method, percentile=99.0)
            except ValueError:
                pass


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
@pytest.mark.parametrize("where", [0, 17, 64, 99])
def test_calibrate_rejects_nan_and_inf(isa, bad, method, where, rng):
    x = rng.standard_normal(100).astype(np.float32)
    x[where] = bad
    for symmetric in (True, False):
        with pytest.raises(ValueError):
            lb.calibrate(x, "int8", symmetric=symmetric, method=method)
        with pytest.raises(ValueError):
            lb.calibrate(x.reshape(10, 10), "uint4", symmetric=symmetric, method=method,
                         axis=1)
        with pytest.raises(ValueError):
            lb.calibrate(x.reshape(10, 10), "uint8", symmetric=symmetric, method=method,
                         axis=0, group_size=3)


@pytest.mark.parametrize("impl", [lb, lbr], ids=["lowbit", "reference"])
@pytest.mark.parametrize("shape,axis,group_size", [((0,), None, None), ((0, 4), 1, None),
                                                   ((3, 0), 0, None), ((3, 0), 1, None),
                                                   ((3, 0), 1, 4), ((0, 5), 1, 2),
                                                   ((2, 0, 3), 2, None)])
def test_calibrate_empty(isa, impl, shape, axis, group_size):
    """An empty slice has a zero range, so it gets scale 1.0 like an all-zero one (and slots
    that do not exist give empty parameters)."""
    x = np.zeros(shape, np.float32)
    for symmetric in (True, False):
        qp = impl.calibrate(x, "uint8", symmetric=symmetric, axis=axis, group_size=group_size)
        check_fields(qp, shape, "uint8", axis, group_size)
        assert np.all(qp.scale == 1.0)
        assert np.all(qp.zero_point == (128 if symmetric else 0))
        if impl is lb:
            assert_qparams_same(qp, lbr.calibrate(x, "uint8", symmetric=symmetric, axis=axis,
                                                  group_size=group_size))


# ----------------------------------------------------------------------------------------------
# QParams in place of scale


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("axis,group_size", [(None, None), (0, None), (-1, None), (1, 4)])
def test_qparams_stand_in_for_scale(isa, qdtype, axis, group_size, rng):
    x = slice_data(rng, (5, 6, 19), axis, group_size)
    g = rng.standard_normal(x.shape).astype(np.float32)
    for symmetric in (True, False):
        qp = lb.calibrate(x, qdtype, symmetric=symmetric, axis=axis, group_size=group_size)
        kw = dict(dtype=qdtype, axis=qp.axis, group_size=group_size)
        want_q = lbr.quantize(x, qp.scale, qp.zero_point, **kw)
        q = lb.quantize(x, qp)
        assert_same(q, want_q, f"{isa} quantize(x, qp)")
        assert_same(lb.dequantize(q, qp),
                    lbr.dequantize(want_q, qp.scale, qp.zero_point, axis=qp.axis,
                                   group_size=group_size), f"{isa} dequantize(q, qp)")
        assert_same(lb.fake_quantize(x, qp), lbr.fake_quantize(x, qp.scale, qp.zero_point, **kw),
                    f"{isa} fake_quantize(x, qp)")
        assert_same(lb.fake_quantize_grad(x, g, qp),
                    lbr.fake_quantize_grad(x, g, qp.scale, qp.zero_point, **kw),
                    f"{isa} fake_quantize_grad(x, g, qp)")
        assert_same(lbr.quantize(x, qp), want_q, "reference quantize(x, qp)")


# ----------------------------------------------------------------------------------------------
# Property: calibrated parameters are sane and agree with the reference


@pytest.mark.parametrize("isa_name", ISAS)
@given(
    qdtype=st.sampled_from(QDTYPES),
    symmetric=st.booleans(),
    method=st.sampled_from(["minmax", "percentile"]),
    n=st.integers(1, 300),
    log_mag=st.integers(-30, 30),
    shift=st.floats(-3, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_calibrate(isa_name, qdtype, symmetric, method, n, log_mag, shift, seed):
    rng = np.random.default_rng(seed)
    x = ((rng.standard_normal(n) + shift) * 2.0**log_mag).astype(np.float32)
    with forced_isa(isa_name):
        got = lb.calibrate(x, qdtype, symmetric=symmetric, method=method)
        q = lb.quantize(x, got)
    want = lbr.calibrate(x, qdtype, symmetric=symmetric, method=method)
    assert_qparams_same(got, want, isa_name)
    check_fields(got, x.shape, qdtype, None, None)
    assert_same(q, lbr.quantize(x, want.scale, want.zero_point, dtype=qdtype))
