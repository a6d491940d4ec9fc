"""The results of a sweep: every finished trial's model file, the ranking, ``results.csv`` and
``results.json`` (one row per trial), and ``best.gnm``.

A trial's score is the sweep's metric of the weights its model file keeps (the best epoch's
under ``keep_best``, else the last epoch's), read from the model file itself: ``graphnet eval
best.gnm --split val`` gives the score the ranking shows. Failed and interrupted trials are
listed after the ranked ones, with their values and what happened.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..atomic import write_atomic
from ..errors import GraphnetError
from .state import FINISHED, Journal, TrialRecord
from .trial import MODEL_FILE

TRIALS_DIR = "trials"
BEST = "best.gnm"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
VAL = ("val_loss", "val_error", "val_accuracy")
TEST = ("test_loss", "test_error", "test_accuracy")


@dataclass
class Row:
    """One trial in the results."""

    trial: str
    number: int
    status: str
    values: dict[str, Any]
    rank: Optional[int] = None
    epochs: int = 0  # epochs trained
    best_epoch: Optional[int] = None  # the epoch whose weights the model file keeps
    score: Optional[float] = None
    metrics: dict[str, Optional[float]] = field(default_factory=dict)  # val_* of the kept epoch, test_*
    seconds: Optional[float] = None
    blas_threads: Optional[int] = None
    model: Optional[str] = None  # the model file, relative to the output folder
    error: Optional[str] = None


@dataclass
class Results:
    rows: list[Row]
    best: Optional[Row]
    files: dict[str, Path]  # "csv", "json", "best" -> where written


def collect(journal: Journal, out: Path, metric: str, mode: str) -> list[Row]:
    """A row per trial, finished trials' model files copied into ``OUT/trials/``, ranked."""
    rows = [_row(record, out, metric) for record in journal.ordered()]
    ranked = [row for row in rows if row.score is not None and not math.isnan(row.score)]
    ranked.sort(key=lambda row: (row.score if mode == "min" else -row.score, row.number))
    for rank, row in enumerate(ranked, 1):
        row.rank = rank
    return ranked + [row for row in rows if row.rank is None]


def _row(record: TrialRecord, out: Path, metric: str) -> Row:
    row = Row(record.name, record.number, record.status, dict(record.values), epochs=record.epoch,
              error=record.error, blas_threads=record.metrics.get("blas_threads"))
    if record.status not in FINISHED or not record.checkpoint:
        return row
    source = Path(record.checkpoint) / MODEL_FILE
    target = out / TRIALS_DIR / f"{record.name}.gnm"
    _copy(source, target)
    row.model = str(target.relative_to(out))
    _scores_from_file(row, target, metric)
    return row


def _scores_from_file(row: Row, path: Path, metric: str) -> None:
    """The kept epoch, its metrics and the test metrics, from the model file's header."""
    from ..modelfile import read_header

    header = read_header(path)
    epochs = header.log.epochs
    if not epochs:
        return
    kept = header.log.best_epoch or epochs[-1]["epoch"]
    entry = next((e for e in epochs if e.get("epoch") == kept), epochs[-1])
    row.epochs = len(epochs)
    row.best_epoch = kept
    row.score = entry.get(metric)
    row.metrics = {name: entry.get(name) for name in VAL}
    row.metrics.update({name: header.metrics.get(name) for name in TEST if name in header.metrics})
    row.seconds = header.log.seconds


def write_results(rows: list[Row], out: Path, summary: dict[str, Any]) -> Results:
    """``results.csv``, ``results.json`` and ``best.gnm`` (a copy of the first ranked trial's
    model file) in ``out``."""
    files = {"csv": out / RESULTS_CSV, "json": out / RESULTS_JSON}
    best = next((row for row in rows if row.rank == 1 and row.model), None)
    if best is not None:
        files["best"] = out / BEST
        _copy(out / best.model, files["best"])
    paths = list(summary.get("paths", []))
    _write_text(files["csv"], _csv(rows, paths))
    document = {**_finite(summary), "best": _json_row(best) if best else None,
                "trials": [_json_row(row) for row in rows]}
    _write_text(files["json"], json.dumps(document, indent=2, allow_nan=False, default=str) + "\n")
    return Results(rows, best, files)


def _json_row(row: Row) -> dict[str, Any]:
    return _finite(asdict(row))


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: null in their place."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _csv(rows: list[Row], paths: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["rank", "trial", "status", *paths, "epochs", "best_epoch", "score", *VAL, *TEST,
                     "seconds", "blas_threads", "model", "error"])
    for row in rows:
        values = [_cell(row.values.get(path)) for path in paths]
        metrics = [_cell(row.metrics.get(name)) for name in (*VAL, *TEST)]
        writer.writerow([_cell(row.rank), row.trial, row.status, *values, row.epochs, _cell(row.best_epoch),
                         _cell(row.score), *metrics, _cell(row.seconds), _cell(row.blas_threads),
                         _cell(row.model), _cell(row.error)])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _copy(source: Path, target: Path) -> None:
    """Copy a file into place atomically (a reader sees the old file or the new one)."""
    try:
        data = source.read_bytes()
    except OSError as error:
        raise GraphnetError(f"cannot read {source}: {error.strerror or error}", file=str(target),
                            hint="the trial's model file went missing") from None
    write_atomic(target, data, what=f"a copy of {source}",
                 hint="check the disk space and the permissions of the output folder")


def _write_text(path: Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8"), hint="check the disk space and the permissions of the output folder")
