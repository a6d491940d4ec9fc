"""Training-step speed of a small MNIST CNN: graphnet (with the graphnet-conv plugin) against
PyTorch on the CPU, measured side by side.

The network: conv 32 5x5 pad 2 -> relu -> max pool 2 -> conv 64 5x5 pad 2 -> relu -> max pool 2
-> flatten -> linear 10 -> softmax cross-entropy; batch 64, float32, one plain SGD step. Both
start from the same weights (graphnet's, copied into torch) and train on the same random batches;
the first step's losses are compared to show they compute the same thing. Short rounds alternate
(graphnet, torch, graphnet, ...) so that a busy machine slows both alike; the script prints the
median wall time per step of each, the ratio graphnet / torch and the range of the per-round
ratios, and the same for the CPU time the process used (less disturbed by other processes on a
shared machine, and equal to the wall time on a quiet one with one thread).

Threads: --threads N (default 1) sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and
MKL_NUM_THREADS to N before numpy or torch is imported (BLAS reads them once, when it loads), and
calls torch.set_num_threads(N) and torch.set_num_interop_threads(1). Needs graphnet-conv
(pip install -e plugins/graphnet-conv); torch is optional (without it only graphnet is timed):

    python bench/conv_speed.py [--threads 1] [--batch 64] [--steps 2] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

SPEC = """
name: mnist-cnn-bench
inputs: {image: {shape: [1, 28, 28]}, label: {shape: [], dtype: int64}}
nodes:
  conv1: {op: conv2d, inputs: {x: image}, attrs: {channels: 32, kernel: 5, padding: 2}}
  relu1: {op: relu, inputs: {x: conv1}}
  pool1: {op: max_pool2d, inputs: {x: relu1}, attrs: {kernel: 2}}
  conv2: {op: conv2d, inputs: {x: pool1}, attrs: {channels: 64, kernel: 5, padding: 2}}
  relu2: {op: relu, inputs: {x: conv2}}
  pool2: {op: max_pool2d, inputs: {x: relu2}, attrs: {kernel: 2}}
  flat:  {op: flatten, inputs: {x: pool2}}
  fc:    {op: linear, inputs: {x: flat}, attrs: {units: 10}}
  loss:  {op: softmax_cross_entropy, inputs: {logits: fc, labels: label}}
outputs: [fc, loss]
"""
LR = 0.01


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS / OpenMP / torch threads")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=15)
    return parser.parse_args()


def pin_threads(threads: int) -> None:
    """Fix the thread count of every BLAS and OpenMP runtime before it is loaded."""
    if "numpy" in sys.modules:
        raise SystemExit("conv_speed.py: numpy was imported before the thread count was set")
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)


def graphnet_runner(batches, labels):
    """(run, model): run() trains one step per batch; the model holds the weights."""
    from graphnet import Model, parse_spec
    from graphnet.spec import SGDSpec
    from graphnet.train.optim import make_optimizer

    model = Model.from_spec(parse_spec(SPEC), seed=0)
    optimizer = make_optimizer(SGDSpec(type="sgd", lr=LR, momentum=0.0), model.size, model.dtype,
                               model.decay_mask)

    def run() -> list[float]:
        losses = []
        for step, (x, y) in enumerate(zip(batches, labels)):
            out = model.forward({"image": x, "label": y}, ("loss",), training=True, step=step)
            model.backward("loss")
            optimizer.step(model.flat_params, model.flat_grads, LR)
            losses.append(float(out["loss"]))
        return losses

    return run, model


def torch_runner(batches, labels, model, threads: int):
    """The same network in PyTorch, from the graphnet model's initial weights."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    params = {name: torch.tensor(value.copy()) for name, value in model.params.items()}
    params["fc.w"] = params["fc.w"].T.contiguous()  # graphnet stores (in, out), torch (out, in)
    for tensor in params.values():
        tensor.requires_grad_(True)
    optimizer = torch.optim.SGD(list(params.values()), lr=LR)
    xs = [torch.from_numpy(x) for x in batches]
    ys = [torch.from_numpy(y) for y in labels]

    def forward(x):
        h = F.max_pool2d(F.relu(F.conv2d(x, params["conv1.w"], params["conv1.b"], padding=2)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, params["conv2.w"], params["conv2.b"], padding=2)), 2)
        return F.linear(h.flatten(1), params["fc.w"], params["fc.b"])

    def run() -> list[float]:
        losses = []
        for x, y in zip(xs, ys):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(forward(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    return run


def main() -> None:
    args = parse_args()
    pin_threads(args.threads)
    import numpy as np  # only now: OpenBLAS reads its thread count when it loads

    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((args.batch, 1, 28, 28)).astype(np.float32) for _ in range(args.steps)]
    labels = [rng.integers(0, 10, args.batch) for _ in range(args.steps)]
    graphnet_run, model = graphnet_runner(batches, labels)
    runners = {"graphnet": graphnet_run}
    try:
        runners["torch"] = torch_runner(batches, labels, model, args.threads)
    except ImportError:
        print("PyTorch is not installed: timing graphnet alone")

    first = {name: run()[0] for name, run in runners.items()}  # warm-up; same weights, same batch
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    times = {clock: {name: [] for name in runners} for clock in clocks}
    for _ in range(args.rounds):
        for name, run in runners.items():
            start = {clock: read() for clock, read in clocks.items()}
            run()
            for clock, read in clocks.items():
                times[clock][name].append((read() - start[clock]) / args.steps)

    print(f"MNIST CNN (conv32 5x5 - pool - conv64 5x5 - pool - linear 10), batch {args.batch}, "
          f"float32, SGD; {args.threads} thread(s) "
          f"({', '.join(THREAD_VARIABLES)}={args.threads}, torch.set_num_threads({args.threads})); "
          f"{args.rounds} rounds x {args.steps} steps")
    for clock, by_runner in times.items():
        for name, values in by_runner.items():
            print(f"  {clock:<4} {name:<9} median {statistics.median(values) * 1e3:8.1f} ms/step "
                  f"(rounds: {min(values) * 1e3:.1f} to {max(values) * 1e3:.1f})")
        if "torch" in by_runner:
            ratios = [g / t for g, t in zip(by_runner["graphnet"], by_runner["torch"])]
            ratio = statistics.median(by_runner["graphnet"]) / statistics.median(by_runner["torch"])
            print(f"  {clock:<4} ratio graphnet/torch: {ratio:.2f} "
                  f"(per round: {min(ratios):.2f} to {max(ratios):.2f})")
    if "torch" in first:
        print(f"  first-step loss: graphnet {first['graphnet']:.6f}, torch {first['torch']:.6f}")


if __name__ == "__main__":
    main()
