"""ONNX export, proven by execution: every exported file runs in onnxruntime at batch sizes 1, 7
and 64 and matches graphnet's own forward (evaluation mode) within 1e-5. Covered: every built-in
op that can appear in an inference graph (a table checked against the registry), the example
specs, the recorded preprocessing (against the same steps done by hand in numpy), the swish
plugin's mapping, and the errors: an op without a mapping, a broken mapping, losses, bad records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from graphnet import GraphnetError, Model, Spec, load_spec, parse_spec  # noqa: E402
from graphnet.errors import OpError  # noqa: E402
from graphnet.op import Op  # noqa: E402
from graphnet.export.onnx import DEFAULT_OPSET, export_onnx  # noqa: E402
from graphnet.registry import OpSource, Registry, default_registry  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted(p for p in (REPO / "specs").glob("*.yaml") if not p.stem.endswith("-sweep"))
BATCH_SIZES = (1, 7, 64)
TOLERANCE = 1e-5  # max abs difference, float32


# -- helpers ------------------------------------------------------------------------------------


def session(data: bytes):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # tiny graphs; the test machine is shared
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def randomized(spec, seed: int = 0, registry=None) -> Model:
    """A float32 model with random weights (graphnet's initializers) and random biases (which
    start at zero): every parameter takes part in the comparison. So does the op state (batch
    norm's running statistics, exported as initializers): what starts at zero becomes random,
    what starts at one (a variance) is scaled by a random positive factor."""
    model = Model.from_spec(spec, seed=seed, registry=registry)
    rng = np.random.default_rng(seed)
    for name, value in model.params.items():
        if not value.any():
            model.set_param(name, rng.standard_normal(value.shape) * 0.1)
    for name, value in model.state.items():
        if value.any():
            value *= rng.uniform(0.5, 2.0, value.shape).astype(value.dtype)
        else:
            value[...] = rng.standard_normal(value.shape) * 0.5
    return model


def random_batch(model: Model, names, n: int, rng) -> dict[str, np.ndarray]:
    """Standard normals (negatives included) for float inputs; 0s and 1s for integer ones."""
    batch = {}
    for name in names:
        shape, dtype = (n, *model.graph.inputs[name]), model.graph.input_dtypes[name]
        if dtype.startswith("float"):
            batch[name] = rng.standard_normal(shape).astype(np.float32)
        else:
            batch[name] = rng.integers(0, 2, size=shape).astype(dtype)
    return batch


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def max_diff(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def assert_runs_like_graphnet(model: Model, data: bytes, outputs: list[str], seed: int = 0) -> None:
    """The exported file against model.forward (evaluation) at every batch size."""
    run = session(data)
    input_names = [i.name for i in run.get_inputs()]
    assert [o.name for o in run.get_outputs()] == outputs
    rng = np.random.default_rng(seed)
    for n in BATCH_SIZES:
        batch = random_batch(model, input_names, n, rng)
        got = run.run(outputs, batch)
        expected = model.forward(batch, outputs, training=False)
        for name, value in zip(outputs, got):
            assert value.dtype == np.float32
            assert max_diff(value, expected[name]) <= TOLERANCE, (name, n)


def registry_with(module: str, classes: dict[str, str]) -> Registry:
    """The installed ops plus throwaway ones: op name -> class name in ``module``."""
    installed = default_registry()
    sources = {name: [installed.source(name)] for name in installed.names()}
    for op_name, class_name in classes.items():
        sources[op_name] = [OpSource(op_name, f"{module}:{class_name}", "graphnet-tests")]
    return Registry(sources)


# -- every built-in op --------------------------------------------------------------------------

# Small graphs that together use every built-in op an inference graph can hold; each exports all
# its outputs. The table is checked against the registry below, so a new op needs a row.
OP_GRAPHS = {
    "dense": """
        name: dense
        inputs: {x: {shape: [6]}}
        nodes:
          h:  {op: linear, inputs: {x: x}, attrs: {units: 5}}
          nb: {op: linear, inputs: {x: x}, attrs: {units: 4, bias: false}}
          r:  {op: relu, inputs: {x: h}}
          lr: {op: leaky_relu, inputs: {x: h}, attrs: {negative_slope: 0.2}}
          s:  {op: sigmoid, inputs: {x: h}}
          t:  {op: tanh, inputs: {x: nb}}
        outputs: [r, lr, s, t]
    """,
    "normalize": """
        name: normalize
        inputs: {x: {shape: [7]}}
        nodes:
          sm: {op: softmax, inputs: {x: x}}
          ls: {op: log_softmax, inputs: {x: x}}
        outputs: [sm, ls]
    """,
    "shapes": """
        name: shapes
        inputs: {x: {shape: [3, 4]}}
        nodes:
          ba: {op: bias_add, inputs: {x: x}}
          f:  {op: flatten, inputs: {x: ba}}
          r:  {op: reshape, inputs: {x: x}, attrs: {shape: [2, -1]}}
          r3: {op: reshape, inputs: {x: f}, attrs: {shape: [2, 3, 2]}}
        outputs: [f, r, r3]
    """,
    "join": """
        name: join
        inputs: {x: {shape: [3, 4]}, y: {shape: [3, 2]}, z: {shape: [5, 4]}, v: {shape: [2]}, w: {shape: [3]}}
        nodes:
          last:  {op: concat, inputs: {xs: [x, y]}}
          first: {op: concat, inputs: {xs: [x, z, x]}, attrs: {axis: 0}}
          vec:   {op: concat, inputs: {xs: [v, w]}, attrs: {axis: 0}}
          sum:   {op: add, inputs: {a: x, b: x}}
          drop:  {op: dropout, inputs: {x: sum}, attrs: {rate: 0.5}}
        outputs: [last, first, vec, drop]
    """,
    "matmul": """
        name: matmul
        inputs: {a: {shape: [3, 4]}, b: {shape: [4, 5]}, v: {shape: [4]}}
        nodes:
          mm: {op: matmul, inputs: {a: a, b: b}}
          mv: {op: matmul, inputs: {a: v, b: b}}
        outputs: [mm, mv]
    """,
}


def test_the_table_covers_every_builtin_op_but_the_losses():
    registry = default_registry()
    builtins = {name for name in registry.names() if registry.source(name).distribution == "graphnet"}
    losses = {name for name in builtins if registry.get(name).reduces_batch}
    used = {node.op for text in OP_GRAPHS.values() for node in parse_spec(text).all_nodes().values()}
    assert used == builtins - losses
    assert losses == {"cross_entropy", "mse", "softmax_cross_entropy"}


@pytest.mark.parametrize("name", sorted(OP_GRAPHS))
def test_builtin_ops_run_in_onnxruntime_like_graphnet(name):
    spec = parse_spec(OP_GRAPHS[name])
    model = randomized(spec)
    data = export_onnx(model, outputs=spec.outputs)
    assert_runs_like_graphnet(model, data, spec.outputs)


def test_the_graph_keeps_graphnet_names_and_a_dynamic_batch_axis():
    spec = parse_spec(OP_GRAPHS["dense"])
    proto = onnx.load_from_string(export_onnx(randomized(spec), outputs=["r", "t"]))
    assert proto.opset_import[0].version == DEFAULT_OPSET
    assert [i.name for i in proto.graph.input] == ["x"]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 6]
    assert {i.name for i in proto.graph.initializer} >= {"h.w", "h.b", "nb.w"}
    tensors = {node.output[0] for node in proto.graph.node}
    assert {"h", "nb", "r", "t"} <= tensors  # each node's tensor carries the node's name
    assert "s" not in tensors  # only what the outputs need


# -- every registered op with a mapping, plugins included, through its own examples -------------


def ops_with_a_mapping() -> list[str]:
    registry = default_registry()
    names = []
    for name in registry.names():
        try:
            op = registry.get(name)
        except OpError:
            continue  # a broken plugin is test_registry's business
        if not op.reduces_batch and type(op).onnx is not Op.onnx:
            names.append(name)
    return names


def one_node_spec(op_name: str, example) -> Spec:
    """A graph holding one node of the op, with the example's attributes and per-sample shapes."""
    inputs, roles = {}, {}
    for role, value in example.inputs.items():
        arrays = value if isinstance(value, list) else [value]
        names = [f"in_{role}_{index}" for index in range(len(arrays))]
        for name, array in zip(names, arrays):
            array = np.asarray(array)
            dtype = "float32" if array.dtype.kind == "f" else "int64"
            inputs[name] = {"shape": list(array.shape[1:]), "dtype": dtype}
        roles[role] = names if isinstance(value, list) else names[0]
    node = {"op": op_name, "inputs": roles, "attrs": example.attrs}
    return parse_spec(json.dumps({"name": "one", "inputs": inputs, "nodes": {"y": node}, "outputs": ["y"]}))


@pytest.mark.parametrize("name", ops_with_a_mapping())
def test_every_mapping_matches_the_ops_own_examples(name):
    op = default_registry().get(name)
    cases = [example for example in op.examples(np.random.default_rng(0)) if not example.training]
    assert cases, f"op '{name}' has no evaluation-mode example to check its mapping with"
    for example in cases:
        model = randomized(one_node_spec(name, example))
        assert_runs_like_graphnet(model, export_onnx(model, outputs=["y"]), ["y"])


# -- the example specs --------------------------------------------------------------------------


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_example_specs_export_their_prediction(path):
    spec = load_spec(path)
    model = randomized(spec, seed=1)
    run = session(export_onnx(model))
    loss = model.graph.nodes[spec.train.loss]
    predict = spec.train.predict or loss.edges[0].source
    logits = loss.edges[0].role == "logits"
    assert [i.name for i in run.get_inputs()] == ["image"]  # never the labels
    assert [o.name for o in run.get_outputs()] == [predict] + (["probabilities"] if logits else [])
    rng = np.random.default_rng(2)
    for n in BATCH_SIZES:
        x = rng.standard_normal((n, 784)).astype(np.float32)
        got = run.run(None, {"image": x})
        expected = model.forward({"image": x}, [predict], training=False)[predict]
        assert max_diff(got[0], expected) <= TOLERANCE
        if logits:
            assert max_diff(got[1], softmax(expected.astype(np.float64))) <= TOLERANCE


def test_dropout_is_left_out_of_the_exported_model():
    model = randomized(load_spec(REPO / "specs" / "mnist-mlp.yaml"))
    assert any(node.op.name == "dropout" for node in model.graph.nodes.values())
    proto = onnx.load_from_string(export_onnx(model))
    ops = [node.op_type for node in proto.graph.node]
    assert "Dropout" not in ops and ops.count("Identity") == 2  # the two dropout layers


def test_other_opsets_export_too():
    spec = parse_spec(OP_GRAPHS["matmul"])
    model = randomized(spec)
    for opset in (13, 17):
        data = export_onnx(model, outputs=spec.outputs, opset=opset)
        assert onnx.load_from_string(data).opset_import[0].version == opset
        assert_runs_like_graphnet(model, data, spec.outputs)


# -- the recorded preprocessing -----------------------------------------------------------------

MNIST_RECORD = {
    "input": "image", "raw_shape": [28, 28], "raw_dtype": "uint8",
    "scale": 255.0, "mean": 0.1307, "std": 0.3081, "flatten": True,
    "labels": {"input": "label", "one_hot": False, "classes": 10, "names": None},
}


def by_hand(raw: np.ndarray, record: dict) -> np.ndarray:
    """graphnet's preprocessing of raw uint8 images, step by step in float32."""
    x = raw.astype(np.float32)
    x /= np.float32(record["scale"])
    x -= np.float32(record["mean"])
    x /= np.float32(record["std"])
    return x.reshape(len(x), -1)


def test_the_exported_model_takes_raw_images_and_preprocesses_them():
    model = randomized(load_spec(REPO / "specs" / "mnist-mlp.yaml"))
    run = session(export_onnx(model, preprocess=MNIST_RECORD))
    (raw_input,) = run.get_inputs()
    assert raw_input.name == "image" and raw_input.shape == ["N", 28, 28]
    rng = np.random.default_rng(3)
    for n in BATCH_SIZES:
        raw = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        logits, probs = run.run(None, {"image": raw.astype(np.float32)})  # uint8 given as float32
        expected = model.forward({"image": by_hand(raw, MNIST_RECORD)}, ["fc3"])["fc3"]
        assert max_diff(logits, expected) <= TOLERANCE
        assert max_diff(probs, softmax(expected.astype(np.float64))) <= TOLERANCE


def test_scale_only_and_no_preprocessing_at_all():
    model = randomized(load_spec(REPO / "specs" / "seed-mse.yaml"))
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 256, size=(7, 784)).astype(np.float32)
    scaled = export_onnx(model, preprocess={"input": "image", "raw_shape": [784], "scale": 255.0})
    (got,) = session(scaled).run(None, {"image": raw})
    expected = model.forward({"image": raw / np.float32(255)}, ["fc3"])["fc3"]
    assert max_diff(got, expected) <= TOLERANCE
    plain = export_onnx(model, preprocess={"input": "image", "raw_shape": [784], "flatten": True})
    assert [n.op_type for n in onnx.load_from_string(plain).graph.node][0] == "Gemm"


def test_the_record_travels_in_the_metadata():
    model = randomized(load_spec(REPO / "specs" / "mnist-mlp.yaml"))
    proto = onnx.load_from_string(export_onnx(model, preprocess=MNIST_RECORD))
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["graphnet.preprocess"]) == MNIST_RECORD
    assert proto.producer_name == "graphnet"


@pytest.mark.parametrize("change, path, words", [
    ({"raw_shape": [28, 28], "flatten": False}, "preprocess.raw_shape", "input 'image' takes [784]"),
    ({"raw_shape": [27, 28]}, "preprocess.raw_shape", "shape [756] (after flatten)"),
    ({"input": "pixels"}, "preprocess.input", "graph inputs: image, label"),
    ({"std": None}, "preprocess", "mean and std come together"),
    ({"std": 0.0}, "preprocess.std", "greater than 0"),
    ({"raw_dtype": "int16"}, "preprocess.raw_dtype", "'int16'"),
    ({"raw_shape": []}, "preprocess.raw_shape", "at least 1"),
])
def test_a_record_that_does_not_fit_is_an_error(change, path, words):
    model = randomized(load_spec(REPO / "specs" / "mnist-mlp.yaml"))
    with pytest.raises(GraphnetError) as caught:
        export_onnx(model, preprocess={**MNIST_RECORD, **change})
    assert caught.value.path == path
    assert words in str(caught.value)


# -- plugins: the swish example and ops without (or with broken) mappings -----------------------


def test_the_swish_plugin_exports_through_its_own_mapping(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "plugins" / "graphnet-swish"))
    registry = registry_with("graphnet_swish.swish", {"swish": "Swish"})
    spec = parse_spec("""
        name: swishy
        inputs: {x: {shape: [6]}}
        nodes:
          h: {op: linear, inputs: {x: x}, attrs: {units: 5}}
          s: {op: swish, inputs: {x: h}, attrs: {beta: 1.7}}
          g: {op: swish, inputs: {x: s}}
        outputs: [s, g]
    """)
    model = randomized(spec, registry=registry)
    data = export_onnx(model, outputs=["s", "g"])
    assert_runs_like_graphnet(model, data, ["s", "g"])
    ops = [node.op_type for node in onnx.load_from_string(data).graph.node]
    assert ops == ["Gemm", "Mul", "Sigmoid", "Mul", "Mul", "Sigmoid", "Mul"]


THROWAWAY = """
from graphnet.op import Op

class Cube(Op):
    \"\"\"y = x ** 3, and no onnx method.\"\"\"
    inputs = ("x",)

    def shape(self, attrs, x):
        return tuple(x)

    def forward(self, attrs, ctx, x):
        return x ** 3, x

    def backward(self, attrs, saved, dy, wants):
        return {"x": 3 * saved ** 2 * dy}

class Crashing(Cube):
    def onnx(self, attrs, b, inputs, params):
        return b.node("Pow", [inputs["x"], b.constant(3.0)], {"alpha": object()})

class NotAName(Cube):
    def onnx(self, attrs, b, inputs, params):
        return 42

class WrongShape(Cube):
    def onnx(self, attrs, b, inputs, params):
        return b.node("Flatten", [inputs["x"]], {"axis": 1})

class FixedBatch(Cube):
    def onnx(self, attrs, b, inputs, params):
        return b.node("Reshape", [inputs["x"], b.constant([5, 3, 4])])

class InvalidNode(Cube):
    def onnx(self, attrs, b, inputs, params):
        return b.node("Relu", [inputs["x"], inputs["x"]])

class Same(Cube):
    def forward(self, attrs, ctx, x):
        return x, None

    def onnx(self, attrs, b, inputs, params):
        return inputs["x"]  # a tensor the mapping did not make: exported through an Identity

class MixedTypes(Cube):
    def onnx(self, attrs, b, inputs, params):
        return b.node("Add", [inputs["x"], b.constant(1)])  # float32 + int64
"""

USES = """
name: plugged
inputs: {x: {shape: [3, 4]}}
nodes:
  pre:  {op: relu, inputs: {x: x}}
  odd:  {op: %s, inputs: {x: pre}}
outputs: [odd]
"""


def plugin_model(make_module, op: str) -> Model:
    module = make_module(THROWAWAY)
    classes = {"cube": "Cube", "crashing": "Crashing", "not_a_name": "NotAName",
               "wrong_shape": "WrongShape", "fixed_batch": "FixedBatch", "invalid_node": "InvalidNode",
               "mixed_types": "MixedTypes", "same": "Same"}
    return Model.from_spec(parse_spec(USES % op), registry=registry_with(module, classes))


def test_an_op_without_a_mapping_is_an_error_naming_it(make_module):
    with pytest.raises(OpError) as caught:
        export_onnx(plugin_model(make_module, "cube"))
    message = str(caught.value)
    assert caught.value.path == "nodes.odd"
    assert "op 'cube' has no ONNX mapping" in message and "node 'odd'" in message
    assert "`onnx` method" in message


def test_a_mapping_may_return_a_tensor_it_did_not_make(make_module):
    model = plugin_model(make_module, "same")
    data = export_onnx(model)
    assert [n.op_type for n in onnx.load_from_string(data).graph.node] == ["Relu", "Identity"]
    assert_runs_like_graphnet(model, data, ["odd"])


@pytest.mark.parametrize("op, words", [
    ("crashing", "ONNX mapping of op 'crashing' failed: "),
    ("not_a_name", "ONNX mapping of op 'not_a_name' returned 42, not a tensor name"),
    ("wrong_shape", "ONNX mapping of op 'wrong_shape' gives shape ['N', 12], graphnet's shape rule ['N', 3, 4]"),
    ("fixed_batch", "ONNX mapping of op 'fixed_batch' gives shape [5, 3, 4]"),
])
def test_a_broken_mapping_is_reported_at_its_node(make_module, op, words):
    with pytest.raises(OpError) as caught:
        export_onnx(plugin_model(make_module, op))
    assert caught.value.path == "nodes.odd"
    assert words in str(caught.value)


def test_an_invalid_onnx_node_is_caught_by_the_checkers(make_module):
    with pytest.raises(OpError) as caught:
        export_onnx(plugin_model(make_module, "invalid_node"))
    assert caught.value.path == "nodes.odd"
    assert "ONNX mapping of op 'invalid_node' made an invalid Relu node: " in str(caught.value)
    assert "has input size 2" in str(caught.value)
    with pytest.raises(OpError) as caught:  # found by check_model's type inference
        export_onnx(plugin_model(make_module, "mixed_types"))
    assert caught.value.path == "nodes.odd"
    assert str(caught.value).startswith("line 6: nodes.odd: the exported ONNX graph is invalid: ")


# -- what is exported, and other errors ---------------------------------------------------------


def test_losses_are_not_exported():
    model = randomized(load_spec(REPO / "specs" / "skip-mlp.yaml"))
    with pytest.raises(OpError) as caught:
        export_onnx(model, outputs=["logits", "loss"])
    assert "node 'loss' is a loss (op softmax_cross_entropy)" in str(caught.value)
    assert "export the node that feeds it, 'logits'" in str(caught.value)


def test_chosen_outputs_and_their_inputs():
    model = randomized(load_spec(REPO / "specs" / "skip-mlp.yaml"))
    run = session(export_onnx(model, outputs=["act2", "joined"]))
    assert [o.name for o in run.get_outputs()] == ["act2", "joined"]
    assert [i.name for i in run.get_inputs()] == ["image"]
    with pytest.raises(GraphnetError, match="cannot export 'label': it is a graph input"):
        export_onnx(model, outputs=["label"])
    with pytest.raises(GraphnetError, match="cannot export 'logit': it is not a node"):
        export_onnx(model, outputs=["logit"])
    with pytest.raises(GraphnetError, match="outputs must be a list of node names"):
        export_onnx(model, outputs=[])


def test_writes_the_file_atomically_and_exports_are_reproducible(tmp_path):
    model = randomized(load_spec(REPO / "specs" / "skip-mlp.yaml"))
    target = tmp_path / "skip.onnx"
    assert export_onnx(model, target) == target
    assert target.read_bytes() == export_onnx(model) == export_onnx(model)
    assert [p.name for p in tmp_path.iterdir()] == ["skip.onnx"]  # no temporary left behind
    assert export_onnx(model, tmp_path / "new" / "skip.onnx").read_bytes() == target.read_bytes()
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(GraphnetError) as info:
        export_onnx(model, tmp_path / "folder.onnx")
    assert str(info.value).startswith(f"{tmp_path / 'folder.onnx'}: cannot write the ONNX file: Is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.onnx", "new", "skip.onnx"]


def test_an_unsupported_opset_is_an_error():
    model = randomized(load_spec(REPO / "specs" / "skip-mlp.yaml"))
    with pytest.raises(GraphnetError, match="ONNX opset 12 is not supported"):
        export_onnx(model, opset=12)


def test_without_onnx_installed_the_error_says_what_to_install(monkeypatch):
    model = randomized(load_spec(REPO / "specs" / "skip-mlp.yaml"))
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    with pytest.raises(GraphnetError) as caught:
        export_onnx(model)
    assert "needs the onnx package" in str(caught.value)
    assert "pip install 'graphnet[onnx]'" in str(caught.value)


def test_only_an_export_imports_onnx(run_python):
    # the layering: ops, graph, model and training never import onnx; the exporter only when run
    result = run_python("""
        import sys
        import numpy as np
        from graphnet import Model, load_spec
        import graphnet.export.onnx as exporter
        model = Model.from_spec(load_spec("specs/skip-mlp.yaml"))
        model.forward({"image": np.zeros((2, 784), np.float32)}, ["logits"])
        assert "onnx" not in sys.modules, "imported before any export"
        exporter.export_onnx(model)
        assert "onnx" in sys.modules
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
