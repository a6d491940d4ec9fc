"""The finite-difference gradient checker: every registered op passes (one table, so a new op is
covered without writing a test), wrong gradients fail with the role named, kinks are skipped
rather than failed, an op breaking its dtype or shape contract (in float64 or float32) fails
naming what it returned, and every example spec passes end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphnet import build_graph, load_spec, parse_spec
from graphnet.gradcheck import STEP, TOLERANCE, check_graph, check_op, check_registry
from graphnet.op import Elementwise, Example, Op
from graphnet.ops.linear import Linear
from graphnet.ops.relu import Relu
from graphnet.registry import OpSource, Registry, default_registry

SPECS = sorted(p for p in (Path(__file__).resolve().parents[1] / "specs").glob("*.yaml") if not p.stem.endswith("-sweep"))
ALL_OPS = default_registry().names()


@pytest.mark.parametrize("name", ALL_OPS, ids=ALL_OPS)
def test_every_registered_op_passes(name):
    (result,) = check_registry(names=[name])
    assert result.target == name
    assert result.error is None, result.error
    assert result.roles, f"{name}: nothing was checked"
    assert result.ok, result.failures()
    for role in result.roles.values():
        assert role.checked > 0 and role.worst <= TOLERANCE


class DoubleRelu(Relu):
    """relu with its gradient times 2."""

    def backward(self, attrs, saved, dy, wants):
        return {"x": 2 * super().backward(attrs, saved, dy, wants)["x"]}


class BadWeightLinear(Linear):
    """linear whose weight gradient is half what it should be."""

    def backward(self, attrs, saved, dy, wants):
        grads = super().backward(attrs, saved, dy, wants)
        grads["w"] = grads["w"] * 0.5
        return grads


KINKS = np.array([[0.0, 0.0, STEP / 2, -STEP / 3], [1.0, -2.0, 0.5, -0.25], [0.0, 3.0, -1.0, 2.0]])


class KinkyRelu(Relu):
    """relu checked at its kink: inputs exactly at 0 and within STEP of 0."""

    def examples(self, rng):
        return [Example(inputs={"x": KINKS.copy()})]


class KinkyDoubleRelu(KinkyRelu, DoubleRelu):
    """a wrong gradient is not hidden by the kink skipping"""


class CrashingExamples(Relu):
    def examples(self, rng):
        raise RuntimeError("no examples")


@pytest.fixture(scope="module")
def wrong_ops():
    """The built-in ops and the wrong ones above, registered in process."""
    registry = default_registry().copy()
    for name, cls in {
        "double_relu": DoubleRelu,
        "bad_linear": BadWeightLinear,
        "kinky_relu": KinkyRelu,
        "kinky_double_relu": KinkyDoubleRelu,
        "crashing": CrashingExamples,
    }.items():
        registry.register(cls, name)
    return registry


def test_wrong_input_gradient_fails_naming_the_role(wrong_ops):
    result = check_op(wrong_ops.get("double_relu"))
    assert result.error is None
    assert not result.ok
    assert not result.roles["x"].ok
    assert result.roles["x"].worst > 0.1
    (failure,) = result.failures()
    assert failure.startswith("double_relu: x max relative error")


def test_wrong_parameter_gradient_fails_naming_the_parameter(wrong_ops):
    result = check_op(wrong_ops.get("bad_linear"))
    assert not result.ok
    assert not result.roles["w"].ok
    assert result.roles["b"].ok and result.roles["x"].ok
    assert [f.split(" max")[0] for f in result.failures()] == ["bad_linear: w"]


def test_kinks_are_skipped_not_failed(wrong_ops):
    result = check_op(wrong_ops.get("kinky_relu"))
    role = result.roles["x"]
    assert role.skipped == 5  # the three exact zeros and the two within STEP of 0
    assert role.checked == 12 - 5
    assert result.ok, result.failures()


def test_kink_skipping_does_not_hide_a_wrong_gradient(wrong_ops):
    result = check_op(wrong_ops.get("kinky_double_relu"))
    assert result.roles["x"].skipped == 5
    assert not result.ok


def test_a_crashing_op_is_an_error_not_a_pass(wrong_ops):
    result = check_op(wrong_ops.get("crashing"))
    assert not result.ok
    assert "examples() failed: RuntimeError: no examples" in result.error
    assert result.failures() == [result.error]


def test_check_registry_reports_ops_that_fail_to_load(wrong_ops):
    broken = Registry({"ghost": [OpSource("ghost", "gn_no_such_module_abc:Ghost", "gn-ghost")]})
    (result,) = check_registry(broken)
    assert not result.ok
    assert "ghost" in result.error and "ModuleNotFoundError" in result.error
    results = {r.target: r for r in check_registry(wrong_ops, names=["relu", "double_relu"])}
    assert results["relu"].ok and not results["double_relu"].ok


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_passes_end_to_end(path):
    graph = build_graph(load_spec(path))
    result = check_graph(graph)
    assert result.target == graph.spec.name
    assert set(result.roles) == {
        f"{node}.{param.name}" for node in graph.nodes for param in graph.nodes[node].params
    }
    assert result.ok, result.failures()


def test_check_graph_catches_a_wrong_op_inside_a_graph(wrong_ops):
    spec = parse_spec(
        """
        name: wrong-inside
        inputs: {x: {shape: [4]}, t: {shape: [3]}}
        nodes:
          fc1: {op: linear, inputs: {x: x}, attrs: {units: 5}}
          act: {op: double_relu, inputs: {x: fc1}}
          fc2: {op: linear, inputs: {x: act}, attrs: {units: 3}}
          loss: {op: mse, inputs: {pred: fc2, target: t}}
        """
    )
    result = check_graph(build_graph(spec, wrong_ops))
    assert not result.roles["fc1.w"].ok and not result.roles["fc1.b"].ok
    assert result.roles["fc2.w"].ok and result.roles["fc2.b"].ok
    assert not result.ok


def test_check_graph_without_a_loss_uses_a_projection():
    spec = parse_spec(
        """
        name: no-loss
        inputs: {x: {shape: [3]}}
        nodes:
          fc: {op: linear, inputs: {x: x}, attrs: {units: 2}}
          out: {op: tanh, inputs: {x: fc}}
        """
    )
    result = check_graph(build_graph(spec))
    assert set(result.roles) == {"fc.w", "fc.b"}
    assert result.ok and all(r.checked == np.prod(s) for r, s in zip(result.roles.values(), [(3, 2), (2,)]))


# -- the contract, in float64 and float32 -------------------------------------------------------


class Float64Tanh(Elementwise):
    """tanh whose forward computes in float64 whatever it is given (a right gradient)."""

    def forward(self, attrs, ctx, x):
        y = np.tanh(x.astype(np.float64))
        return y, y

    def backward(self, attrs, saved, dy):
        return {"x": (dy * (1 - saved * saved)).astype(dy.dtype)}


class Float64Gradient(Elementwise):
    """y = 2 x in the input's dtype, but a float64 gradient."""

    def forward(self, attrs, ctx, x):
        return 2 * x, None

    def backward(self, attrs, saved, dy):
        return {"x": 2 * dy.astype(np.float64)}


class WrongShapeRule(Elementwise):
    """y = the first half of x's last axis, while the shape rule says x's shape."""

    def forward(self, attrs, ctx, x):
        return x[..., : x.shape[-1] // 2], x.shape

    def backward(self, attrs, saved, dy):
        dx = np.zeros(saved, dy.dtype)
        dx[..., : saved[-1] // 2] = dy
        return {"x": dx}


class OutputOnly(Elementwise):
    """forward forgets to return what backward needs."""

    def forward(self, attrs, ctx, x):
        return 2 * x

    def backward(self, attrs, saved, dy):
        return {"x": 2 * dy}


class TransposedGradient(Op):
    """y = a + b with b's gradient transposed: the wrong shape."""

    inputs = ("a", "b")

    def shape(self, attrs, a, b):
        return tuple(a)

    def forward(self, attrs, ctx, a, b):
        return a + b, None

    def backward(self, attrs, saved, dy):
        return {"a": dy, "b": dy.T}


@pytest.mark.parametrize(
    "cls, problem",
    [
        (Float64Tanh, "case 0, float32: forward output is float64 for float32 inputs (keep the inputs' dtype: "
                      "write constants as x.dtype.type(c), cast a result with .astype(x.dtype, copy=False))"),
        (Float64Gradient, "case 0, float32: gradient of 'x' is float64 for float32 inputs"),
        (WrongShapeRule, "case 0, float64: forward output has shape [3, 2], expected [3, 4]"),
        (OutputOnly, "case 0, float64: forward returned a ndarray, not the pair (output, saved)"),
        (TransposedGradient, "case 0, float64: gradient of 'b' has shape [4, 3], expected [3, 4]"),
    ],
)
def test_an_op_breaking_its_contract_fails_gradcheck(cls, problem):
    registry = Registry({})
    registry.register(cls, "broken")
    (result,) = check_registry(registry)
    assert not result.ok and result.error is None
    assert result.failures()[0].startswith(f"broken: {problem}")
    assert result.roles == {}  # the numbers are not compared once the contract is broken


def test_an_op_right_in_float64_fails_only_in_float32():
    # what a float64-only check misses: both cases (the two default ones) fail in float32 alone
    op = Float64Tanh()
    op.name = "float64_tanh"
    result = check_op(op)
    assert [p.split(":")[0] for p in result.problems] == ["case 0, float32", "case 1, float32"]


def test_gradcheck_cli_fails_on_a_float64_op(make_dist, run_cli):
    source = (
        "import numpy as np\n"
        "from graphnet.op import Elementwise\n"
        "class Tanh64(Elementwise):\n"
        "    def forward(self, attrs, ctx, x):\n"
        "        y = np.tanh(x.astype(np.float64))\n"
        "        return y, y\n"
        "    def backward(self, attrs, saved, dy):\n"
        "        return {'x': (dy * (1 - saved * saved)).astype(dy.dtype)}\n"
    )
    site = make_dist("gn-tanh64", {"gn_tanh64": "gn_plugin_tanh64:Tanh64"}, {"gn_plugin_tanh64": source})
    result = run_cli("gradcheck", "--op", "gn_tanh64", "--op", "relu", pythonpath=[site])
    assert result.returncode == 1
    failures = [line for line in result.stderr.splitlines() if line.startswith("graphnet: gradcheck failed:")]
    assert failures[0].startswith("graphnet: gradcheck failed: gn_tanh64: case 0, float32: forward output is "
                                  "float64 for float32 inputs")
    assert not any("relu" in line for line in failures)
