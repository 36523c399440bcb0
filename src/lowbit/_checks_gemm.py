"""Argument checks of the integer matrix products, shared by :mod:`lowbit._gemm`
(``matmul_int``, ``matmul_int4``, ``pack_matrix``) and :mod:`lowbit.reference`.

Only shapes, dtypes and ranges; no arithmetic on the data, so both implementations raise the
same errors. A :class:`lowbit.PackedMatrix` is recognised through its base
:class:`lowbit._bases.PackedBase`, so this module does not import ``_gemm``.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from ._bases import PackedBase
from ._checks import DTYPES

__all__ = ["Operands", "check_a", "check_b", "check_b_packed", "check_k4", "check_operands",
           "check_packed4", "check_zero_point", "dtype_name", "int8_array"]


def int8_array(x: Any, name: str, shape_text: str) -> np.ndarray:
    """x as an ndarray of dtype int8 or uint8, else TypeError naming the argument."""
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype not in (np.int8, np.uint8):
        raise TypeError(f"{name} must be an int8 or uint8 array of shape {shape_text}, "
                        f"got dtype {arr.dtype}")
    return arr


def check_a(a: Any) -> np.ndarray:
    """``a`` of matmul_int / matmul_int4: int8 or uint8, shape (M, K) or (K,)."""
    arr = int8_array(a, "a", "(M, K) or (K,)")
    if arr.ndim not in (1, 2):
        raise ValueError(f"a must have shape (M, K) or (K,), got shape {arr.shape}")
    return arr


def check_b(b: Any, k: int) -> np.ndarray:
    """Plain ``b`` of matmul_int: int8 or uint8 of shape (K, N) with K = a.shape[-1]."""
    arr = int8_array(b, "b", f"(K, N) = ({k}, N)")
    if arr.ndim != 2 or arr.shape[0] != k:
        raise ValueError(f"b must have shape (K, N) = ({k}, N) to match a.shape[-1] = {k}, "
                         f"got shape {arr.shape}")
    return arr


def check_b_packed(b_packed: Any) -> np.ndarray:
    """Plain ``b_packed`` of matmul_int4: uint8 nibbles of shape (ceil(K/2), N)."""
    arr = b_packed if isinstance(b_packed, np.ndarray) else np.asarray(b_packed)
    if arr.dtype != np.uint8:
        raise TypeError("b_packed must be a uint8 array of shape (ceil(K/2), N) "
                        f"(lb.pack_int4(b, axis=0)), got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"b_packed must have shape (ceil(K/2), N), got shape {arr.shape}")
    return arr


def check_k4(k: Any, rows: int) -> int:
    """The logical K of a (rows, N) nibble array: 2*rows (default) or 2*rows - 1."""
    if k is None:
        return 2 * rows
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    k = int(k)
    if k not in (2 * rows, 2 * rows - 1) or k < 0:
        raise ValueError(f"k must be {2 * rows} or {2 * rows - 1} for b_packed with {rows} "
                         f"rows, got {k}")
    return k


def check_packed4(pm: PackedBase, k: Any, signed: Any) -> PackedBase:
    """A PackedMatrix passed as ``b_packed`` of matmul_int4: 4-bit, of the ``signed`` kind, and
    of K = ``k`` when ``k`` is given."""
    if pm.bits != 4:
        raise ValueError(f"b_packed must be a 4-bit PackedMatrix, got dtype {pm.dtype!r} "
                         "(use matmul_int for 8-bit weights)")
    if (pm.dtype == "int4") != bool(signed):
        raise ValueError(f"b_packed was packed as {pm.dtype}; pass signed={pm.dtype == 'int4'}")
    if k is not None and check_k4(k, (pm.shape[0] + 1) // 2) != pm.shape[0]:
        raise ValueError(f"k={k} does not match the PackedMatrix's K = {pm.shape[0]}")
    return pm


def check_zero_point(zp: Any, name: str, length: int, what: str, dtype: str) -> np.ndarray:
    """A scalar or a (length,) zero point as an int32 array of shape (1,) or (length,).

    ``what`` names the per-element dimension ("M" or "N"); values must lie in dtype's range.
    """
    lo, hi = DTYPES[dtype].qmin, DTYPES[dtype].qmax
    if type(zp) is int:  # the common case, without NumPy's per-call overhead (bool excluded)
        if not lo <= zp <= hi:
            raise ValueError(f"{name} values must lie in [{lo}, {hi}] ({dtype}), got {zp}")
        return np.array([zp], np.int32)
    arr = np.asarray(zp)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer scalar or an integer array of shape "
                        f"({what},) = ({length},), got dtype {arr.dtype}")
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.shape[0] not in (1, length):
        raise ValueError(f"{name} must be a scalar, shape (1,) or shape ({what},) = ({length},), "
                         f"got shape {arr.shape}")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = arr[(arr < lo) | (arr > hi)][0]
        raise ValueError(f"{name} values must lie in [{lo}, {hi}] ({dtype}), got {int(bad)}")
    return arr.astype(np.int32)


def dtype_name(arr: np.ndarray) -> str:
    return "int8" if arr.dtype == np.int8 else "uint8"


class Operands(NamedTuple):
    a2: np.ndarray      # (M, K) view of a
    vector: bool        # a was 1-D: the result drops the M axis
    za: np.ndarray      # int32, (1,) or (M,)
    zb: np.ndarray      # int32, (1,) or (N,)


def check_operands(a: np.ndarray, n: int, b_dtype: str, a_zero_point: Any,
                   b_zero_point: Any) -> Operands:
    vector = a.ndim == 1
    a2 = a.reshape(1, -1) if vector else a
    m = a2.shape[0]
    za = check_zero_point(a_zero_point, "a_zero_point", m, "M", dtype_name(a))
    zb = check_zero_point(b_zero_point, "b_zero_point", n, "N", b_dtype)
    return Operands(a2, vector, za, zb)
