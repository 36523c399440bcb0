"""Hardening: many Python threads against a switching ISA and thread count, fork() after the
pool has run, memory that stays flat over 10**5 calls, objects that free their memory, arrays
past 2**31 elements (opt-in: --run-slow), allocation failures that surface as MemoryError, and
a forced ISA this CPU lacks."""

import gc
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import warnings
import weakref

import numpy as np
import pytest
from conftest import ISAS, assert_qparams_same, assert_same, bits

import lowbit as lb
import lowbit.reference as lbr
from lowbit import _core

LINUX = sys.platform.startswith("linux")
N = 200_003  # enough elements for the pool to split a call into several tasks
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")
# RSS cannot show leaks under AddressSanitizer: it keeps freed memory in quarantine.
RSS_OK = pytest.mark.skipif(not LINUX or UNDER_ASAN,
                            reason="RSS from /proc/self/statm (Linux), not under ASan")


def _inputs():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(N) * 40).astype(np.float32)
    x[rng.integers(N, size=20)] = np.inf
    x2 = np.nan_to_num(x[: 400 * 500].reshape(400, 500), posinf=9.0).astype(np.float32)
    g = rng.standard_normal(N).astype(np.float32)
    q8 = rng.integers(-128, 127, N, endpoint=True).astype(np.int8)
    q4 = rng.integers(-8, 7, (501, 400), endpoint=True).astype(np.int8)
    p = rng.integers(0, 255, (N + 1) // 2, endpoint=True).astype(np.uint8)
    a = rng.integers(0, 255, (37, 300), endpoint=True).astype(np.uint8)
    b = rng.integers(-128, 127, (300, 70), endpoint=True).astype(np.int8)
    b4 = lb.pack_int4(rng.integers(-8, 7, (300, 70), endpoint=True).astype(np.int8), axis=0)
    w = lb.QTensor.quantize(rng.standard_normal((48, 300)).astype(np.float32), "int4", axis=1,
                            group_size=32)
    xs = (rng.standard_normal((9, 300)) * 3).astype(np.float32)
    s_grp = rng.uniform(0.05, 0.5, (400, 16)).astype(np.float32)
    return dict(x=x, x2=x2, g=g, q8=q8, q4=q4, p=p, a=a, b=b, b4=b4, w=w, xs=xs, s_grp=s_grp)


def _calls(d):
    """name -> call(module): one case of every kernel family, all on the shared inputs."""
    return {
        "quantize": lambda m: m.quantize(d["x"], 0.3, -5),
        "quantize-packed": lambda m: m.quantize(d["x"], 2.5, 8, dtype="uint4", packed=True),
        "quantize-group": lambda m: m.quantize(d["x2"], d["s_grp"], dtype="int4", axis=1,
                                               group_size=32),
        "dequantize": lambda m: m.dequantize(d["q8"], 0.01, 3),
        "dequantize-packed": lambda m: m.dequantize(d["p"], 0.2, -1, packed="int4", n=N),
        "fake_quantize": lambda m: m.fake_quantize(d["x"], 0.3, 7),
        "fake_quantize_grad": lambda m: m.fake_quantize_grad(d["x"], d["g"], 0.5, dtype="int4"),
        "calibrate": lambda m: m.calibrate(d["x2"], "uint8", symmetric=False, axis=0).scale,
        "pack_int4": lambda m: m.pack_int4(d["q4"], axis=0),
        "unpack_int4": lambda m: m.unpack_int4(d["p"], signed=False),
        "matmul_int": lambda m: m.matmul_int(d["a"], d["b"], 3, 0),
        "matmul_int-m1": lambda m: m.matmul_int(d["a"][0], d["b"]),
        "matmul_int4": lambda m: m.matmul_int4(d["a"], d["b4"], a_zero_point=1),
        "linear": lambda m: m.linear(d["xs"], d["w"], act_dtype="int8"),
    }


@pytest.fixture(scope="module")
def jobs():
    d = _inputs()
    return {name: (call, call(lbr)) for name, call in _calls(d).items()}


def _join_all(threads, timeout):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]


# ----------------------------------------------------------------------------------------------
# Threads


def test_eight_threads_while_switching_isa_and_threads(jobs):
    """8 Python threads call every kernel on shared inputs while a ninth keeps switching the ISA
    path and the pool size: every result exact, nothing hangs (threads are daemons, so a
    deadlock fails this test instead of hanging the run)."""
    names = list(jobs)
    errors, calls = [], [0]
    stop = threading.Event()
    switches = [0]

    def worker(k):
        try:
            for rnd in range(2):
                for name in names[k % len(names):] + names[:k % len(names)]:
                    call, want = jobs[name]
                    got = call(lb)
                    calls[0] += 1
                    if got.dtype != want.dtype or got.shape != want.shape or \
                            not np.array_equal(bits(got), bits(want)):
                        errors.append(f"worker {k} round {rnd}: {name} differs")
        except Exception as e:  # noqa: BLE001 - report anything a worker hit
            errors.append(f"worker {k}: {e!r}\n{traceback.format_exc()}")

    def switcher():
        for name, n in itertools.cycle(itertools.product(ISAS + ("auto",), (1, 2, 3, 4, 0))):
            if stop.is_set():
                return
            lb.set_isa(name)
            lb.set_num_threads(n)
            switches[0] += 1
            time.sleep(0.0002)

    workers = [threading.Thread(target=worker, args=(k,), name=f"worker-{k}", daemon=True)
               for k in range(8)]
    sw = threading.Thread(target=switcher, name="switcher", daemon=True)
    sw.start()
    for t in workers:
        t.start()
    hung = _join_all(workers, timeout=240)
    stop.set()
    hung += _join_all([sw], timeout=30)
    assert not hung, f"deadlock: {hung} still running"
    assert not errors, "\n".join(errors)
    assert calls[0] == 8 * 2 * len(names)
    assert switches[0] > 20, "the switcher barely ran"


# ----------------------------------------------------------------------------------------------
# fork()


def _fork_run(child, timeout=120):
    """Run ``child()`` in a forked copy of this process (no exec); it must return True. The
    parent waits at most ``timeout`` seconds, then kills the child and fails."""
    with warnings.catch_warnings():
        # Python >= 3.12 warns that fork() in a multi-threaded process may deadlock: that is
        # exactly what is tested here.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            code = 0 if child() else 3
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            code = 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child hung for {timeout} s (deadlock after fork)")
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        pytest.fail(f"the forked child died of signal {os.WTERMSIG(status)}")
    assert os.WEXITSTATUS(status) == 0, f"the forked child exited {os.WEXITSTATUS(status)}"


def _child_work(jobs, names):
    def child():
        lb.set_num_threads(2)  # a pool of two: workers must be started afresh in the child
        for name in names:
            call, want = jobs[name]
            if not np.array_equal(bits(call(lb)), bits(want)):
                print(f"forked child: {name} differs", file=sys.stderr)
                return False
        return True
    return child


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_after_the_pool_ran(jobs):
    lb.set_num_threads(2)
    for name in ("quantize", "matmul_int", "linear"):  # the parent's pool is up and has worked
        call, want = jobs[name]
        assert_same(call(lb), want)
    _fork_run(_child_work(jobs, ["quantize", "dequantize", "fake_quantize", "matmul_int",
                                 "matmul_int4", "linear", "calibrate"]))
    call, want = jobs["quantize"]  # and the parent's pool still works
    assert_same(call(lb), want)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_other_threads_run_kernels(jobs):
    """fork() while two other Python threads are inside multi-threaded kernels: the child gets
    none of those threads (nor the pool's workers) and must still run kernels on a pool of its
    own."""
    lb.set_num_threads(2)
    stop = threading.Event()

    def busy(name):
        call, _ = jobs[name]
        while not stop.is_set():
            call(lb)

    threads = [threading.Thread(target=busy, args=(n,), daemon=True)
               for n in ("quantize", "matmul_int")]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            time.sleep(0.01)
            _fork_run(_child_work(jobs, ["fake_quantize", "matmul_int4", "quantize"]))
    finally:
        stop.set()
        assert not _join_all(threads, timeout=60)


# ----------------------------------------------------------------------------------------------
# Memory


def _rss():
    """Resident set size of this process in bytes (Linux /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _flat(fn, n, slack=256 << 10):
    """RSS after n calls of fn is within ``slack`` bytes of RSS after a warm-up."""
    for _ in range(max(1, n // 10)):
        fn()
    gc.collect()
    before = _rss()
    for _ in range(n):
        fn()
    gc.collect()
    grown = _rss() - before
    assert grown <= slack, f"RSS grew by {grown} bytes over {n} calls"


def _tiny():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(24).astype(np.float32)
    q = lb.quantize(x, 0.05)
    p = lb.pack_int4(np.clip(q, -8, 7))
    a, b = rng.integers(-5, 5, (2, 24)).astype(np.int8), rng.integers(-5, 5, (24, 5)).astype(np.int8)
    w = lb.QTensor.quantize(rng.standard_normal((5, 24)).astype(np.float32), "int4", axis=0)
    return dict(x=x, q=q, p=p, a=a, b=b, b4=lb.pack_int4(b.clip(-8, 7), axis=0),
                pm=lb.pack_matrix(b), w=w, g=np.ones(24, np.float32),
                xs=np.ones((2, 24), np.float32))


@RSS_OK
def test_rss_flat_over_1e5_quantize_calls():
    d = _tiny()
    _flat(lambda: lb.quantize(d["x"], 0.05, 3), 100_000)


# public kernel -> call. RSS measured flat to the page here, so with a 256 KiB slack a leak of
# some 50 bytes a call (128 for linear) shows up.
TINY_CALLS = {
    "quantize-packed": lambda d: lb.quantize(d["x"], 0.1, dtype="int4", packed=True),
    "dequantize": lambda d: lb.dequantize(d["q"], 0.1, 2),
    "dequantize-packed": lambda d: lb.dequantize(d["p"], 0.1, packed="int4"),
    "fake_quantize": lambda d: lb.fake_quantize(d["x"], 0.1),
    "fake_quantize_grad": lambda d: lb.fake_quantize_grad(d["x"], d["g"], 0.1),
    "calibrate": lambda d: lb.calibrate(d["x"], "uint8", symmetric=False),
    "pack_int4": lambda d: lb.pack_int4(d["q"] & 7),
    "unpack_int4": lambda d: lb.unpack_int4(d["p"]),
    "matmul_int": lambda d: lb.matmul_int(d["a"], d["b"], 1, 2),
    "matmul_int-packed": lambda d: lb.matmul_int(d["a"], d["pm"]),
    "matmul_int4": lambda d: lb.matmul_int4(d["a"], d["b4"]),
    "linear": lambda d: lb.linear(d["xs"], d["w"]),
    "linear-weight-only": lambda d: lb.linear(d["xs"], d["w"], act_dtype=None),
}


@RSS_OK
@pytest.mark.parametrize("name", list(TINY_CALLS))
def test_rss_flat_over_many_calls(name):
    d = _tiny()
    call = TINY_CALLS[name]
    _flat(lambda: call(d), 2_000 if name.startswith("linear") else 5_000)


@RSS_OK
def test_rss_flat_over_1e5_core_calls():
    """The compiled layer alone (no Python validation in between), 3 * 10**4 calls of each
    quantization binding: a leak of 10 bytes a call shows up."""
    x = np.linspace(-3, 3, 24, dtype=np.float32)
    s, z = np.full(1, 0.1, np.float32), np.zeros(1, np.int32)
    lay = (1, 24, 1, 24, 0, 0, 0)
    o8, of = np.empty(24, np.uint8), np.empty(24, np.float32)
    o4 = np.empty(12, np.uint8)
    mn, mx = np.empty(1, np.float32), np.empty(1, np.float32)

    def burst():
        _core.quantize(x, s, z, lay, -128, 127, False, o8)
        _core.quantize(x, s, z, lay, -8, 7, True, o4)
        _core.fake_quantize(x, s, z, lay, -128, 127, of)
        _core.fake_quantize_grad(x, x, s, z, lay, -128, 127, of)
        _core.dequantize(o8, 0, s, z, lay, of)
        _core.dequantize(o4, 2, s, z, lay, of)
        _core.minmax(x, lay, mn, mx)
        _core.pack_int4(o8 & 7, 1, 24, 1, 8, o4)
        _core.unpack_int4(o4, 1, 24, 1, True, o8)

    _flat(burst, 30_000)


def test_qtensor_and_packed_matrix_free_their_memory():
    """Big QTensors (with their cached packed weights) and PackedMatrix objects, made and
    dropped in a loop: each one's arrays die with it and RSS does not climb."""
    rng = np.random.default_rng(9)
    w = rng.standard_normal((2048, 1024)).astype(np.float32)  # 8 MiB
    b = rng.integers(-128, 127, (1024, 2048), endpoint=True).astype(np.int8)
    x = rng.standard_normal((3, 1024)).astype(np.float32)

    def once():
        qt = lb.QTensor.quantize(w, "int8", axis=0)
        lb.linear(x, qt)                    # fills the QTensor's packed-weight cache
        pm = lb.pack_matrix(b)
        lb.matmul_int(x[:, :1024].astype(np.int8), pm)
        refs = [weakref.ref(qt.data), weakref.ref(pm._data), weakref.ref(pm._colsum)]
        del qt, pm
        gc.collect()
        assert [r() for r in refs] == [None, None, None], "an array outlived its owner"

    once()
    gc.collect()
    rss = LINUX and not UNDER_ASAN
    before = _rss() if rss else 0
    for _ in range(15):  # each round allocates ~20 MiB
        once()
    gc.collect()
    if rss:
        grown = _rss() - before
        assert grown <= 24 << 20, f"RSS grew by {grown >> 20} MiB over 15 rounds"


def _run(code, timeout=300, **env):
    full = dict(os.environ)
    full.pop("LOWBIT_ISA", None)
    full.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=full)


@pytest.mark.skipif(not LINUX or UNDER_ASAN,
                    reason="RLIMIT_AS (Linux); ASan reserves terabytes of address space")
def test_allocation_failure_is_memory_error():
    """Under an address-space limit: an output NumPy cannot allocate, and the C++ side's
    packing buffer of a large matmul (std::bad_alloc), both raise MemoryError, and the process
    goes on working afterwards."""
    code = """
        import resource, numpy as np, lowbit as lb
        lb.set_num_threads(2)
        a = np.ones((200_000, 512), np.uint8)          # 100 MiB; packing A takes ~200 MiB
        b = np.ones((512, 1), np.int8)
        pm = lb.pack_matrix(b)
        x = np.ones(1 << 16, np.float32)
        lb.quantize(x, 0.5); lb.matmul_int(a[:64], pm)  # the pool's threads exist now
        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * resource.getpagesize()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), hard))
        failures = []
        try:
            lb.quantize(np.broadcast_to(np.float32(1), (1 << 28,)), 0.5)   # 1 GiB of float32
            failures.append("quantize")
        except MemoryError:
            pass
        try:
            lb.matmul_int(a, pm)
            failures.append("matmul_int")
        except MemoryError:
            pass
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        assert (lb.quantize(x, 0.5) == 2).all()
        assert (lb.matmul_int(a[:100], pm) == 512).all()
        print("ok" if not failures else "no MemoryError: " + ", ".join(failures))
    """
    r = _run(code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "ok", r.stdout + r.stderr[-3000:]


# ----------------------------------------------------------------------------------------------
# Arrays past 2**31 elements (opt-in: several GiB and a minute or two)


def _mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) << 10
    except OSError:
        pass
    return 0


BIG = (3 << 30) + 37  # 3 GiB of int8, past 2**31 elements, with an odd tail


@pytest.mark.slow
def test_pack_unpack_past_2_31_elements():
    if _mem_available() < 9 << 30:
        pytest.skip("needs ~9 GiB of free memory")
    q = np.zeros(BIG, np.int8)  # untouched pages read as zeros without taking memory
    pos = np.array([0, 1, 2**31 - 2, 2**31 - 1, 2**31, 2**31 + 1, 3 << 30, BIG - 2, BIG - 1])
    vals = np.array([1, -2, 3, -4, 5, -6, 7, -8, 6], np.int8)
    q[pos] = vals
    lb.set_num_threads(2)
    p = lb.pack_int4(q)
    assert p.shape == ((BIG + 1) // 2,)
    for i, v in zip(pos, vals):
        nib = (int(p[i // 2]) >> (4 * (i % 2))) & 15
        assert nib == int(v) & 15, f"element {i}"
    assert int(p[-1]) >> 4 == 0  # the odd length's pad nibble
    assert int(np.count_nonzero(p)) == len({int(i) // 2 for i in pos})
    del q
    u = lb.unpack_int4(p, n=BIG)
    assert u.shape == (BIG,)
    assert_same(u[pos], vals)
    assert int(np.count_nonzero(u)) == len(pos)


@pytest.mark.slow
def test_quantize_past_2_31_elements():
    n = (1 << 31) + 41
    if _mem_available() < 8 << 30:
        pytest.skip("needs ~8 GiB of free memory")
    x = np.zeros(n, np.float32)  # 8 GiB of virtual zero pages; only the written ones count
    pos = np.array([0, 2**31 - 1, 2**31, 2**31 + 1, n - 1])
    x[pos] = [1.0, -2.5, 3.5, np.inf, -1e9]
    lb.set_num_threads(2)
    q = lb.quantize(x, 0.5, 1)
    assert q.shape == (n,)
    assert q[pos].tolist() == [3, -4, 8, 127, -128]
    assert int(np.count_nonzero(q != 1)) == len(pos)
    del q
    p = lb.quantize(x, 0.5, 1, dtype="int4", packed=True)
    assert p.shape == ((n + 1) // 2,)
    got = [(int(p[i // 2]) >> (4 * (i % 2))) & 15 for i in pos]
    assert got == [v & 15 for v in (3, -4, 7, 7, -8)]
    del p
    x[pos[3]] = 0.0  # calibration needs finite values
    qp = lb.calibrate(x, "int8")
    assert qp.scale[0] == np.float32(1e9) / np.float32(127)


# ----------------------------------------------------------------------------------------------
# Portability


@pytest.mark.parametrize("name", [n for n in ("avx2", "avx512", "avx512_vnni", "neon")
                                  if n not in ISAS])
def test_lowbit_isa_this_cpu_lacks_warns_and_falls_back(name, tmp_path):
    r = _run("import lowbit; print(lowbit.cpu_info()['isa'])", timeout=120, LOWBIT_ISA=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ISAS[-1]  # auto: the best path this machine has
    assert "RuntimeWarning" in r.stderr and f"LOWBIT_ISA='{name}'" in r.stderr, r.stderr
    # a known path says why: not built (another architecture's, or no compiler support) or
    # not on this CPU
    assert ("not supported by this CPU" in r.stderr or "not compiled into this build" in r.stderr
            ), r.stderr
    for choice in ISAS:  # the message lists what this machine can run
        assert f"'{choice}'" in r.stderr, r.stderr


@pytest.mark.parametrize("value", ["two", "1.5", ""])
def test_lowbit_num_threads_not_an_integer_warns(value):
    r = _run("import lowbit; print(lowbit.get_num_threads())", timeout=120,
             LOWBIT_NUM_THREADS=value)
    assert r.returncode == 0, r.stderr
    default = _run("import lowbit; print(lowbit.get_num_threads())", timeout=120)
    assert r.stdout == default.stdout
    if value == "":  # unset in effect: the default, silently
        assert "LOWBIT_NUM_THREADS" not in r.stderr
        return
    assert "RuntimeWarning" in r.stderr and "LOWBIT_NUM_THREADS" in r.stderr, r.stderr


# ----------------------------------------------------------------------------------------------
# Alignment (found by the sanitizer job: UBSan "store to misaligned address ... for type
# 'float'" when a caller's out= was a float32 view at an odd byte offset)


def _misaligned(a):
    raw = np.empty(a.nbytes + 1, np.uint8)
    out = raw[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


@pytest.mark.parametrize("name", ["quantize", "dequantize", "fake_quantize", "fake_quantize_grad",
                                  "minmax"])
def test_kernels_only_see_aligned_arrays(name, monkeypatch):
    """NumPy allows misaligned arrays; the bindings take float* / int32_t*, so every array must
    reach them aligned (copied when needed), and results must still be right."""
    seen = []
    real = getattr(_core, name)

    def spy(*args):
        seen.extend(a for a in args if isinstance(a, np.ndarray))
        return real(*args)

    monkeypatch.setattr(_core, name, spy)
    x = _misaligned(np.linspace(-3, 3, 37, dtype=np.float32))
    s = _misaligned(np.full(37, 0.25, np.float32))
    z = _misaligned(np.arange(37, dtype=np.int32) % 5)
    q = lbr.quantize(x, s, z, axis=0)
    if name == "quantize":
        assert_same(lb.quantize(x, s, z, axis=0), q)
    elif name == "dequantize":
        out = _misaligned(np.zeros(37, np.float32))
        lb.dequantize(q, s, z, axis=0, out=out)
        assert_same(out, lbr.dequantize(q, s, z, axis=0))
    elif name == "fake_quantize":
        assert_same(lb.fake_quantize(x, s, z, axis=0), lbr.fake_quantize(x, s, z, axis=0))
    elif name == "fake_quantize_grad":
        assert_same(lb.fake_quantize_grad(x, x, s, z, axis=0),
                    lbr.fake_quantize_grad(x, x, s, z, axis=0))
    else:
        assert_qparams_same(lb.calibrate(x, axis=0), lbr.calibrate(x, axis=0))
    assert seen, f"_core.{name} was not called"
    assert all(a.flags.aligned for a in seen), [a.dtype for a in seen if not a.flags.aligned]
