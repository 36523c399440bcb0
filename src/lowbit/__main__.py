"""``python -m lowbit``: CPU and ISA report, a self-check of every kernel on every path against
lowbit.reference, and a speed line against the NumPy reference."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import lowbit as lb
from lowbit import reference as lbr


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype == np.float32:
        return bool(np.array_equal(a.view(np.uint32), b.view(np.uint32)))
    return bool(np.array_equal(a, b))


def _cases(rng):
    """(name, function of the module lb or lbr) pairs covering every kernel slot."""
    x = (rng.standard_normal((37, 300)) * 40).astype(np.float32)
    x[0, :6] = [np.inf, -np.inf, 0.5, -0.5, 1.5, 3e9]
    g = rng.standard_normal(x.shape).astype(np.float32)
    s_axis = (np.abs(rng.standard_normal(300)) + 0.05).astype(np.float32)
    s_group = (np.abs(rng.standard_normal((37, 3))) + 0.05).astype(np.float32)
    zp_axis = rng.integers(100, 156, 300).astype(np.uint8)
    zp_group = rng.integers(-3, 4, (37, 3)).astype(np.int8)
    q4 = rng.integers(-8, 8, (37, 301)).astype(np.int8)
    u4 = lbr.pack_int4((q4 & 15).astype(np.uint8))
    return [
        ("quantize int8 per-tensor", lambda m: m.quantize(x, 0.5, 3)),
        ("quantize uint8 per-axis", lambda m: m.quantize(x, s_axis, zp_axis, dtype="uint8",
                                                                axis=1)),
        ("quantize int4 per-group", lambda m: m.quantize(x, s_group, zp_group, dtype="int4",
                                                         axis=1, group_size=128)),
        ("quantize int4 packed", lambda m: m.quantize(x, s_group, dtype="int4", axis=1,
                                                      group_size=128, packed=True)),
        ("dequantize int8", lambda m: m.dequantize(q4, 0.25, -1)),
        ("dequantize uint8", lambda m: m.dequantize(q4.view(np.uint8), s_axis[:37], axis=0)),
        ("dequantize packed int4", lambda m: m.dequantize(
            lbr.pack_int4(q4[:, :300]), s_group, axis=1, group_size=128, packed="int4")),
        ("dequantize packed uint4", lambda m: m.dequantize(
            u4, s_group, np.full((37, 3), 8, np.uint8), axis=1, group_size=128, packed="uint4",
            n=301)),
        ("fake_quantize", lambda m: m.fake_quantize(x, s_axis, axis=1, dtype="int4")),
        ("fake_quantize_grad", lambda m: m.fake_quantize_grad(x, g, 0.3, dtype="int8")),
        ("calibrate minmax", lambda m: m.calibrate(x[:, 6:], "uint8", symmetric=False,
                                                   axis=0).scale),
        ("pack_int4 rows", lambda m: m.pack_int4(q4, axis=1)),
        ("pack_int4 columns", lambda m: m.pack_int4(q4, axis=0)),
        ("unpack_int4 rows", lambda m: m.unpack_int4(np.arange(256, dtype=np.uint8), n=511)),
        ("unpack_int4 columns", lambda m: m.unpack_int4(
            np.arange(256, dtype=np.uint8).reshape(16, 16), signed=False, axis=0)),
        # the formats family
        ("quantize fp8_e4m3", lambda m: m.quantize(x, s_axis, dtype="fp8_e4m3", axis=1)),
        ("quantize fp4_e2m1 packed", lambda m: m.quantize(x, 2.0, dtype="fp4_e2m1",
                                                          packed=True)),
        ("quantize nf4 per-group", lambda m: m.quantize(x, s_group * 40, dtype="nf4", axis=1,
                                                        group_size=128)),
        ("dequantize fp8_e5m2", lambda m: m.dequantize(q4.view(np.uint8), 0.5,
                                                       dtype="fp8_e5m2")),
        ("quantize_mx mxfp4", lambda m: m.quantize_mx(x[:, 6:], "mxfp4_e2m1", packed=True)[0]),
        ("dequantize_mx mxfp8", lambda m: m.dequantize_mx(
            q4.view(np.uint8)[:, :300], np.full((37, 10), 120, np.uint8), "mxfp8_e4m3")),
        ("quantize_codebook 3-bit", lambda m: m.quantize_codebook(
            x[:, 6:], np.linspace(-50, 50, 8, dtype=np.float32))),
        ("dequantize_codebook 8-bit", lambda m: m.dequantize_codebook(
            q4.view(np.uint8), np.linspace(-1, 1, 256, dtype=np.float32))),
    ]


def self_check() -> bool:
    rng = np.random.default_rng(2026)
    ok = True
    cases = _cases(rng)
    for isa in lb.available_isas():
        lb.set_isa(isa)
        bad = [name for name, f in cases if not _same(f(lb), f(lbr))]
        ok &= not bad
        status = "ok" if not bad else "MISMATCH: " + ", ".join(bad)
        print(f"  {isa:<12} {len(cases) - len(bad)}/{len(cases)} kernels bit-exact   {status}")
    lb.set_isa("auto")
    return ok


def _best(f, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def speed_line(n: int = 1 << 22) -> None:
    x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    t_ref = _best(lambda: lbr.quantize(x, 0.05), 3)
    t_lb = _best(lambda: lb.quantize(x, 0.05))
    gbs = 5 * n / t_lb / 1e9
    print(f"  quantize int8 per-tensor, {n / 2**20:.0f} Mi float32, {lb.get_num_threads()} threads: "
          f"{t_lb * 1e3:.2f} ms ({gbs:.1f} GB/s), NumPy reference {t_ref * 1e3:.1f} ms "
          f"-> {t_ref / t_lb:.0f}x")


_DESCRIPTION = """\
Checks this machine: prints the CPU and the instruction-set paths lowbit can use here,
runs every kernel on every path against the NumPy reference (lowbit.reference) and
expects identical bits, then times one kernel against that reference. Exit status 0
when every kernel agrees, 1 otherwise."""

_EPILOG = """\
subcommands:
  report    the accuracy, size and speed of INT8/INT4 formats on a real model
            (python -m lowbit report --help)

environment:
  LOWBIT_ISA          force an instruction-set path (scalar, avx2, ...; default auto)
  LOWBIT_NUM_THREADS  threads the kernels use (default: all CPUs this process may use)"""


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m lowbit`` (the report has its own)."""
    ap = argparse.ArgumentParser(prog="python -m lowbit", description=_DESCRIPTION,
                                 epilog=_EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"lowbit {lb.__version__}")
    return ap


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:              # python -m lowbit report ...: lowbit/report.py
        from . import report
        return report.main(argv[1:])
    parser().parse_args(argv)
    info = lb.cpu_info()
    print(f"lowbit {lb.__version__} on {info['brand'] or info['machine']} ({info['vendor']})")
    print(f"  CPU flags:      {' '.join(info['flags']) or '(none)'}")
    paths = [f"{isa} (emulated)" if isa in info["emulated"] else isa for isa in info["available"]]
    print(f"  ISA paths:      {', '.join(paths)} (active: {info['isa']})")
    print(f"  threads:        {info['threads']}")
    print("self-check against lowbit.reference:")
    ok = self_check()
    print("speed:")
    speed_line()
    if not ok:
        print("SELF-CHECK FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
