"""Commands that show what a model file holds, from its header alone (the tensors are never
read, so a 1 GB model shows in a fraction of a second): ``inspect`` and ``plot``.

``model_report(path)`` is what ``inspect --json`` prints; its keys are stable (a new key may be
added, none is renamed or removed):

    file, format (the file's format version), graphnet (the version that wrote it), name,
    description, dtype,
    inputs   [{name, shape, dtype}]
    nodes    [{name, op, version, inputs {role: source or [sources]}, shape (null when the op is
             not installed), params (number of scalars)}]
    outputs  [node names]
    totals   {nodes, parameters, parameter_bytes, tensors {params, state, optimizer}, file_bytes}
    preprocess (the record, or null), classes ({count, names} or null), data (a description or
    null), log {epochs [per-epoch records], best_epoch, stopped, seconds}, best_epoch, metrics,
    plugins  [{distribution (null: not recorded), version, ops {name: version}}]
    resumable (the file holds what --resume needs), problems [why something is not shown]
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import GraphnetError, ModelFileError
from .app import command, examples

# log field -> (column title, format); the columns shown are those some epoch recorded
LOG_COLUMNS = {
    "epoch": ("epoch", "{}"),
    "lr": ("lr", "{:.3g}"),
    "train_loss": ("train loss", "{:.4f}"),
    "val_loss": ("val loss", "{:.4f}"),
    "val_error": ("val error", "percent"),
    "val_accuracy": ("val accuracy", "percent"),
    "seconds": ("seconds", "{:.1f}"),
}


# ----------------------------------------------------------------------------------------------
# inspect
# ----------------------------------------------------------------------------------------------


@command(epilog=examples(
    "graphnet inspect runs/mnist-mlp.gnm",
    "graphnet inspect runs/mnist-mlp.gnm --json > mnist-mlp.json",
))
def inspect(
    model: Path = typer.Argument(..., metavar="MODEL", readable=False, help="Model file (.gnm)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (stable keys)."),
) -> None:
    """Show what a model file holds, from its header alone (fast at any size).

    The graph (node, op and version, inputs, output shape, parameters), the totals, the
    preprocessing with its fitted statistics, the classes, where the data came from, the
    training log with the best epoch, the test metrics, and the plugins (distribution and
    version) its ops need. --json prints the same as stable, machine-readable JSON."""
    report = model_report(model)
    if as_json:
        typer.echo(json.dumps(_finite(report), indent=2, allow_nan=False))
        return
    _print_report(report)


def model_report(path: Path) -> dict[str, Any]:
    """Everything ``inspect`` shows, as plain JSON-compatible data (see the module docstring)."""
    from ..modelfile import read_header

    header = read_header(path)
    raw = header.to_dict()
    graph, spec, problems = _graph_of(header, str(path))
    counts = _param_counts(header)
    nodes = []
    for name, node_spec in (spec.all_nodes().items() if spec is not None else []):
        node = graph.nodes.get(name) if graph is not None else None
        record = header.ops.get(node_spec.op)
        nodes.append({
            "name": name,
            "op": node_spec.op,
            "version": record.version if record is not None else None,
            "inputs": dict(node_spec.inputs),
            "shape": list(node.shape) if node is not None else None,
            "params": counts.get(name, 0),
        })
    log = raw.get("log") or {}
    return {
        "file": str(path),
        "format": header.source_format,
        "graphnet": header.graphnet,
        "name": header.spec.get("name"),
        "description": header.spec.get("description"),
        "dtype": header.dtype,
        "inputs": [{"name": name, "shape": list(value.get("shape", [])), "dtype": value.get("dtype")}
                   for name, value in (header.spec.get("inputs") or {}).items()],
        "nodes": nodes,
        "outputs": list(header.spec.get("outputs") or []),
        "totals": {
            "nodes": len(nodes),
            "parameters": header.param_count(),
            "parameter_bytes": sum(entry.nbytes for entry in header.tensors.params),
            "tensors": {group: len(getattr(header.tensors, group)) for group in ("params", "state", "optimizer")},
            "file_bytes": os.path.getsize(path),
        },
        "preprocess": raw.get("preprocess"),
        "classes": raw.get("classes"),
        "data": raw.get("data"),
        "log": {key: log.get(key) for key in ("epochs", "best_epoch", "stopped", "seconds")} | {
            "epochs": list(log.get("epochs") or [])},
        "best_epoch": log.get("best_epoch"),
        "metrics": raw.get("metrics") or {},
        "plugins": _plugins(header),
        "resumable": raw.get("resume") is not None,
        "problems": problems,
    }


def _graph_of(header: Any, file: str) -> tuple[Any, Any, list[str]]:
    """(graph, spec, problems): the graph of the embedded spec, checked as loading would check
    it. When an op is not installed (or in another version), the spec alone (no shapes) and why."""
    from ..modelfile import check_model
    from ..spec import validate_spec_data

    try:
        graph = check_model(header, file)
        return graph, graph.spec, []
    except ModelFileError as error:
        if not all((each.path or "").startswith("ops.") for each in error.all()):
            raise
        problems = [each.message + (f" ({each.hint})" if each.hint else "") for each in error.all()]
    # check_model validated the spec (size included) before it looked at the ops
    return None, validate_spec_data(header.spec, file=None), problems


def _param_counts(header: Any) -> dict[str, int]:
    """node -> number of trainable scalars, from the tensor directory ("fc1.w" is node fc1's)."""
    counts: dict[str, int] = {}
    for entry in header.tensors.params:
        node = entry.name.split(".", 1)[0]
        size = 1
        for dim in entry.shape:
            size *= dim
        counts[node] = counts.get(node, 0) + size
    return counts


def _plugins(header: Any) -> list[dict[str, Any]]:
    """The distributions providing the ops, each with its version and ops (sorted by name)."""
    found: dict[tuple, dict[str, int]] = {}
    for name, record in header.ops.items():
        found.setdefault((record.distribution, record.distribution_version), {})[name] = record.version
    return [{"distribution": dist, "version": version, "ops": dict(sorted(ops.items()))}
            for (dist, version), ops in sorted(found.items(), key=lambda item: (item[0][0] or "", item[0][1] or ""))]


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as null: strict JSON has no such numbers (a metric
    recorded after a diverged run may be NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120, highlight=False, soft_wrap=True)


def _print_report(report: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..train.data.record import describe_record

    console = _console()
    size = _bytes(report["totals"]["file_bytes"])
    console.print(escape(
        f"{report['file']}: model '{report['name']}', graphnet {report['graphnet']}, format "
        f"{report['format']}, {report['dtype']}, {report['totals']['parameters']:,} parameters; file {size}"))
    if report["description"]:
        console.print(escape(f"  {report['description']}"))
    inputs = ", ".join(f"{i['name']} {i['shape']} {i['dtype']}" for i in report["inputs"])
    console.print(escape(f"inputs: {inputs}"))
    graph = Table(title="graph", title_justify="left")
    for column, justify in (("node", "left"), ("op", "left"), ("version", "right"), ("inputs", "left"),
                            ("output shape", "left"), ("parameters", "right")):
        graph.add_column(column, justify=justify)
    for node in report["nodes"]:
        inputs = ", ".join(f"{role}={_sources(source)}" for role, source in node["inputs"].items())
        shape = "?" if node["shape"] is None else str(["N", *node["shape"]])
        graph.add_row(node["name"], node["op"], _text(node["version"]), escape(inputs), escape(shape),
                      f"{node['params']:,}" if node["params"] else "-")
    console.print(graph)
    totals = report["totals"]
    outputs = f"; outputs: {', '.join(report['outputs'])}" if report["outputs"] else ""
    console.print(escape(
        f"totals: {totals['nodes']} nodes, {totals['parameters']:,} parameters "
        f"({_bytes(totals['parameter_bytes'])}){outputs}"))
    for problem in report["problems"]:
        console.print(escape(f"note: output shapes unknown: {problem}"))
    console.print(escape(f"preprocess: {describe_record(report['preprocess'], report['classes'])}"))
    console.print(escape(f"data: {report['data'] or 'not recorded'}"))
    _print_log(console, report)
    _print_metrics(console, report)
    plugins = "; ".join(
        f"{p['distribution'] or 'unrecorded distribution'}"
        + (f" {p['version']}" if p["version"] else "") + " ("
        + ", ".join(f"{name} v{version}" for name, version in p["ops"].items()) + ")"
        for p in report["plugins"])
    console.print(escape(f"plugins: {plugins}"))


def _print_log(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    epochs = report["log"]["epochs"]
    if not epochs:
        console.print("training log: none")
        return
    keys = [key for key in LOG_COLUMNS if any(epoch.get(key) is not None for epoch in epochs)]
    table = Table(title="training log", title_justify="left")
    for key in keys:
        table.add_column(LOG_COLUMNS[key][0], justify="right")
    best = report["best_epoch"]
    for epoch in epochs:
        cells = [_cell(key, epoch.get(key)) for key in keys]
        if epoch.get("epoch") == best:
            cells[0] += " *"
        table.add_row(*cells)
    console.print(table)
    stopped = report["log"]["stopped"]
    seconds = report["log"]["seconds"]
    line = f"best epoch: {best} (marked *, its parameters are the file's)" if best else (
        "best epoch: none monitored (the file holds the last epoch's parameters)")
    if stopped:
        line += f"; stopped: {stopped}"
    if isinstance(seconds, (int, float)):
        line += f"; trained in {seconds:.1f}s"
    console.print(line)


def _print_metrics(console: Any, report: dict[str, Any]) -> None:
    metrics = report["metrics"]
    if not metrics:
        console.print("test metrics: none recorded")
        return
    shown = []
    for key, value in metrics.items():
        name = key.removeprefix("test_")
        if value is None:
            shown.append(f"{name} -")
        elif name in ("error", "accuracy"):
            shown.append(f"{name} {value * 100:.2f}%")
        else:
            shown.append(f"{name} {value:.4f}")
    console.print("test: " + "  ".join(shown))


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    form = LOG_COLUMNS[key][1]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    return f"{value * 100:.2f}%" if form == "percent" else form.format(value)


def _sources(source: Any) -> str:
    return f"[{', '.join(source)}]" if isinstance(source, list) else str(source)


def _text(value: Optional[Any]) -> str:
    return "-" if value is None else str(value)


def _bytes(count: int) -> str:
    from ..model import format_bytes

    return format_bytes(count)


# ----------------------------------------------------------------------------------------------
# plot
# ----------------------------------------------------------------------------------------------


@command(epilog=examples(
    "graphnet plot runs/mnist-mlp.gnm -o curves.png",
    "graphnet plot runs/a.gnm runs/b.gnm -o compare.svg --metric loss --metric error --metric lr",
))
def plot(
    models: list[Path] = typer.Argument(..., metavar="MODEL...", readable=False,
                                        help="One or more model files."),
    out: Path = typer.Option(..., "-o", "--out", metavar="FILE", readable=False,
                             help="The figure to write: .png, .svg or .pdf."),
    metric: list[str] = typer.Option(
        [], "--metric", metavar="NAME",
        help="A panel (repeatable): loss, error, accuracy, lr. Default: loss and error."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing figure."),
) -> None:
    """Plot the training and validation curves of one or several model files on one figure.

    One panel per metric (loss: training solid, validation dashed; error: validation, with a
    star at the best epoch), one colour per model, labelled by its file name. Reads the models'
    headers only. Needs matplotlib (the plot extra)."""
    from ..modelfile import read_header
    from ..plot import left_out, plot_curves

    if out.exists() and not overwrite:
        raise GraphnetError("the figure already exists", file=str(out),
                            hint="pass --overwrite to replace it, or -o to write elsewhere")
    logs = [read_header(path).to_dict().get("log") or {} for path in models]
    runs = list(zip(run_labels(models), logs))
    metrics = tuple(metric) or ("loss", "error")
    written = plot_curves(runs, out, metrics=metrics)
    for note in left_out(runs, metrics):
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {written}")


def run_labels(paths: list[Path]) -> list[str]:
    """Each model's label: its file stem (``runs/mnist-mlp.gnm`` -> ``mnist-mlp``); stems shared
    by several files get as many parent folders as make them differ (``a/m``, ``b/m``), and
    the same path given twice is numbered (``m (2)``)."""
    labels = [path.stem for path in paths]
    for depth in range(1, 64):
        repeated = {label for label in labels if labels.count(label) > 1}
        if not repeated:
            return labels
        changed = False
        for index, path in enumerate(paths):
            if labels[index] in repeated:
                parts = path.with_suffix("").parts[-depth - 1:]
                new = "/".join(parts)
                changed = changed or new != labels[index]
                labels[index] = new
        if not changed:
            break
    seen: dict[str, int] = {}
    numbered = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        numbered.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return numbered
