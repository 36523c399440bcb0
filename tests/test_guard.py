"""Guard-page tests: every kernel, at every length 1..256 and on every ISA path, with each of its
inputs and outputs placed flush against an inaccessible page.

A buffer either ends exactly where a ``PROT_NONE`` page begins ("after") or begins exactly where
one ends ("before"), so a single byte read or written past either end of any buffer kills the
test process with SIGSEGV (a crash is a failure like any other). NumPy's own allocations have
slack behind them, which is why ordinary tests cannot see such bugs; the sanitizer job
(``.ci/sanitize``) catches them there as well, with redzones.

The quantization family is driven through ``lowbit._core`` directly, with the layouts the public
API computes, so that the outputs (which the public functions allocate themselves) are guarded
too. The integer GEMM runs through the public API with guarded operands, zero points and
pre-packed weights, and through ``_core.gemm_s32`` for a guarded output.
"""

import ctypes
import mmap
import os
import sys

import numpy as np
import pytest
from conftest import ISAS, QINFO, assert_same, expand, forced_isa, rand_scale, rand_zp, rich_x

import lowbit as lb
import lowbit.reference as lbr
from lowbit import _calib, _checks, _core

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="guard pages via mmap/mprotect (Linux)")

LENGTHS = range(1, 257)
SIDES = ("after", "before")
PAGE = mmap.PAGESIZE
PROT_NONE = 0


class Arena:
    """One anonymous mapping with a PROT_NONE page after (or before) ``cap`` usable bytes.

    ``take(shape, dtype)`` returns an array that ends at the guard page ("after") or starts right
    behind it ("before"). Every call reuses the same memory: one arena per buffer of a call.
    """

    def __init__(self, side, cap=64 * PAGE):
        self.side, self.cap = side, cap
        self.map = mmap.mmap(-1, cap + PAGE)
        anchor = ctypes.c_char.from_buffer(self.map)
        base = ctypes.addressof(anchor)
        del anchor  # the export would keep the map from being closed
        self.guard = cap if side == "after" else 0
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        if libc.mprotect(ctypes.c_void_p(base + self.guard), PAGE, PROT_NONE) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed")
        self.bytes = np.frombuffer(self.map, np.uint8)  # never index the guard page

    def take(self, shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        assert nbytes <= self.cap
        start = self.cap - nbytes if self.side == "after" else PAGE
        return self.bytes[start:start + nbytes].view(dtype).reshape(shape)

    def put(self, arr):
        """A guarded copy of ``arr`` (C order)."""
        arr = np.asarray(arr)
        v = self.take(arr.shape, arr.dtype)
        v[...] = arr
        return v

    def blank(self, shape, dtype):
        """A guarded array of 0xA5 bytes (a sentinel no kernel result should leave behind)."""
        v = self.take(shape, dtype)
        v.reshape(-1).view(np.uint8)[...] = 0xA5
        return v


@pytest.fixture(scope="module", params=SIDES)
def g(request):
    """Eight arenas, all guarded on the same side."""
    return [Arena(request.param) for _ in range(8)]


@pytest.fixture(params=ISAS)
def on_isa(request):
    with forced_isa(request.param):
        yield request.param


def test_guard_page_is_really_inaccessible(tmp_path):
    """The helper itself: touching the byte past an "after" buffer must kill the process."""
    import subprocess
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from test_guard import Arena\n"
        "a = Arena('after'); v = a.take((4,), 'u1'); v[...] = 1\n"
        "print('ok', flush=True)\n"
        "a.bytes[a.cap] = 1\n" % str(__import__("pathlib").Path(__file__).parent)
    )
    env = dict(os.environ)
    # Under the sanitizer job, let the SIGSEGV kill the child quietly: an ASan report of this
    # intended crash in the job's log directory would fail the job.
    asan = [o for o in env.get("ASAN_OPTIONS", "").split(":") if o and "log_path" not in o]
    env["ASAN_OPTIONS"] = ":".join(asan + ["handle_segv=0"])
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.stdout.strip() == "ok"
    assert r.returncode != 0


# ----------------------------------------------------------------------------------------------
# Quantization family

# name: (shape for length n, axis, group_size)
GRANS = {
    "tensor": (lambda n: (n,), None, None),
    "axis": (lambda n: (n,), 0, None),             # a scale per element (ss == 1)
    "group3": (lambda n: (n,), 0, 3),              # segments of 3 (ss == 0)
    "axis0-2d": (lambda n: (3, n), 0, None),       # rows of n sharing a scale (inner == n)
    "group0-2d": (lambda n: (5, n), 0, 2),         # inner == n, a scale per element (ss == 1)
}
PACKED_GRANS = {
    "tensor": (lambda n: (n,), None, None),
    "axis": (lambda n: (n,), -1, None),
    "group4": (lambda n: (n,), -1, 4),
    "rows": (lambda n: (3, n), None, None),        # odd rows: a pad nibble per row
}


def _full(rng, qdtype, shape_of, axis, group):
    """Data for the longest length (256). Every shorter case is the prefix along the last axis:
    its scales are then a prefix too, and so is its element-wise reference result."""
    shape = shape_of(LENGTHS[-1])
    gran = _checks.granularity(shape, axis, group)
    s = rand_scale(rng, gran.scale_shape)
    z = rand_zp(rng, qdtype, gran.scale_shape)
    x = rich_x(rng, shape, qdtype, expand(s, shape, axis, group), expand(z, shape, axis, group))
    return x, s, z


def _prefix(n, shape_of, axis, group, data=(), params=()):
    """Shape and granularity of length n, data arrays cut to n along the last axis and scale /
    zero-point arrays cut to that granularity's scale shape."""
    shape = shape_of(n)
    gran = _checks.granularity(shape, axis, group)
    cut = [a[..., :n] for a in data] + [p[..., :gran.scale_shape[-1]] for p in params]
    for p in cut[len(data):]:
        assert p.shape == gran.scale_shape or p.shape == (1,)
    return (shape, gran, *cut)


@pytest.mark.parametrize("qdtype", list(QINFO))
@pytest.mark.parametrize("gname", list(GRANS))
def test_quantize(g, on_isa, qdtype, gname, rng):
    qmin, qmax, storage = QINFO[qdtype]
    shape_of, axis, group = GRANS[gname]
    xf, sf, zf = _full(rng, qdtype, shape_of, axis, group)
    wantf = lbr.quantize(xf, sf, zf, dtype=qdtype, axis=axis, group_size=group)
    for n in LENGTHS:
        shape, gran, x, want, s, z = _prefix(n, shape_of, axis, group, (xf, wantf), (sf, zf))
        out = g[3].blank(shape, storage)
        nan = _core.quantize(g[0].put(x), g[1].put(s), g[2].put(z), gran.layout, qmin, qmax,
                             False, out.view(np.uint8))
        assert not nan
        assert_same(out, want, f"{on_isa} {qdtype} {gname} n={n}")


@pytest.mark.parametrize("qdtype", ["int4", "uint4"])
@pytest.mark.parametrize("gname", list(PACKED_GRANS))
def test_quantize_packed(g, on_isa, qdtype, gname, rng):
    qmin, qmax, _ = QINFO[qdtype]
    shape_of, axis, group = PACKED_GRANS[gname]
    xf, sf, zf = _full(rng, qdtype, shape_of, axis, group)
    wantf = lbr.quantize(xf, sf, zf, dtype=qdtype, axis=axis, group_size=group)  # unpacked
    for n in LENGTHS:
        shape, gran, x, want, s, z = _prefix(n, shape_of, axis, group, (xf, wantf), (sf, zf))
        layout = _checks.packed_layout(shape, gran)
        assert layout is not None
        out = g[3].blank(shape[:-1] + ((n + 1) // 2,), np.uint8)
        assert not _core.quantize(g[0].put(x), g[1].put(s), g[2].put(z), layout, qmin, qmax,
                                  True, out)
        assert_same(out, lbr.pack_int4(want), f"{on_isa} packed {qdtype} {gname} n={n}")


@pytest.mark.parametrize("kind", ["int8", "uint8"])
@pytest.mark.parametrize("gname", list(GRANS))
def test_dequantize(g, on_isa, kind, gname, rng):
    shape_of, axis, group = GRANS[gname]
    shape = shape_of(LENGTHS[-1])
    gran = _checks.granularity(shape, axis, group)
    sf = rand_scale(rng, gran.scale_shape)
    qf = rng.integers(0, 256, shape, dtype=np.uint8).view(np.dtype(kind))
    zf = rand_zp(rng, kind, gran.scale_shape)
    wantf = lbr.dequantize(qf, sf, zf, axis=axis, group_size=group)
    for n in LENGTHS:
        shape, gran, q, want, s, z = _prefix(n, shape_of, axis, group, (qf, wantf), (sf, zf))
        out = g[3].blank(shape, np.float32)
        _core.dequantize(g[0].put(q.view(np.uint8)), 0 if kind == "int8" else 1, g[1].put(s),
                         g[2].put(z), gran.layout, out)
        assert_same(out, want, f"{on_isa} {kind} {gname} n={n}")


@pytest.mark.parametrize("kind", ["int4", "uint4"])
@pytest.mark.parametrize("gname", list(PACKED_GRANS))
def test_dequantize_packed(g, on_isa, kind, gname, rng):
    shape_of, axis, group = PACKED_GRANS[gname]
    shape = shape_of(LENGTHS[-1])
    gran = _checks.granularity(shape, axis, group)
    sf = rand_scale(rng, gran.scale_shape)
    zf = rand_zp(rng, kind, gran.scale_shape)
    pf = rng.integers(0, 256, shape[:-1] + (shape[-1] // 2,), dtype=np.uint8)
    wantf = lbr.dequantize(pf, sf, zf, axis=axis, group_size=group, packed=kind)
    for n in LENGTHS:
        shape, gran, want, s, z = _prefix(n, shape_of, axis, group, (wantf,), (sf, zf))
        p = pf[..., :(n + 1) // 2].copy()
        if n % 2:
            p[..., -1] &= 15  # the pad nibble is zero, as pack_int4 leaves it
        out = g[3].blank(shape, np.float32)
        _core.dequantize(g[0].put(p), 2 if kind == "int4" else 3, g[1].put(s), g[2].put(z),
                         _checks.packed_layout(shape, gran), out)
        assert_same(out, want, f"{on_isa} packed {kind} {gname} n={n}")


@pytest.mark.parametrize("qdtype", ["int8", "uint4"])
@pytest.mark.parametrize("gname", list(GRANS))
def test_fake_quantize_and_grad(g, on_isa, qdtype, gname, rng):
    qmin, qmax, _ = QINFO[qdtype]
    shape_of, axis, group = GRANS[gname]
    xf, sf, zf = _full(rng, qdtype, shape_of, axis, group)
    gradf = rng.standard_normal(xf.shape).astype(np.float32)
    fakef = lbr.fake_quantize(xf, sf, zf, dtype=qdtype, axis=axis, group_size=group)
    stef = lbr.fake_quantize_grad(xf, gradf, sf, zf, dtype=qdtype, axis=axis, group_size=group)
    for n in LENGTHS:
        shape, gran, x, grad, fake, ste, s, z = _prefix(n, shape_of, axis, group,
                                                         (xf, gradf, fakef, stef), (sf, zf))
        gx, gs, gz = g[0].put(x), g[1].put(s), g[2].put(z)
        out = g[3].blank(shape, np.float32)
        assert not _core.fake_quantize(gx, gs, gz, gran.layout, qmin, qmax, out)
        assert_same(out, fake, f"{on_isa} fake {qdtype} {gname} n={n}")
        out = g[3].blank(shape, np.float32)
        assert not _core.fake_quantize_grad(gx, g[4].put(grad), gs, gz, gran.layout, qmin, qmax,
                                            out)
        assert_same(out, ste, f"{on_isa} grad {qdtype} {gname} n={n}")


@pytest.mark.parametrize("gname", list(GRANS))
def test_minmax_and_calibrate(g, on_isa, gname, rng):
    shape_of, axis, group = GRANS[gname]
    xf = (rng.standard_normal(shape_of(LENGTHS[-1])) * 10).astype(np.float32)
    for n in LENGTHS:
        shape, gran, x = _prefix(n, shape_of, axis, group, (xf,))
        gx = g[0].put(x)
        nslots = int(np.prod(gran.scale_shape))
        mn = g[1].put(np.full(nslots, np.inf, np.float32))
        mx = g[2].put(np.full(nslots, -np.inf, np.float32))
        assert not _core.minmax(gx, gran.layout, mn, mx)
        lo, hi = _calib.slot_range(x, gran, "minmax", 99.99, True)
        assert_same(mn.reshape(gran.scale_shape), lo, f"{on_isa} min {gname} n={n}")
        assert_same(mx.reshape(gran.scale_shape), hi, f"{on_isa} max {gname} n={n}")
        got = lb.calibrate(gx, "uint8", symmetric=False, axis=axis, group_size=group)
        assert_same(got.scale, lbr.qparams_from_range(lo, hi, _checks.DTYPES["uint8"], False)[0],
                    f"{on_isa} calibrate {gname} n={n}")


# pack / unpack: name -> (shape for length n, axis)
PACK_CASES = {
    "1d": (lambda n: (n,), -1),
    "rows": (lambda n: (2, n), -1),      # two rows of n along the last axis
    "vert": (lambda n: (3, n), 0),       # rows of n bytes paired along axis 0 (odd: last alone)
    "tall": (lambda n: (n, 3), 0),       # n along axis 0, 3 bytes a row
}


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("case", list(PACK_CASES))
def test_pack_unpack(g, on_isa, signed, case, rng):
    shape_of, axis = PACK_CASES[case]
    lo, hi = (-8, 7) if signed else (0, 15)
    for n in LENGTHS:
        shape = shape_of(n)
        q = rng.integers(lo, hi, shape, endpoint=True).astype(np.int8 if signed else np.uint8)
        gq = g[0].put(q)
        a = axis % len(shape)
        outer, L, inner = int(np.prod(shape[:a])), shape[a], int(np.prod(shape[a + 1:]))
        pshape = shape[:a] + ((L + 1) // 2,) + shape[a + 1:]
        out = g[1].blank(pshape, np.uint8)
        assert not _core.pack_int4(gq.view(np.uint8), outer, L, inner, 8 if signed else 0, out)
        want = lbr.pack_int4(q, axis=axis)
        assert_same(out, want, f"{on_isa} pack {case} n={n}")
        assert_same(lb.pack_int4(gq, axis=axis), want, f"{on_isa} lb.pack_int4 {case} n={n}")
        back = g[2].blank(shape, q.dtype)
        _core.unpack_int4(g[3].put(want), outer, L, inner, signed, back.view(np.uint8))
        assert_same(back, q, f"{on_isa} unpack {case} n={n}")
        got = lb.unpack_int4(g[3].put(want), signed=signed, axis=axis, n=L)
        assert_same(got, q, f"{on_isa} lb.unpack_int4 {case} n={n}")


# ----------------------------------------------------------------------------------------------
# Integer GEMM


def _gemm_case(g, rng, m, k, n, a_dtype, bits, signed_b, what):
    a = rng.integers(np.iinfo(a_dtype).min, np.iinfo(a_dtype).max, (m, k), endpoint=True)
    a = a.astype(a_dtype)
    blo, bhi = {(8, True): (-128, 127), (8, False): (0, 255), (4, True): (-8, 7),
                (4, False): (0, 15)}[bits, signed_b]
    b = rng.integers(blo, bhi, (k, n), endpoint=True).astype(np.int8 if signed_b else np.uint8)
    za = rng.integers(np.iinfo(a_dtype).min, np.iinfo(a_dtype).max, m, endpoint=True)
    zb = rng.integers(blo, bhi, n, endpoint=True)
    ga, gza, gzb = g[0].put(a), g[2].put(za.astype(np.int32)), g[3].put(zb.astype(np.int32))
    want = lbr.matmul_int(a, b, za, zb)
    # Packing reads the guarded b (matmul_int / matmul_int4 with a plain b pack it the same way).
    if bits == 8:
        pm = lb.pack_matrix(g[1].put(b))
    else:
        pm = lb.pack_matrix(g[1].put(lb.pack_int4(b, axis=0)), dtype="int4" if signed_b else
                            "uint4", k=k)
    # The product from pre-packed weights that sit against the guard page too.
    data, colsum = g[4].put(pm._data), g[5].put(pm._colsum)
    pmg = lb.PackedMatrix(data, colsum, pm.shape, pm.dtype, pm.layout)
    got = (lb.matmul_int(ga, pmg, gza, gzb) if bits == 8 else
           lb.matmul_int4(ga, pmg, signed=signed_b, a_zero_point=gza, b_zero_point=gzb))
    assert_same(got, want, f"{what} packed")
    # And a guarded output (the public functions allocate theirs).
    out = g[6].blank((m, n), np.int32)
    _core.gemm_s32(ga.view(np.uint8), a_dtype == np.int8, data, colsum, k, n, bits, signed_b,
                   pm.layout, gza, gzb, out)
    assert_same(out, want, f"{what} _core out")


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("m", [1, 9])  # the small-M streaming path, and the tiled path
def test_matmul(g, on_isa, bits, m, rng):
    for length in LENGTHS:
        # K runs over every length (N = 3); then N does (K = 5). a (int8 / uint8) and b (signed
        # or not) take turns, so each of the four pairings meets every length class.
        a_dtype = (np.int8, np.uint8)[length % 2]
        signed_b = (length // 2) % 2 == 0
        _gemm_case(g, rng, m, length, 3, a_dtype, bits, signed_b, f"{on_isa} m={m} k={length}")
        _gemm_case(g, rng, m, 5, length, a_dtype, bits, signed_b, f"{on_isa} m={m} n={length}")
