"""Start-up cost: what a command imports, checked in fresh processes (issue #9).

``graphnet --help``, ``-h``, ``--version`` and every ``graphnet COMMAND --help`` import neither
numpy nor pydantic (``import graphnet`` is lazy, and the CLI imports the library inside its
commands); ``graphnet validate`` imports the modules of the ops its spec uses and no other op's,
built-in or plugin. How long start-up takes is measured by bench/cli_startup.py, never here.
"""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest

# Runs graphnet's real main() on ARGS (a JSON list in the code), then prints, as JSON, the exit
# status, what was printed and every module imported by then.
RUN_MAIN = """
import contextlib, io, json, sys
from graphnet.cli import main

out = io.StringIO()
runs = []
for args in {runs}:
    sys.argv = ["graphnet", *args]
    with contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as stop:
            runs.append(stop.code)
print(json.dumps({{"codes": runs, "stdout": out.getvalue(), "modules": sorted(sys.modules)}}))
"""

LOUD = """
from pydantic import BaseModel
from graphnet.op import Op

raise RuntimeError("{module} must not be imported")
"""


def run_main(run_python, *runs: list[str], pythonpath: list[str] | None = None) -> dict:
    result = run_python(RUN_MAIN.format(runs=json.dumps(list(runs))), pythonpath=pythonpath)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def heavy(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & {"numpy", "pydantic"})


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"]], ids=lambda a: a[0])
def test_help_and_version_import_neither_numpy_nor_pydantic(run_python, args):
    found = run_main(run_python, args)
    assert found["codes"] == [0]
    assert heavy(found["modules"]) == []
    assert not [m for m in found["modules"] if m.startswith("graphnet.ops")]
    if args == ["--version"]:
        assert found["stdout"] == f"graphnet {version('graphnet')}\n"
    else:
        assert "Usage: graphnet" in found["stdout"] and "validate" in found["stdout"]


def test_the_help_of_every_command_imports_neither_numpy_nor_pydantic(run_python):
    from typer.main import get_command

    from graphnet.cli import app

    commands = list(get_command(app).commands)
    assert {"validate", "run", "predict", "convert"} <= set(commands)
    found = run_main(run_python, *[[command, "--help"] for command in commands], ["run", "-h"])
    assert found["codes"] == [0] * (len(commands) + 1)
    assert found["stdout"].count("Usage: graphnet") == len(commands) + 1
    assert heavy(found["modules"]) == []


def test_import_graphnet_is_lazy_and_its_names_still_work(run_python):
    result = run_python(
        """
        import sys
        import graphnet
        print(sorted({m.split(".")[0] for m in sys.modules} & {"numpy", "pydantic"}))
        from graphnet import Model, GraphnetError, build_graph, load_spec, parse_spec, Spec, register_op
        from graphnet.errors import GraphnetError as Direct
        from graphnet.model import Model as DirectModel
        print(GraphnetError is Direct, Model is DirectModel, graphnet.Model is Model)
        namespace = {}
        exec("from graphnet import *", namespace)
        print(sorted(set(graphnet.__all__) - set(namespace)), set(graphnet.__all__) <= set(dir(graphnet)))
        print(graphnet.__version__)
        try:
            graphnet.no_such_name
        except AttributeError as error:
            print(error)
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "[]",
        "True True True",
        "[] True",
        version("graphnet"),
        "module 'graphnet' has no attribute 'no_such_name'",
    ]


def test_validate_imports_only_the_ops_its_spec_uses(run_python, make_dist):
    # a plugin whose module fails loudly when imported: validating a spec that does not use it
    # must not import it (nor any other op module than the spec's)
    site = make_dist("gn-startup-probe", {"gn_probe": "gn_startup_probe:Probe"},
                     {"gn_startup_probe": LOUD.format(module="gn_startup_probe")})
    found = run_main(run_python, ["validate", "specs/mnist-mlp.yaml"], pythonpath=[str(site)])
    assert found["codes"] == [0]
    assert "specs/mnist-mlp.yaml: ok" in found["stdout"]
    ops = sorted(m for m in found["modules"] if m.startswith("graphnet.ops."))
    assert ops == ["graphnet.ops.dropout", "graphnet.ops.linear", "graphnet.ops.relu",
                   "graphnet.ops.softmax_cross_entropy"]
    assert "gn_startup_probe" not in found["modules"]
    assert not [m for m in found["modules"] if m.startswith(("graphnet_conv", "graphnet_swish"))]


def test_a_clash_is_found_from_the_entry_points_alone(make_dist, monkeypatch):
    """Two distributions declaring one op name: the clash is reported without importing either
    module (both would fail loudly), and the other ops still load."""
    from graphnet.errors import RegistryError
    from graphnet.registry import Registry

    for dist in ("gn-clash-one", "gn-clash-two"):
        module = dist.replace("-", "_")
        monkeypatch.syspath_prepend(str(make_dist(dist, {"gn_clash": f"{module}:Probe"},
                                                  {module: LOUD.format(module=module)})))
    registry = Registry.from_entry_points()
    assert "gn_clash" in registry.names()
    with pytest.raises(RegistryError, match="op 'gn_clash' is registered twice"):
        registry.get("gn_clash")
    assert registry.get("relu").name == "relu"
