import json
import graphnet.registry as registry_module
from typer.testing import CliRunner
from graphnet.cli import app
from graphnet.registry import Registry, OpSource


def test_schema_names_a_broken_plugin_and_exits_1(monkeypatch):
    broken = Registry.from_entry_points()
    broken._sources["ghost"] = [OpSource("ghost", "gn_no_such_module:Ghost", "gn-ghost")]
    monkeypatch.setattr(registry_module, "_default", broken)
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 1
    schema = json.loads(result.stdout)
    assert "ghost" not in schema["$defs"]["NodeSpec"]["properties"]["op"]["enum"]
    assert result.stderr.startswith("graphnet: error: op 'ghost' ('gn_no_such_module:Ghost' from distribution 'gn-ghost') failed to import")


def test_no_plugins_flag(monkeypatch):
    monkeypatch.setattr(registry_module, "_builtins_only", False)
    monkeypatch.setattr(registry_module, "_default", None)
    result = CliRunner().invoke(app, ["--no-plugins", "ops"])
    assert result.exit_code == 0, result.output
    assert "linear v1  [graphnet]" in result.stdout and "swish" not in result.stdout
    result = CliRunner().invoke(app, ["--help"])
    assert "--no-plugins" in result.stdout
