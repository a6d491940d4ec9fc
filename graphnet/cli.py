"""The ``graphnet`` command line: thin typer commands that parse, call the library, print.

Every command reports a bad input as one line on stderr (``graphnet: error: <file>:<line>: <path>:
<what> (<how to fix>)``) and exits 1; ``--debug`` shows the traceback as well. Importing this
module imports no op: ops load when a command needs them.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Optional

import typer

from . import __version__
from .errors import GraphnetError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Declare, train and ship neural networks on plain numpy.",
)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"graphnet {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    _state["debug"] = debug


def main() -> None:
    """Console-script entry point. Every failure is one line on stderr: a GraphnetError exits 1,
    a command-line usage error exits 2, Ctrl-C exits 130; ``--debug`` adds the traceback."""
    try:
        code = app(standalone_mode=False)
    except GraphnetError as error:
        _report(f"error: {error}")
        sys.exit(1)
    except (KeyboardInterrupt, typer.Abort):
        _report("interrupted")
        sys.exit(130)
    except Exception as error:
        if _is_usage_error(error):
            command = getattr(getattr(error, "ctx", None), "command_path", "graphnet")
            if error.format_message():  # empty when the help was shown for a bare `graphnet`
                _report(f"error: {error.format_message()} (see '{command} --help')")
            sys.exit(error.exit_code)
        _report(f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)")
        sys.exit(2)
    sys.exit(code or 0)


def _report(message: str) -> None:
    if _state["debug"]:
        traceback.print_exc()
    typer.echo(f"graphnet: {message}", err=True)


def _is_usage_error(error: Exception) -> bool:
    # typer bundles its own copy of click; recognise click's exceptions by what they offer.
    return hasattr(error, "format_message") and isinstance(getattr(error, "exit_code", None), int)


# ----------------------------------------------------------------------------------------------
# validate, schema, ops, gradcheck
# ----------------------------------------------------------------------------------------------


@app.command()
def validate(
    spec: Path = typer.Argument(..., help="Spec file (YAML or JSON)."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: PATH=VALUE (repeatable)."),
) -> None:
    """Check a spec (structure, ops, roles, attributes, references, cycles, shapes) without running it."""
    from .graph import build_graph
    from .spec import load_spec

    graph = build_graph(load_spec(spec, overrides=set_))
    if graph.spec.train is not None:
        from .train.loop import resolve_roles

        resolve_roles(graph, graph.spec.train)
    typer.echo(f"{spec}: ok — graph '{graph.spec.name}', {len(graph.nodes)} nodes, {graph.param_count():,} parameters")
    for name, node in graph.nodes.items():
        sources = ", ".join(f"{e.role}={e.source}" for e in node.edges)
        typer.echo(f"  {name:<14} {node.op.name:<22} ({sources}) -> {list(node.shape)}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format, with every registered op's attributes."""
    from .schema import spec_json_schema

    typer.echo(json.dumps(spec_json_schema(), indent=2))


@app.command()
def ops(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the registered ops: roles, attributes with defaults, version, distribution, doc."""
    from .schema import describe_ops

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
    from . import gradcheck as gc

    if spec is not None:
        from .graph import build_graph
        from .spec import load_spec

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


# ----------------------------------------------------------------------------------------------
# run and eval
# ----------------------------------------------------------------------------------------------


@app.command()
def run(
    spec: Path = typer.Argument(..., help="Spec file with a `train:` section."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: PATH=VALUE (repeatable), e.g. train.epochs=5."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Directory holding the dataset's four IDX files."),
    out: Optional[Path] = typer.Option(None, "--out", help="Model file to write (default: train.output, else runs/NAME.gnm)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Same as --set train.seed=N."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model file."),
) -> None:
    """Train a spec, evaluate on the test set, and write a model file."""
    from .modelfile import check_output, save_model
    from .spec import load_spec
    from .train.loop import prepare, train, train_section
    from .train.schedule import describe

    overrides = list(set_) + ([f"train.seed={seed}"] if seed is not None else [])
    loaded = load_spec(spec, overrides=overrides)
    cfg = train_section(loaded)
    output = check_output(out or cfg.output or f"runs/{loaded.name}.gnm", overwrite)
    started = time.perf_counter()
    graph, roles, data = prepare(loaded, data_dir)
    spec_dir = str(spec.resolve().parent)

    def checkpoint(model, log, metrics):
        save_model(output, model, log={**log, "spec_dir": spec_dir}, metrics=metrics)

    val = len(data.val) if data.val is not None else 0
    typer.echo(
        f"{loaded.name}: {graph.param_count():,} parameters; data {data.source} "
        f"({len(data.train):,} train / {val:,} val / {len(data.test):,} test); "
        f"{cfg.optimizer.type}, {describe(cfg.schedule, cfg.optimizer.lr, cfg.total_epochs())}, "
        f"batch {cfg.batch_size}, seed {cfg.seed}"
    )
    metrics = [m for m in _METRICS if m in cfg.metrics]
    progress = _make_progress(metrics)
    try:
        result = train(loaded, checkpoint=checkpoint, progress=progress, prepared=(graph, roles, data))
    finally:
        progress.close()
    if not result.epochs:
        typer.echo("graphnet: interrupted before the first epoch ended; no model file written", err=True)
        raise typer.Exit(130)
    _print_summary(result, output, time.perf_counter() - started, metrics)
    if result.stopped == "interrupted":
        raise typer.Exit(130)


@app.command("eval")
def eval_(
    model: Path = typer.Argument(..., help="Model file written by `graphnet run`."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Directory holding the dataset's four IDX files."),
    split: str = typer.Option("test", "--split", help="test or val."),
) -> None:
    """Evaluate a model file on its dataset's test (or validation) split, from the file alone."""
    from .modelfile import load_model
    from .train.loop import evaluate, prepare

    if split not in ("test", "val"):
        raise GraphnetError(f"--split must be 'test' or 'val', received {split!r}", hint="use --split test")
    loaded = load_model(model)
    spec = loaded.model.spec
    if spec.train is None:
        raise GraphnetError("the model's spec has no `train:` section, so its dataset is unknown",
                            file=str(model), hint="evaluate it from Python with your own data")
    # Relative data paths were relative to the spec the model was trained from.
    recorded_dir = loaded.log.get("spec_dir")
    spec_dir = Path(recorded_dir) if isinstance(recorded_dir, str) and Path(recorded_dir).is_dir() else None
    _, roles, data = prepare(spec, data_dir, spec_dir=spec_dir)
    part = data.test if split == "test" else data.val
    if part is None:
        raise GraphnetError("the spec holds out no validation split", hint="use --split test")
    metrics = evaluate(loaded.model, part, roles)
    typer.echo(f"{model}: {spec.name} on {split} ({len(part)} examples from {data.source})")
    typer.echo(f"  loss {metrics['loss']:.4f}   error {metrics['error'] * 100:.2f}%   accuracy {metrics['accuracy'] * 100:.2f}%")
    recorded = loaded.metrics.get(f"{split}_error")
    if recorded is not None:
        typer.echo(f"  recorded when trained: error {recorded * 100:.2f}%")


# ----------------------------------------------------------------------------------------------
# progress and the end-of-run table
# ----------------------------------------------------------------------------------------------


class _LineProgress:
    """One plain line per epoch (stdout is not a terminal: logs, CI)."""

    def __init__(self, metrics: list[str]) -> None:
        self.metrics = metrics

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.epochs = epochs

    def step(self, loss: float, samples: int) -> None:
        pass

    def epoch_end(self, log: Any, best: bool) -> None:
        typer.echo(_epoch_line(log, self.epochs, best, self.metrics))

    def close(self) -> None:
        pass


class _BarProgress(_LineProgress):
    """A rich progress bar per epoch with the live loss and samples/s."""

    def __init__(self, metrics: list[str]) -> None:
        super().__init__(metrics)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:,.0f} samples/s"),
            TimeRemainingColumn(), transient=True,
        )
        self.bar.start()
        self.task = None

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.epochs = epochs
        self.started, self.samples, self.loss = time.perf_counter(), 0, 0.0
        self.task = self.bar.add_task("", total=steps, epoch=f"{epoch}/{epochs}", loss=0.0, rate=0.0)

    def step(self, loss: float, samples: int) -> None:
        self.samples += samples
        self.loss = loss if self.samples == samples else 0.98 * self.loss + 0.02 * loss
        rate = self.samples / max(time.perf_counter() - self.started, 1e-9)
        self.bar.update(self.task, advance=1, loss=self.loss, rate=rate)

    def epoch_end(self, log: Any, best: bool) -> None:
        self.bar.remove_task(self.task)
        self.bar.console.print(_epoch_line(log, self.epochs, best, self.metrics), highlight=False)

    def close(self) -> None:
        self.bar.stop()


def _make_progress(metrics: list[str]) -> _LineProgress:
    return _BarProgress(metrics) if sys.stdout.isatty() else _LineProgress(metrics)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


# metric -> (column title, EpochLog field, format); `train.metrics` picks which are shown
_METRICS = {
    "loss": ("val loss", "val_loss", _number),
    "error": ("val error", "val_error", _percent),
    "accuracy": ("val accuracy", "val_accuracy", _percent),
}


def _epoch_line(log: Any, epochs: int, best: bool, metrics: list[str]) -> str:
    shown = "  ".join(
        f"{_METRICS[m][0]} {_METRICS[m][2](getattr(log, _METRICS[m][1]))}" for m in metrics
    )
    return (
        f"epoch {log.epoch}/{epochs}  lr {log.lr:.3g}  train loss {log.train_loss:.4f}  {shown}  "
        f"{log.seconds:.1f}s  {log.samples_per_second:,.0f} samples/s" + ("  *best" if best else "")
    )


def _print_summary(result: Any, output: Path, seconds: float, metrics: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result.model.spec.name}: training log")
    for column in ("epoch", "lr", "train loss", *(_METRICS[m][0] for m in metrics), "seconds"):
        table.add_column(column, justify="right")
    for log in result.epochs:
        mark = " *" if log.epoch == result.best_epoch else ""
        values = [_METRICS[m][2](getattr(log, _METRICS[m][1])) for m in metrics]
        table.add_row(f"{log.epoch}{mark}", f"{log.lr:.3g}", _number(log.train_loss), *values, f"{log.seconds:.1f}")
    console = Console(width=100)
    console.print(table)
    if result.stopped:
        console.print(f"stopped: {result.stopped}")
    best = f"best epoch {result.best_epoch} (val)" if result.best_epoch else "last epoch"
    test = result.test
    console.print(
        f"test ({best}): loss {test['loss']:.4f}  error {test['error'] * 100:.2f}%  "
        f"accuracy {test['accuracy'] * 100:.2f}%", highlight=False,
    )
    console.print(f"model file: {output}   total {seconds:.1f}s", highlight=False)


if __name__ == "__main__":
    main()
