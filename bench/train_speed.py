"""Training and inference speed of graphnet against a hand-written numpy loop (and PyTorch CPU
when it is installed), measured side by side in one run.

    .venv/bin/python bench/train_speed.py [--rounds 5] [--threads 1] [--only sgd64 ...] [--data-dir DIR]

Every case runs one epoch over the same training data (real MNIST, 55,000 examples, when it is
found through GRAPHNET_DATA or --data-dir; else Fashion-MNIST from /usr/share/datasets; else
random images, said in the header) in each implementation, repeated for --rounds rounds, and
prints samples/s (min/median/max over the rounds) and the ratio to the hand-written loop: the
median over the rounds of each round's ratio, and the ratio of the medians.

The training epochs of a round run in lockstep: graphnet's epoch is the driver, and after every
50 of its steps the other implementations run their next 50 steps (from graphnet's progress
callback, whose time is taken off graphnet's). So every implementation is measured over the same
seconds of the machine's life, and its speed, which drifts by tens of percent within a minute on
a shared machine, changes the ratios little. Inference takes turns by passes over the test set
(4 each per round; the order rotates each round). The cases:

  sgd64, sgd256   784-200-100-10 ReLU MLP, softmax cross-entropy, SGD + momentum 0.9,
                  batch 64 / 256;
  skip64, skip256 a non-chain graph of similar size (a residual block, a second branch,
                  a concat: specs/skip-mlp.yaml's shape), same optimizer and batches;
  recipe          the recommended recipe: 784-800-800-10, dropout 0.2, Adam, batch 128
                  (without the shift augmentation, in all three);
  infer           inference over the 10,000 test images, batch 1,000 (`graphnet eval`'s
                  evaluate: loss and error), with the recipe's network.

graphnet runs through the code path of `graphnet run` (``graphnet.train.loop.train`` on one
epoch; its samples/s is the log's, which excludes evaluation) and of `graphnet eval`
(``evaluate``). The hand-written loops are what a careful person writes in plain numpy: float32,
parameters and gradients in one flat buffer each, preallocated activations (``out=``), the fused
softmax cross-entropy gradient, in-place optimizer updates over the flat buffers, float32 dropout
masks from one generator, the loss of every batch computed (as graphnet's log has it) and the same
NaN guard as graphnet's (the loss and a dot product of the gradients with ones must be finite),
each epoch over a fresh permutation applied to x and y together. PyTorch (comparison only) trains the
same networks with torch.optim.

BLAS threads are pinned for everyone: OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS
are set to --threads before numpy is imported, and torch.set_num_threads(--threads).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

CASES = ("sgd64", "sgd256", "skip64", "skip256", "recipe", "infer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for every implementation")
    parser.add_argument("--only", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--data-dir", default=None, help="a folder holding mnist/ (default: $GRAPHNET_DATA)")
    parser.add_argument("--samples", type=int, default=None, help="train on the first N examples only")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    args = parser.parse_args()
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    run(args)  # numpy is imported only now, with the threads pinned


def run(args) -> None:
    import numpy as np

    globals()["np"] = np
    data, where = load(args.data_dir)
    if args.samples:
        data["x_train"], data["y_train"] = data["x_train"][: args.samples], data["y_train"][: args.samples]
    torch = None
    if not args.no_torch:
        try:
            import torch  # noqa: F811

            torch.set_num_threads(args.threads)
        except ImportError:
            torch = None
    print(f"data: {where}; {len(data['x_train']):,} training examples, {len(data['x_test']):,} test")
    print(f"BLAS threads: {args.threads} (OPENBLAS/OMP/MKL_NUM_THREADS"
          + (", torch.set_num_threads" if torch else "") + f"); numpy {np.__version__}"
          + (f", torch {torch.__version__}" if torch else ", torch not installed"))
    print(f"{args.rounds} rounds; training epochs in lockstep ({CHUNK} steps each in turn), "
          f"inference by passes ({INFER_PASSES} each in turn)\n")
    rows = []
    for case in args.only:
        others = {"numpy": numpy_runner(case, data)}
        if torch is not None:
            others["pytorch"] = torch_runner(case, data, torch)
        rates: dict[str, list[float]] = {name: [] for name in ("graphnet", *others)}
        for round_ in range(args.rounds):
            if case == "infer":  # INFER_PASSES passes over the test set each, taking turns
                runners = {"graphnet": graphnet_runner(case, data), **others}
                names = list(runners)
                seconds = dict.fromkeys(names, 0.0)
                for _ in range(INFER_PASSES):
                    for name in names[round_ % len(names):] + names[: round_ % len(names)]:
                        seconds[name] += len(data["x_test"]) / runners[name]()
                for name in names:
                    rates[name].append(INFER_PASSES * len(data["x_test"]) / seconds[name])
            else:
                for name, rate in lockstep_epoch(graphnet_runner(case, data), others).items():
                    rates[name].append(rate)
        rows.append((case, rates))
        report(case, rates)
    print("\nsummary: samples/s relative to the hand-written numpy loop: the median of the rounds' "
          "ratios (and the ratio of the medians)")
    for case, rates in rows:
        cells = [f"{name} {round_ratio(r, rates['numpy']):.2f}x "
                 f"({statistics.median(r) / statistics.median(rates['numpy']):.2f}x)"
                 for name, r in rates.items() if name != "numpy"]
        print(f"  {case:<8} " + ", ".join(cells))


def round_ratio(rates: list[float], base: list[float]) -> float:
    """The median over the rounds of rates[round] / base[round]."""
    return statistics.median(a / b for a, b in zip(rates, base))


CHUNK = 50  # steps each implementation runs in turn in a lockstep epoch
INFER_PASSES = 4  # passes over the test set each implementation makes per round, in turns


def lockstep_epoch(graphnet_epoch, others: dict) -> dict[str, float]:
    """One training epoch of each implementation, in lockstep (see the module docstring).

    ``graphnet_epoch(progress)`` trains one epoch through ``train`` and returns (examples,
    seconds of the epoch as its log says); each of ``others`` is a function that sets up a fresh
    network and returns an iterator running one training step per ``next`` (yielding the batch
    size). Returns samples/s by implementation."""
    steppers = {name: start() for name, start in others.items()}
    spent = {name: 0.0 for name in others}
    seen = {name: 0 for name in others}

    def advance(name: str, steps: int | None) -> None:
        started = time.perf_counter()
        for count, size in enumerate(steppers[name], 1):
            seen[name] += size
            if count == steps:
                break
        spent[name] += time.perf_counter() - started

    class Lockstep:
        """graphnet's progress callback: every CHUNK steps, the others' next CHUNK steps."""

        def __init__(self) -> None:
            self.steps, self.inside = 0, 0.0

        def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
            pass

        def step(self, loss: float, samples: int) -> None:
            self.steps += 1
            if self.steps % CHUNK == 0:
                entered = time.perf_counter()
                for name in steppers:
                    advance(name, CHUNK)
                self.inside += time.perf_counter() - entered

        def epoch_end(self, log, best: bool) -> None:
            pass

    lockstep = Lockstep()
    examples, seconds = graphnet_epoch(lockstep)
    for name in steppers:  # whatever is left of their epochs
        advance(name, None)
    rates = {"graphnet": examples / (seconds - lockstep.inside)}
    rates.update({name: seen[name] / spent[name] for name in others})
    return rates


def report(case: str, rates: dict[str, list[float]]) -> None:
    base = rates["numpy"]
    print(f"{case}: {DESCRIPTIONS[case]}")
    for name, values in rates.items():
        ratios = [a / b for a, b in zip(values, base)]
        print(f"  {name:<9} samples/s min {min(values):9,.0f}  median {statistics.median(values):9,.0f}  "
              f"max {max(values):9,.0f}   ratio {round_ratio(values, base):.3f} "
              f"(rounds {min(ratios):.2f}-{max(ratios):.2f})")


DESCRIPTIONS = {
    "sgd64": "784-200-100-10, SGD momentum 0.9, batch 64, one epoch",
    "sgd256": "784-200-100-10, SGD momentum 0.9, batch 256, one epoch",
    "skip64": "skip/concat graph (784-256-256 residual + 784-64 tanh branch -> 10), SGD momentum, batch 64",
    "skip256": "skip/concat graph, SGD momentum, batch 256",
    "recipe": "784-800-800-10, dropout 0.2, Adam, batch 128, one epoch",
    "infer": "784-800-800-10 forward, loss and error over the test set, batch 1000",
}

# case -> (layer sizes or "skip", optimizer, batch size, dropout)
SETUPS = {
    "sgd64": ([784, 200, 100, 10], "sgd", 64, 0.0),
    "sgd256": ([784, 200, 100, 10], "sgd", 256, 0.0),
    "skip64": ("skip", "sgd", 64, 0.0),
    "skip256": ("skip", "sgd", 256, 0.0),
    "recipe": ([784, 800, 800, 10], "adam", 128, 0.2),
    "infer": ([784, 800, 800, 10], "adam", 1000, 0.2),
}
LR = {"sgd": 0.01, "adam": 0.001}
MOMENTUM = 0.9
BETAS, EPS = (0.9, 0.999), 1e-8


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def load(data_dir: str | None):
    """MNIST (55,000 training examples after graphnet's 5,000 validation split), scaled to
    [0, 1], float32; Fashion-MNIST or random images when MNIST is not here."""
    from graphnet.spec import DataSpec, InputSpec
    from graphnet.train.data import load_data

    image = ("image", InputSpec(shape=[784], dtype="float32"))
    label = ("label", InputSpec(shape=[], dtype="int64"))
    for dataset in ("mnist", "fashion-mnist"):
        try:
            data = load_data(DataSpec(dataset=dataset, validation=5000), image, label,
                             data_dir=data_dir, download=False)
        except Exception:
            continue
        return ({"x_train": data.train.x, "y_train": data.train.y, "x_test": data.test.x,
                 "y_test": data.test.y}, f"{dataset} ({data.description or data.source})")
    rng = np.random.default_rng(0)
    return ({"x_train": rng.random((55000, 784), dtype=np.float32), "y_train": rng.integers(0, 10, 55000),
             "x_test": rng.random((10000, 784), dtype=np.float32), "y_test": rng.integers(0, 10, 10000)},
            "random images (no MNIST or Fashion-MNIST found: set GRAPHNET_DATA)")


# ----------------------------------------------------------------------------------------------
# graphnet, through graphnet run's and graphnet eval's code
# ----------------------------------------------------------------------------------------------


def spec_text(case: str) -> str:
    sizes, optimizer, batch, dropout = SETUPS[case]
    head = ("format: 1\nname: bench\ninputs:\n  image: {shape: [784], dtype: float32}\n"
            "  label: {shape: [], dtype: int64}\n")
    if sizes == "skip":
        body = """nodes:
  stem:    {op: linear, inputs: {x: image}, attrs: {units: 256}}
  act0:    {op: relu, inputs: {x: stem}}
  block:   {op: linear, inputs: {x: act0}, attrs: {units: 256}}
  act1:    {op: relu, inputs: {x: block}}
  skip:    {op: add, inputs: {a: act0, b: act1}}
  side:    {op: linear, inputs: {x: image}, attrs: {units: 64}}
  act2:    {op: tanh, inputs: {x: side}}
  joined:  {op: concat, inputs: {xs: [skip, act2]}}
  logits:  {op: linear, inputs: {x: joined}, attrs: {units: 10}}
  loss:    {op: softmax_cross_entropy, inputs: {logits: logits, labels: label}}
outputs: [logits, loss]
"""
    else:
        body = (f"layers: {{input: image, sizes: {sizes}, activation: relu, dropout: {dropout}, "
                f"loss: softmax_cross_entropy, labels: label}}\n")
    opt = (f"{{type: sgd, lr: {LR['sgd']}, momentum: {MOMENTUM}}}" if optimizer == "sgd"
           else f"{{type: adam, lr: {LR['adam']}}}")
    train = (f"train:\n  data: {{dataset: mnist}}\n  batch_size: {batch}\n  epochs: 1\n  seed: 0\n"
             f"  optimizer: {opt}\n")
    return head + body + train


def graphnet_runner(case: str, data: dict):
    from graphnet import Model, build_graph, parse_spec
    from graphnet.train.data import Data, Split
    from graphnet.train.loop import evaluate, resolve_roles, train

    spec = parse_spec(spec_text(case))
    graph = build_graph(spec)
    roles = resolve_roles(graph, spec.train)
    if case == "infer":
        model = Model(graph, seed=0)
        test = Split(data["x_test"], data["y_test"])

        def infer() -> float:
            started = time.perf_counter()
            evaluate(model, test, roles)
            return len(test) / (time.perf_counter() - started)

        return infer
    prepared = Data(train=Split(data["x_train"], data["y_train"]), val=None,
                    test=Split(data["x_test"][:1000], data["y_test"][:1000]),
                    classes=10, example_shape=(784,), source="bench")

    def epoch(progress) -> tuple[float, float]:
        log = train(spec, prepared=(graph, roles, prepared), progress=progress).epochs[0]
        return log.samples_per_second * log.seconds, log.seconds  # examples, seconds

    return epoch


# ----------------------------------------------------------------------------------------------
# The hand-written numpy loops
# ----------------------------------------------------------------------------------------------


class Flat:
    """Parameters and gradients in one flat float32 buffer each, with views by name."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], rng) -> None:
        total = sum(math.prod(s) for s in shapes.values())
        self.p = np.zeros(total, np.float32)
        self.g = np.zeros(total, np.float32)
        self.ones = np.ones(total, np.float32)  # the NaN guard: dot(g, ones), as graphnet's
        self.P, self.G, offset = {}, {}, 0
        for name, shape in shapes.items():
            size = math.prod(shape)
            self.P[name] = self.p[offset : offset + size].reshape(shape)
            self.G[name] = self.g[offset : offset + size].reshape(shape)
            if len(shape) == 2:  # He normal weights, zero biases
                self.P[name][...] = rng.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(2 / shape[0]))
            offset += size


class SGDMomentum:
    def __init__(self, flat: Flat) -> None:
        self.v = np.zeros_like(flat.p)
        self.t = np.empty_like(flat.p)

    def step(self, p, g, lr) -> None:
        v, t = self.v, self.t
        v *= MOMENTUM
        v += g
        np.multiply(v, np.float32(lr), out=t)
        p -= t


class AdamOpt:
    def __init__(self, flat: Flat) -> None:
        self.m = np.zeros_like(flat.p)
        self.v = np.zeros_like(flat.p)
        self.t = np.empty_like(flat.p)
        self.steps = 0

    def step(self, p, g, lr) -> None:
        b1, b2 = BETAS
        m, v, t = self.m, self.v, self.t
        self.steps += 1
        m *= np.float32(b1)
        np.multiply(g, np.float32(1 - b1), out=t)
        m += t
        v *= np.float32(b2)
        np.multiply(g, g, out=t)
        t *= np.float32(1 - b2)
        v += t
        bias1 = 1 - b1 ** self.steps
        bias2 = 1 - b2 ** self.steps
        np.sqrt(v, out=t)
        t += np.float32(EPS * math.sqrt(bias2))  # (sqrt(v) / sqrt(bias2) + eps) * sqrt(bias2)
        np.divide(m, t, out=t)
        t *= np.float32(lr / bias1 * math.sqrt(bias2))
        p -= t


def softmax_ce_grad(z, y, rows) -> float:
    """In place: z (logits) becomes the fused gradient (softmax(z) - onehot(y)) / N; returns the
    mean cross-entropy loss."""
    n = len(y)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    loss = -float(np.log(z[rows[:n], y]).sum()) / n
    z[rows[:n], y] -= 1
    z *= np.float32(1 / n)
    return loss


class HandMLP:
    """A ReLU MLP with softmax cross-entropy and optional dropout, by hand."""

    def __init__(self, sizes, optimizer: str, batch: int, dropout: float, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        shapes = {}
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            shapes[f"w{i}"], shapes[f"b{i}"] = (a, b), (b,)
        self.flat = Flat(shapes, rng)
        self.layers = len(sizes) - 1
        self.opt = SGDMomentum(self.flat) if optimizer == "sgd" else AdamOpt(self.flat)
        self.dropout = dropout
        self.rng = np.random.default_rng(seed + 1)
        self.rows = np.arange(batch)
        # activations of a full batch, and of the last (smaller) batch when there is one
        self.buffers: dict[int, tuple] = {}
        self.sizes = sizes

    def _buffers(self, n: int):
        if n not in self.buffers:
            acts = [np.empty((n, s), np.float32) for s in self.sizes[1:]]
            deltas = [np.empty((n, s), np.float32) for s in self.sizes[1:-1]]
            masks = [np.empty((n, s), np.float32) for s in self.sizes[1:-1]]
            draws = [np.empty((n, s), np.float32) for s in self.sizes[1:-1]]
            keeps = [np.empty((n, s), bool) for s in self.sizes[1:-1]]
            self.buffers[n] = (acts, deltas, masks, draws, keeps)
        return self.buffers[n]

    def forward(self, x, training: bool):
        P = self.flat.P
        acts, _, masks, draws, keeps = self._buffers(len(x))
        h = x
        for i in range(self.layers):
            out = acts[i]
            np.matmul(h, P[f"w{i}"], out=out)
            out += P[f"b{i}"]
            if i < self.layers - 1:
                np.maximum(out, 0, out=out)
                if training and self.dropout:
                    self.rng.random(out=draws[i], dtype=np.float32)
                    np.greater_equal(draws[i], np.float32(self.dropout), out=keeps[i])
                    np.multiply(keeps[i], np.float32(1 / (1 - self.dropout)), out=masks[i])
                    out *= masks[i]
            h = out
        return acts

    def step(self, x, y, lr) -> float:
        P, G = self.flat.P, self.flat.G
        acts = self.forward(x, training=True)
        _, deltas, masks, _, _ = self._buffers(len(x))
        d = acts[-1]
        loss = softmax_ce_grad(d, y, self.rows)
        for i in reversed(range(self.layers)):
            below = acts[i - 1] if i else x
            np.matmul(below.T, d, out=G[f"w{i}"])
            np.sum(d, axis=0, out=G[f"b{i}"])
            if i:
                nd = deltas[i - 1]
                np.matmul(d, P[f"w{i}"].T, out=nd)
                if self.dropout:
                    nd *= masks[i - 1]  # dropout's scaled mask, then relu': the activation is
                nd *= acts[i - 1] > 0  # > 0 exactly where relu passed (and dropout kept) it
                d = nd
        if not (math.isfinite(loss) and math.isfinite(float(np.dot(self.flat.g, self.flat.ones)))):
            raise FloatingPointError("diverged")
        self.opt.step(self.flat.p, self.flat.g, lr)
        return loss


class HandSkip:
    """specs/skip-mlp.yaml's graph by hand: stem = relu(x W0 + b0); skip = stem + relu(stem W1 +
    b1); side = tanh(x W2 + b2); logits = [skip, side] W3 + b3."""

    def __init__(self, batch: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        shapes = {"w0": (784, 256), "b0": (256,), "w1": (256, 256), "b1": (256,),
                  "w2": (784, 64), "b2": (64,), "w3": (320, 10), "b3": (10,)}
        self.flat = Flat(shapes, rng)
        self.opt = SGDMomentum(self.flat)
        self.rows = np.arange(batch)
        self.buffers: dict[int, dict] = {}

    def _buffers(self, n: int) -> dict:
        if n not in self.buffers:
            e = lambda *s: np.empty((n,) + s, np.float32)  # noqa: E731
            self.buffers[n] = {"a0": e(256), "a1": e(256), "joined": e(320), "z": e(10),
                               "dj": e(320), "d1": e(256), "d0": e(256)}
        return self.buffers[n]

    def step(self, x, y, lr) -> float:
        P, G = self.flat.P, self.flat.G
        b = self._buffers(len(x))
        a0, a1, joined, z = b["a0"], b["a1"], b["joined"], b["z"]
        np.matmul(x, P["w0"], out=a0)
        a0 += P["b0"]
        np.maximum(a0, 0, out=a0)
        np.matmul(a0, P["w1"], out=a1)
        a1 += P["b1"]
        np.maximum(a1, 0, out=a1)
        skip, side = joined[:, :256], joined[:, 256:]
        np.add(a0, a1, out=skip)
        np.matmul(x, P["w2"], out=side)
        side += P["b2"]
        np.tanh(side, out=side)
        np.matmul(joined, P["w3"], out=z)
        z += P["b3"]
        loss = softmax_ce_grad(z, y, self.rows)
        np.matmul(joined.T, z, out=G["w3"])
        np.sum(z, axis=0, out=G["b3"])
        dj = b["dj"]
        np.matmul(z, P["w3"].T, out=dj)
        dskip, dside = dj[:, :256], dj[:, 256:]
        dside *= 1 - side * side  # tanh' = 1 - tanh^2
        np.matmul(x.T, dside, out=G["w2"])
        np.sum(dside, axis=0, out=G["b2"])
        d1 = b["d1"]
        np.multiply(dskip, a1 > 0, out=d1)
        np.matmul(a0.T, d1, out=G["w1"])
        np.sum(d1, axis=0, out=G["b1"])
        d0 = b["d0"]
        np.matmul(d1, P["w1"].T, out=d0)
        d0 += dskip  # the skip connection's share
        d0 *= a0 > 0
        np.matmul(x.T, d0, out=G["w0"])
        np.sum(d0, axis=0, out=G["b0"])
        if not (math.isfinite(loss) and math.isfinite(float(np.dot(self.flat.g, self.flat.ones)))):
            raise FloatingPointError("diverged")
        self.opt.step(self.flat.p, self.flat.g, lr)
        return loss


def numpy_runner(case: str, data: dict):
    sizes, optimizer, batch, dropout = SETUPS[case]
    x, y = data["x_train"], data["y_train"]
    epochs = [0]
    if case == "infer":
        net = HandMLP(sizes, optimizer, batch, dropout)
        xt, yt = data["x_test"], data["y_test"]

        def infer() -> float:
            started = time.perf_counter()
            total, wrong = 0.0, 0
            for start in range(0, len(xt), batch):
                xb, yb = xt[start : start + batch], yt[start : start + batch]
                z = net.forward(xb, training=False)[-1]
                wrong += int(np.count_nonzero(z.argmax(axis=1) != yb))
                z -= z.max(axis=1, keepdims=True)  # log-softmax for the loss
                logp = z[net.rows[: len(yb)], yb] - np.log(np.exp(z).sum(axis=1))
                total -= float(logp.sum())
            return len(xt) / (time.perf_counter() - started)

        return infer

    def start():
        net = HandSkip(batch) if sizes == "skip" else HandMLP(sizes, optimizer, batch, dropout)
        rng = np.random.default_rng([0, epochs[0]])
        epochs[0] += 1
        return steps(net, rng)

    def steps(net, rng):
        order = rng.permutation(len(x))
        loss_sum = 0.0
        for start in range(0, len(x), batch):
            index = order[start : start + batch]
            xb, yb = x[index], y[index]
            loss_sum += net.step(xb, yb, LR[optimizer]) * len(xb)
            yield len(xb)

    return start


# ----------------------------------------------------------------------------------------------
# PyTorch (comparison only)
# ----------------------------------------------------------------------------------------------


def torch_runner(case: str, data: dict, torch):
    nn, F = torch.nn, torch.nn.functional
    sizes, optimizer, batch, dropout = SETUPS[case]
    torch.manual_seed(0)

    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem, self.block = nn.Linear(784, 256), nn.Linear(256, 256)
            self.side, self.out = nn.Linear(784, 64), nn.Linear(320, 10)

        def forward(self, x):
            a0 = F.relu(self.stem(x))
            skip = a0 + F.relu(self.block(a0))
            return self.out(torch.cat([skip, torch.tanh(self.side(x))], dim=1))

    def make():
        if sizes == "skip":
            return Skip()
        layers = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
                if dropout:
                    layers.append(nn.Dropout(dropout))
        return nn.Sequential(*layers)

    if case == "infer":
        net = make().eval()
        xt, yt = torch.from_numpy(data["x_test"]), torch.from_numpy(data["y_test"].astype(np.int64))

        def infer() -> float:
            started = time.perf_counter()
            with torch.no_grad():
                for start in range(0, len(xt), batch):
                    z = net(xt[start : start + batch])
                    float(F.cross_entropy(z, yt[start : start + batch]))
                    int((z.argmax(1) != yt[start : start + batch]).sum())
            return len(xt) / (time.perf_counter() - started)

        return infer
    x, y = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"].astype(np.int64))

    def start():
        net = make().train()
        opt = (torch.optim.SGD(net.parameters(), lr=LR["sgd"], momentum=MOMENTUM) if optimizer == "sgd"
               else torch.optim.Adam(net.parameters(), lr=LR["adam"]))
        return steps(net, opt)

    def steps(net, opt):
        order = torch.randperm(len(x))
        for start in range(0, len(x), batch):
            index = order[start : start + batch]
            loss = F.cross_entropy(net(x[index]), y[index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            float(loss.detach())
            yield len(index)

    return start


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
