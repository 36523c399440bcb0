"""Argument validation shared by :func:`lowbit.linear` and :func:`lowbit.reference.linear`.

Only shapes, dtypes and ranges; no arithmetic on the data, so both implementations raise the
same errors. A :class:`lowbit.QTensor` is recognised through its base
:class:`lowbit._bases.QTensorBase`, so this module does not import ``_qtensor`` (which imports
the compiled API).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from . import _checks
from ._bases import QTensorBase

ACT_DTYPES = ("int8", "uint8")


class LinearSpec(NamedTuple):
    x2: np.ndarray                  # float32, C-contiguous, (M, K)
    out_shape: Tuple[int, ...]      # x.shape[:-1] + (N,)
    w: QTensorBase                  # (N, K), axis 0 per channel or axis 1 per group
    grouped: bool                   # per-group weights (axis=1, group_size=g)
    w_scale: np.ndarray             # float32 (N,) per channel, (N, G) per group
    w_zp: np.ndarray                # w's zero points, same shape, storage dtype
    bias: Optional[np.ndarray]      # float32 (N,) or None
    act: Optional[_checks.QDType]   # int8 / uint8, or None (weight-only)
    static_scale: Optional[np.ndarray]  # float32 (1,): a static activation scale, or None
    static_zp: Optional[np.ndarray]     # int32 (1,), with static_scale


def linear_spec(x, w_q, bias, act_dtype, act_scale, act_zero_point) -> LinearSpec:
    """Normalise and check the arguments of ``linear``; raises the errors both share."""
    if not isinstance(w_q, QTensorBase):
        raise TypeError(f"w_q must be a lowbit.QTensor of shape (out, in) (make one with "
                        f"lb.QTensor.quantize(w, dtype, axis=0)), got {type(w_q).__name__}")
    if w_q.ndim != 2:
        raise ValueError(f"w_q must have shape (out, in), got shape {w_q.shape}")
    n, k = w_q.shape
    w_scale, w_zp = w_q.scale, w_q.zero_point
    if w_q.axis == 0 and w_q.group_size is None:
        grouped = False
    elif w_q.axis == 1 and w_q.group_size is not None:
        grouped = True
    elif w_q.axis is None:          # per tensor: the per-channel formulas with equal scales
        grouped = False
        w_scale = np.broadcast_to(w_scale.reshape(()), (n,))
        w_zp = np.broadcast_to(w_zp.reshape(()), (n,))
    else:
        raise ValueError("w_q must be quantized per output channel (axis=0), per group along "
                         f"in (axis=1, group_size=g) or per tensor; got axis={w_q.axis}, "
                         f"group_size={w_q.group_size}")
    x_ndim = np.ndim(x)
    xf = _checks.float_array(x, "x")
    if x_ndim == 0 or xf.shape[-1] != k:
        raise ValueError(f"x has shape {np.shape(x)}; its last dimension must equal "
                         f"w_q.shape[1] = {k} (the input features)")
    x2 = xf.reshape(-1, k)
    b = None
    if bias is not None:
        b = _checks.float_array(bias, "bias")
        if b.shape != (n,):
            raise ValueError(f"bias has shape {b.shape}; expected ({n},) (w_q.shape[0])")
    if act_dtype is None:
        if act_scale is not None or act_zero_point is not None:
            raise ValueError("act_scale / act_zero_point need act_dtype='int8' or 'uint8' "
                             "(act_dtype=None is weight-only: activations stay float)")
        return LinearSpec(x2, xf.shape[:-1] + (n,), w_q, grouped, w_scale, w_zp, b, None, None,
                          None)
    act = _checks.DTYPES[check_act_dtype(act_dtype)]
    s = z = None
    if act_scale is None:
        if act_zero_point is not None:
            raise ValueError("act_zero_point needs act_scale (static activation quantization); "
                             "leave both None for dynamic per-row quantization")
    else:
        scale, zp, dtype, axis, group = _checks.unpack_qparams(
            act_scale, act_zero_point, act_dtype, None, None)
        if dtype != act_dtype:
            raise ValueError(f"act_scale is a QParams of dtype {dtype!r}; act_dtype is "
                             f"{act_dtype!r}")
        if axis is not None or group is not None:
            raise ValueError("static activation quantization needs a per-tensor act_scale "
                             f"(one scale for all of x); got axis={axis}, group_size={group}")
        gran = _checks.granularity((1,), None, None)
        s = _checks.scale_array(scale, gran).reshape(1)
        z = _checks.zero_point_array(zp, gran, act.qmin, act.qmax,
                                     f"the range of {act.name}").reshape(1)
    return LinearSpec(x2, xf.shape[:-1] + (n,), w_q, grouped, w_scale, w_zp, b, act, s, z)


def check_act_dtype(act_dtype):
    """``act_dtype`` of ``linear`` (and of ``lowbit.qat``): "int8", "uint8" or None."""
    if act_dtype is not None and (not isinstance(act_dtype, str)
                                  or act_dtype not in ACT_DTYPES):
        raise ValueError(f"act_dtype must be 'int8', 'uint8' or None, got {act_dtype!r}")
    return act_dtype


def group_slices(k: int, g: int):
    """The K-ranges of the weight groups, ascending: [0, g), [g, 2g), ..., the last may be
    short."""
    return [slice(j, min(j + g, k)) for j in range(0, k, g)]


def format_linear_spec(x, w_q, bias, act_dtype, act_scale, act_zero_point):
    """The checks of ``linear`` on a weight in a float / non-uniform format (weight-only only):
    ``(x as (M, in) float32, bias or None, output shape)``."""
    if act_dtype is not None or act_scale is not None or act_zero_point is not None:
        raise ValueError(f"act_dtype={act_dtype!r}: a weight in the {w_q.dtype!r} format runs "
                         f"weight-only (act_dtype=None); integer activations need an integer "
                         f"QTensor (int8, uint8, int4, uint4)")
    if w_q.ndim != 2:
        raise ValueError(f"w_q must have shape (out, in), got shape {w_q.shape}")
    n, k = w_q.shape
    xf = _checks.float_array(x, "x")
    if np.ndim(x) == 0 or xf.shape[-1] != k:
        raise ValueError(f"x has shape {np.shape(x)}; its last dimension must equal "
                         f"w_q.shape[1] = {k} (the input features)")
    b = None
    if bias is not None:
        b = _checks.float_array(bias, "bias")
        if b.shape != (n,):
            raise ValueError(f"bias has shape {b.shape}; expected ({n},)")
    return xf.reshape(-1, k), b, xf.shape[:-1] + (n,)
