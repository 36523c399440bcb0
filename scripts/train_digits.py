"""Train the digits MLP that ships inside lowbit (``src/lowbit/data/digits_mlp.npz``).

A plain-NumPy multilayer perceptron (ReLU, softmax cross-entropy, Adam, fixed seeds) trained on
scikit-learn's handwritten digits (8x8 images, pixel values 0..16). scikit-learn is needed only
here, to load the data; lowbit itself does not depend on it::

    pip install scikit-learn
    python scripts/train_digits.py            # writes src/lowbit/data/digits_mlp.npz

The file holds the weights in ``lb.linear``'s layout (``w{i}`` of shape ``(out, in)``, ``b{i}``),
the held-out test split and the training split (pixels as uint8 0..16, labels as uint8; the model
reads ``pixels / 16``), so quantization-aware fine-tuning can run from the package alone.
Results are deterministic for a given NumPy version.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

FORMAT_VERSION = 1
ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "src" / "lowbit" / "data" / "digits_mlp.npz"


def load_split(seed: int, test_fraction: float):
    """Stratified split of sklearn's digits: (x_train, y_train, x_test, y_test); x as uint8
    0..16."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.data.astype(np.uint8)          # integers 0..16 stored as float64 by sklearn
    y = digits.target.astype(np.uint8)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(10):                       # the same fraction of every class in the test split
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test_idx.append(idx[: int(round(len(idx) * test_fraction))])
    test_idx = np.sort(np.concatenate(test_idx))
    train_mask = np.ones(len(y), bool)
    train_mask[test_idx] = False
    return x[train_mask], y[train_mask], x[test_idx], y[test_idx]


def init_params(sizes, rng):
    """He-initialised weights (out, in) and zero biases, float32."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in)
        params += [w.astype(np.float32), np.zeros(fan_out, np.float32)]
    return params


def forward(params, x):
    """Returns logits and the list of layer inputs (for backprop)."""
    inputs = []
    h = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        inputs.append(h)
        h = h @ params[2 * i].T + params[2 * i + 1]
        if i < n_layers - 1:
            h = np.maximum(h, 0.0)
    return h, inputs


def loss_and_grads(params, x, y, weight_decay):
    logits, inputs = forward(params, x)
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = len(y)
    loss = -np.log(p[np.arange(n), y] + 1e-12).mean()
    g = p
    g[np.arange(n), y] -= 1.0
    g /= n
    grads = [None] * len(params)
    for i in reversed(range(len(params) // 2)):
        w = params[2 * i]
        grads[2 * i] = g.T @ inputs[i] + weight_decay * w
        grads[2 * i + 1] = g.sum(axis=0)
        if i > 0:
            g = (g @ w) * (inputs[i] > 0)
    return loss, grads


def train(params, x, y, *, epochs, batch, lr, weight_decay, seed):
    rng = np.random.default_rng(seed)
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(len(y))
        lr_t = lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs))      # cosine decay
        for start in range(0, len(y), batch):
            idx = order[start:start + batch]
            _, grads = loss_and_grads(params, x[idx], y[idx], weight_decay)
            step += 1
            for p, g, mi, vi in zip(params, grads, m, v):
                mi *= b1
                mi += (1 - b1) * g
                vi *= b2
                vi += (1 - b2) * g * g
                mhat = mi / (1 - b1 ** step)
                vhat = vi / (1 - b2 ** step)
                p -= (lr_t * mhat / (np.sqrt(vhat) + eps)).astype(np.float32)
    return params


def accuracy(params, x, y) -> float:
    logits, _ = forward(params, x)
    return float((logits.argmax(axis=1) == y).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", default="128,64", help="hidden widths, comma-separated")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-fraction", type=float, default=0.3)
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    x_train, y_train, x_test, y_test = load_split(args.seed, args.test_fraction)
    sizes = [x_train.shape[1], *(int(h) for h in args.hidden.split(",")), 10]
    rng = np.random.default_rng(args.seed)
    params = init_params(sizes, rng)
    xt = x_train.astype(np.float32) / 16.0
    params = train(params, xt, y_train.astype(np.int64), epochs=args.epochs, batch=args.batch,
                   lr=args.lr, weight_decay=args.weight_decay, seed=args.seed + 1)
    acc_train = accuracy(params, xt, y_train)
    acc_test = accuracy(params, x_test.astype(np.float32) / 16.0, y_test)
    print(f"MLP {'-'.join(map(str, sizes))}: {sum(p.size for p in params)} parameters")
    print(f"train accuracy {100 * acc_train:.2f}% ({len(y_train)} images)")
    print(f"FP32 test accuracy {100 * acc_test:.2f}% ({len(y_test)} held-out images)")

    arrays = {"format_version": np.int32(FORMAT_VERSION),
              "sizes": np.array(sizes, np.int32),
              "input_scale": np.float32(1.0 / 16.0),
              "x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    for i in range(len(params) // 2):
        arrays[f"w{i}"] = params[2 * i]
        arrays[f"b{i}"] = params[2 * i + 1]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out.name} ({args.out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
