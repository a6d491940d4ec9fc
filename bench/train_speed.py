"""Training speed of graphnet against a hand-written numpy loop, measured side by side.

Both train the same MLP (default 784-800-800-10, ReLU, softmax cross-entropy, plain SGD, float32)
on the same random batches; the script alternates rounds of each and prints the median time per
step and the ratio graphnet / numpy. Run on a quiet machine and compare ratios, not seconds:

    python bench/train_speed.py [--sizes 784 800 800 10] [--batch 128] [--steps 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from graphnet import Model, parse_spec
from graphnet.train.optim import make_optimizer
from graphnet.spec import SGDSpec


def graphnet_steps(sizes, steps, x, y):
    spec = parse_spec(
        "name: bench\n"
        f"inputs: {{image: {{shape: [{sizes[0]}]}}, label: {{shape: [], dtype: int64}}}}\n"
        f"layers: {{input: image, sizes: {list(sizes)}, labels: label}}\n"
    )
    model = Model.from_spec(spec, seed=0)
    optimizer = make_optimizer(SGDSpec(type="sgd", lr=0.01), model.size, model.dtype, model.decay_mask)

    def run():
        for i in range(steps):
            batch_in = {"image": x[i], "label": y[i]}
            model.forward(batch_in, ("loss",), training=True, step=i)
            model.backward("loss")
            np.isfinite(np.sum(model.flat_grads))  # the training loop's NaN guard
            optimizer.step(model.flat_params, model.flat_grads, 0.01)

    return run


def numpy_steps(sizes, steps, x, y):
    """The loop a person writes by hand: weights in a list, gradients derived on paper."""
    rng = np.random.default_rng(0)
    ws = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
    bs = [np.zeros(b, np.float32) for b in sizes[1:]]
    lr = np.float32(0.01)

    def run():
        for i in range(steps):
            xb, yb = x[i], y[i]
            acts = [xb]
            for j, (w, b) in enumerate(zip(ws, bs)):
                h = acts[-1] @ w + b
                if j < len(ws) - 1:
                    h = np.maximum(h, 0)
                acts.append(h)
            logits = acts[-1]
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            s = e / e.sum(axis=1, keepdims=True)
            d = s
            d[np.arange(len(yb)), yb] -= 1
            d /= len(yb)  # the fused softmax + cross-entropy gradient (s - y) / N
            for j in reversed(range(len(ws))):
                gw = acts[j].T @ d
                gb = d.sum(axis=0)
                if j > 0:
                    d = (d @ ws[j].T) * (acts[j] > 0)
                ws[j] -= lr * gw
                bs[j] -= lr * gb

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[784, 800, 800, 10])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    x = rng.random((args.steps, args.batch, args.sizes[0]), dtype=np.float32)
    y = rng.integers(0, args.sizes[-1], (args.steps, args.batch))
    runners = {
        "graphnet": graphnet_steps(args.sizes, args.steps, x, y),
        "numpy": numpy_steps(args.sizes, args.steps, x, y),
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    for name, run in runners.items():  # warm-up
        run()
    for _ in range(args.rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) / args.steps)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"MLP {'-'.join(map(str, args.sizes))}, batch {args.batch}, SGD, float32, "
          f"{args.rounds} rounds x {args.steps} steps")
    for name, value in medians.items():
        print(f"  {name:<9} {value * 1e3:8.2f} ms/step")
    print(f"  ratio graphnet/numpy: {medians['graphnet'] / medians['numpy']:.2f}")


if __name__ == "__main__":
    main()
