"""lb.save_safetensors / lb.load_safetensors: exact round trips of every dtype and format,
files the safetensors package reads, and clear errors for files lowbit does not understand."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import lowbit as lb

KINDS = [("int8", dict(axis=0)), ("uint8", dict(axis=0, symmetric=False)),
         ("int4", dict(axis=1, group_size=32)), ("uint4", dict(axis=0, symmetric=False)),
         ("fp8_e4m3", dict(axis=0)), ("fp8_e5m2", dict()), ("fp4_e2m1", dict(axis=1, group_size=32)),
         ("nf4", dict(axis=1, group_size=64)), ("mxfp4_e2m1", dict(axis=1)),
         ("mxfp8_e5m2", dict(axis=1)), ("mxint8", dict(axis=1)), ("codebook4", dict(axis=0)),
         ("codebook8", dict(axis=0))]


def test_round_trip_every_dtype(tmp_path, rng):
    w = rng.standard_normal((24, 70)).astype(np.float32)
    tensors = {f"layer.{i}.weight": lb.QTensor.quantize(w, dt, **kw)
               for i, (dt, kw) in enumerate(KINDS)}
    tensors["layer.0.bias"] = rng.standard_normal(24).astype(np.float32)
    tensors["embed"] = rng.standard_normal((5, 3)).astype(np.float16)
    tensors["ids"] = np.arange(7, dtype=np.int64)
    path = tmp_path / "model.safetensors"
    lb.save_safetensors(path, tensors)
    back = lb.load_safetensors(path)
    assert set(back) == set(tensors)
    for name, t in tensors.items():
        b = back[name]
        if isinstance(t, np.ndarray):
            assert b.dtype == t.dtype and np.array_equal(b, t)
            continue
        assert type(b) is type(t) and b.dtype == t.dtype and b.shape == t.shape
        assert b.axis == t.axis and b.group_size == t.group_size and b.nbytes == t.nbytes
        assert np.array_equal(b.data, t.data)
        assert b.dequantize().tobytes() == t.dequantize().tobytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lowbit-")]


def test_the_safetensors_package_reads_the_file(tmp_path, rng):
    st = pytest.importorskip("safetensors.numpy")
    q = lb.QTensor.quantize(rng.standard_normal((8, 64)).astype(np.float32), "int4", axis=0)
    path = tmp_path / "m.safetensors"
    lb.save_safetensors(path, {"w": q, "b": np.ones(8, np.float32)})
    got = st.load_file(str(path))
    assert set(got) == {"w.data", "w.scale", "w.zero_point", "b"}
    assert np.array_equal(got["w.data"], q.data) and np.array_equal(got["b"], np.ones(8))
    # and lowbit reads a file the package wrote (no lowbit metadata: plain arrays)
    st.save_file({"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(tmp_path / "o.st"))
    assert np.array_equal(lb.load_safetensors(tmp_path / "o.st")["x"],
                          np.arange(6, dtype=np.float32).reshape(2, 3))


def _rewrite_header(path, edit):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    edit(header)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[8 + n:])


def test_files_lowbit_does_not_understand_are_refused(tmp_path, rng):
    q = lb.QTensor.quantize(rng.standard_normal((8, 64)).astype(np.float32), "nf4", axis=0)
    path = tmp_path / "m.safetensors"
    lb.save_safetensors(path, {"w": q})
    good = path.read_bytes()

    path.write_bytes(good[:5])
    with pytest.raises(ValueError, match="8-byte header"):
        lb.load_safetensors(path)
    path.write_bytes(good[:40])
    with pytest.raises(ValueError, match="past the end"):
        lb.load_safetensors(path)
    path.write_bytes(good[:-3])
    with pytest.raises(ValueError, match="does not fit"):
        lb.load_safetensors(path)

    def version(h):
        meta = json.loads(h["__metadata__"]["lowbit"])
        meta["format_version"] = 99
        h["__metadata__"]["lowbit"] = json.dumps(meta)

    def drop_part(h):
        del h["w.scale"]

    def bad_dtype(h):
        meta = json.loads(h["__metadata__"]["lowbit"])
        meta["qtensors"]["w"]["dtype"] = "fp7"
        h["__metadata__"]["lowbit"] = json.dumps(meta)

    for edit, match in ((version, "format version 99"), (drop_part, "part 'scale'"),
                        (bad_dtype, "'w' does not fit")):
        path.write_bytes(good)
        _rewrite_header(path, edit)
        with pytest.raises(ValueError, match=match):
            lb.load_safetensors(path)
    with pytest.raises(FileNotFoundError):
        lb.load_safetensors(tmp_path / "none.safetensors")


def test_bad_values_are_refused_before_writing(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match="dtype"):
        lb.save_safetensors(path, {"c": np.ones(2, np.complex64)})
    q = lb.QTensor.quantize(np.ones((2, 4), np.float32), "int8", axis=0)
    with pytest.raises(ValueError, match="given twice"):
        lb.save_safetensors(path, {"w": q, "w.data": np.ones(2, np.float32)})
    assert not path.exists()
