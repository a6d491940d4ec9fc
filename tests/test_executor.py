"""The executor and the model: forward/backward over the plan, fan-out accumulation, gradients
asked only where needed, checks on what an op's backward returns, dtypes, parameter buffers,
initialization, and whole-network parity with independent implementations."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from graphnet import Model, load_spec, parse_spec
from graphnet.errors import GradientError, GraphnetError, OpError, TrainingError
from graphnet.registry import OpSource, Registry, default_registry

SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"


def registry_with(module: str, classes: dict[str, str]) -> Registry:
    """The built-in ops plus throwaway ones: op name -> class name in ``module``."""
    builtin = default_registry()
    sources = {name: [builtin.source(name)] for name in builtin.names()}
    for op_name, class_name in classes.items():
        sources[op_name] = [OpSource(op_name, f"{module}:{class_name}", "graphnet-tests")]
    return Registry(sources)


def rel_error(actual, expected) -> float:
    """max |actual - expected| relative to the largest |expected|."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300))


# -- fan-out ------------------------------------------------------------------------------------

FAN_OUT = """
name: fan
inputs: {x: {shape: [4]}, t: {shape: [3]}}
nodes:
  h: {op: linear, inputs: {x: x}, attrs: {units: 3}}
  r: {op: relu, inputs: {x: h}}
  y: {op: add, inputs: {a: r, b: h}}
  loss: {op: mse, inputs: {pred: y, target: t}, attrs: {reduction: sum_per_sample}}
outputs: [y, loss]
"""


def fan_out_batch(rng):
    return {"x": rng.standard_normal((5, 4)), "t": rng.standard_normal((5, 3))}


def test_fan_out_gets_the_sum_of_both_contributions():
    model = Model.from_spec(parse_spec(FAN_OUT), seed=1, dtype="float64")
    batch = fan_out_batch(np.random.default_rng(0))
    out = model.forward(batch)
    out.backward("loss")

    x, t = batch["x"], batch["t"]
    w, b = model.params["h.w"], model.params["h.b"]
    h = x @ w + b
    y = np.maximum(h, 0) + h
    n = len(x)
    np.testing.assert_allclose(out["y"], y, rtol=1e-13)
    np.testing.assert_allclose(out["loss"], np.sum((y - t) ** 2) / n, rtol=1e-13)
    dy = 2 * (y - t) / n
    dh = dy * (h > 0) + dy  # through relu plus the direct edge
    assert np.any(h < 0) and np.any(h > 0)  # both branches matter in this batch
    np.testing.assert_allclose(model.grads["h.w"], x.T @ dh, rtol=1e-12)
    np.testing.assert_allclose(model.grads["h.b"], dh.sum(axis=0), rtol=1e-12)
    # only one contribution would be visibly wrong
    assert rel_error(model.grads["h.w"], x.T @ dy) > 1e-3


def test_fan_out_matches_finite_differences():
    model = Model.from_spec(parse_spec(FAN_OUT), seed=2, dtype="float64")
    batch = fan_out_batch(np.random.default_rng(1))
    model.forward(batch, ["loss"])
    model.backward("loss")
    analytic = model.grads["h.w"].copy()
    numeric = np.zeros_like(analytic)
    w = model.params["h.w"]
    step = 1e-6
    for index in np.ndindex(w.shape):
        original = w[index]
        w[index] = original + step
        plus = float(model.forward(batch, ["loss"])["loss"])
        w[index] = original - step
        minus = float(model.forward(batch, ["loss"])["loss"])
        w[index] = original
        numeric[index] = (plus - minus) / (2 * step)
    assert rel_error(analytic, numeric) < 1e-6


def test_same_node_in_both_roles_gets_double_gradient():
    spec = parse_spec(
        """
        name: twice
        inputs: {x: {shape: [2]}, t: {shape: [2]}}
        nodes:
          h: {op: linear, inputs: {x: x}, attrs: {units: 2}}
          y: {op: add, inputs: {a: h, b: h}}
          loss: {op: mse, inputs: {pred: y, target: t}, attrs: {reduction: sum_per_sample}}
        """
    )
    model = Model.from_spec(spec, seed=0, dtype="float64")
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    t = np.array([[0.0, 1.0], [-1.0, 2.0]])
    model.forward({"x": x, "t": t}, ["loss"])
    model.backward("loss")
    h = x @ model.params["h.w"] + model.params["h.b"]
    dh = 2 * (2 * (2 * h - t) / 2)  # d/dh of sum((2h - t)^2) / N with N = 2
    np.testing.assert_allclose(model.grads["h.w"], x.T @ dh, rtol=1e-12)


ALIAS_PROBES = """
from graphnet.ops.add import Add
from graphnet.ops.linear import Linear

SEEN = {}

class SeeAdd(Add):
    def backward(self, attrs, saved, dy, wants):
        grads = super().backward(attrs, saved, dy, wants)
        SEEN["add_dy"], SEEN["add_dy_before"], SEEN["add_grads"] = dy, dy.copy(), grads
        return grads

class SeeLinear(Linear):
    def backward(self, attrs, saved, dy, wants):
        SEEN["linear_dy"] = dy
        return super().backward(attrs, saved, dy, wants)
"""


def test_fan_out_of_gradients_aliasing_dy_sums_without_writing_into_them(make_module):
    module = make_module(ALIAS_PROBES)
    registry = registry_with(module, {"see_add": "SeeAdd", "see_linear": "SeeLinear"})
    spec = parse_spec(
        """
        name: alias
        inputs: {x: {shape: [3]}, t: {shape: [3]}}
        nodes:
          h: {op: see_linear, inputs: {x: x}, attrs: {units: 3}}
          y: {op: see_add, inputs: {a: h, b: h}}
          loss: {op: mse, inputs: {pred: y, target: t}}
        """
    )
    model = Model.from_spec(spec, seed=0, dtype="float64", registry=registry)
    rng = np.random.default_rng(4)
    model.forward({"x": rng.standard_normal((4, 3)), "t": rng.standard_normal((4, 3))}, ["loss"])
    model.backward("loss")
    seen = importlib.import_module(module).SEEN
    dy = seen["add_dy"]
    # add returned dy itself for both roles (the contract allows it) ...
    assert seen["add_grads"]["a"] is dy and seen["add_grads"]["b"] is dy
    # ... h got exactly their sum, in a new array, and dy was not written into
    np.testing.assert_array_equal(seen["linear_dy"], 2 * seen["add_dy_before"])
    np.testing.assert_array_equal(dy, seen["add_dy_before"])
    assert not np.shares_memory(seen["linear_dy"], dy)


# -- which gradients are asked for --------------------------------------------------------------

PROBES = """
import numpy as np
from graphnet.ops.add import Add
from graphnet.ops.linear import Linear
from graphnet.ops.softmax_cross_entropy import SoftmaxCrossEntropy

CALLS = []

class ProbeLinear(Linear):
    def backward(self, attrs, saved, dy, wants):
        CALLS.append(("linear", attrs.units, set(wants)))
        return super().backward(attrs, saved, dy, wants)

class ProbeAdd(Add):
    def backward(self, attrs, saved, dy, wants):
        CALLS.append(("add", None, set(wants)))
        return super().backward(attrs, saved, dy, wants)

class ProbeSCE(SoftmaxCrossEntropy):
    def backward(self, attrs, saved, dy, wants):
        CALLS.append(("sce", None, set(wants)))
        return super().backward(attrs, saved, dy, wants)
"""


def test_no_gradient_is_asked_for_data_inputs_or_labels(make_module):
    module = make_module(PROBES)
    registry = registry_with(module, {"p_linear": "ProbeLinear", "p_add": "ProbeAdd", "p_sce": "ProbeSCE"})
    spec = parse_spec(
        """
        name: probe
        inputs: {image: {shape: [6]}, aux: {shape: [5]}, label: {shape: [], dtype: int64}}
        nodes:
          first: {op: p_linear, inputs: {x: image}, attrs: {units: 5}}
          frozen: {op: relu, inputs: {x: image}}
          frozen_out: {op: p_linear, inputs: {x: frozen}, attrs: {units: 5, bias: false}}
          mixed: {op: p_add, inputs: {a: first, b: frozen_out}}
          aux_relu: {op: relu, inputs: {x: aux}}
          mixed2: {op: p_add, inputs: {a: mixed, b: aux}}
          mixed3: {op: p_add, inputs: {a: mixed2, b: aux_relu}}
          head: {op: p_linear, inputs: {x: mixed3}, attrs: {units: 3}}
          loss: {op: p_sce, inputs: {logits: head, labels: label}}
          squeeze: {op: p_linear, inputs: {x: frozen}, attrs: {units: 5}}
        outputs: [loss]
        """
    )
    model = Model.from_spec(spec, seed=0, dtype="float64", registry=registry)
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.standard_normal((4, 6)),
        "aux": rng.standard_normal((4, 5)),
        "label": np.array([0, 2, 1, 2]),
    }
    model.forward(batch, ["loss"])
    calls = importlib.import_module(module).CALLS
    calls.clear()
    model.backward("loss")
    assert calls == [
        ("sce", None, {"logits"}),              # loss: never "labels"
        ("linear", 3, {"w", "b", "x"}),         # head: its input carries parameters
        ("add", None, {"a"}),                    # mixed3: b is a node fed by data only
        ("add", None, {"a"}),                    # mixed2: b is a data input
        ("add", None, {"a", "b"}),               # mixed: both sides lead to parameters
        ("linear", 5, {"w"}),                    # frozen_out: fed by data only, no bias
        ("linear", 5, {"w", "b"}),               # first: fed by the image, so no "x"
    ]
    # "squeeze" is not on the path to the loss: never run backward, gradient zero
    assert not np.any(model.grads["squeeze.w"])


def test_labels_computed_by_a_node_get_no_gradient(make_module):
    module = make_module(PROBES)
    registry = registry_with(module, {"p_linear": "ProbeLinear"})
    spec = parse_spec(
        """
        name: target_from_node
        inputs: {x: {shape: [3]}}
        nodes:
          pred: {op: p_linear, inputs: {x: x}, attrs: {units: 2}}
          target: {op: p_linear, inputs: {x: x}, attrs: {units: 2}}
          loss: {op: mse, inputs: {pred: pred, target: target}}
        """
    )
    model = Model.from_spec(spec, seed=0, dtype="float64", registry=registry)
    model.forward({"x": np.ones((2, 3))}, ["loss"])
    calls = importlib.import_module(module).CALLS
    calls.clear()
    model.grads["target.w"][...] = 7  # stale values must be cleared
    model.backward("loss")
    assert len(calls) == 1 and calls[0][2] == {"w", "b"}
    assert not np.any(model.grads["target.w"]) and not np.any(model.grads["target.b"])
    assert np.any(model.grads["pred.w"])


def test_gradients_off_the_path_are_zero_after_every_backward():
    spec = parse_spec(
        """
        name: two_heads
        inputs: {x: {shape: [3]}, t: {shape: [2]}}
        nodes:
          a: {op: linear, inputs: {x: x}, attrs: {units: 2}}
          b: {op: linear, inputs: {x: x}, attrs: {units: 2}}
          loss_a: {op: mse, inputs: {pred: a, target: t}}
          loss_b: {op: mse, inputs: {pred: b, target: t}}
        outputs: [loss_a, loss_b]
        """
    )
    model = Model.from_spec(spec, seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    model.forward({"x": rng.standard_normal((4, 3)), "t": rng.standard_normal((4, 2))})
    for loss, on, off in [("loss_a", "a", "b"), ("loss_a", "a", "b"), ("loss_b", "b", "a"),
                          ("loss_a", "a", "b")]:
        model.grads[f"{off}.w"][...] = 7  # stale values from elsewhere must be cleared each time
        model.backward(loss)
        assert not np.any(model.grads[f"{off}.w"]) and not np.any(model.grads[f"{off}.b"]), loss
        assert np.any(model.grads[f"{on}.w"]) and np.any(model.grads[f"{on}.b"]), loss
    model.backward({"loss_a": np.ones(()), "loss_b": np.ones(())})
    assert all(np.any(grad) for grad in model.grads.values())


# -- a bad backward is caught -------------------------------------------------------------------

BAD = """
import numpy as np
from graphnet.op import Op, OpAttrs, Param

class BadAttrs(OpAttrs):
    mode: str = "ok"

class Bad(Op):
    \"\"\"y = x * w, with a backward that misbehaves as told.\"\"\"
    inputs = ("x",)
    Attrs = BadAttrs
    params = (Param("w", shape=lambda attrs, shapes: tuple(shapes["x"]), init="ones"),)

    def shape(self, attrs, x):
        return tuple(x)

    def forward(self, attrs, ctx, x, w):
        if attrs.mode == "forward_raises":
            raise ValueError("forward boom")
        return x * w, (x, w)

    def backward(self, attrs, saved, dy, wants):
        x, w = saved
        grads = {"x": dy * w, "w": (dy * x).sum(axis=0)}
        mode = attrs.mode
        if mode == "missing_x":
            del grads["x"]
        elif mode == "missing_w":
            del grads["w"]
        elif mode == "shape_x":
            grads["x"] = grads["x"][:, :-1]
        elif mode == "shape_w":
            grads["w"] = grads["w"][None]
        elif mode == "dtype_x":
            grads["x"] = grads["x"].astype(np.float32 if dy.dtype == np.float64 else np.float64)
        elif mode == "dtype_w":
            grads["w"] = grads["w"].astype(np.float16)
        elif mode == "unknown":
            grads["z"] = dy
        elif mode == "not_dict":
            return [grads["x"], grads["w"]]
        elif mode == "not_array":
            grads["x"] = 1.0
        elif mode == "raises":
            raise ValueError("backward boom")
        return grads
"""

BAD_SPEC = """
name: bad
inputs: {x: {shape: [4]}, t: {shape: [4]}}
nodes:
  fc: {op: linear, inputs: {x: x}, attrs: {units: 4}}
  b: {op: bad, inputs: {x: fc}, attrs: {mode: MODE}}
  loss: {op: mse, inputs: {pred: b, target: t}}
"""


@pytest.fixture
def bad_model(make_module):
    registry = registry_with(make_module(BAD), {"bad": "Bad"})

    def make(mode: str, dtype: str = "float64") -> Model:
        spec = parse_spec(BAD_SPEC.replace("MODE", mode))
        model = Model.from_spec(spec, seed=0, dtype=dtype, registry=registry)
        rng = np.random.default_rng(0)
        model.forward({"x": rng.standard_normal((3, 4)), "t": rng.standard_normal((3, 4))}, ["loss"])
        return model

    return make


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_well_behaved_throwaway_op_works(bad_model, dtype):
    model = bad_model("ok", dtype)
    model.backward("loss")
    assert np.any(model.grads["b.w"]) and np.any(model.grads["fc.w"])


@pytest.mark.parametrize(
    "mode, fragment",
    [
        ("missing_x", "backward did not return gradients for ['x']"),
        ("missing_w", "backward did not return gradients for ['w']"),
        ("shape_x", "returned a gradient of shape [3, 3] for 'x', expected [3, 4]"),
        ("shape_w", "returned a gradient of shape [1, 4] for 'w', expected [4]"),
        ("dtype_x", "returned a float32 gradient for 'x', expected float64"),
        ("dtype_w", "returned a float16 gradient for 'w', expected float64"),
        ("unknown", "backward returned gradients for unknown names ['z']"),
        ("not_dict", "backward returned list, expected a dict of gradients"),
        ("not_array", "returned a float as gradient of 'x', expected an array"),
    ],
)
def test_bad_backward_is_a_gradient_error_naming_node_and_op(bad_model, mode, fragment):
    model = bad_model(mode)
    with pytest.raises(GradientError) as info:
        model.backward("loss")
    message = str(info.value)
    assert "op 'bad' (node 'b')" in message
    assert fragment in message
    assert info.value.path == "nodes.b"


def test_wrong_dtype_caught_in_float32_model(bad_model):
    model = bad_model("dtype_x", "float32")
    with pytest.raises(GradientError, match="returned a float64 gradient for 'x', expected float32"):
        model.backward("loss")


def test_op_crashing_is_an_op_error_naming_the_node(bad_model):
    model = bad_model("raises")
    with pytest.raises(OpError) as info:
        model.backward("loss")
    assert "op 'bad' failed in backward: ValueError: backward boom" in info.value.message
    assert info.value.path == "nodes.b"
    with pytest.raises(OpError) as info:
        bad_model("forward_raises")
    assert "op 'bad' failed in forward: ValueError: forward boom" in info.value.message
    assert info.value.path == "nodes.b"


def test_variadic_gradient_count_is_checked(make_module):
    module = make_module(
        """
        from graphnet.ops.concat import Concat

        class ShortConcat(Concat):
            def backward(self, attrs, saved, dy, wants):
                grads = super().backward(attrs, saved, dy, wants)
                grads["xs"] = grads["xs"][:1]
                return grads
        """
    )
    registry = registry_with(module, {"short_concat": "ShortConcat"})
    spec = parse_spec(
        """
        name: v
        inputs: {x: {shape: [2]}, t: {shape: [5]}}
        nodes:
          a: {op: linear, inputs: {x: x}, attrs: {units: 2}}
          b: {op: linear, inputs: {x: x}, attrs: {units: 3}}
          j: {op: short_concat, inputs: {xs: [a, b]}}
          loss: {op: mse, inputs: {pred: j, target: t}}
        """
    )
    model = Model.from_spec(spec, registry=registry, dtype="float64")
    model.forward({"x": np.ones((2, 2)), "t": np.zeros((2, 5))}, ["loss"])
    with pytest.raises(GradientError) as info:
        model.backward("loss")
    assert "op 'short_concat' (node 'j')" in str(info.value)
    assert "list of 2 gradients for variadic role 'xs'" in str(info.value)


# -- a bad forward output is caught -------------------------------------------------------------

BAD_FORWARD = """
import numpy as np
from graphnet.op import Op, OpAttrs
from graphnet.ops.mse import MSE

class WrongAttrs(OpAttrs):
    mode: str = "ok"

class Wrong(Op):
    \"\"\"y = 2 x, with a forward that returns the wrong thing as told.\"\"\"
    inputs = ("x",)
    Attrs = WrongAttrs

    def shape(self, attrs, x):
        return tuple(x)

    def forward(self, attrs, ctx, x):
        y = 2 * x
        if attrs.mode == "features":
            y = y[:, :1]  # (N, 1): would broadcast silently against the (N, 4) target
        elif attrs.mode == "batch":
            y = y[:1]
        elif attrs.mode == "dtype":
            y = y.astype(np.float32 if x.dtype == np.float64 else np.float64)
        elif attrs.mode == "list":
            y = y.tolist()
        return y, None

    def backward(self, attrs, saved, dy, wants):
        return {"x": 2 * dy}

class PerSampleLoss(MSE):
    def forward(self, attrs, ctx, pred, target):
        diff = pred - target
        return (diff * diff).sum(axis=1), (diff, pred.shape[0])
"""

WRONG_SPEC = """
name: wrong
inputs: {x: {shape: [4]}, t: {shape: [4]}}
nodes:
  fc: {op: linear, inputs: {x: x}, attrs: {units: 4}}
  w: {op: wrong, inputs: {x: fc}, attrs: {mode: MODE}}
  loss: {op: LOSS, inputs: {pred: w, target: t}}
"""


@pytest.fixture
def wrong_model(make_module):
    registry = registry_with(make_module(BAD_FORWARD), {"wrong": "Wrong", "per_sample": "PerSampleLoss"})

    def make(mode: str, dtype: str = "float64", loss: str = "mse") -> tuple[Model, dict]:
        spec = parse_spec(WRONG_SPEC.replace("MODE", mode).replace("LOSS", loss))
        model = Model.from_spec(spec, seed=0, dtype=dtype, registry=registry)
        rng = np.random.default_rng(0)
        return model, {"x": rng.standard_normal((3, 4)), "t": rng.standard_normal((3, 4))}

    return make


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_well_behaved_forward_passes_the_output_check(wrong_model, dtype):
    model, batch = wrong_model("ok", dtype)
    out = model.forward(batch, ["w", "loss"])
    assert out["w"].shape == (3, 4) and out["w"].dtype == np.dtype(dtype)


@pytest.mark.parametrize(
    "mode, dtype, received, expected",
    [
        ("features", "float64", "shape [3, 1]", "a float64 array of shape [3, 4]"),
        ("batch", "float64", "shape [1, 4]", "a float64 array of shape [3, 4]"),
        ("dtype", "float64", "dtype float32", "a float64 array of shape [3, 4]"),
        ("dtype", "float32", "dtype float64", "a float32 array of shape [3, 4]"),
        ("list", "float64", "a list", "a float64 array of shape [3, 4]"),
    ],
)
def test_wrong_forward_output_is_an_op_error_naming_node_and_op(wrong_model, mode, dtype, received, expected):
    model, batch = wrong_model(mode, dtype)
    with pytest.raises(OpError) as info:
        model.forward(batch, ["loss"])
    error = info.value
    assert error.message == f"op 'wrong' (node 'w') forward returned {received}, expected {expected}"
    assert error.path == "nodes.w"
    if mode == "dtype":
        assert "dtype" in error.hint
    else:
        assert error.hint == "the op's shape rule says per-sample shape [4]; fix forward or shape"


def test_loss_returning_per_sample_values_is_an_op_error(wrong_model):
    model, batch = wrong_model("ok", loss="per_sample")
    with pytest.raises(OpError) as info:
        model.forward(batch, ["loss"])
    assert info.value.message == (
        "op 'per_sample' (node 'loss') forward returned shape [3], expected a float64 array of shape []"
    )
    assert "one number per batch, shape ()" in info.value.hint
    assert "fix forward or shape" in info.value.hint


# -- deep graphs --------------------------------------------------------------------------------


def test_deep_chain_runs_forward_and_backward_without_recursion():
    length = 3000
    nodes = {"fc": {"op": "linear", "inputs": {"x": "x"}, "attrs": {"units": 3}}}
    previous = "fc"
    for i in range(1, length + 1):
        nodes[f"r{i}"] = {"op": "relu", "inputs": {"x": previous}}
        previous = f"r{i}"
    nodes["loss"] = {"op": "mse", "inputs": {"pred": previous, "target": "t"},
                     "attrs": {"reduction": "sum_per_sample"}}
    data = {"name": "deep", "inputs": {"x": {"shape": [2]}, "t": {"shape": [3]}}, "nodes": nodes}
    model = Model.from_spec(parse_spec(json.dumps(data)), seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((4, 2)), rng.standard_normal((4, 3))
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        out = model.forward({"x": x, "t": t}, ["loss"])
        model.backward("loss")
    finally:
        sys.setrecursionlimit(old)
    h = x @ model.params["fc.w"] + model.params["fc.b"]
    r = np.maximum(h, 0)
    np.testing.assert_allclose(out["loss"], np.sum((r - t) ** 2) / 4, rtol=1e-12)
    dh = 2 * (r - t) / 4 * (h > 0)
    np.testing.assert_allclose(model.grads["fc.w"], x.T @ dh, rtol=1e-12, atol=1e-15)
    assert np.any(model.grads["fc.w"])


# -- model: dtypes, buffers, parameters, initialization -----------------------------------------


def seed_softmax_batch(rng, n=6):
    return {"image": rng.uniform(-1, 1, (n, 784)), "label": rng.integers(0, 10, n)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtypes_flow_through(dtype):
    model = Model.from_spec(load_spec(SPECS_DIR / "seed-softmax.yaml"), seed=0, dtype=dtype)
    out = model.forward(seed_softmax_batch(np.random.default_rng(0)))
    model.backward("loss")
    assert model.flat_params.dtype == model.flat_grads.dtype == np.dtype(dtype)
    assert out["fc3"].dtype == np.dtype(dtype) and out["loss"].dtype == np.dtype(dtype)
    assert all(g.dtype == np.dtype(dtype) for g in model.grads.values())
    assert np.isfinite(out["loss"]) and out["loss"] > 0


def test_float32_agrees_with_float64():
    spec = load_spec(SPECS_DIR / "seed-softmax.yaml")
    m32 = Model.from_spec(spec, seed=0, dtype="float32")
    m64 = Model.from_spec(spec, seed=0, dtype="float64")
    m64.flat_params[...] = m32.flat_params  # same (float32-representable) weights
    batch = seed_softmax_batch(np.random.default_rng(1))
    l32 = m32.forward(batch)["loss"]
    l64 = m64.forward(batch)["loss"]
    m32.backward("loss")
    m64.backward("loss")
    assert abs(float(l32) - float(l64)) < 1e-5 * abs(float(l64))
    assert rel_error(m32.flat_grads.astype(np.float64), m64.flat_grads) < 1e-4


def test_unsupported_dtype():
    with pytest.raises(GraphnetError, match="unsupported dtype 'float16'"):
        Model.from_spec(load_spec(SPECS_DIR / "seed-softmax.yaml"), dtype="float16")


def test_params_and_grads_are_views_of_the_flat_buffers():
    model = Model.from_spec(load_spec(SPECS_DIR / "skip-mlp.yaml"), seed=0, dtype="float64")
    offset = 0
    for name in model.param_names:
        param, grad = model.params[name], model.grads[name]
        assert np.shares_memory(param, model.flat_params)
        assert np.shares_memory(grad, model.flat_grads)
        assert param.base is not None and grad.base is not None
        np.testing.assert_array_equal(model.flat_params[offset: offset + param.size], param.reshape(-1))
        offset += param.size
    assert offset == model.size == model.graph.param_count()
    # writing the flat buffer changes the named parameter, and the other way round
    model.flat_params[...] = 0.25
    assert np.all(model.params["stem.w"] == 0.25)
    model.params["logits.b"][...] = -1
    assert np.count_nonzero(model.flat_params == -1) == 10
    # backward writes into the same memory
    rng = np.random.default_rng(0)
    model.forward({"image": rng.standard_normal((3, 784)), "label": np.array([1, 2, 3])})
    model.backward("loss")
    for name in model.param_names:
        assert np.shares_memory(model.grads[name], model.flat_grads)
    assert np.any(model.flat_grads)


def test_decay_mask_excludes_biases():
    model = Model.from_spec(load_spec(SPECS_DIR / "seed-mse.yaml"))
    offset = 0
    for name in model.param_names:
        size = model.params[name].size
        expected = 0 if name.endswith(".b") else 1
        assert np.all(model.decay_mask[offset: offset + size] == expected), name
        offset += size


def test_set_param_and_its_errors():
    model = Model.from_spec(load_spec(SPECS_DIR / "seed-mse.yaml"), dtype="float64")
    model.set_param("fc3.b", np.arange(10.0))
    np.testing.assert_array_equal(model.params["fc3.b"], np.arange(10.0))
    with pytest.raises(GraphnetError) as info:
        model.set_param("fc1.w", np.zeros((200, 784)))
    assert "parameter 'fc1.w' has shape [784, 200], received [200, 784]" in info.value.message
    assert "check you load the right weights" in info.value.hint
    with pytest.raises(GraphnetError) as info:
        model.set_param("fc9.w", np.zeros(3))
    assert "no parameter 'fc9.w'" in info.value.message
    assert "fc1.w" in info.value.hint
    with pytest.raises(GraphnetError, match=r"missing \['fc3.b'\]"):
        model.load_params({k: v for k, v in model.params.items() if k != "fc3.b"})


def test_initialization_is_deterministic_per_seed():
    spec = load_spec(SPECS_DIR / "skip-mlp.yaml")
    a, b, c = Model.from_spec(spec, seed=7), Model.from_spec(spec, seed=7), Model.from_spec(spec, seed=8)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert not np.array_equal(a.flat_params, c.flat_params)
    # every weight matrix differs between seeds; biases start at zero for both
    for name in a.param_names:
        if name.endswith(".w"):
            assert not np.array_equal(a.params[name], c.params[name]), name
        else:
            assert not np.any(a.params[name]) and not np.any(c.params[name])
    # He normal: std close to sqrt(2 / fan_in)
    assert abs(a.params["stem.w"].std() / np.sqrt(2 / 784) - 1) < 0.05


# -- forward details ----------------------------------------------------------------------------


def test_batch_errors():
    model = Model.from_spec(load_spec(SPECS_DIR / "seed-softmax.yaml"))
    rng = np.random.default_rng(0)
    with pytest.raises(GraphnetError, match="the batch has no array for input 'label'"):
        model.forward({"image": rng.standard_normal((2, 784))})
    with pytest.raises(GraphnetError) as info:
        model.forward({"image": rng.standard_normal((2, 28, 28)), "label": np.zeros(2, int)})
    assert "input 'image' has per-sample shape [28, 28], the graph expects [784]" in info.value.message
    with pytest.raises(GraphnetError, match=r"different lengths: \[2, 3\]"):
        model.forward({"image": rng.standard_normal((2, 784)), "label": np.zeros(3, int)})
    with pytest.raises(GraphnetError, match="'nope' is not a node"):
        model.forward({"image": rng.standard_normal((2, 784))}, ["nope"])
    with pytest.raises(GraphnetError) as info:  # one label, not a batch of one
        model.forward({"image": rng.standard_normal((1, 784)), "label": np.array(3)})
    assert info.value.message == "input 'label' is a single value (an array of shape []), not a batch"
    assert info.value.path == "inputs.label"
    assert info.value.hint == "give a batch: an array of shape [N] + [] (one sample: wrap it, [value])"
    # lists and integer images are taken as arrays, the image cast to the model's dtype
    out = model.forward({"image": [[0] * 784, [1] * 784], "label": [3, 4]})
    assert out["loss"].dtype == np.float32 and out["loss"].shape == ()


def test_only_the_needed_nodes_run():
    model = Model.from_spec(load_spec(SPECS_DIR / "seed-softmax.yaml"))
    # fc3 alone needs no labels
    out = model.forward({"image": np.zeros((2, 784), np.float32)}, ["fc3"])
    assert list(out) == ["fc3"] and out["fc3"].shape == (2, 10)
    assert [s.node.name for s in model.executor.plan(("fc3",)).steps] == ["fc1", "relu1", "fc2", "relu2", "fc3"]
    with pytest.raises(GraphnetError, match="cannot backpropagate from 'loss'"):
        model.backward("loss")


def test_backward_from_a_non_scalar_output():
    model = Model.from_spec(parse_spec(FAN_OUT), seed=0, dtype="float64")
    x = np.random.default_rng(3).standard_normal((2, 4))
    model.forward({"x": x}, ["y"])
    upstream = np.ones((2, 3))
    model.backward({"y": upstream})
    np.testing.assert_array_equal(upstream, np.ones((2, 3)))  # add hands dy on; never written
    h = x @ model.params["h.w"] + model.params["h.b"]
    np.testing.assert_allclose(model.grads["h.b"], ((h > 0) + 1.0).sum(axis=0), rtol=1e-12)


def test_dropout_is_reproducible_per_step_and_off_in_evaluation():
    model = Model.from_spec(load_spec(SPECS_DIR / "fashion-mlp.yaml"), seed=0, dtype="float64")
    batch = {"image": np.random.default_rng(0).uniform(0, 1, (4, 784)), "label": np.arange(4)}
    a = model.forward(batch, ["fc3"], training=True, step=3)["fc3"].copy()
    b = model.forward(batch, ["fc3"], training=True, step=3)["fc3"].copy()
    c = model.forward(batch, ["fc3"], training=True, step=4)["fc3"].copy()
    e1 = model.forward(batch, ["fc3"])["fc3"].copy()
    e2 = model.forward(batch, ["fc3"], step=9)["fc3"].copy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(e1, e2)
    assert not np.allclose(a, e1)


def test_check_finite_names_the_node():
    model = Model.from_spec(parse_spec(FAN_OUT), seed=0, dtype="float64")
    batch = {"x": np.array([[np.inf, 0, 0, 0]]), "t": np.zeros((1, 3))}
    model.forward(batch, ["loss"])  # without the check: no error
    with pytest.raises(TrainingError) as info:
        model.forward(batch, ["loss"], check_finite=True)
    assert "output of node 'h' (op linear) is not finite" in info.value.message


# -- whole-network parity with an independent numpy MLP -----------------------------------------


def numpy_mlp(x, weights, t, loss_kind):
    """784-200-100-10 ReLU MLP, written without graphnet. Returns (logits, loss, grads)."""
    w1, b1, w2, b2, w3, b3 = weights
    n = x.shape[0]
    z1 = x @ w1 + b1
    a1 = np.maximum(z1, 0)
    z2 = a1 @ w2 + b2
    a2 = np.maximum(z2, 0)
    z3 = a2 @ w3 + b3
    if loss_kind == "softmax_ce":
        # t: integer labels
        m = z3.max(axis=1, keepdims=True)
        log_p = z3 - m - np.log(np.exp(z3 - m).sum(axis=1, keepdims=True))
        loss = -log_p[np.arange(n), t].mean()
        d3 = np.exp(log_p)
        d3[np.arange(n), t] -= 1
        d3 /= n
    else:
        # t: one-hot targets; per-sample sum of squares averaged over the batch
        loss = ((z3 - t) ** 2).sum() / n
        d3 = 2 * (z3 - t) / n
    g_w3, g_b3 = a2.T @ d3, d3.sum(axis=0)
    d2 = (d3 @ w3.T) * (z2 > 0)
    g_w2, g_b2 = a1.T @ d2, d2.sum(axis=0)
    d1 = (d2 @ w2.T) * (z1 > 0)
    g_w1, g_b1 = x.T @ d1, d1.sum(axis=0)
    return z3, loss, [g_w1, g_b1, g_w2, g_b2, g_w3, g_b3]


@pytest.mark.parametrize(
    "spec_file, loss_kind", [("seed-softmax.yaml", "softmax_ce"), ("seed-mse.yaml", "mse")]
)
def test_whole_mlp_matches_independent_numpy(spec_file, loss_kind):
    rng = np.random.default_rng(42)
    sizes = [784, 200, 100, 10]
    weights = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        weights.append(rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in))
        weights.append(rng.standard_normal(fan_out) * 0.1)
    n = 16
    x = rng.uniform(-1, 1, (n, 784))
    labels = rng.integers(0, 10, n)
    target = labels if loss_kind == "softmax_ce" else np.eye(10)[labels]

    spec = load_spec(SPECS_DIR / spec_file)
    model = Model.from_spec(spec, seed=0, dtype="float64")
    names = ["fc1.w", "fc1.b", "fc2.w", "fc2.b", "fc3.w", "fc3.b"]
    assert model.param_names == names
    for name, value in zip(names, weights):
        model.set_param(name, value)
    label_input = "label" if loss_kind == "softmax_ce" else "target"
    out = model.forward({"image": x, label_input: target})
    model.backward("loss")

    logits, loss, grads = numpy_mlp(x, weights, target, loss_kind)
    assert rel_error(out["fc3"], logits) < 1e-12
    assert abs(float(out["loss"]) - loss) <= 1e-8 * abs(loss)
    for name, expected in zip(names, grads):
        assert np.any(expected)
        assert rel_error(model.grads[name], expected) < 1e-8, name
