"""Argument normalisation and validation shared by the compiled API and ``lowbit.reference``.

Everything here is about shapes, dtypes and ranges; no arithmetic on the data (the NaN and
finiteness checks only read it). Both implementations raise the same errors because both go
through these helpers. The argument checks of the integer products are in ``_checks_gemm``,
those of ``linear`` in ``_checks_linear``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

try:  # NumPy >= 1.25
    from numpy.exceptions import AxisError
except ImportError:  # pragma: no cover
    AxisError = np.AxisError  # type: ignore[attr-defined,misc]


class QDType(NamedTuple):
    """One quantized dtype: its range, its unpacked NumPy storage and its width in bits.

    This table (``DTYPES``) is the only place in the package that knows these numbers."""

    name: str
    qmin: int
    qmax: int
    storage: type
    bits: int

    @property
    def signed(self) -> bool:
        return self.qmin < 0

    @property
    def qmax_sym(self) -> int:
        """API.md's ``qmax_sym`` of symmetric calibration: 127 (int8, uint8) or 7 (int4,
        uint4)."""
        return (1 << (self.bits - 1)) - 1

    @property
    def zero_point_sym(self) -> int:
        """The zero point of symmetric calibration: 0 (signed), 128 (uint8) or 8 (uint4)."""
        return 0 if self.signed else 1 << (self.bits - 1)


DTYPES = {
    "int8": QDType("int8", -128, 127, np.int8, 8),
    "uint8": QDType("uint8", 0, 255, np.uint8, 8),
    "int4": QDType("int4", -8, 7, np.int8, 4),
    "uint4": QDType("uint4", 0, 15, np.uint8, 4),
}


@dataclass(frozen=True)
class QParams:
    """Quantization parameters chosen by :func:`lowbit.calibrate`.

    An immutable record: ``scale`` is a float32 array and ``zero_point`` an array of the
    storage dtype, both shaped as the granularity says (per-tensor: shape ``(1,)``). A
    ``QParams`` may stand in place of ``scale`` in ``quantize``, ``dequantize``,
    ``fake_quantize`` and ``fake_quantize_grad``; it then also supplies the zero point, the
    dtype, the axis and the group size.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    dtype: str
    axis: Optional[int] = None
    group_size: Optional[int] = None

    def __post_init__(self) -> None:
        for name in ("scale", "zero_point"):
            arr = np.array(getattr(self, name), copy=True)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    def __repr__(self) -> str:
        return (f"QParams(dtype={self.dtype!r}, axis={self.axis}, group_size={self.group_size}, "
                f"scale={np.array2string(self.scale, threshold=6)}, "
                f"zero_point={np.array2string(self.zero_point, threshold=6)})")


def qdtype(dtype: Any) -> QDType:
    """The quantized dtype named by ``dtype`` ("int8", "uint8", "int4", "uint4")."""
    if isinstance(dtype, str):
        if dtype in DTYPES:
            return DTYPES[dtype]
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    try:
        name = np.dtype(dtype).name
    except TypeError:
        raise TypeError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}") from None
    if name in ("int8", "uint8"):
        return DTYPES[name]
    raise TypeError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")


def float_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a C-contiguous, aligned float32 array; float16/float64 are cast, anything else
    refused."""
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array (float16, float32 or float64), "
                        f"got dtype {arr.dtype}")
    return aligned_c(arr, np.float32)


def aligned_c(arr: Any, dtype: Any) -> np.ndarray:
    """``arr`` as a C-contiguous array of ``dtype`` whose data address is a multiple of the item
    size (copied only when it is not already). NumPy allows misaligned arrays (views of a byte
    buffer at an odd offset); the kernels take ``float*`` / ``int32_t*``, and a misaligned one
    is undefined behaviour in C++ (UBSan reports it; vectorized code may assume alignment)."""
    if (isinstance(arr, np.ndarray) and arr.dtype == dtype and arr.flags.c_contiguous
            and arr.flags.aligned):
        return arr  # nothing to do; np.require costs microseconds even then
    return np.require(arr, dtype, ("C", "A"))


def cache_aligned(a: np.ndarray) -> np.ndarray:
    """``a`` itself if its data starts on a 64-byte cache line, else a copy that does. The C++
    packers return aligned panels (lowbit::PackedBData); a copied or unpickled one may not be.
    The small-M kernels stream a packed weight at memory speed, and a vector load across two
    lines costs them time (measured on a Zen 5 core, 4096 x 4096 int4 linear at batch 1 on
    avx512_vnni: 0.120 ms unaligned, 0.086 ms aligned)."""
    if a.ctypes.data % 64 == 0:
        return a
    buf = np.empty(a.nbytes + 64, np.uint8)
    off = -buf.ctypes.data % 64
    out = buf[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def axis_index(axis: Any, name: str = "axis") -> int:
    """``axis`` as an int (any integer type), else TypeError; the range is not checked."""
    try:
        return operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an integer or None, got {axis!r}") from None


def normalize_axis(axis: Any, ndim: int, name: str = "axis") -> int:
    a = axis_index(axis, name)
    if not -ndim <= a < ndim:
        raise AxisError(f"{name} {a} is out of bounds for an array of dimension {ndim}")
    return a % ndim


def positive_int(v: Any, name: str) -> int:
    try:
        i = operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be a positive integer, got {v!r}") from None
    if i <= 0:
        raise ValueError(f"{name} must be a positive integer, got {i}")
    return i


class Granularity(NamedTuple):
    """Where the scales live: ``scale_shape`` and the (outer, L, inner, g, so, sg, si) layout."""

    axis: Optional[int]
    group_size: Optional[int]
    scale_shape: Tuple[int, ...]
    layout: Tuple[int, int, int, int, int, int, int]

    @property
    def kind(self) -> str:
        if self.axis is None:
            return "per-tensor"
        return "per-axis" if self.group_size is None else "per-group"


def granularity(shape: Tuple[int, ...], axis: Any, group_size: Any) -> Granularity:
    if axis is None:
        if group_size is not None:
            raise ValueError("group_size needs an axis: pass axis= along which groups run")
        n = math.prod(shape)
        return Granularity(None, None, (1,), (1, n, 1, max(n, 1), 0, 0, 0))
    a = normalize_axis(axis, len(shape))
    outer, L, inner = math.prod(shape[:a]), shape[a], math.prod(shape[a + 1:])
    if group_size is None:
        return Granularity(a, None, (L,), (outer, L, inner, 1, 0, 1, 0))
    g = positive_int(group_size, "group_size")
    ngroups = -(-L // g)
    sshape = shape[:a] + (ngroups,) + shape[a + 1:]
    return Granularity(a, g, sshape, (outer, L, inner, g, ngroups * inner, inner, 1))


def packed_layout(shape: Tuple[int, ...], gran: Granularity):
    """The layout for 4-bit data packed along the last axis, or None when the granularity does
    not allow the fused kernel (scales varying along an axis other than the last, or groups of
    odd size that straddle a byte)."""
    if not shape:
        return None
    last = len(shape) - 1
    outer, L = math.prod(shape[:-1]), shape[-1]
    if gran.axis is None:
        return (outer, L, 1, max(L, 1), 0, 0, 0)
    if gran.axis != last:
        return None
    if gran.group_size is None:
        return (outer, L, 1, 1, 0, 1, 0)
    g = gran.group_size
    if g % 2 and g < L:
        return None
    ngroups = -(-L // g)
    return (outer, L, 1, g, ngroups, 1, 0)


def expected(gran: Granularity) -> str:
    if gran.axis is None:
        return "a Python float, a 0-d array or shape (1,)"
    return f"shape {gran.scale_shape} ({gran.kind}, axis={gran.axis}" + (
        f", group_size={gran.group_size})" if gran.group_size else ")")


def scale_array(scale: Any, gran: Granularity) -> np.ndarray:
    s = np.asarray(scale)
    if s.dtype.kind not in "fiu" or s.dtype == np.bool_:
        raise TypeError(f"scale must be a float32 array or float, got dtype {s.dtype}")
    s = aligned_c(np.ascontiguousarray(s, dtype=np.float32), np.float32)  # (0-d becomes (1,))
    _check_param_shape(s, gran, "scale")
    s = s.reshape(gran.scale_shape)
    # min > 0 is False for NaN (NaN propagates through min); max < inf rules out +inf.
    if s.size and not (s.min() > 0 and s.max() < np.inf):
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(s) & (s > 0))
        idx = np.unravel_index(int(np.argmax(bad)), s.shape)
        where = "" if s.size == 1 else f" at index {tuple(int(i) for i in idx)}"
        raise ValueError(f"scale must be finite and positive; got {float(s[idx])!r}{where}"
                         + (f" (one of {int(bad.sum())} bad entries)" if bad.sum() > 1 else ""))
    return s


def _check_param_shape(arr: np.ndarray, gran: Granularity, name: str) -> None:
    if gran.axis is None:
        ok = arr.shape in ((), (1,))
    else:
        ok = arr.shape == gran.scale_shape
    if not ok:
        raise ValueError(f"{name} has shape {arr.shape}; expected {expected(gran)}")


def zero_point_array(zp: Any, gran: Granularity, lo: int, hi: int, what: str) -> np.ndarray:
    if zp is None:
        return np.zeros(gran.scale_shape, np.int32)
    z = np.asarray(zp)
    if z.dtype.kind not in "iu" or z.dtype == np.bool_:
        raise TypeError(f"zero_point must be an integer array or int, got dtype {z.dtype}")
    _check_param_shape(z, gran, "zero_point")
    if z.size == 1:  # per tensor: a Python comparison, not two NumPy reductions
        if not lo <= z.item() <= hi:
            raise ValueError(f"zero_point must lie in {lo}..{hi} ({what}); got {z.item()}")
    elif z.size and (z.min() < lo or z.max() > hi):
        raise ValueError(f"zero_point must lie in {lo}..{hi} ({what}); "
                         f"got values in {z.min()}..{z.max()}")
    return aligned_c(z.reshape(gran.scale_shape), np.int32)


def nan_error() -> ValueError:
    """The error of a NaN in ``x`` (quantize, fake_quantize, linear with a static scale)."""
    return ValueError("x contains NaN")


def nonfinite_error(purpose: str) -> ValueError:
    """The error of a NaN or an infinity in ``x`` where ``purpose`` ("calibration", "dynamic
    activation quantization") needs finite values."""
    return ValueError(f"x contains NaN or infinity; {purpose} needs finite values")


def require_no_nan(x: np.ndarray) -> None:
    """A read-only NaN check in NumPy (the compiled kernels report NaN themselves)."""
    if np.isnan(x).any():
        raise nan_error()


def require_finite(x: np.ndarray, purpose: str) -> None:
    """A read-only check in NumPy that ``x`` holds no NaN and no infinity."""
    if not np.isfinite(x).all():
        raise nonfinite_error(purpose)


def packed_shape(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    """``shape`` packed two values a byte along its last axis (at least one axis needed)."""
    if not shape:
        raise ValueError("packed=True needs an array with at least one dimension")
    return shape[:-1] + ((shape[-1] + 1) // 2,)


def quantized_shape(spec: QuantSpec, packed: Any) -> Tuple[Tuple[int, ...], type]:
    """Shape and NumPy dtype of quantize's result: ``x``'s shape in the dtype's storage, or
    with ``packed`` (4-bit dtypes only) uint8 packed along the last axis."""
    if not packed:
        return spec.x.shape, spec.dt.storage
    if spec.dt.bits != 4:
        raise ValueError(f"packed=True needs dtype 'int4' or 'uint4', got {spec.dt.name!r}")
    return packed_shape(spec.x.shape), np.uint8


def grad_array(grad: Any, shape: Tuple[int, ...]) -> np.ndarray:
    """``grad`` of fake_quantize_grad: a float array of ``x``'s shape, as float32."""
    g = float_array(grad, "grad")
    if g.shape != shape:
        raise ValueError(f"grad has shape {g.shape}; expected {shape} (the shape of x)")
    return g


class QuantSpec(NamedTuple):
    x: np.ndarray          # float32, C-contiguous, the caller's shape
    dt: QDType
    gran: Granularity
    scale: np.ndarray      # float32, C-contiguous, gran.scale_shape
    zp: np.ndarray         # int32, C-contiguous, gran.scale_shape


def unpack_qparams(scale, zero_point, dtype, axis, group_size, default_dtype="int8"):
    """Lets a QParams stand in place of ``scale``: it supplies zero point, dtype, axis, group."""
    if not isinstance(scale, QParams):
        return scale, zero_point, dtype, axis, group_size
    qp = scale
    if zero_point is not None:
        raise TypeError("zero_point must be None when scale is a QParams (it has its own)")
    if dtype is not None and dtype != default_dtype and qdtype(dtype).name != qp.dtype:
        raise ValueError(f"dtype={dtype!r} disagrees with the QParams' dtype {qp.dtype!r}")
    for name, given, own in (("axis", axis, qp.axis), ("group_size", group_size, qp.group_size)):
        if given is not None and given != own:
            raise ValueError(f"{name}={given!r} disagrees with the QParams' {name}={own!r}")
    return qp.scale, qp.zero_point, qp.dtype, qp.axis, qp.group_size


def quant_spec(x, scale, zero_point, dtype, axis, group_size) -> QuantSpec:
    scale, zero_point, dtype, axis, group_size = unpack_qparams(
        scale, zero_point, dtype, axis, group_size)
    dt = qdtype(dtype)
    xf = float_array(x, "x")
    gran = granularity(xf.shape, axis, group_size)
    s = scale_array(scale, gran)
    z = zero_point_array(zero_point, gran, dt.qmin, dt.qmax, f"the range of {dt.name}")
    return QuantSpec(xf, dt, gran, s, z)


class DequantSpec(NamedTuple):
    q: np.ndarray          # C-contiguous int8/uint8 (packed: uint8)
    kind: int              # 0 int8, 1 uint8, 2 packed int4, 3 packed uint4
    shape: Tuple[int, ...]  # logical (unpacked) shape of the result
    gran: Granularity
    scale: np.ndarray
    zp: np.ndarray


def dequant_spec(q, scale, zero_point, axis, group_size, packed, n) -> DequantSpec:
    scale, zero_point, _, axis, group_size = unpack_qparams(
        scale, zero_point, None, axis, group_size)
    qa = np.asarray(q)
    if packed is None:
        if n is not None:
            raise ValueError("n is only meaningful with packed='int4' or 'uint4'")
        if qa.dtype not in (np.int8, np.uint8):
            raise TypeError(f"q must be an int8 or uint8 array, got dtype {qa.dtype}")
        kind = 0 if qa.dtype == np.int8 else 1
        dt = DTYPES[qa.dtype.name]
        shape = qa.shape
    else:
        if packed not in ("int4", "uint4"):
            raise ValueError(f"packed must be None, 'int4' or 'uint4', got {packed!r}")
        if qa.dtype != np.uint8:
            raise TypeError(f"packed q must be a uint8 array (two 4-bit values a byte), "
                            f"got dtype {qa.dtype}")
        if qa.ndim == 0:
            raise ValueError("packed q must have at least one dimension")
        kind = 2 if packed == "int4" else 3
        dt = DTYPES[packed]
        shape = qa.shape[:-1] + (unpacked_length(qa.shape[-1], n),)
    gran = granularity(shape, axis, group_size)
    s = scale_array(scale, gran)
    what = f"the range of q's storage dtype {packed or qa.dtype}"
    z = zero_point_array(zero_point, gran, dt.qmin, dt.qmax, what)
    return DequantSpec(np.asarray(qa, order="C"), kind, shape, gran, s, z)


def unpacked_length(packed_len: int, n: Any) -> int:
    if n is None:
        return 2 * packed_len
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be an integer or None, got {n!r}") from None
    if n not in (2 * packed_len, 2 * packed_len - 1) or n < 0:
        raise ValueError(f"n={n} does not fit a packed length of {packed_len}: expected "
                         f"{2 * packed_len} or {max(2 * packed_len - 1, 0)}")
    return n


def check_out(out: Any, shape: Tuple[int, ...], dtype: Any, *inputs: Any) -> Optional[np.ndarray]:
    """Validates a caller's ``out=`` before anything is written."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != np.dtype(dtype):
        raise TypeError(f"out must have dtype {np.dtype(dtype)}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}; expected {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    for arr in inputs:
        if isinstance(arr, np.ndarray) and np.shares_memory(out, arr):
            raise ValueError("out overlaps an input array")
    return out


def finish(result: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
    if out is None:
        return result
    np.copyto(out, result, casting="no")
    return out


def expand(param: np.ndarray, shape: Tuple[int, ...], gran: Granularity) -> np.ndarray:
    """A per-tensor/axis/group parameter broadcast to the full ``shape`` (for the reference)."""
    if gran.axis is None:
        return param.reshape(())
    a = gran.axis
    if gran.group_size is None:
        return param.reshape((-1,) + (1,) * (len(shape) - a - 1))
    full = np.repeat(param, gran.group_size, axis=a)
    return np.take(full, np.arange(shape[a]), axis=a)


def int4_input(q: Any) -> Tuple[np.ndarray, QDType]:
    """The input of pack_int4 and its 4-bit dtype: int8 holds int4, uint8 holds uint4."""
    qa = np.asarray(q)
    if qa.dtype == np.int8:
        return qa, DTYPES["int4"]
    if qa.dtype == np.uint8:
        return qa, DTYPES["uint4"]
    raise TypeError(f"q must be int8 (int4 values -8..7) or uint8 (uint4 values 0..15), "
                    f"got dtype {qa.dtype}")


def pack_int4_range_error(qa: np.ndarray, dt: QDType) -> ValueError:
    """The error of pack_int4 for values outside ``dt``'s range (``qa`` holds some)."""
    return ValueError(f"pack_int4 needs values in {dt.qmin}..{dt.qmax} for {qa.dtype}; "
                      f"got values in {qa.min()}..{qa.max()}")


def packed_input(packed: Any) -> np.ndarray:
    pa = np.asarray(packed)
    if pa.dtype != np.uint8:
        raise TypeError(f"packed must be a uint8 array (two 4-bit values a byte), "
                        f"got dtype {pa.dtype}")
    return pa


CALIBRATION_METHODS = ("minmax", "percentile", "mse")


def calibration_method(method: Any) -> str:
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {CALIBRATION_METHODS}, got {method!r}")
    return method


def percentile_value(percentile: Any) -> float:
    """The ``percentile`` of ``method="percentile"`` as a float in [50, 100] (below 50 the two
    tails overlap)."""
    p = float(percentile)
    if not 50.0 <= p <= 100.0:
        raise ValueError(f"percentile must lie in [50, 100], got {percentile!r}")
    return p


def calib_spec(x, dtype, axis, group_size, method, percentile):
    dt = qdtype(dtype)
    xf = float_array(x, "x")
    gran = granularity(xf.shape, axis, group_size)
    calibration_method(method)
    percentile_value(percentile)
    return dt, xf, gran


def make_qparams(scale, zp, dt: QDType, gran: Granularity) -> QParams:
    shape = gran.scale_shape
    return QParams(np.asarray(scale, np.float32).reshape(shape),
                   np.asarray(zp).astype(dt.storage).reshape(shape), dt.name, gran.axis,
                   gran.group_size)
