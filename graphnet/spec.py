"""The spec: a network (and how to train it) declared in YAML or JSON.

This module holds the pydantic models of the spec format and the loader. Loading parses the text,
remembers the line of every key, and validates the structure with pydantic; the graph module then
validates what needs the op registry (ops, roles, attributes, references, cycles, shapes). Every
error names the spec path (``nodes.fc2.inputs.x``) and the line in the file.

A minimal spec::

    format: 1
    name: tiny
    inputs:
      image: {shape: [784]}
      label: {shape: [], dtype: int64}
    nodes:
      fc1:  {op: linear, inputs: {x: image}, attrs: {units: 10}}
      loss: {op: softmax_cross_entropy, inputs: {logits: fc1, labels: label}}
    outputs: [fc1, loss]
"""

from __future__ import annotations

import copy
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import SpecError

FORMAT_VERSION = 1
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=128)]


class StrictModel(BaseModel):
    """Unknown keys are errors (with a "did you mean" added by the loader)."""

    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------------------------
# The graph part
# ----------------------------------------------------------------------------------------------


class InputSpec(StrictModel):
    """A graph input: its per-sample shape (no batch axis) and dtype."""

    shape: list[Annotated[int, Field(ge=1)]] = Field(description="per-sample shape, e.g. [784]")
    dtype: Literal["float32", "float64", "int64", "int32", "uint8"] = "float32"


class NodeSpec(StrictModel):
    """A node: an op applied to other nodes or inputs, each bound to one of the op's roles."""

    op: str = Field(description="registered op name (see `graphnet ops`)")
    inputs: dict[str, Union[Name, list[Name]]] = Field(
        default_factory=dict, description="role -> node or input name (a list for variadic roles)"
    )
    attrs: dict[str, Any] = Field(default_factory=dict, description="the op's attributes")


class LayersSpec(StrictModel):
    """Shorthand for a plain chain: ``sizes: [784, 200, 100, 10]`` becomes linear layers
    ``fc1..fc3`` with an activation after each hidden one, an optional dropout, and a loss."""

    input: Name = Field(description="the graph input the chain starts from")
    sizes: list[Annotated[int, Field(ge=1)]] = Field(
        min_length=2, description="input features, then the units of each linear layer"
    )
    activation: Literal["relu", "leaky_relu", "sigmoid", "tanh"] = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout rate after each activation")
    output_activation: Literal["softmax", "sigmoid", "none"] = "none"
    init: Literal["he_normal", "glorot_uniform", "lecun_normal"] = "he_normal"
    loss: Literal["softmax_cross_entropy", "cross_entropy", "mse", "none"] = "softmax_cross_entropy"
    labels: Name | None = Field(None, description="the graph input holding the labels")
    loss_attrs: dict[str, Any] = Field(default_factory=dict, description="attributes of the loss op")

    @model_validator(mode="after")
    def _labels_for_loss(self) -> "LayersSpec":
        if self.loss != "none" and self.labels is None:
            raise ValueError(f"loss '{self.loss}' needs `labels:` naming the label input")
        return self


# ----------------------------------------------------------------------------------------------
# The train part (used by `graphnet run`)
# ----------------------------------------------------------------------------------------------


class PreprocessSpec(StrictModel):
    scale: bool = Field(True, description="divide uint8 pixels by 255 (to [0, 1])")
    standardize: bool = Field(False, description="subtract the training mean, divide by its std")
    flatten: bool = Field(True, description="flatten each example to a vector")
    one_hot: bool = Field(False, description="one-hot encode the labels (for MSE)")


class ValidationFile(StrictModel):
    file: str = Field(description=".npz file holding x_val and y_val (or the names in `keys`)")


class DataSpec(StrictModel):
    """Where the examples come from."""

    dataset: Literal["mnist", "fashion-mnist", "npz", "idx"] = "mnist"
    path: str | None = Field(
        None, description="directory of a named dataset's IDX files, or the .npz file"
    )
    files: dict[Literal["x_train", "y_train", "x_test", "y_test"], str] | None = Field(
        None, description="for dataset: idx, the four IDX files (relative to `path`)"
    )
    keys: dict[Literal["x_train", "y_train", "x_test", "y_test", "x_val", "y_val"], str] | None = (
        Field(None, description="array names inside an .npz when they are not the default ones")
    )
    validation: Union[Annotated[int, Field(ge=0)], Annotated[float, Field(gt=0, lt=1)], ValidationFile] = (
        Field(5000, description="examples held out of training: a count, a fraction or a file")
    )
    limit: Annotated[int, Field(ge=1)] | None = Field(
        None, description="use only the first N training examples (quick tries)"
    )
    preprocess: PreprocessSpec = Field(default_factory=PreprocessSpec)
    x: Name | None = Field(None, description="graph input fed the examples (default: first float input)")
    y: Name | None = Field(None, description="graph input fed the labels (default: the other input)")

    @model_validator(mode="after")
    def _fields_that_apply(self) -> "DataSpec":
        """`files:` and `keys:` only mean something for some datasets: say so rather than ignore."""
        if self.files is not None and self.dataset != "idx":
            raise ValueError(f"`files:` is only used with dataset: idx, but dataset is {self.dataset}")
        keys = set(self.keys or {})
        npz_keys = sorted(keys - {"x_val", "y_val"})
        if npz_keys and self.dataset != "npz":
            raise ValueError(
                f"keys {npz_keys} name arrays of an .npz file, but dataset is {self.dataset}"
            )
        val_keys = sorted(keys & {"x_val", "y_val"})
        if val_keys and not isinstance(self.validation, ValidationFile):
            raise ValueError(
                f"keys {val_keys} name arrays of a validation file, but validation is "
                f"{self.validation!r}; set validation: {{file: val.npz}}"
            )
        return self


class SGDSpec(StrictModel):
    type: Literal["sgd"]
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0, description="L2 coefficient (the original's alpha)")

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> "SGDSpec":
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        return self


class AdamSpec(StrictModel):
    type: Literal["adam", "adamw"]
    lr: float = Field(0.001, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(
        0.0, ge=0, description="adam: L2 added to the gradient; adamw: decoupled decay"
    )


OptimizerSpec = Annotated[Union[SGDSpec, AdamSpec], Field(discriminator="type")]


class Stage(StrictModel):
    epochs: int = Field(ge=1)
    lr: float = Field(gt=0)


class ConstantSchedule(StrictModel):
    type: Literal["constant"] = "constant"
    warmup_epochs: float = Field(0, ge=0, description="linear warm-up from 0 over these epochs")


class PiecewiseSchedule(StrictModel):
    type: Literal["piecewise"] = "piecewise"
    stages: list[Stage] = Field(min_length=1)
    warmup_epochs: float = Field(0, ge=0)


class StepSchedule(StrictModel):
    type: Literal["step"] = "step"
    step_epochs: int = Field(ge=1, description="multiply the rate by gamma every this many epochs")
    gamma: float = Field(0.1, gt=0)
    warmup_epochs: float = Field(0, ge=0)


class CosineSchedule(StrictModel):
    type: Literal["cosine"] = "cosine"
    min_lr: float = Field(0.0, ge=0)
    warmup_epochs: float = Field(0, ge=0)


ScheduleSpec = Annotated[
    Union[ConstantSchedule, PiecewiseSchedule, StepSchedule, CosineSchedule],
    Field(discriminator="type"),
]


class KeepBestSpec(StrictModel):
    metric: Literal["val_loss", "val_error", "val_accuracy"] = "val_error"
    patience: Annotated[int, Field(ge=1)] | None = Field(
        None, description="stop after this many epochs without improvement"
    )


class AugmentSpec(StrictModel):
    """Random changes to each training example, drawn anew every epoch (never at evaluation)."""

    shift: int = Field(0, ge=0, le=8, description="shift each image by up to this many pixels in x and y")
    image_shape: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [28, 28], min_length=2, max_length=2,
        description="height and width of the images the examples hold (flattened or not)",
    )


class TrainSpec(StrictModel):
    data: DataSpec = Field(default_factory=DataSpec)
    augment: AugmentSpec | None = None
    batch_size: int = Field(64, ge=1)
    epochs: int | None = Field(None, ge=1, description="defaults to the sum of the schedule's stages")
    seed: int = Field(0, ge=0)
    loss: Name = Field("loss", description="the node whose output is minimized")
    predict: Name | None = Field(
        None, description="the node whose argmax is the prediction (default: the loss's first input)"
    )
    metrics: list[Literal["loss", "error", "accuracy"]] = Field(default_factory=lambda: ["loss", "error"])
    optimizer: OptimizerSpec = Field(default_factory=lambda: SGDSpec(type="sgd"))
    schedule: ScheduleSpec = Field(default_factory=ConstantSchedule)
    keep_best: KeepBestSpec | None = Field(default_factory=KeepBestSpec)
    output: str | None = Field(None, description="model file to write (default: runs/<name>.gnm)")

    @field_validator("schedule", mode="before")
    @classmethod
    def _list_is_piecewise(cls, value: Any) -> Any:
        # The original from-scratch implementation's schedule, written as it was run:
        # [{epochs: 10, lr: 1e-2}, {epochs: 10, lr: 1e-3}, {epochs: 10, lr: 1e-4}]
        if isinstance(value, list):
            return {"type": "piecewise", "stages": value}
        if isinstance(value, dict) and "type" not in value:
            return {"type": "constant", **value}
        return value

    @model_validator(mode="after")
    def _epochs(self) -> "TrainSpec":
        if isinstance(self.schedule, PiecewiseSchedule):
            total = sum(stage.epochs for stage in self.schedule.stages)
            if self.epochs is None:
                self.epochs = total
            elif self.epochs != total:
                raise ValueError(
                    f"epochs is {self.epochs} but the schedule's stages add up to {total}; "
                    "drop `epochs` or make them agree"
                )
        elif self.epochs is None:
            self.epochs = 10
        return self

    def total_epochs(self) -> int:
        assert self.epochs is not None  # set by the validator
        return self.epochs


# ----------------------------------------------------------------------------------------------
# The whole spec
# ----------------------------------------------------------------------------------------------


class Spec(StrictModel):
    """A graphnet spec (format version 1)."""

    format: Literal[1] = Field(FORMAT_VERSION, description="spec format version")
    name: Name
    description: str = ""
    inputs: dict[Name, InputSpec] = Field(min_length=1)
    layers: LayersSpec | None = None
    nodes: dict[Name, NodeSpec] = Field(default_factory=dict)
    outputs: list[Name] = Field(default_factory=list, description="nodes returned by forward")
    train: TrainSpec | None = None

    # Where it came from, for error messages: the file and a map of spec path -> line.
    _file: str | None = PrivateAttr(default=None)
    _lines: dict[tuple, int] = PrivateAttr(default_factory=dict)
    # The --set overrides applied when loading: an error in a value they set points at them.
    _overrides: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _needs_nodes(self) -> "Spec":
        if self.layers is None and not self.nodes:
            raise ValueError("the spec declares no `nodes:` and no `layers:`")
        return self

    def all_nodes(self) -> dict[str, NodeSpec]:
        """The node graph, with the `layers:` shorthand expanded (its nodes come first)."""
        nodes = expand_layers(self.layers) if self.layers is not None else {}
        for name, node in self.nodes.items():
            if name in nodes:
                raise self.error(
                    ("nodes", name),
                    f"node name '{name}' is already used by the `layers:` shorthand",
                    hint="rename the node",
                )
            nodes[name] = node
        return nodes

    def output_names(self) -> list[str]:
        if self.outputs:
            return list(self.outputs)
        return list(self.all_nodes())[-1:]

    # -- locations --------------------------------------------------------------------------

    @property
    def file(self) -> str | None:
        return self._file

    def line_of(self, path: tuple) -> int | None:
        """The line of the deepest known key along ``path``."""
        path = tuple(path)
        if len(path) >= 2 and path[0] == "nodes" and path[1] not in self.nodes and self.layers is not None:
            path = ("layers",)  # a node made by the `layers:` shorthand: point at the shorthand
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return None

    def error(self, path: tuple, message: str, hint: str | None = None, cls=SpecError) -> SpecError:
        """A located error at ``path`` (a tuple such as ("nodes", "fc2", "inputs", "x"))."""
        where = dotted(path)
        item = _override_for(where, self._overrides)
        if item is not None:
            return cls(message, path=where, file=f"--set {item}", line=None, hint=hint)
        return cls(message, path=where, file=self._file, line=self.line_of(path), hint=hint)

    # -- canonical form ---------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        # Where a spec was read from is not part of it.
        return isinstance(other, Spec) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain data (every field, defaults filled in); loads back to an equal spec."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        # Not sort_keys: the order of `nodes:` is the declaration order, which picks the
        # topological order among equals (and with it initialization and dropout streams).
        return json.dumps(self.to_dict(), indent=2)


def dotted(path: tuple) -> str:
    return ".".join(str(part) for part in path)


def expand_layers(layers: LayersSpec) -> dict[str, NodeSpec]:
    """``sizes: [784, 200, 100, 10]`` -> fc1, relu1, fc2, relu2, fc3 (+ softmax) + loss."""
    nodes: dict[str, NodeSpec] = {}
    previous = layers.input
    count = len(layers.sizes) - 1
    for i in range(1, count + 1):
        fc = f"fc{i}"
        attrs = {"units": layers.sizes[i], "in_features": layers.sizes[i - 1], "init": layers.init}
        nodes[fc] = NodeSpec(op="linear", inputs={"x": previous}, attrs=attrs)
        previous = fc
        if i < count:
            act = f"{layers.activation}{i}"
            nodes[act] = NodeSpec(op=layers.activation, inputs={"x": previous})
            previous = act
            if layers.dropout > 0:
                drop = f"dropout{i}"
                nodes[drop] = NodeSpec(op="dropout", inputs={"x": previous}, attrs={"rate": layers.dropout})
                previous = drop
    if layers.output_activation != "none":
        nodes[layers.output_activation] = NodeSpec(op=layers.output_activation, inputs={"x": previous})
        previous = layers.output_activation
    if layers.loss != "none":
        roles = {
            "softmax_cross_entropy": ("logits", "labels"),
            "cross_entropy": ("probs", "labels"),
            "mse": ("pred", "target"),
        }[layers.loss]
        assert layers.labels is not None  # checked by LayersSpec
        nodes["loss"] = NodeSpec(
            op=layers.loss, inputs={roles[0]: previous, roles[1]: layers.labels}, attrs=layers.loss_attrs
        )
    return nodes


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def load_spec(path: str | Path, overrides: list[str] | None = None) -> Spec:
    """Read, parse and structurally validate a spec file (YAML or JSON).

    ``overrides`` are ``dotted.path=value`` strings (the CLI's ``--set``), applied before
    validation so they are validated exactly like the file. Graph-level checks (ops, roles,
    shapes) are done by :func:`graphnet.graph.build_graph`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(
            f"cannot read spec: {error.strerror or error}",
            file=str(path),
            hint="check the path",
        ) from None
    return parse_spec(text, file=str(path), overrides=overrides)


def parse_spec(text: str, file: str | None = None, overrides: list[str] | None = None) -> Spec:
    """Parse spec text (YAML or JSON; JSON is tried first when the text starts with '{')."""
    data, lines = _parse_text(text, file)
    if not isinstance(data, dict):
        raise SpecError(
            f"the spec must be a mapping at the top level, received {type(data).__name__}",
            file=file,
            line=1,
            hint="start the file with keys such as `name:` and `inputs:`",
        )
    for item in overrides or []:
        apply_override(data, item, file)
    return validate_spec_data(data, file=file, lines=lines, overrides=overrides)


def validate_spec_data(
    data: dict, file: str | None = None, lines: dict | None = None, overrides: list[str] | None = None
) -> Spec:
    lines = lines or {}
    try:
        spec = Spec.model_validate(data)
    except ValidationError as error:
        located = _spec_error_from_pydantic(error, data, file, lines)
        # An error in a value that came from --set is reported against the --set, not the file.
        item = _override_for(located.path or "", overrides or [])
        if item is not None:
            located.file, located.line = f"--set {item}", None
        raise located from None
    spec._file = file
    spec._lines = lines
    spec._overrides = list(overrides or [])
    return spec


def _override_for(path: str, overrides: list[str]) -> str | None:
    """The last --set item that set ``path`` or a mapping holding it, if one did."""
    found = None
    for item in overrides:
        key = item.partition("=")[0].strip()
        if path == key or path.startswith(key + "."):
            found = item
    return found


def _parse_text(text: str, file: str | None) -> tuple[Any, dict[tuple, int]]:
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SpecError(
                f"invalid JSON: {error.msg}", file=file, line=error.lineno,
                hint="fix the JSON syntax at that line",
            ) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            problem = getattr(error, "problem", None) or str(error)
            raise SpecError(
                f"invalid YAML: {problem}", file=file,
                line=mark.line + 1 if mark is not None else None,
                hint="fix the YAML syntax at that line",
            ) from None
    return data, _line_map(text)


def _line_map(text: str) -> dict[tuple, int]:
    """Spec path -> 1-based line, from YAML's node tree (JSON is read by the same composer)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[tuple, int] = {}
    stack: list[tuple[tuple, Any]] = [((), root)]
    while stack:  # iterative walk
        path, node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                child = path + (key,)
                lines[child] = key_node.start_mark.line + 1
                stack.append((child, value_node))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = path + (index,)
                lines[child] = item.start_mark.line + 1
                stack.append((child, item))
    return lines


# Which model validates the mapping found at a spec path: used for "did you mean" on unknown keys.
def _fields_at(path: tuple, data: dict) -> list[str]:
    model: Any = Spec
    node: Any = data
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
        if isinstance(model, DictOf):
            model = model.value
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _resolve_model(field.annotation, node)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


class DictOf:
    """Marks a ``dict[str, Model]`` field while walking the models."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _resolve_model(annotation: Any, node: Any) -> Any:
    """The pydantic model (or DictOf) an annotation validates ``node`` with, if one."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if origin is dict and len(args) == 2:
        value_model = _resolve_model(args[1], None)
        return DictOf(value_model) if value_model is not None else None
    if origin is Annotated:
        return _resolve_model(args[0], node)
    if origin in (Union, types.UnionType):
        candidates = [m for m in (_resolve_model(a, node) for a in args) if m is not None]
        if isinstance(node, dict) and "type" in node:  # a discriminated union: pick by `type`
            for candidate in candidates:
                if isinstance(candidate, type) and "type" in candidate.model_fields:
                    allowed = typing.get_args(candidate.model_fields["type"].annotation)
                    if node["type"] in allowed:
                        return candidate
        return candidates[0] if len(candidates) == 1 else None
    return None


def _spec_error_from_pydantic(
    error: ValidationError, data: dict, file: str | None, lines: dict
) -> SpecError:
    errors = error.errors()
    first = errors[0]
    path = _data_path(first["loc"], data, names_key=first["type"] in ("missing", "extra_forbidden"))
    received = first.get("input")
    kind = first["type"]
    hint = None
    if kind == "extra_forbidden":
        key = path[-1] if path else "?"
        known = _fields_at(path[:-1], data)
        close = difflib.get_close_matches(str(key), known, n=1)
        message = f"unknown key '{key}'"
        hint = (f"did you mean '{close[0]}'? " if close else "") + (
            "allowed keys: " + ", ".join(known) if known else "remove it"
        )
    elif kind == "missing":
        message = f"missing required key '{path[-1] if path else '?'}'"
        hint = "add it"
    else:
        message = first["msg"].replace("Value error, ", "")
        message += f"; received {_short(received)}"
        hint = _hint_for(kind, first)
    if len(errors) > 1:
        message += f" (+{len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    line = None
    probe = tuple(path)
    while probe:
        if probe in lines:
            line = lines[probe]
            break
        probe = probe[:-1]
    return SpecError(message, path=dotted(path) or "<top>", file=file, line=line, hint=hint)


def _data_path(loc: tuple, data: Any, names_key: bool = True) -> tuple:
    """pydantic's error location without the union tags it inserts ('sgd', 'int', ...).

    Walks the raw data along ``loc``: a part that names a key or index present in the data is
    kept; at the end of the data, the last part is kept only if the error is about that key
    (``names_key``: a missing or unknown key); anything else is a tag pydantic added for a union
    member (the model-level error of ``{type: sgd, nesterov: true}`` ends in the tag 'sgd').
    """
    path: list[Any] = []
    node = data
    parts = list(loc)
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif part == "[key]":
            continue  # pydantic's marker for an error in a dict key (the key itself is kept)
        elif names_key and isinstance(node, dict) and isinstance(part, str) and i == len(parts) - 1:
            path.append(part)  # a missing or unknown key
    return tuple(path)


def _hint_for(kind: str, err: dict) -> str | None:
    if kind.startswith("literal_error"):
        expected = err.get("ctx", {}).get("expected")
        return f"use one of: {expected}" if expected else None
    if kind == "string_pattern_mismatch":
        return "names start with a letter or '_' and use letters, digits, '_' or '-'"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return "use a value in the allowed range"
    if kind in {"int_parsing", "int_type", "float_parsing", "float_type", "int_from_float"}:
        return "use a number"
    if kind == "union_tag_invalid":
        return "set `type:` to one of " + str(err.get("ctx", {}).get("expected_tags"))
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------------
# --set overrides
# ----------------------------------------------------------------------------------------------


def apply_override(data: dict, item: str, file: str | None = None) -> None:
    """Apply one ``dotted.path=value`` override to raw spec data, in place.

    The value is parsed as YAML (so ``0.1`` is a number, ``[1, 2]`` a list, ``true`` a bool).
    Missing intermediate mappings are created; the result is validated with the rest of the spec.
    """
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(
            f"--set expects PATH=VALUE, received {item!r}",
            hint="for example --set train.optimizer.lr=0.1",
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            node = _list_item(node, part, where, item)
            continue
        if not isinstance(node, dict):
            raise SpecError(
                f"--set {item!r}: '{'.'.join(parts[:i])}' is a {type(node).__name__}, not a mapping",
                path=where,
                hint="check the path",
            )
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        index = _list_index(node, last, key, item)
        node[index] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SpecError(
            f"--set {item!r}: '{'.'.join(parts[:-1])}' is a {type(node).__name__}, not a mapping",
            path=key,
            hint="check the path",
        )


def _list_index(node: list, part: str, where: str, item: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise SpecError(
            f"--set {item!r}: '{part}' is not an index of a list of {len(node)} items",
            path=where,
            hint=f"use an index from 0 to {len(node) - 1}",
        )
    return int(part)


def _list_item(node: list, part: str, where: str, item: str) -> Any:
    return node[_list_index(node, part, where, item)]


def with_overrides(spec: Spec, overrides: list[str]) -> Spec:
    """A new spec: ``spec`` with ``--set`` overrides applied and validated again."""
    data = copy.deepcopy(spec.to_dict())
    for item in overrides:
        apply_override(data, item, spec.file)
    return validate_spec_data(
        data, file=spec.file, lines=spec._lines, overrides=[*spec._overrides, *overrides]
    )
