"""The finite-difference gradient checker: every registered op passes (one table, so a new op is
covered without writing a test), wrong gradients fail with the role named, kinks are skipped
rather than failed, and every example spec passes end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphnet import build_graph, load_spec, parse_spec
from graphnet.gradcheck import STEP, TOLERANCE, check_graph, check_op, check_registry
from graphnet.registry import OpSource, Registry, default_registry

SPECS = sorted((Path(__file__).resolve().parents[1] / "specs").glob("*.yaml"))
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


WRONG = """
import numpy as np
from graphnet.op import Example
from graphnet.ops.relu import Relu
from graphnet.ops.linear import Linear

STEP = {step!r}

class DoubleRelu(Relu):
    \"\"\"relu with its gradient times 2.\"\"\"
    def backward(self, attrs, saved, dy, wants):
        return {{"x": 2 * super().backward(attrs, saved, dy, wants)["x"]}}

class BadWeightLinear(Linear):
    \"\"\"linear whose weight gradient forgets a transpose-free half.\"\"\"
    def backward(self, attrs, saved, dy, wants):
        grads = super().backward(attrs, saved, dy, wants)
        grads["w"] = grads["w"] * 0.5
        return grads

KINKS = np.array([[0.0, 0.0, STEP / 2, -STEP / 3], [1.0, -2.0, 0.5, -0.25], [0.0, 3.0, -1.0, 2.0]])

class KinkyRelu(Relu):
    \"\"\"relu checked at its kink: inputs exactly at 0 and within STEP of 0.\"\"\"
    def examples(self, rng):
        return [Example(inputs={{"x": KINKS.copy()}})]

class KinkyDoubleRelu(KinkyRelu, DoubleRelu):
    \"\"\"a wrong gradient is not hidden by the kink skipping\"\"\"

class CrashingExamples(Relu):
    def examples(self, rng):
        raise RuntimeError("no examples")
"""


@pytest.fixture
def wrong_ops(make_module):
    module = make_module(WRONG.format(step=STEP))
    names = {
        "double_relu": "DoubleRelu",
        "bad_linear": "BadWeightLinear",
        "kinky_relu": "KinkyRelu",
        "kinky_double_relu": "KinkyDoubleRelu",
        "crashing": "CrashingExamples",
    }
    builtin = default_registry()
    sources = {name: [builtin.source(name)] for name in ("linear", "relu", "mse")}
    for name, cls in names.items():
        sources[name] = [OpSource(name, f"{module}:{cls}", "graphnet-tests")]
    return Registry(sources)


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
