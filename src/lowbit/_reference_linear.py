"""Plain-NumPy reference of ``linear`` (re-exported by :mod:`lowbit.reference`).

It fixes the float order of the epilogue, which every compiled path must follow bit for bit in
the integer-activation modes:

1. Activations are quantized per row ``m`` of ``x`` (flattened to ``(M, in)``):
   ``act_dtype="int8"``: ``a_scale[m] = absmax(x[m]) / 127``, ``a_zp[m] = 0``;
   ``act_dtype="uint8"``: the asymmetric min-max formula of ``calibrate`` for uint8
   (``lo = min(0, min x[m])``, ``hi = max(0, max x[m])``, ``a_scale = (hi - lo) / 255``,
   ``a_zp = clamp(rint(0 - lo / a_scale), 0, 255)``); a zero or subnormal scale becomes 1.0.
   A static ``act_scale`` / ``act_zero_point`` is used for every row instead.
   ``a_q = quantize(x, a_scale, a_zp)`` with the lowbit quantize semantics.
2. Per-channel weights (a per-tensor weight counts as per-channel with equal scales):
   ``acc[m, n] = sum_k (a_q[m, k] - a_zp[m]) * (w_q[n, k] - w_zp[n])`` in
   wrapping int32; ``y = float32(acc) * (a_scale[m] * w_scale[n])``, then ``y + bias[n]``.
3. Per-group weights (groups of ``g`` along ``in``, the last may be short): ``acc_j`` is the
   int32 sum over group ``j``; ``t = 0``; for ``j`` ascending
   ``t = t + float32(acc_j) * w_scale[n, j]``; ``y = t * a_scale[m]``, then ``y + bias[n]``.
   Every operation is one float32 operation (rounded on its own; never fused into an FMA).
4. Weight-only (``act_dtype=None``): ``y = x @ dequantize(W).T + bias``. The reference sums in
   float64 and rounds once; compiled paths sum in float32 in any order and agree within
   ``|y - y_ref| <= WEIGHT_ONLY_RTOL * (||x[m]|| * ||W[n]|| + |bias[n]|) + (K + 1) * 2**-149``
   (W dequantized; the absolute term covers results near float32 underflow, where each
   product and partial sum may round to the subnormal grid).

The integer sums are formed exactly in int64 and then wrapped to int32, which equals wrapping
int32 accumulation because reduction modulo 2**32 commutes with + and *.
"""

from __future__ import annotations

import numpy as np

from . import _calib, _checks, _formats
from ._bases import QTensorBase
from ._checks_linear import format_linear_spec, group_slices, linear_spec
from ._reference_quant import dequantize, quantize, unpack_int4

__all__ = ["linear", "dynamic_act_qparams", "WEIGHT_ONLY_RTOL"]

_F32 = np.float32

#: Documented agreement of weight-only ``linear`` with the reference (see the module docstring).
WEIGHT_ONLY_RTOL = 1e-5


def dynamic_act_qparams(x2, act_dtype):
    """Per-row activation scale and zero point of a float32 ``(M, K)`` array.

    Parameters
    ----------
    x2 : ndarray of float32, shape (M, K)
        Finite values.
    act_dtype : {"int8", "uint8"}
        int8: symmetric, ``scale = absmax(row) / 127``, zero point 0. uint8: asymmetric
        min-max (ONNX DynamicQuantizeLinear per row).

    Returns
    -------
    scale : ndarray of float32, shape (M,)
    zero_point : ndarray of int32, shape (M,)

    Raises
    ------
    ValueError
        NaN or infinity in a row, or a range whose scale overflows float32.
    """
    x2 = np.asarray(x2, _F32)
    _checks.require_finite(x2, "dynamic activation quantization")
    dt = _checks.DTYPES[act_dtype]
    if x2.shape[1] == 0:
        lo = hi = np.zeros(x2.shape[0], _F32)
    else:
        lo, hi = x2.min(axis=1), x2.max(axis=1)
    scale, zp = _calib.qparams_from_range(lo, hi, dt, symmetric=dt.name == "int8")
    return scale.astype(_F32), zp.astype(np.int32)


def _format_values(w):
    """The float32 values of a weight in a float / non-uniform format (a FormatTensor), by
    the oracle of lowbit._formats."""
    n = w.shape[-1]
    packed = w.data.shape != tuple(w.shape)
    if w.dtype in _formats.MX_DTYPES:
        a = w.axis
        return _formats.dequantize_mx(w.data, w.exps, w.dtype, axis=a, packed=packed,
                                      n=w.shape[a] if packed else None)
    if w.levels is not None:
        return _formats.dequantize_codebook(w.data, w.levels, axis=0, packed=packed,
                                            n=n if packed else None)
    return dequantize(w.data, w.scale, axis=w.axis, group_size=w.group_size, dtype=w.dtype,
                      packed=packed, n=n if packed else None)


def _linear_format(x, w, bias, act_dtype, act_scale, act_zero_point):
    """Weight-only ``x @ W.T + bias`` for a format weight: float64 products of the decoded
    values, rounded to float32 (the compiled kernels agree within the weight-only
    tolerance)."""
    x2, b, out_shape = format_linear_spec(x, w, bias, act_dtype, act_scale, act_zero_point)
    y = (x2.astype(np.float64) @ _format_values(w).astype(np.float64).T).astype(_F32)
    if b is not None:
        y = y + b
    return y.reshape(out_shape)


def linear(x, w_q, bias=None, *, act_dtype="int8", act_scale=None, act_zero_point=None):
    """Reference of :func:`lowbit.linear`: ``x @ W.T + bias`` in the float order above."""
    if isinstance(w_q, QTensorBase) and w_q.zero_point is None:  # a float / non-uniform format
        return _linear_format(x, w_q, bias, act_dtype, act_scale, act_zero_point)
    spec = linear_spec(x, w_q, bias, act_dtype, act_scale, act_zero_point)
    x2, w = spec.x2, spec.w
    m = x2.shape[0]
    n, k = w.shape

    if spec.act is None:                                             # weight-only
        packed = w.dtype if _checks.DTYPES[w.dtype].bits == 4 else None
        w_hat = dequantize(w.data, w.scale, w.zero_point, axis=w.axis, group_size=w.group_size,
                           packed=packed, n=k if packed else None)
        y = (x2.astype(np.float64) @ w_hat.astype(np.float64).T).astype(_F32)
        with np.errstate(over="ignore", invalid="ignore"):
            if spec.bias is not None:
                y = y + spec.bias
        return y.reshape(spec.out_shape)

    # 1. activations, per row
    if spec.static_scale is None:
        a_scale, a_zp = dynamic_act_qparams(x2, spec.act.name)
    else:
        a_scale = np.full(m, spec.static_scale[0], _F32)
        a_zp = np.full(m, spec.static_zp[0], np.int32)
    a_q = quantize(x2, a_scale, a_zp, dtype=spec.act.name, axis=0)
    a = a_q.astype(np.int64) - a_zp.astype(np.int64)[:, None]

    # the weights, unpacked
    if _checks.DTYPES[w.dtype].bits == 4:
        w_int = unpack_int4(w.data, signed=_checks.DTYPES[w.dtype].signed, axis=-1, n=k)
    else:
        w_int = w.data
    w_int = w_int.astype(np.int64)
    w_zp = spec.w_zp.astype(np.int64)

    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if not spec.grouped:                                         # 2. per channel
            acc = (a @ (w_int - w_zp[:, None]).T).astype(np.int32)  # wraps modulo 2**32
            y = acc.astype(_F32) * (a_scale[:, None] * spec.w_scale[None, :])
        else:                                                        # 3. per group
            t = np.zeros((m, n), _F32)
            for j, ks in enumerate(group_slices(k, w.group_size)):
                acc_j = (a[:, ks] @ (w_int[:, ks] - w_zp[:, j:j + 1]).T).astype(np.int32)
                t = t + acc_j.astype(_F32) * spec.w_scale[:, j][None, :]
            y = t * a_scale[:, None]
        if spec.bias is not None:
            y = y + spec.bias
    return y.astype(_F32, copy=False).reshape(spec.out_shape)
