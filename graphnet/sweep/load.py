"""Loading a sweep file and checking it against its spec, before anything runs.

``load_sweep`` reads the file with the spec's own machinery (``graphnet.spec.files`` refuses what
is not a text file, ``graphnet.spec.text`` parses YAML or JSON once with the line of every key and
the spec's limits) and validates it with the models of ``models``; every mistake is a located
:class:`~graphnet.errors.SpecError` (``sweep.yaml:7: search.layers.dropout: ...``), all of them
reported at once.

``check_sweep`` then loads the spec the sweep starts from, applies ``set:``, and tries every value
of the search space through the spec's override machinery (what ``--set`` does: the same
validation, the same graph checks, the same memory check). A value the spec refuses is reported at
its line of the sweep file, with the spec's own message: a path the spec does not have, a value
out of range, a shape that does not fit. Ranges are checked at both ends. Combinations are not
tried (there may be millions); a combination that fails is a failing trial, reported as such.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import GraphnetError, SpecError, clip, did_you_mean, raise_all, to_report
from ..spec import Spec, apply_override, dotted, parse_spec, validate_spec_data
from ..spec.files import read_spec_file
from ..spec.load import spec_error_from_pydantic
from ..spec.models import place
from ..spec.text import parse_text, parse_value
from .models import METRICS, Domain, ResourcesSpec, SchedulerSpec, SweepSpec, format_value

# A top-level key that only a sweep file has (``graphnet validate`` tells the two apart by it).
SWEEP_KEY = "search"
_SWEEP_LINE = re.compile(rf"^{SWEEP_KEY}\s*:", re.MULTILINE)
_SWEEP_JSON = re.compile(rf'"{SWEEP_KEY}"\s*:')

# Where the data is: the driver finds it once and hands every trial the place it found, so a
# trial never searches (on another machine the search could find other data, or none). A sweep
# over these paths would need one search per trial: refused.
DATA_PLACE = ("train.data.dataset", "train.data.path", "train.data.files", "train.data.keys")


@dataclass
class Sweep:
    """A validated sweep file: its model, where it came from, and the text of its spec."""

    model: SweepSpec
    file: str
    lines: dict[str, int]
    spec_file: Path  # the spec, resolved against the sweep file's folder
    spec_text: str

    @property
    def name(self) -> str:
        return self.model.name or _name_from(Path(self.file).stem)

    def error(self, path: tuple, message: str, hint: str | None = None) -> SpecError:
        """A SpecError at ``path`` of the sweep file, with the line of the deepest key it has."""
        error = SpecError(message, path=dotted(path), hint=hint)
        place(error, path, self.file, self.lines, [])
        return error


@dataclass
class Plan:
    """A sweep checked against its spec: what the runner needs to start it."""

    sweep: Sweep
    base: Spec  # the spec with `set:` applied
    fixed: list[str]  # `set:` as --set items, applied to every trial first
    max_epochs: int  # the most epochs any checked value makes a trial train
    checked: dict[str, int] = field(default_factory=dict)  # search path -> values checked

    @property
    def paths(self) -> list[str]:
        return list(self.sweep.model.search)

    def digest(self) -> str:
        """What identifies this sweep: the sweep file's data and its spec's text. A resumed
        sweep must have the same (``--resume`` refuses a changed file)."""
        content = json.dumps([self.sweep.model.model_dump(mode="json"), self.sweep.spec_text], sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()


def looks_like_sweep(text: str) -> bool:
    """Whether spec-or-sweep text is a sweep file: it has a top-level ``search:`` key (found by
    a scan; a JSON text is parsed to be sure)."""
    if text.lstrip().startswith("{"):
        if not _SWEEP_JSON.search(text):
            return False
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return False
        return isinstance(data, dict) and SWEEP_KEY in data
    return bool(_SWEEP_LINE.search(text))


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (YAML or JSON); one SpecError carrying every mistake."""
    path = Path(path)
    return parse_sweep(read_spec_file(path), file=str(path))


def parse_sweep(text: str, file: str) -> Sweep:
    """Validate sweep text; ``file`` names it in errors and anchors the spec's relative path."""
    data, lines = parse_text(text, file)
    if not isinstance(data, dict):
        raise SpecError(
            "a sweep file is a mapping with `spec:` and `search:`", file=file, line=1 if data is not None else None,
            hint="see specs/quick-sweep.yaml",
        )
    if SWEEP_KEY not in data and any(key in data for key in ("inputs", "nodes", "layers")):
        raise SpecError("this is a spec, not a sweep file", file=file, line=1,
                        hint="a sweep file names its spec (`spec: ...`) and a search space over it "
                             "(`search:`); see specs/quick-sweep.yaml")
    try:
        model = SweepSpec.model_validate(data)
    except ValidationError as error:
        raise_all(_sweep_errors(error, data, file, lines))
        raise AssertionError("unreachable")  # pragma: no cover
    spec_file = _resolve(model.spec, file)
    sweep = Sweep(model, file, lines, spec_file, "")
    try:
        sweep.spec_text = read_spec_file(spec_file)
    except SpecError as error:  # missing, a directory, a model file...: say it at `spec:`
        raise sweep.error(("spec",), f"{spec_file}: {error.message}",
                          hint=(error.hint or "check the path") + "; the path is relative to the sweep file") from None
    return sweep


def _sweep_errors(error: ValidationError, data: dict, file: str, lines: dict[str, int]) -> list[SpecError]:
    """pydantic's errors as located SpecErrors in the order of the file (as the spec loader
    makes them; the allowed keys of an unknown key's mapping come from the sweep's models)."""
    errors: list[SpecError] = []
    seen: set[tuple] = set()
    for found in to_report(error.errors()):
        located, path = spec_error_from_pydantic(found, data)
        if path in seen:
            continue
        seen.add(path)
        if found["type"] == "extra_forbidden":
            allowed = _fields_at(tuple(found["loc"][:-1]))
            located.hint = did_you_mean(str(path[-1]) if path else "", allowed, "allowed keys") if allowed else "remove it"
        place(located, path, file, lines, [])
        errors.append(located)
    errors.sort(key=lambda e: e.line if e.line is not None else 0)
    return errors


def _fields_at(loc: tuple) -> list[str]:
    """The keys the sweep file allows in the mapping at pydantic's location ``loc``."""
    if not loc:
        return list(SweepSpec.model_fields)
    if loc[0] == "search" and len(loc) == 2:
        return list(Domain.model_fields)
    models = {"scheduler": SchedulerSpec, "resources": ResourcesSpec}
    model = models.get(loc[0]) if len(loc) == 1 else None
    return list(model.model_fields) if model is not None else []


def _resolve(spec: str, file: str) -> Path:
    path = Path(spec).expanduser()
    return path if path.is_absolute() else Path(file).parent / path


def _name_from(stem: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_\-]", "-", stem)
    return name if re.match(r"^[A-Za-z_]", name) else f"sweep-{name}"


# ----------------------------------------------------------------------------------------------
# Values as --set items
# ----------------------------------------------------------------------------------------------


def override_item(path: str, value: Any) -> str:
    """``path=value`` that ``--set`` (``graphnet.spec.apply_override``) reads back as exactly
    ``value``: YAML flow style (a float keeps every digit; ``1e-05`` is written ``1.0e-05``,
    which YAML reads as a number)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")].strip()  # the document-end marker of a lone scalar
    if "\n" in text or _reads_back(text) != value:
        text = json.dumps(value)
    return f"{path}={text}"


def _reads_back(text: str) -> Any:
    try:
        return parse_value(text, "--set")
    except GraphnetError:
        return _NOT_READ


_NOT_READ = object()


# ----------------------------------------------------------------------------------------------
# The sweep against its spec
# ----------------------------------------------------------------------------------------------


def check_sweep(sweep: Sweep) -> Plan:
    """Check the sweep against its spec: ``set:``, every value of the search space (ranges at
    both ends), the metric, the scheduler. Every problem is reported at once (located in the
    sweep file, with the spec's own message); a spec that does not load is reported as such."""
    from ..graph import build_graph
    from ..train.loop import check_memory, resolve_roles, train_section

    model = sweep.model
    fixed = [override_item(path, value) for path, value in model.set.items()]
    errors = [sweep.error(("search", path), f"the data's place ({path}) cannot be searched",
                          hint="every trial reads the data the spec names; make one sweep per dataset")
              for path in model.search if _is_data_place(path)]
    errors += [sweep.error(("set", path), f"{path} cannot be set by a sweep",
                           hint="put the data's place in the spec") for path in model.set if _is_data_place(path)]
    raise_all(errors)

    spec_file = str(sweep.spec_file)
    try:
        base = parse_spec(sweep.spec_text, file=spec_file, overrides=fixed)
        train = train_section(base)
        graph = build_graph(base)
        resolve_roles(graph, train)
        check_memory(graph)
    except GraphnetError as error:
        raise_all([_from_set(sweep, each, fixed) for each in error.all()])
        raise
    errors = _metric_errors(sweep, base)

    data, lines = parse_text(sweep.spec_text, spec_file)
    epochs = [train.total_epochs()]
    checked: dict[str, int] = {}
    for path, domain in model.search.items():
        reported: set[str] = set()
        checked[path] = 0
        for index, value in enumerate(domain.candidates()):
            item = override_item(path, value)
            checked[path] += 1
            try:
                spec = _spec_with(data, lines, spec_file, fixed + [item])
                graph = build_graph(spec)
                resolve_roles(graph, train_section(spec))
                check_memory(graph)
            except GraphnetError as error:
                for each in error.all():
                    inner = _inner(each, spec_file)
                    if inner in reported:
                        continue  # a path the spec lacks fails the same way for every value
                    reported.add(inner)
                    errors.append(_value_error(sweep, path, domain, index, value, each, inner))
                continue
            epochs.append(spec.train.total_epochs())
    errors += _scheduler_errors(sweep, max(epochs))
    raise_all(errors)
    return Plan(sweep, base, fixed, max(epochs), checked)


def _is_data_place(path: str) -> bool:
    return any(path == place or path.startswith(place + ".") or place.startswith(path + ".")
               for place in DATA_PLACE)


def _spec_with(data: dict, lines: dict[str, int], file: str, overrides: list[str]) -> Spec:
    """The spec of ``data`` (parsed once) with ``overrides`` applied, as ``parse_spec`` does."""
    data = copy.deepcopy(data)
    for item in overrides:
        apply_override(data, item, file)
    return validate_spec_data(data, file=file, lines=lines, overrides=overrides)


def _inner(error: GraphnetError, spec_file: str) -> str:
    """What the spec said about a value, without the --set it was reported against (the sweep
    file's line says that): ``layers.dropout: Input should be less than 1; received 1``, or
    with the place in the spec for an error in another part of it."""
    where = ""
    if error.file == spec_file:
        where = f"{Path(spec_file).name}:{error.line}: " if error.line is not None else f"{Path(spec_file).name}: "
    return where + (f"{error.path}: " if error.path else "") + error.message


def _value_error(sweep: Sweep, path: str, domain: Domain, index: int, value: Any, error: GraphnetError,
                 inner: str) -> SpecError:
    kind = domain.kind
    if kind in ("choice", "grid"):
        where: tuple = ("search", path, kind, index)
        what = f"value {clip(format_value(value), 80)}: "
    else:
        where = ("search", path, kind)
        what = f"{'low' if index == 0 else 'high'} end {format_value(value)}: "
    if error.path and (path + ".").startswith(error.path + ".") and error.path != path:
        what = ""  # the path itself is wrong (train.optimzer.lr): no value would do
    located = sweep.error(where, what + inner, hint=error.hint)
    located.path = f"search.{path}"
    return located


def _from_set(sweep: Sweep, error: GraphnetError, fixed: list[str]) -> GraphnetError:
    """An error of the spec with `set:` applied: one a `set:` value caused is reported at its
    line of the sweep file; the spec's own errors stay where they are (in the spec file)."""
    for item, path in zip(fixed, sweep.model.set):
        if error.file == f"--set {clip(item, 200)}":
            located = sweep.error(("set", path), _inner(error, str(sweep.spec_file)), hint=error.hint)
            located.path = f"set.{path}"
            return located
    return error


def _metric_errors(sweep: Sweep, base: Spec) -> list[SpecError]:
    metric = sweep.model.metric
    assert metric in METRICS
    validation = base.train.data.validation if base.train is not None else None
    if metric.startswith("val_") and validation == 0:
        return [sweep.error(("metric",), f"{metric} needs a validation split, but the spec's "
                            "train.data.validation is 0", hint="hold out a validation split in the spec "
                            "(or with set:), or rank by train_loss")]
    return []


def _scheduler_errors(sweep: Sweep, max_epochs: int) -> list[SpecError]:
    scheduler = sweep.model.scheduler
    if scheduler.type != "asha":
        return []
    errors = []
    if scheduler.max_t is not None and scheduler.max_t < max_epochs:
        errors.append(sweep.error(("scheduler", "max_t"), f"max_t {scheduler.max_t} would stop trials that "
                                  f"train {max_epochs} epochs before they end",
                                  hint=f"leave max_t out (it defaults to the most epochs a trial trains) or set {max_epochs}"))
    limit = scheduler.max_t or max_epochs
    if scheduler.grace_period > limit:
        errors.append(sweep.error(("scheduler", "grace_period"), f"grace_period {scheduler.grace_period} is more "
                                  f"than the {limit} epochs a trial trains, so ASHA would stop nothing",
                                  hint=f"use a grace_period below {limit}, or scheduler: none"))
    return errors


def describe_search(sweep: Sweep) -> list[str]:
    """One line per search path: ``train.optimizer.lr  loguniform 0.0001 .. 0.01``."""
    width = max(len(path) for path in sweep.model.search)
    return [f"{path:<{width}}  {domain.describe()}" for path, domain in sweep.model.search.items()]


__all__ = [
    "DATA_PLACE",
    "Plan",
    "Sweep",
    "check_sweep",
    "describe_search",
    "load_sweep",
    "looks_like_sweep",
    "override_item",
    "parse_sweep",
]
