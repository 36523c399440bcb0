"""Plain-NumPy reference implementations of every lowbit kernel.

Same signatures as the compiled functions in :mod:`lowbit`, written to read like the formulas
of the API contract. They share argument validation with the compiled API (so both raise the
same errors) but never its arithmetic. Every compiled path must match them bit for bit.
"""

from __future__ import annotations

import numpy as np

from . import _checks
from ._checks import QParams

__all__ = ["quantize", "dequantize", "calibrate", "pack_int4", "unpack_int4",
           "fake_quantize", "fake_quantize_grad", "QParams", "matmul_int", "matmul_int4",
           "linear"]

_F32 = np.float32


def _require_no_nan(x: np.ndarray) -> None:
    if np.isnan(x).any():
        raise ValueError("x contains NaN")


def quantize(x, scale, zero_point=None, *, dtype="int8", axis=None, group_size=None, out=None,
             packed=False):
    """``clamp(round_half_to_even(x / scale) + zero_point, qmin, qmax)``, see lowbit.quantize."""
    spec = _checks.quant_spec(x, scale, zero_point, dtype, axis, group_size)
    if packed and spec.dt.bits != 4:
        raise ValueError(f"packed=True needs dtype 'int4' or 'uint4', got {spec.dt.name!r}")
    shape = _packed_shape(spec.x.shape) if packed else spec.x.shape
    out = _checks.check_out(out, shape, np.uint8 if packed else spec.dt.storage, x)
    _require_no_nan(spec.x)
    s = _checks.expand(spec.scale, spec.x.shape, spec.gran)
    zp = _checks.expand(spec.zp, spec.x.shape, spec.gran).astype(_F32)
    with np.errstate(over="ignore", under="ignore"):
        q = np.rint(spec.x / s)                                 # IEEE float32 division, ties to even
        q = np.clip(q + zp, spec.dt.qmin, spec.dt.qmax)          # +-inf land on qmin / qmax
    q = q.astype(spec.dt.storage)
    if packed:
        q = pack_int4(q, axis=-1)
    return _checks.finish(q, out)


def _packed_shape(shape):
    if not shape:
        raise ValueError("packed=True needs an array with at least one dimension")
    return shape[:-1] + ((shape[-1] + 1) // 2,)


def dequantize(q, scale, zero_point=None, *, axis=None, group_size=None, out=None, packed=None,
               n=None):
    """``float32(int32(q) - int32(zero_point)) * scale``, see lowbit.dequantize."""
    spec = _checks.dequant_spec(q, scale, zero_point, axis, group_size, packed, n)
    out = _checks.check_out(out, spec.shape, _F32, q)
    qi = spec.q
    if spec.kind >= 2:
        qi = unpack_int4(qi, signed=spec.kind == 2, axis=-1, n=spec.shape[-1])
    s = _checks.expand(spec.scale, spec.shape, spec.gran)
    zp = _checks.expand(spec.zp, spec.shape, spec.gran)
    with np.errstate(over="ignore", under="ignore"):
        x_hat = (qi.astype(np.int32) - zp).astype(_F32) * s
    return _checks.finish(x_hat.astype(_F32, copy=False), out)


def fake_quantize(x, scale, zero_point=None, *, dtype="int8", axis=None, group_size=None):
    """``dequantize(quantize(x))``, see lowbit.fake_quantize."""
    scale, zero_point, dtype, axis, group_size = _checks.unpack_qparams(
        scale, zero_point, dtype, axis, group_size)
    q = quantize(x, scale, zero_point, dtype=dtype, axis=axis, group_size=group_size)
    return dequantize(q, scale, zero_point, axis=axis, group_size=group_size)


def fake_quantize_grad(x, grad, scale, zero_point=None, *, dtype="int8", axis=None,
                       group_size=None):
    """Straight-through estimator: ``grad`` where the rounded value is in range, else +0.0."""
    spec = _checks.quant_spec(x, scale, zero_point, dtype, axis, group_size)
    g = _checks.float_array(grad, "grad")
    if g.shape != spec.x.shape:
        raise ValueError(f"grad has shape {g.shape}; expected {spec.x.shape} (the shape of x)")
    _require_no_nan(spec.x)
    s = _checks.expand(spec.scale, spec.x.shape, spec.gran)
    zp = _checks.expand(spec.zp, spec.x.shape, spec.gran).astype(_F32)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        r = np.rint(spec.x / s) + zp
    inside = (r >= spec.dt.qmin) & (r <= spec.dt.qmax)
    return np.where(inside, g, _F32(0.0)).astype(_F32, copy=False)


def pack_int4(q, *, axis=-1):
    """Two 4-bit values a byte along ``axis``: element 2i in the low nibble, 2i+1 in the high."""
    qa, dt = _checks.int4_input(q)
    a = _checks.normalize_axis(axis, qa.ndim)
    if qa.size and (qa.min() < dt.qmin or qa.max() > dt.qmax):
        raise _checks.pack_int4_range_error(qa, dt)
    v = np.moveaxis(qa, a, -1).astype(np.uint8) & 0x0F
    if v.shape[-1] % 2:
        v = np.concatenate([v, np.zeros(v.shape[:-1] + (1,), np.uint8)], axis=-1)
    packed = v[..., 0::2] | (v[..., 1::2] << 4)
    return np.ascontiguousarray(np.moveaxis(packed, -1, a))


def unpack_int4(packed, *, signed=True, axis=-1, n=None):
    """Inverse of pack_int4: int8 (signed) or uint8 values, ``n`` of them along ``axis``."""
    pa = _checks.packed_input(packed)
    a = _checks.normalize_axis(axis, pa.ndim)
    n = _checks.unpacked_length(pa.shape[a], n)
    p = np.moveaxis(pa, a, -1)
    nib = np.stack([p & 0x0F, p >> 4], axis=-1).reshape(p.shape[:-1] + (2 * p.shape[-1],))
    nib = nib[..., :n]
    if signed:
        nib = ((nib.astype(np.int16) ^ 8) - 8).astype(np.int8)
    return np.ascontiguousarray(np.moveaxis(nib, -1, a))


# --------------------------------------------------------------------------- calibration


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


def _range(x, gran, method, percentile, symmetric):
    if method == "percentile":
        with np.errstate(over="ignore", invalid="ignore"):  # checked by qparams_from_range
            return _percentile_range(x, gran, percentile, symmetric)
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


def calibrate(x, dtype="int8", *, symmetric=True, axis=None, group_size=None, method="minmax",
              percentile=99.99):
    """Choose scale and zero point for x; see lowbit.calibrate."""
    dt, xf, gran = _checks.calib_spec(x, dtype, axis, group_size, method, percentile)
    if not np.isfinite(xf).all():
        raise ValueError("x contains NaN or infinity; calibration needs finite values")
    if method == "mse":
        lo, hi = _range(xf, gran, "minmax", percentile, symmetric)
        return _mse_search(xf, lo, hi, dt, gran, symmetric, fake_quantize)
    lo, hi = _range(xf, gran, method, percentile, symmetric)
    if hi is None:
        hi = lo
    scale, zp = qparams_from_range(lo, hi, dt, symmetric)
    return _checks.make_qparams(scale, zp, dt, gran)


def _mse_search(xf, lo, hi, dt, gran, symmetric, fake_quantize_fn):
    """Tries each clipping ratio (widest first) and keeps, per slot, the one with the lowest
    mean squared fake-quantization error; ties keep the wider range."""
    best_err = best_scale = best_zp = None
    for r in calibration_candidates():
        scale, zp = qparams_from_range(lo * r, hi * r, dt, symmetric)
        fq = fake_quantize_fn(xf, scale.reshape(gran.scale_shape), zp.reshape(gran.scale_shape),
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


# The integer GEMM and the linear layer live in their own files; imported last because the
# linear reference uses QTensor, which imports the compiled API, which imports this module.
from ._reference_gemm import matmul_int, matmul_int4  # noqa: E402
from ._reference_linear import dynamic_act_qparams, linear  # noqa: E402
