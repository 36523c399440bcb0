"""``QTensor``: a quantized weight tensor (data + scales + zero points), and its ``.npz`` file.

docs/api.md, "Quantized tensors and layers". 4-bit data is stored packed two a byte along the LAST
axis (``lb.quantize(..., packed=True)``), so a ``(out, in)`` weight packs along ``in``, which is
the reduction axis K of ``linear``. The arrays are read-only, so a QTensor never changes after
it is made and the pre-packed GEMM weights kept in its cache stay valid.
"""

from __future__ import annotations

import os
import threading
import zipfile
from typing import Any, Callable, Hashable, Optional, Sequence

import numpy as np

from . import _checks, _quant
from ._bases import QTensorBase
from ._typing import ArrayLike, Axis, DTypeName, PathOrFile, ZeroPoint

__all__ = ["QTensor", "load", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "lowbit.QTensor"
FORMAT_VERSION = 1
_KEYS = ("format", "format_version", "dtype", "shape", "axis", "group_size", "data", "scale",
         "zero_point")


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, copy=True, order="C")
    arr.setflags(write=False)
    return arr


class QTensor(QTensorBase):
    """A quantized tensor: integer data, float32 scales and zero points.

    Made by :meth:`QTensor.quantize` (or :func:`lowbit.load`); the constructor takes the
    stored arrays and checks that they fit together.

    Parameters
    ----------
    data : ndarray
        int8 / uint8 values of ``shape`` for 8-bit dtypes; for ``"int4"``/``"uint4"``, uint8
        bytes holding two values each along the last axis (shape ``shape[:-1] +
        (ceil(shape[-1] / 2),)``, element 2i in the low nibble).
    scale : ndarray of float32
        Shaped as the granularity says (docs/api.md): ``(1,)``, ``(shape[axis],)`` or ``shape``
        with ``axis`` replaced by ``ceil(shape[axis] / group_size)``.
    zero_point : ndarray or None
        Shaped like ``scale``, in the storage dtype of ``dtype`` (int8 for int8/int4, uint8
        for uint8/uint4), values in the range of ``dtype``; None for zeros (symmetric).
    dtype : {"int8", "uint8", "int4", "uint4"}
    shape : tuple of int
        Logical (unpacked) shape, at least one dimension.
    axis, group_size : int or None
        Granularity, as in :func:`lowbit.quantize`.

    Attributes
    ----------
    data, scale, zero_point : ndarray
        Read-only.
    dtype : str
    shape : tuple of int
    axis, group_size : int or None
        ``axis`` is normalised to a non-negative index.
    nbytes : int
        ``data.nbytes + scale.nbytes + zero_point.nbytes``.
    bits_per_weight : float
        ``8 * nbytes / size``, scales and zero points included.

    Examples
    --------
    >>> import numpy as np, lowbit as lb
    >>> w = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    >>> wq = lb.QTensor.quantize(w, "int4", axis=0)
    >>> wq.data.shape, wq.nbytes
    ((2, 2), 14)
    >>> wq.int_repr()
    array([[-7, -5, -3, -1],
           [ 1,  3,  5,  7]], dtype=int8)
    """

    __slots__ = ("_data", "_scale", "_zero_point", "_dt", "_shape", "_axis", "_group_size",
                 "_packed_cache", "_cache_lock")

    def __init__(self, data: ArrayLike, scale: ArrayLike, zero_point: ZeroPoint, dtype: DTypeName,
                 shape: Sequence[int], axis: Axis = None, group_size: Optional[int] = None) -> None:
        dt = _checks.qdtype(dtype)
        try:
            shape = tuple(int(d) for d in shape)
        except TypeError:
            raise TypeError(f"shape must be a tuple of ints, got {shape!r}") from None
        if not shape or min(shape) < 0:
            raise ValueError(f"shape must have at least one dimension and no negative sizes, "
                             f"got {shape}")
        gran = _checks.granularity(shape, axis, group_size)
        data = np.asarray(data)
        want_dtype = np.uint8 if dt.bits == 4 else dt.storage
        want_shape = _checks.packed_shape(shape) if dt.bits == 4 else shape
        if data.dtype != want_dtype:
            raise TypeError(f"data must have dtype {np.dtype(want_dtype)} for dtype "
                            f"{dt.name!r}, got {data.dtype}")
        if data.shape != want_shape:
            raise ValueError(f"data has shape {data.shape}; expected {want_shape} for a "
                             f"{dt.name} tensor of shape {shape}"
                             + (" packed along the last axis" if dt.bits == 4 else ""))
        if dt.bits == 4 and shape[-1] % 2 and data.size and (data[..., -1] >> 4).any():
            raise ValueError("data has a non-zero padding nibble (the high nibble of the last "
                             "byte of each odd-length row must be 0)")
        s = _checks.scale_array(scale, gran)
        # None: symmetric, zero points 0 (as quantize and dequantize take it)
        zp = (np.zeros(gran.scale_shape, dt.storage) if zero_point is None
              else np.asarray(zero_point))
        if zp.dtype != dt.storage:
            raise TypeError(f"zero_point must have dtype {np.dtype(dt.storage)} for dtype "
                            f"{dt.name!r}, got {zp.dtype}")
        _checks.zero_point_array(zp, gran, dt.qmin, dt.qmax, f"the range of {dt.name}")
        self._data = _frozen(data)
        self._scale = _frozen(s)
        self._zero_point = _frozen(zp.reshape(gran.scale_shape))
        self._dt = dt
        self._shape = shape
        self._axis = gran.axis
        self._group_size = gran.group_size
        self._packed_cache: dict = {}
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------------------ making

    @classmethod
    def quantize(cls, w: ArrayLike, dtype: DTypeName = "int4", *, axis: Axis = None,
                 group_size: Optional[int] = None, symmetric: bool = True,
                 method: str = "minmax", percentile: float = 99.99) -> "QTensor":
        """Quantize a float tensor: :func:`lowbit.calibrate`, then :func:`lowbit.quantize`.

        Parameters
        ----------
        w : array_like of float
            The tensor, at least one dimension, finite values.
        dtype : str
            ``"int8"``, ``"uint8"``, ``"int4"``, ``"uint4"``; or a floating-point / non-uniform
            format: ``"fp8_e4m3"``, ``"fp8_e5m2"``, ``"fp4_e2m1"``, ``"nf4"``, the MX formats
            ``"mxfp8_e4m3"``, ``"mxfp8_e5m2"``, ``"mxfp4_e2m1"``, ``"mxint8"`` (blocks of 32
            along ``axis``, default the last), or ``"codebook2"`` .. ``"codebook8"`` (a k-means
            codebook per row of a 2-D weight). The formats return a ``FormatTensor`` (codes,
            scales or codebooks, ``nbytes``, ``dequantize()``, ``save()``), which ``lb.linear``
            runs weight-only (``act_dtype=None``).
        axis, group_size : int, optional
            Granularity. For ``lb.linear`` weights of shape ``(out, in)``: ``axis=0``
            (per output channel) or ``axis=1, group_size=g`` (groups of ``g`` along ``in``).
        symmetric : bool
            Symmetric range (zero point 0, or the middle for unsigned dtypes) or asymmetric.
        method : {"minmax", "percentile", "mse"}
            How the range is chosen, see :func:`lowbit.calibrate`.
        percentile : float
            For ``method="percentile"``.

        Returns
        -------
        QTensor
            4-bit data packed along the last axis.

        Raises
        ------
        ValueError
            A 0-d tensor, NaN or infinity, or a granularity that does not fit.
        """
        if np.ndim(w) == 0:
            raise ValueError("QTensor needs at least one dimension; got a 0-d array")
        from . import _fqtensor
        if _fqtensor.is_format_dtype(dtype):
            if not symmetric:
                raise ValueError(f"symmetric=False is not available for {dtype!r}: the format "
                                 f"is symmetric")
            return _fqtensor.FormatTensor.quantize(  # type: ignore[return-value]
                w, dtype, axis, group_size, method, percentile)
        wf = _checks.float_array(w, "w")
        qp = _quant.calibrate(wf, dtype, symmetric=symmetric, axis=axis, group_size=group_size,
                       method=method, percentile=percentile)
        dt = _checks.qdtype(qp.dtype)
        data = _quant.quantize(wf, qp, packed=dt.bits == 4)
        return cls(data, qp.scale, qp.zero_point, dt.name, wf.shape, qp.axis, qp.group_size)

    # ------------------------------------------------------------------------------ reading

    data = property(lambda self: self._data, doc="Stored integers (4-bit: packed uint8).")
    scale = property(lambda self: self._scale, doc="float32 scales.")
    zero_point = property(lambda self: self._zero_point, doc="Zero points (storage dtype).")
    dtype = property(lambda self: self._dt.name, doc="Quantized dtype name.")
    shape = property(lambda self: self._shape, doc="Logical (unpacked) shape.")
    axis = property(lambda self: self._axis, doc="Axis of the scales, or None (per tensor).")
    group_size = property(lambda self: self._group_size, doc="Group size, or None.")
    ndim = property(lambda self: len(self._shape))

    @property
    def size(self) -> int:
        """Number of logical elements."""
        return int(np.prod(self._shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes of data, scales and zero points (the pre-packed GEMM cache is not counted)."""
        return int(self._data.nbytes + self._scale.nbytes + self._zero_point.nbytes)

    @property
    def bits_per_weight(self) -> float:
        """``8 * nbytes / size``: storage per element, scales and zero points included."""
        return 8.0 * self.nbytes / self.size if self.size else 0.0

    @property
    def qparams(self) -> _checks.QParams:
        """Scale, zero point, dtype and granularity as a :class:`lowbit.QParams`."""
        return _checks.QParams(self._scale, self._zero_point, self._dt.name, self._axis,
                               self._group_size)

    def dequantize(self) -> np.ndarray:
        """``float32(int32(q) - int32(zero_point)) * scale`` as a new float32 array."""
        packed = self._dt.name if self._dt.bits == 4 else None
        return _quant.dequantize(self._data, self._scale, self._zero_point, axis=self._axis,
                          group_size=self._group_size, packed=packed,
                          n=self._shape[-1] if packed else None)

    def int_repr(self) -> np.ndarray:
        """The integers unpacked, one per element: int8 (int8, int4) or uint8 (uint8, uint4).
        A new, writable array."""
        if self._dt.bits == 4:
            return _quant.unpack_int4(self._data, signed=self._dt.signed, axis=-1,
                                      n=self._shape[-1])
        return self._data.copy()

    def __repr__(self) -> str:
        return (f"QTensor(shape={self._shape}, dtype={self._dt.name!r}, axis={self._axis}, "
                f"group_size={self._group_size}, nbytes={self.nbytes}, "
                f"bits_per_weight={self.bits_per_weight:.3g})")

    def __reduce__(self):
        return (QTensor, (self._data, self._scale, self._zero_point, self._dt.name, self._shape,
                          self._axis, self._group_size))

    # ------------------------------------------------------------------------------ GEMM cache

    def _cached(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The value cached under ``key``, built by ``build()`` on first use.

        ``lb.linear`` keeps pre-packed weights here, keyed by the packed layout of the active
        ISA path (each path may have its own layout). Safe to call from several threads; a
        value is built at most once per key. The cache is not saved by :meth:`save` and not
        counted in :attr:`nbytes`.
        """
        value = self._packed_cache.get(key)
        if value is not None:
            return value
        with self._cache_lock:
            value = self._packed_cache.get(key)
            if value is None:
                value = build()
                self._packed_cache[key] = value
        return value

    def _clear_cache(self) -> None:
        with self._cache_lock:
            self._packed_cache.clear()

    # ------------------------------------------------------------------------------ files

    def save(self, path: PathOrFile) -> None:
        """Write the tensor to an ``.npz`` file (no pickles).

        Parameters
        ----------
        path : str, os.PathLike or writable binary file
            Written exactly as given (no ``.npz`` suffix is added).

        Notes
        -----
        Entries: ``format`` (``"lowbit.QTensor"``), ``format_version`` (1), ``dtype``,
        ``shape``, ``axis`` and ``group_size`` (-1 for None), ``data``, ``scale``,
        ``zero_point``. :func:`lowbit.load` reads it back.
        """
        entries = dict(
            format=np.array(FORMAT_NAME),
            format_version=np.array(FORMAT_VERSION, np.int64),
            dtype=np.array(self._dt.name),
            shape=np.array(self._shape, np.int64),
            axis=np.array(-1 if self._axis is None else self._axis, np.int64),
            group_size=np.array(-1 if self._group_size is None else self._group_size, np.int64),
            data=self._data, scale=self._scale, zero_point=self._zero_point,
        )
        if isinstance(path, (str, os.PathLike)):
            with open(path, "wb") as f:
                np.savez(f, **entries)  # type: ignore[arg-type]  # (numpy's stub: allow_pickle)
        else:
            np.savez(path, **entries)  # type: ignore[arg-type]


def _foreign(path, why: str) -> ValueError:
    return ValueError(f"{_name(path)} is not a readable lowbit QTensor file: {why}")


def _name(path) -> str:
    return repr(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else "the file"


def load(path: PathOrFile) -> QTensor:
    """Read a :class:`QTensor` written by :meth:`QTensor.save`.

    Parameters
    ----------
    path : str, os.PathLike or readable binary file

    Returns
    -------
    QTensor

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is truncated or corrupt, is not a lowbit QTensor file (no ``format`` entry
        or another format), has a format version this lowbit does not read, or holds arrays
        that do not fit together (the message says which).

    Examples
    --------
    >>> import io, numpy as np, lowbit as lb
    >>> f = io.BytesIO()
    >>> lb.QTensor.quantize(np.ones((2, 3), np.float32), "int8", axis=0).save(f)
    >>> _ = f.seek(0); lb.load(f)
    QTensor(shape=(2, 3), dtype='int8', axis=0, group_size=None, nbytes=16, bits_per_weight=21.3)
    """
    if isinstance(path, (str, os.PathLike)):
        if os.path.isdir(path):
            raise ValueError(f"{_name(path)} is a directory, not a lowbit QTensor file")
        with open(path, "rb") as f:
            entries = _read_npz(f, path)
    else:
        entries = _read_npz(path, path)
    if "__format_tensor__" in entries:
        return entries["__format_tensor__"]
    return _from_entries(entries, path)


def _read_npz(f, path) -> dict:
    try:
        npz = np.load(f, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise _foreign(path, f"not an intact .npz archive ({e})") from e
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise _foreign(path, "it holds a single array, not a .npz archive")
    with npz:
        return _read_entries(npz, path)


def _read_entries(npz, path) -> dict:
    names = set(npz.files)
    if "format" not in names:
        raise _foreign(path, f"no 'format' entry (entries: {sorted(names)[:8]})")
    out = {}
    for key in _KEYS:               # format and version first: a newer file fails on those
        if key not in names:
            raise _foreign(path, f"missing entry {key!r}")
        try:
            out[key] = npz[key]
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
            raise _foreign(path, f"entry {key!r} is truncated or corrupt ({e})") from e
        if key == "format":
            fmt = _scalar(out, "format", "U", path)
            if fmt == "lowbit.FormatTensor":
                from . import _fqtensor
                return {"__format_tensor__": _fqtensor.from_entries(npz, _name(path))}
            if fmt != FORMAT_NAME:
                raise _foreign(path, f"format is {fmt!r}, expected {FORMAT_NAME!r}")
        elif key == "format_version":
            version = _scalar(out, "format_version", "iu", path)
            if version != FORMAT_VERSION:
                raise ValueError(f"{_name(path)} has QTensor format version {version}; this "
                                 f"lowbit reads version {FORMAT_VERSION} only")
    return out


def _scalar(entries, key, kind, path):
    v = entries[key]
    if v.shape != () or v.dtype.kind not in kind:
        raise _foreign(path, f"entry {key!r} must be a scalar, got shape {v.shape} dtype "
                             f"{v.dtype}")
    return v.item()


def _from_entries(e: dict, path) -> QTensor:
    dtype = _scalar(e, "dtype", "U", path)
    shape = e["shape"]
    if shape.ndim != 1 or shape.dtype.kind not in "iu":
        raise _foreign(path, f"entry 'shape' must be a 1-D integer array, got {shape!r}")
    axis = _scalar(e, "axis", "iu", path)
    group_size = _scalar(e, "group_size", "iu", path)
    try:
        return QTensor(e["data"], e["scale"], e["zero_point"], dtype, tuple(shape.tolist()),
                       None if axis == -1 else axis, None if group_size == -1 else group_size)
    except (TypeError, ValueError, IndexError) as err:   # AxisError is both
        raise ValueError(f"{_name(path)} holds an inconsistent QTensor: {err}") from err
