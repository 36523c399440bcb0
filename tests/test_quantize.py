"""quantize / dequantize (unpacked and packed) against lowbit.reference on every ISA.

Results are compared as bits: ``assert_same`` views floats as unsigned integers, so -0.0 and
+0.0 differ, as do NaN payloads.
"""

import numpy as np
import pytest
from conftest import (
    BIG,
    FLOAT_SENTINEL_BITS,
    ISAS,
    LENGTHS,
    Q4DTYPES,
    QDTYPES,
    QINFO,
    assert_same,
    bits,
    check_vs_ref,
    expand,
    forced_isa,
    layouts,
    num_threads,
    param_shape,
    rand_scale,
    rand_zp,
    rich_x,
    sentinel,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lowbit as lb
import lowbit.reference as lbr

ZP_DTYPES = (np.int8, np.uint8, np.int16, np.int32, np.int64)


def scale_forms(s):
    """The spellings of one per-tensor scale that API.md accepts."""
    s = np.float32(s)
    return [float(s), s, np.asarray(s), np.asarray([s]), np.float64(s)]


def zp_forms(z):
    """The spellings of one per-tensor zero point that API.md accepts."""
    z = int(z)
    forms = [z, np.int64(z), np.asarray(z, np.int32), np.asarray([z], np.int16)]
    if z == 0:
        forms.append(None)
    return forms


# ----------------------------------------------------------------------------------------------
# quantize, per tensor


@pytest.mark.parametrize("qdtype", QDTYPES)
def test_quantize_every_length(isa, qdtype, rng):
    storage = QINFO[qdtype][2]
    for n in LENGTHS:
        s = rand_scale(rng, ())
        z = rand_zp(rng, qdtype, ())
        x = rich_x(rng, (n,), qdtype, s, z)
        want = lbr.quantize(x, s, z, dtype=qdtype)
        assert want.dtype == storage and want.shape == (n,)

        sf = scale_forms(s)[n % 5]
        zf = zp_forms(z)[n % len(zp_forms(z))]
        out = sentinel((n,), storage)
        got = lb.quantize(x, sf, zf, dtype=qdtype, out=out)
        assert got is out
        assert_same(out, want, f"{isa} {qdtype} n={n} scale={s!r} zp={z}", x=x)

        # Same data from a misaligned start, without out=.
        x1 = np.empty(n + 1, np.float32)[1:]
        x1[...] = x
        assert_same(lb.quantize(x1, s, z, dtype=qdtype), want, f"{isa} {qdtype} n={n} offset")

        # One scale and zero point per element (per-axis on a 1-D array).
        se = rand_scale(rng, (n,))
        ze = rand_zp(rng, qdtype, (n,), np.int8 if qdtype != "uint8" else np.uint8)
        xe = rich_x(rng, (n,), qdtype, se, ze)
        assert_same(lb.quantize(xe, se, ze, dtype=qdtype, axis=0),
                    lbr.quantize(xe, se, ze, dtype=qdtype, axis=0), f"{isa} per-element n={n}",
                    x=xe)


@pytest.mark.parametrize("qdtype", QDTYPES)
def test_quantize_big(isa, qdtype, rng):
    s = np.float32(0.0375)
    z = rand_zp(rng, qdtype, ())
    x = rich_x(rng, (BIG,), qdtype, s, z, special_rate=0.001)
    want = lbr.quantize(x, s, z, dtype=qdtype)
    out = sentinel((BIG,), QINFO[qdtype][2])
    lb.quantize(x, s, z, dtype=qdtype, out=out)
    assert_same(out, want, f"{isa} {qdtype}", x=x)


@pytest.mark.parametrize("qdtype", QDTYPES)
def test_quantize_big_per_axis_and_group(isa, qdtype, rng):
    """Long runs of per-element scales (1-D per-axis) and groups, split across threads."""
    s = rand_scale(rng, (BIG,))
    z = rand_zp(rng, qdtype, (BIG,), np.int16)
    x = rich_x(rng, (BIG,), qdtype, s, z, special_rate=0.001)
    assert_same(lb.quantize(x, s, z, dtype=qdtype, axis=0),
                lbr.quantize(x, s, z, dtype=qdtype, axis=0), f"{isa} per-axis", x=x)
    g = 1000
    sg = rand_scale(rng, (-(-BIG // g),))
    assert_same(lb.quantize(x, sg, dtype=qdtype, axis=0, group_size=g),
                lbr.quantize(x, sg, dtype=qdtype, axis=0, group_size=g), f"{isa} groups", x=x)


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize(
    "scale",
    [1.0, 0.5, 3.0, 0.75, 2.0**-20, 6 * 2.0**-149],
    ids=["1", "0.5", "3", "0.75", "2^-20", "subnormal"],
)
def test_quantize_ties_every_q(isa, qdtype, scale):
    """x / scale == k + 0.5 exactly for every k reaching each q (and past both ends): ties go
    to the even integer BEFORE the zero point is added."""
    qmin, qmax, storage = QINFO[qdtype]
    s = np.float32(scale)
    zps = sorted({qmin, qmin + 1, max(qmin, -1), max(qmin, 0), 1, 3, qmax - 1, qmax})
    for z in zps:
        k = np.arange(qmin - z - 3, qmax - z + 3, dtype=np.float64)
        x = ((k + 0.5) * float(s)).astype(np.float32)
        assert np.array_equal(x.astype(np.float64) / float(s), k + 0.5)  # exact ties
        want = np.clip(np.rint(k + 0.5) + z, qmin, qmax).astype(storage)
        assert_same(lbr.quantize(x, s, z, dtype=qdtype), want, "reference", x=x)
        for shift in range(8):  # move the ties through vector bodies and tails
            xs = np.roll(x, shift)
            got = lb.quantize(xs, s, z, dtype=qdtype)
            assert_same(got, np.roll(want, shift), f"{isa} {qdtype} zp={z} shift={shift}", x=xs)
            assert_same(lb.quantize(-xs, s, z, dtype=qdtype),
                        lbr.quantize(-xs, s, z, dtype=qdtype), f"{isa} {qdtype} zp={z} negated")


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize(
    "scale",
    [1.0, 0.1, 1e-40, 1e-45, 1.1754942e-38, 3.0e38, 1e30],
    ids=["1", "0.1", "subnormal", "min_subnormal", "min_normal", "huge", "1e30"],
)
def test_quantize_special_values(isa, qdtype, scale):
    qmin, qmax, storage = QINFO[qdtype]
    specials = np.array(
        [np.inf, -np.inf, 3e9, -3e9, 3.4028235e38, -3.4028235e38, 0.0, -0.0, 1e-45, -1e-45,
         2.8e-45, 1e-40, -1e-40, 1.1754942e-38, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, 127.5, -128.5,
         255.5, 1e30, -1e30, 7.5, -8.5, 15.5],
        dtype=np.float32,
    )
    for z in sorted({qmin, 0 if qmin < 0 else qmin, qmax}):
        for reps in (1, 3):  # 28 values (tail only), 84 values (vector body + tail)
            x = np.tile(specials, reps)
            want = lbr.quantize(x, scale, z, dtype=qdtype)
            out = sentinel(x.shape, storage)
            lb.quantize(x, scale, z, dtype=qdtype, out=out)
            assert_same(out, want, f"{isa} {qdtype} scale={scale} zp={z}", x=x)
    # Independent of the reference: infinities saturate, zeros of either sign give zp.
    got = lb.quantize(np.array([np.inf, -np.inf, 0.0, -0.0], np.float32), scale, dtype=qdtype)
    zp0 = 0 if qmin < 0 else qmin
    assert got.tolist() == [qmax, qmin, zp0, zp0]


def test_quantize_subnormal_exact(isa):
    """Hand-checked values for subnormal scales and inputs."""
    tiny = np.float32(1e-45)  # 2**-149, the smallest subnormal
    x = np.array([tiny, 2 * tiny, 3 * tiny, -3 * tiny, 1.0, -1.0, 5 * 2.0**-150], np.float32)
    got = lb.quantize(x, tiny, 0, dtype="int8")
    # 5 * 2**-150 rounds to 2 * 2**-149 or 3 * 2**-149 when stored; compute that exactly.
    last = int(np.float64(x[-1]) / np.float64(tiny))
    assert got.tolist() == [1, 2, 3, -3, 127, -128, last]
    # A subnormal x with a normal scale underflows to 0 (or +-0.0) and quantizes to zp.
    got = lb.quantize(np.array([1e-45, -1e-45, 1e-40], np.float32), 1.0, 5, dtype="uint8")
    assert got.tolist() == [5, 5, 5]


# ----------------------------------------------------------------------------------------------
# quantize, per axis / per group / layouts


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
@pytest.mark.parametrize("shape", [(3, 5, 17), (2, 33, 4), (1, 2, 70)])
def test_quantize_per_axis(isa, qdtype, axis, shape, rng):
    pshape = param_shape(shape, axis)
    s = rand_scale(rng, pshape)
    zp_dtype = ZP_DTYPES[(axis + 3 + len(shape)) % len(ZP_DTYPES)]
    z = rand_zp(rng, qdtype, pshape, zp_dtype)
    x = rich_x(rng, shape, qdtype, expand(s, shape, axis), expand(z, shape, axis))
    want = lbr.quantize(x, s, z, dtype=qdtype, axis=axis)
    out = sentinel(shape, QINFO[qdtype][2])
    assert lb.quantize(x, s, z, dtype=qdtype, axis=axis, out=out) is out
    assert_same(out, want, f"{isa} {qdtype} axis={axis} zp dtype {np.dtype(zp_dtype)}", x=x)
    # Same thing spelled with zero_point=None (zero point 0 where the range allows it).
    if QINFO[qdtype][0] < 0:
        assert_same(lb.quantize(x, s, dtype=qdtype, axis=axis),
                    lbr.quantize(x, s, dtype=qdtype, axis=axis), f"{isa} zp=None")


GROUP_CASES = [(0, 1), (0, 2), (1, 3), (1, 4), (2, 5), (2, 16), (2, 32), (-1, 7), (-1, 64),
               (-1, 70), (-1, 71), (1, 100), (-3, 3), (-2, 2)]


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("axis,group_size", GROUP_CASES)
def test_quantize_per_group(isa, qdtype, axis, group_size, rng):
    shape = (5, 9, 70)
    pshape = param_shape(shape, axis, group_size)
    s = rand_scale(rng, pshape)
    z = rand_zp(rng, qdtype, pshape, ZP_DTYPES[group_size % len(ZP_DTYPES)])
    x = rich_x(rng, shape, qdtype, expand(s, shape, axis, group_size),
               expand(z, shape, axis, group_size))
    want = lbr.quantize(x, s, z, dtype=qdtype, axis=axis, group_size=group_size)
    out = sentinel(shape, QINFO[qdtype][2])
    lb.quantize(x, s, z, dtype=qdtype, axis=axis, group_size=group_size, out=out)
    assert_same(out, want, f"{isa} {qdtype} axis={axis} g={group_size}", x=x)


GRANULARITIES = [(None, None), (0, None), (-1, None), (1, 5), (0, 4)]


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("axis,group_size", GRANULARITIES)
def test_quantize_layouts(isa, qdtype, axis, group_size, rng):
    """Strided, Fortran-order, negative-stride and misaligned views of x; strided out=."""
    shape = (6, 37)
    pshape = param_shape(shape, axis, group_size)
    s = rand_scale(rng, pshape)
    z = rand_zp(rng, qdtype, pshape)
    x = rich_x(rng, shape, qdtype, expand(s, shape, axis, group_size),
               expand(z, shape, axis, group_size))
    want = lbr.quantize(x, s, z, dtype=qdtype, axis=axis, group_size=group_size)
    kw = dict(dtype=qdtype, axis=axis, group_size=group_size)
    for name, xv in layouts(x):
        assert np.array_equal(xv, x)
        assert_same(lb.quantize(xv, s, z, **kw), want, f"{isa} {qdtype} x layout {name}")
        assert_same(lbr.quantize(xv, s, z, **kw), want, f"reference, x layout {name}")
    storage = QINFO[qdtype][2]
    # A strided out= is filled in place and the bytes between its elements stay untouched.
    base = sentinel((6, 74), storage)
    out = base[:, ::2]
    assert lb.quantize(x, s, z, out=out, **kw) is out
    assert_same(out, want, f"{isa} strided out")
    assert_same(base[:, 1::2], sentinel((6, 37), storage), "gaps of a strided out")
    out = np.asfortranarray(sentinel(shape, storage))
    lb.quantize(x, s, z, out=out, **kw)
    assert_same(out, want, f"{isa} Fortran out")
    # Strided per-axis parameters.
    s2 = np.repeat(s, 2, axis=-1)[..., ::2] if s.ndim else s
    assert_same(lb.quantize(x, s2, z, **kw), want, f"{isa} strided scale")


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("shape", [(0,), (0, 5), (5, 0), (3, 0, 2), (2, 3, 0)])
def test_quantize_empty(isa, qdtype, shape):
    storage = QINFO[qdtype][2]
    x = np.zeros(shape, np.float32)
    q = lb.quantize(x, 0.5, dtype=qdtype)
    assert q.shape == shape and q.dtype == storage
    assert_same(q, lbr.quantize(x, 0.5, dtype=qdtype))
    out = sentinel(shape, storage)
    assert lb.quantize(x, 0.5, dtype=qdtype, out=out) is out
    for axis in range(len(shape)):
        s = np.full(param_shape(shape, axis), 0.5, np.float32)
        assert_same(lb.quantize(x, s, dtype=qdtype, axis=axis),
                    lbr.quantize(x, s, dtype=qdtype, axis=axis), f"axis={axis}")
        s = np.full(param_shape(shape, axis, 2), 0.5, np.float32)
        assert_same(lb.quantize(x, s, dtype=qdtype, axis=axis, group_size=2),
                    lbr.quantize(x, s, dtype=qdtype, axis=axis, group_size=2), f"group axis={axis}")


def test_zero_dim_in_zero_dim_out(isa):
    """A 0-d x (or q) is a shape like any other: the result is 0-d too."""
    x = np.float32(2.5)
    for xv in (x, np.array(x), np.array(-7.5, np.float64)):
        q = lb.quantize(xv, 0.5, 3, dtype="int4")
        assert q.shape == () and q.dtype == np.int8
        assert_same(q, lbr.quantize(xv, 0.5, 3, dtype="int4"))
        assert lb.fake_quantize(xv, 0.5).shape == ()
        assert lb.fake_quantize_grad(xv, xv, 0.5).shape == ()
    d = lb.dequantize(np.int8(-3), 0.5, 1)
    assert d.shape == () and d.dtype == np.float32
    assert_same(d, lbr.dequantize(np.int8(-3), 0.5, 1))
    assert_same(d, np.array(-2.0, np.float32))


def test_quantize_lists(isa):
    check_vs_ref("quantize", [0.5, 1.5, -2.5, 3.25], 1.0, dtype="uint4", zero_point=8)
    check_vs_ref("quantize", [[0.5, 1.5], [-2.5, 3.25]], [1.0, 0.5], axis=1)
    check_vs_ref("dequantize", np.array([[1, 2], [3, 4]], np.int8), [1.0, 0.5], axis=0)


@pytest.mark.parametrize("qdtype", QDTYPES)
def test_quantize_casts_inputs_to_float32(isa, qdtype, rng):
    qmin, qmax, storage = QINFO[qdtype]
    s = np.float32(0.25)
    x32 = rich_x(rng, (301,), qdtype, s, special_rate=0.0)
    # float16: the cast is exact, and the values land on the same results as float32 input.
    x16 = x32.astype(np.float16)
    assert_same(lb.quantize(x16, s, dtype=qdtype),
                lbr.quantize(x16.astype(np.float32), s, dtype=qdtype), f"{isa} float16")
    assert_same(lbr.quantize(x16, s, dtype=qdtype),
                lbr.quantize(x16.astype(np.float32), s, dtype=qdtype), "reference float16")
    # float64: values that are .5 ties only after rounding to float32 (computing in float64
    # would round them up instead).
    x64 = x32.astype(np.float64) + np.where(x32 > 0, 2.0**-40, -(2.0**-40))
    want = lbr.quantize(x64.astype(np.float32), s, dtype=qdtype)
    assert_same(lb.quantize(x64, s, dtype=qdtype), want, f"{isa} float64")
    assert_same(lbr.quantize(x64, s, dtype=qdtype), want, "reference float64")
    hand = lb.quantize(np.array([0.5 + 2.0**-30, 2.5 + 2.0**-28], np.float64), 1.0, dtype=qdtype)
    zp0 = 0 if qmin < 0 else qmin
    assert hand.tolist() == [zp0, min(zp0 + 2, qmax)]
    # A float64 scale is cast to float32 before the division.
    s64 = 0.1
    assert_same(lb.quantize(x32, s64, dtype=qdtype),
                lbr.quantize(x32, np.float32(s64), dtype=qdtype), f"{isa} float64 scale")
    s64 = np.full(301, 0.1)
    assert_same(lb.quantize(x32, s64, dtype=qdtype, axis=0),
                lbr.quantize(x32, s64.astype(np.float32), dtype=qdtype, axis=0),
                f"{isa} float64 per-axis scale")


# ----------------------------------------------------------------------------------------------
# quantize(packed=True)


@pytest.mark.parametrize("qdtype", Q4DTYPES)
def test_quantize_packed_every_length(isa, qdtype, rng):
    for n in LENGTHS:
        s = rand_scale(rng, ())
        z = rand_zp(rng, qdtype, ())
        x = rich_x(rng, (n,), qdtype, s, z)
        want = lbr.quantize(x, s, z, dtype=qdtype, packed=True)
        assert want.dtype == np.uint8 and want.shape == ((n + 1) // 2,)
        assert_same(want, lbr.pack_int4(lbr.quantize(x, s, z, dtype=qdtype)), "reference")
        out = sentinel(((n + 1) // 2,), np.uint8)
        assert lb.quantize(x, s, z, dtype=qdtype, packed=True, out=out) is out
        assert_same(out, want, f"{isa} {qdtype} n={n}")
        se = rand_scale(rng, (n,))
        ze = rand_zp(rng, qdtype, (n,))
        xe = rich_x(rng, (n,), qdtype, se, ze)
        assert_same(lb.quantize(xe, se, ze, dtype=qdtype, axis=0, packed=True),
                    lbr.quantize(xe, se, ze, dtype=qdtype, axis=0, packed=True),
                    f"{isa} {qdtype} per-element n={n}")


@pytest.mark.parametrize("qdtype", Q4DTYPES)
@pytest.mark.parametrize("axis,group_size", [(None, None), (0, None), (-1, None), (1, None),
                                             (-1, 3), (-1, 4), (-1, 33), (0, 2), (1, 5)])
@pytest.mark.parametrize("shape", [(4, 3, 9), (2, 5, 64), (3, 2, 1)])
def test_quantize_packed_granularities(isa, qdtype, axis, group_size, shape, rng):
    if axis is not None and group_size is not None and group_size > shape[axis] + 3:
        group_size = shape[axis] + 3
    pshape = param_shape(shape, axis, group_size)
    s = rand_scale(rng, pshape)
    z = rand_zp(rng, qdtype, pshape)
    x = rich_x(rng, shape, qdtype, expand(s, shape, axis, group_size),
               expand(z, shape, axis, group_size))
    kw = dict(dtype=qdtype, axis=axis, group_size=group_size)
    want = lbr.quantize(x, s, z, packed=True, **kw)
    assert_same(want, lbr.pack_int4(lbr.quantize(x, s, z, **kw), axis=-1), "reference")
    out = sentinel(shape[:-1] + ((shape[-1] + 1) // 2,), np.uint8)
    lb.quantize(x, s, z, packed=True, out=out, **kw)
    assert_same(out, want, f"{isa} {qdtype}")
    assert_same(lb.quantize(np.asfortranarray(x), s, z, packed=True, **kw), want, "Fortran x")
    assert_same(lb.quantize(x[..., ::-1].copy()[..., ::-1], s, z, packed=True, **kw), want,
                "negative-stride x")


@pytest.mark.parametrize("qdtype", Q4DTYPES)
def test_quantize_packed_big(isa, qdtype, rng):
    s = np.float32(0.3)
    x = rich_x(rng, (BIG,), qdtype, s, special_rate=0.001)
    want = lbr.quantize(x, s, dtype=qdtype, packed=True)
    assert_same(lb.quantize(x, s, dtype=qdtype, packed=True), want, f"{isa} {qdtype}")


# ----------------------------------------------------------------------------------------------
# dequantize


def rand_q(rng, storage, shape):
    info = np.iinfo(storage)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(storage)


def storage_zp(rng, storage, shape):
    info = np.iinfo(storage)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(np.int32)


@pytest.mark.parametrize("storage", [np.int8, np.uint8])
def test_dequantize_every_length(isa, storage, rng):
    for n in LENGTHS:
        q = rand_q(rng, storage, (n,))
        s = rand_scale(rng, ())
        z = storage_zp(rng, storage, ())
        want = lbr.dequantize(q, s, z)
        assert want.dtype == np.float32
        out = sentinel((n,), np.float32)
        assert lb.dequantize(q, scale_forms(s)[n % 5], zp_forms(z)[n % 4], out=out) is out
        assert_same(out, want, f"{isa} n={n} scale={s!r} zp={z}", q=q)
        q1 = np.empty(n + 1, storage)[1:]
        q1[...] = q
        assert_same(lb.dequantize(q1, s, z), want, f"{isa} n={n} offset")
        se = rand_scale(rng, (n,))
        ze = storage_zp(rng, storage, (n,))
        assert_same(lb.dequantize(q, se, ze, axis=0), lbr.dequantize(q, se, ze, axis=0),
                    f"{isa} per-element n={n}", q=q)


@pytest.mark.parametrize("storage", [np.int8, np.uint8])
@pytest.mark.parametrize(
    "scale",
    [1.0, 0.1, 3.0, 1e-45, 1e-40, 1.1754942e-38, 1e36, 3.0e38],
    ids=["1", "0.1", "3", "min_subnormal", "subnormal", "min_normal", "1e36", "overflow"],
)
def test_dequantize_every_value(isa, storage, scale):
    """All 256 stored values, zero points at both ends and in the middle; products may be
    subnormal or overflow to infinity, exactly as float32 arithmetic says."""
    info = np.iinfo(storage)
    q = np.arange(info.min, info.max + 1).astype(storage)
    q = np.concatenate([q, q[::-1], q[:37]])
    for z in sorted({info.min, info.min + 1, -1 if info.min < 0 else 1, 0, 77, info.max}):
        out = sentinel(q.shape, np.float32)
        lb.dequantize(q, scale, z, out=out)
        want = lbr.dequantize(q, scale, z)
        assert_same(out, want, f"{isa} scale={scale} zp={z}", q=q)
        with np.errstate(over="ignore"):  # the huge scale overflows to +-inf on purpose
            hand = (q.astype(np.int32) - z).astype(np.float32) * np.float32(scale)
        assert_same(want, hand, "reference vs float32(q - zp) * scale")


@pytest.mark.parametrize("storage", [np.int8, np.uint8])
@pytest.mark.parametrize("axis,group_size", [(0, None), (1, None), (2, None), (-1, None),
                                             (-3, None), (0, 2), (1, 3), (2, 5), (-1, 16),
                                             (-1, 100), (1, 1)])
def test_dequantize_granularities(isa, storage, axis, group_size, rng):
    shape = (3, 7, 41)
    pshape = param_shape(shape, axis, group_size)
    q = rand_q(rng, storage, shape)
    s = rand_scale(rng, pshape)
    z = storage_zp(rng, storage, pshape).astype(ZP_DTYPES[-1])
    want = lbr.dequantize(q, s, z, axis=axis, group_size=group_size)
    out = sentinel(shape, np.float32)
    lb.dequantize(q, s, z, axis=axis, group_size=group_size, out=out)
    assert_same(out, want, f"{isa} axis={axis} g={group_size}", q=q)
    for name, qv in layouts(q):
        assert_same(lb.dequantize(qv, s, z, axis=axis, group_size=group_size), want,
                    f"{isa} q layout {name}")
    base = sentinel(shape[:-1] + (2 * shape[-1],), np.float32)
    lb.dequantize(q, s, z, axis=axis, group_size=group_size, out=base[..., 1::2])
    assert_same(base[..., 1::2], want, f"{isa} strided out")
    assert np.all(bits(base[..., ::2]) == FLOAT_SENTINEL_BITS), "strided out: gaps overwritten"


@pytest.mark.parametrize("storage", [np.int8, np.uint8])
def test_dequantize_big(isa, storage, rng):
    q = rand_q(rng, storage, (BIG,))
    z = storage_zp(rng, storage, ())
    out = sentinel((BIG,), np.float32)
    lb.dequantize(q, np.float32(0.0123), z, out=out)
    assert_same(out, lbr.dequantize(q, np.float32(0.0123), z), f"{isa}", q=q)


@pytest.mark.parametrize("storage", [np.int8, np.uint8])
@pytest.mark.parametrize("shape", [(0,), (4, 0), (0, 3, 2)])
def test_dequantize_empty(isa, storage, shape):
    q = np.zeros(shape, storage)
    got = lb.dequantize(q, 2.0)
    assert got.shape == shape and got.dtype == np.float32
    assert_same(got, lbr.dequantize(q, 2.0))
    s = np.ones(param_shape(shape, 0), np.float32)
    assert_same(lb.dequantize(q, s, axis=0), lbr.dequantize(q, s, axis=0))


def test_dequantize_casts_scale(isa, rng):
    q = rand_q(rng, np.int8, (133,))
    assert_same(lb.dequantize(q, 0.1), lbr.dequantize(q, np.float32(0.1)))
    s = np.full(133, 0.1, np.float64)
    assert_same(lb.dequantize(q, s, axis=0), lbr.dequantize(q, s.astype(np.float32), axis=0))
    s16 = np.full((), 0.1, np.float16)
    assert_same(lb.dequantize(q, s16), lbr.dequantize(q, s16.astype(np.float32)))


# ----------------------------------------------------------------------------------------------
# dequantize(packed=...)


@pytest.mark.parametrize("qdtype", Q4DTYPES)
def test_dequantize_packed_every_byte(isa, qdtype):
    qmin, qmax, storage = QINFO[qdtype]
    p = np.arange(256, dtype=np.uint8)
    p = np.concatenate([p, p[::-1], p[:21]])
    for z in sorted({qmin, 0 if qmin < 0 else qmin, 1, qmax}):
        for n in (2 * p.size, 2 * p.size - 1):
            for s in (np.float32(0.5), np.float32(1e-45), np.float32(3.0e37)):
                out = sentinel((n,), np.float32)
                lb.dequantize(p, s, z, packed=qdtype, n=n, out=out)
                want = lbr.dequantize(p, s, z, packed=qdtype, n=n)
                assert_same(out, want, f"{isa} {qdtype} zp={z} n={n} scale={s!r}")
                unpacked = lbr.unpack_int4(p, signed=qdtype == "int4", n=n)
                assert_same(want, lbr.dequantize(unpacked, s, z), "reference vs unpacked")
    # n defaults to twice the packed length.
    assert_same(lb.dequantize(p, 0.5, packed=qdtype),
                lbr.dequantize(lbr.unpack_int4(p, signed=qdtype == "int4"), 0.5))


@pytest.mark.parametrize("qdtype", Q4DTYPES)
def test_dequantize_packed_every_length(isa, qdtype, rng):
    qmin, qmax, storage = QINFO[qdtype]
    for n in LENGTHS:
        p = rng.integers(0, 255, size=(n + 1) // 2, endpoint=True).astype(np.uint8)
        s = rand_scale(rng, ())
        z = rand_zp(rng, qdtype, ())
        want = lbr.dequantize(p, s, z, packed=qdtype, n=n)
        assert want.shape == (n,) and want.dtype == np.float32
        out = sentinel((n,), np.float32)
        assert lb.dequantize(p, s, z, packed=qdtype, n=n, out=out) is out
        assert_same(out, want, f"{isa} {qdtype} n={n}")
        se = rand_scale(rng, (n,))
        ze = rand_zp(rng, qdtype, (n,))
        assert_same(lb.dequantize(p, se, ze, axis=0, packed=qdtype, n=n),
                    lbr.dequantize(p, se, ze, axis=0, packed=qdtype, n=n),
                    f"{isa} {qdtype} per-element n={n}")


@pytest.mark.parametrize("qdtype", Q4DTYPES)
@pytest.mark.parametrize("axis,group_size", [(None, None), (0, None), (1, None), (-1, None),
                                             (-1, 3), (-1, 2), (-1, 8), (2, 33), (0, 2)])
@pytest.mark.parametrize("n", [9, 10, 65])
def test_dequantize_packed_granularities(isa, qdtype, axis, group_size, n, rng):
    shape = (3, 4, n)
    pshape = param_shape(shape, axis, group_size)
    p = rng.integers(0, 255, size=(3, 4, (n + 1) // 2), endpoint=True).astype(np.uint8)
    s = rand_scale(rng, pshape)
    z = rand_zp(rng, qdtype, pshape)
    kw = dict(axis=axis, group_size=group_size)
    want = lbr.dequantize(p, s, z, packed=qdtype, n=n, **kw)
    unpacked = lbr.unpack_int4(p, signed=qdtype == "int4", axis=-1, n=n)
    assert_same(want, lbr.dequantize(unpacked, s, z, **kw), "reference vs unpacked")
    out = sentinel(shape, np.float32)
    lb.dequantize(p, s, z, packed=qdtype, n=n, out=out, **kw)
    assert_same(out, want, f"{isa} {qdtype} axis={axis} g={group_size} n={n}")
    for name, pv in layouts(p):
        assert_same(lb.dequantize(pv, s, z, packed=qdtype, n=n, **kw), want,
                    f"{isa} packed layout {name}")


@pytest.mark.parametrize("qdtype", Q4DTYPES)
def test_dequantize_packed_big(isa, qdtype, rng):
    p = rng.integers(0, 255, size=(BIG + 1) // 2, endpoint=True).astype(np.uint8)
    want = lbr.dequantize(p, np.float32(0.07), 3, packed=qdtype, n=BIG)
    assert_same(lb.dequantize(p, np.float32(0.07), 3, packed=qdtype, n=BIG), want, isa)


# ----------------------------------------------------------------------------------------------
# Properties


@st.composite
def quant_case(draw, q4_only=False):
    """(x, scale, zero_point, qdtype, axis, group_size) with x inside the representable range.

    Hypothesis picks the structure (dtype, shape, granularity, scale magnitude); the bulk values
    come from a NumPy generator seeded by hypothesis, which keeps examples cheap to build.
    """
    qdtype = draw(st.sampled_from(Q4DTYPES if q4_only else QDTYPES))
    qmin, qmax, _ = QINFO[qdtype]
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=24))
    gran = draw(st.sampled_from(["tensor", "axis", "group"]))
    axis = group_size = None
    if gran != "tensor":
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        if gran == "group":
            group_size = draw(st.integers(1, max(1, shape[axis] + 2)))
    pshape = param_shape(shape, axis, group_size)
    exponent = draw(st.integers(-20, 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = (rng.uniform(1.0, 2.0, size=pshape) * 2.0**exponent).astype(np.float32)
    zp = rng.integers(qmin, qmax, size=pshape, endpoint=True).astype(np.int32)
    u = rng.random(shape)
    s_full = expand(scale, shape, axis, group_size).astype(np.float64)
    z_full = expand(zp, shape, axis, group_size)
    x = ((qmin - z_full) + u * (qmax - qmin)) * s_full
    return x.astype(np.float32), scale, zp, qdtype, axis, group_size


@pytest.mark.parametrize("isa_name", ISAS)
@given(case=quant_case())
def test_property_roundtrip_error_at_most_half_step(isa_name, case):
    x, scale, zp, qdtype, axis, group_size = case
    kw = dict(axis=axis, group_size=group_size)
    with forced_isa(isa_name):
        q = lb.quantize(x, scale, zp, dtype=qdtype, **kw)
        xh = lb.dequantize(q, scale, zp, **kw)
    s_full = expand(scale, x.shape, axis, group_size).astype(np.float64)
    err = np.abs(xh.astype(np.float64) - x.astype(np.float64))
    # Half a step, plus the float32 rounding of x / scale and of (q - zp) * scale.
    assert np.all(err <= s_full * (0.5 + 2.0**-14)), (err / s_full).max()
    assert_same(q, lbr.quantize(x, scale, zp, dtype=qdtype, **kw), isa_name)


@pytest.mark.parametrize("isa_name", ISAS)
@given(case=quant_case(q4_only=True), wild=st.booleans())
def test_property_packed_quantize_is_pack_of_quantize(isa_name, case, wild):
    x, scale, zp, qdtype, axis, group_size = case
    if wild:  # push values past the range so clamping shows
        x = x * np.float32(3.0)
    kw = dict(dtype=qdtype, axis=axis, group_size=group_size)
    with forced_isa(isa_name):
        packed = lb.quantize(x, scale, zp, packed=True, **kw)
        q = lb.quantize(x, scale, zp, **kw)
        assert_same(packed, lb.pack_int4(q, axis=-1), isa_name)
        n = x.shape[-1]
        back = lb.dequantize(packed, scale, zp, axis=axis, group_size=group_size,
                             packed=qdtype, n=n)
        assert_same(back, lb.dequantize(q, scale, zp, axis=axis, group_size=group_size),
                    f"{isa_name} packed dequantize")
    assert_same(packed, lbr.quantize(x, scale, zp, packed=True, **kw), "vs reference")


# ----------------------------------------------------------------------------------------------
# Memory corner cases: streaming stores and unaligned buffers

STREAM_N = (1 << 22) + 5  # one thread: chunks of ~1M floats, 4 MiB of output each


def offset_out(n, floats_past_32):
    """A float32 array of n elements starting `floats_past_32` floats after a 32-byte boundary,
    filled with the sentinel."""
    buf = np.empty(n + 16, np.float32)
    base = (-buf.ctypes.data % 32) // 4
    out = buf[base + floats_past_32: base + floats_past_32 + n]
    out.view(np.uint32)[...] = FLOAT_SENTINEL_BITS
    return out


def unaligned(a):
    """A copy of `a` (1-D) whose data pointer is one byte off its dtype's alignment."""
    buf = np.zeros(a.nbytes + 1, np.uint8)[1:]
    out = buf.view(a.dtype)
    out[...] = a
    assert not out.flags.aligned or a.itemsize == 1
    return out


@pytest.fixture(scope="module")
def stream_case():
    rng = np.random.default_rng(7)
    n = STREAM_N
    q = rand_q(rng, np.int8, (n,))
    p = rng.integers(0, 255, size=(n + 1) // 2, endpoint=True).astype(np.uint8)
    s = rand_scale(rng, (n,))
    x = rich_x(rng, (n,), "int8", np.float32(0.05), special_rate=0.001)
    g = rng.standard_normal(n).astype(np.float32)
    want = {
        "deq": lbr.dequantize(q, np.float32(0.05), 3),
        "deq_axis": lbr.dequantize(q, s, axis=0),
        "deq_packed": lbr.dequantize(p, np.float32(0.05), -2, packed="int4", n=n),
        "fake": lbr.fake_quantize(x, np.float32(0.05), 1),
        "grad": lbr.fake_quantize_grad(x, g, np.float32(0.05), 1),
    }
    return q, p, s, x, g, want


@pytest.mark.parametrize("isa_name", ISAS)
def test_streaming_stores(isa_name, stream_case):
    """Outputs of 4 MiB per thread chunk take the non-temporal store path on SIMD ISAs; the
    head before the first 32-byte boundary is written normally. Try every head length class."""
    q, p, s, x, g, want = stream_case
    n = STREAM_N
    with forced_isa(isa_name), num_threads(1):
        for off in (0, 1, 2, 4, 7):
            out = offset_out(n, off)
            lb.dequantize(q, np.float32(0.05), 3, out=out)
            assert_same(out, want["deq"], f"{isa_name} dequantize, out at +{off} floats")
            out = offset_out(n, off)
            lb.dequantize(q, s, axis=0, out=out)
            assert_same(out, want["deq_axis"], f"{isa_name} per-axis, out at +{off} floats")
            out = offset_out(n, off)
            lb.dequantize(p, np.float32(0.05), -2, packed="int4", n=n, out=out)
            assert_same(out, want["deq_packed"], f"{isa_name} packed, out at +{off} floats")
        assert_same(lb.fake_quantize(x, np.float32(0.05), 1), want["fake"], f"{isa_name} fake")
        assert_same(lb.fake_quantize_grad(x, g, np.float32(0.05), 1), want["grad"],
                    f"{isa_name} grad")
        out = unaligned(np.zeros(n, np.float32))
        lb.dequantize(q, np.float32(0.05), 3, out=out)
        assert_same(out, want["deq"], f"{isa_name} dequantize into an unaligned out")


def test_unaligned_buffers(isa, rng):
    for n in (1, 7, 8, 9, 33, 100_003):
        x = rich_x(rng, (n,), "uint8", np.float32(0.1), 7)
        xu = unaligned(x)
        assert_same(lb.quantize(xu, 0.1, 7, dtype="uint8"), lbr.quantize(x, 0.1, 7, dtype="uint8"),
                    f"{isa} unaligned x n={n}")
        assert_same(lb.fake_quantize(xu, 0.1, 7, dtype="uint8"),
                    lbr.fake_quantize(x, 0.1, 7, dtype="uint8"), f"{isa} unaligned fake n={n}")
        q = rand_q(rng, np.uint8, (n,))
        out = unaligned(np.zeros(n, np.float32))
        lb.dequantize(q, 0.1, 7, out=out)
        assert_same(out, lbr.dequantize(q, 0.1, 7), f"{isa} unaligned out n={n}")
        su = unaligned(np.full(n, 0.1, np.float32))
        assert_same(lb.dequantize(q, su, axis=0), lbr.dequantize(q, su, axis=0),
                    f"{isa} unaligned per-axis scale n={n}")
