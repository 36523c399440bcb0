"""Mixed precision: measure how much each layer suffers at INT4 and choose INT4 or INT8 per
layer to meet a size budget with the least error.

Generic over named weight matrices and a user-supplied evaluation callback::

    from lowbit import mixed

    weights = {"fc1": W1, "fc2": W2, ...}           # name -> float array (e.g. (out, in))
    def evaluate(ws):                                # ws: name -> QTensor or float ndarray
        return error_of_model_built_from(ws)         # lower is better (e.g. 1 - accuracy,
                                                     # 1 - cosine to the FP32 output)
    sens = mixed.layer_sensitivity(weights, evaluate)          # name -> error, layer alone low
    plan = mixed.choose_precision(weights, evaluate, bits_per_weight=6.0)   # or budget_bytes=
    plan.assignment      # name -> "high" | "low"
    plan.qtensors        # name -> QTensor, ready for lb.linear
    plan.nbytes, plan.bits_per_weight, plan.predicted_error, plan.measured_error

Formats are keyword dicts of :meth:`lowbit.QTensor.quantize`; the defaults are
``high = {"dtype": "int8", "axis": 0}`` and ``low = {"dtype": "int4", "axis": 0}`` (one scale
per output channel of an ``(out, in)`` weight, as ``lb.linear`` takes it).

The chooser predicts a configuration's error as the baseline error plus, for each layer at the
low format, that layer's measured increase (``sensitivity - baseline``), and minimises it under
the budget: exactly (all subsets) up to ``EXHAUSTIVE_LIMIT`` layers, else greedily by error
increase per byte saved, followed by a pass that returns layers to the high format while the
budget still holds. Ties go to the earlier layer. It then evaluates the chosen configuration
once, so ``measured_error`` is a real measurement.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ._qtensor import QTensor

__all__ = ["HIGH", "LOW", "EXHAUSTIVE_LIMIT", "Sensitivity", "MixedPlan", "quantize_weights",
           "layer_sensitivity", "choose_precision"]

HIGH = MappingProxyType({"dtype": "int8", "axis": 0})
LOW = MappingProxyType({"dtype": "int4", "axis": 0})
EXHAUSTIVE_LIMIT = 16

Weights = Union[Mapping[str, np.ndarray], Sequence[Tuple[str, np.ndarray]]]
Evaluate = Callable[[Dict[str, object]], float]


def _named(weights: Weights) -> Dict[str, np.ndarray]:
    items = list(weights.items()) if isinstance(weights, Mapping) else list(weights)
    if not items:
        raise ValueError("weights must name at least one matrix")
    out: Dict[str, np.ndarray] = {}
    for name, w in items:
        if name in out:
            raise ValueError(f"weight name {name!r} appears twice")
        out[name] = np.asarray(w)
    return out


def quantize_weights(weights: Weights, fmt: Mapping) -> Dict[str, QTensor]:
    """Every weight quantized with ``lb.QTensor.quantize(w, **fmt)``, by name."""
    return {name: QTensor.quantize(w, **dict(fmt)) for name, w in _named(weights).items()}


class Sensitivity(NamedTuple):
    """Errors measured by :func:`layer_sensitivity`."""

    baseline: float                 # error with every layer at the baseline representation
    errors: Dict[str, float]        # name -> error when that layer alone is at the low format

    @property
    def increase(self) -> Dict[str, float]:
        """name -> ``errors[name] - baseline``."""
        return {k: v - self.baseline for k, v in self.errors.items()}


def _call(evaluate: Evaluate, ws: Mapping[str, object]) -> float:
    err = float(evaluate(dict(ws)))
    if not np.isfinite(err):
        raise ValueError(f"evaluate returned a non-finite error {err!r}")
    return err


def layer_sensitivity(weights: Weights, evaluate: Evaluate, *, low: Mapping = LOW,
                      baseline: Optional[Mapping] = HIGH, _low_q=None,
                      _base_q=None) -> Sensitivity:
    """The error when each layer alone drops to the ``low`` format.

    Parameters
    ----------
    weights : mapping or sequence of (name, array)
        The float weights, in model order.
    evaluate : callable
        ``evaluate(ws) -> float`` with ``ws`` a dict name -> QTensor (quantized layers) or
        float ndarray (``baseline=None``); lower is better. Called ``1 + len(weights)``
        times.
    low : dict
        ``QTensor.quantize`` arguments of the low format (default INT4 per channel).
    baseline : dict or None
        Format of every other layer (default INT8 per channel); ``None``: float.

    Returns
    -------
    Sensitivity
        ``baseline`` error and ``errors[name]``.
    """
    named = _named(weights)
    low_q = _low_q if _low_q is not None else quantize_weights(named, low)
    base = (_base_q if _base_q is not None else
            dict(named) if baseline is None else quantize_weights(named, baseline))
    base_err = _call(evaluate, base)
    errors = {}
    for name in named:
        errors[name] = _call(evaluate, {**base, name: low_q[name]})
    return Sensitivity(base_err, errors)


class MixedPlan(NamedTuple):
    """The choice of :func:`choose_precision`."""

    assignment: Dict[str, str]          # name -> "high" or "low"
    qtensors: Dict[str, QTensor]        # name -> the QTensor in its chosen format
    nbytes: int                         # sum of QTensor.nbytes
    bits_per_weight: float              # 8 * nbytes / number of weights
    predicted_error: float              # baseline + sum of the chosen layers' increases
    measured_error: Optional[float]     # evaluate(qtensors), or None without evaluate
    sensitivity: Sensitivity

    @property
    def low_layers(self) -> List[str]:
        return [k for k, v in self.assignment.items() if v == "low"]


def choose_precision(weights: Weights, evaluate: Optional[Evaluate] = None, *,
                     budget_bytes: Optional[int] = None,
                     bits_per_weight: Optional[float] = None, high: Mapping = HIGH,
                     low: Mapping = LOW, sensitivity: Optional[Sensitivity] = None) -> MixedPlan:
    """Pick the high or low format per layer to fit a size budget with the least error.

    Parameters
    ----------
    weights : mapping or sequence of (name, array)
    evaluate : callable, optional
        As in :func:`layer_sensitivity`; needed unless ``sensitivity`` is given (then it only
        measures the final choice, if given).
    budget_bytes : int, optional
        Upper bound on the total ``QTensor.nbytes`` of the listed weights.
    bits_per_weight : float, optional
        Upper bound on ``8 * total bytes / total weights`` (scales and zero points included).
        Exactly one of ``budget_bytes`` and ``bits_per_weight`` must be given.
    high, low : dict
        ``QTensor.quantize`` arguments of the two formats (default INT8 / INT4 per channel).
    sensitivity : Sensitivity, optional
        Precomputed :func:`layer_sensitivity` with the high format as the baseline.

    Returns
    -------
    MixedPlan

    Raises
    ------
    ValueError
        No or both budgets; a budget below the all-low size (the message gives that size).
    """
    if (budget_bytes is None) == (bits_per_weight is None):
        raise ValueError("give exactly one of budget_bytes and bits_per_weight")
    named = _named(weights)
    names = list(named)
    high_q = quantize_weights(named, high)
    low_q = quantize_weights(named, low)
    total_weights = sum(q.size for q in high_q.values())
    budget = (int(budget_bytes) if budget_bytes is not None
              else int(np.floor(float(bits_per_weight or 0) * total_weights / 8.0 + 1e-9)))
    hb = np.array([high_q[k].nbytes for k in names], np.int64)
    lb_ = np.array([low_q[k].nbytes for k in names], np.int64)
    min_bytes = int(np.minimum(hb, lb_).sum())
    if budget < min_bytes:
        raise ValueError(f"the budget of {budget} bytes "
                         f"({8.0 * budget / total_weights:.3f} bits per weight) is below the "
                         f"smallest mix, {min_bytes} bytes "
                         f"({8.0 * min_bytes / total_weights:.3f} bits per weight)")
    if sensitivity is None:
        if evaluate is None:
            raise ValueError("choose_precision needs evaluate or a precomputed sensitivity")
        sensitivity = layer_sensitivity(named, evaluate, low=low, baseline=high, _low_q=low_q,
                                        _base_q=high_q)
    missing = set(names) - set(sensitivity.errors)
    if missing:
        raise ValueError(f"sensitivity lacks layers {sorted(missing)}")
    delta = np.array([sensitivity.errors[k] - sensitivity.baseline for k in names])
    chosen = _select(delta, hb - lb_, int(hb.sum()) - budget)
    assignment = {k: ("low" if c else "high") for k, c in zip(names, chosen)}
    qtensors = {k: (low_q[k] if c else high_q[k]) for k, c in zip(names, chosen)}
    nbytes = int(sum(q.nbytes for q in qtensors.values()))
    measured = _call(evaluate, qtensors) if evaluate is not None else None
    return MixedPlan(assignment, qtensors, nbytes, 8.0 * nbytes / total_weights,
                     float(sensitivity.baseline + delta[chosen].sum()), measured, sensitivity)


def _select(delta: np.ndarray, saving: np.ndarray, need: int) -> np.ndarray:
    """Boolean mask of layers to move to the low format: total ``saving >= need`` with the least
    total ``delta`` (layers that save nothing are never moved; ties: fewer, earlier layers)."""
    n = len(delta)
    useful = saving > 0
    if n <= EXHAUSTIVE_LIMIT:
        # every subset, as bit masks; subset s moves layer i iff bit i of s is set
        subsets = np.arange(1 << n, dtype=np.int64)
        bits = ((subsets[:, None] >> np.arange(n)) & 1).astype(bool) & useful
        total_saving = bits @ saving
        total_delta = bits @ delta
        ok = total_saving >= need
        # least delta; among equal deltas the fewest layers, then the lowest subset number
        cost = np.where(ok, total_delta, np.inf)
        best = np.lexsort((subsets, bits.sum(axis=1), cost))[0]
        return bits[best]
    chosen = np.zeros(n, bool)
    # layers whose low format does not hurt: always take them (they save bytes for free)
    free = useful & (delta <= 0)
    chosen |= free
    saved = int(saving[chosen].sum())
    ratio = np.where(useful, np.maximum(delta, 0) / np.maximum(saving, 1), np.inf)
    for i in np.lexsort((np.arange(n), ratio)):
        if saved >= need:
            break
        if useful[i] and not chosen[i]:
            chosen[i] = True
            saved += int(saving[i])
    # return the costliest layers to the high format while the budget still holds
    for i in np.argsort(-delta, kind="stable"):
        if chosen[i] and delta[i] > 0 and saved - int(saving[i]) >= need:
            chosen[i] = False
            saved -= int(saving[i])
    return chosen
