"""The element formats (fp8_e4m3, fp8_e5m2, fp4_e2m1, nf4) on the checking side, shared by the
compiled API (lowbit._formats_api) and the reference: the format table, the routing of a call
to a format, validation, the value tables and thresholds the kernels read, and the
straight-through gradient (NumPy, one copy).

The arithmetic of every format lives in :mod:`lowbit._formats` (the NumPy oracle).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from . import _checks, _formats

_F32 = np.float32


class Format(NamedTuple):
    """One element format as the kernels see it (lowbit::FormatSpec, cpp/include/lowbit/kernels.h).

    kind 0: floating point with ``mbits`` mantissa bits, exponent ``bias``, the sign at bit
    ``sign_bit``; kind 1: thresholds between ``levels`` (nf4). ``maxval`` is API.md's ``M``."""

    name: str
    kind: int
    mbits: int
    bias: int
    sign_bit: int
    maxval: float
    bits: int


FORMATS = {
    "fp8_e4m3": Format("fp8_e4m3", 0, 3, 7, 7, 448.0, 8),
    "fp8_e5m2": Format("fp8_e5m2", 0, 2, 15, 7, 57344.0, 8),
    "fp4_e2m1": Format("fp4_e2m1", 0, 1, 1, 3, 6.0, 4),
    "nf4": Format("nf4", 1, 0, 0, 0, 1.0, 4),
}


class CalibDType(NamedTuple):
    """What calibration (lowbit._calib) reads of a dtype, for a format: symmetric only,
    ``scale = absmax / M``; its QParams carry zero points of 0 that nothing reads."""

    name: str
    qmax_sym: float
    zero_point_sym: int = 0
    storage: type = np.uint8
    qmin: int = 0
    qmax: int = 0
    symmetric_only: bool = True


def calib_dtype(name: str, symmetric: bool) -> CalibDType:
    if not symmetric:
        raise ValueError(f"symmetric=False is not available for {name!r}: the format is "
                         f"symmetric (scale = absmax / {FORMATS[name].maxval:g}, no zero point)")
    return CalibDType(name, FORMATS[name].maxval)


def is_format(dtype: Any) -> bool:
    return isinstance(dtype, str) and dtype in FORMATS


@functools.lru_cache(maxsize=None)
def _tables(name: str) -> Tuple[np.ndarray, np.ndarray]:
    """(value table padded to 16 or 256 entries, thresholds) of a format, read-only."""
    values = np.asarray(_formats.value_table(name), _F32)
    size = 16 if values.size <= 16 else 256
    table = np.zeros(size, _F32)
    table[:values.size] = values
    thr = (np.asarray(_formats.thresholds(_formats.NF4_LEVELS), _F32) if name == "nf4"
           else np.zeros(0, _F32))
    for a in (table, thr):
        a.setflags(write=False)
    return table, thr


def calib_spec(x: Any, dtype: Any, axis: Any, group_size: Any, method: str, percentile: float,
               symmetric: bool):
    """_checks.calib_spec, with a format's CalibDType in place of a QDType."""
    if not is_format(dtype):
        return _checks.calib_spec(x, dtype, axis, group_size, method, percentile)
    dt = calib_dtype(dtype, symmetric)
    _, xf, gran = _checks.calib_spec(x, "int8", axis, group_size, method, percentile)
    return dt, xf, gran


FormatTuple = Tuple[int, int, int, int, int, int, int, int]


def kernel_args(fmt: Format) -> Tuple[FormatTuple, float, np.ndarray, np.ndarray]:
    """The format arguments of _core.encode / _core.decode: (fmt tuple, maxval, thr, table)."""
    table, thr = _tables(fmt.name)
    return ((fmt.kind, fmt.mbits, fmt.bias, fmt.sign_bit, thr.size, 0, table.size, 0),
            fmt.maxval, thr, table)


def route(scale: Any, zero_point: Any, dtype: Any, axis: Any, group_size: Any):
    """(Format, scale, axis, group_size) when the call is for an element format (``dtype`` one of
    FORMATS, or a QParams of one in place of ``scale``), else None. A format is symmetric: a
    zero point given beside it is an error."""
    if isinstance(scale, _checks.QParams):
        if not is_format(scale.dtype):
            if is_format(dtype):
                raise ValueError(f"dtype={dtype!r} disagrees with the QParams' dtype "
                                 f"{scale.dtype!r}")
            return None
        if zero_point is not None:
            raise TypeError("zero_point must be None when scale is a QParams (it has its own)")
        if dtype not in (None, "int8", scale.dtype):
            raise ValueError(f"dtype={dtype!r} disagrees with the QParams' dtype {scale.dtype!r}")
        for name, given, own in (("axis", axis, scale.axis),
                                 ("group_size", group_size, scale.group_size)):
            if given is not None and given != own:
                raise ValueError(f"{name}={given!r} disagrees with the QParams' {name}={own!r}")
        return FORMATS[scale.dtype], scale.scale, scale.axis, scale.group_size
    if not is_format(dtype):
        return None
    if zero_point is not None:
        raise ValueError(f"zero_point must be None for dtype {dtype!r} (a symmetric format), "
                         f"got {zero_point!r}")
    return FORMATS[dtype], scale, axis, group_size


def packed_shape(shape: Tuple[int, ...], fmt: Format, packed: bool) -> Tuple[int, ...]:
    if not packed:
        return shape
    if fmt.bits != 4:
        raise ValueError(f"packed=True needs a 4-bit format (fp4_e2m1, nf4), got {fmt.name!r}")
    if not shape:
        raise ValueError("packed=True needs x with at least one dimension")
    return shape[:-1] + ((shape[-1] + 1) // 2,)




def code_array(q: Any, fmt: Format, packed: bool, n: Any) -> Tuple[np.ndarray, Tuple[int, ...]]:
    """``q`` checked as codes of ``fmt`` (uint8; 4-bit codes <= 15 unless packed), and the
    shape of the values they decode to."""
    qa = np.asarray(q)
    if qa.dtype != np.uint8:
        raise TypeError(f"q must be a uint8 array of {fmt.name} codes, got dtype {qa.dtype}")
    if packed:
        if fmt.bits != 4:
            raise ValueError(f"packed needs a 4-bit format (fp4_e2m1, nf4), got {fmt.name!r}")
        if qa.ndim == 0:
            raise ValueError("packed q must have at least one dimension")
        return qa, qa.shape[:-1] + (_checks.unpacked_length(qa.shape[-1], n),)
    if n is not None:
        raise ValueError("n is only meaningful with packed=True")
    if fmt.bits == 4 and qa.size and int(qa.max()) > 15:
        raise ValueError(f"q holds a code above 15, outside the 4-bit format {fmt.name!r}")
    return qa, qa.shape




def packed_flag(packed: Any) -> bool:
    """dequantize's ``packed`` for a format: True/False (None: False)."""
    if packed is None or packed is False:
        return False
    if packed is True:
        return True
    raise ValueError(f"packed must be True or False with a format dtype, got {packed!r}")


def fake_quantize_grad(x: Any, grad: Any, fmt: Format, scale: Any, axis: Any,
                       group_size: Any) -> np.ndarray:
    """Straight-through estimator of a format: ``grad`` where ``-M <= x / scale <= M`` (the
    values the format represents without clipping), else +0.0. NumPy (one copy: the reference
    calls it too); NaN in x raises ValueError."""
    xf = _checks.float_array(x, "x")
    gran = _checks.granularity(xf.shape, axis, group_size)
    s = _checks.scale_array(scale, gran)
    g = _checks.grad_array(grad, xf.shape)
    _checks.require_no_nan(xf)
    with np.errstate(over="ignore", under="ignore"):
        y = xf / _checks.expand(s, xf.shape, gran)
    inside = (y >= -_F32(fmt.maxval)) & (y <= _F32(fmt.maxval))
    return np.where(inside, g, _F32(0.0)).astype(_F32, copy=False)
