"""Two builds of lowbit timed side by side in interleaved rounds (a script, not a test module).

A change to the kernels or drivers must not cost speed. This script compares two installs of
lowbit, each in its own Python environment (say the previous main and a branch), on the same
inputs: it starts one worker process per interpreter, and every round asks each worker in turn
(alternating which goes first) to time every operation, so both builds meet the same machine
conditions. Ratios are B's speed over A's from the minimum and the median per-call time over
the rounds (> 1: B is faster)::

    python bench/ab_builds.py --a OLD_VENV/bin/python --b NEW_VENV/bin/python --rounds 9
    python bench/ab_builds.py ... --isa avx2 --only quantize,linear

Element-wise operations run on 16 Mi float32 (a 4096 x 4096 matrix), ``linear`` on a
4096 -> 4096 layer at batch 1 and 128; one thread unless ``--threads``. Each worker checks its
results against ``lowbit.reference`` before timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ab_worker.py")


class Worker:
    def __init__(self, python: str, isa: str, threads: int, only: str):
        env = dict(os.environ, LOWBIT_NUM_THREADS=str(threads))
        env.pop("PYTHONPATH", None)
        self.p = subprocess.Popen([python, WORKER, isa, only], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env,
                                  cwd=os.path.dirname(WORKER))
        self.hello = self._read()

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("worker exited")
        return json.loads(line)

    def run(self, op: str, reps: int) -> float:
        self.p.stdin.write(json.dumps([op, reps]) + "\n")
        self.p.stdin.flush()
        return self._read()["seconds"]

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="Python interpreter of build A (the baseline)")
    ap.add_argument("--b", required=True, help="Python interpreter of build B")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--reps", type=int, default=5, help="calls a round; the best one counts")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--isa", default="auto", help="lb.set_isa() in both workers")
    ap.add_argument("--only", default="", help="comma-separated substrings of op names")
    args = ap.parse_args(argv)
    a = Worker(args.a, args.isa, args.threads, args.only)
    b = Worker(args.b, args.isa, args.threads, args.only)
    ops = a.hello["ops"]
    if ops != b.hello["ops"]:
        raise SystemExit(f"the builds offer different operations: {ops} vs {b.hello['ops']}")
    print(f"A: {a.hello['info']}\nB: {b.hello['info']}")
    times = {op: ([], []) for op in ops}
    for r in range(args.rounds):
        for op in ops:
            pair = (a, b) if r % 2 == 0 else (b, a)
            for w in pair:
                times[op][0 if w is a else 1].append(w.run(op, args.reps))
    a.close()
    b.close()
    print(f"{'operation':34s} {'A min ms':>9s} {'B min ms':>9s} {'B/A speed (min)':>16s} "
          f"{'(median)':>9s}")
    worst = float("inf")
    for op in ops:
        ta, tb = times[op]
        r_min, r_med = min(ta) / min(tb), statistics.median(ta) / statistics.median(tb)
        worst = min(worst, r_min)
        print(f"{op:34s} {1e3 * min(ta):9.3f} {1e3 * min(tb):9.3f} {r_min:16.3f} {r_med:9.3f}")
    print(f"lowest B/A speed ratio (min): {worst:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
