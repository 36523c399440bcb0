"""``save_safetensors`` / ``load_safetensors``: quantized models in the safetensors format.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, and the raw bytes. lowbit writes it itself (no dependency; the
``safetensors`` package reads the files, which the tests check). Each QTensor becomes plain
tensors ``<name>.data``, ``<name>.scale`` and, where it has them, ``<name>.zero_point``,
``<name>.exps``, ``<name>.levels``; the header's ``__metadata__`` holds one JSON entry,
``lowbit``, describing every QTensor (kind, dtype, shape, axis, group size, parts) with a
format version. Loading checks all of it and rebuilds the QTensors through their own checks.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from typing import Any, Dict, Mapping, Union

import numpy as np


FORMAT_VERSION = 1
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32,
           "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
_PARTS = ("data", "scale", "zero_point", "exps", "levels")


def _qtensor_parts(q) -> Dict[str, np.ndarray]:
    parts = {}
    for key in _PARTS:
        arr = getattr(q, key, None)
        if arr is not None:
            parts[key] = np.ascontiguousarray(arr)
    return parts


def _put(plain: Dict[str, np.ndarray], name: str, arr: np.ndarray) -> None:
    if name in plain:
        raise ValueError(f"tensor name {name!r} is given twice (a QTensor's part has that name)")
    plain[name] = arr


def save_safetensors(path: Union[str, "os.PathLike[str]"],
                     tensors: Mapping[str, Any]) -> None:
    """Write float arrays and QTensors to a safetensors file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Written through a temporary file in the same folder, renamed at the end: an
        interrupted call leaves no partial file.
    tensors : mapping of str to ndarray or QTensor
        Names must not contain the parts' suffixes of another entry (``w`` and ``w.data``).

    Raises
    ------
    TypeError
        A value that is neither an array nor a QTensor, or an array of an unsupported dtype.
    ValueError
        Clashing names.
    """
    from ._bases import QTensorBase
    plain: Dict[str, np.ndarray] = {}
    described: Dict[str, Any] = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"tensor names must be non-empty strings, got {name!r}")
        if isinstance(value, QTensorBase):
            parts = _qtensor_parts(value)
            kind = type(value).__name__
            described[name] = {"kind": kind, "dtype": value.dtype, "shape": list(value.shape),
                               "axis": value.axis, "group_size": value.group_size,
                               "parts": {k: f"{name}.{k}" for k in parts}}
            for k, arr in parts.items():
                _put(plain, f"{name}.{k}", arr)
        else:
            arr = np.ascontiguousarray(np.asarray(value))
            if arr.dtype not in _CODES:
                raise TypeError(f"tensor {name!r}: dtype {arr.dtype} has no safetensors code "
                                f"(supported: {sorted(str(np.dtype(d)) for d in _DTYPES.values())})")
            _put(plain, name, arr)
    if set(described) & set(plain):
        raise ValueError(f"tensor names clash with the parts of a QTensor: "
                         f"{sorted(set(described) & set(plain))}")
    header: Dict[str, Any] = {}
    offset = 0
    for name, arr in plain.items():
        header[name] = {"dtype": _CODES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    header["__metadata__"] = {"lowbit": json.dumps({"format_version": FORMAT_VERSION,
                                                    "qtensors": described})}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    fd, tmp = tempfile.mkstemp(prefix=".lowbit-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for arr in plain.values():
                f.write(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _bad(path, why: str) -> ValueError:
    return ValueError(f"{os.fspath(path)!r} is not a readable safetensors file: {why}")


def load_safetensors(path: Union[str, "os.PathLike[str]"]) -> Dict[str, Any]:
    """Read a safetensors file: plain tensors as ndarrays, lowbit's QTensors rebuilt.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A truncated or corrupt file, byte ranges that do not fit, an unknown dtype, lowbit
        metadata of another format version, or QTensor parts that do not fit together (the
        message names the tensor).
    """
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise _bad(path, "shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise _bad(path, f"header length {n} past the end of the file")
    try:
        header = json.loads(raw[8:8 + n].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _bad(path, f"header is not JSON ({err})") from err
    if not isinstance(header, dict):
        raise _bad(path, "header is not a JSON object")
    data = memoryview(raw)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    arrays: Dict[str, np.ndarray] = {}
    for name, info in header.items():
        try:
            dt = _DTYPES[info["dtype"]]
            shape = tuple(int(d) for d in info["shape"])
            b, e = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as err:
            raise _bad(path, f"tensor {name!r}: bad entry {info!r}") from err
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dt).itemsize
        if not 0 <= b <= e <= len(data) or e - b != size:
            raise _bad(path, f"tensor {name!r}: byte range [{b}, {e}) does not fit its shape "
                             f"{shape} of {np.dtype(dt)} in {len(data)} bytes")
        arrays[name] = np.frombuffer(data[b:e], dtype=np.dtype(dt).newbyteorder("<")).astype(
            dt).reshape(shape)
    desc: Dict[str, Any] = {}
    if "lowbit" in meta:
        try:
            info = json.loads(meta["lowbit"])
        except json.JSONDecodeError as err:
            raise _bad(path, f"lowbit metadata is not JSON ({err})") from err
        if info.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{os.fspath(path)!r} has lowbit safetensors format version "
                             f"{info.get('format_version')!r}; this lowbit reads version "
                             f"{FORMAT_VERSION} only")
        desc = info.get("qtensors", {})
    out: Dict[str, Any] = {}
    used = set()
    for name, d in desc.items():
        parts = {}
        for key, tname in d.get("parts", {}).items():
            if key not in _PARTS or tname not in arrays:
                raise _bad(path, f"QTensor {name!r}: part {key!r} ({tname!r}) is missing")
            parts[key] = arrays[tname]
            used.add(tname)
        try:
            out[name] = _rebuild(d, parts)
        except (TypeError, ValueError, KeyError) as err:
            raise ValueError(f"{os.fspath(path)!r}: QTensor {name!r} does not fit together: "
                             f"{err}") from err
    for name, arr in arrays.items():
        if name not in used:
            out[name] = arr
    return out


def _rebuild(d: Mapping[str, Any], parts: Mapping[str, np.ndarray]):
    shape = tuple(int(v) for v in d["shape"])
    if d["kind"] == "QTensor":
        from ._qtensor import QTensor
        return QTensor(parts["data"], parts["scale"], parts.get("zero_point"), d["dtype"], shape,
                       d.get("axis"), d.get("group_size"))
    if d["kind"] == "FormatTensor":
        from ._fqtensor import FormatTensor, is_format_dtype
        if not is_format_dtype(d["dtype"]):
            raise ValueError(f"unknown format {d['dtype']!r}")
        t = FormatTensor(parts["data"], parts.get("scale"), parts.get("exps"),
                         parts.get("levels"), d["dtype"], shape, d.get("axis"),
                         d.get("group_size"))
        t.dequantize()  # every check of the format's dequantize
        return t
    raise ValueError(f"unknown kind {d['kind']!r}")


__all__ = ["save_safetensors", "load_safetensors"]
