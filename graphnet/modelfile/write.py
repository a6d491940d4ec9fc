"""Writing model files: the same model always gives the same bytes, and a file appears whole.

The header is validated by the same models the reader uses before a byte is written, so graphnet
never writes a file it would refuse. The tensors are streamed from the arrays (no copy of the
model) and hashed as they go; the header, whose length does not depend on the hashes (each is a
64-character string), is written last, at the start of the file. Everything goes to a temporary
file in the same folder, flushed to disk, then renamed over the destination: whoever reads the
path sees the old file or the new one, even when the writer is killed halfway.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from pathlib import Path
from typing import Any, BinaryIO, ContextManager, Mapping

import msgpack
import numpy as np

from .. import __version__, atomic
from ..atomic import write_all
from ..errors import ModelFileError, OpError, listed
from ..graph import Graph
from ..model import Model
from ..registry import Registry, default_registry
from .header import HEADER_KEYS, Header, validate_header
from .layout import (
    DTYPES,
    GROUPS,
    PRELUDE,
    Streamer,
    block_count,
    canonical_offsets,
    data_start,
    pack_prelude,
)
from .plain import to_plain
from .read import check_finite, check_model

PLACEHOLDER = "0" * 64  # a block digest before the bytes are written: the same length
DEFAULTS = {"preprocess": None, "classes": None, "data": None, "log": {}, "metrics": {}, "resume": None}


def save_model(
    path: str | Path,
    model: Model,
    log: dict | None = None,
    metrics: dict | None = None,
    *,
    preprocess: dict | None = None,
    classes: dict | None = None,
    data: str | None = None,
    resume: dict | None = None,
    optimizer: Mapping[str, np.ndarray] | None = None,
    state: Mapping[str, np.ndarray] | None = None,
    registry: Registry | None = None,
) -> Header:
    """Write ``model`` (spec + parameters) with what was learned about it, atomically.

    ``log``/``metrics``: the training log and the test metrics; ``preprocess``: how raw examples
    become the model's input (see :class:`~graphnet.modelfile.header.Preprocess`); ``classes``:
    ``{"count": 10, "names": [...] or None}``; ``data``: where the data came from (a description;
    default: the log's ``data``); ``resume``: what resuming needs besides tensors (plain data;
    big integers as strings, see ``rng_state_to_plain``); ``optimizer``/``state``: tensors by name
    (the model's own op state, ``model.state``, is always written to the state group).
    Returns the header written."""
    fields = model_fields(model, log=log, metrics=metrics, preprocess=preprocess, classes=classes,
                          data=data, resume=resume, registry=registry)
    # the model's op state (batch norm's running statistics) is saved with it, always
    tensors = {"params": model.params, "state": {**getattr(model, "state", {}), **(state or {})},
               "optimizer": dict(optimizer or {})}
    return write_model_file(path, fields, tensors, check_graph=False)


def model_fields(
    model: Model,
    *,
    log: dict | None = None,
    metrics: dict | None = None,
    preprocess: dict | None = None,
    classes: dict | None = None,
    data: str | None = None,
    resume: dict | None = None,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """The header fields (all but ``format`` and ``tensors``) describing ``model``."""
    log = dict(log or {})
    if data is None and isinstance(log.get("data"), str):
        data = log["data"]
    return {
        "graphnet": __version__,
        "spec": model.spec.to_dict(),
        "ops": op_records(model.graph, registry),
        "dtype": model.dtype.name,
        "preprocess": preprocess,
        "classes": classes,
        "data": data,
        "log": log,
        "metrics": dict(metrics or {}),
        "resume": resume,
    }


def op_records(graph: Graph, registry: Registry | None = None) -> dict[str, dict[str, Any]]:
    """For every op the graph uses (sorted by name): its version and the distribution, with its
    version, that provides it (None where the registry does not know)."""
    registry = registry or default_registry()
    records = {}
    for name, op in sorted({node.op.name: node.op for node in graph.nodes.values()}.items()):
        try:
            distribution = registry.source(name).distribution
        except OpError:
            distribution = None
        if distribution is not None and distribution.startswith("<"):  # "<unknown distribution>"
            distribution = None
        records[name] = {
            "version": op.version,
            "distribution": distribution,
            "distribution_version": _distribution_version(distribution) if distribution else None,
        }
    return records


@functools.lru_cache(maxsize=None)
def _distribution_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def write_model_file(
    path: str | Path,
    header: Mapping[str, Any],
    tensors: Mapping[str, Mapping[str, np.ndarray]],
    *,
    check_graph: bool = True,
    registry: Registry | None = None,
) -> Header:
    """Write a model file from header fields and tensors ({group: {name: array}}, groups params,
    state, optimizer), atomically. For `graphnet convert`: JSON -> model passes the fields of
    ``header_dict()`` back (``format`` and ``tensors`` are recomputed) and gets the same bytes.

    Everything is checked as a reader would check it, before anything is written; with
    ``check_graph`` also the spec, its ops and the parameter shapes against the graph."""
    file = str(path)
    fields = {key: value for key, value in header.items() if key not in ("format", "tensors")}
    unknown = [key for key in fields if key not in HEADER_KEYS]
    if unknown:
        raise ModelFileError(f"cannot save: unknown header fields {listed(unknown)}", file=file,
                             hint="the fields are: " + ", ".join(HEADER_KEYS))
    fields = to_plain(fields, file)
    arrays = _arrays(tensors, file)
    directory: dict[str, list[dict[str, Any]]] = {group: [] for group in GROUPS}
    offsets, _ = canonical_offsets([array for _, _, _, array in arrays])
    for (group, name, code, array), offset in zip(arrays, offsets):
        directory[group].append({
            "name": name, "dtype": code, "shape": list(array.shape),
            "offset": offset, "nbytes": array.nbytes, "sha256": [PLACEHOLDER] * block_count(array.nbytes),
        })
    for key in ("graphnet", "spec", "ops", "dtype"):
        if key not in fields:
            raise ModelFileError(f"cannot save: the header needs '{key}'", file=file)
    raw: dict[str, Any] = {"format": 2}
    for key in HEADER_KEYS[1:]:  # the canonical order
        raw[key] = directory if key == "tensors" else fields.get(key, DEFAULTS.get(key))
    checked = validate_header(raw, file)
    if check_graph:
        check_model(checked, file, registry)
    length = len(_pack(raw))
    with atomic_file(Path(path)) as handle:
        _write_tensors(handle, arrays, directory, data_start(length), file)
        body = _pack(raw)
        assert len(body) == length, "the header's length changed with the hashes"
        write_all(handle, pack_prelude(body) + body + bytes(data_start(length) - PRELUDE.size - length))
    return validate_header(raw, file, header_length=length)


def _pack(raw: dict) -> bytes:
    return msgpack.packb(raw, use_bin_type=True)


def _arrays(tensors: Mapping[str, Mapping[str, np.ndarray]], file: str) -> list[tuple[str, str, str, np.ndarray]]:
    """(group, name, dtype code, C-contiguous little-endian array) of every tensor, in storage
    order."""
    unknown = [group for group in tensors if group not in GROUPS]
    if unknown:
        raise ModelFileError(f"cannot save: unknown tensor groups {listed(unknown)}", file=file,
                             hint="the groups are: " + ", ".join(GROUPS))
    found = []
    for group in GROUPS:
        for name, value in (tensors.get(group) or {}).items():
            array = np.asarray(value)
            code = f"<{array.dtype.kind}{array.dtype.itemsize}"
            if code not in DTYPES:
                raise ModelFileError(
                    f"cannot save tensor '{name}' ({group}): its dtype {array.dtype} is not one of "
                    f"{', '.join(str(d.name) for d in DTYPES.values())}", file=file)
            if array.size == 0:
                raise ModelFileError(f"cannot save tensor '{name}' ({group}): it is empty "
                                     f"(shape {list(array.shape)})", file=file)
            array = np.ascontiguousarray(array, DTYPES[code])  # a copy only if it is not already
            found.append((group, str(name), code, array))
    return found


def _write_tensors(handle: BinaryIO, arrays: list, directory: dict, start: int, file: str) -> None:
    """The tensor section, from ``start``; fills in each entry's block digests. A tensor holding
    NaN or Inf is refused (checked as it streams, while its bytes are in the CPU's cache)."""
    handle.seek(start)
    position = 0
    entries = [entry for group in GROUPS for entry in directory[group]]
    with Streamer() as streamer:
        for (group, name, _, array), entry in zip(arrays, entries):
            write_all(handle, bytes(entry["offset"] - position))
            entry["sha256"], finite = streamer.write(handle, array)
            if not finite:
                check_finite(array, name, file, f"tensors.{group}")  # raises, naming the first bad value
            position = entry["offset"] + entry["nbytes"]
    handle.seek(0)


# ----------------------------------------------------------------------------------------------
# Atomic files
# ----------------------------------------------------------------------------------------------


def atomic_file(path: Path) -> ContextManager[BinaryIO]:
    """A temporary file next to ``path``, renamed over it (after fsync) when the block ends without
    error, removed otherwise (see :mod:`graphnet.atomic`); problems are ModelFileErrors."""
    return atomic.atomic_file(path, what="the model file", error=ModelFileError,
                              hint="choose a writable location with --out")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(Path(path)) as handle:
        write_all(handle, data)


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
