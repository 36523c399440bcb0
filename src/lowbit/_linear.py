"""``lb.linear``: ``x @ W.T + bias`` with a quantized weight ``W`` (a :class:`QTensor`).

The arithmetic runs in C++ (``cpp/runtime/linear.cpp``, contract in ``lowbit/linear.h``): each
row of ``x`` is quantized while it is packed for the integer GEMM kernels, the int32 sums of
every output tile (per group of K for grouped weights) go through the float epilogue on the
thread that made them and land in the float32 output; weight-only calls dequantize the packed
weights on the fly into float FMA kernels. The weights are packed once per packed layout and
kept in the QTensor's cache (:func:`_weights`). Everything below the argument checks goes
through :func:`_linear_2d`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Optional, Union

import numpy as np

from . import _checks, _core, _gemm
from ._checks_linear import format_linear_spec, linear_spec
from ._typing import ArrayLike, FloatArray, Scale, ZeroPoint

if TYPE_CHECKING:
    from ._fqtensor import FormatTensor
    from ._qtensor import QTensor

__all__ = ["linear"]

_F32 = np.float32


def linear(x: ArrayLike, w_q: "Union[QTensor, FormatTensor]", bias: Optional[ArrayLike] = None, *,
           act_dtype: Optional[str] = "int8", act_scale: Optional[Scale] = None,
           act_zero_point: ZeroPoint = None) -> FloatArray:
    """Linear layer ``x @ W.T + bias`` with quantized weights.

    Parameters
    ----------
    x : array_like of float16, float32 or float64, shape (..., in)
        Any leading shape; computed in float32.
    w_q : QTensor, shape (out, in)
        Quantized per output channel (``axis=0``) or per group along ``in``
        (``axis=1, group_size=g``); any dtype (int8, uint8, int4, uint4), symmetric or not.
        A per-tensor QTensor is taken as per-channel with equal scales.
    bias : array_like of float, shape (out,), optional
    act_dtype : {"int8", "uint8", None}
        ``"int8"``: activations quantized per row, symmetric (``absmax / 127``).
        ``"uint8"``: per row, asymmetric min-max. The product then runs in integers with int32
        accumulation. ``None``: weight-only, ``x @ dequantize(W).T`` in float32.
    act_scale : float, array_like of shape (1,), or QParams, optional
        A static (calibrated, e.g. by :class:`lowbit.Observer`) per-tensor activation scale
        used for every row instead of the dynamic per-row one. A QParams must be per-tensor and
        of dtype ``act_dtype``.
    act_zero_point : int, optional
        With ``act_scale`` (not with a QParams): the activation zero point (default 0).

    Returns
    -------
    ndarray of float32, shape (..., out)

    Raises
    ------
    TypeError
        ``w_q`` not a QTensor; ``x`` or ``bias`` not floating point.
    ValueError
        ``x.shape[-1] != in``; ``w_q`` not 2-D or quantized along axis 1 without groups;
        ``bias`` not of shape ``(out,)``; an unknown ``act_dtype``; NaN or infinity in ``x``
        with dynamic activation quantization (NaN with a static scale); a bad static scale or
        zero point.

    Notes
    -----
    With ``act_dtype`` int8/uint8 the result equals :func:`lowbit.reference.linear` bit for bit
    on every ISA path:
    ``y[m, n] = float32(acc[m, n]) * (a_scale[m] * w_scale[n]) + bias[n]`` for per-channel
    weights, where ``acc = sum_k (a_q[m,k] - a_zp[m]) * (w_q[n,k] - w_zp[n])`` in wrapping int32;
    for per-group weights ``t = sum_j float32(acc_j[m, n]) * w_scale[n, j]`` (groups ascending,
    one float32 rounding per operation) and ``y = t * a_scale[m] + bias[n]``.
    Weight-only (``act_dtype=None``) agrees with the reference within
    ``|y - y_ref| <= 1e-5 * (||x[m]|| * ||W[n]|| + |bias[n]|) + (in + 1) * 2**-149``
    (the last term: near float32 underflow every product and partial sum may round to the
    subnormal grid).

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> w = np.array([[1.0, -2.0], [0.5, 0.25]], np.float32)
    >>> w_q = lb.QTensor.quantize(w, "int8", axis=0)
    >>> x, b = np.array([2.0, 1.0], np.float32), np.array([0.0, 1.0], np.float32)
    >>> lb.linear(x, w_q, b)                  # exact: [0, 2.25]
    array([0.       , 2.2539525], dtype=float32)
    >>> lb.linear(x, w_q, b, act_dtype=None)  # weight-only
    array([0.01574802, 2.2519684 ], dtype=float32)
    """
    from ._fqtensor import FormatTensor
    if isinstance(w_q, FormatTensor):
        return _linear_format(x, w_q, bias, act_dtype, act_scale, act_zero_point)
    spec = linear_spec(x, w_q, bias, act_dtype, act_scale, act_zero_point)
    return _linear_2d(spec).reshape(spec.out_shape)


def _linear_format(x, w_q, bias, act_dtype, act_scale, act_zero_point) -> np.ndarray:
    """Weight-only linear for a weight in a float / non-uniform format."""
    from ._fqtensor import linear_weight_only
    x2, b, out_shape = format_linear_spec(x, w_q, bias, act_dtype, act_scale, act_zero_point)
    return linear_weight_only(x2, w_q, b).reshape(out_shape)


def _linear_2d(spec) -> np.ndarray:
    """``(M, K)`` float32 -> ``(M, N)`` float32 for a checked spec: the kernel entry point."""
    m = spec.x2.shape[0]
    n, k = spec.w.shape
    if m == 0 or n == 0 or k == 0:
        return _degenerate(spec)
    out = np.empty((m, n), _F32)
    bias = spec.bias if spec.bias is not None else np.zeros(0, _F32)
    act = 0 if spec.act is None else (1 if spec.act.name == "int8" else 2)
    static = spec.static_scale is not None
    scale = float(spec.static_scale[0]) if static else 1.0
    zp = int(spec.static_zp[0]) if static else 0

    def run(layout):
        lw = _weights(spec, layout)
        return _core.linear_f32(spec.x2, lw.data, lw.layout, lw.geometry, lw.ws, lw.zb, lw.cs,
                                spec.bias is not None, bias, act, static, scale, zp, out)

    status = _gemm._with_active_layout(run)
    if status & _NONFINITE:
        raise _checks.nonfinite_error("dynamic activation quantization")
    if status & _NAN:
        raise _checks.nan_error()
    if status & _OVERFLOW:
        raise ValueError("the range of x is too wide: its scale overflows float32 (dynamic "
                         "per-row activation quantization of x)")
    return out


# status bits of _core.linear_f32 (lowbit/linear.h)
_NONFINITE, _NAN, _OVERFLOW = 1, 2, 4


class _Weights(NamedTuple):
    """A QTensor's weight packed for ``_core.linear_f32`` (kept in its cache, keyed by layout)."""

    data: np.ndarray               # uint8: the GEMM's B of the (K', N) weight, K' the padded K
    colsum: np.ndarray             # int32: its column sums (kept with it; unused by linear)
    layout: str                    # the packed layout (the active path's when packed)
    geometry: tuple                # (K', N, bits, K, g, gpad, ngroups, grouped, zb uniform)
    ws: np.ndarray                 # float32 (ceil(N/NR), G, NR): scales, panel-major
    zb: np.ndarray                 # int32, the same layout: zero point of u = w + bias
    cs: np.ndarray                 # int32, the same layout: sum of u over each group


def _weights(spec, layout: str) -> _Weights:
    """The packed weight of ``spec.w`` for the active path (expected in ``layout``), built once
    per packed layout and cached in the QTensor."""
    def build():
        lw = _pack_weights(spec)
        if lw.layout != layout:  # the active path changed meanwhile: not for this key
            raise ValueError(f"the weight was {_gemm.LAYOUT_CHANGED} {lw.layout!r}, not "
                             f"{layout!r} (the active ISA path changed)")
        return lw

    return spec.w._cached(("linear", layout), build)


def _pack_weights(spec) -> _Weights:
    """Pack ``W`` (N, K) as the GEMM's ``B = W.T`` with the per-group tables of the epilogue, in
    C++ (``lowbit::linear_pack``: groups padded to start on k-quads, panel-major tables of the
    active path's panel width)."""
    w = spec.w
    n, k = w.shape
    dt = _checks.DTYPES[w.dtype]
    grouped = bool(spec.grouped)
    ngroups = -(-k // int(w.group_size)) if grouped else 1
    scale = np.ascontiguousarray(np.asarray(spec.w_scale, _F32).reshape(n, ngroups))
    zp = np.ascontiguousarray(np.asarray(spec.w_zp).astype(np.int32).reshape(n, ngroups))
    data = np.ascontiguousarray(w.data).view(np.uint8)
    packed, colsum, layout, geo, ws, zb, cs = _core.linear_pack(
        data, k, dt.bits, dt.signed, grouped, int(w.group_size) if grouped else k, scale, zp)
    packed = _checks.cache_aligned(packed)
    for arr in (packed, colsum, ws, zb, cs):
        arr.setflags(write=False)
    return _Weights(packed, colsum, layout, geo, ws, zb, cs)


def _degenerate(spec) -> np.ndarray:
    """No rows, no outputs or no inputs (K = 0): the reference formulas on empty sums."""
    m = spec.x2.shape[0]
    n, k = spec.w.shape
    if m == 0 or n == 0:
        return np.zeros((m, n), _F32)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if spec.act is None:
            y = np.zeros((m, n), _F32)
        else:
            # K = 0: a dynamic row has range [0, 0], hence scale 1.0
            a_scale = np.full(m, spec.static_scale[0] if spec.static_scale is not None else 1.0,
                              _F32)
            if spec.grouped:
                y = np.zeros((m, n), _F32) * a_scale[:, None]
            else:
                y = np.zeros((m, n), _F32) * (a_scale[:, None] * spec.w_scale[None, :])
        if spec.bias is not None:
            y = y + spec.bias
    return y.astype(_F32, copy=False)
