"""Learned codebooks (non-uniform quantization) in the compiled API: ``fit_codebook``,
``quantize_codebook``, ``dequantize_codebook``. Codes come from the threshold encoder of the
formats kernels (linear counting up to 16 levels, a branch-free binary search beyond), values
from its table decoder, one codebook per slice through the drivers' per-slice tables. Lloyd's
iteration itself is lowbit._formats' (one copy), with the compiled assignment step."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import _checks, _core, _formats
from ._checks_formats import FormatTuple
from ._typing import ArrayLike, FloatArray

_F32 = np.float32


def _tables(lv: np.ndarray):
    """(thresholds, padded value tables) of levels (K,) or (S, K), C-contiguous float32."""
    k = lv.shape[-1]
    thr = np.ascontiguousarray(_formats.thresholds(lv), _F32)
    size = 16 if k <= 16 else 256
    table = np.zeros(lv.shape[:-1] + (size,), _F32)
    table[..., :k] = lv
    return thr, table


def _spec(lv: np.ndarray, sliced: bool) -> Tuple[FormatTuple, float, np.ndarray, np.ndarray]:
    thr, table = _tables(lv)
    k = lv.shape[-1]
    fmt: FormatTuple = (1, 0, 0, 0, k - 1, k - 1 if sliced else 0, table.shape[-1],
                        table.shape[-1] if sliced else 0)
    return fmt, 0.0, thr, table


def _rows(shape, a: Optional[int]):
    """The layout of x with the codebook axis ``a`` first (outer = slices), scale 1.0."""
    if a is None:
        size = int(np.prod(shape))
        return (1, size, 1, max(size, 1), 0, 0, 0)
    slices = shape[0]
    rest = int(np.prod(shape[1:]))
    return (slices, rest, 1, max(rest, 1), 0, 0, 0)


_ONE = np.ones(1, _F32)


def quantize_codebook(x: ArrayLike, levels: ArrayLike, *, axis: Optional[int] = None,
                      packed: bool = False) -> np.ndarray:
    """Codes of ``x`` in a learned codebook: the number of thresholds below each value.

    Parameters
    ----------
    x : array_like of float
        Finite values (NaN or infinity raise ValueError).
    levels : array_like of float32, sorted ascending
        ``(2**bits,)`` with bits 2..8 (one codebook), or ``(x.shape[axis], 2**bits)`` (one per
        slice along ``axis``).
    packed : bool
        At most 16 levels: two codes a byte along the last axis, low nibble first.

    Returns
    -------
    ndarray of uint8
        ``code = #{i : x > t[i]}`` with ``t[i] = float32((float64(L[i]) + float64(L[i+1])) / 2)``;
        a value on a threshold takes the lower code.

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> lb.quantize_codebook(np.array([0.1, 0.5, 2.0], np.float32),
    ...                      np.array([0.0, 1.0, 2.0, 3.0], np.float32))
    array([0, 0, 2], dtype=uint8)
    """
    xf = _checks.float_array(x, "x")
    a = None if axis is None else _formats._axis(axis, xf.ndim)
    lv = _formats._levels(levels, xf.shape, a)
    if packed and lv.shape[-1] > 16:
        raise ValueError("packed=True needs at most 16 levels (bits <= 4)")
    if packed and xf.ndim == 0:
        raise ValueError("packed=True needs x with at least one dimension")
    xm = xf if a in (None, 0) else np.ascontiguousarray(np.moveaxis(xf, a, 0))
    codes = np.empty(xm.shape, np.uint8)
    if _core.encode(xm, _ONE, _rows(xm.shape, a), *_spec(lv, a is not None), False, codes) or (
            xf.size and not np.isfinite(xf).all()):
        raise _checks.nonfinite_error("codebook quantization")
    if a not in (None, 0):
        codes = np.ascontiguousarray(np.moveaxis(codes, 0, a))
    if packed:
        from ._quant import pack_int4
        codes = pack_int4(codes, axis=-1)
    return codes


def dequantize_codebook(codes: ArrayLike, levels: ArrayLike, *, axis: Optional[int] = None,
                        packed: bool = False, n: Optional[int] = None) -> FloatArray:
    """``levels[code]`` as float32 (``levels[i][code]`` in slice ``i`` along ``axis``).

    ``packed=True`` unpacks ``codes`` along the last axis first (``n``: the original length,
    default ``2 * codes.shape[-1]``).

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> lb.dequantize_codebook(np.array([0, 3], np.uint8), np.array([0, 1, 2, 3], np.float32))
    array([0., 3.], dtype=float32)
    """
    c = np.asarray(codes)
    if packed:
        if c.dtype != np.uint8:
            raise TypeError(f"codes must be a uint8 array, got dtype {c.dtype}")
        if c.ndim == 0:
            raise ValueError("packed codes must have at least one dimension")
        from ._quant import unpack_int4
        c = unpack_int4(c, signed=False, axis=-1, n=n)
    elif n is not None:
        raise ValueError("n is only meaningful with packed=True")
    if c.dtype != np.uint8:
        raise TypeError(f"codes must be a uint8 array, got dtype {c.dtype}")
    a = None if axis is None else _formats._axis(axis, c.ndim)
    lv = _formats._levels(levels, c.shape, a)
    if c.size and int(c.max()) >= lv.shape[-1]:
        raise ValueError(f"codes must lie in 0..{lv.shape[-1] - 1}")
    cm = np.ascontiguousarray(c if a in (None, 0) else np.moveaxis(c, a, 0))
    out = np.empty(cm.shape, _F32)
    _core.decode(cm, _ONE, _rows(cm.shape, a), *_spec(lv, a is not None), False, out)
    if a not in (None, 0):
        out = np.ascontiguousarray(np.moveaxis(out, 0, a))
    return out


def fit_codebook(x: ArrayLike, bits: int = 4, *, axis: Optional[int] = None,
                 iters: int = 20) -> np.ndarray:
    """Fit ``2**bits`` float32 levels to ``x`` by Lloyd's k-means.

    Start at ``np.quantile(x64, (2j + 1) / (2K))`` (``K = 2**bits``, float64 data), then up to
    ``iters`` rounds of: codes by :func:`quantize_codebook`; level ``j`` = ``float32`` of the
    float64 mean of its members (a level without members unchanged); stop when no code changes.

    Parameters
    ----------
    x : array_like of float
        Finite values; at least one (per slice).
    bits : int
        2..8.
    axis : int, optional
        One codebook per slice along ``axis``: levels of shape ``(x.shape[axis], K)``.
    iters : int
        The most rounds.

    Returns
    -------
    ndarray of float32, sorted ascending along the last axis

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> lb.fit_codebook(np.array([0, 0, 1, 1, 5, 5, 9, 9], np.float32), bits=2)
    array([0., 1., 5., 9.], dtype=float32)
    """
    return _formats.fit_codebook(x, bits, axis=axis, iters=iters,
                                 assign=lambda v, lv: quantize_codebook(v, lv))


__all__ = ["fit_codebook", "quantize_codebook", "dequantize_codebook"]
