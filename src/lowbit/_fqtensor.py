"""``FormatTensor``: a weight in a floating-point or non-uniform format (fp8_e4m3, fp8_e5m2,
fp4_e2m1, nf4, the MX block formats, learned 4-bit codebooks), as ``QTensor.quantize`` returns
it for those dtypes, and the weight-only ``lb.linear`` on it (the formats' gemv kernel decodes
the codes in registers: no float copy of W).
"""

from __future__ import annotations

import os
from typing import Any, Optional, Tuple

import numpy as np

from . import _checks, _codebook, _core, _formats, _mx, _quant
from ._bases import QTensorBase
from ._checks_formats import FORMATS, Format, kernel_args

_F32 = np.float32
FORMAT_NAME = "lowbit.FormatTensor"
FORMAT_VERSION = 1
MX_NAMES = tuple(_formats.MX_DTYPES)
CODEBOOK_NAMES = tuple(f"codebook{b}" for b in range(2, 9))


def is_format_dtype(dtype: Any) -> bool:
    return isinstance(dtype, str) and (dtype in FORMATS or dtype in MX_NAMES
                                       or dtype in CODEBOOK_NAMES)


def _frozen(a: Any) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _frozen_opt(a: Any) -> Optional[np.ndarray]:
    return None if a is None else _frozen(a)


class FormatTensor(QTensorBase):
    """A tensor in an element, MX or codebook format (see :meth:`lowbit.QTensor.quantize`).

    Attributes
    ----------
    data : ndarray of uint8 (mxint8: int8)
        The codes; 4-bit codes packed two a byte along the last axis.
    scale : ndarray of float32 or None
        Element formats: the scales (granularity as for :func:`lowbit.quantize`); MX: the
        power-of-two block scales ``X`` (stored as their E8M0 bytes, ``exps``); codebooks: None.
    exps : ndarray of uint8 or None
        MX only: the E8M0 block exponents.
    levels : ndarray of float32 or None
        Codebooks only: ``(shape[0], 2**bits)``, one codebook per output row.
    zero_point : None
        The formats are symmetric.
    nbytes : int
        Codes, scales (MX: one byte a block) and codebooks.
    """

    __slots__ = ("_data", "_scale", "_exps", "_levels", "_dtype", "_shape", "_axis", "_group")

    def __init__(self, data, scale, exps, levels, dtype: str, shape: Tuple[int, ...],
                 axis: Optional[int], group_size: Optional[int]) -> None:
        self._data = _frozen(data)
        self._scale = _frozen_opt(scale)
        self._exps = _frozen_opt(exps)
        self._levels = _frozen_opt(levels)
        self._dtype = dtype
        self._shape = tuple(int(d) for d in shape)
        self._axis = axis
        self._group = group_size

    # ------------------------------------------------------------------------------ making

    @classmethod
    def quantize(cls, w: Any, dtype: str, axis: Optional[int] = None,
                 group_size: Optional[int] = None, method: str = "minmax",
                 percentile: float = 99.99) -> "FormatTensor":
        wf = _checks.float_array(w, "w")
        if wf.ndim == 0:
            raise ValueError("QTensor needs at least one dimension; got a 0-d array")
        if dtype in FORMATS:
            qp = _quant.calibrate(wf, dtype, axis=axis, group_size=group_size, method=method,
                                  percentile=percentile)
            fmt = FORMATS[dtype]
            data = _quant.quantize(wf, qp, packed=fmt.bits == 4)
            return cls(data, qp.scale, None, None, dtype, wf.shape, qp.axis, qp.group_size)
        if dtype in MX_NAMES:
            a = wf.ndim - 1 if axis is None else _formats._axis(axis, wf.ndim)
            codes, exps = _mx.quantize_mx(wf, dtype, axis=a, packed=dtype == "mxfp4_e2m1"
                                          and a == wf.ndim - 1)
            scale = _mx._scales_of(exps)
            return cls(codes, scale, exps, None, dtype, wf.shape, a, _formats.BLOCK)
        if dtype in CODEBOOK_NAMES:
            bits = int(dtype[len("codebook"):])
            a = 0 if axis is None else _formats._axis(axis, wf.ndim)
            if a != 0 or wf.ndim != 2:
                raise ValueError("a codebook QTensor is 2-D with one codebook per row (axis=0)")
            levels = _codebook.fit_codebook(wf, bits, axis=0)
            codes = _codebook.quantize_codebook(wf, levels, axis=0, packed=bits <= 4)
            return cls(codes, None, None, levels, dtype, wf.shape, 0, None)
        raise ValueError(f"unknown format {dtype!r}")

    # ------------------------------------------------------------------------------ reading

    data = property(lambda self: self._data)
    scale = property(lambda self: self._scale)
    exps = property(lambda self: self._exps)
    levels = property(lambda self: self._levels)
    zero_point = property(lambda self: None)
    dtype = property(lambda self: self._dtype)
    shape = property(lambda self: self._shape)
    axis = property(lambda self: self._axis)
    group_size = property(lambda self: self._group)
    ndim = property(lambda self: len(self._shape))

    @property
    def size(self) -> int:
        return int(np.prod(self._shape, dtype=np.int64))

    @property
    def packed(self) -> bool:
        return self._data.shape != self._shape

    @property
    def nbytes(self) -> int:
        n = self._data.nbytes
        if self._exps is not None:
            n += self._exps.nbytes
        elif self._scale is not None:
            n += self._scale.nbytes
        if self._levels is not None:
            n += self._levels.nbytes
        return int(n)

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.nbytes / self.size if self.size else 0.0

    def dequantize(self) -> np.ndarray:
        """The values as a new float32 array (the format's dequantize)."""
        n = self._shape[-1] if self.packed else None
        if self._dtype in FORMATS:
            return _quant.dequantize(self._data, self._scale,  # type: ignore[arg-type]
                                     axis=self._axis,
                                     group_size=self._group, dtype=self._dtype,
                                     packed=self.packed, n=n)
        if self._dtype in MX_NAMES:
            a = int(self._axis or 0)
            return _mx.dequantize_mx(self._data, self._exps, self._dtype,  # type: ignore[arg-type]
                                     axis=a, packed=self.packed,
                                     n=self._shape[a] if self.packed else None)
        return _codebook.dequantize_codebook(self._data, self._levels,  # type: ignore[arg-type]
                                             axis=0, packed=self.packed, n=n)

    def int_repr(self) -> np.ndarray:
        """The codes, one per element (a new array)."""
        if self.packed:
            return _quant.unpack_int4(self._data, signed=False, axis=-1, n=self._shape[-1])
        return self._data.copy()

    def __repr__(self) -> str:
        return (f"QTensor(shape={self._shape}, dtype={self._dtype!r}, axis={self._axis}, "
                f"group_size={self._group}, nbytes={self.nbytes}, "
                f"bits_per_weight={self.bits_per_weight:.3g})")

    # ------------------------------------------------------------------------------ linear

    def _gemv_operands(self):
        """(codes (N, row bytes), code bits, scales (N, G), g, kernel format args) for the
        weight-only kernel, or None when the layout does not suit it (then linear decodes
        blocks of rows)."""
        if self.ndim != 2:
            return None
        n, k = self._shape
        if self._dtype in CODEBOOK_NAMES:
            lv = self._levels
            if lv is None:
                return None
            size = 16 if lv.shape[-1] <= 16 else 256
            table = np.zeros((n, size), _F32)
            table[:, :lv.shape[-1]] = lv
            fmt = (1, 0, 0, 0, lv.shape[-1] - 1, 0, size, size)
            return (self._data, 4 if self.packed else 8, np.ones((n, 1), _F32), k,
                    (fmt, 0.0, np.zeros(lv.shape[-1] - 1, _F32), table))
        if self._scale is None:
            return None
        if self._axis is None:
            s, g = np.broadcast_to(self._scale.reshape(1, 1), (n, 1)), k
        elif self._axis == 0 and self._group is None:
            s, g = self._scale.reshape(n, 1), k
        elif self._axis == 1 and self._group is not None:
            s, g = self._scale.reshape(n, -1), self._group
        else:
            return None
        s = np.ascontiguousarray(s, _F32)
        if self._dtype == "mxint8":  # int8 codes, value code / 64 * X: a 256-entry table
            table = np.arange(256, dtype=np.uint8).view(np.int8).astype(_F32)
            fmt8 = (1, 0, 0, 0, 1, 0, 256, 0)
            return (self._data.view(np.uint8), 8, np.ascontiguousarray(s / _F32(64)), g,
                    (fmt8, 0.0, np.zeros(1, _F32), table))
        name = self._dtype if self._dtype in FORMATS else _formats.MX_DTYPES[self._dtype].element
        fmt: Format = FORMATS[name]
        if fmt.bits == 4 and not self.packed:
            return None
        return (self._data, fmt.bits, s, g, kernel_args(fmt))

    # ------------------------------------------------------------------------------ files

    def save(self, path) -> None:
        """Write to an ``.npz`` file (no pickles); :func:`lowbit.load` reads it back."""
        entries = dict(format=np.array(FORMAT_NAME),
                       format_version=np.array(FORMAT_VERSION, np.int64),
                       dtype=np.array(self._dtype), shape=np.array(self._shape, np.int64),
                       axis=np.array(-1 if self._axis is None else self._axis, np.int64),
                       group_size=np.array(-1 if self._group is None else self._group, np.int64),
                       data=self._data)
        for key, arr in (("scale", self._scale), ("exps", self._exps), ("levels", self._levels)):
            if arr is not None:
                entries[key] = arr
        if isinstance(path, (str, os.PathLike)):
            with open(path, "wb") as f:
                np.savez(f, **entries)  # type: ignore[arg-type]
        else:
            np.savez(path, **entries)  # type: ignore[arg-type]


def from_entries(npz, name: str) -> FormatTensor:
    """A FormatTensor from the entries of its file, re-checked: its codes must decode, and
    quantities fit the dtype (ValueError otherwise)."""
    dtype = str(npz["dtype"])
    if not is_format_dtype(dtype):
        raise ValueError(f"{name} holds an unknown format {dtype!r}")
    shape = tuple(int(v) for v in npz["shape"])
    axis = int(npz["axis"])
    group = int(npz["group_size"])
    get = lambda k: npz[k] if k in npz.files else None  # noqa: E731
    t = FormatTensor(npz["data"], get("scale"), get("exps"), get("levels"), dtype, shape,
                     None if axis == -1 else axis, None if group == -1 else group)
    try:
        t.dequantize()  # every check of the format's dequantize
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} holds an inconsistent QTensor: {e}") from e
    return t


def linear_weight_only(x2: np.ndarray, w: FormatTensor, bias: Optional[np.ndarray]) -> np.ndarray:
    """``x2 @ W.T + bias`` in float32 for a FormatTensor W (N, K)."""
    n, k = w.shape
    m = x2.shape[0]
    out = np.empty((m, n), _F32)
    if m == 0 or n == 0:
        return out
    ops = w._gemv_operands()
    if ops is None:
        raise ValueError(f"w_q must be quantized per output channel (axis=0), in groups along "
                         f"in (axis=1, group_size=g; MX blocks along axis=1) or per tensor; got "
                         f"dtype {w.dtype!r}, axis={w.axis}, group_size={w.group_size}")
    codes, bits, s, g, fargs = ops
    fmt, maxval, thr, table = fargs
    _core.gemv(np.ascontiguousarray(x2), codes, bits, s, s.shape[1], g, fmt, maxval, thr, table,
               None if bias is None else np.ascontiguousarray(bias, _F32), out)
    return out
