"""Commands about specs and ops: ``validate``, ``schema``, ``ops``, ``gradcheck``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .app import command, examples

SET_HELP = "Override a spec field by its dotted path (repeatable); VALUE is YAML."


@command(epilog=examples(
    "graphnet validate specs/mnist-mlp.yaml",
    'graphnet validate specs/seed-mse.yaml --set "layers.sizes=[784, 20, 10, 10]"',
    "graphnet validate specs/quick-sweep.yaml",
))
def validate(
    spec: Path = typer.Argument(..., metavar="SPEC", readable=False, help="Spec or sweep file (YAML or JSON)."),
    set_: list[str] = typer.Option([], "--set", metavar="PATH=VALUE", help=SET_HELP),
) -> None:
    """Check a spec (structure, ops, roles, attributes, references, cycles, shapes) without running it.

    Also checks that training it (or, without a train: section, holding the model) fits in
    memory, and prints what it needs, then the graph's nodes: op, inputs, output shape.

    A sweep file (one with a top-level search:) is checked with its spec: the sweep's keys, its
    set: overrides, and every value of its search space applied to the spec as --set would."""
    from ..graph import build_graph
    from ..spec import parse_spec
    from ..spec.files import read_spec_file
    from ..sweep import looks_like_sweep
    from ..train.loop import check_memory, resolve_roles

    text = read_spec_file(spec)
    if looks_like_sweep(text):
        _validate_sweep(spec, text, set_)
        return
    graph = build_graph(parse_spec(text, file=str(spec), overrides=set_))
    if graph.spec.train is not None:
        resolve_roles(graph, graph.spec.train)
    need = check_memory(graph)  # refuses, with the numbers, what cannot fit
    typer.echo(f"{spec}: ok — graph '{graph.spec.name}', {len(graph.nodes)} nodes, {graph.param_count():,} parameters")
    typer.echo(f"  memory: {need.describe()}")
    for name, node in graph.nodes.items():
        sources = ", ".join(f"{e.role}={e.source}" for e in node.edges)
        typer.echo(f"  {name:<14} {node.op.name:<22} ({sources}) -> {list(node.shape)}")


def _validate_sweep(path: Path, text: str, set_: list[str]) -> None:
    """`graphnet validate SWEEP`: the sweep file, then every searched value against its spec."""
    from ..errors import GraphnetError
    from ..graph import build_graph
    from ..sweep import check_sweep, parse_sweep
    from ..sweep.load import describe_search
    from ..train.loop import check_memory

    if set_:
        raise GraphnetError("--set applies to specs; this is a sweep file", file=str(path),
                            hint="put fixed values in the sweep's `set:` section")
    plan = check_sweep(parse_sweep(text, file=str(path)))
    sweep, model = plan.sweep, plan.sweep.model
    scheduler = "no early stopping"
    if model.scheduler.type == "asha":
        scheduler = (f"ASHA (grace {model.scheduler.grace_period}, reduction {model.scheduler.reduction_factor}, "
                     f"max {model.scheduler.max_t or plan.max_epochs} epochs)")
    typer.echo(f"{path}: ok — sweep '{sweep.name}' of {sweep.spec_file}: {_count(model.trial_count(), 'trial')} "
               f"({_count(model.samples, 'sample')} x {_count(model.grid_points(), 'grid point')}), ranked by "
               f"{model.metric} ({model.mode}); {scheduler}; {_count(model.resources.cpus, 'CPU')} per trial")
    for line, checked in zip(describe_search(sweep), plan.checked.values()):
        typer.echo(f"  search {line}   ({_count(checked, 'value')} checked)")
    for item in plan.fixed:
        typer.echo(f"  set    {item}")
    graph = build_graph(plan.base)
    typer.echo(f"  spec   '{plan.base.name}' with set: applied: {len(graph.nodes)} nodes, "
               f"{graph.param_count():,} parameters; memory: {check_memory(graph).describe()}")


def _count(number: int, what: str) -> str:
    return f"{number:,} {what}{'s' if number != 1 else ''}"


@command(epilog=examples("graphnet schema > graphnet-spec.schema.json"))
def schema() -> None:
    """Print the JSON Schema of spec and sweep files, with every installed op's attributes.

    An op that cannot be loaded (a broken or clashing plugin) is left out of the schema and
    named on stderr, and the command exits 1."""
    from ..registry import default_registry
    from ..sweep.models import file_json_schema

    typer.echo(json.dumps(file_json_schema(), indent=2))
    problems = default_registry().problems()
    for error in problems.values():
        typer.echo(f"graphnet: error: {error}", err=True)
    if problems:
        raise typer.Exit(1)


@command(epilog=examples("graphnet ops", "graphnet ops --json"))
def ops(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the registered ops: roles, attributes with defaults, version, distribution, doc."""
    from ..schema import describe_ops

    described, problems = describe_ops()
    if as_json:
        typer.echo(json.dumps({"ops": described, "problems": problems}, indent=2))
    else:
        for item in described:
            attrs = ", ".join(
                f"{a['name']}" + ("" if a["required"] else f"={a['default']!r}") for a in item["attributes"]
            )
            params = ", ".join(item["params"]) or "-"
            typer.echo(f"{item['name']} v{item['version']}  [{item['distribution']}]")
            typer.echo(f"    {item['summary']}")
            typer.echo(f"    inputs: {', '.join(item['inputs'])}   params: {params}   attrs: {attrs or '-'}")
    for name, message in problems.items():
        typer.echo(f"graphnet: error: {message}", err=True)
    if problems:
        raise typer.Exit(1)


@command(epilog=examples(
    "graphnet gradcheck --op linear --op relu",
    "graphnet gradcheck --spec specs/skip-mlp.yaml",
))
def gradcheck(
    spec: Optional[Path] = typer.Option(
        None, "--spec", metavar="SPEC", readable=False, help="Check a spec's whole graph end to end instead."
    ),
    op: list[str] = typer.Option(
        [], "--op", metavar="NAME[@VERSION]", help="Check only this op, or one version of it (repeatable)."
    ),
) -> None:
    """Finite-difference gradient check (float64) of every version of every registered op, with
    each op's dtype and shape contract in float64 and float32; or of a spec's graph."""
    from .. import gradcheck as gc

    if spec is not None:
        from ..graph import build_graph
        from ..spec import load_spec

        results = [gc.check_graph(build_graph(load_spec(spec)))]
    else:
        results = gc.check_registry(names=op or None)
    failures: list[str] = []
    typer.echo(f"{'target':<24} {'input/param':<14} {'max rel err':>11} {'checked':>8} {'kinks':>6}")
    for result in results:
        if result.error:
            typer.echo(f"{result.target:<24} {'-':<14} {'ERROR':>11}")
        for role in result.roles.values():
            mark = "" if role.ok else "  FAIL"
            typer.echo(f"{result.target:<24} {role.name:<14} {role.worst:>11.2e} {role.checked:>8} {role.skipped:>6}{mark}")
        failures.extend(result.failures())
    if failures:
        for failure in failures:
            typer.echo(f"graphnet: gradcheck failed: {failure}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {len(results)} checked, tolerance {gc.TOLERANCE:.0e}")
