"""The header: everything but the tensors, as pydantic models.

Every model is strict (no coercion: ``true`` is not ``1``, ``1.0`` is not ``1``, a string is not a
list) and forbids unknown keys, and every length is bounded, so a header that passes describes
exactly what graphnet would have written. ``validate_header`` turns the plain data decoded from
the file into a :class:`Header` and checks what spans several fields (names unique in a group,
byte counts, the parameters' dtype); ``check_layout`` checks the tensor directory against the
file's size. Nothing here builds a graph: ``read.py`` does that once the header has passed.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal, Optional

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from ..errors import ModelFileError, raise_all, short
from .layout import (
    DTYPES,
    GROUPS,
    HASH_BLOCK,
    MAX_FILE_BYTES,
    MODEL_DTYPES,
    block_count,
    canonical_offsets,
    data_start,
    nbytes_of,
)
from .plain import MAX_ITEMS, NOT_PLAIN_HINT

MAX_NDIM = 32  # axes of a tensor
MAX_DIM = 1 << 40  # one axis; the file size bounds the product
MAX_TENSORS = 1 << 18  # tensors in one group
MAX_OPS = 4096  # distinct ops in one model
MAX_TEXT = 4096  # a description (where the data came from, a folder)
MAX_NAMES = 1 << 16  # class names
MAX_BLOCKS = MAX_FILE_BYTES // HASH_BLOCK  # digests of one tensor


class Record(BaseModel):
    """Base of every header model: strict types, unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _number(value: Any) -> Any:
    if type(value) not in (int, float):
        raise ValueError(f"should be a number, not {_kind(value)}")
    return value


def _scalar(value: Any) -> Any:
    if value is not None and type(value) not in (bool, int, float, str):
        raise ValueError(f"should be a number, a string, a boolean or null, not {_kind(value)}")
    if type(value) is str and len(value) > MAX_TEXT:
        raise ValueError(f"is a string of {len(value):,} characters, more than the {MAX_TEXT} allowed")
    return value


def _kind(value: Any) -> str:
    return {dict: "a map", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__)


Key = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
OpName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$", max_length=128)]
TensorName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:/\[\]\-]*$", max_length=256)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Dim = Annotated[int, Field(ge=1, le=MAX_DIM)]
Number = Annotated[Any, AfterValidator(_number)]
Scalar = Annotated[Any, AfterValidator(_scalar)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


# ----------------------------------------------------------------------------------------------
# The tensor directory
# ----------------------------------------------------------------------------------------------


class TensorEntry(Record):
    """Where one tensor's bytes are, and what they hold."""

    name: TensorName
    dtype: Literal["<f4", "<f8", "<i4", "<i8", "<u1"]
    shape: list[Dim] = Field(max_length=MAX_NDIM)
    offset: int = Field(ge=0, multiple_of=64, description="from the start of the tensor section")
    nbytes: int = Field(ge=1)
    sha256: list[Sha256] = Field(min_length=1, max_length=MAX_BLOCKS,
                                 description="one digest per 16 MiB block of the tensor's bytes")

    @model_validator(mode="after")
    def _exact_bytes(self) -> "TensorEntry":
        expected = nbytes_of(self.shape, self.dtype)
        if self.nbytes != expected:
            raise ValueError(
                f"nbytes is {self.nbytes:,}, but shape {self.shape} of {self.dtype} holds "
                f"{expected:,} bytes"
            )
        if len(self.sha256) != block_count(self.nbytes):
            raise ValueError(
                f"sha256 has {len(self.sha256)} digests, but {self.nbytes:,} bytes make "
                f"{block_count(self.nbytes)} blocks of {HASH_BLOCK:,} bytes"
            )
        return self


class Tensors(Record):
    """The tensor directory, in named groups stored in this order."""

    params: list[TensorEntry] = Field(max_length=MAX_TENSORS, description="trainable parameters")
    state: list[TensorEntry] = Field(max_length=MAX_TENSORS, description="non-trainable op state")
    optimizer: list[TensorEntry] = Field(max_length=MAX_TENSORS, description="optimizer slots")

    def entries(self) -> list[tuple[str, int, TensorEntry]]:
        """(group, index, entry) of every tensor, in storage order."""
        return [(group, i, e) for group in GROUPS for i, e in enumerate(getattr(self, group))]


# ----------------------------------------------------------------------------------------------
# What the model needs besides its tensors
# ----------------------------------------------------------------------------------------------


# A distribution's name (PEP 508) and version (PEP 440's characters)
Distribution = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$", max_length=128)]
Version = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.+!_-]+$", max_length=64)]


class OpRecord(Record):
    """An op the spec uses: its version, and the distribution (with its version) providing it.
    The distribution is null in files migrated from format 1, which did not record it."""

    version: int = Field(ge=1, le=(1 << 31) - 1)
    distribution: Optional[Distribution]
    distribution_version: Optional[Version]


class Labels(Record):
    input: Key = Field(description="the graph input fed the labels")
    one_hot: bool
    classes: int = Field(ge=1, le=1 << 31)
    names: Optional[list[Annotated[str, StringConstraints(max_length=256)]]] = Field(max_length=MAX_NAMES)

    @model_validator(mode="after")
    def _one_name_per_class(self) -> "Labels":
        if self.names is not None and len(self.names) != self.classes:
            raise ValueError(f"names has {len(self.names)} entries for {self.classes} classes")
        return self


class Preprocess(Record):
    """How raw examples become the model's input (agreed with the ONNX exporter):
    x = raw.astype(float) / scale; x = (x - mean) / std; flattened per example if flatten."""

    input: Key = Field(description="the graph input fed the examples")
    raw_shape: list[Dim] = Field(min_length=1, max_length=8, description="per-example raw shape")
    raw_dtype: Literal["uint8", "float32", "float64"]
    scale: Optional[Finite] = Field(gt=0)
    mean: Optional[Finite]
    std: Optional[Finite] = Field(gt=0)
    flatten: bool
    labels: Optional[Labels]

    @model_validator(mode="after")
    def _mean_with_std(self) -> "Preprocess":
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std come together (standardize) or not at all")
        return self


class Classes(Record):
    count: int = Field(ge=1, le=1 << 31)
    names: Optional[list[Annotated[str, StringConstraints(max_length=256)]]] = Field(max_length=MAX_NAMES)

    @model_validator(mode="after")
    def _one_name_per_class(self) -> "Classes":
        if self.names is not None and len(self.names) != self.count:
            raise ValueError(f"names has {len(self.names)} entries for {self.count} classes")
        return self


def _epochs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for index, record in enumerate(records):
        epoch = record.get("epoch")
        if type(epoch) is not int or epoch < 1:
            raise ValueError(f"entry {index} has epoch {short(epoch)}; every entry has an integer epoch >= 1")
    return records


class Log(Record):
    """The training log: one map of scalars per epoch (epoch, lr, train_loss, val_*, seconds...)."""

    epochs: Annotated[list[dict[Key, Scalar]], AfterValidator(_epochs)] = Field(
        default_factory=list, max_length=MAX_ITEMS)
    best_epoch: Optional[int] = Field(None, ge=1)
    stopped: Optional[Text] = None
    data: Optional[Text] = None
    spec_dir: Optional[Text] = None
    seconds: Optional[Number] = None


class Header(Record):
    """Everything in a model file but the tensors."""

    format: Literal[2]
    graphnet: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    spec: dict[Key, Any]
    ops: dict[OpName, OpRecord] = Field(min_length=1, max_length=MAX_OPS)
    dtype: Literal["float32", "float64"]
    tensors: Tensors
    preprocess: Optional[Preprocess] = None
    classes: Optional[Classes] = None
    data: Optional[Text] = None
    log: Log = Field(default_factory=Log)
    metrics: dict[Key, Optional[Number]] = Field(default_factory=dict, max_length=4096)
    resume: Optional[dict[Key, Any]] = None

    _raw: dict = PrivateAttr(default_factory=dict)
    _source_format: int = PrivateAttr(default=2)
    _header_length: int = PrivateAttr(default=0)

    @property
    def source_format(self) -> int:
        """The format the file was written in (1: migrated to this form when read)."""
        return self._source_format

    @property
    def data_start(self) -> int:
        """Where the tensor section starts in the file (format 2)."""
        return data_start(self._header_length)

    def to_dict(self) -> dict:
        """The header as plain data, exactly as stored (JSON-compatible)."""
        return copy.deepcopy(self._raw)

    def param_count(self) -> int:
        """Number of trainable scalars."""
        return sum(e.nbytes // DTYPES[e.dtype].itemsize for e in self.tensors.params)


HEADER_KEYS = tuple(Header.model_fields)  # the order a writer puts the keys in


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------


def validate_header(raw: Any, file: str, *, source_format: int = 2, header_length: int = 0) -> Header:
    """Check decoded plain data against the models; every problem found is reported (one
    ModelFileError carrying the others)."""
    if type(raw) is not dict:
        raise ModelFileError(f"the header is {_kind(raw)}, not a map", file=file, hint=NOT_PLAIN_HINT)
    if type(raw.get("format")) is not int:  # before pydantic: Literal[2] would take 2.0 and True
        raise ModelFileError(
            f"format is {short(raw.get('format'))}; it must be the integer 2", file=file, path="format",
            hint=NOT_PLAIN_HINT)
    try:
        header = Header.model_validate(raw)
    except ValidationError as error:
        raise_all([_from_pydantic(e, file) for e in error.errors(include_url=False)])
        raise AssertionError("unreachable")  # pragma: no cover
    header._raw = raw
    header._source_format = source_format
    header._header_length = header_length
    raise_all(_cross_checks(header, file))
    return header


def _from_pydantic(error: dict, file: str) -> ModelFileError:
    loc = [str(part) for part in error["loc"]]
    kind = error["type"]
    if kind == "extra_forbidden":
        message = f"unknown key '{loc[-1]}'"
        loc = loc[:-1]
    elif kind == "missing":
        message = f"missing key '{loc[-1]}'"
        loc = loc[:-1]
    else:
        message = f"{error['msg'].removeprefix('Value error, ')}; received {short(error.get('input'))}"
    return ModelFileError(message, file=file, path=".".join(loc) or None, hint=NOT_PLAIN_HINT)


def _cross_checks(header: Header, file: str) -> list[ModelFileError]:
    problems = []
    for group in GROUPS:
        seen: set[str] = set()
        for index, entry in enumerate(getattr(header.tensors, group)):
            if entry.name in seen:
                problems.append(ModelFileError(
                    f"tensor '{entry.name}' is listed twice in {group}", file=file,
                    path=f"tensors.{group}.{index}.name", hint=NOT_PLAIN_HINT))
            seen.add(entry.name)
    wanted = MODEL_DTYPES[header.dtype]
    for index, entry in enumerate(header.tensors.params):
        if entry.dtype != wanted:
            problems.append(ModelFileError(
                f"parameter '{entry.name}' is {entry.dtype}, but the model's dtype is "
                f"{header.dtype} ({wanted}); the dtype field cannot change what the tensors hold",
                file=file, path=f"tensors.params.{index}.dtype", hint=NOT_PLAIN_HINT))
    labels = header.preprocess.labels if header.preprocess is not None else None
    if labels is not None and header.classes is not None and labels.classes != header.classes.count:
        problems.append(ModelFileError(
            f"the preprocessing has {labels.classes} classes, the header's classes {header.classes.count}",
            file=file, path="preprocess.labels.classes", hint=NOT_PLAIN_HINT))
    return problems


def check_layout(header: Header, size: int, file: str) -> None:
    """The directory tiles the tensor section exactly: each tensor at the first multiple of 64
    after the previous one (directory order: params, state, optimizer), and the file ending at
    the last tensor's last byte."""
    entries = header.tensors.entries()
    offsets, end = canonical_offsets([e for _, _, e in entries])
    for (group, index, entry), expected in zip(entries, offsets):
        if entry.offset != expected:
            raise ModelFileError(
                f"tensor '{entry.name}' is at offset {entry.offset:,}, expected {expected:,} (each "
                "tensor starts at the first multiple of 64 after the previous one)",
                file=file, path=f"tensors.{group}.{index}.offset", hint=NOT_PLAIN_HINT)
    total = header.data_start + end
    if size < total:
        raise ModelFileError(
            f"the file is truncated: its tensors end at byte {total:,}, the file has {size:,} bytes",
            file=file, hint="use an intact copy of the file")
    if size > total:
        raise ModelFileError(
            f"the file has {size - total:,} bytes after its last tensor (it ends at byte {total:,})",
            file=file, hint="use an intact copy of the file")
