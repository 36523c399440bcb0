"""Calibration arithmetic shared by :func:`lowbit.calibrate` (and :class:`lowbit.Observer`) and
:func:`lowbit.reference.calibrate`: scale and zero point from a float32 range (API.md's min-max
formulas), the per-slot ranges (minimum / maximum, percentiles), the clipping candidates of
``method="mse"`` and the search among them.

Plain NumPy in float32, as API.md writes it. Both the compiled API and the reference import this
module, and it imports only :mod:`lowbit._checks`: that is what keeps the API from importing the
reference (and the reference from importing the API). The compiled paths differ from the
reference only in where ``lo`` and ``hi`` come from (``_core.minmax`` versus :func:`slot_range`)
and in the ``fake_quantize`` the mse search scores with.
"""

from __future__ import annotations

import numpy as np

from . import _checks

__all__ = ["calibration_candidates", "from_range", "mse_search",
           "qparams_from_range", "slot_mean_sq_error", "slot_range"]

_F32 = np.float32


def _slots(x: np.ndarray, gran):
    """x rearranged so that each scale slot's elements form one row: returns a list of
    (slot_index_array, values_2d) blocks, every row of values_2d being one slot's elements."""
    if gran.axis is None:
        return [(np.zeros(1, np.intp), x.reshape(1, -1))]
    a = gran.axis
    idx = np.arange(int(np.prod(gran.scale_shape))).reshape(gran.scale_shape)
    if gran.group_size is None:
        rest = x.size // x.shape[a] if x.shape[a] else 0
        return [(idx, np.moveaxis(x, a, 0).reshape(x.shape[a], rest))]
    g, L = gran.group_size, x.shape[a]
    blocks = []
    full = L // g
    xm, im = np.moveaxis(x, a, -1), np.moveaxis(idx, a, -1)
    if full:
        v = xm[..., : full * g].reshape(xm.shape[:-1] + (full, g))
        blocks.append((im[..., :full].reshape(-1), v.reshape(-1, g)))
    if L % g:
        v = xm[..., full * g:]
        blocks.append((im[..., full:].reshape(-1), v.reshape(-1, L % g)))
    return blocks


def _per_slot(x, gran, fn):
    """fn applied along each slot's elements, as a float32 array of gran.scale_shape."""
    out = np.empty(int(np.prod(gran.scale_shape)), np.float32)
    for idx, v in _slots(x, gran):
        out[idx.reshape(-1)] = fn(v) if v.shape[1] else 0.0
    return out.reshape(gran.scale_shape)


def qparams_from_range(lo, hi, dt, symmetric):
    """Scale and zero point from a float32 range, per API.md (min-max formulas), float32 math."""
    lo = np.asarray(lo, np.float32)
    hi = np.asarray(hi, np.float32)
    tiny = np.finfo(np.float32).tiny
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError("the range of x is too wide: it overflows float32")
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        if symmetric:
            qmax_sym = _F32(dt.qmax_sym)
            absmax = np.maximum(np.abs(lo), np.abs(hi))
            scale = (absmax / qmax_sym).astype(np.float32)
        else:
            lo = np.minimum(_F32(0), lo)
            hi = np.maximum(_F32(0), hi)
            scale = ((hi - lo) / _F32(dt.qmax - dt.qmin)).astype(np.float32)
        if not np.isfinite(scale).all():
            raise ValueError("the range of x is too wide: its scale overflows float32")
        scale = np.where(scale < tiny, _F32(1.0), scale).astype(np.float32)
        if symmetric:
            zp = np.full(scale.shape, dt.zero_point_sym)
        else:
            zp = np.clip(np.rint(_F32(dt.qmin) - lo / scale), dt.qmin, dt.qmax)
    return scale, zp.astype(dt.storage)


def from_range(lo, hi, dt, gran, symmetric) -> _checks.QParams:
    """The QParams of ``qparams_from_range(lo, hi, dt, symmetric)``, shaped by ``gran``."""
    scale, zp = qparams_from_range(lo, hi, dt, symmetric)
    return _checks.make_qparams(scale, zp, dt, gran)


def slot_range(x, gran, method, percentile, symmetric):
    """``(lo, hi)`` per slot, float32 of ``gran.scale_shape``: the minimum and maximum of each
    slot (``method="minmax"``, plain NumPy: the reference of ``_core.minmax``) or its
    percentiles (``"percentile"``; a symmetric range gives ``lo = hi =`` the percentile of
    ``|x|``)."""
    if method == "percentile":
        with np.errstate(over="ignore", invalid="ignore"):  # checked by qparams_from_range
            lo, hi = _percentile_range(x, gran, percentile, symmetric)
        return lo, lo if hi is None else hi
    lo = _per_slot(x, gran, lambda v: v.min(axis=1))
    hi = _per_slot(x, gran, lambda v: v.max(axis=1))
    return lo, hi


def _percentile_range(x, gran, percentile, symmetric):
    """np.percentile on the float32 data (linear interpolation); each tail loses 100 - p %."""
    p = float(percentile)
    if symmetric:
        return _per_slot(np.abs(x), gran, lambda v: np.percentile(v, p, axis=1)), None
    lo = _per_slot(x, gran, lambda v: np.percentile(v, 100.0 - p, axis=1))
    hi = _per_slot(x, gran, lambda v: np.percentile(v, p, axis=1))
    return lo, hi


def calibration_candidates():
    """The 80 clipping ratios of method="mse": 1 - i/100 in float32, widest first."""
    return [np.float32(1) - np.float32(i) / np.float32(100) for i in range(80)]


def slot_mean_sq_error(fq, x, gran):
    """Mean squared error of each slot, summed in float64."""
    err = (fq.astype(np.float64) - x.astype(np.float64)) ** 2
    out = np.empty(int(np.prod(gran.scale_shape)), np.float64)
    for idx, v in _slots(err, gran):
        out[idx.reshape(-1)] = v.mean(axis=1) if v.shape[1] else 0.0
    return out.reshape(gran.scale_shape)


def mse_search(xf, lo, hi, dt, gran, symmetric, fake_quantize_fn):
    """Tries each clipping ratio (widest first) and keeps, per slot, the one with the lowest
    mean squared fake-quantization error; ties keep the wider range."""
    best_err = best_scale = best_zp = None
    for r in calibration_candidates():
        scale, zp = qparams_from_range(lo * r, hi * r, dt, symmetric)
        zps = None if getattr(dt, "symmetric_only", False) else zp.reshape(gran.scale_shape)
        fq = fake_quantize_fn(xf, scale.reshape(gran.scale_shape), zps,
                              dtype=dt.name, axis=gran.axis, group_size=gran.group_size)
        err = slot_mean_sq_error(fq, xf, gran)
        if best_err is None:
            best_err, best_scale, best_zp = err, scale, zp
            continue
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_scale = np.where(better, scale, best_scale)
        best_zp = np.where(better, zp, best_zp)
    return _checks.make_qparams(best_scale, best_zp, dt, gran)
