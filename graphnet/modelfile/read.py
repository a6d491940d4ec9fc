"""Reading model files from anyone: the header alone, the tensors, or the whole model.

The order is what makes a hostile file cheap to refuse: the file's kind and size (a FIFO is never
opened for reading, a spec or a PNG is named as such), the prelude, the header's checksum, the
header decoded with limits and validated by the pydantic models, the directory against the file
size; then, for a model, the embedded spec, its ops through the registry only (a missing plugin
or another op version is named), the graph, and every stored shape against the graph's before the
model is allocated (without random initialisation). Only then are tensors read, straight into the
model's buffers, each checked against its checksum and for NaN/Inf. Nothing is ever executed,
unpickled, or imported by a name the file gives.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from ..errors import GraphnetError, ModelFileError, OpError, listed, raise_all
from ..graph import Graph, build_graph
from ..model import Model, state_shapes
from ..registry import Registry, default_registry
from ..spec import Spec, validate_spec_data
from . import format1
from .header import Header, TensorEntry, check_layout, validate_header
from .layout import (
    DTYPES,
    FORMAT,
    HASH_BLOCK,
    MAGIC,
    MAX_HEADER_BYTES,
    PRELUDE,
    Streamer,
    open_regular,
    read_exact,
)
from .plain import NOT_PLAIN_HINT, unpack
from .sniff import SNIFF_BYTES, foreign, is_format1

MAX_NODES = 10_000  # nodes of an embedded spec, after expanding `layers:`
CORRUPT_HINT = "use an intact copy of the file"


@dataclass
class ModelFile:
    """A model file, loaded: the model (weights filled in) and everything saved with it."""

    model: Model
    log: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    header: Header | None = None
    preprocess: dict[str, Any] | None = None
    classes: dict[str, Any] | None = None
    data: str | None = None
    resume: dict[str, Any] | None = None
    state: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Contents:
    """A model file's header and tensors ({group: {name: array}}), checked, without building the
    model: what `graphnet convert` needs, and no plugin has to be installed for it."""

    header: Header
    tensors: dict[str, dict[str, np.ndarray]]
    path: str | None = None


def read_header(path: str | Path) -> Header:
    """The validated header, without reading the tensors (a format-1 file is read whole)."""
    with _Reader(path) as reader:
        return reader.header


def header_dict(path: str | Path) -> dict:
    """The header as plain, JSON-compatible data, exactly as stored (``tensors`` included)."""
    return read_header(path).to_dict()


def read_contents(path: str | Path) -> Contents:
    """The header and every tensor, checksums and finiteness checked; no graph is built."""
    with _Reader(path) as reader:
        tensors = reader.read_tensors(lambda group, entry: None)
        return Contents(reader.header, tensors, reader.file)


def load_model(path: str | Path, *, registry: Registry | None = None) -> ModelFile:
    """Read a model file and rebuild its model from the embedded spec, ops resolved through
    ``registry`` (default: the installed plugins). Every problem is one ModelFileError."""
    with _Reader(path) as reader:
        header = reader.header
        graph = check_model(header, reader.file, registry)
        model = _allocate(graph, header, reader.file)
        tensors = reader.read_tensors(lambda group, entry: _destination(model, group, entry))
    raw = header.to_dict()
    return ModelFile(
        model=model, log=raw.get("log") or {}, metrics=raw.get("metrics") or {}, path=reader.file,
        header=header, preprocess=raw.get("preprocess"), classes=raw.get("classes"),
        data=raw.get("data"), resume=raw.get("resume"),
        state=tensors["state"], optimizer=tensors["optimizer"],
    )


# ----------------------------------------------------------------------------------------------
# The file: kind, prelude, header, tensors
# ----------------------------------------------------------------------------------------------


class _Reader:
    """An open model file whose header has been read and validated."""

    def __init__(self, path: str | Path) -> None:
        self.file = str(path)
        self.handle: BinaryIO | None = None
        self.handle, self.size = open_regular(path)
        try:
            self._arrays: dict[str, np.ndarray] | None = None  # format 1: the weights, decoded
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "_Reader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def _read_header(self) -> Header:
        head = read_exact(self.handle, min(self.size, SNIFF_BYTES)) or b""
        if is_format1(head):
            return self._read_format1()
        if not head.startswith(MAGIC):
            raise foreign(head, self.size, self.file)
        if len(head) < PRELUDE.size:
            raise ModelFileError(f"the file is truncated: {self.size} bytes, less than the "
                                 f"{PRELUDE.size}-byte prelude", file=self.file, hint=CORRUPT_HINT)
        _, version, reserved, length, digest = PRELUDE.unpack(head[: PRELUDE.size])
        if version != FORMAT:
            raise ModelFileError(
                f"model file format {version} is not supported (this graphnet reads formats 1 and 2)",
                file=self.file, hint="use the graphnet version that wrote it, or an intact copy")
        if reserved != 0:
            raise ModelFileError(f"the prelude's reserved field is {reserved}, not 0", file=self.file,
                                 hint=CORRUPT_HINT)
        if length > MAX_HEADER_BYTES:
            raise ModelFileError(
                f"the prelude declares a header of {length:,} bytes, more than the "
                f"{MAX_HEADER_BYTES:,} allowed", file=self.file, hint=CORRUPT_HINT)
        if PRELUDE.size + length > self.size:
            raise ModelFileError(
                f"the file is truncated: the header ends at byte {PRELUDE.size + length:,}, the file "
                f"has {self.size:,} bytes", file=self.file, hint=CORRUPT_HINT)
        self.handle.seek(PRELUDE.size)
        data = read_exact(self.handle, length)
        if data is None:
            raise ModelFileError("the file is truncated in its header", file=self.file, hint=CORRUPT_HINT)
        if hashlib.sha256(data).digest() != digest:
            raise ModelFileError(
                f"header checksum mismatch: the header (bytes {PRELUDE.size:,} to "
                f"{PRELUDE.size + length:,}) is corrupted", file=self.file, hint=CORRUPT_HINT)
        raw = unpack(data, self.file, "the header")
        header = validate_header(raw, self.file, header_length=length)
        check_layout(header, self.size, self.file)
        self._check_zeros(PRELUDE.size + length, header.data_start, "after the header")
        return header

    def _read_format1(self) -> Header:
        if self.size > format1.MAX_FILE_BYTES:
            raise ModelFileError(
                f"is a format-1 file of {self.size:,} bytes, more than the "
                f"{format1.MAX_FILE_BYTES:,} format 1 allows", file=self.file, hint=CORRUPT_HINT)
        self.handle.seek(0)
        data = read_exact(self.handle, self.size)
        if data is None:
            raise ModelFileError("the file shrank while it was read", file=self.file, hint=CORRUPT_HINT)
        raw, self._arrays = format1.read(data, self.file)
        return validate_header(raw, self.file, source_format=1)

    def _check_zeros(self, start: int, end: int, where: str) -> None:
        if end <= start:
            return
        self.handle.seek(start)
        padding = read_exact(self.handle, end - start)
        if padding is None or padding.strip(b"\x00"):
            raise ModelFileError(
                f"the padding {where} (bytes {start:,} to {end:,}) is not zero bytes",
                file=self.file, hint=CORRUPT_HINT)

    def read_tensors(
        self, destination: Callable[[str, TensorEntry], np.ndarray | None]
    ) -> dict[str, dict[str, np.ndarray]]:
        """Every tensor, in storage order, into ``destination(group, entry)`` (an array of the
        entry's shape and dtype) or, where that returns None, into a new array. Returns
        {group: {name: array}}."""
        found: dict[str, dict[str, np.ndarray]] = {"params": {}, "state": {}, "optimizer": {}}
        position = 0
        with Streamer() as streamer:
            for group, index, entry in self.header.tensors.entries():
                where = f"tensors.{group}.{index}"
                target = destination(group, entry)
                if target is None:
                    target = _new_array(entry, self.file, where)
                if self._arrays is not None:  # format 1: already decoded and checksummed
                    np.copyto(target, self._arrays[entry.name])
                    check_finite(target, entry.name, self.file, where)
                else:
                    self._check_zeros(self.header.data_start + position,
                                      self.header.data_start + entry.offset, f"before tensor '{entry.name}'")
                    self._read_tensor(streamer, entry, target, where)
                    position = entry.offset + entry.nbytes
                found[group][entry.name] = target
        return found

    def _read_tensor(self, streamer: Streamer, entry: TensorEntry, target: np.ndarray, where: str) -> None:
        start = self.header.data_start + entry.offset
        self.handle.seek(start)
        result = streamer.read(self.handle, target)
        if result is None:
            raise ModelFileError("the file shrank while it was read", file=self.file, hint=CORRUPT_HINT)
        digests, finite = result
        for block, (got, recorded) in enumerate(zip(digests, entry.sha256)):
            if got != recorded:
                first = start + block * HASH_BLOCK
                last = min(first + HASH_BLOCK, start + entry.nbytes)
                raise ModelFileError(
                    f"tensor '{entry.name}' fails its checksum: bytes {first:,} to {last:,} "
                    f"(block {block} of {len(digests)}) are corrupted", file=self.file, path=where,
                    hint=CORRUPT_HINT)
        if sys.byteorder == "big" and target.dtype.isnative and target.dtype.itemsize > 1:
            target.byteswap(inplace=True)  # the file is little-endian, this array native
            finite = False  # the values were judged before the swap: judge them again
        if not finite:
            check_finite(target, entry.name, self.file, where)  # finds the first bad value


def _new_array(entry: TensorEntry, file: str, where: str) -> np.ndarray:
    try:
        return np.empty(entry.shape, DTYPES[entry.dtype])
    except MemoryError:
        raise ModelFileError(f"not enough memory for tensor '{entry.name}' ({entry.nbytes:,} bytes)",
                             file=file, path=where) from None


def check_finite(array: np.ndarray, name: str, file: str, where: str) -> None:
    """Refuse NaN and Inf in a floating-point tensor, naming it and the first bad index."""
    if array.dtype.kind != "f" or array.size == 0:
        return
    if np.isfinite(array.min()) and np.isfinite(array.max()):  # min and max propagate NaN
        return
    bad = np.flatnonzero(~np.isfinite(array.reshape(-1)))
    first = [int(i) for i in np.unravel_index(int(bad[0]), array.shape)]
    raise ModelFileError(
        f"tensor '{name}' holds {len(bad):,} non-finite values (the first, "
        f"{array.reshape(-1)[bad[0]]}, at index {first})", file=file, path=where,
        hint="the model was saved after training diverged, or the file was edited",
    )


# ----------------------------------------------------------------------------------------------
# The model: spec, ops, graph and shapes, all before any allocation
# ----------------------------------------------------------------------------------------------


def _destination(model: Model, group: str, entry: TensorEntry) -> np.ndarray | None:
    """Where a stored tensor is read to: a parameter or an op state of the model (their shapes
    were checked against the graph's), else None (a new array)."""
    if group == "params":
        return model.params[entry.name]
    if group == "state" and entry.name in model.state:
        return model.state[entry.name]  # of the model's dtype: checked by _check_shapes
    return None


def check_model(header: Header, file: str, registry: Registry | None = None) -> Graph:
    """The graph of the header's embedded spec, once everything about it matches the file: the
    spec is valid, its ops are installed in the recorded versions, and every parameter the graph
    declares is stored with that shape (none missing, none extra)."""
    registry = registry or default_registry()
    spec = _embedded_spec(header, file)
    _check_ops(header, spec, file, registry)
    try:
        # each op in the version the file was saved with (an installed plugin may be newer)
        versions = {name: record.version for name, record in header.ops.items()}
        graph = build_graph(spec, registry, op_versions=versions)
    except GraphnetError as error:
        raise_all([_spec_problem(e, file) for e in error.all()])
    _check_shapes(header, graph, file)
    _check_preprocess(header, graph, file)
    return graph


def _embedded_spec(header: Header, file: str) -> Spec:
    raw = header.spec
    # Counted before pydantic and graph build, which take time per node and per error: a file
    # cannot make either do much work (100,000 layers in a 700 KB file; a list of 100,000
    # entries where a name belongs is 100,000 validation errors).
    _check_spec_lengths(raw, file)
    nodes = raw.get("nodes")
    layers = raw.get("layers")
    sizes = layers.get("sizes") if isinstance(layers, dict) else None
    count = (len(nodes) if isinstance(nodes, dict) else 0) + 3 * (len(sizes) if isinstance(sizes, list) else 0)
    if count > MAX_NODES:
        raise ModelFileError(
            f"the embedded spec has about {count:,} nodes, more than the {MAX_NODES:,} a model file "
            "may have", file=file, path="spec", hint=NOT_PLAIN_HINT)
    try:
        spec = validate_spec_data(raw, file=None)
        if len(spec.all_nodes()) > MAX_NODES:
            raise ModelFileError(
                f"the embedded spec has {len(spec.all_nodes()):,} nodes, more than the "
                f"{MAX_NODES:,} a model file may have", file=file, path="spec", hint=NOT_PLAIN_HINT)
    except ModelFileError:
        raise
    except GraphnetError as error:
        raise_all([_spec_problem(e, file) for e in error.all()])
    return spec


def _check_spec_lengths(raw: dict, file: str) -> None:
    """No list or map in the embedded spec has more than MAX_NODES entries."""
    stack: list[tuple[Any, str]] = [(raw, "spec")]
    while stack:
        item, where = stack.pop()
        children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        if isinstance(item, (dict, list)) and len(item) > MAX_NODES:
            raise ModelFileError(
                f"{len(item):,} entries, more than the {MAX_NODES:,} a model file's spec may have in "
                "one list or map", file=file, path=where, hint=NOT_PLAIN_HINT)
        stack.extend((child, f"{where}.{key}") for key, child in children)


def _spec_problem(error: GraphnetError, file: str) -> ModelFileError:
    return ModelFileError(
        f"the embedded spec is invalid: {error.message}", file=file,
        path="spec" + (f".{error.path}" if error.path else ""), hint=error.hint)


def _check_ops(header: Header, spec: Spec, file: str, registry: Registry) -> None:
    """Every op the spec uses is recorded (and nothing else), installed, and in the recorded
    version. Ops resolve through the registry only: a name in the file never imports a module
    that is not a registered plugin's."""
    used = {node.op for node in spec.all_nodes().values()}
    missing = sorted(used - set(header.ops))
    extra = sorted(set(header.ops) - used)
    if missing:
        raise ModelFileError(f"ops records no version for {listed(missing)}, which the spec uses",
                             file=file, path="ops", hint=NOT_PLAIN_HINT)
    if extra:
        raise ModelFileError(f"ops records {listed(extra)}, which the spec does not use",
                             file=file, path="ops", hint=NOT_PLAIN_HINT)
    known = set(registry.names())
    problems = []
    for name in sorted(used):
        record = header.ops[name]
        saved_with = _provider(record.distribution, record.distribution_version)
        if name not in known:
            problems.append(ModelFileError(
                f"op '{name}' is not installed; the model was saved with it from {saved_with}",
                file=file, path=f"ops.{name}", hint=_install_hint(record, name)))
            continue
        try:
            versions = registry.versions(name)
        except OpError as error:
            problems.append(ModelFileError(f"op '{name}' cannot be loaded: {error.message}", file=file,
                                           path=f"ops.{name}", hint=error.hint))
            continue
        source = registry.source(name)
        installed = _provider(source.distribution, _distribution_version(source.distribution))
        if record.distribution is not None and _normal(record.distribution) != _normal(source.distribution):
            problems.append(ModelFileError(
                f"the model was saved with op '{name}' from {saved_with}, but the installed op "
                f"'{name}' comes from {installed}: another implementation",
                file=file, path=f"ops.{name}.distribution", hint=_install_hint(record, name)))
        elif record.version not in versions:
            provides = ", ".join(str(v) for v in versions)
            problems.append(ModelFileError(
                f"the model was saved with op '{name}' version {record.version} (from {saved_with}); "
                f"the installed {installed} provides version{'s' if len(versions) > 1 else ''} {provides}",
                file=file, path=f"ops.{name}", hint=_install_hint(record, name)))
    raise_all(problems)


def _normal(distribution: str) -> str:
    """A distribution name as pip compares them (PEP 503): case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _provider(distribution: str | None, version: str | None) -> str:
    if distribution is None:
        return "an unrecorded distribution (a format-1 file)"
    return f"{distribution} {version}" if version else distribution


def _install_hint(record: Any, name: str) -> str:
    if record.distribution is None:
        return f"install the plugin that provides op '{name}' version {record.version}"
    if record.distribution_version:
        return f"pip install '{record.distribution}=={record.distribution_version}'"
    return f"pip install '{record.distribution}'"


def _distribution_version(distribution: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def _check_shapes(header: Header, graph: Graph, file: str) -> None:
    """Every parameter and every op state (batch norm's running statistics) the graph declares is
    stored, with its shape; no other parameter is. The state group may hold more tensors (a
    caller's own, given to ``save_model(state=...)``): they come back in ``ModelFile.state``."""
    params = {
        f"{node.name}.{param.name}": tuple(node.param_shapes[param.name])
        for node in graph.nodes.values() for param in node.params
    }
    state = {
        f"{node.name}.{entry.name}": shape
        for node in graph.nodes.values() for entry, shape in state_shapes(graph, node).items()
    }
    _check_group(header.tensors.params, params, "params", "parameter", file)
    _check_group(header.tensors.state, state, "state", "state", file, extra_allowed=True)
    for index, entry in enumerate(header.tensors.state):
        if entry.name in state and DTYPES[entry.dtype] != np.dtype(header.dtype):
            raise ModelFileError(
                f"state '{entry.name}' is stored as {DTYPES[entry.dtype]}, but the model is "
                f"{header.dtype}", file=file, path=f"tensors.state.{index}.dtype", hint=NOT_PLAIN_HINT)


def _check_group(entries: list[TensorEntry], expected: dict[str, tuple], group: str, kind: str,
                 file: str, extra_allowed: bool = False) -> None:
    stored = {entry.name: (index, entry) for index, entry in enumerate(entries)}
    missing = [name for name in expected if name not in stored]
    extra = [] if extra_allowed else [name for name in stored if name not in expected]
    if missing or extra:
        parts = ([f"missing {listed(missing)}"] if missing else []) + ([f"unexpected {listed(extra)}"] if extra else [])
        what = "parameters" if group == "params" else "op state tensors"
        raise ModelFileError(
            f"the stored {what} do not match the embedded spec's: " + "; ".join(parts),
            file=file, path=f"tensors.{group}", hint=NOT_PLAIN_HINT)
    problems = []
    for name, shape in expected.items():
        index, entry = stored[name]
        if tuple(entry.shape) != shape:
            problems.append(ModelFileError(
                f"{kind} '{name}' is stored with shape {list(entry.shape)}, but the embedded spec "
                f"makes it {list(shape)}", file=file, path=f"tensors.{group}.{index}.shape",
                hint=NOT_PLAIN_HINT))
    raise_all(problems)


def _check_preprocess(header: Header, graph: Graph, file: str) -> None:
    """The preprocessing feeds inputs the graph has, examples of the shape it takes, and labels
    to another input."""
    record = header.preprocess
    if record is None:
        return
    inputs = list(graph.inputs)
    problems = []
    labels = record.labels.input if record.labels is not None else None
    for path, name in (("preprocess.input", record.input), ("preprocess.labels.input", labels)):
        if name is not None and name not in graph.inputs:
            problems.append(ModelFileError(
                f"the preprocessing names input '{name}', which the embedded spec does not have "
                f"(its inputs: {listed(inputs)})", file=file, path=path, hint=NOT_PLAIN_HINT))
    if labels is not None and labels == record.input:
        problems.append(ModelFileError(
            f"the preprocessing feeds input '{labels}' both the examples and the labels", file=file,
            path="preprocess.labels.input", hint=NOT_PLAIN_HINT))
    if record.input in graph.inputs:
        shape = [math.prod(record.raw_shape)] if record.flatten else list(record.raw_shape)
        expected = list(graph.inputs[record.input])
        if shape != expected:
            problems.append(ModelFileError(
                f"the preprocessing gives examples of shape {shape}"
                f"{' (after flatten)' if record.flatten else ''}, but input '{record.input}' takes "
                f"{expected}", file=file, path="preprocess.raw_shape", hint=NOT_PLAIN_HINT))
    raise_all(problems)


def _allocate(graph: Graph, header: Header, file: str) -> Model:
    """The model, its parameters zero (the file's values are read straight into them)."""
    try:
        return Model(graph, dtype=header.dtype, initialize=False)
    except MemoryError:
        count = graph.param_count()
        raise ModelFileError(
            f"not enough memory for the model's {count:,} parameters "
            f"({count * np.dtype(header.dtype).itemsize * 3:,} bytes with gradients)", file=file) from None
    except GraphnetError as error:  # the model's own memory check
        raise ModelFileError(error.message, file=file, hint=error.hint) from None


__all__ = [
    "Contents",
    "ModelFile",
    "check_finite",
    "check_model",
    "header_dict",
    "load_model",
    "read_contents",
    "read_header",
]
