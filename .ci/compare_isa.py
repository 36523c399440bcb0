"""Every element-wise API, the integer GEMM and lb.linear on one ISA path, on fixed random
inputs: save the outputs, or check them bit for bit against outputs saved by another build
(.ci/emulate: native vs emulated avx512 and avx512_vnni).

    python .ci/compare_isa.py save ISA OUT.npz
    python .ci/compare_isa.py check ISA REF.npz

The inputs depend only on the seed, so two environments see the same ones. Lengths straddle the
vector widths and the unroll factors; one is large enough (one thread, 16+ MiB of output) for
the streaming-store path. Values include ties, +-inf, +-0, subnormals and saturating ones.
"""

from __future__ import annotations

import sys

import numpy as np

import lowbit as lb

LENGTHS = [1, 2, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 255, 257, 1000, 4099,
           (1 << 22) + 37]
DTYPES = ["int8", "uint8", "int4", "uint4"]


def rich_x(rng, n):
    x = (rng.standard_normal(n) * 40).astype(np.float32)
    k = max(1, n // 16)
    idx = rng.integers(0, n, size=k)
    x[idx] = rng.choice(np.array([np.inf, -np.inf, 0.0, -0.0, 1e-42, -1e-42, 1e30, -1e30,
                                  0.185, -0.185, 0.555, 2.5 * 0.37, -3.5 * 0.37],
                                 dtype=np.float32), size=k)
    return x


def outputs():
    rng = np.random.default_rng(20240909)
    res = {}
    for n in LENGTHS:
        x = rich_x(rng, n)
        g = rng.standard_normal(n).astype(np.float32)
        for dt in DTYPES:
            lo, hi = {"int8": (-128, 127), "uint8": (0, 255), "int4": (-8, 7),
                      "uint4": (0, 15)}[dt]
            zp = int(rng.integers(lo, hi + 1))
            s = np.float32(0.37)
            key = f"n{n}_{dt}"
            q = lb.quantize(x, s, zp, dtype=dt)
            res[f"{key}_q"] = q
            res[f"{key}_deq"] = lb.dequantize(q, s, zp)
            res[f"{key}_fake"] = lb.fake_quantize(x, s, zp, dtype=dt)
            res[f"{key}_grad"] = lb.fake_quantize_grad(x, g, s, zp, dtype=dt)
            if dt in ("int4", "uint4"):
                p = lb.quantize(x, s, zp, dtype=dt, packed=True)
                res[f"{key}_qp"] = p
                res[f"{key}_deqp"] = lb.dequantize(p, s, zp, packed=dt, n=n)
                res[f"{key}_pack"] = lb.pack_int4(q)
                res[f"{key}_unpack"] = lb.unpack_int4(p, signed=dt == "int4", n=n)
        # The element formats, MX blocks and a codebook (the formats kernels).
        for fmt in ("fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "nf4"):
            key = f"n{n}_{fmt}"
            q = lb.quantize(x, 0.37, dtype=fmt)
            res[f"{key}_q"] = q
            res[f"{key}_deq"] = lb.dequantize(q, 0.37, dtype=fmt)
            if fmt in ("fp4_e2m1", "nf4"):
                res[f"{key}_qp"] = lb.quantize(x, 0.37, dtype=fmt, packed=True)
        xm = np.nan_to_num(x, nan=0.0, posinf=3e38, neginf=-3e38)  # MX and codebooks: finite
        for mxd in ("mxfp8_e4m3", "mxfp8_e5m2", "mxfp4_e2m1", "mxint8"):
            c, e = lb.quantize_mx(xm, mxd)
            res[f"n{n}_{mxd}_c"], res[f"n{n}_{mxd}_e"] = c, e
            res[f"n{n}_{mxd}_deq"] = lb.dequantize_mx(c, e, mxd)
        for k in (16, 256):
            lv = np.sort(rng.standard_normal(k).astype(np.float32))
            c = lb.quantize_codebook(xm, lv)
            res[f"n{n}_cb{k}_c"] = c
            res[f"n{n}_cb{k}_deq"] = lb.dequantize_codebook(c, lv)
        # Per-channel and per-group granularity on a 2-D view (rows of the innermost length).
        if n >= 2:
            rows = 3
            x2 = rich_x(rng, rows * n).reshape(rows, n)
            s_row = (rng.random(rows) * 0.5 + 0.05).astype(np.float32)
            z_row = rng.integers(-8, 8, size=rows).astype(np.int8)
            res[f"n{n}_chan_q"] = lb.quantize(x2, s_row, z_row, dtype="int8", axis=0)
            res[f"n{n}_chan_fake"] = lb.fake_quantize(x2, s_row, z_row, dtype="int8", axis=0)
            s_col = (rng.random(n) * 0.5 + 0.05).astype(np.float32)
            z_col = rng.integers(0, 16, size=n).astype(np.uint8)
            qc = lb.quantize(x2, s_col, z_col, dtype="uint4", axis=1)
            res[f"n{n}_col_q"] = qc
            res[f"n{n}_col_deq"] = lb.dequantize(qc, s_col, z_col, axis=1)
            res[f"n{n}_col_grad"] = lb.fake_quantize_grad(x2, x2, s_col, z_col, dtype="uint4",
                                                          axis=1)
            res[f"n{n}_vpack"] = lb.pack_int4(qc, axis=0)
            res[f"n{n}_vunpack"] = lb.unpack_int4(lb.pack_int4(qc, axis=0), signed=False,
                                                  axis=0, n=rows)
            xf = np.nan_to_num(x2, posinf=1e30, neginf=-1e30)  # calibration needs finite x
            for axis in (None, 0, 1):
                qp = lb.calibrate(xf, "int8", symmetric=False, axis=axis)
                res[f"n{n}_cal{axis}_s"] = qp.scale
                res[f"n{n}_cal{axis}_z"] = qp.zero_point
        # A NaN is reported (ValueError), wherever it sits.
        if n >= 2:
            xn = x.copy()
            xn[n - 1] = np.nan
            try:
                lb.quantize(xn, 0.37)
                res[f"n{n}_nan"] = np.array([0])
            except ValueError:
                res[f"n{n}_nan"] = np.array([1])
    res.update(product_outputs(rng))
    return res


def product_outputs(rng):
    """matmul_int / matmul_int4 (plain and pre-packed, zero points) and lb.linear (W8A8, W4A8
    per channel and per group, static and dynamic, weight-only) across the tile edges."""
    res = {}
    for m, k, n in [(1, 1, 1), (3, 5, 17), (9, 64, 33), (37, 131, 100), (8, 256, 64),
                    (130, 300, 70)]:
        a = rng.integers(0, 256, (m, k)).astype(np.uint8)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        za = rng.integers(0, 256, m).astype(np.uint8)
        zb = rng.integers(-128, 128, n).astype(np.int8)
        key = f"mm{m}x{k}x{n}"
        res[f"{key}_u8s8"] = lb.matmul_int(a, b)
        res[f"{key}_zp"] = lb.matmul_int(a, lb.pack_matrix(b), za,
                                         zb)
        res[f"{key}_s8s8"] = lb.matmul_int(a.view(np.int8), b)
        b4 = lb.pack_int4(rng.integers(-8, 8, (k, n)).astype(np.int8), axis=0)
        res[f"{key}_int4"] = lb.matmul_int4(a, b4, k=k)
        x = (rng.standard_normal((m, k)) * 3).astype(np.float32)
        w = rng.standard_normal((n, k)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        for name, wq in [("w8", lb.QTensor.quantize(w, "int8", axis=0)),
                         ("w8u", lb.QTensor.quantize(w, "uint8", axis=0, symmetric=False)),
                         ("w4c", lb.QTensor.quantize(w, "int4", axis=0)),
                         ("w4g32", lb.QTensor.quantize(w, "int4", axis=1, group_size=32)),
                         ("w4g6", lb.QTensor.quantize(w, "uint4", axis=1, group_size=6,
                                                      symmetric=False))]:
            res[f"{key}_{name}_a8"] = lb.linear(x, wq, bias)
            res[f"{key}_{name}_u8"] = lb.linear(x, wq, act_dtype="uint8")
            res[f"{key}_{name}_static"] = lb.linear(x, wq, bias, act_scale=0.05)
            res[f"{key}_{name}_wo"] = lb.linear(x, wq, bias, act_dtype=None)
    return res


def main(argv):
    mode, isa, path = argv[1:4]
    lb.set_num_threads(1)
    lb.set_isa(isa)
    res = outputs()
    if mode == "save":
        np.savez(path, **res)
        print(f"compare_isa: saved {len(res)} outputs of {isa} ({lb.cpu_info()['emulated']=})")
        return 0
    ref = np.load(path)
    bad = [k for k in res if k not in ref or res[k].dtype != ref[k].dtype
           or res[k].shape != ref[k].shape or res[k].tobytes() != ref[k].tobytes()]
    missing = [k for k in ref.files if k not in res]
    for k in (bad + missing)[:20]:
        print(f"compare_isa: MISMATCH {k}")
    print(f"compare_isa: {isa}: {len(res) - len(bad)} of {len(ref.files)} outputs identical "
          f"bit for bit ({lb.cpu_info()['emulated']=})")
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
