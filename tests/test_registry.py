"""The op registry: built-ins come through entry points like any plugin, nothing is imported
until needed, a broken plugin stays local and is never silent, a name claimed twice is an error
naming both (and an environment variable picks one), plugins can be switched off, ops can be
registered in process, versions coexist, and a declaration that does not match its methods is
refused with the op, where it comes from and the mismatch.

Throwaway *distributions* (``make_dist``: a dist-info folder on sys.path) are used only where the
entry-point path itself is under test; everywhere else an op is registered in process."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

import graphnet
import graphnet.registry as registry_module
from graphnet import Model, build_graph, parse_spec, register_op
from graphnet.errors import GraphnetError, OpError, PluginLoadError, RegistryError
from graphnet.gradcheck import check_op, check_registry
from graphnet.op import Elementwise, Example, Op, OpAttrs, Param
from graphnet.registry import OpSource, Registry, default_registry, reset_default_registry
from graphnet.schema import describe_ops, spec_json_schema

REPO = Path(__file__).resolve().parents[1]

SWISH = """
import numpy as np
from graphnet.op import Elementwise, OpAttrs

class SwishAttrs(OpAttrs):
    beta: float = 1.0

class Swish(Elementwise):
    \"\"\"y = x * sigmoid(beta * x)\"\"\"
    Attrs = SwishAttrs

    def forward(self, attrs, ctx, x):
        s = 1 / (1 + np.exp(-attrs.beta * x))
        return x * s, (x, s)

    def backward(self, attrs, saved, dy):
        x, s = saved
        return {"x": dy * (s + attrs.beta * x * s * (1 - s))}
"""

BROKEN = """
raise ImportError("this plugin needs libfoo")
"""


class Cube(Elementwise):
    """y = x^3"""

    def forward(self, attrs, ctx, x):
        return x * x * x, x

    def backward(self, attrs, saved, dy):
        return {"x": 3 * dy * saved * saved}


def one_node_spec(op: str, attrs: str = "{}"):
    return parse_spec(
        f"""
        name: p
        inputs: {{x: {{shape: [3]}}}}
        nodes:
          n: {{op: {op}, inputs: {{x: x}}, attrs: {attrs}}}
        """
    )


@pytest.fixture
def own_default(monkeypatch):
    """A private copy of the process-wide registry, so that what a test registers stays there."""
    copy = default_registry().copy()
    monkeypatch.setattr(registry_module, "_default", copy)
    monkeypatch.setattr(registry_module, "_carried", [])
    return copy


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
        assert registry.versions(name) == [1]


def test_unknown_op_lists_the_known_ones():
    with pytest.raises(OpError) as info:
        default_registry().get("relux")
    assert info.value.message == "unknown op 'relux'"
    hint = info.value.hint
    assert hint.startswith("did you mean 'relu'? known ops: ")
    listed = hint.removeprefix("did you mean 'relu'? known ops: ").split(", ")
    assert listed == sorted(listed) and {"add", "bias_add", "relu", "linear"} <= set(listed)
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


# -- installed plugins (throwaway distributions) ------------------------------------------------


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
    graph = build_graph(one_node_spec("gn_swish", "{beta: 2.0}"), registry)
    assert graph.nodes["n"].attrs.beta == 2.0


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
    assert list(problems) == ["broken_op"]
    assert isinstance(problems["broken_op"], PluginLoadError)


def test_a_broken_plugin_is_reported_once_where_the_spec_first_uses_it(plugins):
    registry, _ = plugins
    text = """
        name: p
        inputs: {x: {shape: [3]}}
        nodes:
          a: {op: broken_op, inputs: {x: x}}
          b: {op: broken_op, inputs: {x: a}}
          c: {op: brokn_op, inputs: {x: b}}
        """
    with pytest.raises(GraphnetError) as info:
        build_graph(parse_spec(text), registry)
    errors = info.value.all()
    assert [e.path for e in errors] == ["nodes.a.op", "nodes.c.op"]  # the typo is its own error
    assert "from distribution 'gn-broken') failed to import: ImportError" in errors[0].message
    assert errors[1].message == "unknown op 'brokn_op'" and "did you mean 'broken_op'?" in errors[1].hint
    # a spec that does not use it is untouched
    assert build_graph(one_node_spec("gn_swish"), registry).nodes["n"].op.name == "gn_swish"


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
    assert info.value.hint == "choose one with GRAPHNET_OP_PROVIDER=gn_act=gn-act-one, or pip uninstall gn-act-two"
    assert registry.get("relu").name == "relu"
    assert list(registry.problems()) == ["gn_act"]

    # the variable picks one (distribution names compare as pip compares them)
    monkeypatch.setenv("GRAPHNET_OP_PROVIDER", "gn_act=GN_Act.Two, relu=graphnet")
    chosen = Registry.from_entry_points()
    assert chosen.source("gn_act").distribution == "gn-act-two"
    assert type(chosen.get("gn_act")).__module__ == "gn_act_two"
    assert chosen.problems() == {}


def test_a_provider_that_does_not_provide_the_op_is_an_error(monkeypatch):
    monkeypatch.setenv("GRAPHNET_OP_PROVIDER", "relu=gn-shadow")
    registry = Registry.from_entry_points()
    with pytest.raises(RegistryError) as info:
        registry.get("relu")
    assert info.value.message == (
        "GRAPHNET_OP_PROVIDER picks 'gn-shadow' for op 'relu', but op 'relu' comes from 'graphnet'"
    )
    assert info.value.hint == "set GRAPHNET_OP_PROVIDER=relu=graphnet, or leave relu out of it"
    assert registry.get("tanh").name == "tanh"


@pytest.mark.parametrize("value", ["relu", "relu=", "=graphnet", "relu=graphnet,tanh"])
def test_a_malformed_provider_variable_is_an_error(monkeypatch, value):
    monkeypatch.setenv("GRAPHNET_OP_PROVIDER", value)
    with pytest.raises(RegistryError) as info:
        Registry.from_entry_points()
    assert info.value.message.startswith(f"GRAPHNET_OP_PROVIDER={value!r}: ")
    assert info.value.message.endswith("is not OP=DISTRIBUTION")
    assert "relu=graphnet,swish=graphnet-swish" in info.value.hint


def test_plugin_cannot_shadow_a_builtin_and_the_clash_is_reported_once(make_dist, monkeypatch):
    site = make_dist("gn-shadow", {"relu": "gn_plugin_shadow:Swish"}, {"gn_plugin_shadow": SWISH})
    monkeypatch.syspath_prepend(str(site))
    registry = Registry.from_entry_points()
    with pytest.raises(RegistryError) as info:
        registry.get("relu")
    assert "from distribution 'graphnet'" in info.value.message
    assert "from distribution 'gn-shadow'" in info.value.message
    assert info.value.hint == "choose one with GRAPHNET_OP_PROVIDER=relu=graphnet, or pip uninstall gn-shadow"

    # a spec using relu in the shorthand and in two nodes of its own: one error, at the place the
    # user wrote (the shorthand's field), not at relu1, relu2, ... which the shorthand made
    text = """\
name: p
inputs: {x: {shape: [4]}, y: {shape: [], dtype: int64}}
layers: {input: x, sizes: [4, 5, 5, 3], activation: relu, labels: y}
nodes:
  extra: {op: relu, inputs: {x: fc3}}
  more: {op: relu, inputs: {x: extra}}
"""
    with pytest.raises(GraphnetError) as info:
        build_graph(parse_spec(text), registry)
    (error,) = info.value.all()
    assert (error.path, error.line) == ("layers.activation", 3)
    assert error.message.startswith("op 'relu' is registered twice: ")
    assert "GRAPHNET_OP_PROVIDER=relu=graphnet" in error.hint
    # choosing graphnet's makes the same spec build
    monkeypatch.setenv("GRAPHNET_OP_PROVIDER", "relu=graphnet")
    graph = build_graph(parse_spec(text), Registry.from_entry_points())
    assert type(graph.nodes["relu1"].op).__module__ == "graphnet.ops.relu"


def test_default_registry_sees_a_plugin_after_reset(make_dist, monkeypatch):
    site = make_dist("gn-late", {"late_swish": "gn_plugin_late:Swish"}, {"gn_plugin_late": SWISH})
    monkeypatch.setattr(registry_module, "_default", None)
    monkeypatch.setattr(registry_module, "_carried", [])
    before = default_registry()
    register_op(Cube)  # in process: kept across the reset
    monkeypatch.syspath_prepend(str(site))
    assert "late_swish" not in default_registry().names()  # cached
    reset_default_registry()
    assert default_registry() is not before
    assert default_registry().source("late_swish").distribution == "gn-late"
    assert default_registry().get("cube").name == "cube"


def test_disabled_plugins_load_the_builtins_only(plugins, monkeypatch, run_cli):
    _, sites = plugins
    monkeypatch.setenv("GRAPHNET_DISABLE_PLUGINS", "1")
    registry = Registry.from_entry_points()
    builtins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["graphnet.ops"]
    assert registry.names() == sorted(builtins)
    assert registry.problems() == {}  # the broken plugin is not even looked at
    assert {s.name for s in registry.disabled} >= {"gn_swish", "broken_op"}
    with pytest.raises(OpError) as info:
        registry.get("gn_swish")
    assert info.value.message == (
        "op 'gn_swish' comes from the plugin 'gn-swish', and plugins are disabled (GRAPHNET_DISABLE_PLUGINS=1)"
    )
    assert info.value.hint == "unset GRAPHNET_DISABLE_PLUGINS to use it"
    register_op(Cube, registry=registry)  # the program's own ops still count
    assert registry.get("cube").name == "cube"
    assert Registry.from_entry_points(plugins=True).source("gn_swish").distribution == "gn-swish"
    # the whole CLI: `graphnet ops` with the broken plugin installed lists the built-ins, exit 0
    result = run_cli("ops", pythonpath=[sites["good"], sites["broken"]])
    assert result.returncode == 0, result.stderr
    assert "linear v1  [graphnet]" in result.stdout
    assert "gn_swish" not in result.stdout and "broken_op" not in result.stdout + result.stderr
    monkeypatch.setenv("GRAPHNET_DISABLE_PLUGINS", "0")
    assert "gn_swish" in Registry.from_entry_points().names()


def test_ops_cli_lists_healthy_ops_and_reports_the_broken_one(plugins, run_cli):
    _, sites = plugins
    result = run_cli("ops", pythonpath=[sites["good"], sites["broken"]])
    assert result.returncode == 1
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


def test_schema_describes_what_is_installed_and_names_what_is_broken(plugins):
    registry, _ = plugins
    register_op(Cube, registry=registry)
    schema = spec_json_schema(registry)
    node_ops = schema["$defs"]["NodeSpec"]["properties"]["op"]["enum"]
    assert {"gn_swish", "cube", "relu", "linear"} <= set(node_ops) and "broken_op" not in node_ops
    layers = schema["$defs"]["LayersSpec"]["properties"]
    assert {"relu", "tanh", "gn_swish", "cube"} <= set(layers["activation"]["enum"])
    assert not {"linear", "mse", "concat", "broken_op", "none"} & set(layers["activation"]["enum"])
    assert layers["output_activation"]["enum"][-1] == "none" and "softmax" in layers["output_activation"]["enum"]
    assert set(layers["loss"]["enum"]) == {"softmax_cross_entropy", "cross_entropy", "mse", "none"}
    assert schema["$comment"].startswith("ops left out because they cannot be loaded: op 'broken_op' ")
    assert "ImportError: this plugin needs libfoo" in schema["$comment"]
    # and without a broken plugin there is no comment
    assert "$comment" not in spec_json_schema(default_registry().copy())


# -- in-process registration ----------------------------------------------------------------------


def test_register_op_as_a_call_and_as_decorators(own_default):
    assert register_op(Cube) is Cube  # name from the class: Cube -> cube
    assert own_default.source("cube") == OpSource("cube", f"{__name__}:Cube", "<in-process>")
    assert own_default.source("cube").describe() == f"'{__name__}:Cube' registered in process"

    @register_op
    class LeakyCube(Cube):
        """y = x^3, another name"""

    @register_op(name="gn-cube.v2")
    class Anything(Cube):
        """y = x^3, a third name"""

    assert {"cube", "leaky_cube", "gn-cube.v2"} <= set(own_default.names())
    assert graphnet.register_op is register_op
    graph = build_graph(one_node_spec("leaky_cube"))  # the default registry has it
    model = Model(graph, dtype="float64")
    out = model.forward({"x": np.array([[1.0, -2.0, 0.5]])})
    np.testing.assert_array_equal(out["n"], [[1.0, -8.0, 0.125]])
    assert check_op(own_default.get("gn-cube.v2")).ok
    assert "cube" in {op["name"] for op in describe_ops(own_default)[0]}


def test_registering_follows_the_clash_rules(own_default):
    with pytest.raises(RegistryError) as info:
        register_op(Cube, name="relu")
    assert info.value.message == (
        "op 'relu' is already registered: 'graphnet.ops.relu:Relu' from distribution 'graphnet'"
    )
    assert info.value.hint == "register Cube under another name: register_op(Cube, name='my_relu')"
    assert type(own_default.get("relu")).__name__ == "Relu"  # untouched
    register_op(Cube)
    other = type("Other", (Cube,), {"__doc__": "another class with the same name"})
    with pytest.raises(RegistryError) as info:
        register_op(other, name="cube")
    assert info.value.message == f"op 'cube' is already registered: '{__name__}:Cube' registered in process"
    # the same class again (a notebook cell run twice) replaces it, and is loaded anew
    first = own_default.get("cube")
    register_op(Cube)
    assert own_default.get("cube") is not first and own_default.problems() == {}


@pytest.mark.parametrize("name", ["", "two words", "1st", "x" * 129, 5])
def test_a_registered_name_must_be_a_name(name):
    with pytest.raises(OpError, match="is not a name"):
        Registry({}).register(Cube, name)


def test_a_registered_declaration_is_checked_at_once():
    class NoRoles(Cube):
        inputs = ()

    with pytest.raises(PluginLoadError) as info:
        Registry({}).register(NoRoles, "no_roles")
    assert info.value.message.startswith("op 'no_roles' (")
    assert "NoRoles' registered in process): declares no input roles" in info.value.message
    with pytest.raises(PluginLoadError, match="is not a subclass of graphnet.op.Op"):
        Registry({}).register(object, "thing")


def test_one_class_under_two_names_keeps_both():
    # the registry names the op instance, not its class: an alias must not rename the original
    registry = default_registry().copy()
    registry.register(Cube, "gn_cube_a")
    registry.register(Cube, "gn_cube_b")
    first, second = registry.get("gn_cube_a"), registry.get("gn_cube_b")
    assert type(first) is type(second)
    assert (first.name, second.name) == ("gn_cube_a", "gn_cube_b")
    assert Cube.name == ""  # the class is untouched
    graph = build_graph(
        parse_spec(
            """
            name: p
            inputs: {x: {shape: [3]}}
            nodes:
              a: {op: gn_cube_a, inputs: {x: x}}
              b: {op: gn_cube_b, inputs: {x: a}}
            """
        ),
        registry,
    )
    assert graph.op_versions() == {"gn_cube_a": 1, "gn_cube_b": 1}


def test_a_copy_keeps_its_registrations_to_itself():
    copy = default_registry().copy()
    copy.register(Cube, "only_in_the_copy")
    assert "only_in_the_copy" in copy.names()
    assert "only_in_the_copy" not in default_registry().names()
    assert copy.get("relu") is default_registry().get("relu")  # loaded ops are shared


# -- versions -------------------------------------------------------------------------------------


class ScaleV1(Elementwise):
    """y = 2 x (version 1, as released)"""

    def forward(self, attrs, ctx, x):
        return 2 * x, None

    def backward(self, attrs, saved, dy):
        return {"x": 2 * dy}


class Scale(ScaleV1):
    """y = 3 x (version 2: the maths changed, so the version did)"""

    version = 2
    previous = (ScaleV1,)

    def forward(self, attrs, ctx, x):
        return 3 * x, None

    def backward(self, attrs, saved, dy):
        return {"x": 3 * dy}


class ScaleV3(Scale):
    """y = 4 x; lists only version 2, which lists version 1"""

    version = 3
    previous = (Scale,)

    def forward(self, attrs, ctx, x):
        return 4 * x, None

    def backward(self, attrs, saved, dy):
        return {"x": 4 * dy}


def scaled(registry, **versions):
    graph = build_graph(one_node_spec("scale"), registry, op_versions=versions)
    out = Model(graph, dtype="float64").forward({"x": np.ones((1, 3))})["n"]
    return graph.op_versions()["scale"], float(out[0, 0])


def test_versions_coexist_and_a_graph_asks_for_one():
    registry = default_registry().copy()
    registry.register(Scale, "scale")
    assert registry.versions("scale") == [1, 2]
    assert registry.get("scale").version == 2 and registry.get("scale", version=1).version == 1
    assert registry.get("scale", version=1).name == "scale"
    assert scaled(registry) == (2, 3.0)  # the current version by default
    assert scaled(registry, scale=1) == (1, 2.0)  # what a model file saved with v1 asks for
    assert scaled(registry, scale=2, relu=1) == (2, 3.0)  # ops the spec does not use are ignored

    with pytest.raises(OpError) as info:
        registry.get("scale", version=3)
    assert info.value.message == (
        f"op 'scale' has no version 3: '{__name__}:Scale' registered in process provides versions 1, 2"
    )
    with pytest.raises(GraphnetError) as info:
        build_graph(one_node_spec("scale"), registry, op_versions={"scale": 7})
    assert info.value.path == "nodes.n.op" and "has no version 7" in info.value.message

    deeper = default_registry().copy()
    deeper.register(ScaleV3, "scale")
    assert deeper.versions("scale") == [1, 2, 3]
    assert [scaled(deeper, scale=v)[1] for v in (1, 2, 3)] == [2.0, 3.0, 4.0]
    # every version is gradient-checked, an earlier one under name@version
    results = {r.target: r for r in check_registry(deeper, names=["scale"])}
    assert sorted(results) == ["scale", "scale@1", "scale@2"] and all(r.ok for r in results.values())
    (only,) = check_registry(deeper, names=["scale@1"])
    assert only.target == "scale@1" and only.ok
    (bad,) = check_registry(deeper, names=["scale@x"])
    assert "'scale@x' is not NAME or NAME@VERSION" in bad.error
    (described,) = [op for op in describe_ops(deeper)[0] if op["name"] == "scale"]
    assert (described["version"], described["versions"]) == (3, [1, 2, 3])


def test_versions_through_an_entry_point(make_dist, monkeypatch):
    module = """
from graphnet.op import Elementwise

class ScaleV1(Elementwise):
    def forward(self, attrs, ctx, x):
        return 2 * x, None

    def backward(self, attrs, saved, dy):
        return {"x": 2 * dy}

class Scale(ScaleV1):
    version = 2
    previous = (ScaleV1,)

    def forward(self, attrs, ctx, x):
        return 3 * x, None

    def backward(self, attrs, saved, dy):
        return {"x": 3 * dy}
"""
    site = make_dist("gn-scale", {"gn_scale": "gn_plugin_scale:Scale"}, {"gn_plugin_scale": module})
    monkeypatch.syspath_prepend(str(site))
    registry = Registry.from_entry_points()
    assert registry.versions("gn_scale") == [1, 2]
    graph = build_graph(one_node_spec("gn_scale"), registry, op_versions={"gn_scale": 1})
    assert graph.op_versions() == {"gn_scale": 1}
    assert Model(graph, dtype="float64").forward({"x": np.ones((1, 3))})["n"][0, 0] == 2.0


class OlderThanNothing(ScaleV1):
    version = 1
    previous = (Scale,)  # version 2 listed as an earlier one


class TwoVersionOnes(Scale):
    previous = (ScaleV1, type("AnotherV1", (ScaleV1,), {}))


class PreviousNotAnOp(Scale):
    previous = (int,)


@pytest.mark.parametrize(
    "cls, fragment",
    [
        (OlderThanNothing, "version 2 (Scale) is listed in previous but is not older than version 1"),
        (TwoVersionOnes, "has two classes for version 1: "),
        (PreviousNotAnOp, "lists <class 'int'> in previous, which is not a subclass of graphnet.op.Op"),
    ],
)
def test_bad_version_lists_are_refused(cls, fragment):
    with pytest.raises(PluginLoadError) as info:
        Registry({}).register(cls, "scale")
    assert fragment in info.value.message


# -- bad declarations -----------------------------------------------------------------------------


class RoleIsParam(Op):
    inputs = ("x", "w")
    params = (Param("w", shape=lambda attrs, shapes: (1,)),)

    def forward(self, attrs, ctx, x, w):
        return x, None


class NoRoles(Cube):
    inputs = ()


class BadNoGrad(Cube):
    no_grad = ("labels",)


class BadVariadic(Cube):
    variadic = ("xs",)


class BadVersion(Cube):
    version = 0


class NoForward(Op):
    def shape(self, attrs, x):
        return x


class OldExample(Cube):
    example = {"attrs": {}, "inputs": {"x": (3, 4)}}


class NotPydanticAttrs(Cube):
    Attrs = dict


@pytest.mark.parametrize(
    "cls, fragment",
    [
        (RoleIsParam, "uses names both as input role and parameter: ['w']"),
        (NoRoles, "declares no input roles"),
        (BadNoGrad, "no_grad names unknown roles ['labels']"),
        (BadVariadic, "variadic names unknown roles ['xs']"),
        (BadVersion, "has version 0; it must be an integer >= 1"),
        (NoForward, "defines no forward(self, attrs, ctx, ...)"),
        (OldExample, "declares `example`, which graphnet no longer reads: define examples(self, rng)"),
        (NotPydanticAttrs, "has Attrs <class 'dict'>, which is not a subclass of graphnet.op.OpAttrs"),
    ],
)
def test_bad_declarations_are_plugin_load_errors(cls, fragment):
    with pytest.raises(PluginLoadError) as info:
        Registry({}).register(cls, "weird")
    assert info.value.message.startswith(f"op 'weird' ('{__name__}:{cls.__qualname__}' registered in process): ")
    assert fragment in info.value.message


class LinearLike(Op):
    """y = x W (+ b)"""

    class Attrs(OpAttrs):
        units: int = 2
        bias: bool = True

    params = (
        Param("w", shape=lambda attrs, shapes: (shapes["x"][-1], attrs.units)),
        Param("b", shape=lambda attrs, shapes: (attrs.units,), enabled=lambda attrs: attrs.bias),
    )

    def shape(self, attrs, x):
        return (attrs.units,)

    def forward(self, attrs, ctx, x, w, b=None):
        return x @ w + (0 if b is None else b), (x, w)

    def backward(self, attrs, saved, dy, wants):
        x, w = saved
        return {"x": dy @ w.T, "w": x.T @ dy, "b": dy.sum(axis=0)}


class ShapeTakesY(LinearLike):
    def shape(self, attrs, y):
        return (attrs.units,)


class ForwardForgetsW(LinearLike):
    def forward(self, attrs, ctx, x, b=None):
        return x, None


class ForwardWantsMore(LinearLike):
    def forward(self, attrs, ctx, x, w, b=None, *, scale):
        return x, None


class BiasWithoutDefault(LinearLike):
    def forward(self, attrs, ctx, x, w, b):
        return x, None


class BackwardTooShort(LinearLike):
    def backward(self, attrs, dy):
        return {}


class ExamplesWithoutRng(LinearLike):
    def examples(self):
        return []


class OnnxWrong(LinearLike):
    def onnx(self, attrs, inputs):
        return "y"


class EverythingByKeyword(LinearLike):
    """**kwargs takes every role and parameter: fine"""

    def shape(self, attrs, **shapes):
        return (attrs.units,)

    def forward(self, attrs, ctx, **arrays):
        return super().forward(attrs, ctx, **arrays)


@pytest.mark.parametrize(
    "cls, fragment",
    [
        (ShapeTakesY, "shape(self, attrs, y) does not take input role 'x' and requires 'y', which graphnet "
                      "never passes (input roles: x; parameters: w, b)"),
        (ForwardForgetsW, "forward(self, attrs, ctx, x, b=None) does not take parameter 'w' "
                          "(input roles: x; parameters: w, b)"),
        (ForwardWantsMore, "forward(self, attrs, ctx, x, w, b=None, *, scale) requires 'scale', which "
                           "graphnet never passes"),
        (BiasWithoutDefault, "forward(self, attrs, ctx, x, w, b) needs a default for parameter 'b', which "
                             "can be turned off (write b=None)"),
        (BackwardTooShort, "backward(self, attrs, dy) does not take (attrs, saved, dy, wants) first"),
        (ExamplesWithoutRng, "examples(self) does not take (rng) first"),
        (OnnxWrong, "onnx(self, attrs, inputs) does not take (attrs, b, inputs, params) first"),
    ],
)
def test_a_signature_that_does_not_match_the_declaration_is_refused(cls, fragment):
    with pytest.raises(PluginLoadError) as info:
        Registry({}).register(cls, "lin")
    assert fragment in info.value.message
    assert info.value.message.startswith(f"op 'lin' ('{__name__}:{cls.__qualname__}' registered in process): ")
    assert Registry({}).register(EverythingByKeyword, "lin") is EverythingByKeyword
    assert Registry({}).register(LinearLike, "lin") is LinearLike


def test_a_signature_mismatch_names_the_distribution_and_fails_validate(make_dist, monkeypatch, write_spec, run_cli):
    source = (
        "from graphnet.op import Elementwise\n"
        "class Gelu(Elementwise):\n"
        "    def forward(self, attrs, ctx, inputs):\n        return inputs, None\n"
        "    def backward(self, attrs, saved, dy):\n        return {'x': dy}\n"
    )
    site = make_dist("gn-gelu", {"gn_gelu": "gn_plugin_gelu:Gelu"}, {"gn_plugin_gelu": source})
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginLoadError) as info:
        Registry.from_entry_points().get("gn_gelu")
    expected = (
        "op 'gn_gelu' ('gn_plugin_gelu:Gelu' from distribution 'gn-gelu'): forward(self, attrs, ctx, inputs) "
        "does not take input role 'x' and requires 'inputs', which graphnet never passes "
        "(input roles: x; parameters: none)"
    )
    assert info.value.message == expected
    spec = write_spec(
        """
        name: p
        inputs: {x: {shape: [3]}}
        nodes:
          n: {op: gn_gelu, inputs: {x: x}}
        """
    )
    result = run_cli("validate", spec, pythonpath=[site])
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"graphnet: error: {spec}:5: nodes.n.op: {expected} (fix the op's declaration)"


@pytest.mark.parametrize("attr, fragment", [("Missing", "failed to import: AttributeError"),
                                            ("not_a_class", "is not a subclass of graphnet.op.Op")])
def test_an_entry_point_naming_no_op_class_is_a_plugin_load_error(make_module, attr, fragment):
    module = make_module("not_a_class = 3\n")
    registry = Registry({"weird": [OpSource("weird", f"{module}:{attr}", "gn-weird")]})
    with pytest.raises(PluginLoadError) as info:
        registry.get("weird")
    assert f"op 'weird' ('{module}:{attr}' from distribution 'gn-weird')" in info.value.message
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


# -- the contract's shortcuts ---------------------------------------------------------------------


class AllGradients(Op):
    """y = a * b, a backward that ignores wants (and leaves it out)"""

    inputs = ("a", "b")

    def shape(self, attrs, a, b):
        return tuple(a)

    def forward(self, attrs, ctx, a, b):
        return a * b, (a, b)

    def backward(self, attrs, saved, dy):
        a, b = saved
        return {"a": dy * b, "b": dy * a}


def test_backward_may_ignore_wants_and_leave_it_out():
    registry = default_registry().copy()
    registry.register(AllGradients, "mul")
    spec = parse_spec(
        """
        name: p
        inputs: {x: {shape: [3]}}
        nodes:
          fc: {op: linear, inputs: {x: x}, attrs: {units: 3}}
          m: {op: mul, inputs: {a: fc, b: x}}
        """
    )
    model = Model(build_graph(spec, registry), dtype="float64", seed=1)
    x = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]])
    tape = model.forward({"x": x}, outputs=("m",), training=True)
    tape.backward({"m": np.ones((2, 3))})  # the gradient for b (data) is computed and dropped
    np.testing.assert_allclose(model.grads["fc.w"], x.T @ x)  # d/dW sum(x W * x) = x^T x
    assert check_op(registry.get("mul")).ok
    op = registry.get("mul")
    assert op.backward(None, (np.ones(2), np.full(2, 3.0)), np.ones(2), frozenset({"a"}))["b"].tolist() == [1.0, 1.0]


def test_default_examples_need_default_attributes():
    class NeedsUnits(Elementwise):
        class Attrs(OpAttrs):
            units: int

        def forward(self, attrs, ctx, x):
            return x, None

    registry = Registry({})
    registry.register(NeedsUnits, "needs_units")  # a declaration can be fine without its examples
    (result,) = check_registry(registry)
    assert result.error == (
        "needs_units: examples() failed: OpError: op 'needs_units' has required attributes (units), so the "
        "default gradient-check case cannot be built (define examples(self, rng) returning "
        "[Example(attrs={...}, inputs={...})])"
    )
    assert [e.inputs["x"].shape for e in Cube().examples(np.random.default_rng(0))] == [(3, 4), (2, 3, 5)]
    (case,) = AllGradients().examples(np.random.default_rng(0))
    assert (case.inputs["a"].shape, case.inputs["b"].shape, case.attrs) == ((3, 4), (3, 4), {})
    assert isinstance(case, Example)


def test_disable_plugins_in_process(plugins, monkeypatch):
    monkeypatch.setattr(registry_module, "_builtins_only", False)
    monkeypatch.setattr(registry_module, "_default", None)
    monkeypatch.setattr(registry_module, "_carried", [])
    assert "gn_swish" in default_registry().names()
    registry_module.disable_plugins()
    assert "gn_swish" not in default_registry().names() and "relu" in default_registry().names()
    left_out = [s.name for s in default_registry().disabled]
    assert {"broken_op", "gn_swish"} <= set(left_out) and left_out == sorted(left_out)
