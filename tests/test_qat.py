"""lowbit.qat: straight-through gradients of FakeQuantLinear and the QAT training loop."""

import numpy as np
import pytest

import lowbit as lb
from conftest import assert_same
from lowbit import qat


def _toy(rng, n=600, d=16, classes=4, noise=1.2):
    centres = rng.standard_normal((classes, d))
    y = rng.integers(0, classes, n)
    x = (centres[y] + noise * rng.standard_normal((n, d))).astype(np.float32)
    return x, y


def _mlp(rng, sizes=(16, 12, 4)):
    return [((rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32),
             np.zeros(o, np.float32)) for i, o in zip(sizes[:-1], sizes[1:])]


@pytest.mark.parametrize("fmt", [{"dtype": "int4", "axis": 0},
                                 {"dtype": "uint4", "axis": 1, "group_size": 4,
                                  "symmetric": False},
                                 {"dtype": "int4", "method": "percentile", "percentile": 60.0}],
                         ids=["int4-channel", "uint4-group", "int4-clipped"])
@pytest.mark.parametrize("act", ["int8", "uint8", None])
def test_backward_is_the_straight_through_estimator(fmt, act, rng):
    w = rng.standard_normal((5, 8)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    x = rng.standard_normal((3, 2, 8)).astype(np.float32)
    g = rng.standard_normal((3, 2, 5)).astype(np.float32)
    layer = qat.FakeQuantLinear(w, b, weight_format=fmt, act_dtype=act)
    y = layer.forward(x)
    gx = layer.backward(g)

    qw = lb.QTensor.quantize(w, **fmt).qparams
    wq = lb.fake_quantize(w, qw)
    x2, g2 = x.reshape(6, 8), g.reshape(6, 5)
    if act is None:
        xq, qa = x2, None
    else:
        qa = lb.calibrate(x2, act, symmetric=act == "int8", axis=0)
        xq = lb.fake_quantize(x2, qa)
    assert_same(y, (xq @ wq.T + b).reshape(3, 2, 5))
    assert_same(layer.grad_weight, lb.fake_quantize_grad(w, g2.T @ xq, qw))
    assert_same(layer.grad_bias, g2.sum(axis=0))
    want_gx = g2 @ wq if qa is None else lb.fake_quantize_grad(x2, g2 @ wq, qa)
    assert_same(gx, want_gx.reshape(x.shape))
    if fmt.get("method") == "percentile":
        clipped = lb.fake_quantize_grad(w, np.ones_like(w), qw) == 0
        assert clipped.any() and (layer.grad_weight[clipped] == 0).all()
    # the deployed tensor is the weight of the forward pass
    assert_same(layer.to_qtensor().dequantize(), wq)


def test_float_gradients_match_finite_differences(rng):
    layers = [(w.astype(np.float64).astype(np.float32), b) for w, b in _mlp(rng, (6, 5, 3))]
    x, y = _toy(rng, n=20, d=6, classes=3)
    mods = qat._make_layers(layers, None, None)
    logits, masks = qat._forward(mods, x)
    _, grad = qat.softmax_cross_entropy(logits, y)
    qat._backward(mods, masks, grad)

    def loss_at(i, j, k, eps):
        ls = [(w.astype(np.float64), b.astype(np.float64)) for w, b in layers]
        ls[i][0][j, k] += eps
        h = x.astype(np.float64)
        for n, (w, b) in enumerate(ls):
            h = h @ w.T + b
            if n + 1 < len(ls):
                h = np.maximum(h, 0)
        z = h - h.max(axis=1, keepdims=True)
        return -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))).mean()

    for i, m in enumerate(mods):
        for j, k in [(0, 0), (1, 2), (m.weight.shape[0] - 1, m.weight.shape[1] - 1)]:
            num = (loss_at(i, j, k, 1e-4) - loss_at(i, j, k, -1e-4)) / 2e-4
            assert m.grad_weight[j, k] == pytest.approx(num, rel=2e-3, abs=1e-5)


def test_qat_reduces_loss_and_recovers_accuracy(rng):
    x, y = _toy(rng, n=800)
    xtr, ytr, xte, yte = x[:600], y[:600], x[600:], y[600:]
    fp = qat.train_qat(_mlp(rng), xtr, ytr, weight_format=None, act_dtype=None, epochs=15,
                       lr=0.1, seed=1)
    fmt = {"dtype": "int4"}                      # aggressive: INT4, one scale per matrix

    def sim_loss(layers):
        return qat.softmax_cross_entropy(
            qat.mlp_forward(layers, xtr, weight_format=fmt, act_dtype="int8"), ytr)[0]

    before = sim_loss(fp.layers)
    lines = []
    res = qat.train_qat(fp.layers, xtr, ytr, weight_format=fmt, act_dtype="int8", epochs=3,
                        lr=0.02, seed=2, x_val=xte, y_val=yte, log=lines.append)
    after = sim_loss(res.layers)
    assert after < before
    assert len(res.history) == 3 and len(lines) == 3
    assert res.history[-1]["val_accuracy"] is not None
    ptq = qat.accuracy(fp.layers, xte, yte, weight_format=fmt, act_dtype="int8")
    assert res.history[-1]["val_accuracy"] >= ptq - 0.02
    # the inputs were not modified; the same seed gives the same result
    again = qat.train_qat(fp.layers, xtr, ytr, weight_format=fmt, act_dtype="int8", epochs=3,
                          lr=0.02, seed=2)
    for (w1, b1), (w2, b2) in zip(res.layers, again.layers):
        assert_same(w1, w2)
        assert_same(b1, b2)
    # deployed through lb.linear: same predictions as the simulation, nearly everywhere
    (q1, b1), (q2, b2) = res.qtensors()
    h = np.maximum(lb.linear(xte, q1, b1), 0)
    pred = lb.linear(h, q2, b2).argmax(axis=1)
    sim = qat.mlp_forward(res.layers, xte, weight_format=fmt, act_dtype="int8").argmax(axis=1)
    assert (pred == sim).mean() >= 0.98


def test_errors(rng):
    layers = _mlp(rng)
    x, y = _toy(rng, n=10)
    with pytest.raises(ValueError, match="unknown keys"):
        qat.train_qat(layers, x, y, weight_format={"dtype": "int4", "bits": 4})
    with pytest.raises(ValueError, match="act_dtype"):
        qat.train_qat(layers, x, y, act_dtype="int4")
    with pytest.raises(ValueError, match="takes"):
        qat.train_qat([layers[1], layers[0]], x, y)
    with pytest.raises(TypeError):
        qat.train_qat(layers, x, y.astype(np.float32))
    with pytest.raises(ValueError):
        qat.train_qat(layers, x, y[:5])
    with pytest.raises(RuntimeError):
        qat.FakeQuantLinear(layers[0][0]).backward(np.ones((1, 12), np.float32))
    with pytest.raises(ValueError, match="last dimension"):
        qat.FakeQuantLinear(layers[0][0]).forward(np.ones((1, 3), np.float32))
