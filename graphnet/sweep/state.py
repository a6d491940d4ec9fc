"""What the driver knows about each trial while a sweep runs, kept in the output folder.

The runner feeds :class:`Journal` the trials' events (started, an epoch's report, a checkpoint,
finished, failed); the journal keeps one :class:`TrialRecord` per trial, tells an ``observer``
(the command's live table) and writes ``journal.json`` after each change, so that a sweep
stopped by Ctrl-C and resumed later still knows what its earlier trials did (which ones
finished, which failed and why). The layout of the output folder::

    OUT/journal.json          this sweep's identity (digest of the sweep file and its spec) and
                              its trials
    OUT/tune/                 Ray Tune's experiment: what --resume restores
    OUT/trials/trial-003.gnm  every finished trial's model file
    OUT/best.gnm              the best trial's model file
    OUT/results.csv, .json    one row per trial, ranked
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

from ..atomic import write_atomic
from ..errors import GraphnetError

JOURNAL = "journal.json"
TUNE_DIR = "tune"  # Ray Tune's experiment folder inside the output folder
JOURNAL_VERSION = 1

# A trial's status. "stopped": ended early by the scheduler (ASHA); "completed": trained to its
# end (or the spec's own early stopping); "interrupted": the sweep was stopped while it ran.
RUNNING, COMPLETED, STOPPED, FAILED, INTERRUPTED = "running", "completed", "stopped", "failed", "interrupted"
FINISHED = (COMPLETED, STOPPED)


@dataclass
class TrialRecord:
    number: int  # 1-based, in the order the trials were made
    id: str  # Ray Tune's trial id
    values: dict[str, Any]  # searched path -> value
    status: str = RUNNING
    epoch: int = 0  # epochs reported
    metrics: dict[str, Any] = field(default_factory=dict)  # the last report
    error: Optional[str] = None
    checkpoint: Optional[str] = None  # the folder holding the last model file it reported

    @property
    def name(self) -> str:
        return trial_name(self.number)


def trial_name(number: int) -> str:
    return f"trial-{number:03d}"


class Observer(Protocol):
    """Who is told about the trials as they go (the command's live table)."""

    def started(self, record: TrialRecord) -> None: ...
    def reported(self, record: TrialRecord) -> None: ...
    def ended(self, record: TrialRecord) -> None: ...


class Journal:
    """The trials of one sweep, saved to ``OUT/journal.json`` after every change."""

    def __init__(self, folder: Path, digest: str, observer: Optional[Observer] = None) -> None:
        self.folder = folder
        self.digest = digest
        self.observer = observer
        self.records: dict[str, TrialRecord] = {}
        self.interrupted = False

    @property
    def path(self) -> Path:
        return self.folder / JOURNAL

    # -- events ---------------------------------------------------------------------------

    def started(self, trial_id: str, number: int, values: dict[str, Any]) -> TrialRecord:
        record = self.records.get(trial_id)
        if record is None:
            record = self.records[trial_id] = TrialRecord(number, trial_id, dict(values))
        record.status, record.error = RUNNING, None  # a resumed trial runs again
        self._changed(record, "started")
        return record

    def reported(self, trial_id: str, metrics: dict[str, Any]) -> None:
        record = self.records.get(trial_id)
        if record is None:
            return
        record.metrics = _plain(metrics)
        record.epoch = int(metrics.get("epoch") or metrics.get("epochs_trained") or record.epoch)
        self._changed(record, "reported")

    def checkpointed(self, trial_id: str, folder: str) -> None:
        record = self.records.get(trial_id)
        if record is not None:
            record.checkpoint = folder
            self.save()

    def ended(self, trial_id: str) -> None:
        """The trial is over without an error: trained to its end, or stopped by the scheduler."""
        record = self.records.get(trial_id)
        if record is not None:
            record.status = COMPLETED if "finished" in record.metrics else STOPPED
            self._changed(record, "ended")

    def failed(self, trial_id: str, message: str) -> None:
        record = self.records.get(trial_id)
        if record is not None:
            record.status, record.error = FAILED, message
            self._changed(record, "ended")

    def stop_running(self) -> list[TrialRecord]:
        """The sweep was stopped: every trial still running is interrupted."""
        stopped = [r for r in self.records.values() if r.status == RUNNING]
        for record in stopped:
            record.status = INTERRUPTED
        self.interrupted = bool(stopped) or self.interrupted
        self.save()
        return stopped

    def _changed(self, record: TrialRecord, event: str) -> None:
        self.save()
        if self.observer is not None:
            getattr(self.observer, event)(record)

    # -- the file ---------------------------------------------------------------------------

    def ordered(self) -> list[TrialRecord]:
        return sorted(self.records.values(), key=lambda r: r.number)

    def save(self) -> None:
        data = {"version": JOURNAL_VERSION, "digest": self.digest,
                "trials": [asdict(record) for record in self.ordered()]}
        _write_json(self.path, data)

    @classmethod
    def load(cls, folder: Path, observer: Optional[Observer] = None) -> "Journal":
        """The journal of the sweep in ``folder`` (``--resume``)."""
        path = folder / JOURNAL
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            journal = cls(folder, str(data["digest"]), observer)
            for entry in data["trials"]:
                record = TrialRecord(**entry)
                journal.records[record.id] = record
        except FileNotFoundError:
            raise GraphnetError("there is no sweep to resume here (no journal.json)", file=str(folder),
                                hint="start the sweep without --resume, or give the folder it wrote with --out") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise GraphnetError(f"the sweep's journal cannot be read: {error}", file=str(path),
                                hint="start the sweep again in another folder (--out)") from None
        return journal


# What a trial reports (graphnet.sweep.trial); Ray Tune adds its own bookkeeping to each report
# (time, host, iteration...), which the journal does not keep.
REPORTED = ("epoch", "epochs", "lr", "train_loss", "val_loss", "val_error", "val_accuracy", "seconds",
            "best_epoch", "score", "blas_threads", "epochs_trained", "finished",
            "test_loss", "test_error", "test_accuracy")


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: metrics[key] for key in REPORTED if key in metrics}


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON through a temporary file renamed into place."""
    write_atomic(path, json.dumps(data, indent=1, allow_nan=True).encode("utf-8"),
                 what="the sweep's journal", hint="choose a writable output folder with --out")
