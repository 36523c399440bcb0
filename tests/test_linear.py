"""lb.linear against lowbit.reference.linear: bit for bit on every ISA path with integer
activations, within the documented tolerance weight-only; shapes, static scales, errors."""

import numpy as np
import pytest

import lowbit as lb
import lowbit.reference as lbr
from conftest import assert_same, num_threads
from lowbit._reference_linear import WEIGHT_ONLY_RTOL

# (dtype, symmetric) of the weights
WEIGHTS = [("int8", True), ("int8", False), ("uint8", True), ("int4", True), ("int4", False),
           ("uint4", False)]
# (axis, group_size) for a (N, K) = (19, 70) weight; per-tensor last
GRANS = [(0, None), (1, 16), (1, 7), (1, 69), (1, 128), (None, None)]
K, N = 70, 19


def _setup(rng, dtype, symmetric, axis, group, k=K, n=N):
    w = (rng.standard_normal((n, k)) * rng.uniform(0.1, 3, (n, 1))).astype(np.float32)
    return lb.QTensor.quantize(w, dtype, axis=axis, group_size=group, symmetric=symmetric), w


def _x(rng, shape):
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    if x.ndim >= 2 and x.shape[-2] > 3:
        x2 = x.reshape(-1, x.shape[-1])
        x2[0] = 0.0                          # an all-zero row: scale 1.0
        x2[1, :] = 1e-41                     # subnormal row
        x2[1, ::3] = -2e-40
        x2[2, 5] = 4e5                       # one huge element, the rest round to 0
        x2[3, :] = np.abs(x2[3, :])          # one-signed row (uint8 zero point 0)
    return x


@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("wfmt", WEIGHTS, ids=lambda v: f"{v[0]}{'s' if v[1] else 'a'}")
@pytest.mark.parametrize("gran", GRANS, ids=str)
def test_matches_reference_bits(isa, act, wfmt, gran, rng):
    w_q, _ = _setup(rng, *wfmt, *gran)
    x = _x(rng, (13, K))
    b = rng.standard_normal(N).astype(np.float32)
    for bias in (None, b):
        got = lb.linear(x, w_q, bias, act_dtype=act)
        want = lbr.linear(x, w_q, bias, act_dtype=act)
        assert_same(got, want, f"{isa} {act} {wfmt} {gran} bias={bias is not None}")


@pytest.mark.parametrize("lead", [(), (1,), (3, 5), (2, 1, 4)])
def test_leading_shapes(isa, lead, rng):
    w_q, w = _setup(rng, "int4", True, 1, 32)
    x = (rng.standard_normal(lead + (K,))).astype(np.float32)
    for act in ("int8", "uint8", None):
        y = lb.linear(x, w_q, act_dtype=act)
        assert y.shape == lead + (N,) and y.dtype == np.float32
        flat = lb.linear(x.reshape(-1, K), w_q, act_dtype=act)
        assert_same(y.reshape(-1, N), flat)
        if act is not None:
            assert_same(y, lbr.linear(x, w_q, act_dtype=act))
    y = lb.linear(np.zeros((0, K), np.float32), w_q)
    assert y.shape == (0, N) and y.dtype == np.float32
    assert_same(lb.linear(np.zeros((2, 0, K)), w_q), lbr.linear(np.zeros((2, 0, K)), w_q))


@pytest.mark.parametrize("xdtype", [np.float16, np.float64])
def test_input_dtypes_cast_to_float32(xdtype, rng):
    w_q, _ = _setup(rng, "int8", True, 0, None)
    x = rng.standard_normal((4, K)).astype(xdtype)
    b = rng.standard_normal(N)                               # float64 bias: cast
    assert_same(lb.linear(x, w_q, b), lb.linear(x.astype(np.float32), w_q,
                                                b.astype(np.float32)))
    assert_same(lb.linear(x, w_q, b), lbr.linear(x, w_q, b))


@pytest.mark.parametrize("wfmt", WEIGHTS, ids=lambda v: f"{v[0]}{'s' if v[1] else 'a'}")
@pytest.mark.parametrize("gran", GRANS[:3], ids=str)
def test_weight_only_within_tolerance(isa, wfmt, gran, rng):
    w_q, _ = _setup(rng, *wfmt, *gran, k=300, n=33)
    x = (rng.standard_normal((9, 300)) * 5).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    got = lb.linear(x, w_q, b, act_dtype=None)
    want = lbr.linear(x, w_q, b, act_dtype=None)
    w_hat = w_q.dequantize()
    bound = 1e-5 * (np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(w_hat, axis=1)[None, :]
                    + np.abs(b))
    assert got.dtype == np.float32 and got.shape == (9, 33)
    assert (np.abs(got.astype(np.float64) - want) <= bound).all()
    # and it is x @ dequantize(W).T + b (NumPy's float32 product has rounding errors too)
    assert (np.abs(got.astype(np.float64) - (x @ w_hat.T + b)) <= 2 * bound).all()


def test_close_to_float(rng):
    w = (rng.standard_normal((64, 256)) * 0.1).astype(np.float32)
    x = rng.standard_normal((8, 256)).astype(np.float32)
    ref = x @ w.T
    for fmt, tol in [(dict(dtype="int8", axis=0), 0.02), (dict(dtype="int4", axis=1,
                                                                group_size=32), 0.15)]:
        w_q = lb.QTensor.quantize(w, **fmt)
        for act in ("int8", "uint8", None):
            y = lb.linear(x, w_q, act_dtype=act)
            assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < tol, (fmt, act)


def test_int32_accumulator_wraps(isa):
    # (255 - 0) * (255 - 0) * 40000 = 2_601_000_000 > 2**31 - 1: the int32 sum wraps.
    k = 40000
    x = np.full((2, k), 3.0, np.float32)
    w = np.full((2, k), 0.5, np.float32)
    w_q = lb.QTensor.quantize(w, "uint8", axis=0, symmetric=False)
    assert (w_q.int_repr() == 255).all() and (w_q.zero_point == 0).all()
    got = lb.linear(x, w_q, act_dtype="uint8")
    want = lbr.linear(x, w_q, act_dtype="uint8")
    assert_same(got, want)
    acc = np.int64(255 * 255 * k) - 2**32
    expect = np.float32(acc) * (np.float32(3.0) / np.float32(255) * w_q.scale[0])
    assert got[0, 0] == expect < 0


def test_extreme_weights(isa, rng):
    # every int4 value, -8 included, against every activation extreme
    q = np.tile(np.arange(-8, 8, dtype=np.int8), (5, 4))          # (5, 64)
    scale = rng.uniform(0.01, 1, (5, 2)).astype(np.float32)
    w_q = lb.QTensor(lb.pack_int4(q), scale, np.array([[0, -8], [7, 0], [-3, 3], [0, 0],
                                                        [1, -1]], np.int8),
                     "int4", (5, 64), axis=1, group_size=32)
    x = rng.choice(np.float32([-1e3, 1e3, -1, 1, 0, 0.5]), size=(6, 64)).astype(np.float32)
    for act in ("int8", "uint8"):
        assert_same(lb.linear(x, w_q, act_dtype=act), lbr.linear(x, w_q, act_dtype=act))


def test_static_activation_scale(isa, rng):
    w_q, _ = _setup(rng, "int4", False, 1, 16)
    x = _x(rng, (11, K))
    b = rng.standard_normal(N).astype(np.float32)
    cases = [("int8", 0.05, None), ("int8", np.float32(0.02), -3), ("uint8", 0.03, 128),
             ("uint8", np.array([0.04], np.float32), np.array([7]))]
    for act, s, z in cases:
        got = lb.linear(x, w_q, b, act_dtype=act, act_scale=s, act_zero_point=z)
        assert_same(got, lbr.linear(x, w_q, b, act_dtype=act, act_scale=s, act_zero_point=z))
    # from an observer (a per-tensor QParams)
    for act, sym in (("int8", True), ("uint8", False)):
        qp = lb.Observer("minmax", act, symmetric=sym).update(x).qparams()
        got = lb.linear(x, w_q, b, act_dtype=act, act_scale=qp)
        assert_same(got, lbr.linear(x, w_q, b, act_dtype=act, act_scale=qp))
        assert_same(got, lb.linear(x, w_q, b, act_dtype=act, act_scale=qp.scale,
                                   act_zero_point=qp.zero_point))
    # a static range clips: inf saturates instead of raising
    x[0, 0] = np.inf
    assert_same(lb.linear(x, w_q, act_scale=0.01), lbr.linear(x, w_q, act_scale=0.01))


def test_weights_cached(rng):
    w_q, _ = _setup(rng, "int4", True, 0, None)
    x = _x(rng, (5, K))
    y1 = lb.linear(x, w_q)
    assert w_q._packed_cache
    cached = dict(w_q._packed_cache)
    y2 = lb.linear(x, w_q)
    assert_same(y1, y2)
    assert all(w_q._packed_cache[k] is v for k, v in cached.items())
    # keyed by the packed layout, used by every mode
    assert ("linear", lb._core.gemm_layout()) in w_q._packed_cache
    lb.linear(x, w_q, act_dtype=None)
    lb.linear(x, w_q, act_dtype="uint8")
    assert len(w_q._packed_cache) == len(cached)


# ---------------------------------------------------------------------------------------------
# The compiled paths' blocking: M <= 8 streams B (6-row A panels, so 7..9 take two), larger M
# runs 6x16 tiles; 16-column B panels; k-pairs and k-quads (odd K, K = 1); K blocks of 256
# k-pairs; groups of 32/64/128 and sizes that are not multiples of 4 (padded in the packed K)
# or do not divide K, many groups a K block, a group larger than K.

# (K, group_size or None for per channel)
K_GROUPS = [(1, None), (2, None), (3, None), (5, None), (64, None), (65, None), (513, None),
            (1031, None), (1031, 32), (1030, 64), (1100, 128), (128, 128), (127, 128),
            (33, 32), (100, 7), (1000, 30), (520, 6), (9, 1), (70, 4096), (300, 129),
            (2600, 64)]
# (weight dtype, symmetric, act_dtype): signed and unsigned, both activation kinds
FORMATS = [("int8", True, "int8"), ("uint8", False, "uint8"), ("int4", True, "int8"),
           ("uint4", False, "uint8"), ("int4", False, "uint8"), ("int8", False, "int8")]
ROWS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 19]  # 16 = 6 + 6 + 4: a short last panel


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f[0]}{'s' if f[1] else 'a'}-{f[2]}")
@pytest.mark.parametrize("kg", K_GROUPS, ids=lambda v: f"K{v[0]}g{v[1]}")
def test_shapes_around_tiles(isa, fmt, kg, rng):
    wdt, sym, act = fmt
    k, g = kg
    n = 33
    w_q, _ = _setup(rng, wdt, sym, 0 if g is None else 1, g, k=k, n=n)
    x = _x(rng, (max(ROWS), k)) if k > 5 else (rng.standard_normal((max(ROWS), k)) * 3).astype(
        np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    for m in ROWS:
        for cols in (slice(None), slice(0, 17), slice(0, 1)):
            wq = w_q if cols == slice(None) else _rows_of(w_q, cols)
            bias = b[cols] if m % 2 else None
            assert_same(lb.linear(x[:m], wq, bias, act_dtype=act),
                        lbr.linear(x[:m], wq, bias, act_dtype=act),
                        f"{isa} {fmt} K={k} g={g} M={m} N={wq.shape[0]}")


@pytest.mark.parametrize("fmt", FORMATS[:4], ids=lambda f: f"{f[0]}{'s' if f[1] else 'a'}-{f[2]}")
@pytest.mark.parametrize("m", [97, 150, 193, 200])
def test_tall_batches(isa, fmt, m, rng):
    """Batches past one tile row (up to 192 rows a tile): several tile rows, a short last one,
    K blocks of 256 k-pairs, a partial last B panel (the next panel is prefetched)."""
    wdt, sym, act = fmt
    for g in (None, 64):
        w_q, _ = _setup(rng, wdt, sym, 0 if g is None else 1, g, k=600, n=40)
        x = _x(rng, (m, 600))
        b = rng.standard_normal(40).astype(np.float32)
        assert_same(lb.linear(x, w_q, b, act_dtype=act), lbr.linear(x, w_q, b, act_dtype=act),
                    f"{isa} {fmt} g={g} M={m}")


def _rows_of(w_q, cols):
    """The QTensor of output channels ``cols`` of w_q."""
    return lb.QTensor(w_q.data[cols], w_q.scale[cols], w_q.zero_point[cols], w_q.dtype,
                      (len(range(*cols.indices(w_q.shape[0]))), w_q.shape[1]), w_q.axis,
                      w_q.group_size)


@pytest.mark.parametrize("shape", [(1, 200, 700), (5, 200, 700), (1, 4500, 1000),
                                   (6, 1100, 700), (40, 300, 1100),
                                   (97, 520, 300), (100, 40, 2600)], ids=str)
@pytest.mark.parametrize("gran", [(0, None), (1, 64), (1, 30)], ids=str)
def test_thread_counts_agree(isa, shape, gran, rng):
    """Every output element is computed by one thread in a fixed order: 1 and 2 threads give
    the same bits, weight-only included. (100, 40, 2600): a tile's A is too large to keep whole,
    so K is blocked (several groups a block).)"""
    m, n, k = shape
    for wdt, sym in (("int8", True), ("int4", False)):
        w_q, _ = _setup(rng, wdt, sym, *gran, k=k, n=n)
        x = _x(rng, (m, k))
        b = rng.standard_normal(n).astype(np.float32)
        for act in ("int8", "uint8", None):
            with num_threads(1):
                one = lb.linear(x, w_q, b, act_dtype=act)
            with num_threads(2):
                two = lb.linear(x, w_q, b, act_dtype=act)
            assert_same(two, one, f"{isa} {wdt} {gran} {shape} {act}")
            if act is not None:
                assert_same(one, lbr.linear(x, w_q, b, act_dtype=act))


@pytest.mark.parametrize("m", [2, 12])
@pytest.mark.parametrize("group", [None, 33000, 30000])
def test_int32_wraps_every_path(isa, m, group):
    # 255 * 255 * K > 2**31 for K >= 33026: the sums of a group wrap in int32 (the first group
    # of 33000 wraps, the second does not), on the streaming (M=2) and tiled (M=12) paths.
    k = 40000
    x = np.full((m, k), 3.0, np.float32)
    x[:, ::7] = 2.0
    w = np.full((3, k), 0.5, np.float32)
    w[1, ::5] = 0.25
    w_q = lb.QTensor.quantize(w, "uint8", axis=0 if group is None else 1, group_size=group,
                              symmetric=False)
    assert_same(lb.linear(x, w_q, act_dtype="uint8"), lbr.linear(x, w_q, act_dtype="uint8"))
    w_q = lb.QTensor.quantize(w, "int8", axis=0 if group is None else 1, group_size=group)
    assert_same(lb.linear(-x, w_q), lbr.linear(-x, w_q))


@pytest.mark.parametrize("fmt", [("int8", True), ("uint8", False), ("int4", True),
                                 ("uint4", False)], ids=lambda f: f[0])
@pytest.mark.parametrize("kg", [(300, None), (1031, None), (1030, 64), (1000, 30), (520, 6),
                                (70, 4096)], ids=lambda v: f"K{v[0]}g{v[1]}")
def test_weight_only_paths(isa, fmt, kg, rng):
    k, g = kg
    n = 37
    w_q, _ = _setup(rng, *fmt, 0 if g is None else 1, g, k=k, n=n)
    w_hat = w_q.dequantize()
    b = rng.standard_normal(n).astype(np.float32)
    for m in (1, 2, 3, 6, 7, 9, 40):
        x = (rng.standard_normal((m, k)) * 5).astype(np.float32)
        bias = b if m % 2 else None
        got = lb.linear(x, w_q, bias, act_dtype=None)
        want = lbr.linear(x, w_q, bias, act_dtype=None)
        bound = WEIGHT_ONLY_RTOL * (np.linalg.norm(x, axis=1)[:, None]
                                    * np.linalg.norm(w_hat, axis=1)[None, :]
                                    + (np.abs(b) if bias is not None else 0))
        assert got.dtype == np.float32 and got.shape == (m, n)
        err = np.abs(got.astype(np.float64) - want)
        assert (err <= bound).all(), f"{isa} {fmt} {kg} M={m}: {(err / bound).max()}"


def _both_raise(exc, *args, match=None, **kwargs):
    with pytest.raises(exc, match=match):
        lb.linear(*args, **kwargs)
    with pytest.raises(exc, match=match):
        lbr.linear(*args, **kwargs)


def test_errors(rng):
    w_q, w = _setup(rng, "int8", True, 0, None)
    x = rng.standard_normal((3, K)).astype(np.float32)
    _both_raise(TypeError, x, w, match="QTensor")
    _both_raise(ValueError, x[:, :-1], w_q, match="last dimension")
    _both_raise(ValueError, np.float32(1.0), w_q, match="last dimension")
    _both_raise(TypeError, x.astype(np.int32), w_q)
    _both_raise(ValueError, x, w_q, np.zeros(N + 1, np.float32), match="bias")
    _both_raise(TypeError, x, w_q, np.zeros(N, np.int32))
    _both_raise(ValueError, x, w_q, act_dtype="int4", match="act_dtype")
    _both_raise(ValueError, x, w_q, act_zero_point=3, match="act_scale")
    _both_raise(ValueError, x, w_q, act_dtype=None, act_scale=0.1)
    _both_raise(ValueError, x, w_q, act_scale=-1.0)
    _both_raise(ValueError, x, w_q, act_scale=np.ones(2, np.float32))
    _both_raise(ValueError, x, w_q, act_scale=0.1, act_zero_point=200)
    qp = lb.calibrate(x, "int8", axis=0)
    _both_raise(ValueError, x, w_q, act_scale=qp, match="per-tensor")
    _both_raise(ValueError, x, w_q, act_dtype="uint8", act_scale=lb.calibrate(x, "int8"))
    _both_raise(TypeError, x, w_q, act_scale=lb.calibrate(x), act_zero_point=0)
    for bad in (lb.QTensor.quantize(w, "int8", axis=1),
                lb.QTensor.quantize(w, "int4", axis=0, group_size=4),
                lb.QTensor.quantize(w[0], "int8", axis=0)):
        with pytest.raises(ValueError, match="shape|axis"):
            lb.linear(x, bad)
    for bad in (np.nan, np.inf):
        xb = x.copy()
        xb[1, 2] = bad
        _both_raise(ValueError, xb, w_q)
        _both_raise(ValueError, xb, w_q, act_dtype="uint8")
    xb[1, 2] = np.nan
    _both_raise(ValueError, xb, w_q, act_scale=0.1)
