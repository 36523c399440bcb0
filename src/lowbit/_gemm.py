"""Integer matrix multiplication with int32 accumulation: ``matmul_int``, ``matmul_int4`` and
pre-packed weights (``pack_matrix`` / ``PackedMatrix``).

The argument checks live in :mod:`lowbit._checks_gemm`, shared with :mod:`lowbit.reference`
(same errors from both); the arithmetic lives in C++ (``cpp/runtime/gemm.cpp`` and the per-ISA
kernels).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import _core
from ._bases import PackedBase
from ._checks import DTYPES, cache_aligned
from ._typing import ArrayLike, DTypeName
from ._checks_gemm import (Operands, check_a, check_b, check_b_packed, check_k4,
                           check_operands, check_packed4, dtype_name)
from ._checks_gemm import int8_array as _int8_array

__all__ = ["PackedMatrix", "matmul_int", "matmul_int4", "pack_matrix"]

# ----------------------------------------------------------------------------------------------
# Pre-packed weights


class PackedMatrix(PackedBase):
    """A ``(K, N)`` weight matrix packed once for :func:`matmul_int` / :func:`matmul_int4`.

    Made by :func:`pack_matrix`; accepted wherever ``b`` (``matmul_int``) or ``b_packed``
    (``matmul_int4``, 4-bit only) is. It stores ``b`` in the panel layout of the active ISA
    path's kernels, values offset to unsigned (``b + 128`` for int8, ``b + 8`` for int4),
    together with its column sums, which the zero-point terms need, so no call repacks or
    re-sums it. The layout is recorded (``layout``): under a path that packs differently (see
    ``lb.cpu_info()``), the first product repacks the same values for it once and keeps that
    copy too (``nbytes`` counts only the original).

    Memory (``nbytes``), layout ``"k2n16"`` (the scalar and avx2 paths: 16 columns a panel, k
    in pairs): ``32 * ceil(N/16) * ceil(K/2)`` bytes for 8-bit data and
    ``16 * ceil(N/16) * ceil(K/2)`` for 4-bit data (about ``K*N`` and ``K*N/2``), plus
    ``64 * ceil(N/16)`` bytes of column sums.

    Attributes
    ----------
    shape : tuple of int
        ``(K, N)``, the logical shape of ``b``.
    dtype : str
        ``"int8"``, ``"uint8"``, ``"int4"`` or ``"uint4"``.
    nbytes : int
        Bytes held (packed data + column sums).
    layout : str
        Name of the packed layout (``lb._core.gemm_layout()`` of the path that packed it).
    """

    __slots__ = ("_data", "_colsum", "_shape", "_dtype", "_layout", "_repacked")

    def __init__(self, data: np.ndarray, colsum: np.ndarray, shape: Tuple[int, int], dtype: str,
                 layout: str) -> None:
        data = cache_aligned(data)
        data.setflags(write=False)
        colsum.setflags(write=False)
        self._data, self._colsum = data, colsum
        self._shape, self._dtype, self._layout = (int(shape[0]), int(shape[1])), dtype, layout
        self._repacked: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}  # layout -> (data, colsum): the same values for another ISA path

    shape = property(lambda self: self._shape)
    dtype = property(lambda self: self._dtype)
    layout = property(lambda self: self._layout)
    bits = property(lambda self: DTYPES[self._dtype].bits)
    nbytes = property(lambda self: int(self._data.nbytes + self._colsum.nbytes))

    def __repr__(self) -> str:
        return (f"PackedMatrix(shape={self._shape}, dtype={self._dtype!r}, "
                f"nbytes={self.nbytes}, layout={self._layout!r})")

    def __reduce__(self):
        return (PackedMatrix, (self._data.copy(), self._colsum.copy(), self._shape, self._dtype,
                               self._layout))

    def to_array(self) -> np.ndarray:
        """The ``(K, N)`` values of ``b`` (int8 for int8/int4, uint8 for uint8/uint4).

        Decoded from the packed layout in C++ (``lowbit.reference`` uses it to accept a
        PackedMatrix).
        """
        k, n = self._shape
        signed = DTYPES[self._dtype].signed
        u = _core.gemm_unpack_b(self._data, self._colsum, k, n, self.bits, signed, self._layout)
        return u.view(np.int8) if signed else u


def _in_layout(pm: PackedMatrix, layout: str) -> Tuple[np.ndarray, np.ndarray, str]:
    """``(data, colsum, layout)`` of ``pm`` packed for the active path (expected in ``layout``):
    its own bytes when the layouts agree, else a repacking made once and kept with it."""
    if layout == pm._layout:
        return pm._data, pm._colsum, layout
    got = pm._repacked.get(layout)
    if got is None:
        data, colsum, packed_in = _core.gemm_repack(pm._data, pm._colsum, *pm._shape, pm.bits,
                                                    DTYPES[pm._dtype].signed, pm._layout)
        for arr in (data, colsum):
            arr.setflags(write=False)
        pm._repacked[packed_in] = got = (data, colsum)
        layout = packed_in
    return got[0], got[1], layout


# A set_isa() between reading the active layout and the kernel call: the C++ side refuses the
# call (nothing written) with this in its message, and the call is made again.
LAYOUT_CHANGED = "packed in layout"
_ATTEMPTS = 16


def _with_active_layout(run):
    """run(layout) for the active packed layout, again if the active path changed meanwhile."""
    for attempt in range(_ATTEMPTS):
        try:
            return run(_core.gemm_layout())
        except ValueError as e:
            if LAYOUT_CHANGED not in str(e) or attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _c_order(arr: np.ndarray) -> np.ndarray:
    """A 2-D 8-bit operand in C order: itself, the C++ cache-blocked transpose of a
    Fortran-order one (a ``w.T`` or ``x.T``: NumPy's copy walks the strided side a byte at a
    time, 30x slower at 4096 x 4096), else NumPy's copy."""
    if arr.flags.c_contiguous:
        return arr
    if arr.ndim == 2 and arr.T.flags.c_contiguous and arr.itemsize == 1 and arr.size:
        return _core.transpose_u8(arr.T.view(np.uint8)).view(arr.dtype)
    return np.ascontiguousarray(arr)


def _pack8(b: np.ndarray) -> PackedMatrix:
    k, n = b.shape
    signed = b.dtype == np.int8
    if not b.flags.c_contiguous and b.T.flags.c_contiguous and b.flags.aligned:
        # B = W.T of a row-major W (Fortran order): packed from W's rows, no transposed copy
        data, colsum, layout = _core.gemm_pack_b8_rows(b.T.view(np.uint8), signed)
    else:
        b = np.ascontiguousarray(b)
        data, colsum, layout = _core.gemm_pack_b8(b.view(np.uint8), signed)
    return PackedMatrix(data, colsum, (k, n), dtype_name(b), layout)


def _pack4(bp: np.ndarray, k: int, signed: bool) -> PackedMatrix:
    n = bp.shape[1]
    if not bp.flags.c_contiguous and bp.T.flags.c_contiguous:
        # the nibbles of W (out, in) packed along in, transposed: packed from W's rows
        data, colsum, layout = _core.gemm_pack_b4_rows(bp.T, k, signed)
    else:
        data, colsum, layout = _core.gemm_pack_b4(_c_order(bp), k, signed)
    return PackedMatrix(data, colsum, (k, n), "int4" if signed else "uint4", layout)


def pack_matrix(b: ArrayLike, *, dtype: Optional[DTypeName] = None,
                k: Optional[int] = None) -> PackedMatrix:
    """Pack a weight matrix once for repeated :func:`matmul_int` / :func:`matmul_int4` calls.

    Parameters
    ----------
    b : numpy.ndarray
        int8 or uint8 values of shape ``(K, N)``; or, with ``dtype="int4"``/``"uint4"``, the
        uint8 nibbles of shape ``(ceil(K/2), N)`` that ``lb.pack_int4(b, axis=0)`` makes.
    dtype : {None, "int8", "uint8", "int4", "uint4"}
        What ``b`` holds. ``None``: ``b.dtype`` ("int8" or "uint8").
    k : int, optional
        4-bit only: the logical K (default ``2 * b.shape[0]``; ``2 * b.shape[0] - 1`` for an
        odd K).

    Returns
    -------
    PackedMatrix
        Immutable; see its docstring for the memory it takes.

    Raises
    ------
    TypeError
        ``b`` has the wrong dtype for ``dtype``.
    ValueError
        ``b`` is not 2-D, ``dtype`` is unknown, or ``k`` does not fit ``b``.

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> w = lb.pack_matrix(np.arange(12, dtype=np.int8).reshape(4, 3))
    >>> lb.matmul_int(np.ones((1, 4), np.int8), w)
    array([[18, 22, 26]], dtype=int32)
    """
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)} or None, got {dtype!r}")
    if dtype is not None and DTYPES[dtype].bits == 4:
        bp = check_b_packed(b)
        return _pack4(bp, check_k4(k, bp.shape[0]), DTYPES[dtype].signed)
    if k is not None:
        raise ValueError("k applies to 4-bit data only (dtype='int4' or 'uint4')")
    arr = _int8_array(b, "b", "(K, N)")
    if arr.ndim != 2:
        raise ValueError(f"b must have shape (K, N), got shape {arr.shape}")
    if dtype is not None and dtype != dtype_name(arr):
        raise TypeError(f"b must have dtype {dtype} for dtype={dtype!r}, got {arr.dtype}")
    return _pack8(arr)


# ----------------------------------------------------------------------------------------------
# Products


def _run(ops: Operands, pm: PackedMatrix) -> np.ndarray:
    a2 = _c_order(ops.a2)
    k, n = pm.shape
    out = np.empty((a2.shape[0], n), np.int32)

    def run(layout):
        data, colsum, layout = _in_layout(pm, layout)
        _core.gemm_s32(a2.view(np.uint8), a2.dtype == np.int8, data, colsum, k, n, pm.bits,
                       DTYPES[pm.dtype].signed, layout, ops.za, ops.zb, out)

    _with_active_layout(run)
    return out[0] if ops.vector else out


def matmul_int(a: ArrayLike, b: Union[ArrayLike, PackedMatrix], a_zero_point: ArrayLike = 0,
               b_zero_point: ArrayLike = 0) -> npt.NDArray[np.int32]:
    """Integer matrix product with int32 accumulation (ONNX ``MatMulInteger``).

    Parameters
    ----------
    a : numpy.ndarray
        int8 or uint8, shape ``(M, K)`` or ``(K,)``.
    b : numpy.ndarray or PackedMatrix
        int8 or uint8, shape ``(K, N)``; or a :class:`PackedMatrix` of that shape (any dtype).
    a_zero_point : int or array
        Scalar (int, 0-d or ``(1,)``) or per-row ``(M,)``, in the range of ``a.dtype``.
    b_zero_point : int or array
        Scalar or per-column ``(N,)``, in the range of ``b``'s dtype.

    Returns
    -------
    numpy.ndarray
        int32, shape ``(M, N)`` (``(N,)`` for a 1-D ``a``).

    Raises
    ------
    TypeError
        A dtype other than int8/uint8 (integer for zero points).
    ValueError
        Shapes that do not match, or a zero point outside its dtype's range.

    Notes
    -----
    docs/api.md: the result is ``(a - a_zp) @ (b - b_zp)`` computed in int32, wrapping modulo 2**32
    exactly as NumPy int32 arithmetic does. No saturation anywhere, for any values including
    the -128/255 extremes. The GIL is released while the kernels run.

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> a = np.array([[1, 2], [3, 4]], np.uint8)
    >>> b = np.array([[1, -1], [2, 0]], np.int8)
    >>> lb.matmul_int(a, b, a_zero_point=1)
    array([[ 2,  0],
           [ 8, -2]], dtype=int32)
    """
    a = check_a(a)
    if isinstance(b, PackedMatrix):
        if b.shape[0] != a.shape[-1]:
            raise ValueError(f"b must have shape (K, N) = ({a.shape[-1]}, N) to match "
                             f"a.shape[-1] = {a.shape[-1]}, got a PackedMatrix of shape {b.shape}")
        return _run(check_operands(a, b.shape[1], b.dtype, a_zero_point, b_zero_point), b)
    bb = check_b(b, a.shape[-1])
    ops = check_operands(a, bb.shape[1], dtype_name(bb), a_zero_point, b_zero_point)
    return _run(ops, _pack8(bb))


def matmul_int4(a: ArrayLike, b_packed: Union[ArrayLike, PackedMatrix], *,
                k: Optional[int] = None, signed: bool = True, a_zero_point: ArrayLike = 0,
                b_zero_point: ArrayLike = 0) -> npt.NDArray[np.int32]:
    """Integer matrix product with 4-bit weights packed two a byte along K.

    Parameters
    ----------
    a : numpy.ndarray
        int8 or uint8, shape ``(M, K)`` or ``(K,)``.
    b_packed : numpy.ndarray or PackedMatrix
        uint8 of shape ``(ceil(K/2), N)``, i.e. ``lb.pack_int4(b, axis=0)``; or a 4-bit
        :class:`PackedMatrix` (``lb.pack_matrix(b_packed, dtype="int4", k=K)``).
    k : int, optional
        K (default ``2 * b_packed.shape[0]``; a PackedMatrix knows its own).
    signed : bool
        int4 (-8..7) or uint4 (0..15) weights; must match a PackedMatrix's dtype.
    a_zero_point, b_zero_point : int or array
        As in :func:`matmul_int`; ``b_zero_point`` lies in the int4 or uint4 range.

    Returns
    -------
    numpy.ndarray
        int32, shape ``(M, N)`` (``(N,)`` for a 1-D ``a``).

    Raises
    ------
    TypeError, ValueError
        As :func:`matmul_int`, plus a ``k`` that does not fit ``b_packed``.

    Notes
    -----
    docs/api.md: equals ``lb.matmul_int(a, lb.unpack_int4(b_packed, axis=0, n=k, signed=signed),
    ...)``. The nibbles are decoded inside the kernels; no unpacked copy of ``b`` is made.

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> b = np.array([[1, -8], [7, 2], [-1, 0]], np.int8)
    >>> lb.matmul_int4(np.ones(3, np.int8), lb.pack_int4(b, axis=0), k=3)
    array([ 7, -6], dtype=int32)
    """
    a = check_a(a)
    pm: Optional[PackedMatrix] = None
    if isinstance(b_packed, PackedMatrix):
        check_packed4(b_packed, k, signed)
        pm = b_packed
        kk = pm.shape[0]
    else:
        bp = check_b_packed(b_packed)
        kk = check_k4(k, bp.shape[0])
    if a.shape[-1] != kk:
        raise ValueError(f"a must have K = {kk} columns to match b_packed (k={kk}), got shape "
                         f"{a.shape}")
    dtype = "int4" if signed else "uint4"
    n = pm.shape[1] if pm is not None else bp.shape[1]
    ops = check_operands(a, n, dtype, a_zero_point, b_zero_point)
    return _run(ops, pm if pm is not None else _pack4(bp, kk, bool(signed)))
