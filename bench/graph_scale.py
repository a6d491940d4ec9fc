"""How the graph layer scales with the size of a graph: build, model, plans and one step, timed apart.

Two kinds of specs, made as data and validated with ``validate_spec_data`` (no text to parse: the
spec loader has its own benchmark, bench/spec_scale.py):

- ``chain``: a ``linear`` then N - 2 ``relu`` nodes then an ``mse`` loss, in ``nodes:``;
- ``layers``: the ``layers:`` shorthand with a ``sizes`` list of N / 2 entries (N / 2 linear
  layers of 3 units, each followed by relu: about N nodes, each linear with parameters).

For each size the script times ``build_graph`` (ops, attributes, roles, order, shapes),
``Model(graph)`` (parameter layout, initialization, the memory check), the executor's plans for
the spec's outputs and the loss's backward, and one forward + backward on a batch of 2, in CPU
seconds of the process (``time.process_time``: on a busy machine wall time mostly measures the
others). It prints the best of ``--repeat`` runs of each and, for each doubling of N, the ratio
of the times (2x is linear, 4x quadratic; the target is <= 2.5x). ``total`` is the sum of the
parts of one run:

    python bench/graph_scale.py [--sizes 10000 20000 40000 60000] [--repeat 3] [--kind chain layers]
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Callable

import numpy as np

from graphnet import Model, build_graph
from graphnet.spec import Spec, validate_spec_data

PARTS = ("spec", "build", "model", "plans", "step", "total")


def chain_data(count: int) -> dict:
    """A valid spec of ``count`` nodes: linear, relu x (count - 2), mse."""
    nodes: dict[str, dict] = {"fc": {"op": "linear", "inputs": {"x": "x"}, "attrs": {"units": 3}}}
    previous = "fc"
    for i in range(1, count - 1):
        nodes[f"r{i}"] = {"op": "relu", "inputs": {"x": previous}}
        previous = f"r{i}"
    nodes["loss"] = {"op": "mse", "inputs": {"pred": previous, "target": "t"}}
    return {"name": f"chain-{count}", "inputs": {"x": {"shape": [2]}, "t": {"shape": [3]}}, "nodes": nodes}


def layers_data(count: int) -> dict:
    """About ``count`` nodes through the ``layers:`` shorthand: count / 2 linear + relu layers."""
    sizes = [2] + [3] * (count // 2)
    return {
        "name": f"layers-{count}",
        "inputs": {"x": {"shape": [2]}, "t": {"shape": [3]}},
        "layers": {"input": "x", "sizes": sizes, "loss": "mse", "labels": "t"},
    }


def timed(run: Callable[[], object]) -> tuple[float, object]:
    """CPU seconds of this process running ``run`` (other work on a shared machine does not
    count, as it does in wall time), and what it returned."""
    started = time.process_time()
    value = run()
    return time.process_time() - started, value


def one_run(data: dict) -> dict[str, float]:
    """Seconds of each part for one spec."""
    seconds: dict[str, float] = {}
    seconds["spec"], spec = timed(lambda: validate_spec_data(data))
    assert isinstance(spec, Spec)
    seconds["build"], graph = timed(lambda: build_graph(spec))
    seconds["model"], model = timed(lambda: Model(graph, dtype="float64"))
    outputs = tuple(graph.outputs)

    def plans():
        plan = model.executor.plan(outputs)
        return model.executor.backward_plan(plan, frozenset({"loss"}))

    seconds["plans"], _ = timed(plans)
    rng = np.random.default_rng(0)
    batch = {"x": rng.standard_normal((2, 2)), "t": rng.standard_normal((2, 3))}

    def step():
        out = model.forward(batch, training=True)
        out.backward("loss")

    seconds["step"], _ = timed(step)
    # The garbage collector's full passes land in whichever part is running: the parts' ratios
    # jump about, their sum is steadier.
    seconds["total"] = sum(seconds.values())
    return seconds


def best_of(data: dict, repeat: int) -> dict[str, float]:
    best = {part: float("inf") for part in PARTS}
    for _ in range(repeat):
        gc.collect()
        for part, value in one_run(data).items():
            best[part] = min(best[part], value)
    return best


def report(kind: str, sizes: list[int], repeat: int) -> None:
    make = chain_data if kind == "chain" else layers_data
    print(f"{kind}: best of {repeat} (seconds), and the ratio to the size before it")
    print(f"{'nodes':>8}  " + "  ".join(f"{part:>14}" for part in PARTS))
    previous: tuple[int, dict[str, float]] | None = None
    for size in sizes:
        best = best_of(make(size), repeat)
        cells = []
        for part in PARTS:
            cell = f"{best[part]:.3f}"
            if previous is not None:
                cell += f" ({best[part] / max(previous[1][part], 1e-9):.1f}x)"
            cells.append(f"{cell:>14}")
        growth = f"   size x{size / previous[0]:.1f}" if previous is not None else ""
        print(f"{size:>8}  " + "  ".join(cells) + growth)
        previous = (size, best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000, 40000, 60000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kind", nargs="+", choices=["chain", "layers"], default=["chain", "layers"])
    args = parser.parse_args()
    for kind in args.kind:
        report(kind, args.sizes, args.repeat)


if __name__ == "__main__":
    main()
