"""The checked graph: topological order (iterative, declaration order among equals), shapes,
parameter shapes, which nodes need a gradient, consumers, deep graphs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from graphnet import Model, build_graph, load_spec, parse_spec
from graphnet.errors import SpecError

SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"
SPECS = sorted(SPECS_DIR.glob("*.yaml"))


def assert_topological(graph):
    position = {name: i for i, name in enumerate(graph.order)}
    assert sorted(position) == sorted(graph.spec.all_nodes())
    for name, node in graph.nodes.items():
        for source in node.sources:
            if source in graph.nodes:
                assert position[source] < position[name], f"{source} must run before {name}"


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_builds_in_dependency_order(path):
    assert_topological(build_graph(load_spec(path)))


def test_skip_mlp_order_shapes_and_wiring():
    graph = build_graph(load_spec(SPECS_DIR / "skip-mlp.yaml"))
    assert_topological(graph)
    # declared in a valid order, so that order is kept
    assert graph.order == list(graph.spec.nodes)
    assert {name: node.shape for name, node in graph.nodes.items()} == {
        "stem": (256,), "act0": (256,), "block": (256,), "act1": (256,), "skip": (256,),
        "side": (64,), "act2": (64,), "joined": (320,), "logits": (10,), "loss": (),
    }
    assert graph.nodes["logits"].param_shapes == {"w": (320, 10), "b": (10,)}
    assert graph.param_count() == (784 * 256 + 256) + (256 * 256 + 256) + (784 * 64 + 64) + (320 * 10 + 10)
    joined = graph.nodes["joined"]
    assert [(e.role, e.index, e.source) for e in joined.edges] == [("xs", 0, "skip"), ("xs", 1, "act2")]
    consumers = {name: [] for name in [*graph.inputs, *graph.nodes]}
    for node in graph.nodes.values():
        for source in node.sources:
            consumers[source].append(node.name)
    assert sorted(consumers["act0"]) == ["block", "skip"]
    assert sorted(consumers["image"]) == ["side", "stem"]
    assert consumers["label"] == ["loss"]
    assert consumers["loss"] == []
    assert graph.outputs == ["logits", "loss"]
    assert graph.op_versions() == {
        "linear": 1, "relu": 1, "add": 1, "tanh": 1, "concat": 1, "softmax_cross_entropy": 1,
    }


def test_out_of_order_declaration_is_sorted():
    spec = parse_spec(
        """
        name: t
        inputs: {x: {shape: [3]}, t: {shape: [2]}}
        nodes:
          loss: {op: mse, inputs: {pred: b, target: t}}
          b: {op: linear, inputs: {x: a}, attrs: {units: 2}}
          c: {op: relu, inputs: {x: x}}
          a: {op: linear, inputs: {x: c}, attrs: {units: 4}}
        """
    )
    graph = build_graph(spec)
    assert graph.order == ["c", "a", "b", "loss"]
    assert_topological(graph)


def test_appending_a_node_keeps_other_initial_values():
    base = load_spec(SPECS_DIR / "skip-mlp.yaml")
    data = base.to_dict()
    data["nodes"]["extra"] = {"op": "linear", "inputs": {"x": "stem"}, "attrs": {"units": 3}}
    grown = parse_spec(json.dumps(data))
    a = Model(build_graph(base), seed=5)
    b = Model(build_graph(grown), seed=5)
    assert b.graph.order == a.graph.order + ["extra"]
    for name in a.param_names:
        np.testing.assert_array_equal(a.params[name], b.params[name])


def test_needs_grad_follows_parameters():
    spec = parse_spec(
        """
        name: t
        inputs: {x: {shape: [3]}, t: {shape: [3]}}
        nodes:
          frozen: {op: relu, inputs: {x: x}}
          fc: {op: linear, inputs: {x: frozen}, attrs: {units: 3}}
          act: {op: tanh, inputs: {x: fc}}
          both: {op: add, inputs: {a: act, b: frozen}}
          loss: {op: mse, inputs: {pred: both, target: t}}
        """
    )
    graph = build_graph(spec)
    needs = {name: node.needs_grad for name, node in graph.nodes.items()}
    assert needs == {"frozen": False, "fc": True, "act": True, "both": True, "loss": True}


def chain_data(length: int, reverse: bool = False) -> dict:
    nodes = {"fc": {"op": "linear", "inputs": {"x": "x"}, "attrs": {"units": 3}}}
    previous = "fc"
    for i in range(1, length + 1):
        nodes[f"r{i}"] = {"op": "relu", "inputs": {"x": previous}}
        previous = f"r{i}"
    nodes["loss"] = {"op": "mse", "inputs": {"pred": previous, "target": "t"}}
    if reverse:
        nodes = dict(reversed(list(nodes.items())))
    return {"name": "chain", "inputs": {"x": {"shape": [2]}, "t": {"shape": [3]}}, "nodes": nodes}


def test_deep_chain_declared_backwards_builds_without_recursion():
    # a recursive walk would need ~3000 frames; leave it far fewer
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        graph = build_graph(parse_spec(json.dumps(chain_data(3000, reverse=True))))
    finally:
        sys.setrecursionlimit(old)
    assert graph.order == ["fc"] + [f"r{i}" for i in range(1, 3001)] + ["loss"]
    assert graph.nodes["r3000"].shape == (3,)
    assert all(node.needs_grad for node in graph.nodes.values())


def test_long_cycle_is_found_without_recursion():
    count = 2000
    nodes = {f"c{i}": {"op": "relu", "inputs": {"x": f"c{(i + 1) % count}"}} for i in range(count)}
    spec = parse_spec(json.dumps({"name": "cyc", "inputs": {"x": {"shape": [2]}}, "nodes": nodes}))
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        with pytest.raises(SpecError) as info:
            build_graph(spec)
    finally:
        sys.setrecursionlimit(old)
    cycle = info.value.message.removeprefix("the graph has a cycle: ").split(" -> ")
    assert len(cycle) == count + 1 and cycle[0] == cycle[-1]
    # data flows c(i+1) -> c(i)
    for a, b in zip(cycle, cycle[1:]):
        assert int(a[1:]) == (int(b[1:]) + 1) % count


def test_param_count_matches_the_model():
    graph = build_graph(load_spec(SPECS_DIR / "seed-mse.yaml"))
    assert graph.param_count() == Model(graph).size == 784 * 200 + 200 + 200 * 100 + 100 + 100 * 10 + 10
    assert graph.param_count() == sum(
        math.prod(s) for node in graph.nodes.values() for s in node.param_shapes.values()
    )
