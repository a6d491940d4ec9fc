"""Model files (``.gnm``): msgpack data only — the spec, the weights and the training log.

A file is a msgpack map::

    {"magic": "graphnet-model", "format": 1, "sha256": <hex of payload>, "payload": <bin>}

and ``payload`` is itself msgpack::

    {"graphnet": "0.1.0", "spec": {...canonical spec...}, "op_versions": {"linear": 1, ...},
     "dtype": "float32",
     "params": [{"name": "fc1.w", "shape": [784, 800], "dtype": "<f4", "data": <bin>}, ...],
     "log": {...training log...}, "metrics": {"test_error": 0.0123, ...}}

Weights are raw little-endian bytes. Loading never runs code: no pickle, no msgpack extension
types, and ops are looked up by name in the registry only. Writes are atomic (a temporary file
in the same directory, then a rename), so an interrupted save never leaves a broken file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from . import __version__
from .errors import GraphnetError, ModelFileError
from .graph import build_graph
from .model import Model
from .spec import validate_spec_data

MAGIC = "graphnet-model"
FORMAT = 1
MAX_FILE_BYTES = 4 << 30  # 4 GiB


@dataclass
class ModelFile:
    """What a model file holds, loaded."""

    model: Model
    log: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: str | None = None


def save_model(path: str | Path, model: Model, log: dict | None = None, metrics: dict | None = None) -> None:
    """Write ``model`` (spec + parameters) with its training log, atomically."""
    params = [
        {
            "name": name,
            "shape": list(value.shape),
            "dtype": value.dtype.newbyteorder("<").str,
            "data": np.ascontiguousarray(value, value.dtype.newbyteorder("<")).tobytes(),
        }
        for name, value in model.params.items()
    ]
    payload = msgpack.packb(
        {
            "graphnet": __version__,
            "spec": model.spec.to_dict(),
            "op_versions": model.graph.op_versions(),
            "dtype": model.dtype.name,
            "params": params,
            "log": log or {},
            "metrics": metrics or {},
        },
        use_bin_type=True,
    )
    blob = msgpack.packb(
        {"magic": MAGIC, "format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload},
        use_bin_type=True,
    )
    write_atomic(Path(path), blob)


def check_output(path: str | Path, overwrite: bool = False) -> Path:
    """Fail early (before any training) if a model file cannot or should not be written there.

    An existing file is never replaced unless ``overwrite`` is set: a finished run is not lost
    to a quick try that reused its name."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError("the output path is a directory", file=str(path),
                             hint="give a file name such as runs/model.gnm")
    if path.exists() and not overwrite:
        raise ModelFileError(
            "a model file already exists there", file=str(path),
            hint="pass --overwrite to replace it, or --out to write somewhere else",
        )
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ModelFileError(f"cannot create files under {parent}", file=str(path),
                             hint="choose a writable location with --out")
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file next to ``path`` and rename it over ``path``: a reader sees the
    old file or the new one, never half of one. The file gets the usual permissions (umask)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise ModelFileError(f"cannot write the model file: {error.strerror or error}", file=str(path),
                             hint="choose a writable location with --out") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise ModelFileError(f"cannot write the model file: {error.strerror or error}", file=str(path),
                             hint="check the disk space and the permissions there") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unpack(data: bytes, what: str, file: str) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_no_ext)
    except ModelFileError:
        raise
    except Exception as error:
        raise ModelFileError(
            f"{what} is not valid msgpack ({type(error).__name__}: {error})",
            file=file, hint="the file is truncated or not a graphnet model file",
        ) from None


def _no_ext(code: int, data: bytes) -> Any:
    raise ModelFileError(f"msgpack extension type {code} is not allowed in a model file")


def load_model(path: str | Path) -> ModelFile:
    """Read a model file and rebuild the model from the spec it embeds."""
    file = str(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise ModelFileError(f"file is {size} bytes, more than the {MAX_FILE_BYTES} allowed", file=file)
        data = Path(path).read_bytes()
    except OSError as error:
        raise ModelFileError(f"cannot read model file: {error.strerror or error}", file=file,
                             hint="check the path") from None
    outer = _unpack(data, "the file", file)
    if not isinstance(outer, dict) or outer.get("magic") != MAGIC:
        raise ModelFileError("not a graphnet model file (no graphnet-model marker)", file=file,
                             hint="pass a .gnm file written by `graphnet run`")
    if outer.get("format") != FORMAT:
        raise ModelFileError(
            f"model file format {outer.get('format')!r} is not supported (this graphnet reads {FORMAT})",
            file=file, hint="use the graphnet version that wrote it",
        )
    payload = outer.get("payload")
    if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != outer.get("sha256"):
        raise ModelFileError("checksum mismatch: the file is corrupted", file=file,
                             hint="use an intact copy of the file")
    body = _unpack(payload, "the payload", file)
    try:
        spec = validate_spec_data(body["spec"], file=f"{file} (embedded spec)")
        graph = build_graph(spec)
    except GraphnetError as error:
        raise ModelFileError(f"embedded spec is invalid: {error}", file=file) from None
    except (KeyError, TypeError):
        raise ModelFileError("model file has no spec", file=file) from None
    _check_op_versions(graph.op_versions(), body.get("op_versions", {}), file)
    model = Model(graph, dtype=body.get("dtype", "float32"))
    _load_params(body.get("params", []), model, file)
    return ModelFile(model, body.get("log", {}), body.get("metrics", {}), file)


def _check_op_versions(current: dict, recorded: dict, file: str) -> None:
    for name, version in recorded.items():
        if current.get(name) != version:
            raise ModelFileError(
                f"the model was saved with op '{name}' version {version}, "
                f"this installation has version {current.get(name)}",
                file=file, hint="install the op version the model was trained with",
            )


def _load_params(items: Any, model: Model, file: str) -> None:
    if not isinstance(items, list):
        raise ModelFileError("params is not a list", file=file)
    values = {}
    for item in items:
        try:
            name, shape, dtype, data = item["name"], tuple(item["shape"]), np.dtype(item["dtype"]), item["data"]
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"malformed parameter entry ({error})", file=file) from None
        if dtype.kind != "f" or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(data):
            raise ModelFileError(
                f"parameter '{name}': {len(data)} bytes do not hold {dtype} values of shape {list(shape)}",
                file=file,
            )
        values[name] = np.frombuffer(data, dtype).reshape(shape).astype(model.dtype)
    try:
        model.load_params(values)
    except GraphnetError as error:
        raise ModelFileError(str(error), file=file) from None
