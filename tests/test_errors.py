"""Errors promised by API.md, raised alike by lowbit and lowbit.reference, and never after a
caller's ``out=`` has been touched."""

import re

import numpy as np
import pytest
from conftest import QDTYPES, QINFO, assert_same, sentinel

import lowbit as lb
import lowbit.reference as lbr

AxisError = getattr(np, "exceptions", np).AxisError
IMPLS = [pytest.param(lb, id="lowbit"), pytest.param(lbr, id="reference")]
NAN_BITS = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF, 0xFFFFFFFF]  # quiet, -, signaling
NAN_LENGTHS = [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65, 100, 131, 4099]


def nan_positions(n):
    return sorted({0, n // 2, n - 1, max(n - 8, 0), max(n - 9, 0), min(15, n - 1)})


def x_with_nan(n, pos, nan_bits, rng):
    x = (rng.standard_normal(n) * 10).astype(np.float32)
    x.view(np.uint32)[pos] = nan_bits
    return x


# ----------------------------------------------------------------------------------------------
# NaN in x


@pytest.mark.parametrize("n", NAN_LENGTHS)
def test_nan_in_x_raises_everywhere(isa, n, rng):
    """Every ISA's kernels see a NaN anywhere: first, middle, vector tail, last; any payload."""
    for i, pos in enumerate(nan_positions(n)):
        x = x_with_nan(n, pos, NAN_BITS[i % len(NAN_BITS)], rng)
        g = np.ones(n, np.float32)
        for qdtype in QDTYPES:
            storage = QINFO[qdtype][2]
            out = sentinel((n,), storage)
            with pytest.raises(ValueError, match="NaN"):
                lb.quantize(x, 0.5, dtype=qdtype, out=out)
            assert_same(out, sentinel((n,), storage), f"{isa} out written before the NaN error")
            with pytest.raises(ValueError):
                lb.quantize(x, 0.5, dtype=qdtype)
            if qdtype in ("int4", "uint4"):
                out = sentinel(((n + 1) // 2,), np.uint8)
                with pytest.raises(ValueError):
                    lb.quantize(x, 0.5, dtype=qdtype, packed=True, out=out)
                assert_same(out, sentinel(((n + 1) // 2,), np.uint8), f"{isa} packed out")
            with pytest.raises(ValueError):
                lb.fake_quantize(x, 0.5, dtype=qdtype)
            with pytest.raises(ValueError):
                lb.fake_quantize_grad(x, g, 0.5, dtype=qdtype)
        with pytest.raises(ValueError):
            lb.calibrate(x)


@pytest.mark.parametrize("axis,group_size", [(0, None), (1, None), (-1, None), (1, 3), (0, 2)])
def test_nan_in_x_raises_per_axis_and_group(isa, axis, group_size, rng):
    shape = (5, 37)
    sshape = list(shape)
    a = axis % 2
    sshape[a] = -(-shape[a] // group_size) if group_size else shape[a]
    s = np.full(sshape if group_size else (shape[a],), 0.25, np.float32)
    for flat in (0, 36, 37, 100, 184):
        x = (rng.standard_normal(shape) * 3).astype(np.float32)
        x.flat[flat] = np.nan
        kw = dict(axis=axis, group_size=group_size)
        out = sentinel(shape, np.int8)
        with pytest.raises(ValueError):
            lb.quantize(x, s, out=out, **kw)
        assert_same(out, sentinel(shape, np.int8), f"{isa} out touched")
        with pytest.raises(ValueError):
            lb.quantize(np.asfortranarray(x), s, dtype="int4", packed=True, **kw)
        with pytest.raises(ValueError):
            lb.fake_quantize(x[:, ::-1][:, ::-1], s, **kw)
        with pytest.raises(ValueError):
            lb.fake_quantize_grad(x, x, s, **kw)
        with pytest.raises(ValueError):
            lb.calibrate(x, **kw)


@pytest.mark.parametrize("impl", IMPLS)
def test_nan_in_float16_and_float64_x(impl):
    for dt in (np.float16, np.float64):
        x = np.array([1.0, np.nan, 2.0], dt)
        with pytest.raises(ValueError):
            impl.quantize(x, 1.0)
        with pytest.raises(ValueError):
            impl.fake_quantize(x, 1.0)


def test_nan_elsewhere_is_fine(isa):
    """NaN in grad is data, not an error; it passes through (bits kept) where in range."""
    x = np.array([0.0, 1000.0] * 20, np.float32)
    g = np.full(40, np.nan, np.float32)
    g.view(np.uint32)[:] = 0x7FC01234
    got = lb.fake_quantize_grad(x, g, 1.0)
    assert_same(got, lbr.fake_quantize_grad(x, g, 1.0))
    assert np.all(got.view(np.uint32)[0::2] == 0x7FC01234)
    assert np.all(got.view(np.uint32)[1::2] == 0)


# ----------------------------------------------------------------------------------------------
# Bad scale


BAD_SCALES = [0.0, -0.0, -1.0, -1e-45, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bad", BAD_SCALES, ids=[str(v) for v in BAD_SCALES])
def test_bad_scale_raises(impl, bad):
    x = np.linspace(-3, 3, 40, dtype=np.float32)
    q = np.arange(40, dtype=np.int8)
    p = np.arange(20, dtype=np.uint8)
    for s in (bad, np.float32(bad), np.array([bad], np.float32), np.array(bad, np.float64)):
        out = sentinel((40,), np.int8)
        with pytest.raises(ValueError):
            impl.quantize(x, s, out=out)
        assert_same(out, sentinel((40,), np.int8))
        with pytest.raises(ValueError):
            impl.quantize(x, s, dtype="uint4", packed=True)
        out = sentinel((40,), np.float32)
        with pytest.raises(ValueError):
            impl.dequantize(q, s, out=out)
        assert_same(out, sentinel((40,), np.float32))
        with pytest.raises(ValueError):
            impl.dequantize(p, s, packed="int4")
        with pytest.raises(ValueError):
            impl.fake_quantize(x, s)
        with pytest.raises(ValueError):
            impl.fake_quantize_grad(x, x, s)
    # One bad entry among per-axis / per-group scales.
    s = np.full(40, 0.5, np.float32)
    s[33] = bad
    with pytest.raises(ValueError):
        impl.quantize(x, s, axis=0)
    with pytest.raises(ValueError):
        impl.dequantize(q, s, axis=0)
    with pytest.raises(ValueError):
        impl.fake_quantize(x, s, axis=0)
    with pytest.raises(ValueError):
        impl.fake_quantize_grad(x, x, s, axis=0)
    sg = np.full((2, 3), 0.5, np.float32)
    sg[1, 2] = bad
    with pytest.raises(ValueError):
        impl.quantize(x.reshape(2, 20), sg, axis=1, group_size=7)


def test_subnormal_scale_is_legal(isa):
    x = np.array([1e-45, 1e-44, -1e-40, 1.0], np.float32)
    for s in (1e-45, 1e-40, np.array([1e-41, 2e-41, 3e-41, 4e-41], np.float32)):
        axis = 0 if np.ndim(s) else None
        assert_same(lb.quantize(x, s, axis=axis), lbr.quantize(x, s, axis=axis))
        assert_same(lb.fake_quantize(x, s, axis=axis), lbr.fake_quantize(x, s, axis=axis))
        q = np.array([1, -1, 127, -128], np.int8)
        assert_same(lb.dequantize(q, s, axis=axis), lbr.dequantize(q, s, axis=axis))


# ----------------------------------------------------------------------------------------------
# Zero point out of range


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("qdtype", QDTYPES)
def test_zero_point_out_of_range_quantize(impl, qdtype):
    qmin, qmax, storage = QINFO[qdtype]
    x = np.linspace(-3, 3, 24, dtype=np.float32)
    for z in (qmin - 1, qmax + 1, -1000, 1 << 40):
        for zf in (z, np.int64(z), np.array([z], np.int64)):
            out = sentinel((24,), storage)
            with pytest.raises(ValueError):
                impl.quantize(x, 0.5, zf, dtype=qdtype, out=out)
            assert_same(out, sentinel((24,), storage))
            with pytest.raises(ValueError):
                impl.fake_quantize(x, 0.5, zf, dtype=qdtype)
            with pytest.raises(ValueError):
                impl.fake_quantize_grad(x, x, 0.5, zf, dtype=qdtype)
        zs = np.full(24, qmin, np.int64)
        zs[17] = z
        with pytest.raises(ValueError):
            impl.quantize(x, np.ones(24, np.float32), zs, dtype=qdtype, axis=0)
    # The ends themselves are fine.
    impl.quantize(x, 0.5, qmin, dtype=qdtype)
    impl.quantize(x, 0.5, qmax, dtype=qdtype)


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_point_out_of_range_dequantize(impl):
    cases = [(np.int8, None, (-129, 128)), (np.uint8, None, (-1, 256)),
             (np.uint8, "int4", (-9, 8)), (np.uint8, "uint4", (-1, 16))]
    for storage, packed, bads in cases:
        q = np.zeros(10, storage)
        n = 20 if packed else 10
        for z in bads:
            out = sentinel((n,), np.float32)
            with pytest.raises(ValueError):
                impl.dequantize(q, 0.5, z, packed=packed, out=out)
            assert_same(out, sentinel((n,), np.float32))
            zs = np.zeros(n, np.int32)
            zs[-1] = z
            with pytest.raises(ValueError):
                impl.dequantize(q, np.ones(n, np.float32), zs, axis=0, packed=packed)
        info = np.iinfo(storage)
        if packed is None:  # the whole storage range is allowed
            impl.dequantize(q, 0.5, int(info.min))
            impl.dequantize(q, 0.5, int(info.max))


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_point_must_be_integer(impl):
    x = np.ones(4, np.float32)
    for z in (1.0, np.float32(2), np.array([1.5]), np.array(True)):
        with pytest.raises(TypeError):
            impl.quantize(x, 0.5, z)
        with pytest.raises(TypeError):
            impl.dequantize(np.zeros(4, np.int8), 0.5, z)


# ----------------------------------------------------------------------------------------------
# Shapes that do not fit the granularity


@pytest.mark.parametrize("impl", IMPLS)
def test_scale_shape_mismatch_names_expected_shape(impl):
    x = np.zeros((3, 5, 7), np.float32)
    q = np.zeros((3, 5, 7), np.int8)
    cases = [
        (dict(axis=1), np.ones(4, np.float32), "(5,)"),
        (dict(axis=-1), np.ones((1, 7), np.float32), "(7,)"),
        (dict(axis=0), np.ones(5, np.float32), "(3,)"),
        (dict(axis=2, group_size=3), np.ones((3, 5, 2), np.float32), "(3, 5, 3)"),
        (dict(axis=1, group_size=2), np.ones((3, 5, 7), np.float32), "(3, 3, 7)"),
        (dict(axis=1, group_size=2), np.ones(3, np.float32), "(3, 3, 7)"),
        (dict(axis=0, group_size=10), np.ones((3, 5, 7), np.float32), "(1, 5, 7)"),
    ]
    for kw, s, want in cases:
        for call in (lambda: impl.quantize(x, s, **kw), lambda: impl.dequantize(q, s, **kw),
                     lambda: impl.fake_quantize(x, s, **kw),
                     lambda: impl.fake_quantize_grad(x, x, s, **kw)):
            with pytest.raises(ValueError, match=re.escape(want)):
                call()
    # Per tensor: a float, a 0-d array or shape (1,), nothing else.
    for s in (np.ones(2, np.float32), np.ones((1, 1), np.float32), np.ones(0, np.float32)):
        with pytest.raises(ValueError):
            impl.quantize(x, s)
        with pytest.raises(ValueError):
            impl.dequantize(q, s)


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_point_shape_mismatch(impl):
    x = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError, match=r"\(6,\)"):
        impl.quantize(x, np.ones(6, np.float32), np.zeros(5, np.int8), axis=1)
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        impl.quantize(x, np.ones((4, 2), np.float32), np.zeros((4, 3), np.int8), axis=1,
                      group_size=3)
    with pytest.raises(ValueError):
        impl.quantize(x, 0.5, np.zeros(2, np.int8))
    with pytest.raises(ValueError):
        impl.dequantize(np.zeros((4, 6), np.int8), np.ones(4, np.float32), np.zeros(6, np.int8),
                        axis=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_packed_dequantize_scale_refers_to_logical_shape(impl):
    p = np.zeros((3, 4), np.uint8)  # logical (3, 8), or (3, 7) with n=7
    impl.dequantize(p, np.ones(8, np.float32), axis=1, packed="int4")
    impl.dequantize(p, np.ones((3, 3), np.float32), axis=1, group_size=3, packed="uint4", n=7)
    with pytest.raises(ValueError, match=r"\(8,\)"):
        impl.dequantize(p, np.ones(4, np.float32), axis=1, packed="int4")
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        impl.dequantize(p, np.ones((3, 4), np.float32), axis=1, group_size=3, packed="int4", n=7)
    for n in (6, 9, 0):
        with pytest.raises(ValueError):
            impl.dequantize(p, 1.0, packed="int4", n=n)
    with pytest.raises(ValueError):
        impl.dequantize(np.zeros(4, np.int8), 1.0, n=8)  # n without packed


@pytest.mark.parametrize("impl", IMPLS)
def test_group_size_problems(impl):
    x = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError):
        impl.quantize(x, np.ones((4, 2), np.float32), group_size=3)  # no axis
    for g in (0, -2):
        with pytest.raises(ValueError):
            impl.quantize(x, np.ones((4, 2), np.float32), axis=1, group_size=g)
        with pytest.raises(ValueError):
            impl.calibrate(x, axis=1, group_size=g)
    with pytest.raises(TypeError):
        impl.quantize(x, np.ones((4, 2), np.float32), axis=1, group_size=2.5)


@pytest.mark.parametrize("impl", IMPLS)
def test_grad_shape_mismatch(impl):
    x = np.zeros((4, 6), np.float32)
    for g in (np.zeros((6, 4), np.float32), np.zeros(24, np.float32), np.zeros((4, 1), np.float32)):
        with pytest.raises(ValueError):
            impl.fake_quantize_grad(x, g, 0.5)


# ----------------------------------------------------------------------------------------------
# Axis out of range


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("axis", [3, -4, 100])
def test_bad_axis_raises_axis_error(impl, axis):
    x = np.zeros((2, 3, 4), np.float32)
    q = np.zeros((2, 3, 4), np.int8)
    s = np.ones(3, np.float32)
    calls = [
        lambda: impl.quantize(x, s, axis=axis),
        lambda: impl.quantize(x, s, axis=axis, group_size=2),
        lambda: impl.dequantize(q, s, axis=axis),
        lambda: impl.dequantize(q.view(np.uint8), s, axis=axis, packed="uint4"),
        lambda: impl.fake_quantize(x, s, axis=axis),
        lambda: impl.fake_quantize_grad(x, x, s, axis=axis),
        lambda: impl.calibrate(x, axis=axis),
        lambda: impl.pack_int4(q, axis=axis),
        lambda: impl.unpack_int4(q.view(np.uint8), axis=axis),
    ]
    for call in calls:
        with pytest.raises(AxisError):
            call()


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_dim_x_has_no_axis_and_no_last_axis(impl):
    x = np.float32(1.0)
    with pytest.raises(AxisError):
        impl.quantize(x, np.ones(1, np.float32), axis=0)
    with pytest.raises(AxisError):
        impl.fake_quantize(x, np.ones(1, np.float32), axis=0)
    with pytest.raises(AxisError):
        impl.calibrate(x, axis=0)
    with pytest.raises(ValueError):
        impl.quantize(x, 1.0, dtype="int4", packed=True)  # nothing to pack along


@pytest.mark.parametrize("impl", IMPLS)
def test_non_integer_axis(impl):
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError):
        impl.quantize(x, np.ones(3, np.float32), axis=1.0)
    with pytest.raises(TypeError):
        impl.pack_int4(np.zeros(4, np.int8), axis="0")


# ----------------------------------------------------------------------------------------------
# Wrong dtypes


_INTS = np.arange(8, dtype=np.int32)
WRONG_DTYPE_CALLS = {
    "quantize-int32": lambda m: m.quantize(_INTS, 1.0),
    "quantize-int8": lambda m: m.quantize(_INTS.astype(np.int8), 1.0),
    "quantize-bool": lambda m: m.quantize(_INTS.astype(bool), 1.0),
    "quantize-complex": lambda m: m.quantize(_INTS.astype(np.complex64), 1.0),
    "quantize-str-scale": lambda m: m.quantize(_INTS.astype(np.float32), "0.5"),
    "quantize-np.int16-dtype": lambda m: m.quantize(_INTS.astype(np.float32), 1.0, dtype=np.int16),
    "fake_quantize-int": lambda m: m.fake_quantize(_INTS, 1.0),
    "fake_quantize_grad-int-x": lambda m: m.fake_quantize_grad(_INTS, _INTS.astype(np.float32),
                                                               1.0),
    "fake_quantize_grad-int-grad": lambda m: m.fake_quantize_grad(_INTS.astype(np.float32), _INTS,
                                                                  1.0),
    "calibrate-int": lambda m: m.calibrate(_INTS),
    "dequantize-float32": lambda m: m.dequantize(_INTS.astype(np.float32), 1.0),
    "dequantize-int32": lambda m: m.dequantize(_INTS, 1.0),
    "dequantize-int16": lambda m: m.dequantize(_INTS.astype(np.int16), 1.0),
    "dequantize-uint16": lambda m: m.dequantize(_INTS.astype(np.uint16), 1.0),
    "dequantize-packed-int8": lambda m: m.dequantize(_INTS.astype(np.int8), 1.0, packed="int4"),
    "pack_int4-int16": lambda m: m.pack_int4(_INTS.astype(np.int16)),
    "pack_int4-int32": lambda m: m.pack_int4(_INTS),
    "pack_int4-float32": lambda m: m.pack_int4(_INTS.astype(np.float32)),
    "pack_int4-bool": lambda m: m.pack_int4(_INTS.astype(bool)),
    "unpack_int4-int8": lambda m: m.unpack_int4(_INTS.astype(np.int8)),
    "unpack_int4-uint16": lambda m: m.unpack_int4(_INTS.astype(np.uint16)),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("call", list(WRONG_DTYPE_CALLS.values()), ids=list(WRONG_DTYPE_CALLS))
def test_wrong_input_dtypes_raise_type_error(impl, call):
    with pytest.raises(TypeError):
        call(impl)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["int16", "int2", "float8", "INT8", "", "u4"])
def test_unknown_dtype_name_raises_value_error(impl, name):
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="int8"):  # the message lists the choices
        impl.quantize(x, 1.0, dtype=name)
    with pytest.raises(ValueError):
        impl.fake_quantize(x, 1.0, dtype=name)
    with pytest.raises(ValueError):
        impl.calibrate(x, name)


@pytest.mark.parametrize("impl", IMPLS)
def test_packed_argument_problems(impl):
    x = np.ones(4, np.float32)
    for qdtype in ("int8", "uint8"):
        with pytest.raises(ValueError):
            impl.quantize(x, 1.0, dtype=qdtype, packed=True)
    for packed in ("int8", "uint8", "int2", True):
        with pytest.raises(ValueError):
            impl.dequantize(np.zeros(4, np.uint8), 1.0, packed=packed)


@pytest.mark.parametrize("impl", IMPLS)
def test_calibrate_argument_problems(impl):
    x = np.ones(10, np.float32)
    for method in ("max", "MSE", "", "entropy"):
        with pytest.raises(ValueError):
            impl.calibrate(x, method=method)
    for p in (101.0, 49.0, -1.0, np.nan):
        with pytest.raises(ValueError):
            impl.calibrate(x, method="percentile", percentile=p)


@pytest.mark.parametrize("impl", IMPLS)
def test_qparams_conflicts(impl):
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    qp = impl.calibrate(x, "uint8", axis=1)
    with pytest.raises((TypeError, ValueError)):
        impl.quantize(x, qp, 3)  # a QParams brings its own zero point
    with pytest.raises(ValueError):
        impl.quantize(x, qp, dtype="int4")
    with pytest.raises(ValueError):
        impl.quantize(x, qp, axis=0)


# ----------------------------------------------------------------------------------------------
# out=


def _quantize_out_cases(x):
    n = x.size
    return [
        # (out, expected exception)
        (sentinel((n + 1,), np.int8), ValueError),  # shape
        (sentinel((1, n), np.int8), ValueError),
        (sentinel((n,), np.uint8), TypeError),  # dtype
        (sentinel((n,), np.int16), TypeError),
        (sentinel((n,), np.float32), TypeError),
    ]


@pytest.mark.parametrize("impl", IMPLS)
def test_quantize_out_rejected_and_untouched(impl):
    x = np.linspace(-3, 3, 40, dtype=np.float32)
    for out, exc in _quantize_out_cases(x):
        before = out.copy()
        with pytest.raises(exc):
            impl.quantize(x, 0.1, out=out)
        assert_same(out, before, f"{out.shape} {out.dtype}")
    ro = sentinel((40,), np.int8)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        impl.quantize(x, 0.1, out=ro)
    assert_same(ro, sentinel((40,), np.int8))
    with pytest.raises(TypeError):
        impl.quantize(x, 0.1, out=[0] * 40)
    # uint8 / int4 / uint4 storage
    with pytest.raises(TypeError):
        impl.quantize(x, 0.1, dtype="uint4", out=sentinel((40,), np.int8))
    with pytest.raises(TypeError):
        impl.quantize(x, 0.1, dtype="int4", out=sentinel((40,), np.uint8))
    # Packed: (ceil(n / 2),) uint8 only.
    for out, exc in [(sentinel((40,), np.uint8), ValueError),
                     (sentinel((20,), np.int8), TypeError)]:
        before = out.copy()
        with pytest.raises(exc):
            impl.quantize(x, 0.1, dtype="int4", packed=True, out=out)
        assert_same(out, before)


@pytest.mark.parametrize("impl", IMPLS)
def test_quantize_out_overlapping_input(impl):
    buf = np.linspace(-3, 3, 40, dtype=np.float32)
    x = buf
    out = buf.view(np.int8)[:40]  # the first 10 floats' bytes
    before = buf.copy()
    with pytest.raises(ValueError):
        impl.quantize(x, 0.1, out=out)
    assert_same(buf, before)
    out = buf.view(np.uint8)[::4]  # a strided view into x
    with pytest.raises(ValueError):
        impl.quantize(x, 0.1, dtype="uint8", out=out)
    assert_same(buf, before)


@pytest.mark.parametrize("impl", IMPLS)
def test_dequantize_out_rejected_and_untouched(impl):
    q = np.arange(-20, 20, dtype=np.int8)
    for out, exc in [(sentinel((41,), np.float32), ValueError),
                     (sentinel((40, 1), np.float32), ValueError),
                     (sentinel((40,), np.float64), TypeError),
                     (sentinel((40,), np.float16), TypeError),
                     (sentinel((40,), np.int32), TypeError)]:
        before = out.copy()
        with pytest.raises(exc):
            impl.dequantize(q, 0.5, out=out)
        assert_same(out, before)
    ro = sentinel((40,), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        impl.dequantize(q, 0.5, out=ro)
    # Overlap: out shares memory with q.
    buf = np.zeros(160, np.uint8)
    qv = buf[:40].view(np.int8)
    qv[...] = q
    before = buf.copy()
    with pytest.raises(ValueError):
        impl.dequantize(qv, 0.5, out=buf.view(np.float32))
    assert_same(buf, before)
    # Packed: out has the logical shape.
    p = np.zeros(10, np.uint8)
    out = sentinel((20,), np.float32)
    with pytest.raises(ValueError):
        impl.dequantize(p, 0.5, packed="int4", n=19, out=out)
    assert_same(out, sentinel((20,), np.float32))


# ----------------------------------------------------------------------------------------------
# pack_int4 range


@pytest.mark.parametrize("impl", IMPLS)
def test_pack_int4_out_of_range(impl):
    for q in (np.array([0, 8], np.int8), np.array([-9], np.int8), np.array([127] * 33, np.int8),
              np.array([16], np.uint8), np.array([0] * 64 + [255], np.uint8)):
        with pytest.raises(ValueError):
            impl.pack_int4(q)
        with pytest.raises(ValueError):
            impl.pack_int4(q.reshape(-1, 1), axis=0)
        with pytest.raises(ValueError):
            impl.pack_int4(q.reshape(-1, 1), axis=1)
