"""Training curves of one or several runs on one figure (behind ``graphnet plot``).

    from graphnet.plot import plot_curves
    plot_curves([("mlp", log_a), ("wide", log_b)], Path("curves.png"))

A run is a label and the training log ``graphnet run`` records in the model file
(:meth:`graphnet.train.loop.RunResult.log_dict`): ``{"epochs": [{"epoch", "lr", "train_loss",
"val_loss", "val_error", "val_accuracy", ...}, ...], "best_epoch", ...}``.

The figure has one panel per metric, side by side, sharing one colour per run:

- ``loss``: the training loss (solid) and the validation loss (dashed); a logarithmic axis when
  the values span more than a factor of ``LOG_SCALE_RATIO``;
- ``error``: the validation error in %, with a star at each run's best epoch (``best_epoch``, the
  epoch whose parameters the file keeps; a run trained without ``keep_best`` has none);
- ``accuracy`` (validation, %) and ``lr`` (the learning rate) on request.

A curve no run recorded (no validation split: no ``val_*``) is left out; :func:`left_out` says
what was left out and why, and the figure says it too, in a note at the bottom. Only when nothing
at all is left to draw is it an error.

This is an edge module: the only one that imports matplotlib, and only when a figure is drawn
(``pip install 'graphnet[plot]'``). It never touches pyplot or the global backend: the figure is a
plain ``matplotlib.figure.Figure`` rendered by the Agg canvas, so it works headless, in threads,
and without changing the backend of a notebook that imports graphnet.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import write_atomic
from .errors import GraphnetError, clip, did_you_mean, short

INSTALL = "pip install 'graphnet[plot]' (or: pip install matplotlib)"
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
LOG_SCALE_RATIO = 10.0  # a panel whose positive values span more than this gets a log axis
MARKERS_UP_TO = 30  # epochs per run up to which each epoch's point is marked
PANEL_SIZE = (5.6, 4.2)  # inches, one panel
DPI = 130
NOTE_CHARS_PER_INCH = 15  # the note under the panels is wrapped at this many characters per inch
LABEL_CHARS = 40  # a run's label in the legend (a long path is cut)


# ----------------------------------------------------------------------------------------------
# What each metric's panel shows
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    key: str  # the field of each epoch's record
    split: str  # "train" (solid) or "validation" (dashed)


@dataclass(frozen=True)
class Panel:
    title: str
    ylabel: str
    curves: tuple[Curve, ...]
    percent: bool = False  # the log holds fractions; the panel shows %
    mark_best: bool = False  # a star at the run's best epoch


PANELS: dict[str, Panel] = {
    "loss": Panel("loss", "loss", (Curve("train_loss", "train"), Curve("val_loss", "validation"))),
    "error": Panel("validation error", "error (%)", (Curve("val_error", "validation"),),
                   percent=True, mark_best=True),
    "accuracy": Panel("validation accuracy", "accuracy (%)", (Curve("val_accuracy", "validation"),),
                      percent=True, mark_best=True),
    "lr": Panel("learning rate", "learning rate", (Curve("lr", "train"),)),
}
STYLES = {"train": "-", "validation": "--"}


@dataclass
class Run:
    """One run's log, checked: epoch numbers and, per field, the value at each epoch (None where
    the epoch did not record it)."""

    label: str
    epochs: list[int]
    values: dict[str, list[float | None]]
    best_epoch: int | None

    def has(self, key: str) -> bool:
        return any(v is not None for v in self.values.get(key, []))


# ----------------------------------------------------------------------------------------------
# The entry points
# ----------------------------------------------------------------------------------------------


def plot_curves(runs: Sequence[tuple[str, Mapping]], out: Path | str, *,
                metrics: Sequence[str] = ("loss", "error"), title: str | None = None) -> Path:
    """Draw the curves of ``runs`` (label, training log) and write the figure to ``out``
    (atomically; PNG, or SVG/PDF by the extension). Returns ``out``.

    Raises GraphnetError for a log without epochs, an unknown metric or extension, when no run
    recorded anything the metrics ask for, and when matplotlib is not installed."""
    out = Path(out)
    fmt = _format(out)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():  # before drawing, which takes a second
        raise GraphnetError(f"cannot write the figure: folder {folder} does not exist", file=str(out),
                            hint="create the folder first, or write the figure elsewhere")
    figure = curves_figure(runs, metrics=metrics, title=title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=DPI)
    return _write_atomically(out, buffer.getvalue())


def curves_figure(runs: Sequence[tuple[str, Mapping]], *, metrics: Sequence[str] = ("loss", "error"),
                  title: str | None = None):
    """The figure :func:`plot_curves` writes (a ``matplotlib.figure.Figure``), for callers that
    show or inspect it. Each curve is a Line2D whose ``gid`` is ``"<label>:<field>"``
    (``"mlp:val_loss"``); each best-epoch star's is ``"<label>:best:<field>"``."""
    checked = _check_runs(runs)
    panels = _panels(checked, metrics)
    notes = left_out(runs, metrics)
    Figure, MaxNLocator = _matplotlib()
    width, height = PANEL_SIZE
    figure = Figure(figsize=(width * len(panels), height + (0.3 if notes else 0)), layout="constrained")
    colours = _colours(len(checked))
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        _draw_panel(ax, panel, checked, colours)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    figure.suptitle(title or _default_title(checked))
    if notes:
        chars = int(NOTE_CHARS_PER_INCH * width * len(panels))
        text = textwrap.fill("not plotted: " + "; ".join(notes), width=chars)
        figure.supxlabel(text, x=0.01, ha="left", fontsize="small", color="0.35")
    return figure


def left_out(runs: Sequence[tuple[str, Mapping]], metrics: Sequence[str] = ("loss", "error")) -> list[str]:
    """What the figure of ``runs`` leaves out, one phrase per group of runs: curves that no run
    recorded ("validation loss, validation error: not recorded by any run (trained without a
    validation split)"), or that some runs did not ("validation loss of 'b': not recorded ...").
    The figure shows these under its panels; the CLI prints them."""
    checked = _check_runs(runs)
    missing: dict[tuple[tuple[str, ...], str], list[str]] = {}  # (runs, why) -> curve names
    notes = []
    for name in _known_metrics(metrics):
        for curve in PANELS[name].curves:
            labels = tuple(run.label for run in checked if not run.has(curve.key))
            why = " (trained without a validation split)" if curve.split == "validation" else ""
            if labels:
                missing.setdefault((labels, why), []).append(_curve_name(PANELS[name], curve))
        if PANELS[name].mark_best:
            for run in checked:
                if run.best_epoch is not None and run.best_epoch not in run.epochs:
                    notes.append(f"best epoch of '{clip(run.label, LABEL_CHARS)}': epoch "
                                 f"{run.best_epoch} is not in its log")
    groups = []
    for (labels, why), curves in missing.items():
        if len(labels) == len(checked):
            groups.append(f"{', '.join(curves)}: not recorded by any run{why}")
        else:
            who = ", ".join(f"'{clip(label, LABEL_CHARS)}'" for label in labels)
            groups.append(f"{', '.join(curves)} of {who}: not recorded{why}")
    return groups + list(dict.fromkeys(notes))  # a note shared by two panels once


# ----------------------------------------------------------------------------------------------
# Checking the input
# ----------------------------------------------------------------------------------------------


def _check_runs(runs: Sequence[tuple[str, Mapping]]) -> list[Run]:
    if not runs:
        raise GraphnetError("nothing to plot: no run given", hint="give at least one model file")
    return [_check_run(str(label), log) for label, log in runs]


def _check_run(label: str, log: Any) -> Run:
    """The run's log as a :class:`Run`; an error naming the run for a log that is not one."""
    if not isinstance(log, Mapping):
        raise GraphnetError(f"the training log is not a mapping; received {short(log)}", file=label,
                            path="log", hint="give the `log` of a model file written by `graphnet run`")
    records = log.get("epochs")
    if not isinstance(records, list) or not records:
        raise GraphnetError(
            f"the training log has no epochs; received epochs={short(records)}", file=label,
            path="log.epochs",
            hint="only a model trained by `graphnet run` (for at least one epoch) has curves to plot",
        )
    rows = []
    for index, record in enumerate(records):
        where = f"log.epochs.{index}"
        if not isinstance(record, Mapping):
            raise GraphnetError(f"an epoch's record is not a mapping; received {short(record)}",
                                file=label, path=where)
        epoch = record.get("epoch")
        if type(epoch) is not int or epoch < 1:
            raise GraphnetError(f"epoch is not an integer >= 1; received {short(epoch)}", file=label,
                                path=f"{where}.epoch")
        rows.append((epoch, index, record))
    rows.sort(key=lambda row: row[0])  # in epoch order, whatever order they were logged in
    keys = [curve.key for panel in PANELS.values() for curve in panel.curves]
    values = {key: [_number(record.get(key), label, f"log.epochs.{index}.{key}") for _, index, record in rows]
              for key in dict.fromkeys(keys)}
    best = log.get("best_epoch")
    if best is not None and (type(best) is not int or best < 1):
        raise GraphnetError(f"best_epoch is not an integer >= 1; received {short(best)}", file=label,
                            path="log.best_epoch")
    return Run(label, [epoch for epoch, _, _ in rows], values, best)


def _number(value: Any, label: str, where: str) -> float | None:
    """A logged value as a float (NaN and Inf stay, and show as gaps); None when not recorded."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GraphnetError(f"not a number; received {short(value)}", file=label, path=where)
    return float(value)


def _known_metrics(metrics: Sequence[str]) -> list[str]:
    if isinstance(metrics, str):
        metrics = [metrics]
    for name in metrics:
        if name not in PANELS:
            raise GraphnetError(f"unknown metric {short(name)}", path="metrics",
                                hint=did_you_mean(str(name), PANELS, "metrics"))
    if not metrics:
        raise GraphnetError("no metric to plot", path="metrics", hint="metrics: " + ", ".join(PANELS))
    return list(dict.fromkeys(metrics))


def _panels(runs: list[Run], metrics: Sequence[str]) -> list[Panel]:
    """The panels with something to draw; an error when none has."""
    names = _known_metrics(metrics)
    kept = [PANELS[name] for name in names
            if any(run.has(curve.key) for run in runs for curve in PANELS[name].curves)]
    if not kept:
        fields = ", ".join(curve.key for name in names for curve in PANELS[name].curves)
        validation_only = all(c.split == "validation" for name in names for c in PANELS[name].curves)
        hint = ("validation curves need a validation split (train.data.validation); plot the loss"
                if validation_only else "plot another metric: " + ", ".join(PANELS))
        raise GraphnetError(f"nothing to plot: no run recorded {fields}",
                            file=runs[0].label if len(runs) == 1 else None, hint=hint)
    return kept


def _format(out: Path) -> str:
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        received = f"'{out.suffix}'" if out.suffix else "no extension"
        raise GraphnetError(f"cannot write this kind of figure; received {received}", file=str(out),
                            hint="name the output .png, .svg or .pdf")
    return fmt


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------


def _matplotlib():
    """Figure and MaxNLocator, imported only now: matplotlib is an optional extra."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise GraphnetError("plotting needs matplotlib, which is not installed", hint=INSTALL) from None
    return Figure, MaxNLocator


def _colours(count: int) -> list[str]:
    """One colour per run: matplotlib's default cycle (tab10), then tab20 beyond ten runs."""
    tab10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
             "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    if count <= len(tab10):
        return tab10[:count]
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [cmap(i % 20) for i in range(count)]


def _draw_panel(ax, panel: Panel, runs: list[Run], colours: list) -> None:
    from matplotlib.lines import Line2D

    factor = 100.0 if panel.percent else 1.0
    plotted: list[float] = []
    run_handles = []
    splits_drawn: list[str] = []
    for run, colour in zip(runs, colours):
        marker = "o" if len(run.epochs) <= MARKERS_UP_TO else None
        drawn = [curve for curve in panel.curves if run.has(curve.key)]
        if not drawn:
            continue  # nothing of this run in this panel (left_out says so): no legend entry
        for curve in drawn:
            ys = [math.nan if v is None else v * factor for v in run.values[curve.key]]
            ax.plot(run.epochs, ys, STYLES[curve.split], color=colour, marker=marker, markersize=3,
                    linewidth=1.6, gid=f"{run.label}:{curve.key}")
            plotted.extend(y for y in ys if math.isfinite(y))
            if curve.split not in splits_drawn:
                splits_drawn.append(curve.split)
        label = clip(run.label, LABEL_CHARS)
        if panel.mark_best:
            label += _mark_best(ax, panel, run, colour, factor)
        run_handles.append(Line2D([], [], color=colour, linewidth=2.5, label=label))
    ax.set_title(panel.title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(panel.ylabel)
    ax.grid(True, alpha=0.3)
    if _wants_log_scale(plotted):
        _log_axis(ax)
    elif panel.percent and plotted and min(plotted) >= 0:
        ax.set_ylim(bottom=0)  # an error or an accuracy is never negative: no axis below 0%
    # A style entry per split when the panel has two (which line is which), then one per run.
    style_handles = [Line2D([], [], color="0.3", linestyle=STYLES[s], label=s) for s in splits_drawn]
    handles = (style_handles if len(splits_drawn) > 1 else []) + run_handles
    ax.legend(handles=handles, fontsize="small", loc="best", framealpha=0.85)


def _log_axis(ax) -> None:
    """A logarithmic y axis with plain numbers (0.02, 0.1, 1) instead of 2 x 10^-2; minor ticks
    are labelled too when the axis spans less than two decades (no label of its own otherwise)."""
    from matplotlib.ticker import FuncFormatter, LogFormatter

    class PlainMinor(LogFormatter):  # LogFormatter picks which minor ticks to label; "%g" shows them
        def __call__(self, value, pos=None):
            return f"{value:g}" if super().__call__(value, pos) else ""

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(PlainMinor(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _mark_best(ax, panel: Panel, run: Run, colour, factor: float) -> str:
    """A star at the run's best epoch on the panel's curve; returns the legend's note
    (" — best 1.62% at epoch 7"), empty when there is nothing to mark."""
    key = panel.curves[0].key
    if run.best_epoch is None or run.best_epoch not in run.epochs or not run.has(key):
        return ""
    value = run.values[key][run.epochs.index(run.best_epoch)]
    if value is None or not math.isfinite(value):
        return ""
    ax.plot([run.best_epoch], [value * factor], marker="*", markersize=13, color=colour,
            markeredgecolor="black", markeredgewidth=0.7, linestyle="none", zorder=5,
            gid=f"{run.label}:best:{key}")
    shown = f"{value * factor:.2f}%" if panel.percent else f"{value:.4g}"
    return f" (best {shown}, epoch {run.best_epoch})"


def _wants_log_scale(values: list[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) > 1 and max(positive) / min(positive) > LOG_SCALE_RATIO


def _curve_name(panel: Panel, curve: Curve) -> str:
    if panel.title.startswith(curve.split) or curve.split == "train" and panel.title == "learning rate":
        return panel.title
    return f"{curve.split} {panel.title}"


def _default_title(runs: list[Run]) -> str:
    if len(runs) == 1:
        return f"training curves: {clip(runs[0].label, 60)}"
    return f"training curves of {len(runs)} runs"


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def _write_atomically(path: Path, data: bytes) -> Path:
    """Write to a temporary file beside ``path``, then rename it into place: a reader sees the
    old file or the new one, never a torn one (graphnet.atomic)."""
    return write_atomic(path, data, what="the figure", hint="check the folder exists and is writable")


