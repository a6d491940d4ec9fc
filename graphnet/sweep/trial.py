"""One trial of a sweep: an ordinary graphnet training run (``graphnet.train.loop.train``, the
code path of ``graphnet run``) of the spec with the trial's values applied as ``--set``
overrides, reporting each epoch's metrics and model file to whoever runs it.

Nothing here imports Ray: ``graphnet.sweep.ray`` wraps ``run_trial`` into a Ray Tune trainable
(``report`` becomes ``tune.report`` with the model file as the checkpoint, ``resume_from`` is the
checkpoint Tune restores). Everything a trial needs comes in the :class:`Job` the driver built:
the spec's text (a worker on another machine has no copy of the file), and the data's place,
resolved by the driver (a worker never searches for data itself).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from ..errors import GraphnetError
from .blas import pin_threads
from .load import override_item
from .models import format_value

MODEL_FILE = "model.gnm"  # the model file inside each reported checkpoint folder

# report(metrics, folder): one epoch's metrics, and a folder holding the model file to keep
# (None when there is none); the folder may be deleted once report returns.
Report = Callable[[dict, Optional[Path]], None]


@dataclass(frozen=True)
class Job:
    """What every trial of a sweep needs, resolved by the driver."""

    sweep: str  # the sweep's name
    spec_text: str
    spec_file: str  # absolute: messages, and the folder relative spec paths start from
    data_dir: Optional[str]  # absolute: where the driver found the data (passed as --data-dir)
    fixed: tuple[str, ...]  # the sweep's `set:`, as --set items
    paths: tuple[str, ...]  # the searched spec paths, in the sweep file's order
    metric: str
    cpus: int


class TrialFailed(Exception):
    """A trial stopped by a graphnet error (a NaN, a combination of values the spec refuses):
    its one-line message, which the sweep reports with the trial's values."""


def trial_overrides(job: Job, values: Mapping[str, Any]) -> list[str]:
    """The --set items of a trial: the sweep's `set:`, then its searched values."""
    return list(job.fixed) + [override_item(path, values[path]) for path in job.paths]


def describe_values(job: Job, values: Mapping[str, Any]) -> str:
    """``train.optimizer.lr=0.003162, layers.dropout=0.1``."""
    return ", ".join(f"{path}={format_value(values[path])}" for path in job.paths)


def run_trial(job: Job, values: Mapping[str, Any], name: str, report: Report,
              resume_from: Optional[Path] = None) -> None:
    """Train the trial's spec, calling ``report`` after every epoch and once at the end (with
    the test metrics). ``resume_from``: a model file this trial reported, to go on from.
    A graphnet error becomes :class:`TrialFailed` (one line)."""
    try:
        _run(job, values, name, report, resume_from)
    except GraphnetError as error:
        more = f" (and {len(error.more)} more)" if error.more else ""
        raise TrialFailed(f"{error}{more}") from None
    except MemoryError:
        raise TrialFailed("out of memory (give each trial more memory, or train a smaller model)") from None


def _run(job: Job, values: Mapping[str, Any], name: str, report: Report, resume_from: Optional[Path]) -> None:
    from ..modelfile import load_model, save_model
    from ..spec import parse_spec
    from ..train.loop import prepare, train
    from ..train.resume import read_resume

    threads = pin_threads(job.cpus)
    spec = parse_spec(job.spec_text, file=job.spec_file, overrides=trial_overrides(job, values))
    # The model file records how it was made: the spec it holds IS the spec with the values
    # applied, and its description says which sweep and trial, and the values.
    record = f"sweep {job.sweep}, {name}: {describe_values(job, values)}"
    spec.description = f"{spec.description} ({record})" if spec.description else record
    reporter = _Reporter(job, spec, report, threads)
    saved = load_model(resume_from) if resume_from is not None else None
    if saved is not None and (saved.resume or {}).get("finished"):
        reporter.finished_file(saved)  # the run had ended when the sweep was stopped
        return
    graph, roles, data = prepare(spec, job.data_dir, spec_dir=Path(job.spec_file).parent)
    point = read_resume(saved, spec) if saved is not None else None
    if point is not None:
        reporter.resumed(point.epochs, point.record.best.epoch)
    keep = {"preprocess": data.preprocess, "classes": data.classes_record(), "data": data.description}

    def checkpoint(model, log, metrics, resume=None):
        folder = Path(tempfile.mkdtemp(prefix="graphnet-trial-"))
        save_model(folder / MODEL_FILE, model, log={**log, "data": data.description}, metrics=metrics,
                   resume=resume.header if resume is not None else None,
                   optimizer=resume.tensors if resume is not None else None, **keep)
        reporter.hold(folder)

    try:
        result = train(spec, checkpoint=checkpoint, progress=reporter, prepared=(graph, roles, data), resume=point)
        reporter.final(result.test, len(result.epochs), result.stopped)
    finally:
        reporter.release()


class _Reporter:
    """The training loop's progress (graphnet.train.loop.Progress) turned into reports: after
    each epoch, its metrics and the model file just written; at the end, the test metrics.

    Besides the epoch's own metrics a report carries ``score``: the sweep's metric of the weights
    the model file keeps (the best epoch's with ``keep_best``, else the last), which is what
    ranks the trials. The last report says ``finished`` and holds the test metrics; it is the
    last epoch's report for a run that trains every epoch, and has no ``epoch`` for one that
    stopped early by itself (``keep_best.patience``), so a scheduler acting on epochs leaves it
    alone."""

    def __init__(self, job: Job, spec: Any, report: Report, threads: Optional[int]) -> None:
        self.job = job
        self.report = report
        self.threads = threads
        self.keeps_best = spec.train.keep_best is not None
        self.epochs = spec.train.total_epochs()
        self.folder: Optional[Path] = None
        self.scores: dict[int, float] = {}
        self.kept: Optional[int] = None
        self.last: dict[str, Any] = {}

    def hold(self, folder: Path) -> None:
        self.release()
        self.folder = folder

    def release(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def resumed(self, epochs: list[dict[str, Any]], best_epoch: Optional[int]) -> None:
        """Go on from a checkpoint: the scores of the epochs before it, the epoch it keeps."""
        for entry in epochs:
            self.scores[entry["epoch"]] = entry.get(self.job.metric)
        if epochs:
            self.kept = best_epoch if self.keeps_best and best_epoch is not None else epochs[-1]["epoch"]

    def finished_file(self, saved: Any) -> None:
        """Report again the end of a run whose last model file had been written, from it."""
        epochs = saved.log.get("epochs") or []
        self.resumed(epochs, saved.log.get("best_epoch"))
        last = dict(epochs[-1]) if epochs else {}
        last.pop("samples_per_second", None)
        self.last = {**last, "epochs": self.epochs, "best_epoch": self.kept,
                     "score": self.scores.get(self.kept), "blas_threads": self.threads}
        self.last = {k: v for k, v in self.last.items() if v is not None}

        test = {k.removeprefix("test_"): v for k, v in (saved.metrics or {}).items() if k.startswith("test_")}
        self.final(test, len(epochs), (saved.resume or {}).get("finished"))

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        pass

    def step(self, loss: float, samples: int) -> None:
        pass

    def epoch_end(self, log: Any, best: bool) -> None:
        value = getattr(log, self.job.metric)
        self.scores[log.epoch] = value
        if best or not self.keeps_best or self.kept is None:
            self.kept = log.epoch
        metrics = {
            "epoch": log.epoch, "epochs": self.epochs, "lr": log.lr, "train_loss": log.train_loss,
            "val_loss": log.val_loss, "val_error": log.val_error, "val_accuracy": log.val_accuracy,
            "seconds": log.seconds, "best_epoch": self.kept, "score": self.scores[self.kept],
            "blas_threads": self.threads,
        }
        self.last = {k: v for k, v in metrics.items() if v is not None}
        if log.epoch < self.epochs:
            self._send(self.last)
        # else: the last epoch is reported once the test metrics are known (final), so that a
        # scheduler deciding on it cannot cut the run short of its end

    def final(self, test: dict[str, float], epochs: int, stopped: Optional[str]) -> None:
        """The report of a run that ended: the test metrics of the kept weights."""
        ran_to_the_end = self.last.get("epoch") == self.epochs
        metrics = {k: v for k, v in self.last.items() if k != "epoch" or ran_to_the_end}
        metrics.update({f"test_{k}": v for k, v in test.items()})
        metrics["epochs_trained"] = epochs
        metrics["finished"] = stopped or "completed"
        self._send(metrics)

    def _send(self, metrics: dict) -> None:
        folder, self.folder = self.folder, None
        try:
            self.report(metrics, folder)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
