"""Shared helpers for the lowbit test suite.

Every compiled kernel must agree bit for bit with ``lowbit.reference`` on every ISA path, so the
helpers here are about running a block on one path (``forced_isa``), building inputs that reach
the corners (ties, infinities, subnormals, odd strides) and comparing results as bits.

Test modules import the plain helpers with ``from conftest import ...``; ``isa`` and ``rng`` are
fixtures.
"""

import contextlib
import os
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import lowbit as lb
import lowbit.reference as lbr

# Hypothesis: the "ci" profile (the default) keeps the suite within a few minutes on 2 cores for
# every ISA; HYPOTHESIS_PROFILE=dev searches harder.
settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ISAS = tuple(lb.available_isas())
DEFAULT_THREADS = lb.get_num_threads()

# name: (qmin, qmax, unpacked storage dtype)
QINFO = {
    "int8": (-128, 127, np.int8),
    "uint8": (0, 255, np.uint8),
    "int4": (-8, 7, np.int8),
    "uint4": (0, 15, np.uint8),
}
QDTYPES = tuple(QINFO)
Q4DTYPES = ("int4", "uint4")
FLOAT_SENTINEL_BITS = 0xA5A5A5A5

# Lengths around every vector width (4, 8, 16, 32, 64 lanes) plus a length large enough to be
# split across threads, with a tail that fills no vector.
LENGTHS = tuple(range(131))
BIG = (1 << 20) + 3


@contextlib.contextmanager
def forced_isa(name):
    """Run the block on ISA path ``name`` and restore ``"auto"`` afterwards.

    ``None`` leaves the current choice alone (handy for parametrizations that include a
    NumPy-reference case).
    """
    if name is None:
        yield
        return
    lb.set_isa(name)
    try:
        yield
    finally:
        lb.set_isa("auto")


@contextlib.contextmanager
def num_threads(n):
    """Run the block with ``lb.set_num_threads(n)`` and restore the previous count."""
    before = lb.get_num_threads()
    lb.set_num_threads(n)
    try:
        yield
    finally:
        lb.set_num_threads(before)


@pytest.fixture(params=ISAS)
def isa(request):
    """Each test using this fixture runs once per available ISA, with that ISA forced."""
    with forced_isa(request.param):
        assert lb.cpu_info()["isa"] == request.param
        yield request.param


@pytest.fixture
def rng(request):
    """A generator seeded from the test id: reruns see the same data."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def pytest_configure(config):
    # When a hypothesis test fails, its plugin imports libcst to print a patch; some libcst /
    # mypy_extensions pairs warn on import, which filterwarnings=error would turn into an
    # INTERNALERROR that hides the real failure.
    config.addinivalue_line(
        "filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")


def pytest_runtest_teardown(item):
    # A failing test must not leave a forced ISA or thread count behind for the next one.
    # (A hook, not an autouse fixture, so hypothesis tests see no function-scoped fixture.)
    lb.set_isa("auto")
    lb.set_num_threads(DEFAULT_THREADS)


def pytest_report_header(config):
    info = lb.cpu_info()
    return [f"lowbit: isa={info['isa']} available={info['available']} threads={info['threads']}"]


# ----------------------------------------------------------------------------------------------
# Comparing


def bits(a):
    """The array's values as unsigned integers of the same width (floats) or as they are."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return a.view(np.dtype(f"u{a.dtype.itemsize}"))
    return a


def _hex(v):
    v = np.asarray(v)
    if v.dtype.kind == "f":
        return f"{v.item()!r} (0x{int(bits(v)):0{2 * v.dtype.itemsize}x})"
    return repr(v.item())


def assert_same(got, want, msg="", **inputs):
    """Assert equal dtype, shape and bits; on failure name the first differing index.

    ``inputs`` are arrays of the same shape whose values at that index are printed too (hex for
    floats), e.g. ``assert_same(q, ref, x=x)``.
    """
    got = np.asarray(got)
    want = np.asarray(want)
    head = f"{msg}: " if msg else ""
    assert got.dtype == want.dtype, f"{head}dtype {got.dtype} != expected {want.dtype}"
    assert got.shape == want.shape, f"{head}shape {got.shape} != expected {want.shape}"
    gb, wb = bits(got), bits(want)
    if np.array_equal(gb, wb):
        return
    bad = np.argwhere(gb != wb)
    idx = tuple(int(i) for i in bad[0])
    lines = [
        f"{head}{len(bad)} of {got.size} elements differ; first at index {idx}:",
        f"  got      {_hex(got[idx])}",
        f"  expected {_hex(want[idx])}",
    ]
    for name, arr in inputs.items():
        arr = np.asarray(arr)
        if arr.shape == got.shape:
            lines.append(f"  {name:8} {_hex(arr[idx])}")
    pytest.fail("\n".join(lines))


def assert_qparams_same(got, want, msg=""):
    """Two QParams agree field by field (scale compared as bits)."""
    assert got.dtype == want.dtype, msg
    assert got.axis == want.axis, msg
    assert got.group_size == want.group_size, msg
    assert_same(got.scale, want.scale, f"{msg} scale")
    assert_same(got.zero_point, want.zero_point, f"{msg} zero_point")


# ----------------------------------------------------------------------------------------------
# Building inputs


def sentinel(shape, dtype):
    """A C-contiguous array whose every byte is 0xA5: a value no kernel should leave behind."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    return np.frombuffer(b"\xa5" * (n * dtype.itemsize), dtype).reshape(shape).copy()


def expand(p, shape, axis=None, group_size=None):
    """Broadcast per-tensor / per-axis / per-group parameters to the full shape of x."""
    p = np.asarray(p)
    if axis is None:
        return np.broadcast_to(p.reshape(()), shape)
    axis = axis % len(shape)
    if group_size is None:
        view = [1] * len(shape)
        view[axis] = shape[axis]
        return np.broadcast_to(p.reshape(view), shape)
    full = np.repeat(p, group_size, axis=axis)
    return np.take(full, np.arange(shape[axis]), axis=axis)


def param_shape(shape, axis=None, group_size=None):
    """The shape that scale and zero_point must have for this granularity."""
    if axis is None:
        return (1,)
    axis = axis % len(shape)
    if group_size is None:
        return (shape[axis],)
    s = list(shape)
    s[axis] = -(-shape[axis] // group_size)
    return tuple(s)


def rand_scale(rng, shape):
    """Positive float32 scales. Most are m * 2**e with a small m, so (k + 0.5) * scale is an
    exact tie; the rest are arbitrary."""
    m = rng.choice(np.array([1.0, 3.0, 5.0, 0.75, 1.25, 7.0]), size=shape)
    e = rng.integers(-12, 3, size=shape)
    tied = (m * np.exp2(e)).astype(np.float32)
    free = rng.uniform(0.003, 3.0, size=shape).astype(np.float32)
    return np.where(rng.random(shape) < 0.7, tied, free).astype(np.float32)


def rand_zp(rng, qdtype, shape, zp_dtype=np.int32, margin=0):
    """Zero points inside the quantized range (stored in ``zp_dtype``)."""
    qmin, qmax, _ = QINFO[qdtype]
    info = np.iinfo(zp_dtype)
    lo, hi = max(qmin + margin, info.min), min(qmax - margin, info.max)
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(zp_dtype)


SPECIALS = np.array(
    [0.0, -0.0, np.inf, -np.inf, 3e9, -3e9, 1e-45, -1e-45, 1e-40, -2e-39, 1.1754942e-38,
     3.4028235e38, -3.4028235e38, 0.5, -0.5, 1.5, -2.5],
    dtype=np.float32,
)


def rich_x(rng, shape, qdtype, scale_full, zp_full=0, special_rate=0.05, tie_rate=0.2):
    """float32 data for quantize: spread over (and past) the representable range, with exact
    .5 ties for the given scale, and a sprinkling of infinities, huge, tiny, subnormal and signed
    zero values."""
    qmin, qmax, _ = QINFO[qdtype]
    scale_full = np.broadcast_to(np.asarray(scale_full, np.float32), shape)
    zp_full = np.broadcast_to(np.asarray(zp_full), shape)
    k = rng.uniform(qmin - 4, qmax + 4, size=shape)
    x = (k - zp_full) * scale_full.astype(np.float64)
    ties = (np.floor(k) + 0.5 - zp_full).astype(np.float32) * scale_full
    x = np.where(rng.random(shape) < tie_rate, ties, x.astype(np.float32)).astype(np.float32)
    pick = rng.random(shape) < special_rate
    x[pick] = rng.choice(SPECIALS, size=int(pick.sum()))
    return x


def layouts(a):
    """Non-contiguous / reversed / Fortran-order views holding the same values as
    ``a`` (C-contiguous, ndim >= 1): yields (name, view)."""
    yield "C", a
    yield "F", np.asfortranarray(a)
    big = np.repeat(a, 2, axis=-1)
    yield "stride2", big[..., ::2]
    yield "negstride", np.flip(a, axis=-1).copy()[..., ::-1]
    if a.ndim >= 2:
        yield "swapped", np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)
        yield "negstride0", np.flip(a, axis=0).copy()[::-1]
    offset = np.empty(a.size + 1, a.dtype)[1:].reshape(a.shape)  # misaligned start
    offset[...] = a
    yield "offset1", offset


def check_vs_ref(name, *args, **kwargs):
    """Call ``lb.<name>`` and ``lbr.<name>`` alike: both must raise the same exception type,
    or both return bit-identical arrays. Returns the lowbit result (or None if both raised)."""
    ref_exc = got_exc = None
    try:
        want = getattr(lbr, name)(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - any reference error must be matched
        ref_exc = e
    try:
        got = getattr(lb, name)(*args, **kwargs)
    except Exception as e:  # noqa: BLE001
        got_exc = e
    if ref_exc is not None or got_exc is not None:
        assert type(got_exc) is type(ref_exc), (
            f"lb.{name} raised {got_exc!r}, lowbit.reference raised {ref_exc!r}"
        )
        return None
    assert_same(got, want, f"lb.{name}")
    return got


# ----------------------------------------------------------------------------------------------
# Hardening (issue 5): the long differential-fuzz profile and opt-in slow tests.

# `python -m pytest tests/test_fuzz.py --hypothesis-profile=fuzz` searches for as long as
# LOWBIT_FUZZ_EXAMPLES examples a test (default 100000) allow; the "ci" profile above stays the
# default, so the regular run draws a few dozen examples a test.
settings.register_profile(
    "fuzz",
    parent=settings.get_profile("ci"),
    max_examples=int(os.environ.get("LOWBIT_FUZZ_EXAMPLES", "100000")),
    deadline=None,
)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (arrays past 2**31 elements: minutes and "
                          "several GiB of memory)")


def pytest_collection_modifyitems(config, items):
    # Tests marked slow are skipped unless --run-slow is given, so README's plain test command
    # stays fast (-m "not slow" would also work, but nobody should need to remember it).
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
