"""Plain-NumPy reference of the integer matrix products (re-exported by ``lowbit.reference``).

Reads like API.md: ``(a - a_zp) @ (b - b_zp)`` in int32, wrapping modulo 2**32 as NumPy int32
arithmetic does. The exact product is formed in int64 (no int64 sum here can overflow: each
term is at most 383 * 263 in magnitude) and then wrapped to int32, which equals accumulating
in wrapping int32 because reduction modulo 2**32 commutes with + and *. Validation is shared
with the compiled API (same errors); the arithmetic is not.
"""

from __future__ import annotations

import numpy as np

from ._bases import PackedBase
from ._checks_gemm import (check_a, check_b, check_b_packed, check_k4, check_operands,
                           check_packed4, dtype_name)
from ._reference_quant import unpack_int4

__all__ = ["matmul_int", "matmul_int4"]


def _wrapping_matmul(a2: np.ndarray, b: np.ndarray, za: np.ndarray, zb: np.ndarray) -> np.ndarray:
    a64 = a2.astype(np.int64) - za.astype(np.int64)[:, None]   # za: (1,) or (M,)
    b64 = b.astype(np.int64) - zb.astype(np.int64)[None, :]    # zb: (1,) or (N,)
    return (a64 @ b64).astype(np.int32)                          # wraps modulo 2**32


def matmul_int(a, b, a_zero_point=0, b_zero_point=0) -> np.ndarray:
    """Reference of :func:`lowbit.matmul_int` (same signature, errors and results)."""
    a = check_a(a)
    if isinstance(b, PackedBase):
        if b.shape[0] != a.shape[-1]:
            raise ValueError(f"b must have shape (K, N) = ({a.shape[-1]}, N) to match "
                             f"a.shape[-1] = {a.shape[-1]}, got a PackedMatrix of shape {b.shape}")
        b_dtype, b = b.dtype, b.to_array()
    else:
        b = check_b(b, a.shape[-1])
        b_dtype = dtype_name(b)
    ops = check_operands(a, b.shape[1], b_dtype, a_zero_point, b_zero_point)
    out = _wrapping_matmul(ops.a2, b, ops.za, ops.zb)
    return out[0] if ops.vector else out


def matmul_int4(a, b_packed, *, k=None, signed=True, a_zero_point=0, b_zero_point=0):
    """Reference of :func:`lowbit.matmul_int4`: ``matmul_int`` of the unpacked weights."""
    a = check_a(a)
    if isinstance(b_packed, PackedBase):
        pm = check_packed4(b_packed, k, signed)
        kk, b = pm.shape[0], pm.to_array()
    else:
        bp = check_b_packed(b_packed)
        kk = check_k4(k, bp.shape[0])
        b = unpack_int4(bp, axis=0, n=kk, signed=bool(signed))
    if a.shape[-1] != kk:
        raise ValueError(f"a must have K = {kk} columns to match b_packed (k={kk}), got shape "
                         f"{a.shape}")
    ops = check_operands(a, b.shape[1], "int4" if signed else "uint4", a_zero_point,
                         b_zero_point)
    out = _wrapping_matmul(ops.a2, b, ops.za, ops.zb)
    return out[0] if ops.vector else out
