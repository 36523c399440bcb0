"""The compiled quantization API: normalise and validate, allocate, one _core call, return."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from . import _calib, _checks, _checks_formats, _core, _formats_api
from ._checks import QParams
from ._typing import ArrayLike, Axis, DTypeName, FloatArray, Scale, ZeroPoint

_F32 = np.float32


def quantize(x: ArrayLike, scale: Scale, zero_point: ZeroPoint = None, *,
             dtype: DTypeName = "int8", axis: Axis = None, group_size: Optional[int] = None,
             out: Optional[np.ndarray] = None, packed: bool = False) -> np.ndarray:
    """Quantize float values to 8- or 4-bit integers.

    Parameters
    ----------
    x : array_like of float16, float32 or float64
        Values to quantize (cast to float32 first). Any shape and strides.
    scale : float, array_like or QParams
        Per-tensor: a float, 0-d or shape ``(1,)``. Per-axis: shape ``(x.shape[axis],)``.
        Per-group: ``x.shape`` with ``axis`` replaced by ``ceil(x.shape[axis] / group_size)``.
        Finite and positive. A :class:`QParams` supplies zero point, dtype, axis and group.
    zero_point : int or array_like of int, optional
        Shaped like ``scale``, values in the range of ``dtype``. ``None`` means 0.
    dtype : {"int8", "uint8", "int4", "uint4", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "nf4"}
        Quantized type. 4-bit values are stored one a byte (int8 / uint8) unless ``packed``.
        The floating-point and NormalFloat formats give ``np.uint8`` codes (the format's bits;
        nf4: the level's index), need ``zero_point=None`` and follow docs/api.md's
        "Floating-point and non-uniform formats" (``c = clip(x / scale, -M, M)`` rounded to the
        format's nearest value, ties to even; nf4 by thresholds between its levels).
    axis, group_size : int, optional
        Granularity of the scales, see above.
    out : ndarray, optional
        Destination, checked (shape, dtype, writable, no overlap) before anything is written.
    packed : bool
        For int4/uint4: return uint8 with two values a byte along the last axis, equal to
        ``pack_int4(quantize(...), axis=-1)`` but in one fused pass.

    Returns
    -------
    ndarray of int8 / uint8
        ``clamp(round_half_to_even(x / scale) + zero_point, qmin, qmax)``, computed in float32
        with an IEEE division; +inf / -inf saturate to qmax / qmin.

    Raises
    ------
    ValueError
        NaN in ``x``; a scale that is not finite and positive; a zero point out of range;
        shapes that do not fit the granularity (the message names the expected shape).
    numpy.exceptions.AxisError
        ``axis`` out of range.
    TypeError
        ``x`` not floating point; ``out`` of the wrong dtype.

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> lb.quantize(np.array([-1.0, 0.25, 0.5, 100.0], np.float32), 0.5)
    array([ -2,   0,   1, 127], dtype=int8)
    """
    fmt = _checks_formats.route(scale, zero_point, dtype, axis, group_size)
    if fmt is not None:
        return _formats_api.quantize(x, fmt[0], fmt[1], fmt[2], fmt[3], out, packed)
    spec = _checks.quant_spec(x, scale, zero_point, dtype, axis, group_size)
    dt = spec.dt
    shape, storage = _checks.quantized_shape(spec, packed)
    layout = _checks.packed_layout(spec.x.shape, spec.gran) if packed else spec.gran.layout
    if packed and layout is None:
        # Scales vary along an axis other than the packed one: quantize, then pack.
        q = quantize(spec.x, spec.scale, spec.zp, dtype=dt.name, axis=spec.gran.axis,
                     group_size=spec.gran.group_size)
        out = _checks.check_out(out, shape, storage, x)
        return _checks.finish(pack_int4(q, axis=-1), out)
    out = _checks.check_out(out, shape, storage, x)
    buf: np.ndarray = np.empty(shape, storage)
    if _core.quantize(spec.x, spec.scale, spec.zp, layout, dt.qmin, dt.qmax, bool(packed),
                      buf.view(np.uint8)):
        raise _checks.nan_error()
    return _checks.finish(buf, out)


def dequantize(q: ArrayLike, scale: Scale, zero_point: ZeroPoint = None, *, axis: Axis = None,
               group_size: Optional[int] = None, out: Optional[np.ndarray] = None,
               packed: Union[str, bool, None] = None, n: Optional[int] = None,
               dtype: Optional[str] = None) -> FloatArray:
    """Map quantized integers back to float32.

    Parameters
    ----------
    q : ndarray of int8 or uint8
        Quantized values (4-bit values one a byte are plain int8 / uint8). With ``packed``,
        uint8 holding two 4-bit values a byte along the last axis.
    scale, zero_point, axis, group_size
        As in :func:`quantize`; the zero point must lie in the range of ``q``'s storage dtype.
    out : ndarray of float32, optional
        Destination, checked before anything is written.
    packed : {None, "int4", "uint4"}
        ``q`` is packed 4-bit data of this type (with a format ``dtype``: True or False).
    n : int, optional
        With ``packed``: the unpacked length of the last axis (default ``2 * q.shape[-1]``).
    dtype : {None, "fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "nf4"}
        ``q`` holds codes of this format (``np.uint8``): the result is
        ``float32(value(code)) * scale``; no zero point. None: integer ``q``.

    Returns
    -------
    ndarray of float32
        ``float32(int32(q) - int32(zero_point)) * scale``.

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> lb.dequantize(np.array([-2, 0, 1, 127], np.int8), 0.5)
    array([-1. ,  0. ,  0.5, 63.5], dtype=float32)
    """
    fmt = _checks_formats.route(scale, zero_point, dtype, axis, group_size)
    if fmt is not None:
        return _formats_api.dequantize(q, fmt[0], fmt[1], fmt[2], fmt[3], out,
                                       _checks_formats.packed_flag(packed), n)
    if dtype is not None:
        raise ValueError(f"dtype must be None (integer codes) or one of "
                         f"{sorted(_checks_formats.FORMATS)}, got {dtype!r}")
    spec = _checks.dequant_spec(q, scale, zero_point, axis, group_size, packed, n)
    out = _checks.check_out(out, spec.shape, _F32, q)
    layout = spec.gran.layout
    if spec.kind >= 2:
        layout = _checks.packed_layout(spec.shape, spec.gran)
        if layout is None:
            qi = unpack_int4(spec.q, signed=spec.kind == 2, axis=-1, n=spec.shape[-1])
            return dequantize(qi, spec.scale, spec.zp, axis=spec.gran.axis,
                              group_size=spec.gran.group_size, out=out)
    # A misaligned out (a view at an odd byte offset) is filled through an aligned buffer: the
    # kernels store through float*, which must be 4-byte aligned.
    if out is not None and out.flags.c_contiguous and out.flags.aligned:
        _core.dequantize(spec.q.view(np.uint8), spec.kind, spec.scale, spec.zp, layout, out)
        return out
    buf = np.empty(spec.shape, _F32)
    _core.dequantize(spec.q.view(np.uint8), spec.kind, spec.scale, spec.zp, layout, buf)
    return buf if out is None else _checks.finish(buf, out)


def fake_quantize(x: ArrayLike, scale: Scale, zero_point: ZeroPoint = None, *,
                  dtype: DTypeName = "int8", axis: Axis = None,
                  group_size: Optional[int] = None) -> FloatArray:
    """``dequantize(quantize(x, ...), ...)`` in one pass, bit for bit.

    Used in quantization-aware training to simulate the rounding and clipping of a
    quantized model in float32. Arguments as in :func:`quantize`.

    Returns
    -------
    ndarray of float32

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> lb.fake_quantize(np.array([0.26, -3.0], np.float32), 0.5, dtype="int4")
    array([ 0.5, -3. ], dtype=float32)
    """
    fmt = _checks_formats.route(scale, zero_point, dtype, axis, group_size)
    if fmt is not None:
        codes = _formats_api.quantize(x, fmt[0], fmt[1], fmt[2], fmt[3], None, False)
        return _formats_api.dequantize(codes, fmt[0], fmt[1], fmt[2], fmt[3], None, False, None)
    spec = _checks.quant_spec(x, scale, zero_point, dtype, axis, group_size)
    out = np.empty(spec.x.shape, _F32)
    if _core.fake_quantize(spec.x, spec.scale, spec.zp, spec.gran.layout, spec.dt.qmin,
                           spec.dt.qmax, out):
        raise _checks.nan_error()
    return out


def fake_quantize_grad(x: ArrayLike, grad: ArrayLike, scale: Scale, zero_point: ZeroPoint = None,
                       *, dtype: DTypeName = "int8", axis: Axis = None,
                       group_size: Optional[int] = None) -> FloatArray:
    """Straight-through gradient of :func:`fake_quantize`.

    Returns ``grad`` where ``qmin <= round_half_to_even(x / scale) + zero_point <= qmax`` and
    +0.0 elsewhere (values clipped by quantization pass no gradient).

    Parameters
    ----------
    x : array_like of float
        The forward input.
    grad : array_like of float, shape of ``x``
        Gradient with respect to the output of ``fake_quantize``.
    scale, zero_point, dtype, axis, group_size
        As in :func:`quantize`.

    Returns
    -------
    ndarray of float32

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> lb.fake_quantize_grad(np.array([1.0, 100.0], np.float32), np.ones(2, np.float32), 0.5)
    array([1., 0.], dtype=float32)
    """
    fmt = _checks_formats.route(scale, zero_point, dtype, axis, group_size)
    if fmt is not None:
        return _checks_formats.fake_quantize_grad(x, grad, fmt[0], fmt[1], fmt[2], fmt[3])
    spec = _checks.quant_spec(x, scale, zero_point, dtype, axis, group_size)
    g = _checks.grad_array(grad, spec.x.shape)
    out = np.empty(spec.x.shape, _F32)
    if _core.fake_quantize_grad(spec.x, g, spec.scale, spec.zp, spec.gran.layout, spec.dt.qmin,
                                spec.dt.qmax, out):
        raise _checks.nan_error()
    return out


def pack_int4(q: ArrayLike, *, axis: int = -1) -> np.ndarray:
    """Pack 4-bit values two a byte along ``axis``.

    Element ``2i`` goes to the low nibble (bits 0-3), ``2i+1`` to the high nibble; an odd
    length is padded with a zero nibble. For a 1-D array these are the bytes of ONNX INT4.

    Parameters
    ----------
    q : ndarray of int8 (values -8..7) or uint8 (values 0..15)
    axis : int

    Returns
    -------
    ndarray of uint8
        ``q.shape`` with ``axis`` of length ``ceil(q.shape[axis] / 2)``.

    Raises
    ------
    ValueError
        A value outside -8..7 (int8) or 0..15 (uint8).

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> lb.pack_int4(np.array([1, -1, 7], np.int8))
    array([241,   7], dtype=uint8)
    """
    qa, dt = _checks.int4_input(q)
    a = _checks.normalize_axis(axis, qa.ndim)
    qc = np.asarray(qa, order="C")
    shape = qc.shape
    outer, L, inner = int(np.prod(shape[:a])), shape[a], int(np.prod(shape[a + 1:]))
    out = np.empty(shape[:a] + ((L + 1) // 2,) + shape[a + 1:], np.uint8)
    # bias = -qmin: 8 for int4 input, 0 for uint4 (lowbit/kernels.h); the kernel checks the range
    if _core.pack_int4(qc.view(np.uint8), outer, L, inner, -dt.qmin, out):
        raise _checks.pack_int4_range_error(qa, dt)
    return out


def unpack_int4(packed: ArrayLike, *, signed: bool = True, axis: int = -1,
                n: Optional[int] = None) -> np.ndarray:
    """Unpack two 4-bit values a byte along ``axis`` (inverse of :func:`pack_int4`).

    Parameters
    ----------
    packed : ndarray of uint8
    signed : bool
        Return int8 values -8..7 (sign-extended nibbles) or uint8 values 0..15.
    axis : int
    n : int, optional
        Unpacked length along ``axis``: ``2 * packed.shape[axis]`` (default) or one less.

    Returns
    -------
    ndarray of int8 or uint8

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> lb.unpack_int4(np.array([241, 7], np.uint8), n=3)
    array([ 1, -1,  7], dtype=int8)
    """
    pa = _checks.packed_input(packed)
    a = _checks.normalize_axis(axis, pa.ndim)
    n = _checks.unpacked_length(pa.shape[a], n)
    pc = np.asarray(pa, order="C")
    shape = pc.shape
    outer, inner = int(np.prod(shape[:a])), int(np.prod(shape[a + 1:]))
    out = np.empty(shape[:a] + (n,) + shape[a + 1:], np.int8 if signed else np.uint8)
    _core.unpack_int4(pc, outer, n, inner, bool(signed), out.view(np.uint8))
    return out


def calibrate(x: ArrayLike, dtype: DTypeName = "int8", *, symmetric: bool = True,
              axis: Axis = None, group_size: Optional[int] = None, method: str = "minmax",
              percentile: float = 99.99) -> QParams:
    """Choose a scale and zero point for ``x``.

    Parameters
    ----------
    x : array_like of float
        Finite values (NaN or infinity raise ValueError).
    dtype : {"int8", "uint8", "int4", "uint4", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "nf4"}
        For a format: ``scale = absmax / float32(M)`` (M = 448, 57344, 6, 1), symmetric only.
    symmetric : bool
        Symmetric: ``scale = absmax / qmax_sym`` (127 or 7), zero point 0 (signed) or the
        middle of the range (uint8: 128, uint4: 8). Asymmetric: ONNX DynamicQuantizeLinear,
        ``scale = (max(0, max) - min(0, min)) / (qmax - qmin)``,
        ``zero_point = clamp(round_half_to_even(qmin - min(0, min) / scale), qmin, qmax)``.
    axis, group_size : int, optional
        Granularity, as in :func:`quantize`.
    method : {"minmax", "percentile", "mse"}
        Range from the extremes, from ``np.percentile`` (each tail loses ``100 - percentile``
        percent), or the clipping ratio ``1 - i/100`` (i < 80) with the least mean squared
        fake-quantization error (ties keep the wider range).
    percentile : float
        Used by ``method="percentile"``.

    Returns
    -------
    QParams
        A zero or subnormal scale becomes 1.0; a scale that overflows raises ValueError.

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> qp = lb.calibrate(np.array([-1.0, 0.5, 2.54], np.float32))
    >>> qp.scale, qp.zero_point
    (array([0.02], dtype=float32), array([0], dtype=int8))
    """
    dt, xf, gran = _checks_formats.calib_spec(x, dtype, axis, group_size, method,
                                              percentile, symmetric)
    nslots = int(np.prod(gran.scale_shape))
    mn = np.full(nslots, np.inf, _F32)
    mx = np.full(nslots, -np.inf, _F32)
    if _core.minmax(xf, gran.layout, mn, mx) or (
            xf.size and (np.isinf(mn).any() or np.isinf(mx).any())):
        raise _checks.nonfinite_error("calibration")
    if xf.size == 0:
        mn[:] = 0
        mx[:] = 0
    lo, hi = mn.reshape(gran.scale_shape), mx.reshape(gran.scale_shape)
    if method == "mse":
        return _calib.mse_search(xf, lo, hi, dt, gran, symmetric, fake_quantize)
    if method == "percentile":
        lo, hi = _calib.slot_range(xf, gran, method, percentile, symmetric)
    return _calib.from_range(lo, hi, dt, gran, symmetric)


__all__ = ["quantize", "dequantize", "fake_quantize", "fake_quantize_grad", "pack_int4",
           "unpack_int4", "calibrate", "QParams"]
