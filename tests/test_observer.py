"""lb.Observer: batch-by-batch calibration against lb.calibrate on all the data."""

import numpy as np
import pytest

import lowbit as lb
from conftest import assert_qparams_same

AxisError = getattr(np, "exceptions", np).AxisError


def _data(rng, shape=(60, 40)):
    # heavy tails and an offset, so percentile and mse differ from min-max
    return (rng.standard_t(3, size=shape) * 2 + 0.3).astype(np.float32)


def _feed(obs, x, step):
    for i in range(0, x.shape[0], step):
        obs.update(x[i:i + step])
    return obs


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint4"])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("axis", [None, 1, -1])
def test_minmax_equals_calibrate(dtype, symmetric, axis, rng):
    x = _data(rng)
    obs = _feed(lb.Observer("minmax", dtype, symmetric=symmetric, axis=axis), x, 7)
    want = lb.calibrate(x, dtype, symmetric=symmetric, axis=axis)
    assert_qparams_same(obs.qparams(), want)
    assert obs.count == x.size
    np.testing.assert_array_equal(obs.min, x.min(axis=0) if axis is not None else [x.min()])


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("axis", [None, 1])
@pytest.mark.parametrize("p", [90.0, 99.0, 99.99, 100.0])
def test_percentile_within_a_bin(symmetric, axis, p, rng):
    x = _data(rng, (200, 8))
    obs = _feed(lb.Observer("percentile", "int8", symmetric=symmetric, axis=axis,
                            percentile=p, bins=256), x, 33)
    got = obs.qparams()
    want = lb.calibrate(x, "int8", symmetric=symmetric, axis=axis, method="percentile",
                        percentile=p)
    cols = x.reshape(-1, 1) if axis is None else x
    span = cols.max(axis=0) - cols.min(axis=0) if not symmetric else np.abs(cols).max(axis=0)
    width = 2 * span / (256 - 1)                             # documented bound on a bin
    qrange = 127 if symmetric else 255
    assert (np.abs(got.scale - want.scale) * qrange <= 2 * width + 1e-6).all()
    if p == 100.0:
        assert_qparams_same(got, lb.calibrate(x, "int8", symmetric=symmetric, axis=axis))


@pytest.mark.parametrize("method", ["percentile", "mse"])
@pytest.mark.parametrize("axis", [None, 0])
def test_histogram_does_not_depend_on_batching(method, axis, rng):
    x = _data(rng, (5, 600))
    x[:, :100] *= 0.001                                      # a narrow first batch
    kw = dict(symmetric=False, axis=axis, percentile=99.0, bins=128)
    cols = [x[:, i:i + 100] for i in range(0, 600, 100)]
    a = lb.Observer(method, "int8", **kw)
    for c in cols:                                           # range grows batch by batch
        a.update(c)
    b = lb.Observer(method, "int8", **kw).update(x[:, ::-1])
    c = lb.Observer(method, "int8", **kw)
    for part in reversed(cols):
        c.update(part)
    np.testing.assert_array_equal(a._hist, b._hist)
    np.testing.assert_array_equal(a._hist, c._hist)
    assert a._hist.sum() == x.size
    assert_qparams_same(a.qparams(), b.qparams())
    assert_qparams_same(a.qparams(), c.qparams())


@pytest.mark.parametrize("dtype", ["int8", "int4"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_mse_close_to_calibrate(dtype, symmetric, rng):
    x = _data(rng, (400, 50))
    obs = _feed(lb.Observer("mse", dtype, symmetric=symmetric), x, 50)
    got = obs.qparams()
    want = lb.calibrate(x, dtype, symmetric=symmetric, method="mse")

    def err(qp):
        return ((lb.fake_quantize(x, qp) - x.astype(np.float64)) ** 2).mean()

    assert err(got) <= 1.05 * err(want)
    assert err(got) < err(lb.calibrate(x, dtype, symmetric=symmetric)) * 1.0001


def test_constant_and_zero_data():
    obs = lb.Observer("percentile", "int8", symmetric=False)
    obs.update(np.full(10, 2.5, np.float32))
    assert_qparams_same(obs.qparams(), lb.calibrate(np.full(3, 2.5, np.float32), "int8",
                                                    symmetric=False))
    obs.update(np.linspace(-1, 4, 50, dtype=np.float32))      # now a real range
    assert obs._hist.sum() == 60
    z = lb.Observer("mse", "int4").update(np.zeros((3, 4), np.float32)).qparams()
    assert z.scale[0] == 1.0
    empty = lb.Observer("mse").update(np.zeros((0,), np.float32))
    with pytest.raises(ValueError, match="nothing observed"):
        empty.qparams()


def test_reset_and_errors(rng):
    obs = lb.Observer("percentile", axis=1)
    obs.update(_data(rng, (4, 6)))
    with pytest.raises(ValueError, match="channels"):
        obs.update(_data(rng, (4, 7)))
    with pytest.raises(ValueError, match="channels"):
        obs.update(_data(rng, (4, 6, 1)))
    obs.reset()
    assert obs.count == 0 and obs.min is None
    obs.update(_data(rng, (4, 7)))                           # a new shape after reset
    assert obs.qparams().scale.shape == (7,)
    with pytest.raises(ValueError, match="NaN or infinity"):
        obs.update(np.array([[np.nan] * 7]))
    with pytest.raises(ValueError, match="NaN or infinity"):
        obs.update(np.array([[np.inf] * 7]))
    with pytest.raises(TypeError):
        obs.update(np.arange(7))
    with pytest.raises(ValueError):
        lb.Observer("entropy")
    with pytest.raises(ValueError):
        lb.Observer(dtype="int2")
    with pytest.raises(ValueError):
        lb.Observer("percentile", percentile=10)
    with pytest.raises(ValueError):
        lb.Observer("mse", bins=4)
    with pytest.raises(AxisError):
        lb.Observer(axis=3).update(np.ones((2, 2), np.float32))
    assert "percentile" in repr(lb.Observer("percentile"))


def test_qparams_feed_quantize(rng):
    x = _data(rng, (10, 16))
    qp = lb.Observer("minmax", "uint8", symmetric=False, axis=-1).update(x).qparams()
    assert qp.axis == 1
    q = lb.quantize(x, qp)
    assert q.dtype == np.uint8 and q.shape == x.shape
