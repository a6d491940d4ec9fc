"""A sweep from its file to its results, as ``graphnet sweep`` runs it:

1. ``prepare``: load and check the sweep file and its spec (every searched value against the
   spec), find the data once (the trials are handed its place), check the output folder (a new
   sweep needs an empty or new folder; ``--resume`` needs the same sweep's folder);
2. ``run`` (graphnet.sweep.ray): the trials on Ray Tune, their events into the journal;
3. ``finish``: the finished trials' model files, the ranking, results.csv/.json, best.gnm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import GraphnetError
from .load import Plan, check_sweep, load_sweep
from .results import Results, collect, write_results
from .state import JOURNAL, TUNE_DIR, Journal, Observer
from .trial import Job


@dataclass
class Prepared:
    """A sweep ready to run: its plan, what every trial gets, where it writes, its journal."""

    plan: Plan
    job: Job
    out: Path
    journal: Journal
    data: str  # where the data was found and how it is split, for people
    resume: bool


def prepare(path: str | Path, *, out: Optional[str | Path] = None, data_dir: Optional[str] = None,
            resume: bool = False, observer: Optional[Observer] = None) -> Prepared:
    """Everything checked before Ray starts (see the module docstring)."""
    sweep = load_sweep(path)
    plan = check_sweep(sweep)
    model = sweep.model
    folder = Path(out or model.output or f"runs/{sweep.name}")
    journal = _journal(folder, plan.digest(), resume, observer, str(path))
    source, described = _find_data(plan, data_dir)
    journal.save()  # the folder is the sweep's from now on
    job = Job(
        sweep=sweep.name, spec_text=sweep.spec_text, spec_file=str(sweep.spec_file.resolve()),
        data_dir=source, fixed=tuple(plan.fixed), paths=tuple(plan.paths), metric=model.metric,
        cpus=model.resources.cpus,
    )
    return Prepared(plan, job, folder, journal, described, resume)


def _find_data(plan: Plan, data_dir: Optional[str]) -> tuple[Optional[str], str]:
    """Read the base spec's data once, as ``graphnet run`` would (downloading a named dataset if
    no folder holds it): a missing dataset is one error now, not one per trial. Returns where
    every trial reads the data, whatever machine it runs on (on a cluster, a path all machines
    share): ``--data-dir`` made absolute, or the folder where the search found a named dataset,
    or None for the spec's own files (its relative paths are resolved against the spec's folder,
    which the trials get as an absolute path) -- and a description for people."""
    from ..train.data import NAMED_DATASETS
    from ..train.loop import prepare as prepare_training

    _, _, data = prepare_training(plan.base, data_dir)
    val = len(data.val) if data.val is not None else 0
    described = f"{data.source} ({len(data.train):,} train / {val:,} val / {len(data.test):,} test)"
    if data_dir is not None:
        return str(Path(data_dir).absolute()), described
    if plan.base.train.data.dataset in NAMED_DATASETS:
        return data.source, described
    return None, described


def _journal(folder: Path, digest: str, resume: bool, observer: Optional[Observer], file: str) -> Journal:
    """The journal of a new sweep in ``folder`` (which must be new or empty), or of the sweep
    there to resume (which must be this sweep: the same file and spec)."""
    where = str(folder)
    if folder.exists() and not folder.is_dir():
        raise GraphnetError("the output folder is a file", file=where, hint="give a folder with --out")
    if resume:
        journal = Journal.load(folder, observer)
        if journal.digest != digest:
            raise GraphnetError(
                f"the sweep here was started from another version of {file} or of its spec", file=where,
                hint="resume with the sweep file and spec it started with, or start a new sweep with another --out",
            )
        return journal
    if (folder / JOURNAL).exists() or (folder / TUNE_DIR).exists():
        raise GraphnetError("this folder holds a sweep already", file=where,
                            hint="pass --resume to go on with it, or --out to start a new one elsewhere")
    if folder.exists() and any(folder.iterdir()):
        raise GraphnetError("the output folder exists and is not empty", file=where,
                            hint="give a new or empty folder with --out")
    parent = folder.resolve()
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise GraphnetError(f"cannot create files under {parent}", file=where,
                            hint="choose a writable location with --out")
    return Journal(folder, digest, observer)  # saved (and the folder made) once the data is found


def run(prepared: Prepared, *, address: Optional[str] = None, max_concurrent: Optional[int] = None) -> Any:
    """The trials on Ray Tune (graphnet.sweep.ray.run); returns its Outcome."""
    from . import ray as on_ray

    return on_ray.run(prepared.plan, prepared.job, prepared.out, prepared.journal, address=address,
                      max_concurrent=max_concurrent, resume=prepared.resume)


def finish(prepared: Prepared, seconds: float, cluster: str) -> Results:
    """The results of every trial the journal knows, written to the output folder."""
    model = prepared.plan.sweep.model
    rows = collect(prepared.journal, prepared.out, model.metric, model.mode)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    summary = {
        "sweep": prepared.plan.sweep.name, "sweep_file": prepared.plan.sweep.file,
        "spec": str(prepared.plan.sweep.spec_file), "metric": model.metric, "mode": model.mode,
        "paths": prepared.plan.paths, "trials": model.trial_count(), "status": counts,
        "interrupted": prepared.journal.interrupted, "seconds": seconds, "cluster": cluster,
    }
    return write_results(rows, prepared.out, summary)
