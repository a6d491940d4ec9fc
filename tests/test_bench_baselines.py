"""bench/train_speed.py's hand-written numpy loops compute the gradients graphnet computes.

A baseline that skips work (a missed relu', a dropped term) would flatter itself and make every
ratio the benchmark prints a lie, so each loop's first step is checked here: its gradients
against graphnet's on the same parameters and batch (without dropout), and against a plain
float64 backprop written out here with the masks the loop drew (with dropout). No timing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from graphnet import Model, parse_spec

REPO = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location("train_speed", REPO / "bench" / "train_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.np = np  # the script imports numpy in run(), after pinning BLAS threads
    return module


bench = _load_bench()
MLP_NAMES = {"w0": "fc1.w", "b0": "fc1.b", "w1": "fc2.w", "b1": "fc2.b", "w2": "fc3.w", "b2": "fc3.b"}
SKIP_NAMES = {"w0": "stem.w", "b0": "stem.b", "w1": "block.w", "b1": "block.b", "w2": "side.w",
              "b2": "side.b", "w3": "logits.w", "b3": "logits.b"}


def _batch(n: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)


def _graphnet_grads(case: str, params: dict, names: dict, x, y) -> dict:
    model = Model.from_spec(parse_spec(bench.spec_text(case)), seed=0)
    for hand_name, name in names.items():
        model.set_param(name, params[hand_name])
    model.train_step({"image": x, "label": y}, "loss")
    return {hand_name: model.grads[name].copy() for hand_name, name in names.items()}


@pytest.mark.parametrize("case", ["sgd64", "skip64"])
def test_the_hand_written_loops_compute_graphnet_s_gradients(case):
    x, y = _batch()
    if case == "skip64":
        net, names = bench.HandSkip(len(x)), SKIP_NAMES
    else:
        net, names = bench.HandMLP([784, 200, 100, 10], "sgd", len(x), 0.0), MLP_NAMES
    before = {name: p.copy() for name, p in net.flat.P.items()}
    loss = net.step(x, y, 0.0)  # lr 0: the gradients stay those of `before`
    expected = _graphnet_grads(case, before, names, x, y)
    for name in names:
        np.testing.assert_allclose(net.flat.G[name], expected[name], rtol=1e-4, atol=1e-6, err_msg=name)
    assert np.isfinite(loss) and loss > 0


def test_the_hand_written_dropout_loop_backpropagates_through_relu_and_the_mask():
    x, y = _batch()
    sizes = [784, 200, 100, 10]
    net = bench.HandMLP(sizes, "adam", len(x), 0.2)
    params = {name: p.astype(np.float64) for name, p in net.flat.P.items()}
    net.step(x, y, 0.0)
    _, _, masks, _, _ = net._buffers(len(x))  # the scaled masks this step drew
    # plain float64 backprop with those masks
    h, pre, kept = x.astype(np.float64), [], []
    for i in range(3):
        kept.append(h)
        z = h @ params[f"w{i}"] + params[f"b{i}"]
        if i < 2:
            pre.append(z)
            h = np.maximum(z, 0) * masks[i]
        else:
            h = z
    p = np.exp(h - h.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d = p
    d[np.arange(len(y)), y] -= 1
    d /= len(y)
    for i in reversed(range(3)):
        np.testing.assert_allclose(net.flat.G[f"w{i}"], kept[i].T @ d, rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(net.flat.G[f"b{i}"], d.sum(axis=0), rtol=1e-3, atol=1e-6)
        if i:
            d = (d @ params[f"w{i}"].T) * masks[i - 1] * (pre[i - 1] > 0)
