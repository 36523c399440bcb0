"""Plain-NumPy reference of the element-wise kernels and of calibration (re-exported by
:mod:`lowbit.reference`): quantize, dequantize, fake_quantize(_grad), pack_int4 / unpack_int4,
calibrate.

Written to read like the formulas of the API contract. They share argument validation with the
compiled API (:mod:`lowbit._checks`, so both raise the same errors); of its arithmetic they
share only the calibration formulas of :mod:`lowbit._calib` (scale and zero point from a
range, the percentile ranges, the mse search), which both calibrate paths call. Every compiled
path must match them bit for bit.
"""

from __future__ import annotations

import numpy as np

from . import _calib, _checks, _checks_formats, _formats

__all__ = ["quantize", "dequantize", "calibrate", "pack_int4", "unpack_int4",
           "fake_quantize", "fake_quantize_grad"]

_F32 = np.float32


def quantize(x, scale, zero_point=None, *, dtype="int8", axis=None, group_size=None, out=None,
             packed=False):
    """``clamp(round_half_to_even(x / scale) + zero_point, qmin, qmax)``, see lowbit.quantize."""
    fmt = _checks_formats.route(scale, zero_point, dtype, axis, group_size)
    if fmt is not None:
        return _quantize_format(x, *fmt, out, packed)
    spec = _checks.quant_spec(x, scale, zero_point, dtype, axis, group_size)
    shape, storage = _checks.quantized_shape(spec, packed)
    out = _checks.check_out(out, shape, storage, x)
    _checks.require_no_nan(spec.x)
    s = _checks.expand(spec.scale, spec.x.shape, spec.gran)
    zp = _checks.expand(spec.zp, spec.x.shape, spec.gran).astype(_F32)
    with np.errstate(over="ignore", under="ignore"):
        q = np.rint(spec.x / s)                                 # IEEE float32 division, ties to even
        q = np.clip(q + zp, spec.dt.qmin, spec.dt.qmax)          # +-inf land on qmin / qmax
    q = q.astype(spec.dt.storage)
    if packed:
        q = pack_int4(q, axis=-1)
    return _checks.finish(q, out)


def dequantize(q, scale, zero_point=None, *, axis=None, group_size=None, out=None, packed=None,
               n=None, dtype=None):
    """``float32(int32(q) - int32(zero_point)) * scale``, see lowbit.dequantize."""
    fmt = _checks_formats.route(scale, zero_point, dtype, axis, group_size)
    if fmt is not None:
        return _dequantize_format(q, *fmt, out, _checks_formats.packed_flag(packed), n)
    if dtype is not None:
        raise ValueError(f"dtype must be None (integer codes) or one of "
                         f"{sorted(_checks_formats.FORMATS)}, got {dtype!r}")
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
    fmt = _checks_formats.route(scale, zero_point, dtype, axis, group_size)
    if fmt is not None:
        q = _quantize_format(x, *fmt, None, False)
        return _dequantize_format(q, *fmt, None, False, None)
    scale, zero_point, dtype, axis, group_size = _checks.unpack_qparams(
        scale, zero_point, dtype, axis, group_size)
    q = quantize(x, scale, zero_point, dtype=dtype, axis=axis, group_size=group_size)
    return dequantize(q, scale, zero_point, axis=axis, group_size=group_size)


def fake_quantize_grad(x, grad, scale, zero_point=None, *, dtype="int8", axis=None,
                       group_size=None):
    """Straight-through estimator: ``grad`` where the rounded value is in range, else +0.0."""
    fmt = _checks_formats.route(scale, zero_point, dtype, axis, group_size)
    if fmt is not None:
        return _checks_formats.fake_quantize_grad(x, grad, *fmt)
    spec = _checks.quant_spec(x, scale, zero_point, dtype, axis, group_size)
    g = _checks.grad_array(grad, spec.x.shape)
    _checks.require_no_nan(spec.x)
    s = _checks.expand(spec.scale, spec.x.shape, spec.gran)
    zp = _checks.expand(spec.zp, spec.x.shape, spec.gran).astype(_F32)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        r = np.rint(spec.x / s) + zp
    inside = (r >= spec.dt.qmin) & (r <= spec.dt.qmax)
    return np.where(inside, g, _F32(0.0)).astype(_F32, copy=False)


def _codes(y, fmt):
    """The codes of ``y = x / scale`` in an element format (lowbit._formats)."""
    if fmt.kind == 0:
        return _formats.encode(y, fmt.name)
    return _formats.encode_thresholds(y, _formats.thresholds(_formats.NF4_LEVELS))


def _quantize_format(x, fmt, scale, axis, group_size, out, packed):
    xf = _checks.float_array(x, "x")
    gran = _checks.granularity(xf.shape, axis, group_size)
    s = _checks.scale_array(scale, gran)
    shape = _checks_formats.packed_shape(xf.shape, fmt, bool(packed))
    out = _checks.check_out(out, shape, np.uint8, x)
    _checks.require_no_nan(xf)
    with np.errstate(over="ignore", under="ignore"):
        codes = _codes(xf / _checks.expand(s, xf.shape, gran), fmt)   # IEEE float32 division
    if packed:
        codes = _formats.pack_nibbles(codes, axis=-1)
    return _checks.finish(codes, out)


def _dequantize_format(q, fmt, scale, axis, group_size, out, packed, n):
    codes, shape = _checks_formats.code_array(q, fmt, packed, n)
    gran = _checks.granularity(shape, axis, group_size)
    s = _checks.scale_array(scale, gran)
    out = _checks.check_out(out, shape, _F32, q)
    if packed:
        codes = _formats.unpack_nibbles(codes, axis=-1, n=shape[-1])
    with np.errstate(over="ignore", under="ignore"):
        x_hat = _formats.decode(codes, fmt.name if fmt.kind == 0 else "nf4")
        x_hat = (x_hat * _checks.expand(s, shape, gran)).astype(_F32, copy=False)
    return _checks.finish(x_hat, out)


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


def calibrate(x, dtype="int8", *, symmetric=True, axis=None, group_size=None, method="minmax",
              percentile=99.99):
    """Choose scale and zero point for x; see lowbit.calibrate."""
    dt, xf, gran = _checks_formats.calib_spec(x, dtype, axis, group_size, method,
                                              percentile, symmetric)
    _checks.require_finite(xf, "calibration")
    if method == "mse":
        lo, hi = _calib.slot_range(xf, gran, "minmax", percentile, symmetric)
        return _calib.mse_search(xf, lo, hi, dt, gran, symmetric, fake_quantize)
    lo, hi = _calib.slot_range(xf, gran, method, percentile, symmetric)
    return _calib.from_range(lo, hi, dt, gran, symmetric)
