"""``lb.linear``: ``x @ W.T + bias`` with a quantized weight ``W`` (a :class:`QTensor`).

Interim implementation composed from lowbit's compiled pieces (issue 4): per-row activation
quantization with :func:`lowbit.quantize`, the integer products with :func:`lowbit.matmul_int`
on weights pre-packed once per packed layout (cached in the QTensor), and the float epilogue
in NumPy in the order :mod:`lowbit._reference_linear` fixes. Everything below the argument
checks goes through :func:`_linear_2d`, the one entry point that a fused C++ kernel (activation
quantization in the packing of ``a``, epilogue in the kernel) replaces.
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._linear_checks import group_slices, linear_spec
from ._quant import calibrate, pack_int4, quantize

try:  # the integer GEMM (issue 3); without it the products run in float64 BLAS, exactly
    from . import _gemm
except ImportError:  # pragma: no cover - only while the GEMM is not built
    _gemm = None

__all__ = ["linear"]

_F32 = np.float32


def linear(x, w_q, bias=None, *, act_dtype="int8", act_scale=None, act_zero_point=None):
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
    ``|y - y_ref| <= 1e-5 * (||x[m]|| * ||W[n]|| + |bias[n]|)``.

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
    spec = linear_spec(x, w_q, bias, act_dtype, act_scale, act_zero_point)
    return _linear_2d(spec).reshape(spec.out_shape)


def _linear_2d(spec) -> np.ndarray:
    """``(M, K)`` float32 -> ``(M, N)`` float32 for a checked spec: the kernel entry point."""
    m = spec.x2.shape[0]
    n = spec.w.shape[0]
    if m == 0:
        return np.zeros((0, n), _F32)
    if spec.act is None:
        return _weight_only(spec)
    a_q, a_scale, a_zp = _quantize_rows(spec)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if not spec.grouped:
            (acc,) = _products(a_q, a_zp, spec)
            y = acc.astype(_F32) * np.multiply.outer(a_scale, spec.w_scale)
        else:
            t = np.zeros((m, n), _F32)
            for j, acc_j in enumerate(_products(a_q, a_zp, spec)):
                t = t + acc_j.astype(_F32) * spec.w_scale[:, j][None, :]
            y = t * a_scale[:, None]
        if spec.bias is not None:
            y = y + spec.bias
    return y


def _quantize_rows(spec):
    """Activations quantized per row: (a_q, a_scale (M,) float32, a_zp (M,) int32)."""
    x2, act = spec.x2, spec.act.name
    m = x2.shape[0]
    if spec.static_scale is not None:
        a_q = quantize(x2, spec.static_scale, spec.static_zp, dtype=act)
        return (a_q, np.full(m, spec.static_scale[0], _F32),
                np.full(m, spec.static_zp[0], np.int32))
    try:
        qp = calibrate(x2, act, symmetric=act == "int8", axis=0)
    except ValueError as e:
        raise ValueError(f"{e} (dynamic per-row activation quantization of x)") from None
    a_q = quantize(x2, qp)
    return a_q, np.asarray(qp.scale, _F32), qp.zero_point.astype(np.int32)


def _products(a_q, a_zp, spec):
    """The int32 products ``(a_q - a_zp) @ (w_int - w_zp).T``, one per weight group (K
    ascending), or one for per-channel weights."""
    w, grouped, w_zp = spec.w, spec.grouped, spec.w_zp
    k = w.shape[1]
    slices = group_slices(k, w.group_size) if grouped else [slice(0, k)]
    if _gemm is not None:
        mats = w._cached(("gemm", _core.gemm_layout()), lambda: _pack_gemm(w, slices))
        for j, (ks, pm) in enumerate(zip(slices, mats)):
            zb = w_zp[:, j] if grouped else w_zp
            yield _gemm.matmul_int(np.ascontiguousarray(a_q[:, ks]), pm, a_zp, zb)
        return
    # Interim without the integer GEMM: the centered integers as float64, whose BLAS products
    # are exact (every partial sum is an integer below 2**53 for K < 1e11), then wrapped to int32.
    mats = w._cached(("numpy-float64",), lambda: _centered_f64(w, w_zp, slices, grouped))
    a = a_q.astype(np.float64) - a_zp[:, None]
    for ks, wt in zip(slices, mats):
        yield (a[:, ks] @ wt).astype(np.int64).astype(np.int32)


def _pack_gemm(w, slices):
    """One PackedMatrix per K-slice of ``w.int_repr().T`` (the ``b`` of matmul_int)."""
    w_int = w.int_repr()
    mats = []
    for ks in slices:
        b = np.ascontiguousarray(w_int[:, ks].T)
        if w.dtype in ("int4", "uint4"):
            mats.append(_gemm.pack_matrix(pack_int4(b, axis=0), dtype=w.dtype, k=b.shape[0]))
        else:
            mats.append(_gemm.pack_matrix(b))
    return tuple(mats)


def _centered_f64(w, w_zp, slices, grouped):
    w_int = w.int_repr().astype(np.float64)
    zp = w_zp.astype(np.float64)
    out = []
    for j, ks in enumerate(slices):
        z = zp[:, j] if grouped else zp
        out.append(np.ascontiguousarray((w_int[:, ks] - z[:, None]).T))
    return tuple(out)


def _weight_only(spec) -> np.ndarray:
    """Dequantize, then a float32 product (agrees with the reference within
    ``_reference_linear.WEIGHT_ONLY_RTOL``)."""
    w_hat = spec.w.dequantize()
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        y = spec.x2 @ w_hat.T
        if spec.bias is not None:
            y = y + spec.bias
    return y.astype(_F32, copy=False)

