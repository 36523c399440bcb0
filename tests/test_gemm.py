"""lb.matmul_int / lb.matmul_int4 / lb.pack_matrix against lowbit.reference, on every ISA path.

Results are int32 and must be identical (wrapping modulo 2**32 included). Shapes cover every
M, N and K from 1 to 33 pairwise (every pair of the three takes every value; the third cycles),
the edges of the kernels' tiles (6 x 16), of the small-M path (M <= 8) and of the cache blocks
(96 rows, 256 columns, 512 k), and K large enough to overflow int16 and int32.
"""

import threading

import numpy as np
import pytest
from conftest import assert_same, forced_isa, num_threads, sentinel
from hypothesis import given
from hypothesis import strategies as st

import lowbit as lb
import lowbit.reference as lbr

INT8 = (np.int8, np.uint8)
RANGE = {np.int8: (-128, 127), np.uint8: (0, 255)}
R4 = {True: (-8, 7), False: (0, 15)}


def rand(rng, shape, dtype):
    lo, hi = RANGE[dtype]
    return rng.integers(lo, hi + 1, shape).astype(dtype)


def rand_zp(rng, kind, n, lo, hi):
    """kind 0: Python int, 1: (1,) array, 2: per-row/column array of length n."""
    if kind == 0:
        return int(rng.integers(lo, hi + 1))
    size = 1 if kind == 1 else n
    return rng.integers(lo, hi + 1, size).astype(np.int16)


def check8(a, b, za=0, zb=0, msg=""):
    got = lb.matmul_int(a, b, za, zb)
    want = lbr.matmul_int(a, b, za, zb)
    assert_same(got, want, msg)
    return got


def check4(a, bp, k, signed, za=0, zb=0, msg=""):
    kw = dict(k=k, signed=signed, a_zero_point=za, b_zero_point=zb)
    got = lb.matmul_int4(a, bp, **kw)
    assert_same(got, lbr.matmul_int4(a, bp, **kw), msg)
    return got


def pairwise_shapes(lo=1, hi=33):
    """(M, K, N) such that every pair of dimensions takes every value pair in lo..hi."""
    r = range(lo, hi + 1)
    span = hi - lo + 1
    out = set()
    for x in r:
        for y in r:
            z = lo + (x * 7 + y * 3) % span
            out.update({(x, y, z), (x, z, y), (z, x, y)})
    return sorted(out)


SMALL_SHAPES = pairwise_shapes()


# ----------------------------------------------------------------------------------------------
# Every small shape


def test_small_shapes_int8(isa, rng):
    for i, (m, k, n) in enumerate(SMALL_SHAPES):
        adt, bdt = INT8[i % 2], INT8[(i // 2) % 2]
        a, b = rand(rng, (m, k), adt), rand(rng, (k, n), bdt)
        za = rand_zp(rng, i % 3, m, *RANGE[adt])
        zb = rand_zp(rng, (i // 3) % 3, n, *RANGE[bdt])
        check8(a, b, za, zb, f"{isa} M={m} K={k} N={n} {adt.__name__}x{bdt.__name__}")


def test_small_shapes_int4(isa, rng):
    for i, (m, k, n) in enumerate(SMALL_SHAPES):
        signed = i % 2 == 0
        adt = INT8[(i // 2) % 2]
        a = rand(rng, (m, k), adt)
        b4 = rng.integers(*R4[signed], (k, n), endpoint=True).astype(np.int8 if signed else np.uint8)
        bp = lb.pack_int4(b4, axis=0)
        za = rand_zp(rng, i % 3, m, *RANGE[adt])
        zb = rand_zp(rng, (i // 3) % 3, n, *R4[signed])
        got = check4(a, bp, k, signed, za, zb, f"{isa} M={m} K={k} N={n} signed={signed}")
        if i % 7 == 0:  # the API's definition, through the compiled matmul_int
            assert_same(got, lb.matmul_int(a, b4, za, zb))


# ----------------------------------------------------------------------------------------------
# Block edges and large K

EDGE_SHAPES = [
    (5, 40, 15), (6, 64, 16), (7, 100, 17), (8, 513, 31), (9, 511, 33), (12, 512, 32),
    (13, 1025, 47), (95, 257, 255), (96, 512, 256), (97, 513, 257), (101, 1030, 300),
    (192, 64, 513), (8, 3000, 600), (1, 4097, 100), (2, 2, 1000), (200, 3, 5),
    (193, 600, 40), (250, 1030, 50),  # past one 192-row tile row, K blocked
]


@pytest.mark.parametrize("m,k,n", EDGE_SHAPES, ids=[f"{m}x{k}x{n}" for m, k, n in EDGE_SHAPES])
def test_block_edges(isa, rng, m, k, n):
    a, b = rand(rng, (m, k), np.uint8), rand(rng, (k, n), np.int8)
    check8(a, b, rand_zp(rng, 2, m, 0, 255), rand_zp(rng, 2, n, -128, 127))
    a8 = rand(rng, (m, k), np.int8)
    check8(a8, rand(rng, (k, n), np.uint8), 3, rand_zp(rng, 1, n, 0, 255))
    b4 = rng.integers(-8, 8, (k, n)).astype(np.int8)
    check4(a8, lb.pack_int4(b4, axis=0), k, True, -5, rand_zp(rng, 2, n, -8, 7))
    u4 = rng.integers(0, 16, (k, n)).astype(np.uint8)
    check4(a, lb.pack_int4(u4, axis=0), k, False, rand_zp(rng, 2, m, 0, 255), 15)


def wrap32(v):
    """An exact integer reduced modulo 2**32 into int32's range."""
    return (int(v) + 2**31) % 2**32 - 2**31


@pytest.mark.parametrize("m", [1, 3, 8, 9, 13])
def test_extremes_overflow_int32(isa, m):
    """K = 131072 products of -128 * -128 sum to 2**31, which wraps to -2**31."""
    k, n = 131072, 17
    s8 = {v: np.full((k, n), v, np.int8) for v in (-128, 127)}
    u8 = np.full((k, n), 255, np.uint8)
    a = np.full((m, k), -128, np.int8)
    au = np.full((m, k), 255, np.uint8)
    if m == 3:
        assert_same(check8(a, s8[-128]), np.full((m, n), -(2**31), np.int32))
    # Constant operands: the exact result is K * (a - za) * (b - zb), wrapped.
    for aa, bb, za, zb in [(a, s8[-128], 0, 0), (au, s8[-128], 0, 0), (au, u8, 0, 0),
                           (a, s8[127], 127, -128), (au, s8[-128], 0, 127)]:
        want = wrap32(k * (int(aa.flat[0]) - za) * (int(bb.flat[0]) - zb))
        assert_same(lb.matmul_int(aa, bb, za, zb), np.full((m, n), want, np.int32))
    assert want == wrap32(k * 255 * -255)


def test_extremes_int4_long_k(isa, rng):
    k = 70001
    a = np.full((3, k), 255, np.uint8)
    bp = lb.pack_int4(np.full((k, 20), -8, np.int8), axis=0)
    check4(a, bp, k, True, 0, 7)          # 255 * -15 per term
    check4(a.astype(np.int8), bp, k, True, 127, 7)
    au4 = lb.pack_int4(np.full((k, 20), 15, np.uint8), axis=0)
    check4(np.full((10, k), -128, np.int8), au4, k, False, 127, 0)


def test_extremes_int16_overflow(isa):
    """One k-pair of 255 * 255 * 2 overflows int16 (vpmaddubsw would saturate here)."""
    a = np.full((9, 64), 255, np.uint8)
    b = np.full((64, 40), 255, np.uint8)
    got = check8(a, b)
    assert (got == 64 * 255 * 255).all()
    check8(a[:2], b)
    sa = np.tile(np.array([-128, 127], np.int8), (7, 32))
    check8(sa, np.tile(np.array([[-128], [127]], np.int8), (32, 18)))


# ----------------------------------------------------------------------------------------------
# Zero points, 1-D a, layouts of the inputs


@pytest.mark.parametrize("m", [1, 5, 8, 20])
def test_zero_points_per_row_and_column(isa, rng, m):
    k, n = 77, 45
    a, b = rand(rng, (m, k), np.uint8), rand(rng, (k, n), np.int8)
    za = rng.integers(0, 256, m).astype(np.uint8)
    zb = rng.integers(-128, 128, n).astype(np.int8)
    for zap, zbp in [(za, zb), (za, 5), (7, zb), (np.int64(200), np.array(-3)),
                     (np.array([255]), np.array([-128], np.int32))]:
        check8(a, b, zap, zbp)
    # the same as subtracting by hand in int32 (API.md's formula)
    want = (a.astype(np.int32) - za.astype(np.int32)[:, None]) @ (b.astype(np.int32) - zb)
    assert_same(lb.matmul_int(a, b, za, zb), want)


def test_vector_a(isa, rng):
    for k, n in [(1, 1), (33, 17), (4096, 70)]:
        a, b = rand(rng, (k,), np.int8), rand(rng, (k, n), np.uint8)
        got = check8(a, b, -4, rand_zp(rng, 2, n, 0, 255))
        assert got.shape == (n,)
        check8(a, b, np.array([3]), 9)
        bp = lb.pack_int4(rng.integers(0, 16, (k, n)).astype(np.uint8), axis=0)
        assert check4(a, bp, k, False, 1, 2).shape == (n,)


def test_non_contiguous_inputs(isa, rng):
    big_a = rand(rng, (40, 90), np.int8)
    big_b = rand(rng, (90, 70), np.uint8)
    a = big_a[::2, 1::2]              # (20, 45), strided both ways
    b = big_b[::2, ::3]               # (45, 24)
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    check8(a, b, 2, 3)
    check8(a, np.asfortranarray(b), 2, 3)
    check8(a[3], b)                   # 1-D strided row
    bp = lb.pack_int4(rng.integers(-8, 8, (90, 70)).astype(np.int8), axis=0)[:, ::2]
    check4(big_a[:, :90], bp, 90, True, 0, rand_zp(rng, 2, 35, -8, 7))
    zb = np.arange(48, dtype=np.int32)[::2] + 100  # strided zero points
    check8(a, b, 0, zb)


def test_empty_dimensions(isa):
    for m, k, n in [(0, 5, 3), (4, 0, 3), (4, 5, 0), (9, 0, 17)]:
        a, b = np.ones((m, k), np.uint8), np.ones((k, n), np.int8)
        assert check8(a, b, 1, 2).shape == (m, n)
        if k % 2 == 0:
            bp = np.zeros((k // 2, n), np.uint8)
            assert check4(a, bp, None, True, 1, 2).shape == (m, n)


# ----------------------------------------------------------------------------------------------
# PackedMatrix


@pytest.mark.parametrize("m", [1, 7, 9, 100])
def test_packed_and_plain_agree(isa, rng, m):
    k, n = 301, 83
    for adt in INT8:
        for bdt in INT8:
            a, b = rand(rng, (m, k), adt), rand(rng, (k, n), bdt)
            pm = lb.pack_matrix(b)
            za, zb = rand_zp(rng, 2, m, *RANGE[adt]), rand_zp(rng, 2, n, *RANGE[bdt])
            assert_same(lb.matmul_int(a, pm, za, zb), lb.matmul_int(a, b, za, zb))
            assert_same(lbr.matmul_int(a, pm, za, zb), lbr.matmul_int(a, b, za, zb))
    for signed in (True, False):
        b4 = rng.integers(*R4[signed], (k, n), endpoint=True).astype(np.int8 if signed else np.uint8)
        bp = lb.pack_int4(b4, axis=0)
        pm4 = lb.pack_matrix(bp, dtype="int4" if signed else "uint4", k=k)
        a = rand(rng, (m, k), np.uint8)
        assert_same(lb.matmul_int4(a, pm4, signed=signed, b_zero_point=2),
                    lb.matmul_int4(a, bp, k=k, signed=signed, b_zero_point=2))
        assert_same(lb.matmul_int4(a, pm4, k=k, signed=signed),
                    lbr.matmul_int4(a, bp, k=k, signed=signed))
        assert_same(lb.matmul_int(a, pm4, 1, 3), lbr.matmul_int(a, b4, 1, 3))


@pytest.mark.parametrize("k,n", [(301, 83), (1, 1), (4, 33), (3, 16), (0, 5), (5, 0), (64, 64),
                                 (1100, 70), (1030, 32)])
def test_transposed_b_packs_from_its_rows(isa, rng, k, n):
    """B = W.T of a row-major W (the usual (out, in) weight) is packed from W's rows, byte for
    byte what packing the contiguous B gives, and multiplies the same."""
    for bdt in INT8:
        w = rand(rng, (n, k), bdt)
        b = w.T
        assert b.flags.f_contiguous and (not b.flags.c_contiguous or min(k, n) <= 1)
        got, want = lb.pack_matrix(b), lb.pack_matrix(np.ascontiguousarray(b))
        assert got.layout == want.layout and got.dtype == want.dtype and got.shape == (k, n)
        np.testing.assert_array_equal(got._data, want._data)
        np.testing.assert_array_equal(got._colsum, want._colsum)
        np.testing.assert_array_equal(got.to_array(), b)
        a = rand(rng, (3, k), np.uint8)
        assert_same(lb.matmul_int(a, b, 7, 1), lbr.matmul_int(a, np.ascontiguousarray(b), 7, 1))


@pytest.mark.parametrize("m,k,n", [(1, 5, 3), (37, 61, 29), (130, 256, 100), (2, 1, 1)])
def test_fortran_order_a_and_b_packed(isa, rng, m, k, n):
    """x.T-style activations and a transposed nibble matrix go through the blocked C++
    transpose: the same results as their C-order copies."""
    for adt in INT8:
        a = rand(rng, (k, m), adt).T
        assert a.flags.f_contiguous
        b = rand(rng, (k, n), np.int8)
        assert_same(lb.matmul_int(a, b, 3, -2), lbr.matmul_int(np.ascontiguousarray(a), b, 3, -2))
        bp = rng.integers(0, 256, (n, (k + 1) // 2), dtype=np.uint8).T
        bp[-1] &= 0x0F if k % 2 else 0xFF  # the padding nibble of an odd k
        want = lbr.matmul_int4(np.ascontiguousarray(a), np.ascontiguousarray(bp), k=k)
        assert_same(lb.matmul_int4(a, bp, k=k), want)
        assert_same(lb.matmul_int4(a, lb.pack_matrix(bp, dtype="int4", k=k)), want)


@pytest.mark.parametrize("k,n", [(61, 37), (1, 1), (4, 33), (3, 16), (17, 32), (32, 5),
                                 (100, 64), (15, 3), (16, 3), (33, 3), (0, 4), (1100, 70),
                                 (1031, 64), (96, 32)])
def test_transposed_nibbles_pack_from_their_rows(isa, rng, k, n):
    """The nibbles of an (out, in) weight packed along in (lb.pack_int4(W, axis=1)),
    transposed, are packed from their rows: byte for byte the contiguous pack, the padding
    nibble of an odd k ignored either way."""
    for signed in (True, False):
        w4 = rng.integers(0, 256, (n, (k + 1) // 2), dtype=np.uint8)
        dt = "int4" if signed else "uint4"
        got = lb.pack_matrix(w4.T, dtype=dt, k=k)
        want = lb.pack_matrix(np.ascontiguousarray(w4.T), dtype=dt, k=k)
        np.testing.assert_array_equal(got._data, want._data)
        np.testing.assert_array_equal(got._colsum, want._colsum)
        a = rand(rng, (3, k), np.int8)
        assert_same(lb.matmul_int4(a, w4.T, k=k, signed=signed),
                    lbr.matmul_int4(a, np.ascontiguousarray(w4.T), k=k, signed=signed))


def test_strided_b_is_copied_not_misread(isa, rng):
    w = rand(rng, (40, 90), np.int8)
    a = rand(rng, (5, 45), np.int8)
    for b in (w.T[:45, ::2], w.T[1::2, :], w[:, ::2].T[:45][::-1], w[::-1].T[:45]):
        assert not b.flags.c_contiguous
        assert_same(lb.matmul_int(a, b), lbr.matmul_int(a, np.ascontiguousarray(b)))
        np.testing.assert_array_equal(lb.pack_matrix(b).to_array(), b)


def test_packed_matrix_properties(rng):
    b = rand(rng, (37, 21), np.int8)
    pm = lb.pack_matrix(b)
    assert pm.shape == (37, 21) and pm.dtype == "int8" and pm.bits == 8
    g = lb._core.gemm_geometry()
    panels, kgroups = -(-21 // g["nr"]), -(-37 // g["kb"])
    assert pm.nbytes == panels * (kgroups * g["kb"] * g["nr"] + 4 * g["nr"])
    if g["layout"] == "k2n16":  # the figures of the PackedMatrix docstring
        assert pm.nbytes == 32 * 2 * 19 + 64 * 2
    assert_same(pm.to_array(), b)
    assert "PackedMatrix" in repr(pm)
    bu = rand(rng, (4, 3), np.uint8)
    assert_same(lb.pack_matrix(bu, dtype="uint8").to_array(), bu)
    b4 = rng.integers(-8, 8, (37, 21)).astype(np.int8)
    pm4 = lb.pack_matrix(lb.pack_int4(b4, axis=0), dtype="int4", k=37)
    assert pm4.shape == (37, 21) and pm4.bits == 4
    assert pm4.nbytes == panels * (kgroups * g["kb"] * g["nr"] // 2 + 4 * g["nr"])
    assert_same(pm4.to_array(), b4)
    u4 = rng.integers(0, 16, (6, 40)).astype(np.uint8)
    assert_same(lb.pack_matrix(lb.pack_int4(u4, axis=0), dtype="uint4").to_array(), u4)
    import pickle
    back = pickle.loads(pickle.dumps(pm))
    assert_same(back.to_array(), b)
    with pytest.raises(AttributeError):
        pm.shape = (1, 1)


def test_packed_matrix_survives_isa_switch(rng):
    b = rand(rng, (50, 40), np.int8)
    pm = lb.pack_matrix(b)
    a = rand(rng, (10, 50), np.uint8)
    want = lbr.matmul_int(a, b)
    for isa in lb.available_isas():
        lb.set_isa(isa)
        assert_same(lb.matmul_int(a, pm), want, isa)
    lb.set_isa("auto")


@pytest.mark.parametrize("k,n", [(1, 1), (7, 15), (130, 33), (257, 16)])
def test_every_isa_packs_the_same_bytes(rng, k, n):
    """Paths that share a layout pack the same bytes; every path the same column sums."""
    b = rand(rng, (k, n), np.int8)
    bp = lb.pack_int4(rng.integers(0, 16, (k, n)).astype(np.uint8), axis=0)
    by_layout = {}
    for isa in lb.available_isas():
        with forced_isa(isa):
            pm, pm4 = lb.pack_matrix(b), lb.pack_matrix(bp, dtype="uint4", k=k)
        by_layout.setdefault(pm.layout, []).append((pm._data, pm._colsum, pm4._data,
                                                    pm4._colsum))
        assert_same(pm._colsum[:n], (b.astype(np.int32) + 128).sum(axis=0, dtype=np.int32))
        assert not pm._colsum[n:].any() and not pm4._colsum[n:].any()
    for packed in by_layout.values():
        for got in packed[1:]:
            for g, w in zip(got, packed[0]):
                assert_same(g, w)


def test_pack_padding_nibble_ignored(isa, rng):
    """An odd K leaves a padding nibble; whatever it holds must not matter."""
    k, n = 9, 20
    b4 = rng.integers(-8, 8, (k, n)).astype(np.int8)
    bp = lb.pack_int4(b4, axis=0)
    dirty = bp.copy()
    dirty[-1] |= 0xF0
    a = rand(rng, (11, k), np.int8)
    want = lbr.matmul_int4(a, bp, k=k, b_zero_point=-8)
    assert_same(lb.matmul_int4(a, dirty, k=k, b_zero_point=-8), want)
    assert_same(lb.matmul_int4(a, lb.pack_matrix(dirty, dtype="int4", k=k), b_zero_point=-8),
                want)


@pytest.mark.parametrize("m,k,n", [(1, 40, 70), (8, 300, 33), (9, 77, 20), (200, 600, 300)])
def test_tile_epilogue_hook(isa, rng, m, k, n):
    """The fused-epilogue driver (for lb.linear) delivers every tile once, equal to the product."""
    from lowbit import _core, _gemm

    a, b = rand(rng, (m, k), np.uint8), rand(rng, (k, n), np.int8)
    za, zb = rand_zp(rng, 2, m, 0, 255), rand_zp(rng, 2, n, -128, 127)
    want = lbr.matmul_int(a, b, za, zb)
    bp = lb.pack_int4(rng.integers(-8, 8, (k, n)).astype(np.int8), axis=0)
    want4 = lbr.matmul_int4(a, bp, k=k, a_zero_point=za, b_zero_point=3)
    for pm, w, zbv in [(lb.pack_matrix(b), want, zb),
                       (lb.pack_matrix(bp, dtype="int4", k=k), want4, np.array([3]))]:
        with num_threads(2):
            out = sentinel((m, n), np.int32)
            _core.gemm_s32(a, False, pm._data, pm._colsum, k, n, pm.bits, True, pm.layout,
                           za.astype(np.int32), zbv.astype(np.int32), out, tiles=True)
        assert_same(out, w)
    assert _gemm.PackedMatrix is lb.PackedMatrix


# ----------------------------------------------------------------------------------------------
# Threads


# Products below 2**22 multiply-adds run on one thread whatever the setting (kMinParallelWork):
# the first three take the pool on the small-M and the tiled paths, the last runs inline.
@pytest.mark.parametrize("m,k,n", [(1, 5000, 1000), (8, 700, 800), (300, 600, 400),
                                   (8, 700, 500)])
def test_thread_counts_agree(isa, rng, m, k, n):
    a, b = rand(rng, (m, k), np.int8), rand(rng, (k, n), np.int8)
    pm = lb.pack_matrix(b)
    bp = lb.pack_int4(rng.integers(-8, 8, (k, n)).astype(np.int8), axis=0)
    results = []
    for t in (1, 2, 3):
        with num_threads(t):
            results.append((lb.matmul_int(a, pm, 1, 2), lb.matmul_int4(a, bp, b_zero_point=1)))
    for r8, r4 in results[1:]:
        assert_same(r8, results[0][0])
        assert_same(r4, results[0][1])
    assert_same(results[0][0], lbr.matmul_int(a, b, 1, 2))


def test_concurrent_callers(rng):
    a, b = rand(rng, (64, 500), np.uint8), rand(rng, (500, 300), np.int8)
    pm = lb.pack_matrix(b)
    want = lbr.matmul_int(a, b, 3, -2)
    errors = []

    def work():
        try:
            for _ in range(5):
                np.testing.assert_array_equal(lb.matmul_int(a, pm, 3, -2), want)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# ----------------------------------------------------------------------------------------------
# Properties


@given(m=st.integers(1, 20), k=st.integers(1, 70), n=st.integers(1, 40),
       signed=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_int4_equals_int8_of_unpacked(m, k, n, signed, seed):
    rng = np.random.default_rng(seed)
    a = rand(rng, (m, k), np.int8)
    b4 = rng.integers(*R4[signed], (k, n), endpoint=True).astype(np.int8 if signed else np.uint8)
    bp = lb.pack_int4(b4, axis=0)
    zb = int(rng.integers(*R4[signed], endpoint=True))
    assert_same(lb.matmul_int4(a, bp, k=k, signed=signed, b_zero_point=zb),
                lb.matmul_int(a, lb.unpack_int4(bp, axis=0, n=k, signed=signed), 0, zb))


# ----------------------------------------------------------------------------------------------
# Errors (both implementations raise the same)

A = np.zeros((4, 6), np.int8)
B = np.zeros((6, 5), np.int8)
BP = np.zeros((3, 5), np.uint8)


@pytest.mark.parametrize("impl", [lb, lbr], ids=["lowbit", "reference"])
@pytest.mark.parametrize("call,exc,match", [
    (lambda m: m.matmul_int(A.astype(np.float32), B), TypeError, "a must be an int8 or uint8"),
    (lambda m: m.matmul_int(A.astype(np.int16), B), TypeError, "got dtype int16"),
    (lambda m: m.matmul_int(A, B.astype(np.int32)), TypeError, "b must be an int8 or uint8"),
    (lambda m: m.matmul_int(np.zeros((2, 4, 6), np.int8), B), ValueError, r"\(M, K\) or \(K,\)"),
    (lambda m: m.matmul_int(np.int8(3), B), ValueError, r"\(M, K\) or \(K,\)"),
    (lambda m: m.matmul_int(A, B[:5]), ValueError, r"\(K, N\) = \(6, N\)"),
    (lambda m: m.matmul_int(A, B[0]), ValueError, r"\(K, N\) = \(6, N\)"),
    (lambda m: m.matmul_int(A, B, 128), ValueError, r"a_zero_point values must lie in \[-128, 127\]"),
    (lambda m: m.matmul_int(A.view(np.uint8), B, -1), ValueError, r"\[0, 255\]"),
    (lambda m: m.matmul_int(A, B, 0, np.full(5, -129)), ValueError, "b_zero_point values"),
    (lambda m: m.matmul_int(A, B, np.zeros(3, np.int8)), ValueError, r"shape \(M,\) = \(4,\)"),
    (lambda m: m.matmul_int(A, B, 0, np.zeros(4, np.int8)), ValueError, r"shape \(N,\) = \(5,\)"),
    (lambda m: m.matmul_int(A, B, 0, np.zeros((1, 5), np.int8)), ValueError, "b_zero_point"),
    (lambda m: m.matmul_int(A, B, 1.0), TypeError, "a_zero_point must be an integer"),
    (lambda m: m.matmul_int(A, B, 0, True), TypeError, "b_zero_point must be an integer"),
    (lambda m: m.matmul_int(A[0], B, np.zeros(2, np.int8)), ValueError, "a_zero_point"),
    (lambda m: m.matmul_int4(A, BP, b_zero_point=8), ValueError, r"\[-8, 7\] \(int4\)"),
    (lambda m: m.matmul_int4(A, BP, signed=False, b_zero_point=-1), ValueError, r"\[0, 15\]"),
    (lambda m: m.matmul_int4(A, BP, k=4), ValueError, "k must be 6 or 5"),
    (lambda m: m.matmul_int4(A, BP, k=5), ValueError, "a must have K = 5"),
    (lambda m: m.matmul_int4(A, BP, k=6.0), TypeError, "k must be an int"),
    (lambda m: m.matmul_int4(A, BP.view(np.int8)), TypeError, "b_packed must be a uint8"),
    (lambda m: m.matmul_int4(A, BP[0]), ValueError, r"b_packed must have shape"),
    (lambda m: m.matmul_int4(A.astype(np.float64), BP), TypeError, "a must be"),
    (lambda m: m.matmul_int4(A, lb.pack_matrix(B)), ValueError, "4-bit PackedMatrix"),
    (lambda m: m.matmul_int4(A, lb.pack_matrix(BP, dtype="uint4")), ValueError, "signed=False"),
    (lambda m: m.matmul_int4(A, lb.pack_matrix(BP, dtype="int4"), k=5), ValueError, "does not match"),
    (lambda m: m.matmul_int(A, lb.pack_matrix(B[:5])), ValueError, "PackedMatrix of shape"),
])
def test_errors(impl, call, exc, match):
    with pytest.raises(exc, match=match):
        call(impl)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: lb.pack_matrix(B.astype(np.float32)), TypeError, "b must be an int8 or uint8"),
    (lambda: lb.pack_matrix(B[0]), ValueError, r"shape \(K, N\)"),
    (lambda: lb.pack_matrix(B, dtype="uint8"), TypeError, "dtype uint8"),
    (lambda: lb.pack_matrix(B, dtype="int2"), ValueError, "dtype must be one of"),
    (lambda: lb.pack_matrix(B, k=6), ValueError, "4-bit data only"),
    (lambda: lb.pack_matrix(B, dtype="int4"), TypeError, "b_packed must be a uint8"),
    (lambda: lb.pack_matrix(BP, dtype="int4", k=7), ValueError, "k must be 6 or 5"),
])
def test_pack_matrix_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ----------------------------------------------------------------------------------------------
# Geometry: owned by each path's kernels, recorded by what is packed for them


def test_geometry_of_every_path(rng):
    """Each path states its tile and layout; what is packed under it records that layout and
    decodes back to the values (the decoding is C++, from the layout's geometry)."""
    b = rng.integers(-128, 128, (37, 45)).astype(np.int8)
    b4 = rng.integers(0, 16, (37, 45)).astype(np.uint8)
    for isa in lb.available_isas():
        with forced_isa(isa):
            g = lb._core.gemm_geometry()
            assert g["mr"] >= 1 and g["nr"] >= 2 and g["nr"] % 2 == 0 and g["kb"] in (2, 4), g
            assert g["layout"] == lb._core.gemm_layout()
            pm = lb.pack_matrix(b)
            pm4 = lb.pack_matrix(lb.pack_int4(b4, axis=0), dtype="uint4", k=37)
            assert pm.layout == pm4.layout == g["layout"]
            panels = -(-45 // g["nr"])
            assert pm._colsum.size == panels * g["nr"]
            assert_same(pm.to_array(), b)
            assert_same(pm4.to_array(), b4)


def _relabelled(pm, layout):
    return lb.PackedMatrix(pm._data.copy(), pm._colsum.copy(), pm.shape, pm.dtype, layout)


@pytest.mark.parametrize("dtype", ["int8", "int4"])
def test_packed_layout_unknown_is_refused(rng, dtype):
    """A PackedMatrix in a layout no path of this build packs (say, unpickled from another
    build) raises ValueError, never computes; the C++ driver refuses a layout other than the
    active one (out untouched)."""
    a = rng.integers(-128, 128, (9, 20)).astype(np.int8)
    if dtype == "int8":
        pm = lb.pack_matrix(rng.integers(-128, 128, (20, 7)).astype(np.int8))
    else:
        pm = lb.pack_matrix(lb.pack_int4(rng.integers(-8, 8, (20, 7)).astype(np.int8), axis=0),
                            dtype="int4", k=20)
    bad = _relabelled(pm, "k9n99")
    with pytest.raises(ValueError, match="layout 'k9n99'.*pack it again"):
        lb.matmul_int(a, bad) if dtype == "int8" else lb.matmul_int4(a, bad)
    with pytest.raises(ValueError, match="k9n99"):
        bad.to_array()
    out = sentinel((9, 7), np.int32)
    before = out.copy()
    with pytest.raises(ValueError, match="k9n99"):
        lb._core.gemm_s32(a.view(np.uint8), True, pm._data, pm._colsum, 20, 7, pm.bits, True,
                          "k9n99", np.zeros(1, np.int32), np.zeros(1, np.int32), out)
    assert_same(out, before)
    for isa in lb.available_isas():  # a real layout, but another path's: refused by C++
        with forced_isa(isa):
            other = {lb._core.gemm_layout()}
        if other != {pm.layout}:
            with forced_isa(isa):
                with pytest.raises(ValueError, match="packed in layout"):
                    lb._core.gemm_s32(a.view(np.uint8), True, pm._data, pm._colsum, 20, 7,
                                      pm.bits, True, pm.layout, np.zeros(1, np.int32),
                                      np.zeros(1, np.int32), out)
            assert_same(out, before)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint4"])
def test_packed_matrix_repacks_for_another_layout(rng, dtype):
    """Packed under each path, used under each path: the same values, repacked once per layout
    when the layouts differ (lb.cpu_info() tells which paths share one)."""
    k, n = 45, 70
    four = dtype in ("int4", "uint4")
    lo, hi = {"int8": (-128, 128), "uint8": (0, 256), "int4": (-8, 8), "uint4": (0, 16)}[dtype]
    b = rng.integers(lo, hi, (k, n)).astype(np.int8 if dtype.startswith("int") else np.uint8)
    a = rng.integers(-128, 128, (11, k)).astype(np.int8)
    want = (lbr.matmul_int4(a, lb.pack_int4(b, axis=0), k=k, signed=dtype == "int4") if four
            else lbr.matmul_int(a, b))
    for isa_pack in lb.available_isas():
        with forced_isa(isa_pack):
            pm = (lb.pack_matrix(lb.pack_int4(b, axis=0), dtype=dtype, k=k) if four
                  else lb.pack_matrix(b))
        for isa in lb.available_isas():
            with forced_isa(isa):
                got = (lb.matmul_int4(a, pm, k=k, signed=dtype == "int4") if four
                       else lb.matmul_int(a, pm))
                assert_same(got, want, f"packed on {isa_pack}, run on {isa}")
                assert_same(lb.matmul_int(a[:1], pm) if not four else
                            lb.matmul_int4(a[:1], pm, k=k, signed=dtype == "int4"), want[:1])
        assert pm.layout not in pm._repacked
        assert_same(pm.to_array(), b)


def test_linear_weights_record_their_layout(rng):
    w_q = lb.QTensor.quantize(rng.standard_normal((24, 40)).astype(np.float32), "int4", axis=1,
                              group_size=8)
    x = rng.standard_normal((3, 40)).astype(np.float32)
    want = lb.linear(x, w_q)
    lw = w_q._cached(("linear", lb._core.gemm_layout()), lambda: None)
    assert lw.layout == lb._core.gemm_layout()
    nr = lb._core.gemm_geometry()["nr"]
    assert lw.ws.shape == (-(-24 // nr), 5, nr)
    out = np.empty((3, 24), np.float32)
    with pytest.raises(ValueError, match="k9n99"):
        lb._core.linear_f32(x, lw.data, "k9n99", lw.geometry, lw.ws, lw.zb, lw.cs, False,
                            np.zeros(0, np.float32), 1, False, 1.0, 0, out)
    assert_same(lb.linear(x, w_q), want)
    for isa in lb.available_isas():  # one packing per layout in the cache, each exact
        with forced_isa(isa):
            assert_same(lb.linear(x, w_q), lbr.linear(x, w_q))
    expected = set()
    for isa in lb.available_isas():
        with forced_isa(isa):
            expected.add(lb._core.gemm_layout())
    assert {key[1] for key in w_q._packed_cache if key[0] == "linear"} == expected
