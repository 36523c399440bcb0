"""Run-time choices: instruction-set path and thread count."""

from __future__ import annotations

import os
import platform
import warnings

from . import _core


def available_isas() -> list:
    """Instruction-set paths built into this package that this CPU (and OS) can run, lowest
    first, e.g. ``["scalar", "avx2", "avx512", "avx512_vnni"]``."""
    return list(_core.available_isas())


def set_isa(name: str) -> None:
    """Force the kernels onto one path of :func:`available_isas`; ``"auto"`` picks the best.

    Raises
    ------
    ValueError
        An unknown name or a path this machine cannot run (the message lists the choices).

    Examples
    --------
    >>> import lowbit as lb
    >>> lb.set_isa("scalar"); lb.cpu_info()["isa"]
    'scalar'
    >>> lb.set_isa("auto")
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    _core.set_isa(name)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for large arrays (``n <= 0``: one per CPU core). Results do not depend
    on the thread count."""
    import operator
    _core.set_num_threads(operator.index(n))


def get_num_threads() -> int:
    """The number of threads kernels may use."""
    return int(_core.get_num_threads())


def cpu_info() -> dict:
    """What the package runs on.

    Returns
    -------
    dict
        ``isa`` (the active path), ``available`` (paths this CPU can run), ``threads``,
        ``flags`` (CPU features seen by CPUID/XGETBV), ``vendor``, ``brand``, ``machine``,
        ``kernels`` (the dispatched kernel slots), ``emulated`` (available paths compiled
        against SIMDe in a ``LOWBIT_EMULATE_AVX512`` test build: they run on this CPU's AVX2
        instructions, bit for bit like the native path but slower), ``kernel_sources`` (for
        each available path, slot -> the path whose kernel fills it).

    Examples
    --------
    >>> import lowbit as lb
    >>> sorted(lb.cpu_info())[:3]
    ['available', 'brand', 'flags']
    """
    available = available_isas()
    return {
        "isa": _core.active_isa(),
        "available": available,
        "threads": get_num_threads(),
        "flags": list(_core.cpu_flags()),
        "vendor": _core.cpu_vendor(),
        "brand": _core.cpu_brand(),
        "machine": platform.machine(),
        "kernels": list(_core.kernels()),
        "emulated": [e["name"] for e in _core.isa_manifest()
                     if e["emulated"] and e["name"] in available],
        "kernel_sources": {isa: dict(_core.kernel_sources(isa)) for isa in available},
    }


def _apply_environment() -> None:
    """LOWBIT_ISA and LOWBIT_NUM_THREADS set the same as set_isa / set_num_threads at import. A
    value this machine cannot honour (an unknown path, one this CPU or build lacks, a thread
    count that is not an integer) must not make ``import lowbit`` fail: it warns, naming
    the choices, and the default (``auto``, all CPUs) stays."""
    isa = os.environ.get("LOWBIT_ISA")
    if isa:
        try:
            set_isa(isa)
        except ValueError as e:
            warnings.warn(f"LOWBIT_ISA={isa!r} ignored, using 'auto': {e}", RuntimeWarning,
                          stacklevel=2)
    threads = os.environ.get("LOWBIT_NUM_THREADS")
    if threads:
        try:
            n = int(threads)
            set_num_threads(n)
        except ValueError as e:
            warnings.warn(f"LOWBIT_NUM_THREADS={threads!r} ignored (an integer is expected: "
                          f"{e}), using {get_num_threads()}", RuntimeWarning,
                          stacklevel=2)
