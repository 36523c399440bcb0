"""The reference ("oracle") arithmetic of src/lowbit/_formats.py: fp8 / fp4 element formats
against ml_dtypes on every input class, NF4 and the threshold rule, the MX block formats and
the learned codebooks (Lloyd's k-means).

The module is loaded from its file, not through ``lowbit``: it imports only NumPy, and these
tests must not depend on the compiled extension.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lowbit import _formats as F

FP = ("fp8_e4m3", "fp8_e5m2", "fp4_e2m1")
ML_NAME = {"fp8_e4m3": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2", "fp4_e2m1": "float4_e2m1fn"}
F32 = np.float32
MXFP = {"mxfp8_e4m3": "fp8_e4m3", "mxfp8_e5m2": "fp8_e5m2", "mxfp4_e2m1": "fp4_e2m1"}
EMAX = {"mxfp8_e4m3": 8, "mxfp8_e5m2": 15, "mxfp4_e2m1": 2, "mxint8": 0}


@pytest.fixture
def mld():
    return pytest.importorskip("ml_dtypes")


def bits32(a):
    return np.asarray(a, F32).view(np.uint32)


def big_m(fmt):
    return F32(F.FORMATS[fmt].max_value)


def finite_levels(fmt):
    """The format's finite values, sorted, -0.0 dropped (np.unique keeps one zero)."""
    t = F.value_table(fmt)
    return np.unique(t[np.isfinite(t)])


def ml_codes(y, fmt, mld):
    """``clip(y, -M, M).astype(ml_dtypes type)``: its bytes and its float32 values."""
    c = np.clip(y, -big_m(fmt), big_m(fmt)).astype(getattr(mld, ML_NAME[fmt]))
    return c.view(np.uint8), c.astype(F32)


def random_bit_patterns(rng, n):
    b = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    y = b.view(F32)
    return y[~np.isnan(y)]


def corner_inputs(fmt, rng):
    """Every format value, every midpoint (tie) of consecutive values and the float32s just
    above and below each; float32 and format subnormals; ±M and beyond; ±inf; ±0; random bit
    patterns (1e6) and random values in the format's exponent range."""
    f = F.FORMATS[fmt]
    v = finite_levels(fmt)
    mids64 = (v[:-1].astype(np.float64) + v[1:]) / 2
    mids = mids64.astype(F32)
    assert np.array_equal(mids.astype(np.float64), mids64)      # ties are exact float32s
    base = np.concatenate([v, mids])
    near = np.concatenate([base, np.nextafter(base, F32(np.inf)),
                           np.nextafter(base, F32(-np.inf))])
    m = big_m(fmt)
    beyond = np.array([m, np.nextafter(m, F32(np.inf)), 2 * m, 1e30, np.finfo(F32).max, np.inf],
                      F32)
    sub32 = rng.integers(1, 1 << 23, 2000).astype(np.uint32).view(F32)
    sub32 = np.concatenate([sub32, np.array([1e-45, np.finfo(F32).smallest_normal], F32)])
    lo = 1 - f.bias - f.man_bits - 3                           # below the smallest subnormal
    hi = int(np.log2(f.max_value)) + 2
    in_range = np.ldexp(rng.uniform(1, 2, 200_000), rng.integers(lo, hi, 200_000)).astype(F32)
    y = np.concatenate([near, beyond, sub32, in_range, np.array([0.0], F32)])
    y = np.concatenate([y, -y, random_bit_patterns(rng, 1_000_000)])
    assert not np.isnan(y).any()
    return y


# ---------------------------------------------------------------------------- element formats


@pytest.mark.parametrize("fmt", FP)
def test_encode_matches_ml_dtypes_on_every_input_class(fmt, mld, rng):
    y = corner_inputs(fmt, rng)
    got = F.encode(y, fmt)
    assert got.dtype == np.uint8 and got.shape == y.shape
    want_codes, want_values = ml_codes(y, fmt, mld)
    bad = np.flatnonzero(got != want_codes)
    assert bad.size == 0, (f"{bad.size} codes differ, first y={y[bad[0]]!r} "
                           f"got {got[bad[0]]:#x} ml_dtypes {want_codes[bad[0]]:#x}")
    # The same through values and sign bits (bits of the float32 value, -0.0 included).
    np.testing.assert_array_equal(bits32(F.decode(got, fmt)), bits32(want_values))


@pytest.mark.parametrize("fmt", FP)
def test_ties_round_both_ways_to_even(fmt, mld):
    """The tie inputs really are ties that ml_dtypes rounds both up and down, to even codes."""
    v = finite_levels(fmt)
    mids = ((v[:-1].astype(np.float64) + v[1:]) / 2).astype(F32)
    codes = F.encode(mids, fmt)
    assert np.array_equal(codes, ml_codes(mids, fmt, mld)[0])
    values = F.decode(codes, fmt)
    assert (values == v[:-1]).any() and (values == v[1:]).any()
    assert np.all((values == v[:-1]) | (values == v[1:]))
    assert np.all(codes % 2 == 0)                              # even significand


@pytest.mark.parametrize("fmt, y, code", [
    ("fp8_e4m3", 1.0, 0x38), ("fp8_e4m3", 1.0625, 0x38), ("fp8_e4m3", 1.1875, 0x3A),
    ("fp8_e4m3", 448.0, 0x7E), ("fp8_e4m3", 460.0, 0x7E), ("fp8_e4m3", np.inf, 0x7E),
    ("fp8_e4m3", -np.inf, 0xFE), ("fp8_e4m3", 2.0 ** -9, 0x01), ("fp8_e4m3", 2.0 ** -10, 0x00),
    ("fp8_e4m3", -(2.0 ** -10), 0x80), ("fp8_e4m3", 1.5 * 2.0 ** -9, 0x02),
    ("fp8_e4m3", 7 * 2.0 ** -9, 0x07), ("fp8_e4m3", 7.5 * 2.0 ** -9, 0x08),
    ("fp8_e4m3", 2.0 ** -6, 0x08), ("fp8_e4m3", -0.0, 0x80), ("fp8_e4m3", 1e-45, 0x00),
    ("fp8_e4m3", -1e-45, 0x80),
    ("fp8_e5m2", 1.0, 0x3C), ("fp8_e5m2", 57344.0, 0x7B), ("fp8_e5m2", 60000.0, 0x7B),
    ("fp8_e5m2", np.inf, 0x7B), ("fp8_e5m2", -np.inf, 0xFB), ("fp8_e5m2", 2.0 ** -16, 0x01),
    ("fp8_e5m2", 2.0 ** -14, 0x04), ("fp8_e5m2", 1.125, 0x3C), ("fp8_e5m2", 1.375, 0x3E),
    ("fp4_e2m1", 0.25, 0x0), ("fp4_e2m1", 0.75, 0x2), ("fp4_e2m1", 1.25, 0x2),
    ("fp4_e2m1", 1.75, 0x4), ("fp4_e2m1", 2.5, 0x4), ("fp4_e2m1", 3.5, 0x6),
    ("fp4_e2m1", 5.0, 0x6), ("fp4_e2m1", 5.5, 0x7), ("fp4_e2m1", 1e9, 0x7),
    ("fp4_e2m1", -np.inf, 0xF), ("fp4_e2m1", -0.1, 0x8), ("fp4_e2m1", -0.0, 0x8),
    ("fp4_e2m1", -0.26, 0x9),
])
def test_encode_known_codes(fmt, y, code):
    got = F.encode(np.array([y], F32), fmt)
    assert got.tolist() == [code], f"{fmt}({y!r}) = {got[0]:#x}, expected {code:#x}"


@pytest.mark.parametrize("fmt", FP)
def test_encode_nan_follows_ml_dtypes(fmt, mld):
    """NaN is rejected by the callers; the oracle still documents a result and it matches
    ml_dtypes 0.7 (fp8: signed canonical NaN; fp4: 0x8 for +NaN, 0x0 for -NaN)."""
    b = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF], np.uint32)
    y = b.view(F32)
    got = F.encode(y, fmt)
    want = y.astype(getattr(mld, ML_NAME[fmt])).view(np.uint8)
    np.testing.assert_array_equal(got, want)
    expected = {"fp8_e4m3": [0x7F, 0xFF, 0x7F, 0xFF, 0x7F],
                "fp8_e5m2": [0x7E, 0xFE, 0x7E, 0xFE, 0x7E],
                "fp4_e2m1": [0x8, 0x0, 0x8, 0x0, 0x8]}[fmt]
    assert got.tolist() == expected


def test_encode_keeps_shape_and_casts_floats():
    y = np.array([[0.5, 3.0], [-6.0, 7.0]], np.float64)
    got = F.encode(y, "fp4_e2m1")
    assert got.shape == (2, 2) and got.dtype == np.uint8
    assert got.tolist() == [[1, 5], [15, 7]]
    assert F.encode(np.float32(1.0), "fp8_e4m3").shape == ()
    with pytest.raises(TypeError):
        F.encode(np.array([1, 2]), "fp8_e4m3")
    with pytest.raises(ValueError, match="fmt"):
        F.encode(np.array([1.0], F32), "fp8")


@pytest.mark.parametrize("fmt", FP)
def test_value_table_matches_ml_dtypes(fmt, mld):
    table = F.value_table(fmt)
    n = 256 if fmt.startswith("fp8") else 16
    assert table.dtype == F32 and table.shape == (n,)
    ml = np.arange(n, dtype=np.uint8).view(getattr(mld, ML_NAME[fmt])).astype(F32)
    nan = np.isnan(table)
    np.testing.assert_array_equal(nan, np.isnan(ml))
    np.testing.assert_array_equal(bits32(table[~nan]), bits32(ml[~nan]))
    np.testing.assert_array_equal(np.signbit(table), np.signbit(ml))


def test_value_tables_by_hand():
    pos = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    fp4 = F.value_table("fp4_e2m1")
    assert fp4.tolist() == pos + [-v for v in pos]
    assert np.signbit(fp4[8]) and not np.signbit(fp4[0])

    e4m3 = F.value_table("fp8_e4m3")
    assert np.flatnonzero(np.isnan(e4m3)).tolist() == [0x7F, 0xFF]
    assert not np.isinf(e4m3).any()
    assert np.nanmax(e4m3) == 448 and e4m3[0x7E] == 448 and e4m3[0x01] == 2.0 ** -9
    assert e4m3[0x08] == 2.0 ** -6 and e4m3[0x38] == 1.0

    e5m2 = F.value_table("fp8_e5m2")
    assert np.flatnonzero(np.isinf(e5m2)).tolist() == [0x7C, 0xFC]
    assert np.flatnonzero(np.isnan(e5m2)).tolist() == [0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF]
    assert e5m2[0xFC] == -np.inf and e5m2[0x7B] == 57344 and e5m2[0x01] == 2.0 ** -16

    nf4 = F.value_table("nf4")
    assert nf4.dtype == F32 and nf4.shape == (16,)
    assert nf4[0] == -1 and nf4[7] == 0 and nf4[15] == 1
    assert nf4[8] == F32(0.07958029955625534)
    assert np.all(np.diff(nf4) > 0)


@pytest.mark.parametrize("fmt", (*FP, "nf4"))
def test_every_code_round_trips(fmt):
    """decode then encode gives the code back; fp8 NaN codes come back as the canonical NaN
    of their sign, e5m2's infinities saturate to ±M."""
    n = 256 if fmt.startswith("fp8") else 16
    codes = np.arange(n, dtype=np.uint8)
    values = F.decode(codes, fmt)
    back = F.encode(values, fmt)
    nan = np.isnan(values)
    inf = np.isinf(values)
    keep = ~nan & ~inf
    np.testing.assert_array_equal(back[keep], codes[keep])
    if fmt.startswith("fp8"):
        nan_code = F.FORMATS[fmt].nan_code
        np.testing.assert_array_equal(back[nan], (codes[nan] & 0x80) | nan_code)
        assert np.isnan(F.decode(back[nan], fmt)).all()
    if fmt == "fp8_e5m2":
        assert back[codes == 0x7C].tolist() == [0x7B] and back[codes == 0xFC].tolist() == [0xFB]
    if fmt == "fp4_e2m1":
        assert back[8] == 8                                   # -0.0 keeps its code


def test_decode_refuses_bad_codes():
    with pytest.raises(ValueError):
        F.decode(np.array([16], np.uint8), "fp4_e2m1")
    with pytest.raises(ValueError):
        F.decode(np.array([-1], np.int16), "fp8_e4m3")
    with pytest.raises(TypeError):
        F.decode(np.array([1.0]), "fp8_e4m3")


# ---------------------------------------------------------------------------- threshold rule


def brute_count(y, t):
    return (y[..., None] > t).sum(axis=-1)


def random_sorted_levels(rng, k, duplicates=False):
    lv = np.sort(rng.standard_normal(k).astype(F32))
    if duplicates:                                 # runs of three equal levels
        lv = np.repeat(lv[: -(-k // 3)], 3)[:k]
    return lv


@pytest.mark.parametrize("k", [4, 16, 32, 256])
def test_on_a_threshold_takes_the_lower_code(k, rng):
    levels = F.NF4_LEVELS if k == 16 else random_sorted_levels(rng, k)
    t = F.thresholds(levels)
    i = np.arange(t.size)
    np.testing.assert_array_equal(F.encode_thresholds(t, t), i)
    np.testing.assert_array_equal(F.encode_thresholds(np.nextafter(t, F32(np.inf)), t), i + 1)
    np.testing.assert_array_equal(F.encode_thresholds(np.nextafter(t, F32(-np.inf)), t), i)
    ends = F.encode_thresholds(np.array([-np.inf, np.inf], F32), t)
    assert ends.tolist() == [0, k - 1] and ends.dtype == np.uint8


def test_nf4_encode_is_the_threshold_rule():
    t = F.thresholds(F.NF4_LEVELS)
    assert t.dtype == F32 and t.shape == (15,)
    assert F.encode(t, "nf4").tolist() == list(range(15))
    assert F.encode(np.nextafter(t, F32(2)), "nf4").tolist() == list(range(1, 16))
    assert F.encode(np.array([-np.inf, -5, 0, 5, np.inf], F32), "nf4").tolist() == [0, 0, 7, 15, 15]


def test_nf4_is_nearest_level_away_from_ties(rng):
    y = rng.uniform(-1.5, 1.5, 200_000).astype(F32)
    lv = F.NF4_LEVELS.astype(np.float64)
    d = np.abs(y.astype(np.float64)[:, None] - lv)
    two = np.sort(d, axis=1)[:, :2]
    clear = two[:, 1] - two[:, 0] > 1e-6
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(F.encode(y, "nf4")[clear], np.argmin(d, axis=1)[clear])


@pytest.mark.parametrize("k", [4, 16, 17, 64, 256])
@pytest.mark.parametrize("duplicates", [False, True])
def test_count_and_searchsorted_agree(k, duplicates, rng):
    levels = random_sorted_levels(rng, k, duplicates)
    t = F.thresholds(levels)
    if duplicates:
        assert (np.diff(t) == 0).any()
    y = np.concatenate([t, levels, np.nextafter(t, F32(np.inf)), np.nextafter(t, F32(-np.inf)),
                        rng.standard_normal(5000).astype(F32) * 2,
                        np.array([np.inf, -np.inf, 0.0, -0.0], F32)])
    want = brute_count(y, t)
    np.testing.assert_array_equal(F.encode_thresholds(y, t), want)
    np.testing.assert_array_equal(np.searchsorted(t, y, side="left"), want)


def test_thresholds_round_the_float64_midpoint_once():
    big = np.finfo(F32).max
    assert F.thresholds(np.array([big, big], F32)).tolist() == [big]          # no overflow
    one_up = np.nextafter(F32(1), F32(2))
    assert F.thresholds(np.array([1, one_up], F32)).tolist() == [1.0]         # tie to even
    two_up = np.nextafter(one_up, F32(2))
    assert F.thresholds(np.array([one_up, two_up], F32)).tolist() == [two_up]  # tie to even
    lv = np.array([[0, 1, 1, 4], [-2, -1, 0, 2]], F32)
    assert F.thresholds(lv).tolist() == [[0.5, 1, 2.5], [-1.5, -0.5, 1]]


# ---------------------------------------------------------------------------- MX block formats


def expected_shared_exp(amax, emax):
    return np.array([-127 if a == 0 else min(max(math.frexp(float(a))[1] - 1 - emax, -127), 127)
                     for a in np.ravel(amax)], np.int64).reshape(np.shape(amax))


def test_mx_shared_exp_is_exact_floor_log2():
    k = np.arange(-149, 128)
    p = np.ldexp(F32(1), k).astype(F32)
    amax = np.concatenate([[0.0], p, np.nextafter(p, F32(0)), p * F32(1.5),
                           [np.finfo(F32).max, 1e-45, 3e-45]]).astype(F32)
    amax = amax[np.isfinite(amax)]
    for emax in (8, 15, 2, 0):
        got = F.mx_shared_exp(amax, emax)
        np.testing.assert_array_equal(got, expected_shared_exp(amax, emax))
    assert F.mx_shared_exp(F32(2.0 ** -140), 0) == -127      # subnormal amax clamps
    assert F.mx_shared_exp(F32(2.0 ** -120), 0) == -120
    assert F.mx_shared_exp(F32(np.nextafter(F32(2.0 ** -120), F32(0))), 0) == -121


def mx_model(x, dtype, mld=None):
    """MX quantization of a 1-D float32 ``x`` written independently of the oracle: shared
    exponent through math.frexp, ``y = x / X`` as an exact float64 quotient rounded once to
    float32 (what IEEE float32 division does), fp codes from ml_dtypes when given."""
    n = x.size
    codes = np.empty(n, np.int8 if dtype == "mxint8" else np.uint8)
    exps = []
    for start in range(0, n, 32):
        blk = x[start:start + 32]
        s = int(expected_shared_exp(np.abs(blk).max(), EMAX[dtype]))
        exps.append(s + 127)
        y = (blk.astype(np.float64) / 2.0 ** s).astype(F32)
        if dtype == "mxint8":
            codes[start:start + 32] = np.clip(np.rint(y.astype(np.float64) * 64), -127, 127)
        elif mld is not None:
            codes[start:start + 32] = ml_codes(y, MXFP[dtype], mld)[0]
        else:
            codes[start:start + 32] = F.encode(y, MXFP[dtype])
    return codes, np.array(exps, np.uint8)


def mx_data(rng, n):
    """Blocks of very different scales: normal, huge, tiny, subnormal, zero, mixed."""
    scales = [1.0, 3e4, 1e30, 2.0 ** -120, 1e-40, 0.0, 2.0 ** 100]
    x = rng.standard_normal(n) * np.repeat(rng.choice(scales, -(-n // 32)), 32)[:n]
    x = x.astype(F32)
    x[rng.random(n) < 0.05] = 0.0
    return x


@pytest.mark.parametrize("dtype", list(EMAX))
def test_quantize_mx_matches_an_independent_model(dtype, mld, rng):
    x = mx_data(rng, 32 * 40 + 7)
    codes, exps = F.quantize_mx(x, dtype)
    want_codes, want_exps = mx_model(x, dtype, None if dtype == "mxint8" else mld)
    np.testing.assert_array_equal(exps, want_exps)
    np.testing.assert_array_equal(codes, want_codes)
    assert codes.dtype == want_codes.dtype and exps.dtype == np.uint8
    x_hat = F.dequantize_mx(codes, exps, dtype)
    X = np.repeat(2.0 ** (want_exps.astype(np.float64) - 127), 32)[:x.size]
    if dtype == "mxint8":
        values = codes.astype(np.float64) / 64
    else:
        values = F.decode(codes, MXFP[dtype]).astype(np.float64)
    np.testing.assert_array_equal(bits32(x_hat), bits32((values * X).astype(F32)))


@pytest.mark.parametrize("dtype", list(EMAX))
@pytest.mark.parametrize("k", [-130, -100, -3, 0, 5, 100, 127])
def test_mx_block_with_power_of_two_amax(dtype, k, rng):
    p = F32(2.0 ** k)
    x = (rng.uniform(-1, 1, 32) * p).astype(F32)
    x[7] = -p
    codes, exps = F.quantize_mx(x, dtype)
    emax = EMAX[dtype]
    s = max(k - emax, -127)
    assert exps.tolist() == [s + 127]
    x_hat = F.dequantize_mx(codes, exps, dtype)
    if s == k - emax:                                     # amax lands on 2**emax exactly
        assert x_hat[7] == -p
        if dtype != "mxint8":
            assert F.decode(codes[7:8], MXFP[dtype])[0] == -(2.0 ** emax)
        else:
            assert codes[7] == -64


@pytest.mark.parametrize("dtype", list(EMAX))
def test_mx_block_just_below_a_power_of_two(dtype):
    p = np.nextafter(F32(2.0 ** 10), F32(0))
    codes, exps = F.quantize_mx(np.array([p, 1.0, -p / 2], F32), dtype)
    emax = EMAX[dtype]
    assert exps.tolist() == [9 - emax + 127]
    # y = p / 2**(9 - emax) is just below 2**(emax + 1): past M it saturates to M.
    if dtype == "mxint8":
        assert codes[0] == 127 and codes[2] == -64
    else:
        assert F.decode(codes[:1], MXFP[dtype])[0] == big_m(MXFP[dtype])


@pytest.mark.parametrize("dtype", list(EMAX))
def test_mx_subnormal_and_zero_blocks(dtype):
    x = np.zeros(96, F32)
    x[:32] = 0.0
    x[5] = -0.0
    x[32:64] = np.float32(1e-45) * np.arange(32)          # float32 subnormals, amax 31 * 2**-149
    x[64] = F32(2.0 ** -126)                              # smallest normal
    x[65] = F32(3e-39)                                    # subnormal
    codes, exps = F.quantize_mx(x, dtype)
    e_sub = math.frexp(31 * 2.0 ** -149)[1] - 1            # -145
    assert exps.tolist() == [0, max(e_sub - EMAX[dtype], -127) + 127,
                             max(-126 - EMAX[dtype], -127) + 127]
    assert exps[0] == 0                                    # amax 0: shared_exp -127
    x_hat = F.dequantize_mx(codes, exps, dtype)
    assert (x_hat[:32] == 0).all()
    if dtype != "mxint8":
        assert codes[5] == (0x80 if dtype.startswith("mxfp8") else 0x8)
        assert np.signbit(x_hat[5])
    # exps 0: X = 2**-127, a float32 subnormal, built and applied exactly.
    plus_minus_one = {"mxfp8_e4m3": [0x38, 0xB8], "mxfp8_e5m2": [0x3C, 0xBC],
                      "mxfp4_e2m1": [0x2, 0xA], "mxint8": [64, -64]}[dtype]
    got = F.dequantize_mx(np.array(plus_minus_one, codes.dtype), np.array([0], np.uint8), dtype)
    assert got.tolist() == [2.0 ** -127, -(2.0 ** -127)]


def test_mx_short_last_block_has_its_own_exponent():
    x = np.full(70, 0.01, F32)
    x[3] = 1000.0
    x[40] = -5.0
    codes, exps = F.quantize_mx(x, "mxfp8_e4m3")
    assert codes.shape == (70,) and exps.shape == (3,)
    assert exps.tolist() == [9 - 8 + 127, 2 - 8 + 127, -7 - 8 + 127]   # 0.01 = 1.28 * 2**-7
    x_hat = F.dequantize_mx(codes, exps, "mxfp8_e4m3")
    assert abs(float(x_hat[69]) - 0.01) <= 0.01 * 2 ** -4


@pytest.mark.parametrize("dtype", list(EMAX))
def test_mx_axis(dtype, rng):
    x = mx_data(rng, 70 * 5).reshape(70, 5)
    c0, e0 = F.quantize_mx(x, dtype, axis=0)
    c1, e1 = F.quantize_mx(np.ascontiguousarray(x.T), dtype, axis=-1)
    assert c0.shape == (70, 5) and e0.shape == (3, 5)
    np.testing.assert_array_equal(c0, c1.T)
    np.testing.assert_array_equal(e0, e1.T)
    np.testing.assert_array_equal(F.dequantize_mx(c0, e0, dtype, axis=0),
                                  F.dequantize_mx(c1, e1, dtype).T)
    x3 = mx_data(rng, 4 * 40 * 3).reshape(4, 40, 3)
    c, e = F.quantize_mx(x3, dtype, axis=1)
    assert e.shape == (4, 2, 3)
    for i in range(4):
        for j in range(3):
            ci, ei = F.quantize_mx(x3[i, :, j], dtype)
            np.testing.assert_array_equal(c[i, :, j], ci)
            np.testing.assert_array_equal(e[i, :, j], ei)
    # axis=-1 is the default and equals the last axis.
    c_last, e_last = F.quantize_mx(x3, dtype)
    assert e_last.shape == (4, 40, 1)
    np.testing.assert_array_equal(c_last, F.quantize_mx(x3, dtype, axis=2)[0])


@pytest.mark.parametrize("dtype", list(EMAX))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_mx_nan_and_inf_raise(dtype, bad):
    x = np.ones(40, F32)
    x[35] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        F.quantize_mx(x, dtype)


def test_mxint8_clamps_at_127_and_rounds_half_even():
    k = 6
    x = np.array([-(2 - 2.0 ** -8), 2 - 2.0 ** -8, -1.0, 0.5 / 64, 1.5 / 64, -2.5 / 64,
                  -(2 - 2.0 ** -6)], np.float64) * 2.0 ** k
    codes, exps = F.quantize_mx(x.astype(F32), "mxint8")
    assert codes.dtype == np.int8 and exps.tolist() == [k + 127]
    assert codes.tolist() == [-127, 127, -64, 0, 2, -2, -127]
    assert F.dequantize_mx(codes, exps, "mxint8").tolist() == [
        -127 / 64 * 2 ** k, 127 / 64 * 2 ** k, -(2 ** k), 0.0, 2 / 64 * 2 ** k,
        -2 / 64 * 2 ** k, -127 / 64 * 2 ** k]


@pytest.mark.parametrize("dtype", list(EMAX))
def test_mx_round_trip_error_is_bounded(dtype, rng):
    x = (rng.standard_normal((8, 256)) * np.exp2(rng.integers(-20, 20, (8, 1)))).astype(F32)
    codes, exps = F.quantize_mx(x, dtype)
    x_hat = F.dequantize_mx(codes, exps, dtype)
    X = np.repeat(2.0 ** (exps.astype(np.float64) - 127), 32, axis=-1)
    y = np.abs(x.astype(np.float64)) / X
    if dtype == "mxint8":
        bound = np.maximum(1 / 128, y - 127 / 64)
    else:
        f = F.FORMATS[MXFP[dtype]]
        # half an ulp relative (normal), half the subnormal step, or the clip past M
        bound = np.maximum.reduce([y * 2.0 ** -(f.man_bits + 1),
                                   np.full_like(y, 2.0 ** (-f.bias - f.man_bits)),
                                   y - f.max_value])
    err = np.abs(x_hat.astype(np.float64) - x) / X
    assert np.all(err <= bound)
    assert np.all(y < 2.0 ** (EMAX[dtype] + 1))


def test_mx_packed_fp4_layout(rng):
    x = rng.standard_normal((3, 37)).astype(F32)
    codes, exps = F.quantize_mx(x, "mxfp4_e2m1")
    packed, pexps = F.quantize_mx(x, "mxfp4_e2m1", packed=True)
    np.testing.assert_array_equal(pexps, exps)
    assert packed.shape == (3, 19) and packed.dtype == np.uint8
    padded = np.concatenate([codes, np.zeros((3, 1), np.uint8)], axis=1)
    np.testing.assert_array_equal(packed & 0x0F, padded[:, 0::2])
    np.testing.assert_array_equal(packed >> 4, padded[:, 1::2])
    assert (packed[:, -1] >> 4 == 0).all()
    np.testing.assert_array_equal(F.unpack_nibbles(packed, n=37), codes)
    np.testing.assert_array_equal(
        bits32(F.dequantize_mx(packed, exps, "mxfp4_e2m1", packed=True, n=37)),
        bits32(F.dequantize_mx(codes, exps, "mxfp4_e2m1")))
    # Along axis 0: pairs of rows share a byte.
    c0, e0 = F.quantize_mx(x.T, "mxfp4_e2m1", axis=0)
    p0, _ = F.quantize_mx(x.T, "mxfp4_e2m1", axis=0, packed=True)
    assert p0.shape == (19, 3)
    np.testing.assert_array_equal(p0, packed.T)
    np.testing.assert_array_equal(F.dequantize_mx(p0, e0, "mxfp4_e2m1", axis=0, packed=True, n=37),
                                  F.dequantize_mx(c0, e0, "mxfp4_e2m1", axis=0))
    # Without n the unpacked length is twice the packed length.
    even, eexps = F.quantize_mx(x[:, :36], "mxfp4_e2m1", packed=True)
    assert F.dequantize_mx(even, eexps, "mxfp4_e2m1", packed=True).shape == (3, 36)
    with pytest.raises(ValueError, match="packed"):
        F.quantize_mx(x, "mxfp8_e4m3", packed=True)
    with pytest.raises(ValueError):
        F.dequantize_mx(packed, exps, "mxfp4_e2m1", packed=True, n=35)


def test_pack_nibbles_by_hand():
    assert F.pack_nibbles(np.array([1, 2, 3], np.uint8)).tolist() == [0x21, 0x03]
    assert F.pack_nibbles(np.array([[1, 2], [15, 4]], np.uint8), axis=0).tolist() == [[0xF1, 0x42]]
    assert F.unpack_nibbles(np.array([0x21, 0x03], np.uint8), n=3).tolist() == [1, 2, 3]
    with pytest.raises(ValueError):
        F.pack_nibbles(np.array([16], np.uint8))


def test_dequantize_mx_checks_and_e8m0_nan():
    codes = np.array([0x38, 0x38], np.uint8)
    assert np.isnan(F.dequantize_mx(codes, np.array([255], np.uint8), "mxfp8_e4m3")).all()
    got = F.dequantize_mx(codes, np.array([254], np.uint8), "mxfp8_e4m3")
    assert got.tolist() == [2.0 ** 127] * 2
    with pytest.raises(ValueError, match="exps has shape"):
        F.dequantize_mx(codes, np.array([1, 2], np.uint8), "mxfp8_e4m3")
    with pytest.raises(TypeError):
        F.dequantize_mx(codes, np.array([1], np.uint8), "mxint8")
    with pytest.raises(ValueError, match="dtype"):
        F.quantize_mx(np.ones(3, F32), "mxfp6")


# ---------------------------------------------------------------------------- codebooks


def test_fit_codebook_by_hand():
    x = np.array([0, 1, 2, 10], F32)
    # np.quantile at 1/8, 3/8, 5/8, 7/8 of 4 points: virtual indices 0.375, 1.125, 1.875, 2.625
    assert F.fit_codebook(x, bits=2, iters=0).tolist() == [0.375, 1.125, 1.875, 7.0]
    history = F._fit_codebook_history(x, bits=2)
    assert [h.tolist() for h in history] == [[0.375, 1.125, 1.875, 7.0], [0, 1, 2, 10]]
    levels = F.fit_codebook(x, bits=2)
    assert levels.dtype == F32 and levels.tolist() == [0, 1, 2, 10]
    np.testing.assert_array_equal(F.quantize_codebook(x, levels), [0, 1, 2, 3])


def test_fit_codebook_equal_levels_and_empty_clusters():
    x = np.array([0.0] * 10 + [10.0] * 10, F32)
    levels = F.fit_codebook(x, bits=2)
    assert levels.tolist() == [0, 0, 10, 10]          # levels 1 and 3 have no members
    codes = F.quantize_codebook(x, levels)
    assert set(codes.tolist()) == {0, 2}
    np.testing.assert_array_equal(F.dequantize_codebook(codes, levels), x)


def test_fit_codebook_means_round_once_from_float64():
    """A level is float32(float64 sum / count): summing in float32 first would round twice."""
    big = 2.0 ** 24
    x = np.array([0.0] * 6 + [1000.0] * 6 + [1e6] * 6 + [big] * 3 + [big + 2] * 3, F32)
    levels = F.fit_codebook(x, bits=2)
    # exact mean 2**24 + 1, a tie in float32 -> 2**24; a float32 sum (6 * 2**24 + 6 rounded to
    # 6 * 2**24 + 8) would give 2**24 + 2
    assert levels.tolist() == [0.0, 1000.0, 1e6, big]


def test_fit_codebook_stops_at_iters(rng):
    x = rng.standard_normal(4000).astype(F32) ** 3
    h = F._fit_codebook_history(x, bits=3, iters=50)
    for iters in (0, 1, 2, 5):
        np.testing.assert_array_equal(F.fit_codebook(x, bits=3, iters=iters),
                                      h[min(iters, len(h) - 1)])
    assert len(h) > 3                                 # the data takes several rounds


def test_fit_codebook_recovers_clusters_and_is_sorted(rng):
    centers = np.array([-7, -1, 0.5, 3], F32)
    x = np.repeat(centers, 25)
    rng.shuffle(x)
    assert F.fit_codebook(x, bits=2).tolist() == centers.tolist()
    for bits in range(2, 9):
        lv = F.fit_codebook(rng.standard_normal(3000).astype(F32), bits=bits)
        assert lv.shape == (2 ** bits,) and lv.dtype == F32
        assert np.all(np.diff(lv) >= 0)


def test_codebook_axis(rng):
    x = (rng.standard_normal((3, 50, 4)) * np.array([1, 10, 100])[:, None, None]).astype(F32)
    levels = F.fit_codebook(x, bits=3, axis=0)
    assert levels.shape == (3, 8)
    for i in range(3):
        np.testing.assert_array_equal(levels[i], F.fit_codebook(x[i], bits=3))
    codes = F.quantize_codebook(x, levels, axis=0)
    assert codes.dtype == np.uint8 and codes.shape == x.shape
    for i in range(3):
        np.testing.assert_array_equal(codes[i], F.quantize_codebook(x[i], levels[i]))
    x_hat = F.dequantize_codebook(codes, levels, axis=0)
    for i in range(3):
        np.testing.assert_array_equal(x_hat[i], levels[i][codes[i]])
    lv1 = F.fit_codebook(x, bits=2, axis=1)
    assert lv1.shape == (50, 4)
    np.testing.assert_array_equal(lv1[7], F.fit_codebook(x[:, 7, :], bits=2))
    c1 = F.quantize_codebook(x, lv1, axis=-2)
    np.testing.assert_array_equal(c1[:, 7], F.quantize_codebook(x[:, 7], lv1[7]))


def test_codebook_packed(rng):
    x = rng.standard_normal((4, 9)).astype(F32)
    levels = F.fit_codebook(x, bits=4)
    codes = F.quantize_codebook(x, levels)
    packed = F.quantize_codebook(x, levels, packed=True)
    assert packed.shape == (4, 5)
    np.testing.assert_array_equal(packed, F.pack_nibbles(codes, axis=-1))
    np.testing.assert_array_equal(F.dequantize_codebook(packed, levels, packed=True, n=9),
                                  levels[codes])
    with pytest.raises(ValueError, match="16 levels"):
        F.quantize_codebook(x, F.fit_codebook(x, bits=5), packed=True)


def test_codebook_errors():
    x = np.array([0.0, 1.0, 2.0], F32)
    for bits in (1, 9, 0):
        with pytest.raises(ValueError, match="bits"):
            F.fit_codebook(x, bits=bits)
    with pytest.raises(ValueError, match="levels must be sorted ascending"):
        F.quantize_codebook(x, np.array([0, 2, 1, 3], F32))
    with pytest.raises(ValueError, match="levels must be sorted ascending"):
        F.dequantize_codebook(np.array([0], np.uint8), np.array([0, 2, 1, 3], F32))
    with pytest.raises(ValueError, match="levels has shape"):
        F.quantize_codebook(x, np.arange(5, dtype=F32))
    with pytest.raises(ValueError, match="levels has shape"):
        F.quantize_codebook(x, np.arange(2, dtype=F32))
    with pytest.raises(ValueError, match="codes must lie"):
        F.dequantize_codebook(np.array([4], np.uint8), np.arange(4, dtype=F32))
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[1] = bad
        with pytest.raises(ValueError, match="NaN or infinity"):
            F.fit_codebook(y)
        with pytest.raises(ValueError, match="NaN or infinity"):
            F.quantize_codebook(y, np.arange(4, dtype=F32))
    with pytest.raises(ValueError, match="iters"):
        F.fit_codebook(x, iters=-1)


# ---------------------------------------------------------------------------- properties


def _fp_strategy(fmt):
    m = float(F.FORMATS[fmt].max_value)
    return st.one_of(st.floats(width=32, allow_nan=False),
                     st.floats(-2 * m, 2 * m, width=32),
                     st.floats(-(2.0 ** -7), 2.0 ** -7, width=32))


@pytest.mark.parametrize("fmt", FP)
def test_decode_encode_is_a_nearest_level(fmt):
    levels = [Fraction(float(v)) for v in finite_levels(fmt)]
    m = big_m(fmt)

    @given(hnp.arrays(F32, st.integers(1, 20), elements=_fp_strategy(fmt)))
    def check(y):
        codes = F.encode(y, fmt)
        q = F.decode(codes, fmt)
        for yi, qi, ci in zip(np.clip(y, -m, m), q, codes):
            c = Fraction(float(yi))
            dists = sorted(abs(c - v) for v in levels)
            assert abs(c - Fraction(float(qi))) == dists[0], (yi, qi)
            if dists[0] == dists[1]:                       # an exact tie: the even code
                assert ci % 2 == 0, (yi, ci)
            assert np.signbit(qi) == np.signbit(yi), (yi, qi)

    check()


@given(hnp.arrays(F32, st.integers(1, 30), elements=st.floats(-1.5, 1.5, width=32)))
def test_nf4_is_nearest_up_to_threshold_rounding(y):
    lv = [Fraction(float(v)) for v in F.NF4_LEVELS]
    t = F.thresholds(F.NF4_LEVELS)
    for yi, ci in zip(y, F.encode(y, "nf4")):
        c = Fraction(float(yi))
        d = [abs(c - v) for v in lv]
        best = min(d)
        if d[ci] != best:
            # Only between the exact midpoint and its float32 rounding t may the farther of two
            # neighbours win.
            j = min(ci, d.index(best))
            mid = (lv[j] + lv[j + 1]) / 2
            lo, hi = sorted([mid, Fraction(float(t[j]))])
            assert lo <= c <= hi, (yi, ci)
        elif d.count(best) == 2:                            # exact tie: the lower code
            assert ci == d.index(best)


def _sse(x, levels):
    x64 = x.astype(np.float64)
    return float(np.sum((x64 - levels[F.quantize_codebook(x, levels)].astype(np.float64)) ** 2))


@given(hnp.arrays(F32, st.integers(1, 300),
                  elements=st.one_of(st.floats(-1000, 1000, width=32),
                                     st.sampled_from([0.0, 1.0, -3.5, 2.0 ** -10]))),
       st.integers(2, 4))
def test_kmeans_never_raises_the_squared_error(x, bits):
    history = F._fit_codebook_history(x, bits=bits, iters=20)
    # Lloyd's rounds cannot raise the squared error in exact arithmetic; float32 levels and
    # thresholds may cost at most a few ulps of the data range per element.
    ulp = float(np.spacing(np.max(np.abs(x)).astype(F32))) if x.size else 0.0
    span = float(np.ptp(x.astype(np.float64)))
    slack = x.size * (4 * span * ulp + 4 * ulp * ulp)
    sse = [_sse(x, lv) for lv in history]
    for before, after in zip(sse, sse[1:]):
        assert after <= before + slack, sse
    for lv in history:
        assert np.all(np.diff(lv) >= 0)
    final = history[-1]
    np.testing.assert_array_equal(F.fit_codebook(x, bits=bits), final)
    if len(history) <= 20:   # it stopped because no code changed: each level is its mean
        codes = F.quantize_codebook(x, final)
        for j in np.unique(codes):
            members = x[codes == j].astype(np.float64)
            mean = math.fsum(members) / members.size
            assert abs(float(final[j]) - mean) <= np.spacing(np.abs(final[j])), (j, mean)
