"""Activation observers: calibrate a quantization range from data seen batch by batch.

An :class:`Observer` is fed batches with ``update(x)`` and then asked for ``qparams()``, which
feeds ``lb.quantize`` or the static ``act_scale`` of ``lb.linear``.

How each method relates to :func:`lowbit.calibrate` on all the batches concatenated:

- ``"minmax"``: running minimum and maximum; ``qparams()`` equals ``calibrate`` exactly.
- ``"percentile"`` and ``"mse"``: a histogram per slot (the tensor, or each channel) of fixed
  ``bins`` count. Bin edges are multiples of a power-of-two width ``w``; when data arrive
  outside the window the width doubles (bins merge in pairs) until the window fits. Because
  the width is a power of two, every bin index is computed exactly and merging is exact, so
  the histogram equals the one built in a single pass with the final width: the result does
  not depend on how the data were split into batches or in which order they came. Memory is
  ``bins`` int64 counts per slot, whatever the amount of data.
  ``"percentile"`` interpolates order statistics inside their bin (values spread evenly in a
  bin), so the range differs from ``np.percentile`` by less than one bin width
  (``w < 2 * (max - min) / (bins - 1)``); the 0th and 100th percentiles are exact.
  ``"mse"`` scores the candidate ranges of ``calibrate`` (min-max range times
  ``1 - i/100``, ``i = 0..79``) by the squared fake-quantization error of bin centres weighted
  by their counts, instead of the error of every value. It picks ``calibrate``'s candidate or
  a neighbour; measured on all the data, the error of its choice is typically within a few
  percent of ``calibrate``'s (the fewer values per bin and the finer the dtype, the looser).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _calib, _checks, _quant
from ._typing import ArrayLike, Axis, DTypeName

__all__ = ["Observer"]


class Observer:
    """Running calibration of an activation's quantization range.

    Parameters
    ----------
    method : {"minmax", "percentile", "mse"}
        As in :func:`lowbit.calibrate` (see the module notes for how close each is).
    dtype : {"int8", "uint8", "int4", "uint4"}
    symmetric : bool
        Symmetric range (zero point 0, or the middle for unsigned dtypes) or asymmetric.
    axis : int, optional
        Per-channel along this axis of every batch (all batches must have the same number of
        dimensions and the same length along ``axis``); ``None``: one range for the tensor.
    percentile : float
        For ``method="percentile"``, in [50, 100].
    bins : int
        Histogram bins per slot (``"percentile"``/``"mse"``), at least 16.

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> obs = lb.Observer("minmax", "int8")
    >>> for batch in (np.array([0.5, -1.0]), np.array([2.54, 0.0])):
    ...     _ = obs.update(batch)
    >>> obs.qparams().scale
    array([0.02], dtype=float32)
    """

    def __init__(self, method: str = "minmax", dtype: DTypeName = "int8", *,
                 symmetric: bool = True, axis: Axis = None, percentile: float = 99.99,
                 bins: int = 2048) -> None:
        self.method = _checks.calibration_method(method)
        self.dtype = _checks.qdtype(dtype).name
        self.symmetric = bool(symmetric)
        self.axis = None if axis is None else _checks.axis_index(axis)
        self.percentile = _checks.percentile_value(percentile)
        self.bins = _checks.positive_int(bins, "bins")
        if self.bins < 16:
            raise ValueError(f"bins must be at least 16, got {self.bins}")
        # |x| suffices for a symmetric percentile; the others need the signed values
        self._abs = method == "percentile" and self.symmetric
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (the configuration stays)."""
        self._ndim: Any = None          # rank of the batches (per-channel)
        self._axis_n: Any = None        # normalised axis
        self._channels: Any = None      # length along it
        self._min: Any = None           # float32 (C,) running minimum of x
        self._max: Any = None
        self._count = 0
        # histograms (C slots): counts[c, i] holds values v with floor(v / w[c]) == j0[c] + i;
        # w[c] == 0 while slot c has seen one distinct value only (then all sit in bin 0)
        self._hist: Any = None
        self._w: Any = None
        self._j0: Any = None
        self._vmin: Any = None          # float64 (C,) extremes of the histogrammed values
        self._vmax: Any = None

    @property
    def count(self) -> int:
        """Number of values seen."""
        return self._count

    @property
    def min(self):
        """Running minimum of ``x`` (per channel), float32, or None before any data."""
        return None if self._min is None else self._min.copy()

    @property
    def max(self):
        """Running maximum of ``x`` (per channel), float32, or None before any data."""
        return None if self._max is None else self._max.copy()

    def __repr__(self) -> str:
        return (f"Observer(method={self.method!r}, dtype={self.dtype!r}, "
                f"symmetric={self.symmetric}, axis={self.axis}, count={self._count})")

    # ------------------------------------------------------------------------------ feeding

    def update(self, x: ArrayLike) -> "Observer":
        """Observe one batch.

        Parameters
        ----------
        x : array_like of float
            Finite values. Per-channel: same rank as earlier batches and the same length
            along ``axis``.

        Returns
        -------
        Observer
            ``self``, for chaining.

        Raises
        ------
        ValueError
            NaN or infinity, or a shape that does not match earlier batches.
        """
        xf = _checks.float_array(x, "x")
        _checks.require_finite(xf, "calibration")
        rows = self._rows(xf)                                # (C, n) float32
        if rows.shape[1] == 0:
            return self
        lo, hi = rows.min(axis=1), rows.max(axis=1)
        if self._min is None:
            self._min, self._max = lo, hi
        else:
            self._min = np.minimum(self._min, lo)
            self._max = np.maximum(self._max, hi)
        self._count += rows.size
        if self.method != "minmax":
            self._add_to_histogram(np.abs(rows) if self._abs else rows)
        return self

    def _rows(self, xf: np.ndarray) -> np.ndarray:
        if self.axis is None:
            return xf.reshape(1, -1)
        if self._ndim is None:
            a = _checks.normalize_axis(self.axis, xf.ndim)
            self._ndim, self._axis_n, self._channels = xf.ndim, a, xf.shape[a]
        elif xf.ndim != self._ndim or xf.shape[self._axis_n] != self._channels:
            raise ValueError(f"x has shape {xf.shape}; earlier batches had {self._ndim} "
                             f"dimensions and {self._channels} channels along axis "
                             f"{self._axis_n}")
        return np.moveaxis(xf, self._axis_n, 0).reshape(self._channels, -1)

    def _add_to_histogram(self, v: np.ndarray) -> None:
        v = v.astype(np.float64)                             # exact: every float32 is a float64
        c = v.shape[0]
        bmin, bmax = v.min(axis=1), v.max(axis=1)
        if self._hist is None:
            self._hist = np.zeros((c, self.bins), np.int64)
            self._w = np.zeros(c)
            self._j0 = np.zeros(c, np.int64)
            self._vmin, self._vmax = bmin, bmax
        else:
            bmin = np.minimum(bmin, self._vmin)
            bmax = np.maximum(bmax, self._vmax)
        w0 = self._w
        safe = np.where(w0 > 0, w0, 1.0)
        stale = np.where(w0 > 0, (np.floor(bmin / safe) < self._j0)
                         | (np.floor(bmax / safe) >= self._j0 + self.bins), bmin < bmax)
        for ch in np.flatnonzero(stale):                     # slots whose window must move
            self._regrid(int(ch), float(bmin[ch]), float(bmax[ch]))
        self._vmin, self._vmax = bmin, bmax
        # bin index of every value: floor(v / w) - j0 (exact: w is a power of two)
        w = self._w[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            j = np.where(w > 0, np.floor(v / np.where(w > 0, w, 1.0)), 0.0)
        idx = (j.astype(np.int64) - self._j0[:, None]) + np.arange(c)[:, None] * self.bins
        self._hist += np.bincount(idx.ravel(), minlength=c * self.bins).reshape(c, self.bins)

    def _regrid(self, ch: int, lo: float, hi: float) -> None:
        """Widen slot ``ch``'s bins (by powers of two) until [lo, hi] fits in the window."""
        w_old = self._w[ch]
        if lo == hi:                                         # one distinct value so far
            return
        w = w_old if w_old > 0 else _pow2_floor((hi - lo) / self.bins)
        while math.floor(hi / w) - math.floor(lo / w) + 1 > self.bins:
            w *= 2.0
        j0 = math.floor(lo / w)
        counts = self._hist[ch].copy()
        self._hist[ch] = 0
        if w_old == 0:                                       # all earlier values equal vmin
            if counts.sum():
                self._hist[ch, math.floor(self._vmin[ch] / w) - j0] = counts.sum()
        else:
            f = int(round(w / w_old))                        # a power of two
            old_j = self._j0[ch] + np.arange(self.bins)
            new_i = np.floor_divide(old_j, f) - j0
            np.add.at(self._hist[ch], new_i[counts > 0], counts[counts > 0])
        self._w[ch], self._j0[ch] = w, j0

    # ------------------------------------------------------------------------------ results

    def qparams(self) -> _checks.QParams:
        """The quantization parameters for everything seen so far.

        Returns
        -------
        QParams
            Per-tensor (``scale.shape == (1,)``) or per-channel along ``axis`` (normalised for
            the rank of the batches).

        Raises
        ------
        ValueError
            Nothing observed yet, or a range so wide its scale overflows.
        """
        if self._min is None:
            raise ValueError("nothing observed yet: call update(x) with some data first")
        dt = _checks.DTYPES[self.dtype]
        if self.method == "minmax":
            lo, hi = self._min, self._max
        elif self.method == "percentile":
            p = self.percentile
            if self._abs:
                lo = hi = self._hist_percentile(p)
            else:
                lo, hi = self._hist_percentile(100.0 - p), self._hist_percentile(p)
        else:
            lo, hi = self._mse_range(dt)
        scale, zp = _calib.qparams_from_range(lo, hi, dt, self.symmetric)
        shape = (1,) if self.axis is None else (self._channels,)
        return _checks.QParams(scale.astype(np.float32).reshape(shape),
                               zp.astype(dt.storage).reshape(shape), dt.name,
                               None if self.axis is None else self._axis_n, None)

    def _centres(self) -> np.ndarray:
        """Per slot and bin, the bin centre (float64, clipped to the observed range)."""
        w = self._w[:, None]
        left = (self._j0[:, None] + np.arange(self.bins)) * w
        centre = np.where(w > 0, left + w / 2, self._vmin[:, None])
        return np.clip(centre, self._vmin[:, None], self._vmax[:, None])

    def _hist_percentile(self, p: float) -> np.ndarray:
        """np.percentile (linear interpolation) of each slot's values, estimated from the
        histogram (exact at p = 0 and p = 100), as float32."""
        counts = self._hist
        n = counts.sum(axis=1)
        cum = np.cumsum(counts, axis=1)
        rank = (n - 1) * (p / 100.0)
        k0 = np.floor(rank).astype(np.int64)
        frac = rank - k0
        v0 = self._order_stat(k0, counts, cum)
        v1 = self._order_stat(np.minimum(k0 + 1, n - 1), counts, cum)
        return (v0 + frac * (v1 - v0)).astype(np.float32)

    def _order_stat(self, k, counts, cum) -> np.ndarray:
        """The k-th smallest value (0-based) of each slot: within its bin, values are taken as
        evenly spread; the smallest and largest are exact."""
        c = counts.shape[0]
        b = (cum > k[:, None]).argmax(axis=1)                # bin holding the k-th value
        rows = np.arange(c)
        before = cum[rows, b] - counts[rows, b]
        w = self._w
        left = (self._j0 + b) * w
        est = left + w * (k - before + 0.5) / counts[rows, b]
        n = cum[:, -1]
        est = np.where(k == 0, self._vmin, est)
        est = np.where(k == n - 1, self._vmax, est)
        est = np.where(w > 0, est, self._vmin)               # one distinct value
        return np.clip(est, self._vmin, self._vmax)

    def _mse_range(self, dt):
        """The candidate range ``(min * r, max * r)`` with the least histogram-estimated squared
        fake-quantization error, per slot; ties keep the wider range."""
        centres = self._centres().astype(np.float32)
        weights = self._hist.astype(np.float64)
        c = centres.shape[0]
        best_err = best_r = None
        for r in _calib.calibration_candidates():
            scale, zp = _calib.qparams_from_range(self._min * r, self._max * r, dt, self.symmetric)
            fq = _quant.fake_quantize(centres, scale.reshape(c), zp.reshape(c), dtype=dt.name,
                                      axis=0)
            err = (((fq.astype(np.float64) - centres) ** 2) * weights).sum(axis=1)
            if best_err is None:
                best_err, best_r = err, np.full(c, r, np.float32)
                continue
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best_r = np.where(better, r, best_r).astype(np.float32)
        return self._min * best_r, self._max * best_r


def _pow2_floor(v: float) -> float:
    """The largest power of two <= v (v > 0), as a float64."""
    m, e = math.frexp(v)                                     # v = m * 2**e, 0.5 <= m < 1
    return math.ldexp(1.0, e - 1)
