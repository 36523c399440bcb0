"""Quantization-aware training (QAT) in NumPy: fake-quantized linear layers, the
straight-through estimator, and a small training loop for MLP classifiers.

Entry points (signatures are stable; the models and report code call them)::

    from lowbit import qat

    result = qat.train_qat(
        layers,                  # [(W (out, in) float32, b (out,) float32), ...]: an MLP,
                                 # ReLU between layers, the last layer gives logits
        x, y,                    # float (N, in) inputs, int (N,) class labels
        *, weight_format={"dtype": "int4", "axis": 0},   # kwargs of lb.QTensor.quantize
                                 # (this is the default; None: float weights)
        act_dtype="int8",        # per-row dynamic fake quantization of each layer's input,
                                 # like lb.linear(act_dtype=...); None: float activations
        epochs=10, lr=0.05, momentum=0.9, batch_size=64, weight_decay=0.0, seed=0,
        x_val=None, y_val=None,  # optional held-out data: accuracy logged per epoch
        log=None)                # optional callable(str), one line per epoch
    result.layers                # trained float32 [(W, b), ...] (copies; inputs untouched)
    result.history               # [{"epoch", "loss", "val_accuracy"}, ...]
    result.qtensors()            # [(QTensor, b), ...] in weight_format: ready for lb.linear

    qat.accuracy(layers, x, y, weight_format=None, act_dtype=None)   # simulated forward
    qat.mlp_forward(layers, x, weight_format=None, act_dtype=None)   # logits

How it works: each forward pass quantizes the current float weights with
``lb.calibrate(W, **weight_format)`` and uses ``W_fq = lb.fake_quantize(W, qp)``; the backward
pass sends the gradient of ``W_fq`` to ``W`` through the straight-through estimator
``lb.fake_quantize_grad`` (the rounding counts as identity; values clipped by the range get no
gradient; the scale is treated as a constant). Activations are fake-quantized per row with the
scales ``lb.linear`` uses (int8: ``absmax / 127``; uint8: asymmetric min-max). After training,
``lb.QTensor.quantize(W, **weight_format)`` yields exactly the weights of the last forward pass.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from . import _checks, _quant
from ._checks_linear import check_act_dtype
from ._qtensor import QTensor

__all__ = ["DEFAULT_WEIGHT_FORMAT", "FakeQuantLinear", "QATResult", "train_qat", "mlp_forward",
           "accuracy", "softmax_cross_entropy"]

_F32 = np.float32
_WEIGHT_KEYS = ("dtype", "axis", "group_size", "symmetric", "method", "percentile")
#: The default weight format of :func:`train_qat`: INT4, one scale per output channel.
DEFAULT_WEIGHT_FORMAT = MappingProxyType({"dtype": "int4", "axis": 0})


def _check_format(weight_format) -> Optional[dict]:
    if weight_format is None:
        return None
    fmt = dict(weight_format)
    unknown = set(fmt) - set(_WEIGHT_KEYS)
    if unknown:
        raise ValueError(f"weight_format has unknown keys {sorted(unknown)}; allowed: "
                         f"{_WEIGHT_KEYS} (the arguments of lb.QTensor.quantize)")
    fmt.setdefault("dtype", "int8")
    _checks.qdtype(fmt["dtype"])
    return fmt


class FakeQuantLinear:
    """A linear layer ``y = fq(x) @ fq(W).T + b`` with a straight-through backward pass.

    Parameters
    ----------
    weight : array_like of float, shape (out, in)
        Copied to float32; trained in place by the optimizer of :func:`train_qat`.
    bias : array_like of float, shape (out,), optional
        Zeros if omitted.
    weight_format : dict, optional
        Arguments of :meth:`lowbit.QTensor.quantize` (``dtype``, ``axis``, ``group_size``,
        ``symmetric``, ``method``, ``percentile``); ``None`` keeps float weights.
    act_dtype : {"int8", "uint8", None}
        Per-row dynamic fake quantization of the input, as ``lb.linear`` quantizes it.

    Attributes
    ----------
    weight, bias : ndarray of float32
    grad_weight, grad_bias : ndarray of float32
        Set by :meth:`backward`.
    """

    def __init__(self, weight, bias=None, *, weight_format=None, act_dtype="int8"):
        self.weight = np.array(_checks.float_array(weight, "weight"), copy=True)
        if self.weight.ndim != 2:
            raise ValueError(f"weight must have shape (out, in), got {self.weight.shape}")
        out = self.weight.shape[0]
        self.bias = (np.zeros(out, _F32) if bias is None
                     else np.array(_checks.float_array(bias, "bias"), copy=True))
        if self.bias.shape != (out,):
            raise ValueError(f"bias has shape {self.bias.shape}; expected ({out},)")
        self.weight_format = _check_format(weight_format)
        self.act_dtype = check_act_dtype(act_dtype)
        self.grad_weight = np.zeros_like(self.weight)
        self.grad_bias = np.zeros_like(self.bias)
        self._saved = None

    def quantized_weight(self):
        """``(W_fq, qparams)``: the fake-quantized weight of the current float weight (or the
        weight itself and None without a weight format)."""
        if self.weight_format is None:
            return self.weight, None
        f = self.weight_format
        qp = _quant.calibrate(self.weight, f["dtype"], symmetric=f.get("symmetric", True),
                              axis=f.get("axis"), group_size=f.get("group_size"),
                              method=f.get("method", "minmax"),
                              percentile=f.get("percentile", 99.99))
        return _quant.fake_quantize(self.weight, qp), qp

    def forward(self, x) -> np.ndarray:
        """``fq(x) @ fq(W).T + b`` for ``x`` of shape (..., in); saves what backward needs."""
        x = _checks.float_array(x, "x")
        k = self.weight.shape[1]
        if x.ndim == 0 or x.shape[-1] != k:
            raise ValueError(f"x has shape {x.shape}; its last dimension must be {k}")
        x2 = x.reshape(-1, k)
        qa = None
        xq = x2
        if self.act_dtype is not None and x2.shape[0]:
            qa = _quant.calibrate(x2, self.act_dtype, symmetric=self.act_dtype == "int8", axis=0)
            xq = _quant.fake_quantize(x2, qa)
        wq, qw = self.quantized_weight()
        y = xq @ wq.T + self.bias
        self._saved = (x2, xq, qa, wq, qw, x.shape)
        return y.reshape(x.shape[:-1] + (self.weight.shape[0],))

    def backward(self, grad_y) -> np.ndarray:
        """Gradients by the straight-through estimator; returns ``dL/dx``.

        ``grad_weight = ste(W, grad_y.T @ fq(x))``, ``grad_bias = sum(grad_y)``,
        ``dL/dx = ste(x, grad_y @ fq(W))``, where ``ste = lb.fake_quantize_grad`` with the
        forward pass's quantization parameters (identity where nothing was quantized).
        """
        if self._saved is None:
            raise RuntimeError("backward() needs a forward() first")
        x2, xq, qa, wq, qw, xshape = self._saved
        g = _checks.float_array(grad_y, "grad_y").reshape(x2.shape[0], -1)
        gw = g.T @ xq
        self.grad_weight = gw if qw is None else _quant.fake_quantize_grad(self.weight, gw, qw)
        self.grad_bias = g.sum(axis=0, dtype=_F32)
        gx = g @ wq
        if qa is not None:
            gx = _quant.fake_quantize_grad(x2, gx, qa)
        return gx.reshape(xshape)

    def to_qtensor(self) -> QTensor:
        """The current weight as a QTensor in ``weight_format`` (for ``lb.linear``)."""
        if self.weight_format is None:
            raise ValueError("this layer has no weight_format (float weights)")
        return QTensor.quantize(self.weight, **self.weight_format)


def softmax_cross_entropy(logits, labels) -> Tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of ``logits`` (N, C) against int ``labels`` (N,), and its
    gradient with respect to the logits (float32)."""
    z = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    n = z.shape[0]
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(n), labels].mean() if n else 0.0
    grad = np.exp(logp)
    grad[np.arange(n), labels] -= 1.0
    return float(loss), (grad / max(n, 1)).astype(_F32)


def _make_layers(layers, weight_format, act_dtype) -> List[FakeQuantLinear]:
    if not layers:
        raise ValueError("layers must be a non-empty list of (W, b) pairs")
    out = []
    for i, (w, b) in enumerate(layers):
        out.append(FakeQuantLinear(w, b, weight_format=weight_format, act_dtype=act_dtype))
        if i and out[i].weight.shape[1] != out[i - 1].weight.shape[0]:
            raise ValueError(f"layer {i} takes {out[i].weight.shape[1]} inputs but layer "
                             f"{i - 1} gives {out[i - 1].weight.shape[0]}")
    return out


def _forward(mods: Sequence[FakeQuantLinear], x) -> Tuple[np.ndarray, list]:
    h = x
    masks = []
    for i, mod in enumerate(mods):
        h = mod.forward(h)
        if i + 1 < len(mods):
            mask = h > 0
            masks.append(mask)
            h = np.where(mask, h, _F32(0))
    return h, masks


def _backward(mods, masks, grad) -> None:
    for i in range(len(mods) - 1, -1, -1):
        grad = mods[i].backward(grad)
        if i:
            grad = np.where(masks[i - 1], grad, _F32(0))


def mlp_forward(layers, x, *, weight_format=None, act_dtype=None) -> np.ndarray:
    """Logits of the MLP ``layers`` (ReLU between layers) on ``x``, with weights and
    activations fake-quantized as in training (``None``: float)."""
    mods = _make_layers(layers, _check_format(weight_format), check_act_dtype(act_dtype))
    return _forward(mods, x)[0]


def accuracy(layers, x, y, *, weight_format=None, act_dtype=None) -> float:
    """Fraction of ``x`` whose arg-max logit is the label ``y`` (simulated quantization)."""
    logits = mlp_forward(layers, x, weight_format=weight_format, act_dtype=act_dtype)
    return float((logits.argmax(axis=1) == np.asarray(y)).mean())


class QATResult(NamedTuple):
    layers: List[Tuple[np.ndarray, np.ndarray]]
    history: List[dict]
    weight_format: Optional[dict]

    def qtensors(self) -> List[Tuple[QTensor, np.ndarray]]:
        """``[(QTensor, bias), ...]`` of the trained weights in ``weight_format``."""
        if self.weight_format is None:
            raise ValueError("trained without a weight_format: the weights are float")
        return [(QTensor.quantize(w, **self.weight_format), b) for w, b in self.layers]


def train_qat(layers, x, y, *, weight_format=DEFAULT_WEIGHT_FORMAT, act_dtype="int8",
              epochs=10, lr=0.05, momentum=0.9, batch_size=64, weight_decay=0.0, seed=0,
              x_val=None, y_val=None,
              log: Optional[Callable[[str], None]] = None) -> QATResult:
    """Fine-tune an MLP classifier with fake-quantized weights and activations.

    Parameters
    ----------
    layers : list of (W, b)
        ``W`` of shape (out, in), ``b`` of shape (out,); ReLU between layers, logits out.
        Not modified (the result holds trained copies).
    x : array_like of float, shape (N, in)
    y : array_like of int, shape (N,)
        Class labels in ``0..out-1`` of the last layer.
    weight_format : dict or None
        Arguments of :meth:`lowbit.QTensor.quantize` (default ``{"dtype": "int4",
        "axis": 0}``: INT4 per output channel); ``None`` trains float weights.
    act_dtype : {"int8", "uint8", None}
        Per-row dynamic fake quantization of each layer's input, as ``lb.linear`` does.
    epochs, lr, momentum, batch_size, weight_decay : training hyper-parameters
        Mini-batch SGD with (heavy-ball) momentum; ``weight_decay`` is L2 on the weights.
    seed : int
        Seeds the shuffling: the same arguments give the same result.
    x_val, y_val : array_like, optional
        Held-out data, evaluated with the simulated quantization after each epoch.
    log : callable, optional
        Called with one line of text per epoch.

    Returns
    -------
    QATResult
        ``layers`` (trained float32 copies), ``history`` (per epoch: ``epoch``, ``loss``
        (mean training loss), ``val_accuracy`` (None without validation data)),
        ``weight_format``; ``qtensors()`` gives the weights quantized for ``lb.linear``.
    """
    fmt = _check_format(weight_format)
    act = check_act_dtype(act_dtype)
    mods = _make_layers(layers, fmt, act)
    xf = _checks.float_array(x, "x")
    labels = np.asarray(y)
    if xf.ndim != 2 or labels.shape != (xf.shape[0],):
        raise ValueError(f"x must be (N, in) and y (N,); got {xf.shape} and {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class labels, got dtype {labels.dtype}")
    batch_size = _checks.positive_int(batch_size, "batch_size")
    rng = np.random.default_rng(seed)
    velocity = [(np.zeros_like(m.weight), np.zeros_like(m.bias)) for m in mods]
    lr, momentum, wd = _F32(lr), _F32(momentum), _F32(weight_decay)
    history = []
    for epoch in range(int(epochs)):
        order = rng.permutation(xf.shape[0])
        total, seen = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            logits, masks = _forward(mods, xf[idx])
            loss, grad = softmax_cross_entropy(logits, labels[idx])
            _backward(mods, masks, grad)
            for m, (vw, vb) in zip(mods, velocity):
                vw *= momentum
                vw += m.grad_weight + wd * m.weight
                vb *= momentum
                vb += m.grad_bias
                m.weight -= lr * vw
                m.bias -= lr * vb
            total += loss * len(idx)
            seen += len(idx)
        trained = [(m.weight.copy(), m.bias.copy()) for m in mods]
        val = None
        if x_val is not None:
            val = accuracy(trained, x_val, y_val, weight_format=fmt, act_dtype=act)
        history.append({"epoch": epoch + 1, "loss": total / max(seen, 1), "val_accuracy": val})
        if log is not None:
            log(f"qat epoch {epoch + 1}/{epochs}: loss {total / max(seen, 1):.4f}"
                + ("" if val is None else f", val accuracy {val:.4f}"))
    return QATResult([(m.weight.copy(), m.bias.copy()) for m in mods], history, fmt)
