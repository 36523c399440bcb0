"""pack_int4 / unpack_int4 against lowbit.reference and against the nibble order API.md fixes
(element 2i in the low nibble, 2i+1 in the high nibble, odd lengths padded with a zero nibble),
on every ISA, exhaustively where the domain is small."""

import numpy as np
import pytest
from conftest import BIG, ISAS, LENGTHS, assert_same, forced_isa, layouts
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lowbit as lb
import lowbit.reference as lbr

SIGNED = {True: (np.int8, -8, 7), False: (np.uint8, 0, 15)}


def nibbles_1d(q):
    """Pack a 1-D array by hand, straight from API.md's description."""
    q = np.asarray(q).astype(np.int64) & 15
    if q.size % 2:
        q = np.append(q, 0)
    return (q[0::2] | (q[1::2] << 4)).astype(np.uint8)


def rand_nibbles(rng, shape, signed):
    dt, lo, hi = SIGNED[signed]
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(dt)


# ----------------------------------------------------------------------------------------------
# Exhaustive


@pytest.mark.parametrize("signed", [True, False], ids=["int4", "uint4"])
def test_pack_every_pair(isa, signed):
    dt, lo, hi = SIGNED[signed]
    v = np.arange(lo, hi + 1)
    lo_n, hi_n = np.meshgrid(v, v, indexing="ij")  # every (low, high) pair: 256 bytes
    q = np.stack([lo_n.ravel(), hi_n.ravel()], axis=-1).ravel().astype(dt)
    want = ((lo_n.ravel() & 15) | ((hi_n.ravel() & 15) << 4)).astype(np.uint8)
    assert sorted(want.tolist()) == list(range(256))
    assert_same(lb.pack_int4(q), want, f"{isa} pairs")
    assert_same(lbr.pack_int4(q), want, "reference")
    # The same pairs along axis 0 (each byte packs rows 2i and 2i+1 of one column).
    q2 = q.reshape(-1, 2).T.copy()  # shape (2, 256)
    assert_same(lb.pack_int4(q2, axis=0), want[None, :], f"{isa} pairs along axis 0")
    # Every single value as an odd-length tail.
    for x in v:
        assert_same(lb.pack_int4(np.array([x], dt)), np.array([x & 15], np.uint8), f"{isa} {x}")
        assert_same(lb.pack_int4(np.array([x, x, x], dt)),
                    np.array([(x & 15) * 17, x & 15], np.uint8), f"{isa} [{x}]*3")


@pytest.mark.parametrize("signed", [True, False], ids=["int4", "uint4"])
def test_unpack_every_byte(isa, signed):
    dt, lo, hi = SIGNED[signed]
    p = np.arange(256, dtype=np.uint8)
    low, high = (p & 15).astype(np.int64), (p >> 4).astype(np.int64)
    if signed:
        low, high = np.where(low > 7, low - 16, low), np.where(high > 7, high - 16, high)
    want = np.stack([low, high], axis=-1).ravel().astype(dt)
    for pp, ww, name in [(p, want, "ascending"), (p[::-1].copy(), want.reshape(-1, 2)[::-1].ravel(),
                                                     "descending")]:
        got = lb.unpack_int4(pp, signed=signed)
        assert_same(got, ww, f"{isa} {name}")
        assert_same(lbr.unpack_int4(pp, signed=signed), ww, "reference")
        assert_same(lb.unpack_int4(pp, signed=signed, n=511), ww[:511], f"{isa} n=511")
    # Along axis 0: byte i of column j holds rows 2i, 2i+1.
    p2 = p.reshape(16, 16)
    got = lb.unpack_int4(p2, signed=signed, axis=0)
    assert got.shape == (32, 16)
    assert_same(got[0::2], np.take(want, 2 * np.arange(256)).reshape(16, 16), f"{isa} axis0 lo")
    assert_same(got[1::2], np.take(want, 2 * np.arange(256) + 1).reshape(16, 16),
                f"{isa} axis0 hi")
    assert_same(lb.unpack_int4(p2, signed=signed, axis=0, n=31), got[:31], f"{isa} axis0 n=31")


def test_unpack_default_is_signed(isa):
    p = np.array([0xF8, 0x7F], np.uint8)
    assert lb.unpack_int4(p).tolist() == [-8, -1, -1, 7]
    assert lb.unpack_int4(p).dtype == np.int8
    assert lb.unpack_int4(p, signed=False).tolist() == [8, 15, 15, 7]
    assert lb.unpack_int4(p, signed=False).dtype == np.uint8


# ----------------------------------------------------------------------------------------------
# Every length, every axis, layouts


@pytest.mark.parametrize("signed", [True, False], ids=["int4", "uint4"])
def test_pack_unpack_every_length(isa, signed, rng):
    dt = SIGNED[signed][0]
    for n in LENGTHS:
        q = rand_nibbles(rng, (n,), signed)
        want = nibbles_1d(q)
        got = lb.pack_int4(q)
        assert_same(got, want, f"{isa} pack n={n}", )
        assert_same(lbr.pack_int4(q), want, f"reference pack n={n}")
        assert got.shape == ((n + 1) // 2,)
        back = lb.unpack_int4(got, signed=signed, n=n)
        assert_same(back, q, f"{isa} unpack n={n}")
        assert_same(lbr.unpack_int4(got, signed=signed, n=n), q, f"reference unpack n={n}")
        q1 = np.empty(n + 1, dt)[1:]  # misaligned start
        q1[...] = q
        assert_same(lb.pack_int4(q1), want, f"{isa} pack n={n} offset")
        p1 = np.empty(got.size + 1, np.uint8)[1:]
        p1[...] = got
        assert_same(lb.unpack_int4(p1, signed=signed, n=n), q, f"{isa} unpack n={n} offset")
        if n % 2 == 0:
            assert_same(lb.unpack_int4(got, signed=signed), q, f"{isa} unpack n={n} default")


@pytest.mark.parametrize("signed", [True, False], ids=["int4", "uint4"])
def test_pack_unpack_big(isa, signed, rng):
    q = rand_nibbles(rng, (BIG,), signed)
    p = lb.pack_int4(q)
    assert_same(p, lbr.pack_int4(q), f"{isa} pack")
    assert_same(lb.unpack_int4(p, signed=signed, n=BIG), q, f"{isa} unpack")
    q2 = q[: 1024 * 1023].reshape(1023, 1024)
    p2 = lb.pack_int4(q2, axis=0)
    assert_same(p2, lbr.pack_int4(q2, axis=0), f"{isa} pack axis 0")
    assert_same(lb.unpack_int4(p2, signed=signed, axis=0, n=1023), q2, f"{isa} unpack axis 0")


@pytest.mark.parametrize("signed", [True, False], ids=["int4", "uint4"])
@pytest.mark.parametrize("shape", [(5, 5), (4, 7, 9), (3, 2, 1), (1, 33, 2), (6, 65, 3),
                                   (2, 3, 4, 5)])
def test_pack_unpack_every_axis(isa, signed, shape, rng):
    q = rand_nibbles(rng, shape, signed)
    for axis in range(-len(shape), len(shape)):
        n = shape[axis]
        want = np.apply_along_axis(nibbles_1d, axis, q) if q.size else None
        got = lb.pack_int4(q, axis=axis)
        exp_shape = list(shape)
        exp_shape[axis] = (n + 1) // 2
        assert got.shape == tuple(exp_shape) and got.dtype == np.uint8
        if want is not None:
            assert_same(got, want, f"{isa} pack axis={axis}")
        assert_same(lbr.pack_int4(q, axis=axis), got, f"reference pack axis={axis}")
        for name, pv in layouts(got):
            assert_same(lb.unpack_int4(pv, signed=signed, axis=axis, n=n), q,
                        f"{isa} unpack axis={axis} layout {name}")
        for name, qv in layouts(q):
            assert_same(lb.pack_int4(qv, axis=axis), got, f"{isa} pack axis={axis} layout {name}")
        assert_same(lbr.unpack_int4(got, signed=signed, axis=axis, n=n), q,
                    f"reference unpack axis={axis}")
        # Default n: twice the packed length (a zero nibble appears for odd n).
        full = lb.unpack_int4(got, signed=signed, axis=axis)
        assert full.shape[axis] == 2 * got.shape[axis]
        assert_same(np.take(full, np.arange(n), axis=axis), q, f"{isa} default n axis={axis}")
        if n % 2:
            pad = np.take(full, [n], axis=axis)
            assert not pad.any(), "odd length must be padded with a zero nibble"


@pytest.mark.parametrize("signed", [True, False], ids=["int4", "uint4"])
@pytest.mark.parametrize("shape", [(0,), (0, 4), (4, 0), (3, 0, 5)])
def test_pack_unpack_empty(isa, signed, shape):
    q = np.zeros(shape, SIGNED[signed][0])
    for axis in range(len(shape)):
        p = lb.pack_int4(q, axis=axis)
        assert_same(p, lbr.pack_int4(q, axis=axis), f"axis={axis}")
        n = shape[axis]
        assert_same(lb.unpack_int4(p, signed=signed, axis=axis, n=n), q, f"axis={axis}")


# ----------------------------------------------------------------------------------------------
# Out-of-range input


@pytest.mark.parametrize("signed", [True, False], ids=["int4", "uint4"])
@pytest.mark.parametrize("n", [1, 2, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 258])
def test_pack_rejects_out_of_range_anywhere(isa, signed, n, rng):
    """One bad value at any position (vector body, tail, last odd element) is caught."""
    dt, lo, hi = SIGNED[signed]
    bad_values = [8, -9, 127, -128, 16, -1] if signed else [16, 255, 128, 17]
    bad_values = [b for b in bad_values if not lo <= b <= hi]
    base = rand_nibbles(rng, (n,), signed)
    for pos in range(n):
        q = base.copy()
        q[pos] = np.array(bad_values[pos % len(bad_values)]).astype(dt)
        with pytest.raises(ValueError):
            lb.pack_int4(q)
        if n % 8 == 1 or pos in (0, n - 1):  # also along axis 0 for a few
            with pytest.raises(ValueError):
                lb.pack_int4(np.stack([q, base, base], axis=1), axis=0)
    with pytest.raises(ValueError):
        lbr.pack_int4(q)


@pytest.mark.parametrize("signed", [True, False], ids=["int4", "uint4"])
def test_pack_rejects_every_invalid_value(isa, signed):
    dt, lo, hi = SIGNED[signed]
    info = np.iinfo(dt)
    for v in range(info.min, info.max + 1):
        if lo <= v <= hi:
            continue
        q = np.full(37, lo, dt)
        q[v % 37] = v
        with pytest.raises(ValueError):
            lb.pack_int4(q)


@pytest.mark.parametrize("signed", [True, False], ids=["int4", "uint4"])
def test_unpack_n_must_fit(signed):
    p = np.zeros((3, 5), np.uint8)
    for n in (8, 11, 12, 0, -1):
        with pytest.raises(ValueError):
            lb.unpack_int4(p, signed=signed, axis=-1, n=n)
    for n in (4, 7, 3):  # axis 0 holds 3 bytes: n must be 6 or 5
        with pytest.raises(ValueError):
            lb.unpack_int4(p, signed=signed, axis=0, n=n)
    assert lb.unpack_int4(p, signed=signed, axis=-1, n=9).shape == (3, 9)
    assert lb.unpack_int4(p, signed=signed, axis=0, n=5).shape == (5, 5)
    assert lb.unpack_int4(p, signed=signed, axis=0, n=6).shape == (6, 5)


# ----------------------------------------------------------------------------------------------
# Properties


@st.composite
def nibble_arrays(draw):
    signed = draw(st.booleans())
    dt, lo, hi = SIGNED[signed]
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=20))
    q = draw(hnp.arrays(dt, shape, elements=st.integers(lo, hi)))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return q, signed, axis


@pytest.mark.parametrize("isa_name", ISAS)
@given(case=nibble_arrays())
def test_property_unpack_pack_roundtrip(isa_name, case):
    q, signed, axis = case
    with forced_isa(isa_name):
        p = lb.pack_int4(q, axis=axis)
        back = lb.unpack_int4(p, signed=signed, axis=axis, n=q.shape[axis])
    assert_same(back, q, isa_name)
    assert_same(p, lbr.pack_int4(q, axis=axis), f"{isa_name} vs reference")


@pytest.mark.parametrize("isa_name", ISAS)
@given(p=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=20)),
       signed=st.booleans(), data=st.data())
def test_property_pack_unpack_roundtrip(isa_name, p, signed, data):
    axis = data.draw(st.integers(-p.ndim, p.ndim - 1))
    with forced_isa(isa_name):
        q = lb.unpack_int4(p, signed=signed, axis=axis)
        again = lb.pack_int4(q, axis=axis)
    assert_same(again, p, isa_name)
    assert_same(q, lbr.unpack_int4(p, signed=signed, axis=axis), f"{isa_name} vs reference")
