"""The embedded digits classifier: a small MLP (64-128-64-10, ReLU) trained on scikit-learn's
8x8 handwritten digits, with its held-out test split, shipped in ``lowbit/data/digits_mlp.npz``
(about 110 KiB; ``scripts/train_digits.py`` in the repository trained it).

Inputs are the 64 pixel values 0..16 divided by 16. The FP32 forward pass is plain NumPy; the
quantized forward runs each layer through :func:`lowbit.linear` with QTensor weights.

Examples
--------
>>> from lowbit.models import digits
>>> m = digits.load()
>>> round(100 * m.accuracy(m.forward(m.x_test)), 2)          # FP32
97.4
>>> q = m.quantize(dtype="int8", axis=0)                       # name -> QTensor
>>> round(100 * m.accuracy(m.forward(m.x_test, q)), 2)       # W8A8, dynamic activations
97.4
"""

from __future__ import annotations

import importlib.resources
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

import lowbit as lb

from . import apply_linear

__all__ = ["DigitsMLP", "load", "DATA_FILE", "FORMAT_VERSION"]

DATA_FILE = "digits_mlp.npz"
FORMAT_VERSION = 1
_F32 = np.float32


class DigitsMLP:
    """An MLP classifier ``logits = fc_n(relu(... relu(fc_1(x))))`` and its data.

    Attributes
    ----------
    layers : list of (W, b)
        float32 weights of shape ``(out, in)`` (``lb.linear``'s layout) and biases.
    names : list of str
        ``"fc1"``, ``"fc2"``, ...: the keys of weight mappings.
    x_train, x_test : ndarray of float32, shape (N, 64)
        Pixels scaled to 0..1 (``pixels / 16``).
    y_train, y_test : ndarray of int64, shape (N,)
    """

    def __init__(self, layers, x_train, y_train, x_test, y_test):
        self.layers: List[Tuple[np.ndarray, np.ndarray]] = [
            (np.asarray(w, _F32), np.asarray(b, _F32)) for w, b in layers]
        self.names = [f"fc{i + 1}" for i in range(len(self.layers))]
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test

    # ------------------------------------------------------------------------------ basics

    @property
    def weights(self) -> Dict[str, np.ndarray]:
        """name -> float32 weight (out, in)."""
        return {n: w for n, (w, _) in zip(self.names, self.layers)}

    @property
    def n_weights(self) -> int:
        return sum(w.size for w, _ in self.layers)

    @property
    def fp32_bytes(self) -> int:
        """Bytes of all weights and biases in float32."""
        return sum(w.nbytes + b.nbytes for w, b in self.layers)

    def with_layers(self, layers) -> "DigitsMLP":
        """The same data with other weights (e.g. fine-tuned ones)."""
        return DigitsMLP(layers, self.x_train, self.y_train, self.x_test, self.y_test)

    def __repr__(self) -> str:
        sizes = [self.layers[0][0].shape[1]] + [w.shape[0] for w, _ in self.layers]
        return (f"DigitsMLP({'-'.join(map(str, sizes))}, {self.n_weights} weights, "
                f"{len(self.y_train)} train / {len(self.y_test)} test images)")

    # ------------------------------------------------------------------------------ forward

    def forward(self, x, qweights: Optional[Mapping[str, object]] = None,
                act_dtype: Optional[str] = "int8") -> np.ndarray:
        """Logits ``(N, 10)`` for inputs ``x`` ``(N, 64)`` (pixels / 16).

        Parameters
        ----------
        x : array_like of float
        qweights : mapping name -> QTensor or float array, optional
            Layers named here run through :func:`lowbit.linear` (QTensor) or in float32
            (array); the others use the FP32 weights. ``None``: the FP32 forward pass.
        act_dtype : {"int8", "uint8", None}
            Activation handling of :func:`lowbit.linear` (``None``: weight-only).
        """
        h = np.asarray(x, _F32)
        q = qweights or {}
        last = len(self.layers) - 1
        for i, (name, (w, b)) in enumerate(zip(self.names, self.layers)):
            h = apply_linear(h, q.get(name, w), b, act_dtype)
            if i < last:
                h = np.maximum(h, _F32(0))
        return h

    def accuracy(self, logits, y=None) -> float:
        """Fraction of rows whose arg-max logit is the label (default: the test labels)."""
        y = self.y_test if y is None else np.asarray(y)
        return float((np.asarray(logits).argmax(axis=1) == y).mean())

    def logit_error(self, qweights, act_dtype="int8", x=None) -> float:
        """``||logits_q - logits_fp32||^2 / ||logits_fp32||^2`` (default: on the training
        split, so that choices made with it do not look at the test split)."""
        x = self.x_train if x is None else x
        ref = self.forward(x).astype(np.float64)
        got = self.forward(x, qweights, act_dtype).astype(np.float64)
        return float(((got - ref) ** 2).sum() / (ref ** 2).sum())

    # ------------------------------------------------------------------------------ quantize

    def quantize(self, **fmt) -> Dict[str, "lb.QTensor"]:
        """Every weight as ``lb.QTensor.quantize(W, **fmt)``, by name.

        A ``group_size`` at least the layer's input width gives one group per output row
        (the same numbers as per-channel scales).
        """
        return {n: lb.QTensor.quantize(w, **fmt) for n, w in self.weights.items()}

    def qat(self, weight_format: Optional[Mapping] = None, act_dtype: Optional[str] = "int8",
            *, epochs: int = 3, lr: float = 0.02, batch_size: int = 64, seed: int = 0,
            log: Optional[Callable[[str], None]] = None) -> "DigitsMLP":
        """Quantization-aware fine-tuning on the training split (:func:`lowbit.qat.train_qat`).

        Starts from the FP32 weights and trains with fake-quantized weights (``weight_format``,
        default INT4 per output channel) and activations (``act_dtype``, per row, as
        :func:`lowbit.linear` quantizes them). Returns a model with the fine-tuned float
        weights; quantize them with the same format (``m.quantize(**weight_format)``) for
        :func:`lowbit.linear`. Deterministic for a given ``seed``.
        """
        from .. import qat

        fmt = dict(weight_format) if weight_format is not None else {"dtype": "int4", "axis": 0}
        result = qat.train_qat(self.layers, self.x_train, self.y_train, weight_format=fmt,
                               act_dtype=act_dtype, epochs=epochs, lr=lr,
                               batch_size=batch_size, seed=seed, log=log)
        return self.with_layers(result.layers)


def load() -> DigitsMLP:
    """Read the MLP and its data from the package (``lowbit/data/digits_mlp.npz``).

    Raises
    ------
    FileNotFoundError
        The data file is missing (a broken install).
    ValueError
        The file has another format version or lacks entries.
    """
    res = importlib.resources.files("lowbit").joinpath("data").joinpath(DATA_FILE)
    try:
        with res.open("rb") as f, np.load(f, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"lowbit/data/{DATA_FILE} is missing from the installed "
                                f"package; reinstall lowbit") from None
    version = int(arrays.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise ValueError(f"lowbit/data/{DATA_FILE} has format version {version}; this lowbit "
                         f"reads version {FORMAT_VERSION}")
    n_layers = len(arrays["sizes"]) - 1
    try:
        layers = [(arrays[f"w{i}"], arrays[f"b{i}"]) for i in range(n_layers)]
        scale = _F32(arrays["input_scale"])
        x_train = arrays["x_train"].astype(_F32) * scale
        x_test = arrays["x_test"].astype(_F32) * scale
        y_train = arrays["y_train"].astype(np.int64)
        y_test = arrays["y_test"].astype(np.int64)
    except KeyError as e:
        raise ValueError(f"lowbit/data/{DATA_FILE} lacks entry {e}") from None
    return DigitsMLP(layers, x_train, y_train, x_test, y_test)
