"""Commands about specs and ops: ``validate``, ``schema``, ``ops``, ``gradcheck``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .app import app


@app.command()
def validate(
    spec: Path = typer.Argument(..., help="Spec file (YAML or JSON)."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: PATH=VALUE (repeatable)."),
) -> None:
    """Check a spec (structure, ops, roles, attributes, references, cycles, shapes) without running it."""
    from ..graph import build_graph
    from ..spec import load_spec

    graph = build_graph(load_spec(spec, overrides=set_))
    if graph.spec.train is not None:
        from ..train.loop import resolve_roles

        resolve_roles(graph, graph.spec.train)
    typer.echo(f"{spec}: ok — graph '{graph.spec.name}', {len(graph.nodes)} nodes, {graph.param_count():,} parameters")
    for name, node in graph.nodes.items():
        sources = ", ".join(f"{e.role}={e.source}" for e in node.edges)
        typer.echo(f"  {name:<14} {node.op.name:<22} ({sources}) -> {list(node.shape)}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format, with every registered op's attributes."""
    from ..schema import spec_json_schema

    typer.echo(json.dumps(spec_json_schema(), indent=2))


@app.command()
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


@app.command()
def gradcheck(
    spec: Optional[Path] = typer.Option(None, "--spec", help="Check a whole graph end to end instead."),
    op: list[str] = typer.Option([], "--op", help="Check only these ops (repeatable)."),
) -> None:
    """Finite-difference gradient check (float64) of every registered op, or of a spec's graph."""
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
