"""Commands that train and score: ``run`` and ``eval``, with the progress display and the
end-of-run table."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import GraphnetError
from .app import app


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
    from ..modelfile import check_output, save_model
    from ..spec import load_spec
    from ..train.loop import prepare, train, train_section
    from ..train.schedule import describe

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
    from ..modelfile import load_model
    from ..train.loop import evaluate, prepare

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
