"""Format 1 (graphnet 0.1's files), read and migrated to the format-2 header.

A format-1 file is one msgpack map holding a second msgpack document as a binary string::

    {"magic": "graphnet-model", "format": 1, "sha256": <hex of payload>, "payload": <bin>}
    payload = {"graphnet": "0.1.0", "spec": {...}, "op_versions": {"linear": 1, ...},
               "dtype": "float32",
               "params": [{"name": "fc1.w", "shape": [784, 800], "dtype": "<f4", "data": <bin>}, ...],
               "log": {...}, "metrics": {...}}

It is checked as strictly as format 2 (strict pydantic models, no unknown keys, the checksum),
then turned into a format-2 header: ``op_versions`` becomes ``ops`` with unknown distributions,
the log's ``data`` becomes the header's ``data``, the tensor directory is computed. Reading one
reads the whole file (format 1 has no separate header).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from ..errors import ModelFileError, raise_all, short
from .header import Dim, OpName, Sha256, TensorName, _from_pydantic
from .layout import MODEL_DTYPES, block_digests, canonical_offsets, nbytes_of
from .plain import NOT_PLAIN_HINT, unpack

MAGIC = "graphnet-model"
MAX_FILE_BYTES = 4 << 30  # what format 1 allowed; the whole file is read into memory


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Outer(_Strict):
    magic: Literal["graphnet-model"]
    format: int = Field(ge=1, le=1)
    sha256: Sha256
    payload: bytes


class Param(_Strict):
    name: TensorName
    shape: list[Dim] = Field(max_length=32)
    dtype: Literal["<f4", "<f8"]
    data: bytes

    @model_validator(mode="after")
    def _exact_bytes(self) -> "Param":
        expected = nbytes_of(self.shape, self.dtype)
        if len(self.data) != expected:
            raise ValueError(f"{len(self.data):,} bytes do not hold {self.dtype} values of shape "
                             f"{self.shape} ({expected:,} bytes)")
        return self


class Payload(_Strict):
    graphnet: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    spec: dict[str, Any]
    op_versions: dict[OpName, Annotated[int, Field(ge=1, le=(1 << 31) - 1)]] = Field(min_length=1)
    dtype: Literal["float32", "float64"]
    params: list[Param] = Field(max_length=1 << 18)
    log: Any = None  # checked as the format-2 log once migrated
    metrics: Any = None


def read(data: bytes, file: str) -> tuple[dict, dict[str, np.ndarray]]:
    """A format-1 file's bytes -> (the format-2 header as plain data, parameter arrays by name)."""
    outer = _validated(Outer, unpack(data, file, "the file", allow_bin=True), file, "")
    if hashlib.sha256(outer.payload).hexdigest() != outer.sha256:
        raise ModelFileError("checksum mismatch: the payload is corrupted", file=file,
                             hint="use an intact copy of the file")
    body = _validated(Payload, unpack(outer.payload, file, "the payload", allow_bin=True), file, "payload.")
    arrays: dict[str, np.ndarray] = {}
    for index, param in enumerate(body.params):
        if param.dtype != MODEL_DTYPES[body.dtype]:
            raise ModelFileError(
                f"parameter '{param.name}' is {param.dtype}, but the model's dtype is {body.dtype}",
                file=file, path=f"payload.params.{index}.dtype", hint=NOT_PLAIN_HINT)
        if param.name in arrays:
            raise ModelFileError(f"parameter '{param.name}' is listed twice", file=file,
                                 path=f"payload.params.{index}.name", hint=NOT_PLAIN_HINT)
        arrays[param.name] = np.frombuffer(param.data, param.dtype).reshape(param.shape)
    return _migrate(body), arrays


def _validated(model: type[BaseModel], raw: Any, file: str, prefix: str) -> Any:
    if type(raw) is not dict:
        raise ModelFileError(f"{prefix or 'the file '}is not a map", file=file, hint=NOT_PLAIN_HINT)
    if "format" in raw and type(raw["format"]) is not int:  # strict int takes neither 1.0 nor true
        raise ModelFileError(f"format is {short(raw['format'])}; it must be the integer 1", file=file,
                             path="format", hint=NOT_PLAIN_HINT)
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problems = []
        for e in error.errors(include_url=False):
            problem = _from_pydantic(e, file)
            problem.path = ((prefix + (problem.path or "")).rstrip(".") or None) if prefix else problem.path
            problems.append(problem)
        raise_all(problems)


def _migrate(body: Payload) -> dict:
    """The format-2 header describing a format-1 file's content."""
    entries = []
    params = list(body.params)
    offsets, _ = canonical_offsets([_Sized(len(p.data)) for p in params])
    for param, offset in zip(params, offsets):
        entries.append({
            "name": param.name, "dtype": param.dtype, "shape": list(param.shape), "offset": offset,
            "nbytes": len(param.data), "sha256": block_digests(param.data),
        })
    log = body.log if body.log is not None else {}
    data = log.get("data") if isinstance(log, dict) and isinstance(log.get("data"), str) else None
    return {
        "format": 2,
        "graphnet": body.graphnet,
        "spec": body.spec,
        "ops": {name: {"version": version, "distribution": None, "distribution_version": None}
                for name, version in body.op_versions.items()},
        "dtype": body.dtype,
        "tensors": {"params": entries, "state": [], "optimizer": []},
        "preprocess": None,
        "classes": None,
        "data": data,
        "log": log,
        "metrics": body.metrics if body.metrics is not None else {},
        "resume": None,
    }


class _Sized:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
