"""fake_quantize and fake_quantize_grad against lowbit.reference on every ISA.

fake_quantize must equal dequantize(quantize(x)) bit for bit (so a zero result is +0.0, never
-0.0); fake_quantize_grad passes grad where qmin <= rne(x/scale) + zp <= qmax and gives +0.0
elsewhere.
"""

import numpy as np
import pytest
from conftest import (
    BIG,
    ISAS,
    LENGTHS,
    QDTYPES,
    QINFO,
    assert_same,
    bits,
    expand,
    forced_isa,
    layouts,
    param_shape,
    rand_scale,
    rand_zp,
    rich_x,
)
from hypothesis import given
from hypothesis import strategies as st

import lowbit as lb
import lowbit.reference as lbr


def composed(x, s, z, qdtype, axis=None, group_size=None):
    """dequantize(quantize(x)) through the reference."""
    q = lbr.quantize(x, s, z, dtype=qdtype, axis=axis, group_size=group_size)
    return lbr.dequantize(q, s, z, axis=axis, group_size=group_size)


def ste_by_hand(x, g, s_full, z_full, qdtype):
    """API.md's straight-through estimator, computed in float32 / float64 by hand."""
    qmin, qmax, _ = QINFO[qdtype]
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.rint(x.astype(np.float32) / s_full.astype(np.float32)).astype(np.float64)
    v = r + z_full
    keep = (v >= qmin) & (v <= qmax)
    return np.where(keep, g, np.float32(0.0)).astype(np.float32)


def rich_grad(rng, shape):
    g = rng.standard_normal(shape).astype(np.float32)
    pick = rng.random(shape)
    g[pick < 0.05] = -0.0
    g[(pick >= 0.05) & (pick < 0.07)] = np.inf
    g[(pick >= 0.07) & (pick < 0.08)] = 1e-42
    return g


# ----------------------------------------------------------------------------------------------
# fake_quantize


@pytest.mark.parametrize("qdtype", QDTYPES)
def test_fake_quantize_every_length(isa, qdtype, rng):
    for n in LENGTHS:
        s = rand_scale(rng, ())
        z = int(rand_zp(rng, qdtype, ()))
        x = rich_x(rng, (n,), qdtype, s, z)
        want = lbr.fake_quantize(x, s, z, dtype=qdtype)
        assert_same(want, composed(x, s, z, qdtype), f"reference n={n}")
        got = lb.fake_quantize(x, s, z, dtype=qdtype)
        assert_same(got, want, f"{isa} {qdtype} n={n} scale={s!r} zp={z}", x=x)
        x1 = np.empty(n + 1, np.float32)[1:]
        x1[...] = x
        assert_same(lb.fake_quantize(x1, s, z, dtype=qdtype), want, f"{isa} n={n} offset")
        se = rand_scale(rng, (n,))
        ze = rand_zp(rng, qdtype, (n,))
        xe = rich_x(rng, (n,), qdtype, se, ze)
        assert_same(lb.fake_quantize(xe, se, ze, dtype=qdtype, axis=0),
                    composed(xe, se, ze, qdtype, 0), f"{isa} per-element n={n}", x=xe)


@pytest.mark.parametrize("qdtype", QDTYPES)
def test_fake_quantize_big(isa, qdtype, rng):
    s = np.float32(0.0123)
    x = rich_x(rng, (BIG,), qdtype, s, special_rate=0.001)
    assert_same(lb.fake_quantize(x, s, dtype=qdtype), composed(x, s, 0, qdtype), isa, x=x)


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("scale", [1.0, 0.75, 2.0**-20, 6 * 2.0**-149, 1e-40, 3.0e38],
                         ids=["1", "0.75", "2^-20", "subnormal_tie", "subnormal", "huge"])
def test_fake_quantize_ties_and_specials(isa, qdtype, scale):
    qmin, qmax, _ = QINFO[qdtype]
    s = np.float32(scale)
    for z in sorted({qmin, 0 if qmin < 0 else qmin + 1, 3, qmax}):
        k = np.arange(qmin - z - 3, qmax - z + 3, dtype=np.float64)
        with np.errstate(over="ignore"):  # huge scale: the far ties overflow to +-inf
            ties = ((k + 0.5) * float(s)).astype(np.float32)
        x = np.concatenate([ties, -ties, np.array(
            [0.0, -0.0, np.inf, -np.inf, 3e9, -3e9, 1e-45, -1e-45, 3.4e38, -3.4e38,
             -0.25 * s, -0.5 * s, 0.5 * s], np.float32)])
        for shift in (0, 3):
            xs = np.roll(x, shift)
            got = lb.fake_quantize(xs, s, z, dtype=qdtype)
            assert_same(got, composed(xs, s, z, qdtype), f"{isa} {qdtype} zp={z}", x=xs)


def test_fake_quantize_zero_is_positive(isa):
    """-0.0 and small negatives that round to the zero point come back as +0.0."""
    x = np.array([-0.0, -0.1, -0.5, -1e-45, 0.0] * 13, np.float32)
    for qdtype in QDTYPES:
        qmin, _, _ = QINFO[qdtype]
        z = 0 if qmin < 0 else 3
        got = lb.fake_quantize(x, 1.0, z, dtype=qdtype)
        assert np.all(bits(got) == 0), (qdtype, got)


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("axis,group_size", [(0, None), (1, None), (2, None), (-1, None),
                                             (-3, None), (0, 2), (1, 4), (2, 5), (-1, 32),
                                             (-1, 100)])
def test_fake_quantize_granularities(isa, qdtype, axis, group_size, rng):
    shape = (3, 9, 37)
    pshape = param_shape(shape, axis, group_size)
    s = rand_scale(rng, pshape)
    z = rand_zp(rng, qdtype, pshape, np.int16)
    x = rich_x(rng, shape, qdtype, expand(s, shape, axis, group_size),
               expand(z, shape, axis, group_size))
    want = composed(x, s, z, qdtype, axis, group_size)
    kw = dict(dtype=qdtype, axis=axis, group_size=group_size)
    assert_same(lbr.fake_quantize(x, s, z, **kw), want, "reference")
    for name, xv in layouts(x):
        assert_same(lb.fake_quantize(xv, s, z, **kw), want, f"{isa} {qdtype} layout {name}")


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 2, 2)])
def test_fake_quantize_empty(isa, shape):
    x = np.zeros(shape, np.float32)
    got = lb.fake_quantize(x, 0.5)
    assert got.shape == shape and got.dtype == np.float32
    g = lb.fake_quantize_grad(x, x, 0.5)
    assert g.shape == shape and g.dtype == np.float32


def test_fake_quantize_casts_inputs(isa, rng):
    x32 = rich_x(rng, (77,), "int8", np.float32(0.25), special_rate=0.0)
    x64 = x32.astype(np.float64) + np.where(x32 > 0, 2.0**-40, -(2.0**-40))
    assert_same(lb.fake_quantize(x64, 0.25), composed(x32, np.float32(0.25), 0, "int8"))
    x16 = x32.astype(np.float16)
    assert_same(lb.fake_quantize(x16, 0.1), lbr.fake_quantize(x16.astype(np.float32), 0.1))
    g64 = rng.standard_normal(77)
    assert_same(lb.fake_quantize_grad(x64, g64, 0.25),
                lbr.fake_quantize_grad(x64.astype(np.float32), g64.astype(np.float32), 0.25))


# ----------------------------------------------------------------------------------------------
# fake_quantize_grad


@pytest.mark.parametrize("qdtype", QDTYPES)
def test_fake_quantize_grad_every_length(isa, qdtype, rng):
    for n in LENGTHS:
        s = rand_scale(rng, ())
        z = int(rand_zp(rng, qdtype, ()))
        x = rich_x(rng, (n,), qdtype, s, z)
        g = rich_grad(rng, (n,))
        want = lbr.fake_quantize_grad(x, g, s, z, dtype=qdtype)
        assert_same(want, ste_by_hand(x, g, np.full(n, s), np.full(n, z), qdtype),
                    f"reference n={n}", x=x, g=g)
        got = lb.fake_quantize_grad(x, g, s, z, dtype=qdtype)
        assert_same(got, want, f"{isa} {qdtype} n={n} scale={s!r} zp={z}", x=x, g=g)
        se = rand_scale(rng, (n,))
        ze = rand_zp(rng, qdtype, (n,))
        xe = rich_x(rng, (n,), qdtype, se, ze)
        assert_same(lb.fake_quantize_grad(xe, g, se, ze, dtype=qdtype, axis=0),
                    ste_by_hand(xe, g, se, ze, qdtype), f"{isa} per-element n={n}", x=xe, g=g)


@pytest.mark.parametrize("qdtype", QDTYPES)
def test_fake_quantize_grad_boundaries(isa, qdtype):
    """Ties exactly half a step outside qmin/qmax: in range iff they round inward."""
    qmin, qmax, _ = QINFO[qdtype]
    s = np.float32(0.5)
    for z in sorted({qmin, 0 if qmin < 0 else qmin + 1, 1, qmax}):
        r = np.array([qmin - z - 1, qmin - z - 0.5, qmin - z, qmax - z, qmax - z + 0.5,
                      qmax - z + 1, qmin - z - 0.75, qmax - z + 0.25, qmax - z + 0.75])
        x = (r * float(s)).astype(np.float32)
        x = np.concatenate([x, np.array([np.inf, -np.inf, 3e9, -3e9], np.float32)])
        x = np.tile(x, 5)
        g = np.arange(1, x.size + 1, dtype=np.float32)
        got = lb.fake_quantize_grad(x, g, s, z, dtype=qdtype)
        want = ste_by_hand(x, g, np.full(x.size, s), np.full(x.size, z), qdtype)
        assert_same(got, want, f"{isa} {qdtype} zp={z}", x=x)
        assert_same(lbr.fake_quantize_grad(x, g, s, z, dtype=qdtype), want, "reference")
        # Infinities are always out of range: +0.0 there.
        assert np.all(bits(got[np.isinf(x)]) == 0)


@pytest.mark.parametrize("qdtype", QDTYPES)
@pytest.mark.parametrize("axis,group_size", [(None, None), (0, None), (-1, None), (1, None),
                                             (1, 3), (-1, 8), (0, 2)])
def test_fake_quantize_grad_granularities(isa, qdtype, axis, group_size, rng):
    shape = (4, 6, 35)
    pshape = param_shape(shape, axis, group_size)
    s = rand_scale(rng, pshape)
    z = rand_zp(rng, qdtype, pshape, np.int64)
    s_full, z_full = expand(s, shape, axis, group_size), expand(z, shape, axis, group_size)
    x = rich_x(rng, shape, qdtype, s_full, z_full)
    g = rich_grad(rng, shape)
    kw = dict(dtype=qdtype, axis=axis, group_size=group_size)
    want = lbr.fake_quantize_grad(x, g, s, z, **kw)
    assert_same(want, ste_by_hand(x, g, s_full, z_full, qdtype), "reference")
    for (name, xv), (_, gv) in zip(layouts(x), layouts(g)):
        assert_same(lb.fake_quantize_grad(xv, gv, s, z, **kw), want, f"{isa} layout {name}")
    assert_same(lb.fake_quantize_grad(np.asfortranarray(x), g[::-1].copy()[::-1], s, z, **kw),
                want, f"{isa} mixed layouts")


@pytest.mark.parametrize("qdtype", QDTYPES)
def test_fake_quantize_grad_big(isa, qdtype, rng):
    s = np.float32(0.02)
    x = rich_x(rng, (BIG,), qdtype, s, special_rate=0.001)
    g = rich_grad(rng, (BIG,))
    assert_same(lb.fake_quantize_grad(x, g, s, dtype=qdtype),
                lbr.fake_quantize_grad(x, g, s, dtype=qdtype), isa, x=x, g=g)


# ----------------------------------------------------------------------------------------------
# Property: fake_quantize == dequantize(quantize) within lowbit itself, bit for bit


@pytest.mark.parametrize("isa_name", ISAS)
@given(
    qdtype=st.sampled_from(QDTYPES),
    n=st.integers(0, 200),
    log_scale=st.integers(-149, 120),
    mantissa=st.integers(1, 2**23),
    z_frac=st.floats(0, 1),
    spread=st.floats(0.01, 1e3),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_fake_quantize_is_dequantize_of_quantize(
        isa_name, qdtype, n, log_scale, mantissa, z_frac, spread, seed):
    qmin, qmax, _ = QINFO[qdtype]
    with np.errstate(over="ignore"):
        s = np.float32(mantissa * 2.0**log_scale)
    if not (np.isfinite(s) and s > 0):
        s = np.float32(1.0)
    z = int(round(qmin + z_frac * (qmax - qmin)))
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        x = (rng.standard_normal(n) * spread * (qmax - qmin) * float(s)).astype(np.float32)
    x[rng.random(n) < 0.1] = np.inf
    x = np.where(np.isnan(x), np.float32(0), x).astype(np.float32)
    with forced_isa(isa_name):
        fq = lb.fake_quantize(x, s, z, dtype=qdtype)
        dq = lb.dequantize(lb.quantize(x, s, z, dtype=qdtype), s, z)
        g = lb.fake_quantize_grad(x, x, s, z, dtype=qdtype)
    assert_same(fq, dq, f"{isa_name} scale={s!r} zp={z}", x=x)
    assert_same(fq, composed(x, s, z, qdtype), f"{isa_name} vs reference", x=x)
    assert_same(g, lbr.fake_quantize_grad(x, x, s, z, dtype=qdtype), f"{isa_name} grad", x=x)
