"""Worker of bench/ab_builds.py: times operations of the lowbit installed in this interpreter.

Protocol: prints one JSON line {"ops": [...], "info": ...}, then answers each request line
``[op, reps]`` with {"seconds": best per-call time of reps calls}. Arguments: isa, filter.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

import lowbit as lb
import lowbit.reference as lbr


def _same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got.view(np.uint8), want.view(np.uint8))


def operations() -> dict:
    """name -> zero-argument callable, each checked against the reference once."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 4096), dtype=np.float32)
    ops = {}

    def add(name, fn, check=None):
        if check is not None:
            check()
        ops[name] = fn

    qt = lb.calibrate(x, "int8")
    qc = lb.calibrate(x, "int8", axis=0)
    q4 = lb.calibrate(x, "int4", axis=1, group_size=128)
    q8t, q8c = lb.quantize(x, qt), lb.quantize(x, qc)
    p4 = lb.quantize(x, q4, packed=True)
    u4 = lb.unpack_int4(p4)
    out = np.empty_like(x)
    add("quantize int8 per-tensor", lambda: lb.quantize(x, qt),
        lambda: _same(lb.quantize(x, qt), lbr.quantize(x, qt)))
    add("quantize int8 per-channel", lambda: lb.quantize(x, qc),
        lambda: _same(q8c, lbr.quantize(x, qc)))
    add("quantize int4 g128 packed", lambda: lb.quantize(x, q4, packed=True),
        lambda: _same(p4, lbr.quantize(x, q4, packed=True)))
    add("dequantize int8 per-tensor", lambda: lb.dequantize(q8t, qt, out=out),
        lambda: _same(lb.dequantize(q8t, qt), lbr.dequantize(q8t, qt)))
    add("dequantize int8 per-channel", lambda: lb.dequantize(q8c, qc, out=out),
        lambda: _same(lb.dequantize(q8c, qc), lbr.dequantize(q8c, qc)))
    add("dequantize int4 g128 packed", lambda: lb.dequantize(p4, q4, packed="int4", out=out),
        lambda: _same(lb.dequantize(p4, q4, packed="int4"),
                      lbr.dequantize(p4, q4, packed="int4")))
    add("fake_quantize int8 per-tensor", lambda: lb.fake_quantize(x, qt),
        lambda: _same(lb.fake_quantize(x, qt), lbr.fake_quantize(x, qt)))
    add("fake_quantize int8 per-channel", lambda: lb.fake_quantize(x, qc),
        lambda: _same(lb.fake_quantize(x, qc), lbr.fake_quantize(x, qc)))
    add("calibrate minmax int8", lambda: lb.calibrate(x, "int8"))
    add("pack_int4", lambda: lb.pack_int4(u4), lambda: _same(lb.pack_int4(u4), p4))
    add("unpack_int4", lambda: lb.unpack_int4(p4))

    w = rng.standard_normal((4096, 4096), dtype=np.float32)
    for fmt, w_q in (("w8a8", lb.QTensor.quantize(w, "int8", axis=0)),
                     ("w4a8 g128", lb.QTensor.quantize(w, "int4", axis=1, group_size=128))):
        for m in (1, 128):
            xm = rng.standard_normal((m, 4096), dtype=np.float32)
            add(f"linear {fmt} batch {m}", lambda xm=xm, w_q=w_q: lb.linear(xm, w_q),
                lambda xm=xm, w_q=w_q: _same(lb.linear(xm[:2], w_q), lbr.linear(xm[:2], w_q)))
    for m, k, n in ((2048, 2048, 2048), (1, 4096, 4096)):
        a8 = rng.integers(0, 256, (m, k), dtype=np.uint8)
        b8 = rng.integers(-128, 128, (k, n), dtype=np.int8)
        b4 = lb.pack_int4(rng.integers(-8, 8, (k, n), dtype=np.int8), axis=0)
        for name, bp in (("int8", lb.pack_matrix(b8)), ("int4", lb.pack_matrix(b4, dtype="int4"))):
            add(f"matmul_int {name} {m}x{k}x{n}", lambda a8=a8, bp=bp: lb.matmul_int(a8, bp))
    return ops


def main() -> None:
    isa, only = sys.argv[1], sys.argv[2]
    lb.set_isa(isa)
    ops = operations()
    if only:
        keys = only.split(",")
        ops = {k: v for k, v in ops.items() if any(s in k for s in keys)}
    info = lb.cpu_info()
    print(json.dumps({"ops": list(ops), "info": f"lowbit {lb.__version__} isa={info['isa']} "
                      f"threads={info['threads']} at {lb.__file__}"}), flush=True)
    for line in sys.stdin:
        op, reps = json.loads(line)
        fn = ops[op]
        fn()
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        print(json.dumps({"seconds": best}), flush=True)


if __name__ == "__main__":
    main()
