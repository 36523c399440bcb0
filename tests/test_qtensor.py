"""lb.QTensor: quantization round trips, immutability, the GEMM cache, save / lb.load."""

import io
import pickle
import zipfile

import numpy as np
import pytest

import lowbit as lb
import lowbit.reference as lbr
from conftest import assert_qparams_same, assert_same

GRANULARITIES = [
    dict(),                              # per tensor
    dict(axis=0),                        # per output channel
    dict(axis=1, group_size=4),
    dict(axis=1, group_size=5),          # odd groups straddle the packed bytes
    dict(axis=-1, group_size=64),        # one (short) group
    dict(axis=1),
]


def _w(rng, shape=(7, 13)):
    return (rng.standard_normal(shape) * 3).astype(np.float32)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint4"])
@pytest.mark.parametrize("gran", GRANULARITIES, ids=str)
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantize_round_trip(dtype, gran, symmetric, rng):
    w = _w(rng)
    wq = lb.QTensor.quantize(w, dtype, symmetric=symmetric, **gran)
    qp = lb.calibrate(w, dtype, symmetric=symmetric, **gran)
    assert_qparams_same(wq.qparams, qp)
    q = lb.quantize(w, qp)
    assert wq.dtype == dtype and wq.shape == w.shape
    assert wq.axis == qp.axis and wq.group_size == qp.group_size
    if dtype in ("int4", "uint4"):
        assert wq.data.dtype == np.uint8 and wq.data.shape == (7, 7)
        assert_same(wq.data, lb.pack_int4(q, axis=-1))
    else:
        assert_same(wq.data, q)
    assert_same(wq.int_repr(), q)
    assert_same(wq.dequantize(), lbr.dequantize(q, qp))
    assert wq.nbytes == wq.data.nbytes + wq.scale.nbytes + wq.zero_point.nbytes
    assert wq.bits_per_weight == pytest.approx(8 * wq.nbytes / w.size)
    assert dtype in repr(wq) and str(w.shape) in repr(wq)


@pytest.mark.parametrize("method", ["percentile", "mse"])
def test_quantize_methods_match_calibrate(method, rng):
    w = _w(rng, (5, 40))
    wq = lb.QTensor.quantize(w, "int4", axis=0, method=method, percentile=99.0)
    assert_qparams_same(wq.qparams, lb.calibrate(w, "int4", axis=0, method=method,
                                                 percentile=99.0))


@pytest.mark.parametrize("shape", [(1,), (9,), (2, 3, 5), (4, 1)])
def test_other_ranks(shape, rng):
    w = _w(rng, shape)
    for dtype in ("int4", "int8"):
        wq = lb.QTensor.quantize(w, dtype, axis=0)
        assert_same(wq.dequantize(), lb.fake_quantize(w, lb.calibrate(w, dtype, axis=0)))


def test_nbytes_int4_group(rng):
    wq = lb.QTensor.quantize(_w(rng, (64, 256)), "int4", axis=1, group_size=32)
    # 64*256/2 data bytes + 64*8 float32 scales + 64*8 int8 zero points
    assert wq.nbytes == 64 * 128 + 64 * 8 * 4 + 64 * 8
    assert wq.bits_per_weight == pytest.approx(4.0 + 40 / 32)


def test_immutable(rng):
    wq = lb.QTensor.quantize(_w(rng), "int4", axis=0)
    for arr in (wq.data, wq.scale, wq.zero_point):
        with pytest.raises(ValueError):
            arr[...] = 0
    with pytest.raises(AttributeError):
        wq.scale = np.ones(7, np.float32)
    with pytest.raises(AttributeError):
        wq.extra = 1
    # the tensor owns copies: the caller's arrays do not alias it
    w = _w(rng)
    wq = lb.QTensor.quantize(w, "int8")
    before = wq.dequantize()
    w[:] = 0
    assert_same(wq.dequantize(), before)
    r = wq.int_repr()
    r[...] = 0                      # a fresh writable array
    assert wq.int_repr().any()


def test_constructor_checks(rng):
    wq = lb.QTensor.quantize(_w(rng), "int4", axis=1, group_size=4)
    ok = dict(data=wq.data, scale=wq.scale, zero_point=wq.zero_point, dtype="int4",
              shape=(7, 13), axis=1, group_size=4)
    lb.QTensor(**ok)
    bad = [
        (dict(data=wq.data[:, :6]), ValueError),
        (dict(data=wq.data.view(np.int8)), TypeError),
        (dict(scale=wq.scale[:, :3]), ValueError),
        (dict(scale=-wq.scale), ValueError),
        (dict(zero_point=wq.zero_point.astype(np.int32)), TypeError),
        (dict(zero_point=np.full((7, 4), 9, np.int8)), ValueError),
        (dict(dtype="int3"), ValueError),
        (dict(shape=()), ValueError),
        (dict(axis=2), ValueError),
        (dict(data=wq.data | np.uint8(0xF0)), ValueError),   # padding nibble of odd rows
    ]
    for change, exc in bad:
        with pytest.raises(exc):
            lb.QTensor(**{**ok, **change})
    with pytest.raises(ValueError, match="0-d"):
        lb.QTensor.quantize(np.float32(1.0))
    with pytest.raises(ValueError):
        lb.QTensor.quantize(np.array([1.0, np.nan], np.float32))
    with pytest.raises(TypeError):
        lb.QTensor.quantize(np.arange(4))


def test_cache_builds_once(rng):
    wq = lb.QTensor.quantize(_w(rng), "int8", axis=0)
    calls = []
    for _ in range(3):
        v = wq._cached(("k", 1), lambda: calls.append(1) or "packed")
    assert v == "packed" and calls == [1]


def test_pickle(rng):
    wq = lb.QTensor.quantize(_w(rng), "uint4", axis=1, group_size=3, symmetric=False)
    back = pickle.loads(pickle.dumps(wq))
    _assert_same_tensor(back, wq)


# ---------------------------------------------------------------------------------- files


def _assert_same_tensor(a, b):
    assert (a.dtype, a.shape, a.axis, a.group_size) == (b.dtype, b.shape, b.axis, b.group_size)
    for name in ("data", "scale", "zero_point"):
        assert_same(getattr(a, name), getattr(b, name), name)
    assert not a.data.flags.writeable


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint4"])
@pytest.mark.parametrize("gran", GRANULARITIES[:4], ids=str)
def test_save_load_round_trip(dtype, gran, tmp_path, rng):
    wq = lb.QTensor.quantize(_w(rng), dtype, symmetric=dtype != "int4", **gran)
    path = tmp_path / "w.qt"              # no .npz suffix: written as given
    wq.save(path)
    assert path.exists()
    _assert_same_tensor(lb.load(path), wq)
    _assert_same_tensor(lb.load(str(path)), wq)
    buf = io.BytesIO()
    wq.save(buf)
    buf.seek(0)
    _assert_same_tensor(lb.load(buf), wq)


def _entries(wq):
    buf = io.BytesIO()
    wq.save(buf)
    buf.seek(0)
    with np.load(buf) as f:
        return {k: f[k] for k in f.files}


def _write(path, entries):
    with open(path, "wb") as f:
        np.savez(f, **entries)
    return path


def test_load_errors(tmp_path, rng):
    wq = lb.QTensor.quantize(_w(rng), "int4", axis=0)
    good = tmp_path / "good.npz"
    wq.save(good)
    raw = good.read_bytes()

    truncated = tmp_path / "truncated.npz"
    for cut in (10, len(raw) // 2, len(raw) - 30):
        truncated.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="not a readable lowbit QTensor"):
            lb.load(truncated)

    corrupt = bytearray(raw)
    corrupt[60:80] = b"\x00" * 20            # inside the first member's bytes
    (tmp_path / "corrupt.npz").write_bytes(bytes(corrupt))
    with pytest.raises(ValueError):
        lb.load(tmp_path / "corrupt.npz")

    (tmp_path / "text.npz").write_bytes(b"hello, I am not an archive\n" * 10)
    with pytest.raises(ValueError, match="not a readable lowbit QTensor"):
        lb.load(tmp_path / "text.npz")

    np.save(tmp_path / "single.npy", np.arange(3))
    with pytest.raises(ValueError, match="single array"):
        lb.load(tmp_path / "single.npy")

    foreign = _write(tmp_path / "foreign.npz", {"weights": np.ones(3)})
    with pytest.raises(ValueError, match="no 'format' entry"):
        lb.load(foreign)

    e = _entries(wq)
    cases = {
        "other format": ({"format": np.array("someone.Else")}, "format is"),
        "newer version": ({"format_version": np.array(2)}, "format version 2"),
        "data shape": ({"data": e["data"][:, :3]}, "inconsistent"),
        "scale shape": ({"scale": e["scale"][:3]}, "inconsistent"),
        "shape": ({"shape": np.array([7, 12])}, "inconsistent"),
        "dtype": ({"dtype": np.array("int2")}, "inconsistent"),
        "axis": ({"axis": np.array(5)}, "inconsistent"),
        "zero point range": ({"zero_point": np.full(7, 100, np.int8)}, "inconsistent"),
        "scale value": ({"scale": np.zeros(7, np.float32)}, "inconsistent"),
        "shape kind": ({"shape": np.array([7.0, 13.0])}, "1-D integer"),
        "version kind": ({"format_version": np.array([1, 1])}, "must be a scalar"),
    }
    for name, (change, msg) in cases.items():
        path = _write(tmp_path / f"{name}.npz", {**e, **change})
        with pytest.raises(ValueError, match=msg):
            lb.load(path)
    missing = dict(e)
    del missing["scale"]
    with pytest.raises(ValueError, match="missing entry 'scale'"):
        lb.load(_write(tmp_path / "missing.npz", missing))

    with pytest.raises(FileNotFoundError):
        lb.load(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="directory"):
        lb.load(tmp_path)


def test_saved_file_has_no_pickles(tmp_path, rng):
    wq = lb.QTensor.quantize(_w(rng), "int8", axis=0)
    wq.save(tmp_path / "w.npz")
    with zipfile.ZipFile(tmp_path / "w.npz") as z:
        names = sorted(z.namelist())
    assert "format.npy" in names and "format_version.npy" in names
    with np.load(tmp_path / "w.npz", allow_pickle=False) as f:
        assert f["format"].item() == "lowbit.QTensor"
        assert int(f["format_version"]) == 1
