"""lb.linear beside its peers, timed in interleaved rounds (a script, not a test module).

pytest-benchmark times one implementation after another; on a shared machine a neighbour's
load, or which weights the last-level cache happens to hold, can change between two groups of
rounds and tilt a ratio either way. Here every round calls each implementation in turn on the
same input (lowbit, torch's dynamic quantized Linear, ONNX Runtime; the peers of
test_bench_linear.py, built by its helpers), so they all meet the same conditions, and the
ratios are taken of the minimum and of the median per-call time over the rounds::

    python bench/interleaved_linear.py --batches 1,16,128 --formats w8a8,w4a8 --rounds 15

(one thread; ``--threads 2`` for two). Speed-ups are peer time / lowbit time, > 1 when lowbit
is faster. Each lowbit result is checked against ``lowbit.reference.linear`` before timing.

It first prints what each W8A8 peer returns on an input where int8 products summed in pairs
overflow int16 (``exactness_probe``): lowbit never saturates; a peer that multiplies with
vpmaddubsw on a CPU without VNNI either reduces the activations to 7 bits (torch) or saturates.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_bench_linear as tb  # noqa: E402  (the peers and weights of the pytest benchmark)

import lowbit as lb  # noqa: E402
import lowbit.reference as lbr  # noqa: E402


def runners(fmt: str, m: int, threads: int) -> dict:
    """name -> zero-argument callable, for every implementation available here."""
    w, w_q = tb._weights(fmt)
    act = None if fmt == "w4" else "int8"
    x = np.random.default_rng(m).standard_normal((m, tb.K)).astype(np.float32)
    if act is not None:  # bit-exact before timing
        got, want = lb.linear(x[:3], w_q, act_dtype=act), lbr.linear(x[:3], w_q, act_dtype=act)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    out = {"lowbit": lambda: lb.linear(x, w_q, act_dtype=act)}
    if fmt == "w8a8" and tb.peers.torch is not None:
        f, tx = tb.torch_dynamic_linear(w, threads), tb.peers.torch.from_numpy(x)
        out["torch"] = lambda: f(tx)
    if tb.peers.ort is not None:
        out["ort"] = tb.ort_runner(fmt, w_q, x, threads)
    return out


def exactness_probe() -> list:
    """Lines saying whether each W8A8 peer computes the exact integer product on an input whose
    int8 pair sums overflow int16: x = 1 (quantized to 127 per row, or 255 as uint8) against
    W = 1 (int8 127), K = 256, so the exact result is 256 and one saturating vpmaddubsw pair
    sum (2 * 255 * 127 > 32767) shows. lowbit's own result is the reference's, bit for bit."""
    k, n = 256, 16
    x = np.ones((4, k), np.float32)
    w = np.ones((n, k), np.float32)
    w_q = lb.QTensor.quantize(w, "int8", axis=0)
    lines = [f"lowbit: {float(lb.linear(x, w_q)[0, 0]):.4f} (exact: {float(k):.1f})"]
    if tb.peers.torch is not None:
        torch = tb.peers.torch
        lin = torch.nn.Linear(k, n, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear},
                                                       dtype=torch.qint8)
            y = float(q(torch.from_numpy(x))[0, 0])
        lines.append(f"torch dynamic Linear: {y:.4f} (activations reduced to 7 bits)")
    if tb.peers.ort is not None:
        helper, numpy_helper, TP = tb.peers.helper, tb.peers.numpy_helper, tb.peers.TensorProto
        node = helper.make_node("DynamicQuantizeMatMul", ["A", "B", "b_scale", "b_zp"], ["Y"],
                                domain="com.microsoft")
        inits = [numpy_helper.from_array(np.full((k, n), 127, np.int8), "B"),
                 numpy_helper.from_array(np.full(n, 1 / 127, np.float32), "b_scale"),
                 numpy_helper.from_array(np.zeros(n, np.int8), "b_zp")]
        graph = helper.make_graph(
            [node], "probe", [helper.make_tensor_value_info("A", TP.FLOAT, [None, k])],
            [helper.make_tensor_value_info("Y", TP.FLOAT, [None, n])], initializer=inits)
        y = float(tb.peers._session(graph, 1).run(None, {"A": x})[0][0, 0])
        lines.append(f"ONNX Runtime DynamicQuantizeMatMul: {y:.4f}")
    return lines


#: Pause after each peer's timing: torch's and ONNX Runtime's OpenMP worker threads spin for
#: a while after a call and would take a core from the next implementation (with --threads 2
#: on a 2-core machine lowbit then showed no gain from its second thread).
SETTLE_SECONDS = 0.1


def measure(fns: dict, rounds: int, calls: int) -> dict:
    """name -> per-call seconds of each round (each round: every name once, `calls` calls)."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()  # warm: weights and scratch in cache as in a steady loop
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - t0) / calls)
            if name != "lowbit":
                time.sleep(SETTLE_SECONDS)
    return times


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,16,128")
    ap.add_argument("--formats", default="w8a8,w4a8,w4")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    lb.set_num_threads(args.threads)
    print("W8A8 exactness, x = 1 against W = 1 (K = 256, exact 256):")
    for line in exactness_probe():
        print("  " + line)
    print(f"lb.linear {tb.K} -> {tb.N}, {args.threads} thread(s), {args.rounds} interleaved "
          f"rounds, isa {lb.cpu_info()['isa']}; time min / median (ms), speed-up = peer / lowbit")
    for fmt in args.formats.split(","):
        for m in (int(b) for b in args.batches.split(",")):
            fns = runners(fmt, m, args.threads)
            times = measure(fns, args.rounds, calls=max(1, 64 // m))
            ops = 2 * m * tb.K * tb.N
            lo_min, lo_med = np.min(times["lowbit"]), np.median(times["lowbit"])
            cells = [f"{name} {np.min(t) * 1e3:.3f} / {np.median(t) * 1e3:.3f} "
                     f"({ops / np.min(t) / 1e9:.0f} GOPS)" for name, t in times.items()]
            ratios = [f"x{name} {np.min(t) / lo_min:.2f} / {np.median(t) / lo_med:.2f}"
                      for name, t in times.items() if name != "lowbit"]
            print(f"{fmt:5s} M={m:<4d} " + "  ".join(cells) + "  | " + "  ".join(ratios),
                  flush=True)


if __name__ == "__main__":
    main()
