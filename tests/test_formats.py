"""The element formats fp8_e4m3, fp8_e5m2, fp4_e2m1 and nf4 in the compiled API: every ISA path
bit for bit against lowbit.reference (whose arithmetic tests/test_formats_reference.py checks
against ml_dtypes), on adversarial values, every granularity, packed and strided data, and the
errors of bad input."""

from __future__ import annotations

import numpy as np
import pytest

import lowbit as lb
import lowbit.reference as lbr
from lowbit import _formats

FORMATS = ["fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "nf4"]
FOUR_BIT = ["fp4_e2m1", "nf4"]
M = {"fp8_e4m3": 448.0, "fp8_e5m2": 57344.0, "fp4_e2m1": 6.0, "nf4": 1.0}


def _levels(fmt):
    if fmt == "nf4":
        return np.asarray(_formats.NF4_LEVELS, np.float32)
    t = _formats.value_table(fmt)
    return np.unique(t[np.isfinite(t)]).astype(np.float32)


def adversarial(fmt, rng):
    """Every level, every midpoint between neighbours (ties, and nf4's thresholds), the floats
    next to them, subnormals, +-M and beyond, +-inf, +-0, and random values and bit patterns."""
    lv = _levels(fmt)
    mids = ((lv[:-1].astype(np.float64) + lv[1:]) / 2).astype(np.float32)
    pts = np.concatenate([lv, mids, -lv, -mids])
    near = np.concatenate([np.nextafter(pts, np.float32(np.inf)),
                           np.nextafter(pts, np.float32(-np.inf))])
    m = np.float32(M[fmt])
    special = np.array([0.0, -0.0, np.inf, -np.inf, m, -m, m * 1.01, -m * 1.01, m * 1e6,
                        1e-45, -1e-45, 1e-40, 1e-38, -1e-38, 2.0 ** -9, 2.0 ** -10,
                        3 * 2.0 ** -11, 2.0 ** -16, 2.0 ** -17, 3e38, -3e38], np.float32)
    bits = rng.integers(0, 2 ** 32, 4000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    bits = bits[~np.isnan(bits)]
    rand = (rng.standard_normal(3000) * m / 2).astype(np.float32)
    return np.concatenate([pts, near, special, bits, rand]).astype(np.float32)


def same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.dtype == np.float32:
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fmt", FORMATS)
def test_adversarial_values_per_tensor(isa, rng, fmt):
    x = adversarial(fmt, rng)
    for scale in (1.0, 0.37, 3.0e-39, 2.0 ** 20):
        c = lb.quantize(x, scale, dtype=fmt)
        same(c, lbr.quantize(x, scale, dtype=fmt))
        same(lb.dequantize(c, scale, dtype=fmt), lbr.dequantize(c, scale, dtype=fmt))
        same(lb.fake_quantize(x, scale, dtype=fmt), lbr.fake_quantize(x, scale, dtype=fmt))
    if fmt in FOUR_BIT:
        p = lb.quantize(x, 1.0, dtype=fmt, packed=True)
        same(p, lbr.quantize(x, 1.0, dtype=fmt, packed=True))
        same(lb.dequantize(p, 1.0, dtype=fmt, packed=True, n=x.size),
             lbr.dequantize(p, 1.0, dtype=fmt, packed=True, n=x.size))


def test_known_codes(isa):
    x = np.array([1.0, -0.0, 448.0, 1e9, -np.inf, 2.0 ** -9, 2.0 ** -10, 0.53125], np.float32)
    # 0.53125 lies halfway between 0.5 (mantissa 000, even) and 0.5625: ties to even
    same(lb.quantize(x, 1.0, dtype="fp8_e4m3"),
         np.array([0x38, 0x80, 0x7E, 0x7E, 0xFE, 0x01, 0x00, 0x30], np.uint8))
    y = np.array([0.25, 0.26, 2.5, 5.0, -7.0, 0.75], np.float32)
    same(lb.quantize(y, 1.0, dtype="fp4_e2m1"), np.array([0, 1, 4, 6, 15, 2], np.uint8))
    t = float(np.float32((np.float64(_formats.NF4_LEVELS[7]) + _formats.NF4_LEVELS[8]) / 2))
    z = np.array([t, np.nextafter(np.float32(t), np.float32(1)), 1.0, -2.0, np.inf], np.float32)
    same(lb.quantize(z, 1.0, dtype="nf4"), np.array([7, 8, 15, 0, 15], np.uint8))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape,kw", [((7, 33), dict(axis=0)), ((7, 33), dict(axis=1)),
                                      ((5, 70), dict(axis=1, group_size=32)),
                                      ((5, 70), dict(axis=1, group_size=7)),
                                      ((6, 128), dict(axis=1, group_size=32)),
                                      ((64, 4096), dict(axis=1, group_size=64)),
                                      ((6, 4, 9), dict(axis=1, group_size=3)),
                                      ((3, 0), dict()), ((0,), dict()), ((1,), dict())])
def test_granularities_against_reference(isa, rng, fmt, shape, kw):
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    qp = lb.calibrate(x, fmt, **kw)
    same(qp.scale, lbr.calibrate(x, fmt, **kw).scale)
    c = lb.quantize(x, qp)
    same(c, lbr.quantize(x, qp))
    same(lb.dequantize(c, qp), lbr.dequantize(c, qp))
    g = rng.standard_normal(shape).astype(np.float32)
    same(lb.fake_quantize_grad(x * 4, g, qp), lbr.fake_quantize_grad(x * 4, g, qp))
    if fmt in FOUR_BIT and len(shape) and shape[-1]:
        p = lb.quantize(x, qp, packed=True)
        same(p, lbr.quantize(x, qp, packed=True))
        same(lb.dequantize(p, qp, packed=True, n=shape[-1]),
             lbr.dequantize(p, qp, packed=True, n=shape[-1]))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
def test_calibrate_formats(rng, fmt, method):
    x = (rng.standard_normal((16, 64)) * 2).astype(np.float32)
    for kw in (dict(), dict(axis=0), dict(axis=1, group_size=32)):
        qp = lb.calibrate(x, fmt, method=method, **kw)
        same(qp.scale, lbr.calibrate(x, fmt, method=method, **kw).scale)
        assert qp.dtype == fmt
    if method == "minmax":  # scale = absmax / M
        assert lb.calibrate(x, fmt).scale[0] == np.float32(np.abs(x).max()) / np.float32(M[fmt])
    assert lb.calibrate(np.zeros(5, np.float32), fmt).scale[0] == 1.0


def test_strided_and_float64_input(isa, rng):
    x = rng.standard_normal((40, 50))
    for fmt in FORMATS:
        got = lb.quantize(x[::3, 1::2].T, 0.2, dtype=fmt)
        same(got, lbr.quantize(np.ascontiguousarray(x[::3, 1::2].T), 0.2, dtype=fmt))


def test_bad_input_is_refused_and_out_untouched():
    x = np.array([1.0, np.nan, 2.0], np.float32)
    out = np.full(3, 7, np.uint8)
    with pytest.raises(ValueError, match="NaN"):
        lb.quantize(x, 1.0, dtype="fp8_e4m3", out=out)
    assert (out == 7).all()
    good = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="zero_point must be None"):
        lb.quantize(good, 1.0, 0, dtype="nf4")
    with pytest.raises(ValueError, match="symmetric"):
        lb.calibrate(good, "fp4_e2m1", symmetric=False)
    with pytest.raises(ValueError, match="4-bit format"):
        lb.quantize(good, 1.0, dtype="fp8_e5m2", packed=True)
    with pytest.raises(ValueError, match="above 15"):
        lb.dequantize(np.array([16], np.uint8), 1.0, dtype="fp4_e2m1")
    with pytest.raises(TypeError, match="uint8"):
        lb.dequantize(np.array([1], np.int8), 1.0, dtype="fp8_e4m3")
    with pytest.raises(ValueError, match="dtype must be None"):
        lb.dequantize(np.array([1], np.uint8), 1.0, dtype="fp16")
    with pytest.raises(ValueError, match="scale"):
        lb.quantize(good, -1.0, dtype="fp8_e4m3")
    with pytest.raises(ValueError):
        lb.quantize(good, 1.0, dtype="fp9")
    qp = lb.calibrate(good, "nf4")
    with pytest.raises(ValueError, match="disagrees"):
        lb.quantize(good, qp, dtype="fp8_e4m3")


def test_fp8_decode_every_code(isa):
    codes = np.arange(256, dtype=np.uint8)
    for fmt in ("fp8_e4m3", "fp8_e5m2"):
        got = lb.dequantize(codes, 1.0, dtype=fmt)
        same(got, _formats.value_table(fmt) * np.float32(1.0))
        finite = np.isfinite(got)
        back = lb.quantize(got[finite], 1.0, dtype=fmt)
        same(back, codes[finite])


# ------------------------------------------------------------------------------- MX formats

MX = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp4_e2m1", "mxint8"]


def mx_data(rng):
    """Blocks of every kind: amax a power of two, just below one, subnormal, zero, -0.0 only,
    wide dynamic range, a short last block (70 = 2 * 32 + 6)."""
    x = (rng.standard_normal((9, 70)) * np.exp(rng.uniform(-30, 30, (9, 1)))).astype(np.float32)
    x[0, :32] = 0.0
    x[1, :32] = -0.0
    x[2, :32] = np.float32(2.0 ** -140) * rng.integers(-3, 4, 32)
    x[3, 5] = 4.0
    x[3, :5] = x[3, 6:32] = 1.0
    x[4, 3] = np.nextafter(np.float32(4.0), np.float32(0))
    x[5, :32] = np.float32(2.0 ** 127) * rng.uniform(-1.9, 1.9, 32).astype(np.float32)
    x[6, 40] = np.float32(3e38)
    return x


@pytest.mark.parametrize("dtype", MX)
@pytest.mark.parametrize("axis", [-1, 0])
def test_mx_against_reference(isa, rng, dtype, axis):
    x = mx_data(rng)
    c, e = lb.quantize_mx(x, dtype, axis=axis)
    cr, er = lbr.quantize_mx(x, dtype, axis=axis)
    same(c, cr)
    same(e, er)
    same(lb.dequantize_mx(c, e, dtype, axis=axis), lbr.dequantize_mx(c, e, dtype, axis=axis))
    if dtype == "mxfp4_e2m1":
        p, _ = lb.quantize_mx(x, dtype, axis=axis, packed=True)
        same(p, lbr.quantize_mx(x, dtype, axis=axis, packed=True)[0])
        n = x.shape[axis]
        same(lb.dequantize_mx(p, e, dtype, axis=axis, packed=True, n=n),
             lbr.dequantize_mx(p, e, dtype, axis=axis, packed=True, n=n))
    e255 = e.copy()
    e255.flat[0] = 255  # E8M0 NaN
    same(lb.dequantize_mx(c, e255, dtype, axis=axis), lbr.dequantize_mx(c, e255, dtype, axis=axis))


def test_mx_shapes_and_errors(isa, rng):
    for shape, axis in (((0,), -1), ((3, 0), 1), ((1,), 0), ((2, 3, 33), 1), ((2, 3, 33), -1)):
        x = rng.standard_normal(shape).astype(np.float32)
        for dtype in MX:
            c, e = lb.quantize_mx(x, dtype, axis=axis)
            cr, er = lbr.quantize_mx(x, dtype, axis=axis)
            same(c, cr)
            same(e, er)
            same(lb.dequantize_mx(c, e, dtype, axis=axis), lbr.dequantize_mx(c, e, dtype, axis=axis))
    x = np.ones(40, np.float32)
    for bad in (np.inf, -np.inf, np.nan):
        x[33] = bad
        with pytest.raises(ValueError, match="NaN or infinity"):
            lb.quantize_mx(x, "mxfp8_e4m3")
    good = np.ones(40, np.float32)
    with pytest.raises(ValueError, match="dtype"):
        lb.quantize_mx(good, "mxfp6")
    with pytest.raises(ValueError, match="packed"):
        lb.quantize_mx(good, "mxint8", packed=True)
    with pytest.raises(ValueError, match="at least one dimension"):
        lb.quantize_mx(np.float32(1.0), "mxint8")
    c, e = lb.quantize_mx(good, "mxfp8_e4m3")
    with pytest.raises(ValueError, match="exps has shape"):
        lb.dequantize_mx(c, e[:1].repeat(3), "mxfp8_e4m3")
    with pytest.raises(TypeError, match="int8"):
        lb.dequantize_mx(c, e, "mxint8")
    with pytest.raises(TypeError, match="exps"):
        lb.dequantize_mx(c, e.astype(np.int16), "mxfp8_e4m3")


# ------------------------------------------------------------------------------- codebooks

@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
def test_codebooks_against_reference(isa, rng, bits):
    w = (rng.standard_normal((12, 300)) * 2).astype(np.float32)
    for axis in (None, 0, 1):
        lv = lbr.fit_codebook(w, bits, axis=axis)
        same(lb.fit_codebook(w, bits, axis=axis), lv)
        # thresholds and their neighbours, as values
        t = _formats.thresholds(lv).ravel()
        probe = np.concatenate([t, np.nextafter(t, np.float32(np.inf)),
                                np.nextafter(t, np.float32(-np.inf))]).astype(np.float32)
        x = w.copy()
        x.flat[:min(probe.size, x.size)] = probe[:x.size]
        c = lb.quantize_codebook(x, lv, axis=axis)
        same(c, lbr.quantize_codebook(x, lv, axis=axis))
        same(lb.dequantize_codebook(c, lv, axis=axis), lbr.dequantize_codebook(c, lv, axis=axis))
        if bits <= 4:
            p = lb.quantize_codebook(x, lv, axis=axis, packed=True)
            same(p, lbr.quantize_codebook(x, lv, axis=axis, packed=True))
            same(lb.dequantize_codebook(p, lv, axis=axis, packed=True, n=x.shape[-1]),
                 lbr.dequantize_codebook(p, lv, axis=axis, packed=True, n=x.shape[-1]))


def test_codebook_equal_levels_and_errors(isa):
    lv = np.array([-1.0, 0.0, 0.0, 2.0], np.float32)
    x = np.array([-5.0, -0.5, 0.0, 1e-30, 1.0, 1.5, 9.0], np.float32)
    same(lb.quantize_codebook(x, lv), lbr.quantize_codebook(x, lv))
    with pytest.raises(ValueError, match="sorted"):
        lb.quantize_codebook(x, lv[::-1].copy())
    with pytest.raises(ValueError, match="levels has shape"):
        lb.quantize_codebook(x, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="bits"):
        lb.fit_codebook(x, bits=9)
    with pytest.raises(ValueError, match="NaN or infinity"):
        lb.quantize_codebook(np.array([1.0, np.inf], np.float32), lv)
    with pytest.raises(ValueError, match="codes must lie"):
        lb.dequantize_codebook(np.array([4], np.uint8), lv)
    with pytest.raises(ValueError, match="at most 16"):
        lb.quantize_codebook(x, np.arange(32, dtype=np.float32), packed=True)


# ------------------------------------------------------------------------------- QTensor, linear

@pytest.mark.parametrize("dtype,kw", [
    ("nf4", dict(axis=1, group_size=64)), ("fp4_e2m1", dict(axis=1, group_size=32)),
    ("fp8_e4m3", dict(axis=0)), ("fp8_e5m2", dict()), ("mxfp4_e2m1", dict(axis=1)),
    ("mxfp8_e4m3", dict(axis=1)), ("mxint8", dict(axis=1)), ("codebook4", dict(axis=0)),
    ("nf4", dict(axis=1, group_size=7)), ("codebook8", dict(axis=0)),
    ("codebook3", dict(axis=0)), ("fp8_e4m3", dict(axis=1, group_size=20))])
def test_format_qtensor_linear_and_files(isa, rng, dtype, kw, tmp_path):
    w = rng.standard_normal((37, 300)).astype(np.float32)
    x = rng.standard_normal((40, 300)).astype(np.float32)
    b = rng.standard_normal(37).astype(np.float32)
    q = lb.QTensor.quantize(w, dtype, **kw)
    wd = q.dequantize()
    assert q.dtype == dtype and q.shape == w.shape and q.zero_point is None
    eight_bit = dtype in ("fp8_e4m3", "fp8_e5m2", "mxfp8_e4m3", "mxint8", "codebook8")
    assert np.abs(wd - w).mean() < np.abs(w).mean() * (0.1 if eight_bit else 0.3)
    for m in (1, 3, 9, 13, 40):  # gemv four rows at a time, then decoded panels and tiles
        y = lb.linear(x[:m], q, b, act_dtype=None)
        want = x[:m].astype(np.float64) @ wd.T.astype(np.float64) + b
        tol = 1e-5 * (np.linalg.norm(x[:m], axis=1)[:, None] * np.linalg.norm(wd, axis=1)
                      + np.abs(b)) + 301 * 2.0 ** -149
        assert (np.abs(y - want) <= tol).all()
        assert (np.abs(y - lbr.linear(x[:m], q, b, act_dtype=None)) <= tol).all()
    with pytest.raises(ValueError, match="weight-only"):
        lbr.linear(x, q, b)
    with pytest.raises(ValueError, match="weight-only"):
        lb.linear(x, q, b)
    q.save(tmp_path / "w.npz")
    q2 = lb.load(tmp_path / "w.npz")
    assert q2.dtype == dtype and q2.nbytes == q.nbytes and q2.shape == q.shape
    same(q2.dequantize(), wd)


def test_format_linear_refuses_scales_along_the_outputs(rng):
    w = rng.standard_normal((64, 40)).astype(np.float32)
    q = lb.QTensor.quantize(w, "mxfp4_e2m1", axis=0)  # blocks along the output rows
    with pytest.raises(ValueError, match="per output channel"):
        lb.linear(np.ones((2, 40), np.float32), q, act_dtype=None)
    assert np.abs(q.dequantize() - w).mean() < 0.2
