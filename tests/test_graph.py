"""The checked graph: topological order (iterative, declaration order among equals), shapes,
parameter shapes, which nodes need a gradient, consumers, deep graphs; every error of a spec
reported at once; build time linear in the size of the graph."""

from __future__ import annotations

import json
import math
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from graphnet import Model, build_graph, load_spec, parse_spec
from graphnet.errors import MAX_REPORTED, GraphnetError, OpError, ShapeError, SpecError
from graphnet.op import Elementwise, Op, Param
from graphnet.registry import default_registry

SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"
SPECS = sorted(p for p in SPECS_DIR.glob("*.yaml") if not p.stem.endswith("-sweep"))


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


# -- all the errors of a spec at once -----------------------------------------------------------


def errors_of(text: str, registry=None) -> list:
    """Every error build_graph reports for the spec text (the first and its ``more``)."""
    with pytest.raises(GraphnetError) as info:
        build_graph(parse_spec(textwrap.dedent(text), file="spec.yaml"), registry)
    return info.value.all()


def line_of(text: str, fragment: str) -> int:
    lines = textwrap.dedent(text).splitlines()
    return next(i for i, line in enumerate(lines, 1) if fragment in line)


TWO_TYPOS_AND_A_BAD_ATTRIBUTE = """
name: t
inputs:
  x: {shape: [4]}
  y: {shape: [], dtype: int64}
nodes:
  fc:
    op: lineer
    inputs: {x: x}
    attrs: {units: 10}
  drop:
    op: dropout
    inputs: {x: fcc}
    attrs: {rate: 1.5}
  loss:
    op: softmax_cross_entropy
    inputs: {logits: drop, labels: y}
"""


def test_two_typos_and_a_bad_attribute_are_reported_together():
    text = TWO_TYPOS_AND_A_BAD_ATTRIBUTE
    errors = errors_of(text)
    assert [(e.path, e.line, type(e)) for e in errors] == [
        ("nodes.fc.op", line_of(text, "op: lineer"), SpecError),
        ("nodes.drop.attrs.rate", line_of(text, "rate: 1.5"), SpecError),
        ("nodes.drop.inputs.x", line_of(text, "inputs: {x: fcc}"), SpecError),
    ]
    assert all(e.file == "spec.yaml" for e in errors)
    assert errors[0].message == "unknown op 'lineer'" and "did you mean 'linear'?" in errors[0].hint
    assert "less than 1" in errors[1].message and "received 1.5" in errors[1].message
    assert errors[2].message == "'fcc' is neither a node nor an input"
    assert errors[2].hint.startswith("did you mean 'fc'?")


def test_role_errors_of_every_node_and_the_references_of_a_node_with_an_unknown_op():
    errors = errors_of(
        """
        name: t
        inputs: {x: {shape: [4]}, y: {shape: [], dtype: int64}}
        nodes:
          a: {op: nope, inputs: {x: missing, ys: [x, gone]}}
          b: {op: linear, inputs: {x: x, z: x}, attrs: {units: 3, unitz: 4}}
          loss: {op: softmax_cross_entropy, inputs: {logits: b}}
        outputs: [b, los]
        """
    )
    assert [(e.path, e.message) for e in errors] == [
        ("nodes.a.op", "unknown op 'nope'"),
        ("nodes.a.inputs.x", "'missing' is neither a node nor an input"),
        ("nodes.a.inputs.ys.1", "'gone' is neither a node nor an input"),
        ("nodes.b.attrs.unitz", "op 'linear' has no attribute 'unitz'"),
        ("nodes.b.inputs.z", "op 'linear' has no input role 'z'"),
        ("nodes.loss.inputs", "op 'softmax_cross_entropy' needs input role 'labels'"),
        ("outputs.1", "output 'los' is not a node"),
    ]


def test_missing_attributes_are_reported_unless_a_typo_explains_them():
    errors = errors_of(
        """
        name: t
        inputs: {x: {shape: [4]}}
        nodes:
          a: {op: linear, inputs: {x: x}, attrs: {bias: 3}}
          b: {op: linear, inputs: {x: a}, attrs: {unitz: 3}}
        """
    )
    assert [(e.path, e.message) for e in errors] == [
        ("nodes.a.attrs.units", "op 'linear' needs attribute 'units'"),
        ("nodes.a.attrs.bias", "Input should be a valid boolean, unable to interpret input; received 3"),
        ("nodes.b.attrs.unitz", "op 'linear' has no attribute 'unitz'"),  # not also "needs units"
    ]


def test_errors_are_capped_and_counted():
    nodes = {f"n{i}": {"op": "relu", "inputs": {"x": f"nowhere{i}"}} for i in range(30)}
    spec = parse_spec(json.dumps({"name": "t", "inputs": {"x": {"shape": [2]}}, "nodes": nodes}))
    with pytest.raises(SpecError) as info:
        build_graph(spec)
    errors = info.value.all()
    assert len(errors) == MAX_REPORTED + 1
    assert [e.path for e in errors[:MAX_REPORTED]] == [f"nodes.n{i}.inputs.x" for i in range(MAX_REPORTED)]
    assert errors[-1].message == f"... and {30 - MAX_REPORTED} more errors"


def test_a_huge_spec_full_of_bad_references_is_reported_quickly():
    # a hint searches every name for the closest one: only the errors shown get one
    count = 20000
    nodes = {f"n{i}": {"op": "relu", "inputs": {"x": f"n{i}x"}} for i in range(count)}
    spec = parse_spec(json.dumps({"name": "t", "inputs": {"x": {"shape": [2]}}, "nodes": nodes}))
    started = time.process_time()
    with pytest.raises(SpecError) as info:
        build_graph(spec)
    assert time.process_time() - started < 20  # one difflib search per error would take hours
    assert info.value.more[-1].message == f"... and {count - MAX_REPORTED} more errors"
    hint = info.value.hint  # the closest name, and the first 40 of the 20,001 known
    assert hint.startswith("did you mean 'n0'? known: x, n0, n1") and hint.endswith(f"({count - 39:,} more)")


SHAPES = """
name: t
inputs: {x: {shape: [4]}, t: {shape: [3]}}
nodes:
  a: {op: linear, inputs: {x: x}, attrs: {units: 3, in_features: 5}}
  a2: {op: relu, inputs: {x: a}}
  a3: {op: add, inputs: {a: a2, b: b}}
  b: {op: linear, inputs: {x: x}, attrs: {units: 2}}
  c: {op: add, inputs: {a: b, b: t}}
  loss: {op: mse, inputs: {pred: c, target: t}}
"""


def test_independent_shape_errors_are_reported_together_and_once():
    errors = errors_of(SHAPES)
    assert [(e.path, type(e)) for e in errors] == [("nodes.a", ShapeError), ("nodes.c", ShapeError)]
    assert errors[0].message == "input x has 4 features, weight expects 5"
    assert "input a has per-sample shape [2], input b has [3]" in errors[1].message
    # a2 and a3 depend on a, loss on c: skipped, not reported again


class NoShape(Op):
    """y = x, with no shape rule."""

    def forward(self, attrs, ctx, x):
        return x, None


class Unfinished(NoShape):
    def shape(self, attrs, x):
        raise NotImplementedError("broadcasting is not supported yet")


class Crashing(NoShape):
    def shape(self, attrs, x):
        return x[5]


def test_a_missing_shape_rule_is_named():
    registry = default_registry().copy()
    for op_name, cls in [("no_shape", NoShape), ("unfinished", Unfinished), ("crashing", Crashing)]:
        registry.register(cls, op_name)
    text = """
        name: t
        inputs: {x: {shape: [4]}}
        nodes:
          a: {op: no_shape, inputs: {x: x}}
          b: {op: unfinished, inputs: {x: x}}
          c: {op: crashing, inputs: {x: x}}
        """
    errors = errors_of(text, registry)
    assert [(e.path, e.line, type(e)) for e in errors] == [
        ("nodes.a", line_of(text, "a: {op"), OpError),
        ("nodes.b", line_of(text, "b: {op"), OpError),
        ("nodes.c", line_of(text, "c: {op"), OpError),
    ]
    assert errors[0].message == "op 'no_shape' has no shape rule: define shape(...)"
    assert "def shape(self, attrs, **input_shapes)" in errors[0].hint
    assert errors[1].message == (
        "shape rule of op 'unfinished' failed: NotImplementedError: broadcasting is not supported yet"
    )
    assert errors[2].message == "shape rule of op 'crashing' failed: IndexError: tuple index out of range"


# -- scale --------------------------------------------------------------------------------------


def best_build_seconds(spec, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        build_graph(spec)
        best = min(best, time.process_time() - started)
    return best


def test_build_time_grows_linearly_with_the_graph():
    # 4x the nodes: about 4x the time when linear, 16x when quadratic (as it was: 8.8 s for a
    # 20,000-node chain). CPU time, best of 3, so a busy machine does not decide.
    small = best_build_seconds(parse_spec(json.dumps(chain_data(4000))))
    large = best_build_seconds(parse_spec(json.dumps(chain_data(16000))))
    assert large / small < 8, (small, large)


def test_a_long_layers_list_builds():
    sizes = [2] + [3] * 20000
    spec = parse_spec(json.dumps({
        "name": "t", "inputs": {"x": {"shape": [2]}, "t": {"shape": [3]}},
        "layers": {"input": "x", "sizes": sizes, "loss": "mse", "labels": "t"},
    }))
    started = time.process_time()
    graph = build_graph(spec)
    assert time.process_time() - started < 20  # 18.7 s before, on a quiet machine
    assert len(graph.nodes) == 2 * 20000 and graph.order[-1] == "loss"
    assert graph.param_count() == 2 * 3 + 3 + 19999 * (3 * 3 + 3)


# -- the layers: shorthand names any installed op ----------------------------------------------


class Cube(Elementwise):
    """y = x^3"""

    def forward(self, attrs, ctx, x):
        return x * x * x, x

    def backward(self, attrs, saved, dy):
        return {"x": 3 * dy * saved * saved}


class HingeLoss(Op):
    """mean(max(0, 1 - truth * guess)); roles declared labels first, to be bound second."""

    inputs = ("truth", "guess")
    no_grad = ("truth",)
    reduces_batch = True

    def shape(self, attrs, truth, guess):
        return ()

    def forward(self, attrs, ctx, truth, guess):
        margin = 1 - truth * guess
        return np.asarray(np.maximum(margin, 0).mean(), guess.dtype), (truth, margin > 0)

    def backward(self, attrs, saved, dy):
        truth, active = saved
        return {"guess": -dy * truth * active / truth.size}


class Halve(Elementwise):
    """y = the first half of x (a shape rule that changes the shape)"""

    def shape(self, attrs, x):
        return (x[0] // 2,)

    def forward(self, attrs, ctx, x):
        return x[:, : x.shape[1] // 2], x.shape

    def backward(self, attrs, saved, dy):
        dx = np.zeros(saved, dy.dtype)
        dx[:, : saved[1] // 2] = dy
        return {"x": dx}


@pytest.fixture(scope="module")
def with_plugin_ops():
    registry = default_registry().copy()
    for cls, name in [(Cube, "cube"), (HingeLoss, "hinge"), (Halve, "halve")]:
        registry.register(cls, name)
    return registry


SHORTHAND = """\
name: s
inputs:
  x: {shape: [4]}
  y: {shape: [2]}
layers:
  input: x
  sizes: [4, 5, 2]
  activation: cube
  output_activation: tanh
  loss: hinge
  labels: y
"""


def test_the_shorthand_takes_a_plugin_activation_and_loss_with_their_roles(with_plugin_ops):
    graph = build_graph(parse_spec(SHORTHAND), with_plugin_ops)
    wiring = {name: (node.op.name, [(e.role, e.source) for e in node.edges]) for name, node in graph.nodes.items()}
    assert wiring == {
        "fc1": ("linear", [("x", "x")]),
        "cube1": ("cube", [("x", "fc1")]),
        "fc2": ("linear", [("x", "cube1")]),
        "tanh": ("tanh", [("x", "fc2")]),
        "loss": ("hinge", [("truth", "y"), ("guess", "tanh")]),  # labels: the role without gradient
    }
    explicit = parse_spec(
        "name: s\ninputs:\n  x: {shape: [4]}\n  y: {shape: [2]}\nnodes:\n"
        "  fc1: {op: linear, inputs: {x: x}, attrs: {units: 5, in_features: 4}}\n"
        "  cube1: {op: cube, inputs: {x: fc1}}\n"
        "  fc2: {op: linear, inputs: {x: cube1}, attrs: {units: 2, in_features: 5}}\n"
        "  tanh: {op: tanh, inputs: {x: fc2}}\n"
        "  loss: {op: hinge, inputs: {guess: tanh, truth: y}}\n"
    )
    same = build_graph(explicit, with_plugin_ops)
    a, b = Model(graph, seed=2, dtype="float64"), Model(same, seed=2, dtype="float64")
    assert (a.flat_params == b.flat_params).all()
    draw = np.random.default_rng(0)
    batch = {"x": draw.standard_normal((3, 4)), "y": np.sign(draw.standard_normal((3, 2)))}
    assert a.forward(batch)["loss"] == b.forward(batch)["loss"]
    # without the registry the spec still lists its nodes and ops; the roles are placeholders
    listed = parse_spec(SHORTHAND).all_nodes()
    assert [(name, node.op) for name, node in listed.items()] == [(n, op) for n, (op, _) in wiring.items()]
    assert listed["loss"].inputs == {"0": "tanh", "1": "y"} and listed["cube1"].inputs == {"0": "fc1"}
    # a spec a graph was built from knows them (`graphnet inspect` lists graph.spec's nodes)
    assert graph.spec.all_nodes()["loss"].inputs == {"guess": "tanh", "truth": "y"}


@pytest.mark.parametrize(
    "field, value, message, hint",
    [
        ("activation", "cubee", "unknown op 'cubee'", "did you mean 'cube'?"),
        ("activation", "mse", "op 'mse' takes 2 inputs (roles: pred, target) and reduces the batch; an "
                              "activation takes one", "use an op of one input such as relu"),
        ("activation", "linear", "op 'linear' needs attributes (units), which the layers: shorthand cannot give",
         "write the graph under nodes: to set them"),
        ("activation", "halve", "op 'halve' does not keep the shape of a vector of features, which an activation "
                                "of the layers: shorthand must", "use an elementwise op"),
        ("output_activation", "add", "op 'add' takes 2 inputs (roles: a, b); an activation takes one", None),
        ("loss", "relu", "op 'relu' is not a loss of two inputs (roles: x)", "a loss takes the prediction and the "
                                                                            "labels and reduces the batch"),
    ],
)
def test_a_shorthand_op_that_does_not_fit_is_one_error_at_its_field(with_plugin_ops, field, value, message, hint):
    text = SHORTHAND.replace(f"  {field}: ", f"  {field}: {value} #", 1)
    errors = errors_of(text, with_plugin_ops)
    assert [(e.path, e.line, e.message) for e in errors] == [
        (f"layers.{field}", line_of(text, f"  {field}: "), message)
    ]
    assert hint is None or errors[0].hint.startswith(hint)


def test_a_shorthand_op_misfit_does_not_hide_the_other_errors(with_plugin_ops):
    text = SHORTHAND.replace("activation: cube", "activation: mse") + (
        "nodes:\n  extra: {op: mse, inputs: {pred: tanh, target: y}}\n  typo: {op: cubee, inputs: {x: fc1}}\n"
    )
    errors = errors_of(text, with_plugin_ops)
    # mse is fine where the user wrote it as a node: only the shorthand's use is refused
    assert [e.path for e in errors] == ["layers.activation", "nodes.typo.op"]


def test_an_unknown_initializer_is_reported_when_the_graph_is_built():
    class Odd(Cube):
        params = (Param("g", shape=lambda attrs, shapes: (shapes["x"][-1],), init="he_uniform"),)

        def forward(self, attrs, ctx, x, g):
            return x * g, (x, g)

        def backward(self, attrs, saved, dy):
            x, g = saved
            return {"x": dy * g, "g": (dy * x).sum(axis=0)}

    class Crashing(Odd):
        params = (Param("g", shape=lambda attrs, shapes: (shapes["x"][-1],), init=lambda attrs: attrs.nope),)

    registry = default_registry().copy()
    registry.register(Odd, "odd")
    registry.register(Crashing, "crashing_init")
    text = """
        name: t
        inputs: {x: {shape: [4]}}
        nodes:
          a: {op: odd, inputs: {x: x}}
          b: {op: crashing_init, inputs: {x: x}}
        """
    errors = errors_of(text, registry)
    assert [(e.path, type(e)) for e in errors] == [("nodes.a", OpError), ("nodes.b", OpError)]
    assert errors[0].message == "parameter 'g' of op 'odd' asks for unknown initializer 'he_uniform'"
    assert errors[0].hint.startswith("known: zeros, ones, he_normal, glorot_uniform, lecun_normal")
    assert errors[1].message.startswith("parameters of op 'crashing_init' failed: AttributeError: ")
