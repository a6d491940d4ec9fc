"""The spec's pydantic models: what a spec may say, with defaults and the rules that tie fields
together (checked when the spec loads, never during a run).

``Spec`` is the whole spec. It also knows where it came from (the file, the line of every key, the
``--set`` overrides applied), so that every later error about it can say where:
:meth:`Spec.error` builds a located error and :meth:`Spec.locate` fills in the place of an error
raised elsewhere with only a spec path.
"""

from __future__ import annotations

import json
import numbers
from typing import Annotated, Any, Literal, Mapping, Optional, Sequence, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

from ..errors import GraphnetError, SpecError, clip
from .overrides import override_for

FORMAT_VERSION = 1
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=128)]

# Upper bounds: far beyond any real use, low enough that a typo (an extra zero, 2**31 units) is
# an error when the spec loads instead of a MemoryError or an overflow minutes into a run.
MAX_DIM = 1 << 24  # the size of one axis; the same as graphnet.op.MAX_DIM (checked by a test)
MAX_RANK = 16  # axes of an input's per-sample shape
MAX_NODES = 100_000  # nodes of a graph, the `layers:` shorthand's included
MAX_EPOCHS = 100_000
MAX_BATCH = 1 << 20
MAX_EXAMPLES = 1_000_000_000  # a validation count or a limit
MAX_SEED = 2**32 - 1
Dim = Annotated[int, Field(ge=1, le=MAX_DIM)]
Epochs = Annotated[int, Field(ge=1, le=MAX_EPOCHS)]


class StrictModel(BaseModel):
    """Unknown keys are errors (with a "did you mean" added by the loader); a float field refuses
    inf and nan (`lr: .inf` would pass `gt=0`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SpecRule(ValueError):
    """A rule of the spec that pydantic cannot express, broken: raised by a validator.

    The loader reports ``hint`` as the way to fix it, and the error at ``at``, a path relative to
    the model that raised it (``("data", "validation")`` from TrainSpec), when the rule is about
    one field rather than the whole mapping.
    """

    def __init__(self, message: str, hint: str | None = None, at: tuple = ()) -> None:
        super().__init__(message)
        self.hint = hint
        self.at = tuple(at)


# ----------------------------------------------------------------------------------------------
# The graph part
# ----------------------------------------------------------------------------------------------


class InputSpec(StrictModel):
    """A graph input: its per-sample shape (no batch axis) and dtype."""

    shape: list[Dim] = Field(max_length=MAX_RANK, description="per-sample shape, e.g. [784]")
    dtype: Literal["float32", "float64", "int64", "int32", "uint8"] = "float32"


class NodeSpec(StrictModel):
    """A node: an op applied to other nodes or inputs, each bound to one of the op's roles."""

    op: str = Field(max_length=128, description="registered op name (see `graphnet ops`)")
    inputs: dict[str, Union[Name, list[Name]]] = Field(
        default_factory=dict, description="role -> node or input name (a list for variadic roles)"
    )
    attrs: dict[str, Any] = Field(default_factory=dict, description="the op's attributes")


NO_OP = "none"  # `output_activation: none`, `loss: none`: no such node


class LayersSpec(StrictModel):
    """Shorthand for a plain chain: ``sizes: [784, 200, 100, 10]`` becomes linear layers
    ``fc1..fc3`` with an activation after each hidden one, an optional dropout, and a loss.

    The activations and the loss are op names: any installed op fits (a plugin's too). Which ones
    fit, and the roles their inputs are bound to, come from the ops themselves, so they are
    checked where the ops are known, when the graph is built (graphnet.graph)."""

    input: Name = Field(description="the graph input the chain starts from")
    sizes: list[Dim] = Field(
        min_length=2, max_length=MAX_NODES + 1,
        description="input features, then the units of each linear layer",
    )
    activation: Name = Field(
        "relu", description="op after each hidden layer: any op with one input and default "
        "attributes (relu, leaky_relu, sigmoid, tanh, a plugin's; see `graphnet ops`)",
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout rate after each activation")
    output_activation: Name = Field(
        NO_OP, description="op after the last layer (softmax, sigmoid, ...), or none"
    )
    init: Literal["he_normal", "glorot_uniform", "lecun_normal"] = "he_normal"
    loss: Name = Field(
        "softmax_cross_entropy", description="loss op (softmax_cross_entropy, cross_entropy, mse, "
        "a plugin's: two inputs, the prediction then the labels), or none",
    )
    labels: Name | None = Field(None, description="the graph input holding the labels")
    loss_attrs: dict[str, Any] = Field(default_factory=dict, description="attributes of the loss op")

    @model_validator(mode="after")
    def _labels_for_loss(self) -> "LayersSpec":
        if self.loss != NO_OP and self.labels is None:
            raise ValueError(f"loss '{self.loss}' needs `labels:` naming the label input")
        return self

    def node_count(self) -> int:
        """How many nodes the shorthand stands for (see ``expand_layers``)."""
        linear = len(self.sizes) - 1
        per_hidden = 2 if self.dropout > 0 else 1  # activation (+ dropout) after each hidden one
        extra = (self.output_activation != NO_OP) + (self.loss != NO_OP)
        return linear + per_hidden * (linear - 1) + extra


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


def _validation_kind(value: Any) -> str:
    """Which member of DataSpec.validation's union a value is for."""
    if isinstance(value, (dict, ValidationFile)):
        return "file"
    if isinstance(value, float):
        return "fraction"
    return "count"


# `validation:` left out holds out this share of the training examples, at most the cap (the
# training data code, graphnet.train.data.split, computes it: it knows how many there are).
AUTO_VALIDATION_PERCENT = 10
AUTO_VALIDATION_CAP = 5000


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
    validation: Optional[
        Annotated[
            Union[
                Annotated[int, Field(ge=0, le=MAX_EXAMPLES), Tag("count")],
                Annotated[float, Field(gt=0, lt=1), Tag("fraction")],
                Annotated[ValidationFile, Tag("file")],
            ],
            Discriminator(_validation_kind),
        ]
    ] = Field(
        None,
        description=(
            "examples held out of training: a count, a fraction or a file; left out (null), "
            f"{AUTO_VALIDATION_PERCENT}% of the training examples, at most {AUTO_VALIDATION_CAP:,}"
        ),
    )
    limit: Annotated[int, Field(ge=1, le=MAX_EXAMPLES)] | None = Field(
        None, description="use only the first N training examples (quick tries)"
    )
    preprocess: PreprocessSpec = Field(default_factory=PreprocessSpec)
    x: Name | None = Field(None, description="graph input fed the examples (default: first float input)")
    y: Name | None = Field(None, description="graph input fed the labels (default: the other input)")

    @field_validator("validation", mode="before")
    @classmethod
    def _validation_is_count_fraction_or_file(cls, value: Any) -> Any:
        # One message for every wrong value, instead of one error per member of the union.
        if value is None or isinstance(value, (dict, ValidationFile)):
            return value  # None: the automatic split
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            if isinstance(value, numbers.Integral) or float(value).is_integer():
                if value >= 0:
                    return int(value)  # 5000.0 is the count 5000
            elif 0 < value < 1:
                return float(value)
        raise SpecRule(
            "validation must be a count >= 0, a fraction in (0, 1), or {file: ...}",
            hint=(
                "for example validation: 5000, validation: 0.1 or validation: {file: val.npz}; "
                f"leave it out for the automatic {AUTO_VALIDATION_PERCENT}% (at most {AUTO_VALIDATION_CAP:,})"
            ),
        )

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
            shown = "automatic" if self.validation is None else repr(self.validation)
            raise ValueError(
                f"keys {val_keys} name arrays of a validation file, but validation is "
                f"{shown}; set validation: {{file: val.npz}}"
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
    epochs: Epochs
    lr: float = Field(gt=0)


class ConstantSchedule(StrictModel):
    type: Literal["constant"] = "constant"
    warmup_epochs: float = Field(0, ge=0, le=MAX_EPOCHS, description="linear warm-up from 0 over these epochs")


class PiecewiseSchedule(StrictModel):
    type: Literal["piecewise"] = "piecewise"
    stages: list[Stage] = Field(min_length=1, max_length=1000)
    warmup_epochs: float = Field(0, ge=0, le=MAX_EPOCHS)


class StepSchedule(StrictModel):
    type: Literal["step"] = "step"
    step_epochs: Epochs = Field(description="multiply the rate by gamma every this many epochs")
    gamma: float = Field(0.1, gt=0)
    warmup_epochs: float = Field(0, ge=0, le=MAX_EPOCHS)


class CosineSchedule(StrictModel):
    type: Literal["cosine"] = "cosine"
    min_lr: float = Field(0.0, ge=0)
    warmup_epochs: float = Field(0, ge=0, le=MAX_EPOCHS)


ScheduleSpec = Annotated[
    Union[ConstantSchedule, PiecewiseSchedule, StepSchedule, CosineSchedule],
    Field(discriminator="type"),
]


class KeepBestSpec(StrictModel):
    metric: Literal["val_loss", "val_error", "val_accuracy"] = "val_error"
    patience: Epochs | None = Field(
        None, description="stop after this many epochs without improvement"
    )


class AugmentSpec(StrictModel):
    """Random changes to each training example, drawn anew every epoch (never at evaluation)."""

    shift: int = Field(0, ge=0, le=8, description="shift each image by up to this many pixels in x and y")
    image_shape: list[Dim] = Field(
        default_factory=lambda: [28, 28], min_length=2, max_length=2,
        description="height and width of the images the examples hold (flattened or not)",
    )


class TrainSpec(StrictModel):
    data: DataSpec = Field(default_factory=DataSpec)
    augment: AugmentSpec | None = None
    batch_size: int = Field(64, ge=1, le=MAX_BATCH)
    epochs: Epochs | None = Field(None, description="defaults to the sum of the schedule's stages")
    seed: int = Field(0, ge=0, le=MAX_SEED)
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
            if total > MAX_EPOCHS:
                raise SpecRule(
                    f"the schedule's stages add up to {total:,} epochs, more than {MAX_EPOCHS:,}",
                    hint="use fewer epochs per stage",
                )
            if self.epochs is None:
                self.epochs = total
            elif self.epochs != total:
                lr = self.schedule.stages[0].lr
                raise SpecRule(
                    f"epochs is {self.epochs} but the schedule's stages add up to {total}",
                    hint=(
                        "drop `epochs`, which defaults to the stages' sum, or give stages that add up"
                        f' to {self.epochs}, e.g. --set "train.schedule=[{{epochs: {self.epochs},'
                        f' lr: {lr}}}]"'
                    ),
                )
        elif self.epochs is None:
            self.epochs = 10
        return self

    @model_validator(mode="after")
    def _keep_best_needs_validation(self) -> "TrainSpec":
        # Best-on-validation and early stopping watch a validation metric: without a validation
        # split they would silently do nothing.
        validation = self.data.validation
        if self.keep_best is None or isinstance(validation, ValidationFile) or validation != 0:
            return self
        fix = (
            "set keep_best: null or hold out a validation split, e.g. validation: 5000, 0.1, "
            "{file: ...}, or leave validation out for the automatic split"
        )
        if self.keep_best.patience is not None:
            raise SpecRule(
                "early stopping needs a validation split, but validation is 0 "
                f"(keep_best.patience is {self.keep_best.patience})",
                hint=fix, at=("data", "validation"),
            )
        raise SpecRule(
            f"keep_best keeps the epoch with the best {self.keep_best.metric}, which needs a "
            "validation split, but validation is 0",
            hint=fix, at=("data", "validation"),
        )

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
    inputs: dict[Name, InputSpec] = Field(min_length=1, max_length=MAX_NODES)
    layers: LayersSpec | None = None
    nodes: dict[Name, NodeSpec] = Field(default_factory=dict, max_length=MAX_NODES)
    outputs: list[Name] = Field(default_factory=list, max_length=MAX_NODES, description="nodes returned by forward")
    train: TrainSpec | None = None

    # Where it came from, for error messages: the file and a map of dotted spec path -> line.
    _file: str | None = PrivateAttr(default=None)
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)
    # The --set overrides applied when loading: an error in a value they set points at them.
    _overrides: list[str] = PrivateAttr(default_factory=list)
    # The input roles of the `layers:` shorthand's ops, learnt when a graph is built from the spec
    # (the ops know them, the spec does not): see all_nodes.
    _roles: dict[str, list[str]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _needs_nodes(self) -> "Spec":
        if self.layers is None and not self.nodes:
            raise ValueError("the spec declares no `nodes:` and no `layers:`")
        count = len(self.nodes) + (self.layers.node_count() if self.layers is not None else 0)
        if count > MAX_NODES:
            raise SpecRule(
                f"the graph has {count:,} nodes, more than the limit of {MAX_NODES:,}",
                hint=f"graphnet builds graphs of up to {MAX_NODES:,} nodes; use fewer, wider layers",
            )
        return self

    def all_nodes(self, roles: Roles | None = None) -> dict[str, NodeSpec]:
        """The node graph, with the `layers:` shorthand expanded (its nodes come first).

        ``roles`` gives the input roles of the shorthand's ops (see ``expand_layers``); by default
        the ones learnt when a graph was built from this spec (``learn_roles``). Before that, the
        op names and the node names are right but the shorthand's roles are placeholders."""
        if roles is None:
            roles = self._roles
        nodes = expand_layers(self.layers, roles) if self.layers is not None else {}
        for name, node in self.nodes.items():
            if name in nodes:
                raise self.error(
                    ("nodes", name),
                    f"node name '{name}' is already used by the `layers:` shorthand",
                    hint="rename the node",
                )
            nodes[name] = node
        return nodes

    def learn_roles(self, roles: Roles) -> None:
        """Remember the input roles of the shorthand's ops (graph building calls it), so that
        later ``all_nodes()`` calls bind the real roles."""
        self._roles = {op: list(names) for op, names in roles.items()}

    def output_names(self) -> list[str]:
        if self.outputs:
            return list(self.outputs)
        return list(self.all_nodes())[-1:]

    # -- locations --------------------------------------------------------------------------

    @property
    def file(self) -> str | None:
        return self._file

    def source_path(self, path: tuple) -> tuple:
        """Where in the file ``path`` comes from: a node made by the `layers:` shorthand comes
        from `layers` (for its line, and for the --set that changed it)."""
        path = tuple(path)
        if (
            len(path) >= 2 and path[0] == "nodes" and self.layers is not None
            and str(path[1]) not in self.nodes
        ):
            return ("layers",)
        return path

    def error(self, path: tuple, message: str, hint: str | None = None, cls=SpecError) -> SpecError:
        """A located error at ``path`` (a tuple such as ("nodes", "fc2", "inputs", "x"))."""
        error = cls(message, path=dotted(path), hint=hint)
        place(error, self.source_path(path), self._file, self._lines, self._overrides)
        return error

    def locate(self, error: GraphnetError) -> GraphnetError:
        """Fill in where ``error`` comes from, when it carries a spec path but no file.

        Code that checks the spec's values after loading (the training data, say) raises an
        error with ``path="train.data.preprocess.flatten"`` and nothing else; ``raise
        spec.locate(error)`` gives it the file and the line of that key (the deepest one the file
        has), or names the ``--set`` that set it. An error that already names a file, or has no
        path, is returned unchanged. Returns ``error``.
        """
        if error.file is not None or not error.path:
            return error
        parts = tuple(int(p) if p.isdigit() else p for p in error.path.split("."))
        place(error, self.source_path(parts), self._file, self._lines, self._overrides)
        return error

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


def place(
    error: GraphnetError, path: tuple, file: str | None, lines: dict[str, int], overrides: list[str]
) -> None:
    """Say where ``error``, about the value at spec ``path``, comes from: the ``--set`` that set
    it (``override_for``), else ``file`` and, unless the error knows its line already, the line
    of the deepest key along ``path`` that ``lines`` (dotted path -> line) has."""
    item = override_for(dotted(path), overrides, lines)
    if item is not None:
        error.file, error.line = f"--set {clip(item, 200)}", None
        return
    error.file = file
    parts = [str(part) for part in path]
    while error.line is None and parts:  # the deepest key along path that the file has
        error.line = lines.get(".".join(parts))
        parts.pop()


# op name -> its input roles, in order: how the `layers:` shorthand learns the roles to bind
Roles = Mapping[str, Sequence[str]]


def expand_layers(layers: LayersSpec, roles: Roles | None = None) -> dict[str, NodeSpec]:
    """``sizes: [784, 200, 100, 10]`` -> fc1, relu1, fc2, relu2, fc3 (+ softmax) + loss.

    An activation's one input and the loss's two (the prediction, then the labels) are bound to
    the roles ``roles`` gives for their op (graphnet.graph passes the registry's). An op missing
    from ``roles`` gets placeholder roles, ``0`` and ``1`` (the position): right enough to list
    the nodes and their ops without the registry, never used to build a graph."""
    roles = roles or {}

    def bind(op: str, *sources: str) -> dict[str, str]:
        names = list(roles.get(op, ()))
        if len(names) != len(sources):
            names = [str(index) for index in range(len(sources))]
        return dict(zip(names, sources))

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
            nodes[act] = NodeSpec(op=layers.activation, inputs=bind(layers.activation, previous))
            previous = act
            if layers.dropout > 0:
                drop = f"dropout{i}"
                nodes[drop] = NodeSpec(op="dropout", inputs={"x": previous}, attrs={"rate": layers.dropout})
                previous = drop
    if layers.output_activation != NO_OP:
        op = layers.output_activation
        nodes[op] = NodeSpec(op=op, inputs=bind(op, previous))
        previous = op
    if layers.loss != NO_OP:
        assert layers.labels is not None  # checked by LayersSpec
        nodes["loss"] = NodeSpec(
            op=layers.loss, inputs=bind(layers.loss, previous, layers.labels), attrs=layers.loss_attrs
        )
    return nodes
