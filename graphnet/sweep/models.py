"""The sweep file's pydantic models: what a sweep file may say, with defaults and the rules that
tie fields together (checked when the file loads, before Ray starts).

A sweep file names the spec it starts from, fixed overrides (``set:``) and a search space over
dotted spec paths (the paths of ``--set``), each path one of::

    {loguniform: [low, high]}   a float, uniform in log space, low > 0
    {uniform: [low, high]}      a float, uniform
    {randint: [low, high]}      an integer from low to high, both included
    {choice: [a, b, ...]}       one of the values, drawn at random for each trial
    {grid: [a, b, ...]}         every value, in turn: the trials are the grid x samples

Values are YAML, as for ``--set``: ``{grid: [[784, 256, 10], [784, 800, 800, 10]]}`` tries two
``layers.sizes``. Whether a value fits the spec is checked by ``graphnet.sweep.load``, which
applies it through the spec's own override machinery.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from ..spec import NAME_PATTERN, SpecRule, StrictModel

# A dotted spec path as --set takes it: train.optimizer.lr, layers.sizes, nodes.fc1.attrs.units
PATH_PATTERN = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
SpecPath = Annotated[str, Field(pattern=PATH_PATTERN, max_length=400)]

MAX_PATHS = 100  # searched paths; a search over more is not a search anyone can read
MAX_VALUES = 1000  # values of one choice or grid
MAX_SAMPLES = 100_000
MAX_TRIALS = 100_000  # samples x grid size
MAX_CPUS = 1024

KINDS = ("loguniform", "uniform", "randint", "choice", "grid")
METRICS = ("val_error", "val_loss", "val_accuracy", "train_loss")
HIGHER_IS_BETTER = ("val_accuracy",)

_DOMAIN_HINT = (
    "for example {loguniform: [1.0e-4, 1.0e-2]}, {uniform: [0, 0.5]}, {randint: [1, 4]}, "
    "{choice: [0, 0.1, 0.2]} or {grid: [64, 128]}"
)


class Domain(StrictModel):
    """Where one spec path's values come from: exactly one of the five kinds."""

    loguniform: Optional[list[float]] = Field(
        None, min_length=2, max_length=2, description="[low, high]: uniform in log space, low > 0"
    )
    uniform: Optional[list[float]] = Field(None, min_length=2, max_length=2, description="[low, high]")
    randint: Optional[list[int]] = Field(
        None, min_length=2, max_length=2, description="[low, high]: an integer, both ends included"
    )
    choice: Optional[list[Any]] = Field(
        None, min_length=1, max_length=MAX_VALUES, description="values drawn at random for each trial"
    )
    grid: Optional[list[Any]] = Field(
        None, min_length=1, max_length=MAX_VALUES, description="values each tried in turn"
    )

    @model_validator(mode="before")
    @classmethod
    def _is_a_mapping(cls, value: Any) -> Any:
        # A bare value or list is the commonest mistake: say what a search entry looks like.
        if not isinstance(value, (dict, Domain)):
            raise SpecRule("a search entry is a mapping of one kind to its values", hint=_DOMAIN_HINT)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "Domain":
        given = [kind for kind in KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise SpecRule(f"give exactly one of {', '.join(KINDS)} (found: {found})", hint=_DOMAIN_HINT)
        kind = given[0]
        if kind in ("loguniform", "uniform", "randint"):
            low, high = getattr(self, kind)
            if not low < high and not (kind == "randint" and low == high):
                raise SpecRule(f"{kind}: low {low} is not below high {high}", hint="write [low, high]",
                               at=(kind,))
            if kind == "loguniform" and low <= 0:
                raise SpecRule(f"loguniform needs low > 0; received {low}",
                               hint="use uniform for ranges that include 0", at=(kind,))
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in KINDS if getattr(self, kind) is not None)

    @property
    def values(self) -> list[Any]:
        return getattr(self, self.kind)

    def candidates(self) -> list[Any]:
        """The values checked against the spec before anything runs: every value of a choice
        or grid, the two ends of a range (every value drawn lies between them)."""
        return list(self.values)

    def grid_size(self) -> int:
        """How many trials this entry multiplies each sample into (a grid's length, else 1)."""
        return len(self.grid) if self.grid is not None else 1

    def describe(self) -> str:
        """``loguniform 1e-4 .. 1e-2``, ``choice of 3: 0, 0.1, 0.2``."""
        kind, values = self.kind, self.values
        if kind in ("loguniform", "uniform", "randint"):
            return f"{kind} {format_value(values[0])} .. {format_value(values[1])}"
        shown = ", ".join(format_value(v) for v in values[:6]) + (", ..." if len(values) > 6 else "")
        return f"{kind} of {len(values)}: {shown}"


class SchedulerSpec(StrictModel):
    """Early stopping of trials from their per-epoch reports (Ray Tune's ASHA), or none."""

    type: Literal["asha", "none"] = "asha"
    grace_period: Optional[int] = Field(
        None, ge=1, le=100_000, description="epochs every trial runs before it can be stopped (default 1)"
    )
    reduction_factor: Optional[int] = Field(
        None, ge=2, le=100, description="keep the best 1/reduction_factor at each rung (default 2)"
    )
    max_t: Optional[int] = Field(
        None, ge=1, le=100_000, description="the most epochs a trial runs (default: the spec's epochs)"
    )

    @model_validator(mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        # `scheduler: none` (or null) for plain random/grid search
        if value is None or value == "none":
            return {"type": "none"}
        if value == "asha":
            return {"type": "asha"}
        return value

    @model_validator(mode="after")
    def _asha_settings(self) -> "SchedulerSpec":
        given = [name for name in ("grace_period", "reduction_factor", "max_t") if getattr(self, name) is not None]
        if self.type == "none" and given:
            raise SpecRule(f"{', '.join(given)} only apply to type: asha", hint="remove them or set type: asha")
        if self.type == "asha":
            self.grace_period = self.grace_period or 1
            self.reduction_factor = self.reduction_factor or 2
        return self


class ResourcesSpec(StrictModel):
    """What one trial takes from the cluster. Each trial's BLAS library is limited to ``cpus``
    threads, so that trials side by side do not fight over the cores."""

    cpus: int = Field(1, ge=1, le=MAX_CPUS, description="CPUs (and BLAS threads) per trial")


class SweepSpec(StrictModel):
    """A graphnet sweep file (format 1)."""

    format: Literal[1] = Field(1, description="sweep file format version")
    name: Optional[str] = Field(None, pattern=NAME_PATTERN, max_length=128,
                                description="the sweep's name (default: the file's name)")
    description: str = ""
    spec: str = Field(min_length=1, max_length=4096, description="the spec file, relative to this file")
    set: dict[SpecPath, Any] = Field(
        default_factory=dict, max_length=MAX_PATHS,
        description="overrides applied to every trial (like --set), e.g. train.epochs: 5",
    )
    search: dict[SpecPath, Domain] = Field(
        min_length=1, max_length=MAX_PATHS, description="spec path -> where its values come from"
    )
    metric: Literal["val_error", "val_loss", "val_accuracy", "train_loss"] = Field(
        "val_error", description="what ranks the trials (of the weights each model file keeps)"
    )
    mode: Optional[Literal["min", "max"]] = Field(
        None, description="min or max (default: max for val_accuracy, min otherwise)"
    )
    samples: int = Field(1, ge=1, le=MAX_SAMPLES, description="trials drawn (each one per grid point)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds the drawing of the trials' values")
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    output: Optional[str] = Field(None, max_length=4096,
                                  description="the folder for results (default: runs/NAME)")

    @field_validator("search", "set", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if isinstance(value, list):
            raise SpecRule("a mapping of spec paths, not a list",
                           hint="write one `path: ...` per line, e.g. train.optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}")
        return value

    @model_validator(mode="after")
    def _sweep_rules(self) -> "SweepSpec":
        if self.mode is None:
            self.mode = "max" if self.metric in HIGHER_IS_BETTER else "min"
        elif (self.mode == "max") != (self.metric in HIGHER_IS_BETTER):
            better = "higher" if self.metric in HIGHER_IS_BETTER else "lower"
            raise SpecRule(
                f"mode {self.mode} would pick the worst trial: {better} {self.metric} is better",
                hint=f"leave mode out (it follows the metric) or set mode: {'max' if better == 'higher' else 'min'}",
                at=("mode",),
            )
        both = sorted(set(self.set) & set(self.search))
        if both:
            raise SpecRule(f"{', '.join(both)} is both set and searched", hint="keep it in one of the two",
                           at=("set", both[0]))
        if self.trial_count() > MAX_TRIALS:
            raise SpecRule(
                f"samples x grid points make {self.trial_count():,} trials, more than {MAX_TRIALS:,}",
                hint="use fewer samples or a smaller grid", at=("samples",),
            )
        return self

    def grid_points(self) -> int:
        return math.prod(domain.grid_size() for domain in self.search.values())

    def trial_count(self) -> int:
        """How many trials the sweep runs: Ray Tune repeats the whole grid for every sample."""
        return self.samples * self.grid_points()


def format_value(value: Any) -> str:
    """A search value for people: floats with 4 significant digits, lists compactly."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def sweep_json_schema() -> dict[str, Any]:
    """The JSON Schema of a sweep file (for editors; ``graphnet schema`` includes it)."""
    return SweepSpec.model_json_schema(ref_template="#/$defs/{model}")


def file_json_schema() -> dict[str, Any]:
    """The JSON Schema of the files graphnet reads as text, for editors: a spec, or a sweep file
    (``graphnet sweep``), told apart by the sweep's top-level ``search:`` key. The spec's
    definitions stay where they are (``$defs.NodeSpec``...), and so does its ``$comment`` naming
    the ops left out because they cannot be loaded."""
    from ..schema import spec_json_schema

    spec = spec_json_schema()
    defs = spec.pop("$defs")
    spec.pop("$schema", None)
    comment = spec.get("$comment")
    sweep = sweep_json_schema()
    defs.update(sweep.pop("$defs", {}))
    defs["Spec"], defs["SweepSpec"] = spec, sweep
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "title": "graphnet spec or sweep file", "$defs": defs,
              "if": {"type": "object", "required": ["search"]},
              "then": {"$ref": "#/$defs/SweepSpec"}, "else": {"$ref": "#/$defs/Spec"}}
    if comment is not None:
        schema["$comment"] = comment
    return schema
