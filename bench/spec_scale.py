"""How validating a spec scales with its size: load_spec and build_graph of long chains, timed apart.

A chain of N nodes alternates ``linear`` (8 units) and ``relu``, written in block style (one key
per line, like a generated spec), and ends in a loss. Each size is loaded and built ``--repeat``
times; the script prints the best CPU time of each part and, for each doubling of N, the ratio of the
times (1x per doubling would be free, 2x is linear, 4x quadratic). The target is <= 2.5x:

    python bench/spec_scale.py [--sizes 10000 20000 40000 60000] [--repeat 3] [--json]

``--json`` times the same chains written as JSON as well.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from graphnet import build_graph, load_spec


def chain_data(count: int) -> dict:
    """A valid spec of ``count`` nodes: linear/relu alternating, then a softmax cross-entropy."""
    nodes: dict[str, dict] = {}
    previous = "x"
    for i in range(count - 1):
        name = f"n{i}"
        if i % 2 == 0:
            nodes[name] = {"op": "linear", "inputs": {"x": previous}, "attrs": {"units": 8}}
        else:
            nodes[name] = {"op": "relu", "inputs": {"x": previous}}
        previous = name
    nodes["loss"] = {"op": "softmax_cross_entropy", "inputs": {"logits": previous, "labels": "y"}}
    return {
        "format": 1,
        "name": f"chain-{count}",
        "inputs": {"x": {"shape": [8]}, "y": {"shape": [], "dtype": "int64"}},
        "nodes": nodes,
    }


def chain_yaml(data: dict) -> str:
    """Block-style YAML of a chain (written by hand: yaml.dump of 60,000 nodes is itself slow)."""
    out = [f"format: 1\nname: {data['name']}\ninputs:\n  x:\n    shape: [8]\n  y:\n    shape: []\n"
           "    dtype: int64\nnodes:\n"]
    for name, node in data["nodes"].items():
        out.append(f"  {name}:\n    op: {node['op']}\n    inputs:\n")
        for role, source in node["inputs"].items():
            out.append(f"      {role}: {source}\n")
        if "attrs" in node:
            out.append("    attrs:\n")
            for key, value in node["attrs"].items():
                out.append(f"      {key}: {value}\n")
    return "".join(out)


def time_once(path: Path) -> tuple[float, float]:
    """(load_spec, build_graph) CPU seconds of one load and build of the spec at ``path``
    (CPU time: on a shared machine, wall time mostly measures the neighbours)."""
    start = time.process_time()
    spec = load_spec(path)
    middle = time.process_time()
    graph = build_graph(spec)
    end = time.process_time()
    assert len(graph.nodes) == len(spec.nodes)
    return middle - start, end - middle


def best_times(paths: list[Path], repeat: int) -> list[tuple[float, float]]:
    """The best (load_spec, build_graph) seconds of each spec over ``repeat`` rounds. The sizes
    take turns within a round, so a busy spell of the machine does not land on one size only."""
    best = [(float("inf"), float("inf"))] * len(paths)
    for _ in range(repeat):
        for i, path in enumerate(paths):
            load, build = time_once(path)
            best[i] = (min(best[i][0], load), min(best[i][1], build))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 40_000, 60_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="time the JSON form too")
    args = parser.parse_args()

    forms = ["yaml", "json"] if args.json else ["yaml"]
    with tempfile.TemporaryDirectory() as tmp:
        for form in forms:
            paths = []
            for count in args.sizes:
                data = chain_data(count)
                path = Path(tmp) / f"chain-{count}.{form}"
                path.write_text(chain_yaml(data) if form == "yaml" else json.dumps(data, indent=2))
                paths.append(path)
            rows = [(count, *times) for count, times in zip(args.sizes, best_times(paths, args.repeat))]
            print(f"{form}: nodes      MiB   load_spec  build_graph     total  (CPU s, best of {args.repeat})")
            for (count, load, build), path in zip(rows, paths):
                size = path.stat().st_size / 2**20
                print(f"{form}: {count:6d} {size:7.2f} {load:10.3f}s {build:11.3f}s {load + build:9.3f}s")
            print(f"{form}: per doubling of the nodes (target <= 2.5x):")
            for (n1, l1, b1), (n2, l2, b2) in zip(rows, rows[1:]):
                if n2 == 2 * n1:
                    print(f"{form}:   {n1} -> {n2}: load_spec {l2 / l1:.2f}x  build_graph {b2 / b1:.2f}x"
                          f"  total {(l2 + b2) / (l1 + b1):.2f}x")


if __name__ == "__main__":
    main()
