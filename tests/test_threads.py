"""Kernels called from several Python threads at once (they release the GIL) while another
thread keeps switching the ISA path and the thread count: every result must still equal the
reference bit for bit. Results must not depend on the number of threads either."""

import itertools
import threading
import time

import numpy as np
import pytest
from conftest import ISAS, assert_same, bits, forced_isa, num_threads

import lowbit as lb
import lowbit.reference as lbr

N = (1 << 20) + 3  # big enough to be split across threads, with a ragged tail


def _make_jobs():
    """name -> (call(module), expected result): one large case per kernel family."""
    rng = np.random.default_rng(20240607)
    x = (rng.standard_normal(N) * 40).astype(np.float32)
    x[rng.integers(N, size=50)] = np.inf
    x[rng.integers(N, size=50)] = -np.inf
    x[: 1 << 12] = (np.arange(1 << 12) - 2048 + 0.5).astype(np.float32) * np.float32(0.25)
    g = rng.standard_normal(N).astype(np.float32)
    x2 = x[: 1024 * 1021].reshape(1024, 1021)
    x2 = np.where(np.isinf(x2), np.float32(7.0), x2).astype(np.float32)
    s_ax0 = rng.uniform(0.05, 0.5, 1024).astype(np.float32)
    z_ax0 = rng.integers(0, 255, 1024, endpoint=True).astype(np.uint8)
    s_grp = rng.uniform(0.05, 0.5, (1024, 32)).astype(np.float32)  # ceil(1021 / 32) = 32
    q8 = rng.integers(-128, 127, N, endpoint=True).astype(np.int8)
    u8 = rng.integers(0, 255, N, endpoint=True).astype(np.uint8)
    q4 = rng.integers(-8, 7, (1021, 1024), endpoint=True).astype(np.int8)
    packed = rng.integers(0, 255, (N + 1) // 2, endpoint=True).astype(np.uint8)
    nan_x = x.copy()
    nan_x[N - 2] = np.nan

    calls = {
        "quantize-int8": lambda m: m.quantize(x, 0.3, -5),
        "quantize-uint4-packed": lambda m: m.quantize(x, 2.5, 8, dtype="uint4", packed=True),
        "quantize-uint8-axis0": lambda m: m.quantize(x2, s_ax0, z_ax0, dtype="uint8", axis=0),
        "quantize-int4-group": lambda m: m.quantize(x2, s_grp, dtype="int4", axis=1,
                                                    group_size=32),
        "dequantize-int8": lambda m: m.dequantize(q8, 0.01, 3),
        "dequantize-uint8-axis0": lambda m: m.dequantize(u8[: 1024 * 1021].reshape(1024, 1021),
                                                         s_ax0, z_ax0, axis=0),
        "dequantize-packed-int4": lambda m: m.dequantize(packed, 0.2, -1, packed="int4", n=N),
        "fake_quantize": lambda m: m.fake_quantize(x, 0.3, 7, dtype="int8"),
        "fake_quantize_grad": lambda m: m.fake_quantize_grad(x, g, 0.5, dtype="int4"),
        "pack_int4-axis0": lambda m: m.pack_int4(q4, axis=0),
        "unpack_int4": lambda m: m.unpack_int4(packed, signed=False, n=N),
        "calibrate-axis1": lambda m: m.calibrate(x2, "uint8", symmetric=False, axis=1).scale,
    }
    jobs = {name: (call, call(lbr)) for name, call in calls.items()}

    def nan_call(m):
        try:
            m.quantize(nan_x, 0.3)
        except ValueError:
            return np.array(1)
        return np.array(0)

    jobs["quantize-nan-raises"] = (nan_call, np.array(1))
    return jobs


@pytest.fixture(scope="module")
def jobs():
    return _make_jobs()


def test_concurrent_calls_while_switching_isa_and_threads(jobs):
    names = list(jobs)
    errors = []
    stop = threading.Event()
    switches = [0]

    def worker(k):
        order = names[k:] + names[:k]
        try:
            for _ in range(2):
                for name in order:
                    call, want = jobs[name]
                    got = call(lb)
                    if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(
                            bits(got), bits(want)):
                        errors.append(f"worker {k}: {name} differs from the reference")
        except Exception as e:  # noqa: BLE001 - report anything a worker hit
            errors.append(f"worker {k}: {e!r}")

    def switcher():
        choices = itertools.cycle(itertools.product(ISAS + ("auto",), (1, 2)))
        while not stop.is_set():
            name, n = next(choices)
            lb.set_isa(name)
            lb.set_num_threads(n)
            switches[0] += 1
            time.sleep(0.0005)

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    sw = threading.Thread(target=switcher)
    sw.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=300)
    stop.set()
    sw.join(timeout=30)
    lb.set_isa("auto")
    assert not any(t.is_alive() for t in workers), "a worker hung"
    assert not errors, "\n".join(errors)
    assert switches[0] > 10, "the switcher barely ran"


def test_concurrent_calls_on_each_isa(jobs):
    """Several threads at once on one fixed path (no switching): exercises concurrent use of
    the thread pool itself (a busy pool must run callers inline, not deadlock or mix work)."""
    names = list(jobs)
    for name in ISAS:
        errors = []
        with forced_isa(name), num_threads(2):
            def worker(k):
                try:
                    for job in names[k::3] + names:
                        call, want = jobs[job]
                        got = call(lb)
                        if not np.array_equal(bits(got), bits(want)):
                            errors.append(f"{name} worker {k}: {job} differs")
                except Exception as e:  # noqa: BLE001
                    errors.append(f"{name} worker {k}: {e!r}")

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)
        assert not any(t.is_alive() for t in threads), f"{name}: a worker hung"
        assert not errors, "\n".join(errors)


@pytest.mark.parametrize("isa_name", ISAS)
def test_results_identical_for_1_and_2_threads(isa_name, jobs):
    for job, (call, want) in jobs.items():
        results = {}
        for n in (1, 2, 3):
            with forced_isa(isa_name), num_threads(n):
                results[n] = call(lb)
        for n, got in results.items():
            assert_same(got, results[1], f"{isa_name} {job}: {n} threads vs 1")
        assert_same(results[1], want, f"{isa_name} {job} vs reference")
