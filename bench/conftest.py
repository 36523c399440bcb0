"""Shared fixtures and reporting hooks for the lowbit benchmarks (pytest-benchmark).

Run from the repository root (``bench/`` is outside the default ``testpaths``)::

    python -m pytest bench -q --benchmark-only
    python -m pytest bench -q --benchmark-only --benchmark-json=bench.json

Each benchmark labels itself with the ``describe`` fixture: its group (one operation at one
size), ``impl`` (``numpy-ref``, an ISA from ``lb.available_isas()``, or ``ort``), ``threads``,
``n`` (elements) and ``bytes_moved`` (bytes read + bytes written). From the median time this
file derives ``gbps`` and the speed-ups against the baselines of the same group:

- ``speedup_vs_numpy_ref``: median time of ``numpy-ref`` / this median time;
- ``speedup_vs_ort``: median time of ``ort`` *at the same thread count* / this median time.

They go into every entry's ``extra_info`` of the saved JSON (``pytest_benchmark_update_json``)
and into a compact table printed at the end of the session. Quote ratios, not absolute times:
the machine may be shared.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

import numpy as np
import pytest

import lowbit as lb

REF_IMPL = "numpy-ref"
ORT_IMPL = "ort"

_DESCRIBED = pytest.StashKey[list]()


def size_label(n: int) -> str:
    """256 Ki / 16 Mi style label for an element count."""
    for shift, unit in ((30, "Gi"), (20, "Mi"), (10, "Ki")):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


@contextlib.contextmanager
def _lowbit_env(isa: str, threads: int):
    """Force an ISA path and a thread count for the duration of the block, then restore."""
    saved = lb.get_num_threads()
    lb.set_isa(isa)
    lb.set_num_threads(threads)
    try:
        yield
    finally:
        lb.set_isa("auto")
        lb.set_num_threads(saved)


@pytest.fixture
def lowbit_env():
    """``with lowbit_env("avx2", 2): ...`` runs lowbit on that ISA path with that many threads."""
    return _lowbit_env


@pytest.fixture
def rng():
    """A fixed-seed generator, so every run measures the same data."""
    return np.random.default_rng(0)


@pytest.fixture
def describe(benchmark, request):
    """Label a benchmark before timing it; the hooks below derive GB/s and ratios from it."""

    def _describe(*, group: str, impl: str, threads: int, n: int, bytes_moved: int) -> None:
        benchmark.group = group
        benchmark.extra_info.update(
            impl=impl, threads=threads, n=n, size=size_label(n), bytes_moved=bytes_moved
        )
        request.config.stash[_DESCRIBED].append(benchmark)

    return _describe


def pytest_configure(config):
    config.stash[_DESCRIBED] = []


def pytest_report_header(config):
    info = lb.cpu_info()
    return (f"lowbit: isa={info.get('isa')} available={info.get('available')} "
            f"threads={info.get('threads')}")


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["lowbit"] = {"version": getattr(lb, "__version__", None), **lb.cpu_info()}
    machine_info["numpy"] = np.__version__
    try:
        import onnxruntime
    except ImportError:
        pass
    else:
        machine_info["onnxruntime"] = onnxruntime.__version__


def _derive(entries):
    """Fill gbps and speed-ups into each entry's extra_info.

    ``entries`` is a list of ``(group, extra_info, median_seconds)``; entries are matched with
    the baselines of their own group (and, for ORT, of their own thread count).
    """
    groups = defaultdict(list)
    for group, info, median in entries:
        if median and "bytes_moved" in info:
            groups[group].append((info, median))
    for members in groups.values():
        ref = [t for info, t in members if info["impl"] == REF_IMPL]
        ort = {info["threads"]: t for info, t in members if info["impl"] == ORT_IMPL}
        for info, t in members:
            info["gbps"] = info["bytes_moved"] / t / 1e9
            if ref:
                info["speedup_vs_numpy_ref"] = ref[0] / t
            if info["threads"] in ort:
                info["speedup_vs_ort"] = ort[info["threads"]] / t


def pytest_benchmark_update_json(config, benchmarks, output_json):
    _derive(
        [(b["group"], b["extra_info"], b["stats"]["median"]) for b in output_json["benchmarks"]]
    )


def _summary_entries(config):
    entries = []
    for fixture in config.stash.get(_DESCRIBED, []):
        meta = fixture.stats  # pytest-benchmark's Metadata, None if never timed
        if meta is None or fixture.has_error or not meta:
            continue
        entries.append((meta.group, fixture.extra_info, meta.stats.median))
    return entries


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    entries = _summary_entries(config)
    if not entries:
        return
    _derive(entries)
    order = {REF_IMPL: 0, ORT_IMPL: 2}
    entries.sort(key=lambda e: (e[1]["n"], e[0], order.get(e[1]["impl"], 1), e[1]["impl"],
                                e[1]["threads"]))
    tr = terminalreporter
    tr.write_sep("-", "lowbit summary (medians; GB/s = bytes in + out per second; "
                      "x = speed-up over that baseline, ort at the same thread count)")
    w = max(len(e[0]) for e in entries)
    tr.write_line(f"{'group':<{w}} {'impl':<9} {'thr':>3} {'size':>6} {'GB/s':>8} "
                  f"{'x numpy-ref':>11} {'x ort':>7}")
    last = None
    for group, info, _median in entries:
        if last is not None and group != last:
            tr.write_line("")
        last = group
        ref = info.get("speedup_vs_numpy_ref")
        ort = info.get("speedup_vs_ort")
        tr.write_line(
            f"{group:<{w}} {info['impl']:<9} {info['threads']:>3} {info['size']:>6} "
            f"{info['gbps']:>8.2f} {'' if ref is None else f'{ref:.2f}':>11} "
            f"{'' if ort is None else f'{ort:.2f}':>7}"
        )
