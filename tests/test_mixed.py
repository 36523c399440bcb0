"""lowbit.mixed: per-layer sensitivity and the INT4/INT8 chooser under a size budget."""

import itertools

import numpy as np
import pytest

import lowbit as lb
from lowbit import mixed


def _weights(rng, n_layers=5):
    shapes = [(16, 32), (32, 16), (8, 64), (64, 8), (24, 24), (12, 40), (40, 12)]
    return {f"fc{i}": (rng.standard_normal(shapes[i % len(shapes)]) * (i + 1))
            .astype(np.float32) for i in range(n_layers)}


def _additive_eval(weights, importance):
    """Error = sum over layers of importance * relative squared error of the representation:
    additive, so the chooser's prediction is exact and brute force gives the optimum."""
    def evaluate(ws):
        err = 0.0
        for name, w in weights.items():
            rep = ws[name]
            rep = rep.dequantize() if isinstance(rep, lb.QTensor) else rep
            err += importance[name] * float(((rep - w) ** 2).sum() / (w ** 2).sum())
        return err
    return evaluate


def _brute_force(weights, evaluate, budget):
    names = list(weights)
    hi = mixed.quantize_weights(weights, mixed.HIGH)
    lo = mixed.quantize_weights(weights, mixed.LOW)
    best = None
    for bits in itertools.product([False, True], repeat=len(names)):
        qs = {k: (lo[k] if b else hi[k]) for k, b in zip(names, bits)}
        size = sum(q.nbytes for q in qs.values())
        if size <= budget:
            e = evaluate(qs)
            if best is None or e < best[0] - 1e-12:
                best = (e, bits)
    return best


def test_sensitivity(rng):
    weights = _weights(rng)
    importance = {k: float(i + 1) for i, k in enumerate(weights)}
    ev = _additive_eval(weights, importance)
    sens = mixed.layer_sensitivity(weights, ev)
    assert set(sens.errors) == set(weights)
    assert sens.baseline == pytest.approx(ev(mixed.quantize_weights(weights, mixed.HIGH)))
    assert all(v > 0 for v in sens.increase.values())
    # float baseline
    sens_f = mixed.layer_sensitivity(list(weights.items()), ev, baseline=None)
    assert sens_f.baseline == 0.0
    calls = []
    mixed.layer_sensitivity(weights, lambda ws: calls.append(sorted(ws)) or 0.0)
    assert len(calls) == 1 + len(weights) and all(c == sorted(weights) for c in calls)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 0.8, 1.0])
def test_chooser_is_optimal_for_additive_errors(fraction, rng):
    weights = _weights(rng, 6)
    importance = dict(zip(weights, rng.uniform(0.1, 5, len(weights))))
    ev = _additive_eval(weights, importance)
    hi = sum(q.nbytes for q in mixed.quantize_weights(weights, mixed.HIGH).values())
    lo = sum(q.nbytes for q in mixed.quantize_weights(weights, mixed.LOW).values())
    budget = int(lo + fraction * (hi - lo))
    plan = mixed.choose_precision(weights, ev, budget_bytes=budget)
    assert plan.nbytes <= budget
    assert plan.measured_error == pytest.approx(plan.predicted_error, rel=1e-9, abs=1e-12)
    best_err, _ = _brute_force(weights, ev, budget)
    assert plan.measured_error == pytest.approx(best_err, rel=1e-9, abs=1e-12)
    assert plan.bits_per_weight == pytest.approx(
        8 * plan.nbytes / sum(w.size for w in weights.values()))
    for name, choice in plan.assignment.items():
        assert plan.qtensors[name].dtype == ("int4" if choice == "low" else "int8")
    if fraction == 1.0:
        assert plan.low_layers == []
    if fraction == 0.0:
        assert len(plan.low_layers) == len(weights)


def test_greedy_path(monkeypatch, rng):
    weights = _weights(rng, 7)
    importance = dict(zip(weights, rng.uniform(0.1, 5, len(weights))))
    ev = _additive_eval(weights, importance)
    sens = mixed.layer_sensitivity(weights, ev)
    exact = mixed.choose_precision(weights, ev, bits_per_weight=6.5, sensitivity=sens)
    monkeypatch.setattr(mixed, "EXHAUSTIVE_LIMIT", 0)
    greedy = mixed.choose_precision(weights, ev, bits_per_weight=6.5, sensitivity=sens)
    again = mixed.choose_precision(weights, ev, bits_per_weight=6.5, sensitivity=sens)
    assert greedy.assignment == again.assignment                     # deterministic
    assert greedy.bits_per_weight <= 6.5
    assert greedy.measured_error >= exact.measured_error - 1e-12
    assert greedy.measured_error <= 1.5 * exact.measured_error


def test_budget_in_bits_and_errors(rng):
    weights = _weights(rng, 3)
    ev = _additive_eval(weights, {k: 1.0 for k in weights})
    plan = mixed.choose_precision(weights, ev, bits_per_weight=100)
    assert plan.low_layers == []
    n = sum(w.size for w in weights.values())
    lo_bits = 8 * sum(q.nbytes for q in mixed.quantize_weights(weights, mixed.LOW).values()) / n
    plan = mixed.choose_precision(weights, ev, bits_per_weight=lo_bits + 0.01)
    assert lo_bits <= plan.bits_per_weight <= lo_bits + 0.01
    with pytest.raises(ValueError, match="exactly one"):
        mixed.choose_precision(weights, ev)
    with pytest.raises(ValueError, match="exactly one"):
        mixed.choose_precision(weights, ev, budget_bytes=10, bits_per_weight=4)
    with pytest.raises(ValueError, match="below the smallest mix"):
        mixed.choose_precision(weights, ev, bits_per_weight=3.0)
    with pytest.raises(ValueError, match="needs evaluate"):
        mixed.choose_precision(weights, budget_bytes=10 ** 6)
    with pytest.raises(ValueError, match="non-finite"):
        mixed.layer_sensitivity(weights, lambda ws: float("nan"))
    with pytest.raises(ValueError, match="twice"):
        mixed.layer_sensitivity([("a", weights["fc0"]), ("a", weights["fc1"])], ev)
    # precomputed sensitivity without evaluate: no measurement
    sens = mixed.layer_sensitivity(weights, ev)
    plan = mixed.choose_precision(weights, budget_bytes=10 ** 6, sensitivity=sens)
    assert plan.measured_error is None


def test_group_formats(rng):
    weights = _weights(rng, 4)
    ev = _additive_eval(weights, {k: 1.0 for k in weights})
    low = {"dtype": "int4", "axis": 1, "group_size": 16}
    plan = mixed.choose_precision(weights, ev, bits_per_weight=7.5, low=low)
    assert plan.low_layers and plan.bits_per_weight <= 7.5
    for name, choice in plan.assignment.items():
        q = plan.qtensors[name]
        assert (q.group_size == 16) == (choice == "low")
