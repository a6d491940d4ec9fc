"""Commands that train and score: ``run`` and ``eval``, with the progress display and the
end-of-run table."""

from __future__ import annotations

import shlex
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import DataError, GraphnetError
from .app import command, examples
from .spec import SET_HELP

DATA_DIR_HELP = (
    "Where the examples are: an .npz file (arrays x_train, y_train, x_test, y_test; any dataset) "
    "or the folder of the dataset's four IDX files. Default: searched for, as said above."
)


def data_search(flag: str) -> str:
    """The paragraph of `run -h` and `eval -h` saying where the data is looked for (one line:
    rich keeps line breaks, and the terminal wraps)."""
    return (
        f"The data: mnist and fashion-mnist are read from the first of these folders that holds "
        f"their four IDX files: {flag} DIR, the spec's train.data.path, $GRAPHNET_DATA/NAME, "
        "$GRAPHNET_CACHE/NAME (default ~/.cache/graphnet/NAME), /usr/share/datasets/NAME; if none "
        "does, they are downloaded into the cache. GRAPHNET_DATA names the folder that HOLDS mnist/ "
        "and fashion-mnist/. A spec's own data (dataset: npz or idx) is read from train.data.path, "
        f"or from {flag} when given."
    )


EVAL_DATA_HELP = (
    "Read the examples from here instead: an .npz file (arrays x_test, y_test; x_train, y_train "
    "for --split val) or a folder of IDX files, for any dataset, as long as the examples have "
    "the shape the model was trained on. Default: searched for, as said above."
)


# the spec paths of errors saying the data is not where the spec says (eval then suggests --data)
WHERE_THE_DATA_IS = ("train.data.path", "train.data.files", "train.data.validation.file")


class SplitName(str, Enum):
    """What `graphnet eval` scores (typer shows the choices and refuses any other)."""

    test = "test"
    val = "val"


@command(
    help="Train a spec, evaluate on the test set, and write a model file.\n\n" + data_search("--data-dir"),
    epilog=examples(
        "graphnet run specs/fashion-mlp.yaml",
        "GRAPHNET_DATA=../shared/data graphnet run specs/mnist-mlp.yaml --set train.epochs=5",
        "graphnet run my-spec.yaml --data-dir my-data.npz --resume runs/mine.gnm",
    ),
)
def run(
    spec: Path = typer.Argument(..., metavar="SPEC", readable=False, help="Spec file with a `train:` section."),
    set_: list[str] = typer.Option(
        [], "--set", metavar="PATH=VALUE", help=SET_HELP + " E.g. train.epochs=5."
    ),
    data_dir: Optional[str] = typer.Option(
        None, "--data-dir", metavar="DIR|FILE.npz", help=DATA_DIR_HELP
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", metavar="FILE", readable=False,
        help="Model file to write (default: train.output, else runs/NAME.gnm).",
    ),
    seed: Optional[int] = typer.Option(
        None, "--seed", metavar="N", min=0, help="Same as --set train.seed=N."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model file."),
    resume_from: Optional[Path] = typer.Option(
        None, "--resume", metavar="MODEL", readable=False,
        help="Continue the run saved in MODEL (checkpointed after every epoch, and where Ctrl-C "
        "stopped it) with the same spec, --set flags and data; it ends as if never stopped, "
        "bit for bit. Writes MODEL again unless --out names another file.",
    ),
) -> None:
    from ..modelfile import check_output, load_model
    from ..spec import load_spec
    from ..train.data.record import describe_record
    from ..train.loop import prepare, train, train_section
    from ..train.resume import read_resume
    from ..train.schedule import describe

    overrides = list(set_) + ([f"train.seed={seed}"] if seed is not None else [])
    loaded = load_spec(spec, overrides=overrides)
    cfg = train_section(loaded)
    # A resumed run is checked (resume data, not finished, the same spec) before any data is read.
    point = read_resume(load_model(resume_from), loaded) if resume_from is not None else None
    if resume_from is not None and (out is None or out.resolve() == resume_from.resolve()):
        output = check_output(resume_from, overwrite=True)  # the run goes on in its own file
    else:
        output = check_output(out or cfg.output or f"runs/{loaded.name}.gnm", overwrite)
    started = time.perf_counter()
    graph, roles, data = prepare(loaded, data_dir)
    checkpoint = model_file_checkpoint(output, data)

    val = len(data.val) if data.val is not None else 0
    automatic = " (automatic)" if cfg.data.validation is None and val else ""
    typer.echo(
        f"{loaded.name}: {graph.param_count():,} parameters; data {data.source} "
        f"({len(data.train):,} train / {val:,} val{automatic} / {len(data.test):,} test); "
        f"{cfg.optimizer.type}, {describe(cfg.schedule, cfg.optimizer.lr, cfg.total_epochs())}, "
        f"batch {cfg.batch_size}, seed {cfg.seed}"
    )
    for warning in data.warnings:
        typer.echo(f"warning: {warning}")
    typer.echo(f"preprocess: {describe_record(data.preprocess, data.classes_record())}")
    if point is not None:
        steps_per_epoch = -(-len(data.train) // cfg.batch_size)
        typer.echo(f"resuming {resume_from} {point.describe(cfg.total_epochs(), steps_per_epoch)}")
    metrics = [m for m in _METRICS if m in cfg.metrics]
    progress = _make_progress(metrics)
    try:
        result = train(loaded, checkpoint=checkpoint, progress=progress, prepared=(graph, roles, data),
                       resume=point)
    finally:
        progress.close()
    if not result.epochs:
        typer.echo("graphnet: interrupted before the first epoch ended; no model file written", err=True)
        raise typer.Exit(130)
    _print_summary(result, output, time.perf_counter() - started, metrics)
    if result.stopped == "interrupted":
        again = ["graphnet", "run", str(spec), "--resume", str(output), *(f"--set={item}" for item in overrides)]
        typer.echo(f"graphnet: interrupted; continue with: {shlex.join(again)}", err=True)
        raise typer.Exit(130)


@command(
    "eval",
    help="Evaluate a model file on the test (or validation) split of the data it was trained "
    "on, from the file alone.\n\n" + data_search("--data") + " Relative paths in train.data are "
    "relative to the folder of the spec the model was trained from (recorded in the model file, "
    "for people: nothing needs it); once the data has moved, point at it with --data (--data-dir "
    "is the same option).\n\n"
    "The test split reads only the test files and standardizes with the statistics recorded in "
    "the model file. The validation split is held out of the training examples, so it reads the "
    "training files (or the spec's validation file).",
    epilog=examples(
        "graphnet eval runs/fashion-mlp.gnm",
        "graphnet eval runs/mnist-mlp.gnm --split val --data ../shared/data/mnist",
        "graphnet eval runs/mine.gnm --data moved/my-data.npz",
    ),
)
def eval_(
    model: Path = typer.Argument(..., metavar="MODEL", readable=False, help="Model file written by `graphnet run`."),
    data: Optional[str] = typer.Option(
        None, "--data", "--data-dir", metavar="DIR|FILE.npz", help=EVAL_DATA_HELP
    ),
    split: SplitName = typer.Option(
        SplitName.test, "--split", metavar="[test|val]", help="The split to score."
    ),
) -> None:
    from ..modelfile import load_model
    from ..train.data import Statistics, load_split
    from ..train.loop import evaluate, resolve_roles

    loaded = load_model(model)  # the graph is built once, the weights read without random init
    spec = loaded.model.spec
    if spec.train is None:
        raise GraphnetError("the model's spec has no `train:` section, so its dataset is unknown",
                            file=str(model), hint="evaluate it from Python with your own data")
    graph = loaded.model.graph
    record = loaded.preprocess
    statistics = Statistics(record.get("mean"), record.get("std")) if record else None
    try:
        roles = resolve_roles(graph, spec.train)
        part = load_split(spec.train.data, (roles.x, spec.inputs[roles.x]), (roles.y, spec.inputs[roles.y]),
                          split.value, statistics=statistics, data=data, flag="--data",
                          spec_dir=Path.cwd())
        _check_classes(graph, roles, part.classes)
    except GraphnetError as error:
        if error.file is None:  # about the spec the model file holds: name the model file
            error.file = str(model)
        if data is None and error.path in WHERE_THE_DATA_IS and spec.train.data.dataset in ("npz", "idx"):
            trained_on = f" (the model was trained on {loaded.data})" if loaded.data else ""
            error.hint = f"the data is not where the model's spec says: pass --data DIR|FILE.npz{trained_on}"
        raise
    metrics = evaluate(loaded.model, part.split, roles)
    typer.echo(f"{model}: {spec.name} on {split.value} ({len(part.split)} examples from {part.source})")
    typer.echo(f"  loss {metrics['loss']:.4f}   error {metrics['error'] * 100:.2f}%   accuracy {metrics['accuracy'] * 100:.2f}%")
    recorded = loaded.metrics.get(f"{split.value}_error")
    if recorded is not None:
        typer.echo(f"  recorded when trained: error {recorded * 100:.2f}%")
    if part.read_train and split is SplitName.test:
        typer.echo("  note: the model file records no standardize statistics, so they were fitted again "
                   "on the training examples")


def _check_classes(graph: Any, roles: Any, classes: int) -> None:
    width = graph.nodes[roles.predict].shape[-1] if graph.nodes[roles.predict].shape else 1
    if classes > width:
        raise DataError(
            f"the labels hold {classes} classes (ids up to {classes - 1}) but the model's node "
            f"'{roles.predict}' has {width} outputs",
            hint="score it on data of the dataset it was trained on",
        )


def model_file_checkpoint(output: Path, data: Any):
    """The checkpoint function `graphnet run` gives the training loop: each call writes the model
    file ``output`` (atomically) with the log, the metrics and the resume snapshot, and what the
    file needs to be used without the data: the preprocessing with its fitted statistics, the
    classes, and a description of the data (no path on this machine: the file is used elsewhere,
    where `eval` finds the data by the usual search or `--data`)."""
    from ..modelfile import save_model

    keep = {"preprocess": data.preprocess, "classes": data.classes_record(), "data": data.description}

    def checkpoint(model, log, metrics, resume=None):
        log = {**log, "data": data.description}
        save_model(output, model, log=log, metrics=metrics, **keep,
                   resume=resume.header if resume else None, optimizer=resume.tensors if resume else None)

    return checkpoint


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
        self.shown, self.pending = self.started, 0
        self.task = self.bar.add_task("", total=steps, epoch=f"{epoch}/{epochs}", loss=0.0, rate=0.0)

    def step(self, loss: float, samples: int) -> None:
        self.samples += samples
        self.pending += 1
        self.loss = loss if self.samples == samples else 0.98 * self.loss + 0.02 * loss
        now = time.perf_counter()
        if now - self.shown < 0.05:  # the bar redraws 10 times a second: a step costs no more
            return
        self.bar.update(self.task, advance=self.pending, loss=self.loss,
                        rate=self.samples / max(now - self.started, 1e-9))
        self.shown, self.pending = now, 0

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
