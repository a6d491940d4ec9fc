"""``graphnet sweep``: a hyperparameter search over a spec on Ray Tune, with a live table of the
trials and the ranked results at the end."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import GraphnetError
from .app import command, examples

DATA_HELP = (
    "Where the examples are, as for graphnet run: an .npz file or the folder of a dataset's IDX files. "
    "Default: the spec's data, found the way graphnet run finds it. The sweep looks once and every "
    "trial reads from that place (on a cluster: a path every machine has)."
)
ADDRESS_HELP = (
    "Join this Ray cluster instead of starting a local Ray: auto (a cluster this machine is part "
    "of), HOST:PORT of its head (what `ray start --head` printed), or ray://HOST:PORT (its Ray "
    "Client server, port 10001 by default: Tune's driver then runs on the head, and the output "
    "folder must be on a file system the head shares)."
)


@command(
    help="Run a hyperparameter sweep: the trials of a sweep file (a spec, a search space over its "
    "dotted paths, a metric, an early-stopping scheduler) on Ray Tune, each an ordinary graphnet "
    "training run.\n\n"
    "Ray runs on this machine's cores unless --address names a cluster. Writes every finished "
    "trial's model file, best.gnm (the best trial's), and results.csv / results.json (one row per "
    "trial) to --out, else the sweep's output:, else runs/NAME. Ctrl-C stops the sweep and keeps "
    "the finished trials; --resume goes on without redoing them. Needs pip install 'graphnet\\[sweep]'.",
    epilog=examples(
        "graphnet sweep specs/quick-sweep.yaml --out runs/try2 --max-concurrent 1",
        "graphnet sweep specs/quick-sweep.yaml --out runs/try2 --resume",
        "GRAPHNET_DATA=../shared/data graphnet sweep specs/mnist-sweep.yaml --address auto",
    ),
)
def sweep(
    file: Path = typer.Argument(..., metavar="SWEEP", readable=False, help="Sweep file (YAML or JSON)."),
    address: Optional[str] = typer.Option(None, "--address", metavar="ADDRESS",
                                          help=ADDRESS_HELP),
    max_concurrent: Optional[int] = typer.Option(
        None, "--max-concurrent", metavar="N", min=1,
        help="Run at most N trials at a time (default: as many as the CPUs allow).",
    ),
    out: Optional[Path] = typer.Option(None, "--out", metavar="DIR", readable=False,
                                       help="Folder for the results (default: the sweep's output:, else runs/NAME)."),
    resume: bool = typer.Option(False, "--resume", help="Go on with the interrupted sweep in the output folder."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", metavar="DIR|FILE.npz", help=DATA_HELP),
) -> None:
    from ..sweep import driver
    from ..sweep.load import describe_search
    from ..sweep.ray import check_address, require

    require()  # before anything is read: say what to install
    check_address(address)
    if resume and max_concurrent is not None:
        raise GraphnetError("--max-concurrent cannot change when a sweep resumes", path="--max-concurrent",
                            hint="resume without it: the sweep goes on with the value it started with")
    started = time.perf_counter()
    prepared = driver.prepare(file, out=out, data_dir=data_dir, resume=resume)
    _print_header(prepared, describe_search(prepared.plan.sweep))
    display = _make_display(prepared.plan.paths, prepared.plan.sweep.model.metric)
    prepared.journal.observer = display
    try:
        outcome = driver.run(prepared, address=address, max_concurrent=max_concurrent)
    finally:
        display.close()
    results = driver.finish(prepared, time.perf_counter() - started, outcome.cluster)
    _print_results(prepared, results, outcome, time.perf_counter() - started)
    if outcome.interrupted:
        again = f"graphnet sweep {file} --resume" + (f" --out {out}" if out else "")
        typer.echo(f"interrupted: the finished trials are kept; go on with: {again}")
        raise typer.Exit(130)
    if results.best is None:
        raise GraphnetError(
            f"no trial finished: all {len(results.rows)} failed (see their errors above)", file=str(file),
            hint="`graphnet validate` checks each searched value alone; a failing combination of values, "
                 "or a learning rate that diverges, fails its trial",
        )


# ----------------------------------------------------------------------------------------------
# what is printed
# ----------------------------------------------------------------------------------------------


def _print_header(prepared: Any, search: list[str]) -> None:
    plan, model = prepared.plan, prepared.plan.sweep.model
    scheduler = "no early stopping"
    if model.scheduler.type == "asha":
        scheduler = (f"ASHA (grace {_count(model.scheduler.grace_period, 'epoch')}, reduction {model.scheduler.reduction_factor}, "
                     f"max {model.scheduler.max_t or plan.max_epochs} epochs)")
    cpus = model.resources.cpus
    action = "resuming" if prepared.resume else "sweep"
    typer.echo(
        f"{plan.sweep.name}: {action} of {model.trial_count()} trials of {plan.sweep.spec_file} "
        f"({_count(model.samples, 'sample')} x {_count(model.grid_points(), 'grid point')}), "
        f"ranked by {model.metric} ({model.mode}); {scheduler}; {_count(cpus, 'CPU')} per trial"
    )
    for line in search:
        typer.echo(f"  search {line}")
    for item in plan.fixed:
        typer.echo(f"  set    {item}")
    typer.echo(f"  data   {prepared.data}")
    typer.echo(f"  output {prepared.out}")


def _count(number: int, what: str) -> str:
    return f"{number} {what}{'s' if number != 1 else ''}"


def _metric(name: str, value: Optional[float]) -> str:
    if value is None:
        return "-"
    if name.endswith(("error", "accuracy")):
        return f"{value * 100:.2f}%"
    return f"{value:.4f}"


def _values(record: Any, paths: list[str]) -> str:
    from ..sweep.models import format_value

    return ", ".join(f"{path}={format_value(record.values.get(path))}" for path in paths)


class _Lines:
    """One line per trial event (stdout is not a terminal: logs, CI)."""

    def __init__(self, paths: list[str], metric: str) -> None:
        self.paths = paths
        self.metric = metric

    def started(self, record: Any) -> None:
        typer.echo(f"{record.name} started: {_values(record, self.paths)}")

    def reported(self, record: Any) -> None:
        metrics = record.metrics
        if "epoch" not in metrics:
            return  # the end of the run: ended() says it
        typer.echo(f"{record.name} epoch {metrics['epoch']}/{metrics.get('epochs', '?')}: {self.metric} "
                   f"{_metric(self.metric, metrics.get(self.metric))} (kept {_metric(self.metric, metrics.get('score'))}, "
                   f"epoch {metrics.get('best_epoch')})")

    def ended(self, record: Any) -> None:
        typer.echo(f"{record.name} {_ending(record, self.metric, self.paths)}")

    def close(self) -> None:
        pass


def _ending(record: Any, metric: str, paths: list[str]) -> str:
    metrics = record.metrics
    if record.status == "failed":
        return f"failed ({_values(record, paths)}): {record.error}"
    score = _metric(metric, metrics.get("score"))
    if record.status == "stopped":
        return f"stopped early by ASHA after epoch {record.epoch}: {metric} {score}"
    return (f"{metrics.get('finished', 'completed')} after {record.epoch} epochs: {metric} {score} "
            f"(epoch {metrics.get('best_epoch')}), test error {_metric('error', metrics.get('test_error'))}")


class _Table(_Lines):
    """A live table of the trials (a terminal): state, values, epoch, metric."""

    def __init__(self, paths: list[str], metric: str) -> None:
        super().__init__(paths, metric)
        from rich.live import Live

        self.records: dict[str, Any] = {}
        self.live = Live(auto_refresh=False, transient=False)
        self.live.start()

    def started(self, record: Any) -> None:
        self._show(record)

    def reported(self, record: Any) -> None:
        self._show(record)

    def ended(self, record: Any) -> None:
        self._show(record)
        if record.status == "failed":
            self.live.console.print(f"{record.name} failed: {record.error}", highlight=False, markup=False)

    def _show(self, record: Any) -> None:
        from rich.table import Table

        self.records[record.id] = record
        table = Table(title="trials", title_justify="left")
        for column in ("trial", "state", *self.paths, "epoch", self.metric, "kept"):
            table.add_column(column, justify="left" if column in ("trial", "state") else "right", no_wrap=True)
        from ..sweep.models import format_value

        for each in sorted(self.records.values(), key=lambda r: r.number):
            metrics = each.metrics
            epoch = f"{each.epoch}/{metrics.get('epochs', '?')}" if each.epoch else "-"
            table.add_row(each.name, each.status, *(format_value(each.values.get(p)) for p in self.paths), epoch,
                          _metric(self.metric, metrics.get(self.metric) if "epoch" in metrics else None),
                          _metric(self.metric, metrics.get("score")))
        self.live.update(table, refresh=True)

    def close(self) -> None:
        self.live.stop()


def _make_display(paths: list[str], metric: str) -> _Lines:
    return _Table(paths, metric) if sys.stdout.isatty() else _Lines(paths, metric)


def _print_results(prepared: Any, results: Any, outcome: Any, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..sweep.models import format_value

    metric = prepared.plan.sweep.model.metric
    paths = prepared.plan.paths
    table = Table(title=f"{prepared.plan.sweep.name}: trials ranked by {metric} of the kept weights",
                  title_justify="left")
    for column in ("rank", "trial", "status", *paths, "epochs", metric, "test error", "seconds"):
        table.add_column(column, justify="left" if column in ("trial", "status") else "right",
                         no_wrap=column in ("rank", "trial", "status"))
    for row in results.rows:
        table.add_row(
            str(row.rank or "-"), row.trial, row.status, *(format_value(row.values.get(p)) for p in paths),
            str(row.epochs), _metric(metric, row.score), _metric("error", row.metrics.get("test_error")),
            f"{row.seconds:.1f}" if row.seconds is not None else "-",
        )
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    for row in results.rows:
        if row.status == "failed":
            typer.echo(f"{row.trial} failed ({_values(row, paths)}): {row.error}")
    out = prepared.out
    files = ", ".join(str(results.files[k]) for k in ("csv", "json"))
    typer.echo(f"results: {files}")
    best = results.best
    if best is not None:
        test = best.metrics.get("test_error")
        test = f", test error {_metric('error', test)}" if test is not None else ""
        typer.echo(f"best: {results.files['best']} = {out / best.model}: {_values(best, paths)}; {metric} "
                   f"{_metric(metric, best.score)} (epoch {best.best_epoch}){test}")
    typer.echo(f"{outcome.cluster}; {seconds:.1f}s in all")
