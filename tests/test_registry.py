"""The op registry: built-ins come through entry points like any plugin, nothing is imported
until needed, a broken plugin stays local, a name claimed twice is an error naming both."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

import graphnet.registry as registry_module
from graphnet import build_graph, parse_spec
from graphnet.errors import GraphnetError, OpError, PluginLoadError, RegistryError
from graphnet.gradcheck import check_op
from graphnet.op import Op
from graphnet.registry import OpSource, Registry, default_registry, reset_default_registry

REPO = Path(__file__).resolve().parents[1]

SWISH = """
import numpy as np
from graphnet.op import Op, OpAttrs

class SwishAttrs(OpAttrs):
    beta: float = 1.0

class Swish(Op):
    \"\"\"y = x * sigmoid(beta * x)\"\"\"
    inputs = ("x",)
    Attrs = SwishAttrs

    def shape(self, attrs, x):
        return tuple(x)

    def forward(self, attrs, ctx, x):
        s = 1 / (1 + np.exp(-attrs.beta * x))
        return x * s, (x, s)

    def backward(self, attrs, saved, dy, wants):
        x, s = saved
        return {"x": dy * (s + attrs.beta * x * s * (1 - s))}
"""

BROKEN = """
raise ImportError("this plugin needs libfoo")
"""


# -- built-ins ----------------------------------------------------------------------------------


def test_builtins_come_from_the_graphnet_distribution():
    registry = default_registry()
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["graphnet.ops"]
    # (other installed distributions may add plugin ops; the built-ins are graphnet's)
    builtins = [name for name in registry.names() if registry.source(name).distribution == "graphnet"]
    assert builtins == sorted(declared)
    modules = sorted(p.stem for p in (REPO / "graphnet" / "ops").glob("*.py") if p.stem != "__init__")
    assert modules == builtins  # one file per op, each registered
    for name in builtins:
        source = registry.source(name)
        assert source.distribution == "graphnet"
        assert source.name == name
        assert source.value == declared[name] and source.value.startswith(f"graphnet.ops.{name}:")
        op = registry.get(name)
        assert isinstance(op, Op)
        assert op.name == name
        assert registry.get(name) is op  # loaded once


def test_unknown_op_lists_the_known_ones():
    with pytest.raises(OpError) as info:
        default_registry().get("relux")
    assert info.value.message == "unknown op 'relux'"
    assert info.value.hint.startswith("did you mean 'relu'? known ops: add, bias_add,")
    with pytest.raises(OpError):
        default_registry().source("relux")


def test_listing_and_help_import_no_op_module(run_python):
    result = run_python(
        """
        import sys
        from typer.testing import CliRunner
        from graphnet.cli import app
        imported = lambda: [m for m in sys.modules if m.startswith("graphnet.ops.")]
        before = imported()
        help_result = CliRunner().invoke(app, ["--help"])
        assert help_result.exit_code == 0, help_result.output
        assert "validate" in help_result.output and "gradcheck" in help_result.output
        after_help = imported()
        from graphnet.registry import default_registry
        names = default_registry().names()
        after_names = imported()
        default_registry().get("relu")
        print(before, after_help, after_names, "linear" in names, imported())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] [] [] True ['graphnet.ops.relu']"


# -- throwaway plugins --------------------------------------------------------------------------


@pytest.fixture
def plugins(make_dist, monkeypatch):
    """Installs throwaway distributions on sys.path; returns a fresh Registry and the sites."""
    sites = {
        "good": make_dist("gn-swish", {"gn_swish": "gn_plugin_swish:Swish"}, {"gn_plugin_swish": SWISH}),
        "broken": make_dist("gn-broken", {"broken_op": "gn_plugin_broken:Thing"}, {"gn_plugin_broken": BROKEN}),
    }
    for site in sites.values():
        monkeypatch.syspath_prepend(str(site))
    return Registry.from_entry_points(), sites


def test_a_plugin_op_is_found_and_usable(plugins):
    registry, _ = plugins
    source = registry.source("gn_swish")
    assert source == OpSource("gn_swish", "gn_plugin_swish:Swish", "gn-swish")
    op = registry.get("gn_swish")
    assert op.name == "gn_swish" and op.summary() == "y = x * sigmoid(beta * x)"
    assert check_op(op).ok
    graph = build_graph(
        parse_spec(
            """
            name: p
            inputs: {x: {shape: [3]}}
            nodes:
              s: {op: gn_swish, inputs: {x: x}, attrs: {beta: 2.0}}
            """
        ),
        registry,
    )
    assert graph.nodes["s"].attrs.beta == 2.0


def test_broken_plugin_is_reported_and_others_still_load(plugins):
    registry, _ = plugins
    assert "broken_op" in registry.names()  # listing imports nothing, so it does not fail
    with pytest.raises(PluginLoadError) as info:
        registry.get("broken_op")
    message = info.value.message
    assert "op 'broken_op'" in message
    assert "'gn_plugin_broken:Thing' from distribution 'gn-broken'" in message
    assert "ImportError: this plugin needs libfoo" in message
    assert "every other op still works" in info.value.hint
    # the others are fine
    assert registry.get("linear").name == "linear"
    assert registry.get("gn_swish").name == "gn_swish"
    problems = registry.problems()
    assert "broken_op" in problems and "gn_swish" not in problems and "linear" not in problems
    assert isinstance(problems["broken_op"], PluginLoadError)


def test_broken_plugin_only_breaks_specs_that_use_it(plugins):
    registry, _ = plugins
    spec = parse_spec(
        """
        name: p
        inputs: {x: {shape: [3]}}
        nodes:
          b: {op: broken_op, inputs: {x: x}}
        """
    )
    with pytest.raises(GraphnetError) as info:
        build_graph(spec, registry)
    assert info.value.path == "nodes.b.op"
    assert "from distribution 'gn-broken') failed to import: ImportError" in info.value.message


def test_same_name_from_two_distributions_is_an_error_naming_both(make_dist, monkeypatch):
    for dist in ("gn-act-one", "gn-act-two"):
        module = dist.replace("-", "_")
        site = make_dist(dist, {"gn_act": f"{module}:Swish"}, {module: SWISH})
        monkeypatch.syspath_prepend(str(site))
    registry = Registry.from_entry_points()
    with pytest.raises(RegistryError) as info:
        registry.get("gn_act")
    message = info.value.message
    assert message.startswith("op 'gn_act' is registered twice: ")
    assert "'gn_act_one:Swish' from distribution 'gn-act-one'" in message
    assert "'gn_act_two:Swish' from distribution 'gn-act-two'" in message
    assert "uninstall one of the distributions" in info.value.hint
    assert registry.get("relu").name == "relu"
    assert "gn_act" in registry.problems() and "relu" not in registry.problems()


def test_one_class_under_two_names_keeps_both(make_dist, monkeypatch):
    # the registry names the op instance, not its class: an alias must not rename the original
    site = make_dist(
        "gn-alias",
        {"gn_swish_a": "gn_plugin_alias:Swish", "gn_swish_b": "gn_plugin_alias:Swish"},
        {"gn_plugin_alias": SWISH},
    )
    monkeypatch.syspath_prepend(str(site))
    registry = Registry.from_entry_points()
    first, second = registry.get("gn_swish_a"), registry.get("gn_swish_b")
    assert type(first) is type(second)
    assert (first.name, second.name) == ("gn_swish_a", "gn_swish_b")
    assert registry.get("gn_swish_a").name == "gn_swish_a"
    assert type(first).name == ""  # the class is untouched
    graph = build_graph(
        parse_spec(
            """
            name: p
            inputs: {x: {shape: [3]}}
            nodes:
              a: {op: gn_swish_a, inputs: {x: x}}
              b: {op: gn_swish_b, inputs: {x: a}}
            """
        ),
        registry,
    )
    assert graph.op_versions() == {"gn_swish_a": 1, "gn_swish_b": 1}


def test_plugin_cannot_shadow_a_builtin(make_dist, monkeypatch):
    site = make_dist("gn-shadow", {"relu": "gn_plugin_shadow:Swish"}, {"gn_plugin_shadow": SWISH})
    monkeypatch.syspath_prepend(str(site))
    registry = Registry.from_entry_points()
    with pytest.raises(RegistryError) as info:
        registry.get("relu")
    assert "from distribution 'graphnet'" in info.value.message
    assert "from distribution 'gn-shadow'" in info.value.message


def test_default_registry_sees_a_plugin_after_reset(make_dist, monkeypatch):
    site = make_dist("gn-late", {"late_swish": "gn_plugin_late:Swish"}, {"gn_plugin_late": SWISH})
    monkeypatch.setattr(registry_module, "_default", None)
    before = default_registry()
    monkeypatch.syspath_prepend(str(site))
    assert "late_swish" not in default_registry().names()  # cached
    reset_default_registry()
    assert default_registry() is not before
    assert default_registry().source("late_swish").distribution == "gn-late"




def test_ops_cli_lists_healthy_ops_and_reports_the_broken_one(plugins, run_cli):
    _, sites = plugins
    result = run_cli("ops", pythonpath=[sites["good"], sites["broken"]])
    assert "Traceback" not in result.stderr
    problem_lines = [line for line in result.stderr.splitlines() if line.strip()]
    broken = [line for line in problem_lines if "broken_op" in line]
    assert len(broken) == 1
    assert broken[0].startswith("graphnet: error: op 'broken_op'")
    assert "distribution 'gn-broken'" in broken[0]
    assert "linear v1  [graphnet]" in result.stdout
    assert "gn_swish v1  [gn-swish]" in result.stdout
    assert "broken_op" not in result.stdout
    as_json = run_cli("ops", "--json", pythonpath=[sites["good"], sites["broken"]])
    listing = json.loads(as_json.stdout)
    assert "broken_op" in listing["problems"]
    assert "gn-broken" in listing["problems"]["broken_op"]
    listed = {op["name"] for op in listing["ops"]}
    assert set(default_registry().names()) - set(default_registry().problems()) <= listed
    assert "gn_swish" in listed and "broken_op" not in listed


def test_ops_cli_exit_code_in_process(plugins, cli_runner, monkeypatch):
    monkeypatch.setattr(registry_module, "_default", None)  # rebuilt with the plugins
    result = cli_runner("ops")
    assert result.exit_code == 1
    assert "graphnet: error: op 'broken_op'" in result.stderr
    assert "gn_swish v1  [gn-swish]" in result.stdout


def test_ops_cli_exits_1_on_a_broken_plugin(plugins, run_cli):
    _, sites = plugins
    assert run_cli("ops", pythonpath=[sites["good"], sites["broken"]]).returncode == 1


# -- bad declarations ---------------------------------------------------------------------------

DECLARATIONS = """
from graphnet.op import Op, Param

class RoleIsParam(Op):
    inputs = ("x", "w")
    params = (Param("w", shape=lambda attrs, shapes: (1,)),)

class NoRoles(Op):
    inputs = ()

class BadNoGrad(Op):
    inputs = ("x",)
    no_grad = ("labels",)

class BadVariadic(Op):
    inputs = ("x",)
    variadic = ("xs",)

class BadVersion(Op):
    version = 0

class NotAnOp:
    pass

not_a_class = 3
"""


@pytest.mark.parametrize(
    "class_name, fragment",
    [
        ("RoleIsParam", "uses names both as input role and parameter: ['w']"),
        ("NoRoles", "declares no input roles"),
        ("BadNoGrad", "no_grad names unknown roles ['labels']"),
        ("BadVariadic", "variadic names unknown roles ['xs']"),
        ("BadVersion", "has version 0; it must be an integer >= 1"),
        ("NotAnOp", "is not a subclass of graphnet.op.Op"),
        ("not_a_class", "is not a subclass of graphnet.op.Op"),
        ("Missing", "failed to import: AttributeError"),
    ],
)
def test_bad_declarations_are_plugin_load_errors(make_module, class_name, fragment):
    module = make_module(DECLARATIONS)
    registry = Registry({"weird": [OpSource("weird", f"{module}:{class_name}", "gn-weird")]})
    with pytest.raises(PluginLoadError) as info:
        registry.get("weird")
    assert f"op 'weird' ('{module}:{class_name}' from distribution 'gn-weird')" in info.value.message
    assert fragment in info.value.message


def test_missing_module_is_a_plugin_load_error():
    registry = Registry({"ghost": [OpSource("ghost", "gn_no_such_module_xyz:Op", "gn-ghost")]})
    with pytest.raises(PluginLoadError, match="ModuleNotFoundError"):
        registry.get("ghost")


def test_sources_describe_themselves():
    source = OpSource("linear", "graphnet.ops.linear:Linear", "graphnet")
    assert source.describe() == "'graphnet.ops.linear:Linear' from distribution 'graphnet'"
    registry = Registry({"linear": [source]})
    assert registry.names() == ["linear"]
    assert registry.get("linear").name == "linear"
    with pytest.raises(OpError, match="unknown op 'relu'"):
        registry.get("relu")
