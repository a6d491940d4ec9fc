"""Spec loading and validation: every error names the spec path, the line in the file, what was
received and how to fix it; YAML and JSON load alike; specs round-trip through JSON; the
``layers:`` shorthand is the same graph as the nodes it stands for; ``--set`` overrides."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml

from graphnet import Model, Spec, build_graph, load_spec, parse_spec
from graphnet.errors import DataError, GraphnetError, ShapeError, SpecError, did_you_mean
from graphnet.registry import default_registry
from graphnet.spec import apply_override

SPECS = sorted(p for p in (Path(__file__).resolve().parents[1] / "specs").glob("*.yaml") if not p.stem.endswith("-sweep"))

# Block style, so every key sits on its own line.
BASE = """\
format: 1
name: t
inputs:
  x:
    shape: [100]
  y:
    shape: []
    dtype: int64
nodes:
  fc:
    op: linear
    inputs:
      x: x
    attrs:
      units: 10
  loss:
    op: softmax_cross_entropy
    inputs:
      logits: fc
      labels: y
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not in the test spec"
    return hits[occurrence - 1]


@pytest.fixture
def error_of(write_spec):
    """error_of(text) -> the GraphnetError raised by loading and building the spec text."""

    def check(text: str, cls=SpecError, **kwargs) -> GraphnetError:
        path = write_spec(text)
        with pytest.raises(cls) as info:
            build_graph(load_spec(path, **kwargs))
        error = info.value
        assert error.file == str(path) or (error.file or "").startswith("--set ")
        return error

    return check


def test_base_spec_is_valid(write_spec):
    graph = build_graph(load_spec(write_spec(BASE)))
    assert graph.order == ["fc", "loss"]
    assert graph.nodes["fc"].shape == (10,)
    assert graph.nodes["fc"].param_shapes == {"w": (100, 10), "b": (10,)}


# -- structural errors (pydantic) ---------------------------------------------------------------


def test_unknown_top_level_key_did_you_mean(error_of):
    text = BASE + "outptus: [fc, loss]\n"
    error = error_of(text)
    assert error.path == "outptus"
    assert error.line == line_of(text, "outptus")
    assert "unknown key 'outptus'" in error.message
    assert "did you mean 'outputs'?" in error.hint
    assert "allowed keys: format, name, description, inputs, layers, nodes, outputs, train" in error.hint
    # the one-line rendering the CLI prints: file:line: path: message (hint)
    assert str(error).startswith(f"{error.file}:{error.line}: outptus: unknown key 'outptus' (did you mean")


def test_unknown_nested_key_did_you_mean(error_of):
    text = BASE + "train:\n  optimizer:\n    type: sgd\n    momentm: 0.9\n"
    error = error_of(text)
    assert error.path == "train.optimizer.momentm"
    assert error.line == line_of(text, "momentm")
    assert "unknown key 'momentm'" in error.message
    assert "did you mean 'momentum'?" in error.hint
    assert "nesterov" in error.hint  # the SGD keys are listed, not Adam's
    assert "beta1" not in error.hint


def test_unknown_key_in_a_node(error_of):
    text = BASE.replace("    op: linear\n", "    op: linear\n    atrs: {}\n")
    error = error_of(text)
    assert error.path == "nodes.fc.atrs"
    assert error.line == line_of(text, "atrs")
    assert "did you mean 'attrs'?" in error.hint


def test_adam_key_lists_adam_fields(error_of):
    text = BASE + "train:\n  optimizer:\n    type: adam\n    beta_1: 0.9\n"
    error = error_of(text)
    assert error.path == "train.optimizer.beta_1"
    assert "did you mean 'beta1'?" in error.hint
    assert "momentum" not in error.hint


def test_bad_value_type(error_of):
    text = BASE + "train:\n  batch_size: abc\n"
    error = error_of(text)
    assert error.path == "train.batch_size"
    assert error.line == line_of(text, "batch_size")
    assert "valid integer" in error.message
    assert "received 'abc'" in error.message
    assert error.hint == "use a number"


def test_value_out_of_range(error_of):
    text = BASE + "train:\n  batch_size: 64\n  optimizer:\n    type: sgd\n    lr: -0.5\n"
    error = error_of(text)
    assert error.path == "train.optimizer.lr"
    assert error.line == line_of(text, "lr: -0.5")
    assert "greater than 0" in error.message
    assert "received -0.5" in error.message
    assert error.hint == "use a value in the allowed range"


def test_input_shape_must_be_positive(error_of):
    text = BASE.replace("shape: [100]", "shape: [100, 0]")
    error = error_of(text)
    assert error.path == "inputs.x.shape.1"
    assert error.line == line_of(text, "shape: [100, 0]")
    assert "received 0" in error.message


def test_bad_literal_lists_the_choices(error_of):
    text = BASE.replace("dtype: int64", "dtype: int65")
    error = error_of(text)
    assert error.path == "inputs.y.dtype"
    assert error.line == line_of(text, "int65")
    assert "received 'int65'" in error.message
    assert error.hint.startswith("use one of:") and "'int64'" in error.hint


def test_unknown_optimizer_type(error_of):
    text = BASE + "train:\n  optimizer:\n    type: sgdd\n    lr: 0.1\n"
    error = error_of(text)
    assert error.path == "train.optimizer"
    assert error.line == line_of(text, "optimizer:")
    assert "'sgdd'" in error.message
    assert "'sgd', 'adam', 'adamw'" in error.hint


def test_missing_required_key(error_of):
    text = BASE.replace("  x:\n    shape: [100]\n", "  x:\n    dtype: float32\n")
    error = error_of(text)
    assert error.path == "inputs.x.shape"
    assert error.line == line_of(text, "  x:")
    assert error.message == "missing required key 'shape'"
    assert error.hint == "add it"


def test_a_section_without_its_type_says_which_types_there_are(error_of):
    text = BASE + "train:\n  optimizer:\n    lr: 0.1\n"
    error = error_of(text)
    assert (error.path, error.line) == ("train.optimizer", line_of(text, "optimizer:"))
    assert error.message == "missing required key 'type'"
    assert error.hint == "add `type:`, one of: sgd, adam, adamw"


def test_cross_field_rule_nesterov(error_of):
    text = BASE + "train:\n  optimizer:\n    type: sgd\n    nesterov: true\n"
    error = error_of(text)
    assert error.path == "train.optimizer"
    assert error.line == line_of(text, "optimizer:")
    assert "nesterov needs momentum > 0" in error.message


def test_epochs_must_match_the_stages(error_of):
    text = BASE + "train:\n  epochs: 3\n  schedule:\n    - {epochs: 1, lr: 0.1}\n    - {epochs: 1, lr: 0.01}\n"
    error = error_of(text)
    assert error.path == "train"
    assert error.line == line_of(text, "train:")
    assert "epochs is 3 but the schedule's stages add up to 2" in error.message


def test_bad_node_name(error_of):
    text = BASE.replace("  fc:\n", "  1fc:\n").replace("logits: fc", "logits: 1fc")
    error = error_of(text)
    assert error.path == "nodes.1fc"
    assert error.line == line_of(text, "1fc:")
    assert "received '1fc'" in error.message
    assert "names start with a letter" in error.hint


def test_layers_loss_needs_labels(error_of):
    text = "name: t\ninputs:\n  x: {shape: [4]}\nlayers:\n  input: x\n  sizes: [4, 2]\n"
    error = error_of(text)
    assert error.path == "layers"
    assert error.line == line_of(text, "layers:")
    assert "needs `labels:`" in error.message


def test_no_nodes_and_no_layers(error_of):
    error = error_of("name: t\ninputs:\n  x: {shape: [4]}\n")
    assert error.path == "<top>"
    assert "no `nodes:` and no `layers:`" in error.message


def test_top_level_must_be_a_mapping(error_of):
    error = error_of("- 1\n- 2\n")
    assert error.line == 1
    assert "received list" in error.message


def test_unreadable_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(missing)
    assert info.value.file == str(missing)
    assert "cannot read spec" in info.value.message
    assert info.value.hint == "check the path"


def test_every_error_of_the_file_is_reported(error_of):
    text = BASE + "train:\n  batch_size: 0\n  seed: -1\n"
    error = error_of(text)
    assert error.path == "train.batch_size"
    assert error.message == "Input should be greater than or equal to 1; received 0"  # no "+1 more"
    assert [(e.path, e.line, e.file) for e in error.all()] == [
        ("train.batch_size", line_of(text, "batch_size"), error.file),
        ("train.seed", line_of(text, "seed: -1"), error.file),
    ]
    assert error.more[0].message == "Input should be greater than or equal to 0; received -1"


# -- syntax errors ------------------------------------------------------------------------------


def test_invalid_yaml_names_the_line(error_of):
    text = BASE.replace("      units: 10\n", "      units: 10\n     bad: indentation\n")
    error = error_of(text)
    assert error.message.startswith("invalid YAML:")
    assert error.line == line_of(text, "bad: indentation")
    assert error.hint == "fix the YAML syntax at that line"


def test_invalid_json_names_the_line(error_of):
    text = '{\n  "name": "t",\n  "inputs": {"x": {"shape": [4]}},\n  "nodes": {,}\n}\n'
    error = error_of(text)
    assert error.message.startswith("invalid JSON:")
    assert error.line == 4
    assert error.hint == "fix the JSON syntax at that line"


# -- graph errors (need the registry) -----------------------------------------------------------


def test_unknown_op_lists_known_ops(error_of):
    text = BASE.replace("op: linear", "op: lineer")
    error = error_of(text)
    assert error.path == "nodes.fc.op"
    assert error.line == line_of(text, "op: lineer")
    assert error.message == "unknown op 'lineer'"
    assert error.hint.startswith("did you mean 'linear'? known ops: ")
    assert error.hint.endswith(", ".join(default_registry().names()))


def test_reference_to_missing_node(error_of):
    text = BASE.replace("logits: fc", "logits: fcc")
    error = error_of(text)
    assert error.path == "nodes.loss.inputs.logits"
    assert error.line == line_of(text, "logits: fcc")
    assert error.message == "'fcc' is neither a node nor an input"
    assert error.hint.startswith("did you mean 'fc'? known: x, y, fc, loss")


def test_reference_to_missing_input(error_of):
    text = BASE.replace("      x: x\n", "      x: image\n")
    error = error_of(text)
    assert error.path == "nodes.fc.inputs.x"
    assert error.line == line_of(text, "x: image")
    assert "'image' is neither a node nor an input" in error.message


def test_output_that_is_not_a_node(error_of):
    text = BASE + "outputs:\n  - fc\n  - los\n"
    error = error_of(text)
    assert error.path == "outputs.1"
    assert error.line == line_of(text, "- los")
    assert "output 'los' is not a node" in error.message
    assert "did you mean 'loss'?" in error.hint


def test_cycle_is_named(error_of):
    text = BASE.replace("      x: x\n", "      x: b\n") + (
        "  a:\n    op: relu\n    inputs:\n      x: fc\n"
        "  b:\n    op: relu\n    inputs:\n      x: a\n"
    )
    error = error_of(text)
    prefix = "the graph has a cycle: "
    assert error.message.startswith(prefix), str(error)
    cycle = error.message[len(prefix):].split(" -> ")
    assert cycle[0] == cycle[-1] and len(cycle) == 4
    # data-flow order (fc feeds a, a feeds b, b feeds fc), starting anywhere on the cycle
    flow = ["fc", "a", "b"]
    start = flow.index(cycle[0])
    assert cycle[:-1] == flow[start:] + flow[:start]
    assert error.path == f"nodes.{cycle[0]}"
    assert error.line == line_of(text, f"  {cycle[0]}:")
    assert "break the cycle" in error.hint


def test_two_node_cycle(error_of):
    text = BASE + "  a:\n    op: relu\n    inputs:\n      x: b\n  b:\n    op: relu\n    inputs:\n      x: a\n"
    error = error_of(text)
    assert "the graph has a cycle:" in error.message
    assert ("a -> b -> a" in error.message) or ("b -> a -> b" in error.message)


def test_role_the_op_does_not_have(error_of):
    text = BASE.replace("      x: x\n", "      x: x\n      y: x\n")
    error = error_of(text)
    assert error.path == "nodes.fc.inputs.y"
    assert error.line == line_of(text, "      y: x")
    assert error.message == "op 'linear' has no input role 'y'"
    assert "its roles: x" in error.hint


def test_role_did_you_mean(error_of):
    text = BASE.replace("logits: fc", "logit: fc")
    error = error_of(text)
    assert error.path == "nodes.loss.inputs.logit"
    assert "did you mean 'logits'?" in error.hint


def test_missing_required_role(error_of):
    text = BASE.replace("      labels: y\n", "")
    error = error_of(text)
    assert error.path == "nodes.loss.inputs"
    assert error.line == line_of(text, "inputs:", occurrence=3)
    assert error.message == "op 'softmax_cross_entropy' needs input role 'labels'"
    assert "add `labels: <node or input>`" in error.hint


def test_list_for_a_single_role(error_of):
    text = BASE.replace("      x: x\n", "      x: [x, x]\n")
    error = error_of(text)
    assert error.path == "nodes.fc.inputs.x"
    assert "takes one input, received a list of 2" in error.message


def test_bad_attribute_value_from_the_ops_model(error_of):
    text = BASE + "  d:\n    op: dropout\n    inputs:\n      x: fc\n    attrs:\n      rate: 1.5\n"
    error = error_of(text)
    assert error.path == "nodes.d.attrs.rate"
    assert error.line == line_of(text, "rate: 1.5")
    assert "less than 1" in error.message
    assert "received 1.5" in error.message
    assert "dropout" in error.hint


def test_unknown_attribute(error_of):
    text = BASE.replace("      units: 10\n", "      units: 10\n      unitz: 3\n")
    error = error_of(text)
    assert error.path == "nodes.fc.attrs.unitz"
    assert error.line == line_of(text, "unitz")
    assert error.message == "op 'linear' has no attribute 'unitz'"
    assert error.hint.startswith("did you mean 'units'? its attributes: units, bias, in_features, init")


def test_attribute_of_an_op_without_attributes(error_of):
    text = BASE + "  r:\n    op: relu\n    inputs:\n      x: fc\n    attrs:\n      slope: 0.1\n"
    error = error_of(text)
    assert error.path == "nodes.r.attrs.slope"
    assert error.hint == "it takes no attributes"


def test_missing_required_attribute(error_of):
    text = BASE.replace("    attrs:\n      units: 10\n", "")
    error = error_of(text)
    assert error.path == "nodes.fc.attrs.units"
    assert error.message == "op 'linear' needs attribute 'units'"


def test_shape_mismatch_through_in_features(error_of):
    text = BASE.replace("      units: 10\n", "      units: 10\n      in_features: 200\n")
    error = error_of(text, cls=ShapeError)
    assert error.path == "nodes.fc"
    assert error.line == line_of(text, "  fc:")
    assert error.message == "input x has 100 features, weight expects 200"
    assert error.hint == "set in_features to 100 or fix the layer feeding it"


def test_add_with_mismatched_shapes(error_of):
    text = BASE + (
        "  h:\n    op: linear\n    inputs:\n      x: x\n    attrs:\n      units: 5\n"
        "  s:\n    op: add\n    inputs:\n      a: fc\n      b: h\n"
    )
    error = error_of(text, cls=ShapeError)
    assert error.path == "nodes.s"
    assert error.line == line_of(text, "  s:")
    assert "input a has per-sample shape [10], input b has [5]" in error.message


def test_loss_cannot_feed_another_node(error_of):
    text = BASE + "  r:\n    op: relu\n    inputs:\n      x: loss\n"
    error = error_of(text, cls=ShapeError)
    assert error.path == "nodes.r.inputs.x"
    assert error.line == line_of(text, "x: loss")
    assert "'loss' is a loss (one number per batch) and cannot feed another node" in error.message


def test_node_named_like_an_input(error_of):
    text = BASE + "  x:\n    op: relu\n    inputs:\n      x: fc\n"
    error = error_of(text)
    assert error.path == "nodes.x"
    assert "same name as an input" in error.message


def test_node_clashing_with_the_layers_shorthand(error_of):
    text = (
        "name: t\ninputs:\n  x: {shape: [4]}\n  y: {shape: [], dtype: int64}\n"
        "layers: {input: x, sizes: [4, 3, 2], labels: y}\n"
        "nodes:\n  fc1:\n    op: relu\n    inputs: {x: x}\n"
    )
    error = error_of(text)
    assert error.path == "nodes.fc1"
    assert error.line == line_of(text, "  fc1:")
    assert "already used by the `layers:` shorthand" in error.message


def test_error_in_a_layers_node_points_at_layers(error_of):
    text = (
        "name: t\ninputs:\n  x: {shape: [4]}\n  y: {shape: [3]}\n"
        "layers:\n  input: x\n  sizes: [4, 2]\n  loss: mse\n  labels: y\n"
    )
    error = error_of(text, cls=ShapeError)
    assert error.path == "nodes.loss"
    assert error.line == line_of(text, "layers:")
    assert "input target has per-sample shape [3], pred has [2]" in error.message


# -- YAML = JSON, canonical round trip ----------------------------------------------------------


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_yaml_and_json_forms_load_equal(path, tmp_path):
    data = yaml.safe_load(path.read_text())
    as_json = tmp_path / (path.stem + ".json")
    as_json.write_text(json.dumps(data, indent=2))
    from_yaml, from_json = load_spec(path), load_spec(as_json)
    assert from_yaml == from_json
    assert from_yaml.to_json() == from_json.to_json()
    assert from_json.file == str(as_json)


def test_json_errors_have_lines_too(write_spec):
    data = yaml.safe_load(BASE)
    data["train"] = {"optimizer": {"type": "sgd", "momentm": 0.9}}
    text = json.dumps(data, indent=2)
    path = write_spec(text, "spec.json")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.path == "train.optimizer.momentm"
    assert info.value.line == line_of(text, '"momentm"')
    assert "did you mean 'momentum'?" in info.value.hint


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_to_json_round_trips_exactly(path):
    spec = load_spec(path)
    text = spec.to_json()
    again = parse_spec(text)
    assert isinstance(again, Spec)
    assert again == spec
    assert again.to_json() == text
    assert json.loads(text) == again.to_dict() == spec.to_dict()
    # and the canonical form builds the same graph
    assert build_graph(again).order == build_graph(spec).order


def test_equality_sees_differences(write_spec):
    one = load_spec(write_spec(BASE))
    other = load_spec(write_spec(BASE.replace("units: 10", "units: 11"), "other.yaml"))
    assert one != other
    assert one == load_spec(write_spec(BASE, "same.yaml"))  # the file is not part of the spec


# -- layers: shorthand --------------------------------------------------------------------------

LAYERS = """\
name: chain
inputs:
  image: {shape: [12]}
  label: {shape: [], dtype: int64}
layers:
  input: image
  sizes: [12, 8, 6, 4]
  activation: tanh
  dropout: 0.25
  init: glorot_uniform
  loss: softmax_cross_entropy
  labels: label
outputs: [fc3, loss]
"""

EXPLICIT = """\
name: chain
inputs:
  image: {shape: [12]}
  label: {shape: [], dtype: int64}
nodes:
  fc1: {op: linear, inputs: {x: image}, attrs: {units: 8, in_features: 12, init: glorot_uniform}}
  tanh1: {op: tanh, inputs: {x: fc1}}
  dropout1: {op: dropout, inputs: {x: tanh1}, attrs: {rate: 0.25}}
  fc2: {op: linear, inputs: {x: dropout1}, attrs: {units: 6, in_features: 8, init: glorot_uniform}}
  tanh2: {op: tanh, inputs: {x: fc2}}
  dropout2: {op: dropout, inputs: {x: tanh2}, attrs: {rate: 0.25}}
  fc3: {op: linear, inputs: {x: dropout2}, attrs: {units: 4, in_features: 6, init: glorot_uniform}}
  loss: {op: softmax_cross_entropy, inputs: {logits: fc3, labels: label}}
outputs: [fc3, loss]
"""


def describe(graph):
    return [
        (
            name, node.op.name, node.attrs.model_dump(),
            [(e.role, e.index, e.source) for e in node.edges],
            node.shape, node.param_shapes,
        )
        for name, node in graph.nodes.items()
    ]


@pytest.mark.parametrize(
    "layers_text, explicit_text",
    [
        (LAYERS, EXPLICIT),
        (
            "name: c\ninputs:\n  x: {shape: [5]}\n  t: {shape: [3]}\n"
            "layers: {input: x, sizes: [5, 4, 3], output_activation: sigmoid, loss: mse,"
            " labels: t, loss_attrs: {reduction: sum_per_sample}}\n",
            "name: c\ninputs:\n  x: {shape: [5]}\n  t: {shape: [3]}\nnodes:\n"
            "  fc1: {op: linear, inputs: {x: x}, attrs: {units: 4, in_features: 5}}\n"
            "  relu1: {op: relu, inputs: {x: fc1}}\n"
            "  fc2: {op: linear, inputs: {x: relu1}, attrs: {units: 3, in_features: 4}}\n"
            "  sigmoid: {op: sigmoid, inputs: {x: fc2}}\n"
            "  loss: {op: mse, inputs: {pred: sigmoid, target: t}, attrs: {reduction: sum_per_sample}}\n",
        ),
    ],
    ids=["tanh-dropout-softmax_ce", "relu-sigmoid-mse"],
)
def test_layers_shorthand_expands_to_the_explicit_graph(layers_text, explicit_text):
    short = build_graph(parse_spec(layers_text))
    long = build_graph(parse_spec(explicit_text))
    assert describe(short) == describe(long)
    assert short.outputs == long.outputs
    # the same graph, so the same initial parameters for the same seed
    a, b = Model(short, seed=3, dtype="float64"), Model(long, seed=3, dtype="float64")
    assert a.param_names == b.param_names
    assert (a.flat_params == b.flat_params).all()


def test_layers_default_output_is_the_last_node():
    spec = parse_spec(LAYERS.replace("outputs: [fc3, loss]\n", ""))
    assert spec.output_names() == ["loss"]
    assert list(spec.all_nodes()) == ["fc1", "tanh1", "dropout1", "fc2", "tanh2", "dropout2", "fc3", "loss"]


# -- --set overrides ----------------------------------------------------------------------------


def test_overrides_are_parsed_as_yaml_and_validated():
    path = SPECS[0].parent / "seed-mse.yaml"
    spec = load_spec(
        path,
        overrides=[
            "train.optimizer.lr=0.5",
            "train.optimizer.nesterov=true",
            "train.optimizer.momentum=0.9",
            "train.schedule.1.lr=1e-4",
            "layers.sizes=[784, 32, 16, 10]",
            "description=hello world",
        ],
    )
    assert spec.train.optimizer.lr == 0.5
    assert spec.train.optimizer.nesterov is True
    assert spec.train.schedule.stages[1].lr == 1e-4
    assert spec.layers.sizes == [784, 32, 16, 10]
    assert spec.description == "hello world"
    assert build_graph(spec).nodes["fc1"].shape == (32,)
    assert load_spec(path).train.optimizer.lr == 0.01  # the file is untouched


def test_apply_override_creates_mappings_and_indexes_lists():
    data = {"a": [1, {"b": 2}]}
    apply_override(data, "x.y.z=[1, 2]")
    apply_override(data, "a.1.b=3")
    apply_override(data, "a.-2=0.5")
    apply_override(data, "s=")
    assert data == {"a": [0.5, {"b": 3}], "x": {"y": {"z": [1, 2]}}, "s": ""}


@pytest.mark.parametrize(
    "item, message",
    [
        ("train.batch_size", "--set expects PATH=VALUE, received 'train.batch_size'"),
        ("=3", "--set expects PATH=VALUE"),
        ("train.schedule.5.lr=1", "'5' is not an index of a list of 2 items"),
        ("name.x=1", "'name' is a str, not a mapping"),
    ],
)
def test_malformed_overrides(item, message):
    with pytest.raises(SpecError) as info:
        load_spec(SPECS[0].parent / "seed-mse.yaml", overrides=[item])
    assert message in str(info.value)


def test_bad_override_value_points_at_the_set(write_spec):
    path = write_spec(BASE + "train:\n  optimizer: {type: sgd, lr: 0.1}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides=["train.optimizer.lr=-1"])
    error = info.value
    assert error.file == "--set train.optimizer.lr=-1"
    assert error.line is None
    assert error.path == "train.optimizer.lr"
    assert "received -1" in error.message
    assert str(error).startswith("--set train.optimizer.lr=-1: train.optimizer.lr: ")


def test_unknown_key_from_override_points_at_the_set(write_spec):
    path = write_spec(BASE + "train:\n  optimizer: {type: sgd, lr: 0.1}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides=["train.optimizer.lrr=0.1"])
    assert info.value.file == "--set train.optimizer.lrr=0.1"
    assert "did you mean 'lr'?" in info.value.hint


def test_graph_error_from_override_points_at_the_set(write_spec):
    path = write_spec(BASE)
    with pytest.raises(SpecError) as info:
        build_graph(load_spec(path, overrides=["nodes.fc.attrs.unitz=3"]))
    assert info.value.file == "--set nodes.fc.attrs.unitz=3"
    assert info.value.path == "nodes.fc.attrs.unitz"
    assert "did you mean 'units'?" in info.value.hint
    with pytest.raises(SpecError) as info:
        build_graph(load_spec(path, overrides=["nodes.fc.op=lineer"]))
    assert info.value.file == "--set nodes.fc.op=lineer"
    assert "did you mean 'linear'?" in info.value.hint


def test_error_elsewhere_still_points_at_the_file(write_spec):
    text = BASE.replace("logits: fc", "logits: fcc")
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        build_graph(load_spec(path, overrides=["nodes.fc.attrs.units=3"]))
    assert info.value.file == str(path)
    assert info.value.line == line_of(text, "logits: fcc")


def test_overrides_revalidate_a_loaded_file(write_spec):
    path = write_spec(BASE + "train:\n  batch_size: 8\n")
    changed = load_spec(path, overrides=["train.batch_size=16"])
    assert changed.train.batch_size == 16 and load_spec(path).train.batch_size == 8
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides=["train.batch_size=0"])
    assert info.value.file == "--set train.batch_size=0"


# -- a typo in a required key is an unknown key, not a missing one ------------------------------


def test_typo_in_a_required_attribute_says_did_you_mean(error_of):
    text = BASE.replace("      units: 10\n", "      unitz: 10\n")
    error = error_of(text)
    assert error.path == "nodes.fc.attrs.unitz"
    assert error.line == line_of(text, "unitz")
    assert error.message == "op 'linear' has no attribute 'unitz'"
    assert error.hint.startswith("did you mean 'units'? its attributes: units, ")


def test_typo_in_a_required_top_level_key_says_did_you_mean(error_of):
    text = BASE.replace("inputs:\n  x:", "inputz:\n  x:")
    error = error_of(text)
    assert error.path == "inputz"
    assert error.line == line_of(text, "inputz")
    assert error.message == "unknown key 'inputz'"  # not "(+1 more error)": the missing twin is the same typo
    assert error.hint.startswith("did you mean 'inputs'?")


def test_typo_in_a_stage_key_says_did_you_mean(error_of):
    text = BASE + "train:\n  schedule:\n    - epoch: 3\n      lr: 0.1\n"
    error = error_of(text)
    assert error.path == "train.schedule.0.epoch"
    assert error.line == line_of(text, "epoch: 3")
    assert error.message == "unknown key 'epoch'"
    assert error.hint.startswith("did you mean 'epochs'? allowed keys: epochs, lr")


def test_a_missing_key_without_a_typo_is_still_missing(error_of):
    text = BASE.replace("      units: 10\n", "      bias: false\n")
    error = error_of(text)
    assert error.path == "nodes.fc.attrs.units"
    assert error.message == "op 'linear' needs attribute 'units'"


# -- duplicate keys -----------------------------------------------------------------------------

DUPLICATE_NODE = BASE + "  fc:\n    op: relu\n    inputs:\n      x: x\n"


@pytest.mark.parametrize(
    "text, path, first, second",
    [
        (DUPLICATE_NODE, "nodes.fc", "  fc:", "    op: relu"),
        (BASE + "name: again\n", "name", "name: t", "name: again"),
        (BASE.replace("    op: linear\n", "    op: linear\n    op: relu\n"), "nodes.fc.op", "op: linear", "op: relu"),
        ("name: t\ninputs: {x: {shape: [2],\n  shape: [3]}}\nnodes: {r: {op: relu, inputs: {x: x}}}\n",
         "inputs.x.shape", "shape: [2]", "shape: [3]"),
    ],
    ids=["node", "top-level", "node-key", "flow-mapping"],
)
def test_duplicate_yaml_key_is_an_error_at_the_second(write_spec, text, path, first, second):
    spec_file = write_spec(text)
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    error = info.value
    key = path.rsplit(".", 1)[-1]
    assert error.message == f"duplicate key '{key}' (first at line {line_of(text, first)})"
    assert error.path == path
    assert error.file == str(spec_file)
    # the second occurrence (for the node, the line of the second `fc:`, just above its op)
    assert error.line == line_of(text, second) - (1 if key == "fc" else 0)


def test_duplicate_json_key_is_an_error_at_the_second(write_spec):
    text = (
        '{\n  "name": "t",\n  "inputs": {"x": {"shape": [2]}},\n  "nodes": {\n'
        '    "fc1": {"op": "relu", "inputs": {"x": "x"}},\n'
        '    "fc1": {"op": "tanh", "inputs": {"x": "x"}}\n  }\n}\n'
    )
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(text, "spec.json"))
    assert info.value.message == "duplicate key 'fc1' (first at line 5)"
    assert info.value.path == "nodes.fc1"
    assert info.value.line == 6


def test_yaml_merge_key_is_not_a_duplicate():
    spec = parse_spec(
        "name: t\ninputs: {x: {shape: [2]}}\n"
        "nodes:\n  a: &node {op: relu, inputs: {x: x}}\n  b: {<<: *node, op: tanh}\n"
    )
    assert spec.nodes["b"].op == "tanh" and spec.nodes["b"].inputs == {"x": "x"}


# -- JSON with tabs -----------------------------------------------------------------------------


def test_tab_indented_json_errors_have_lines(write_spec):
    data = yaml.safe_load(BASE)
    data["train"] = {"optimizer": {"type": "sgd", "momentm": 0.9}}
    text = json.dumps(data, indent="\t")
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(text, "spec.json"))
    assert info.value.path == "train.optimizer.momentm"
    assert info.value.line == line_of(text, '"momentm"')


# -- train section rules ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1.5", "-3", "abc", "true", "[1]"])
def test_validation_says_what_it_takes(error_of, value):
    text = BASE + f"train:\n  data:\n    validation: {value}\n"
    error = error_of(text)
    assert error.path == "train.data.validation"
    assert error.line == line_of(text, "validation:")
    received = repr(yaml.safe_load(value))
    assert error.message == (
        f"validation must be a count >= 0, a fraction in (0, 1), or {{file: ...}}; received {received}"
    )
    assert "validation: 0.1" in error.hint


@pytest.mark.parametrize("value, expected", [("5000", 5000), ("5000.0", 5000), ("0.25", 0.25), ("0", 0)])
def test_validation_counts_and_fractions(value, expected):
    spec = parse_spec(BASE + f"train:\n  keep_best: null\n  data:\n    validation: {value}\n")
    assert spec.train.data.validation == expected
    assert type(spec.train.data.validation) is type(expected)


def test_unknown_key_in_a_validation_file(error_of):
    text = BASE + "train:\n  data:\n    validation: {fiel: v.npz}\n"
    error = error_of(text)
    assert error.path == "train.data.validation.fiel"
    assert "did you mean 'file'?" in error.hint


def test_early_stopping_needs_a_validation_split(error_of):
    text = BASE + "train:\n  data:\n    validation: 0\n  keep_best: {patience: 3}\n"
    error = error_of(text)
    assert error.path == "train.data.validation"
    assert error.line == line_of(text, "validation: 0")
    assert error.message.startswith("early stopping needs a validation split, but validation is 0")
    assert "received" not in error.message
    assert "set keep_best: null or hold out a validation split" in error.hint


def test_keep_best_needs_a_validation_split(error_of, write_spec):
    text = BASE + "train:\n  data:\n    validation: 0\n"  # keep_best is on by default
    error = error_of(text)
    assert error.path == "train.data.validation"
    assert "needs a validation split, but validation is 0" in error.message
    assert error.hint.startswith("set keep_best: null or hold out a validation split")
    # from --set: reported against it
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(BASE + "train: {batch_size: 8}\n"), overrides=["train.data.validation=0"])
    assert info.value.file == "--set train.data.validation=0"
    # fine without keep_best, or with a validation file
    assert parse_spec(text + "  keep_best: null\n").train.keep_best is None
    assert parse_spec(BASE + "train:\n  data:\n    validation: {file: v.npz}\n").train.keep_best


# -- --set attribution --------------------------------------------------------------------------

SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"


def test_set_under_the_error_path_is_blamed():
    # seed-softmax's piecewise stages add up to 30: the rule is about `train`, set by train.epochs
    with pytest.raises(SpecError) as info:
        load_spec(SPECS_DIR / "seed-softmax.yaml", overrides=["train.epochs=1"])
    error = info.value
    assert error.file == "--set train.epochs=1" and error.line is None
    assert error.path == "train"
    assert error.message == "epochs is 1 but the schedule's stages add up to 30"  # no dump of train
    assert "drop `epochs`" in error.hint
    assert '--set "train.schedule=[{epochs: 1, lr: 0.01}]"' in error.hint


def test_set_on_the_layers_shorthand_is_blamed_for_its_nodes():
    with pytest.raises(ShapeError) as info:
        build_graph(load_spec(SPECS_DIR / "seed-softmax.yaml", overrides=["layers.sizes.0=100"]))
    error = info.value
    assert error.path == "nodes.fc1"
    assert error.file == "--set layers.sizes.0=100"
    assert str(error).startswith("--set layers.sizes.0=100: nodes.fc1: ")


def test_set_that_creates_a_node_is_blamed(write_spec):
    for path in (SPECS_DIR / "seed-softmax.yaml", write_spec(BASE)):
        with pytest.raises(SpecError) as info:
            build_graph(load_spec(path, overrides=["nodes.fc9.op=relu"]))
        assert info.value.file == "--set nodes.fc9.op=relu"
        assert info.value.path == "nodes.fc9.inputs"


def test_layers_node_error_without_set_points_at_layers():
    spec = load_spec(SPECS_DIR / "seed-softmax.yaml", overrides=["train.batch_size=8"])
    error = spec.error(("nodes", "fc2"), "boom")
    assert error.file == str(SPECS_DIR / "seed-softmax.yaml")
    assert error.line == line_of((SPECS_DIR / "seed-softmax.yaml").read_text(), "layers:")


# -- locating errors raised after loading -------------------------------------------------------


def test_locate_fills_in_file_and_line(write_spec):
    text = BASE + "train:\n  data:\n    dataset: npz\n    preprocess:\n      flatten: false\n"
    path = write_spec(text)
    spec = load_spec(path)
    error = spec.locate(DataError("the examples are images", path="train.data.preprocess.flatten"))
    assert isinstance(error, DataError)
    assert (error.file, error.line) == (str(path), line_of(text, "flatten"))
    # a key the file does not have: the deepest one it has
    error = spec.locate(DataError("no such file", path="train.data.path"))
    assert error.line == line_of(text, "  data:")
    # already located, or no path: unchanged
    located = DataError("x", path="train.data", file="other.yaml", line=3)
    assert spec.locate(located) is located and (located.file, located.line) == ("other.yaml", 3)
    bare = DataError("x")
    assert spec.locate(bare).file is None and bare.line is None


def test_locate_names_the_set(write_spec):
    spec = load_spec(write_spec(BASE), overrides=["train.data.preprocess.flatten=false"])
    error = spec.locate(DataError("the examples are images", path="train.data.preprocess.flatten"))
    assert error.file == "--set train.data.preprocess.flatten=false" and error.line is None
    assert str(error).startswith("--set train.data.preprocess.flatten=false: train.data.preprocess.flatten: ")


def test_locate_a_layers_node(write_spec):
    spec = load_spec(SPECS_DIR / "seed-softmax.yaml")
    error = spec.locate(GraphnetError("bad", path="nodes.fc1"))
    assert error.line == line_of((SPECS_DIR / "seed-softmax.yaml").read_text(), "layers:")


# -- the package --------------------------------------------------------------------------------


def test_spec_package_imports_nothing_above_it():
    package = Path(__file__).resolve().parents[1] / "graphnet" / "spec"
    allowed = {"graphnet.errors", "graphnet.spec"}
    sources = sorted(package.glob("*.py"))
    assert {s.name for s in sources} >= {"__init__.py", "models.py", "load.py", "overrides.py"}
    for source in sources:
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ["graphnet", "spec"][: 2 - (node.level - 1)]  # `.` is graphnet.spec
                target = ".".join(base + ([node.module] if node.module else []))
                assert any(target == a or target.startswith(a + ".") for a in allowed), (source.name, target)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                for name in names:
                    assert not (name or "").startswith("graphnet") or name.startswith(tuple(allowed))


def test_did_you_mean():
    assert did_you_mean("relux", ["relu", "tanh"]) == "did you mean 'relu'? known: relu, tanh"
    assert did_you_mean("zzz", ["relu", "tanh"], "known ops") == "known ops: relu, tanh"


# -- syntax errors at the line of the mistake, in plain words ------------------------------------


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("name: t\ninputs: {x: {shape: [4]}\nnodes:\n  a: {op: relu}\n", 2,
         "invalid YAML: a '{' opened at line 2 is never closed"),
        ("name: t\nouts: [a, b\nnodes: {}\n", 2, "invalid YAML: a '[' opened at line 2 is never closed"),
        ("name: t\ninputs: {\n  x: {shape: [4],\n  y: {shape: []}\n}\nnodes: {}\n", 3,
         "invalid YAML: a '{' opened at line 3 is never closed"),
        ("name: t\ndescription: 'abc\nnodes: {}\n", 2, "invalid YAML: a quote opened at line 2 is never closed"),
        ("name: t\ninputs\nnodes: {}\n", 2, "invalid YAML: a key without ':' after it"),
        ("name: t\ninputs:\n\tx: 1\n", 3, "invalid YAML: a tab character; YAML indents with spaces only"),
        ("name: t\nlist:\n  - 1\n - 2\n", 4, "invalid YAML: this line is not indented like the keys of the mapping at line 1"),
        ('{\n  "name": "t",\n  "inputs": {"x": {"shape": [4]}},\n}\n', 3, "invalid JSON: trailing comma before '}'"),
        ('{\n  "outputs": [\n    "a",\n    "b",\n  ]\n}\n', 4, "invalid JSON: trailing comma before ']'"),
        ('{\n  "name": "t",\n  "inputs": {"x": {"shape": [4]},\n  "nodes": {"a": {"op": "relu"}}\n}\n', 3,
         "invalid JSON: a '{' opened at line 3 is never closed"),
        ('{\n  "name": "t"\n  "nodes": {}\n}\n', 2, "invalid JSON: missing ',' between two items"),
        ('{\n  "name": "t",\n  "nodes": {}\n}\n}\n', 5, "invalid JSON: more text after the end"),
    ],
    ids=["flow-map", "flow-list", "flow-multiline", "quote", "colon", "tab", "indent",
         "json-trailing-comma-object", "json-trailing-comma-list", "json-unclosed", "json-comma", "json-extra"],
)
def test_syntax_errors_point_at_the_mistake(write_spec, text, line, message):
    name = "spec.json" if text.startswith("{") else "spec.yaml"
    path = write_spec(text, name)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    error = info.value
    assert (error.file, error.line) == (str(path), line)
    assert error.message.startswith(message), error.message
    assert str(error).startswith(f"{path}:{line}: invalid ")


# -- all errors of a file at once -----------------------------------------------------------------


def test_two_typos_and_a_bad_value_are_reported_together(error_of):
    text = BASE.replace("  x:\n    shape: [100]\n", "  x:\n    shap: [100]\n") + (
        "train:\n  batchsize: 8\n  optimizer:\n    type: sgd\n    lr: -1\n"
    )
    error = error_of(text)
    found = [(e.path, e.line, e.message) for e in error.all()]
    assert found == [
        ("inputs.x.shap", line_of(text, "shap:"), "unknown key 'shap'"),  # and no "missing 'shape'"
        ("train.batchsize", line_of(text, "batchsize"), "unknown key 'batchsize'"),
        ("train.optimizer.lr", line_of(text, "lr: -1"), "Input should be greater than 0; received -1"),
    ]
    assert error.hint.startswith("did you mean 'shape'?")
    assert error.more[0].hint.startswith("did you mean 'batch_size'?")
    assert all(e.file == error.file for e in error.all())


def test_a_typo_in_a_required_key_is_one_error(error_of):
    text = BASE.replace("  x:\n    shape: [100]\n", "  x:\n    shap: [100]\n")
    error = error_of(text)
    assert (error.path, error.message, error.more) == ("inputs.x.shap", "unknown key 'shap'", [])


def test_a_value_fitting_no_member_of_a_union_is_one_error(error_of):
    text = BASE.replace("      x: x\n", "      x: 5\n")  # a role takes a name or a list of names
    error = error_of(text)
    assert error.path == "nodes.fc.inputs.x"
    assert error.more == []


def test_errors_from_the_file_come_before_those_from_a_set(write_spec):
    path = write_spec(BASE + "train:\n  seed: -1\n")
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides=["train.batch_size=0"])
    assert [e.file for e in info.value.all()] == [str(path), "--set train.batch_size=0"]


# -- --set into a name the spec does not have -----------------------------------------------------


def test_set_into_a_missing_node_names_it_and_lists_the_nodes():
    with pytest.raises(SpecError) as info:
        load_spec(SPECS_DIR / "skip-mlp.yaml", overrides=["nodes.fc3.attrs.units=5"])
    error = info.value
    assert error.file == "--set nodes.fc3.attrs.units=5"
    assert error.path == "nodes.fc3"
    assert error.message == "there is no node 'fc3'"
    assert error.hint.startswith("its nodes: stem, act0, block, act1, skip, side, act2, joined, logits, loss")
    assert "to add a node, set its op first (--set nodes.fc3.op=...)" in error.hint


def test_set_into_a_node_of_the_layers_shorthand_says_so():
    with pytest.raises(SpecError) as info:
        load_spec(SPECS_DIR / "seed-softmax.yaml", overrides=["nodes.fc1.attrs.units=5"])
    assert info.value.message == "there is no node 'fc1'"
    assert "made by the `layers:` shorthand" in info.value.hint


def test_set_into_layers_of_a_spec_with_nodes_says_it_has_none():
    with pytest.raises(SpecError) as info:
        load_spec(SPECS_DIR / "skip-mlp.yaml", overrides=["layers.dropout=0.3"])
    error = info.value
    assert (error.file, error.path) == ("--set layers.dropout=0.3", "layers")
    assert error.message == "the spec has no `layers` section (it declares its graph with `nodes:`)"


def test_set_into_a_missing_input_did_you_mean(write_spec):
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(BASE), overrides=["inputs.xx.dtype=float64"])
    assert info.value.message == "there is no input 'xx'"
    assert info.value.hint.startswith("did you mean 'x'? its inputs: x, y")


def test_set_can_still_add_a_node_or_an_input(write_spec):
    spec = load_spec(
        write_spec(BASE),
        overrides=["inputs.z.shape=[3]", "nodes.r.op=relu", "nodes.r.inputs.x=fc", "nodes.s={op: tanh, inputs: {x: r}}"],
    )
    assert spec.inputs["z"].shape == [3]
    assert build_graph(spec).order == ["fc", "loss", "r", "s"]


# -- defaults and bounds --------------------------------------------------------------------------


def test_validation_defaults_to_the_automatic_split():
    from graphnet.spec import DataSpec
    from graphnet.spec.models import AUTO_VALIDATION_CAP, AUTO_VALIDATION_PERCENT

    assert DataSpec().validation is None
    assert parse_spec(BASE + "train: {}\n").train.data.validation is None
    assert parse_spec(BASE + "train:\n  data:\n    validation: null\n").train.data.validation is None
    assert (AUTO_VALIDATION_PERCENT, AUTO_VALIDATION_CAP) == (10, 5000)
    description = DataSpec.model_json_schema()["properties"]["validation"]["description"]
    assert "10% of the training examples, at most 5,000" in description


def test_spec_max_dim_is_the_ops_max_dim():
    from graphnet.op import MAX_DIM
    from graphnet.spec.models import MAX_DIM as SPEC_MAX_DIM

    assert SPEC_MAX_DIM == MAX_DIM  # the spec layer cannot import graphnet.op: kept equal here


@pytest.mark.parametrize(
    "train, path, fragment",
    [
        ("epochs: 100001", "train.epochs", "less than or equal to 100000"),
        ("batch_size: 1048577", "train.batch_size", "less than or equal to 1048576"),
        ("seed: 4294967296", "train.seed", "less than or equal to 4294967295"),
        ("data: {limit: 1000000001}", "train.data.limit", "less than or equal to 1000000000"),
        ("data: {validation: 1000000001}", "train.data.validation", "less than or equal to 1000000000"),
        ("keep_best: {patience: 100001}", "train.keep_best.patience", "less than or equal to 100000"),
        ("schedule: {type: step, step_epochs: 100001}", "train.schedule.step_epochs", "less than or equal to 100000"),
        ("augment: {image_shape: [28, 16777217]}", "train.augment.image_shape.1", "less than or equal to 16777216"),
    ],
)
def test_train_integers_have_upper_bounds(error_of, train, path, fragment):
    error = error_of(BASE + f"train: {{{train}}}\n")
    assert error.path == path
    assert fragment in error.message


def test_bounds_admit_the_largest_value(write_spec):
    text = BASE + (
        "train: {epochs: 100000, batch_size: 1048576, seed: 4294967295, "
        "data: {limit: 1000000000, validation: 1000000000}}\n"
    )
    spec = load_spec(write_spec(text))
    assert (spec.train.epochs, spec.train.batch_size, spec.train.seed) == (100000, 1048576, 4294967295)


# -- the parser against PyYAML's own loader -------------------------------------------------------

TRICKY_YAML = [
    "a: 1\nb: -2\nc: 0x1f\nd: 0o17\ne: 1_000\nf: 1.5e3\ng: .inf\nh: -.inf\ni: ~\nj: null\nk: true\nl: no\n",
    "a: '1'\nb: \"2\"\nc: !!str 3\nd: !!int '4'\ne: !!float 5\nf: 2001-12-14\ng: '@x'\nh: \"caf\\u00e9\"\n",
    "base: &b {op: relu, inputs: {x: x}}\nn1: {<<: *b, op: tanh}\nn2: *b\n",
    "a: &a {x: 1, y: 2}\nb: &b {x: 3, z: 4}\nc: {<<: [*a, *b], w: 5}\nd: {<<: *a, <<: *b}\n",
    "list:\n  - &item {k: v}\n  - *item\n  - [1, [2, [3]]]\n  - \n  - ''\n",
    "text: |\n  line one\n  line two\nfolded: >\n  a\n  b\nempty: {}\nnone: []\n",
    "? complex key\n: value\n'quoted key': 1\n\"dq\": 2\n1: int key\n",
]


@pytest.mark.parametrize("text", [p.read_text() for p in SPECS] + TRICKY_YAML)
def test_the_parser_reads_yaml_as_pyyaml_does(text):
    from graphnet.spec.text import parse_text

    data, _ = parse_text(text, None)
    expected = yaml.safe_load(text)
    assert data == expected
    assert repr(data) == repr(expected)  # the same types and the same key order


def reference_lines(text: str) -> dict[str, int]:
    """The line of every key and item, from PyYAML's node tree (aliased subtrees skipped)."""
    lines: dict[str, int] = {}
    stack = [("", yaml.compose(text, Loader=yaml.SafeLoader))]
    while stack:
        path, node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = f"{path}.{key.value}" if path else key.value
                lines[child] = key.start_mark.line + 1
                stack.append((child, value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = f"{path}.{index}" if path else str(index)
                lines[child] = item.start_mark.line + 1
                stack.append((child, item))
    return lines


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_lines_of_yaml_and_json_match_pyyamls_node_tree(path, monkeypatch):
    from graphnet.spec import text as spec_text

    text = path.read_text()
    expected = reference_lines(text)
    assert spec_text.parse_text(text, None)[1] == expected
    # JSON: compared with the YAML composer over the same JSON text (JSON is YAML here)
    as_json = json.dumps(yaml.safe_load(text), indent=2)
    assert spec_text.parse_text(as_json, None)[1] == reference_lines(as_json)
    # the pure-Python loader (PyYAML without libyaml) gives the same data and lines
    monkeypatch.setattr(spec_text, "_LOADER", yaml.SafeLoader)
    assert spec_text.parse_text(text, None) == (yaml.safe_load(text), expected)


def test_an_alias_is_a_copy_so_a_set_changes_one_place(write_spec):
    text = BASE.replace("    attrs:\n      units: 10\n", "    attrs: &attrs\n      units: 10\n") + (
        "  fc2:\n    op: linear\n    inputs:\n      x: fc\n    attrs: *attrs\n"
    )
    spec = load_spec(write_spec(text), overrides=["nodes.fc2.attrs.units=4"])
    assert (spec.nodes["fc"].attrs["units"], spec.nodes["fc2"].attrs["units"]) == (10, 4)
