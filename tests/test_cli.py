"""The command line, run as a real process (exit codes, one-line errors on stderr) and in process
through typer's CliRunner (output parsing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

import graphnet
from graphnet.registry import default_registry

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted(p for p in (REPO / "specs").glob("*.yaml") if not p.stem.endswith("-sweep"))  # networks, not sweeps


BROKEN = """\
name: broken
inputs:
  x:
    shape: [4]
nodes:
  fc:
    op: linear
    inputs:
      x: x
    attrs:
      units: 3
      unitz: 2
"""


def stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_validate_accepts_every_example_spec(run_cli, path):
    result = run_cli("validate", path.relative_to(REPO))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    name = yaml.safe_load(path.read_text())["name"]
    assert f"ok — graph '{name}'" in result.stdout
    assert "\n  loss " in result.stdout  # every example has a loss node, listed with its op


def test_validate_rejects_a_broken_spec_with_one_line(run_cli, write_spec):
    path = write_spec(BROKEN)
    result = run_cli("validate", path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(f"graphnet: error: {path}:12: nodes.fc.attrs.unitz: ")
    assert "op 'linear' has no attribute 'unitz' (did you mean 'units'?" in lines[0]


def test_validate_error_from_set_points_at_the_flag(run_cli):
    result = run_cli("validate", "specs/skip-mlp.yaml", "--set", "train.optimizer.lr=-1")
    assert result.returncode == 1
    (line,) = stderr_lines(result)
    assert line.startswith("graphnet: error: --set train.optimizer.lr=-1: train.optimizer.lr: ")
    assert "received -1" in line


def test_validate_blames_the_set_for_a_rule_about_its_section(run_cli):
    result = run_cli("validate", "specs/seed-softmax.yaml", "--set", "train.epochs=1")
    assert result.returncode == 1
    (line,) = stderr_lines(result)
    assert line.startswith(
        "graphnet: error: --set train.epochs=1: train: epochs is 1 but the schedule's stages add up to 30 ("
    )
    assert "received" not in line  # not a dump of the whole train section
    assert '--set "train.schedule=[{epochs: 1, lr: 0.01}]"' in line


def test_validate_set_changes_the_graph(run_cli):
    result = run_cli("validate", "specs/seed-mse.yaml", "--set", "layers.sizes=[784, 20, 10, 10]")
    assert result.returncode == 0, result.stderr
    assert "(x=image) -> [20]" in result.stdout


def test_validate_missing_file(run_cli, tmp_path):
    result = run_cli("validate", tmp_path / "nope.yaml")
    assert result.returncode == 1
    (line,) = stderr_lines(result)
    assert "nope.yaml: cannot read spec" in line


def test_debug_shows_the_traceback(run_cli, write_spec):
    path = write_spec(BROKEN)
    result = run_cli("--debug", "validate", path)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "graphnet.errors.SpecError" in result.stderr
    assert stderr_lines(result)[-1].startswith(f"graphnet: error: {path}:12: nodes.fc.attrs.unitz: ")




# ----------------------------------------------------------------------------------------------
# help: -h everywhere, no Python type names, choices shown, examples that name real options
# ----------------------------------------------------------------------------------------------


def command_objects() -> dict:
    from typer.main import get_command

    from graphnet.cli import app

    return dict(get_command(app).commands)


COMMAND_NAMES = sorted(command_objects())
TYPE_NAMES = ("<bool>", "<list", "<str>", "<path>", "<int", "<float", "[str]", "{", "}", "list[", "Optional")


@pytest.mark.parametrize("command", ["", *COMMAND_NAMES], ids=["graphnet", *COMMAND_NAMES])
def test_help_shows_no_python_type_names_and_h_is_help(cli_runner, command):
    args = [command] if command else []
    long = cli_runner(*args, "--help")
    short = cli_runner(*args, "-h")
    assert long.exit_code == 0 and short.exit_code == 0, long.output
    assert short.stdout == long.stdout
    for fragment in TYPE_NAMES:
        assert fragment not in long.stdout, fragment
    assert "Examples:" in long.stdout
    examples = long.stdout.split("Examples:")[1].split("\n")
    assert any("graphnet " in line for line in examples)


@pytest.mark.parametrize(
    "command, usage",
    [("validate", "validate [OPTIONS] SPEC"), ("run", "run [OPTIONS] SPEC"), ("eval", "eval [OPTIONS] MODEL"),
     ("gradcheck", "gradcheck [OPTIONS]"), ("inspect", "inspect [OPTIONS] MODEL"),
     ("convert", "convert [OPTIONS] SRC DST"), ("predict", "predict [OPTIONS] MODEL INPUT..."),
     ("plot", "plot [OPTIONS] MODEL...")],
)
def test_usage_lines_name_arguments_by_their_metavar(cli_runner, command, usage):
    (line,) = [line.strip() for line in cli_runner(command, "-h").stdout.splitlines() if "Usage:" in line]
    assert line.endswith(usage)


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_every_example_names_a_real_command_and_real_options(command):
    """The examples in each command's help are checked against the command itself, so they
    cannot drift: the command is this one, every --option exists."""
    import shlex

    cmd = command_objects()[command]
    lines = [line.strip() for line in cmd.epilog.splitlines()[1:] if line.strip()]
    assert 1 <= len(lines) <= 3
    options = {opt for param in cmd.params for opt in getattr(param, "opts", [])}
    for line in lines:
        words = shlex.split(line.split(">")[0])
        start = words.index("graphnet")
        assert words[start + 1] == command, line
        for word in words[start + 2:]:
            if word.startswith("-"):
                assert word.split("=")[0] in options, (line, word)


def test_validate_examples_run(run_cli):
    import shlex

    for line in command_objects()["validate"].epilog.splitlines()[1:]:
        args = shlex.split(line)[1:]
        result = run_cli(*args)
        assert result.returncode == 0, (line, result.stderr)


@pytest.mark.parametrize("command", ["run", "eval"])
def test_run_and_eval_help_say_where_the_data_comes_from(cli_runner, command):
    text = " ".join(cli_runner(command, "-h").stdout.split())  # unwrapped
    assert "GRAPHNET_DATA" in text
    assert "--data-dir DIR|FILE.npz" in text or "--data-dir  DIR|FILE.npz" in cli_runner(command, "-h").stdout
    assert "an .npz file" in text and "IDX files" in text


def test_split_choices_are_shown_and_checked(cli_runner, run_cli):
    assert "[test|val]" in cli_runner("eval", "-h").stdout
    result = run_cli("eval", "no-such.gnm", "--split", "train")
    assert result.returncode == 2
    (line,) = stderr_lines(result)
    assert line.startswith("graphnet: error: Invalid value for '--split'")
    assert "'test', 'val'" in line


# ----------------------------------------------------------------------------------------------
# what main() prints: typed errors one per line, "internal error" for bugs only
# ----------------------------------------------------------------------------------------------

RAISER = """
import sys
from graphnet.cli import main
from graphnet.cli.app import command
from graphnet.errors import DataError, raise_all


@command("raise")
def raise_(kind: str) -> None:
    if kind == "bug":
        raise ZeroDivisionError("division by zero")
    if kind == "memory":
        raise MemoryError("Unable to allocate 40.0 GiB")
    raise_all([DataError("first", file="a.npz"), DataError("second", file="b.npz", hint="fix b")])


sys.argv = ["graphnet", "raise", "{kind}"]
main()
"""


def test_errors_carried_together_are_printed_one_per_line(run_python):
    result = run_python(RAISER.replace("{kind}", "typed"))
    assert result.returncode == 1
    assert stderr_lines(result) == ["graphnet: error: a.npz: first", "graphnet: error: b.npz: second (fix b)"]


def test_a_bug_is_an_internal_error(run_python):
    result = run_python(RAISER.replace("{kind}", "bug"))
    assert result.returncode == 2
    assert stderr_lines(result) == [
        "graphnet: internal error: ZeroDivisionError: division by zero (rerun with --debug for the traceback)"
    ]


def test_running_out_of_memory_is_an_error_not_a_bug(run_python):
    result = run_python(RAISER.replace("{kind}", "memory"))
    assert result.returncode == 1
    (line,) = stderr_lines(result)
    assert line.startswith("graphnet: error: out of memory: Unable to allocate 40.0 GiB (")
    assert "internal" not in line


@pytest.mark.parametrize("args", [("validat", "specs/skip-mlp.yaml"), ("validate",)], ids=["typo", "missing-arg"])
def test_usage_error_has_no_traceback(run_cli, args):
    result = run_cli(*args)
    assert "Traceback" not in result.stderr
    assert result.returncode == 2
    assert args[0] in result.stderr or "Missing" in result.stderr


def test_ops_json_describes_every_op(run_cli):
    result = run_cli("ops", "--json")
    listing = json.loads(result.stdout)
    registry = default_registry()
    problems = registry.problems()
    assert listing["problems"].keys() == problems.keys()
    by_name = {op["name"]: op for op in listing["ops"]}
    assert set(by_name) == set(registry.names()) - set(problems)
    for name, op in by_name.items():
        loaded = registry.get(name)
        assert op["inputs"] == list(loaded.inputs)
        assert op["version"] == loaded.version >= 1
        assert op["distribution"] == registry.source(name).distribution
        assert [a["name"] for a in op["attributes"]] == list(loaded.Attrs.model_fields)
        assert op["summary"]
    linear = by_name["linear"]
    assert linear["distribution"] == "graphnet"
    assert linear["params"] == ["w", "b"]
    units = {a["name"]: a for a in linear["attributes"]}
    assert units["units"]["required"] is True
    assert units["bias"] == {"name": "bias", "required": False, "default": True,
                             "description": "add a learned bias b"}
    assert by_name["softmax_cross_entropy"]["no_grad"] == ["labels"]
    assert by_name["concat"]["variadic"] == ["xs"]


def test_ops_text_listing(cli_runner):
    result = cli_runner("ops")
    assert "linear v1  [graphnet]" in result.stdout
    assert "inputs: x   params: w, b   attrs: units, bias=True, in_features=None, init='he_normal'" in result.stdout


def test_gradcheck_all_ops(run_cli):
    result = run_cli("gradcheck")
    assert result.returncode == 0, result.stderr
    names = default_registry().names()
    assert result.stdout.strip().endswith(f"ok: {len(names)} checked, tolerance 1e-05")
    for name in names:
        assert f"\n{name} " in result.stdout
    assert "FAIL" not in result.stdout


def test_gradcheck_a_spec(run_cli):
    result = run_cli("gradcheck", "--spec", "specs/skip-mlp.yaml")
    assert result.returncode == 0, result.stderr
    assert "skip-mlp                 stem.w" in result.stdout
    assert result.stdout.strip().endswith("ok: 1 checked, tolerance 1e-05")


def test_gradcheck_failure_in_process(cli_runner):
    result = cli_runner("gradcheck", "--op", "relux")
    assert result.exit_code == 1
    assert "graphnet: gradcheck failed: unknown op 'relux'" in result.stderr


def test_gradcheck_failure_exits_1(run_cli):
    result = run_cli("gradcheck", "--op", "relux")
    assert "graphnet: gradcheck failed: unknown op 'relux'" in result.stderr
    assert result.returncode == 1


@pytest.fixture(scope="module")
def spec_schema():
    from typer.testing import CliRunner

    from graphnet.cli import app

    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_schema_accepts_every_example_spec(spec_schema, path):
    errors = [e.message for e in spec_schema.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize("path", sorted((REPO / "specs").glob("*-sweep.yaml")), ids=lambda p: p.stem)
def test_schema_covers_sweep_files(spec_schema, path):
    sweep = yaml.safe_load(path.read_text())
    assert [e.message for e in spec_schema.iter_errors(sweep)] == []
    sweep["scheduler"]["grace_periode"] = 1  # a typo in a sweep file is flagged
    assert any("grace_periode" in e.message for e in spec_schema.iter_errors(sweep))


def test_schema_declares_draft_2020_12(spec_schema):
    assert spec_schema.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(spec_schema.schema["$defs"]["NodeSpec"]["properties"]["op"]["enum"]) >= {"linear", "relu"}


def skip_mlp():
    return yaml.safe_load((REPO / "specs" / "skip-mlp.yaml").read_text())


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda d: d["nodes"]["stem"]["attrs"].update(unitz=3), "'unitz' was unexpected"),
        (lambda d: d["nodes"]["stem"].update(op="lineer"), "'lineer' is not one of"),
        (lambda d: d["nodes"]["stem"]["attrs"].pop("units"), "'units' is a required property"),
        (lambda d: d["nodes"]["stem"]["attrs"].update(units=0), "0 is less than or equal to the minimum of 0"),
        (lambda d: d["nodes"]["loss"]["inputs"].pop("labels"), "'labels' is a required property"),
        (lambda d: d["nodes"]["act0"]["inputs"].update(y="stem"), "'y' was unexpected"),
        (lambda d: d.update(outptus=[]), "'outptus' was unexpected"),
        (lambda d: d["train"].update(schedule=[]), "should be non-empty"),
    ],
    ids=["unknown-attr", "unknown-op", "missing-attr", "bad-attr-value", "missing-role",
         "unknown-role", "unknown-key", "empty-schedule"],
)
def test_schema_rejects_bad_specs(spec_schema, change, fragment):
    data = skip_mlp()
    assert spec_schema.is_valid(data)
    change(data)
    assert not spec_schema.is_valid(data)
    messages = []
    pending = list(spec_schema.iter_errors(data))
    while pending:  # the errors of anyOf/oneOf branches are nested in .context
        error = pending.pop()
        messages.append(error.message)
        pending.extend(error.context or [])
    assert any(fragment in m for m in messages), messages


def test_schema_and_loader_agree_on_schedule_forms(spec_schema):
    from graphnet import parse_spec

    for schedule in ([{"epochs": 1, "lr": 0.1}], {"warmup_epochs": 1}, {"type": "cosine", "min_lr": 0.1},
                     {"type": "step", "step_epochs": 2}):
        data = skip_mlp()
        data["train"]["schedule"] = schedule
        data["train"].pop("epochs")
        assert spec_schema.is_valid(data), schedule
        parse_spec(json.dumps(data))  # and the loader takes it too


def test_version(run_cli, cli_runner):
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"graphnet {graphnet.__version__}"
    assert cli_runner("--version").stdout.strip() == f"graphnet {graphnet.__version__}"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "graphnet"
    if not script.exists():
        pytest.skip("the graphnet console script is not installed in this environment")
    import subprocess

    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"graphnet {graphnet.__version__}"
