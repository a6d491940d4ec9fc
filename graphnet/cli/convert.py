"""``graphnet convert SRC DST``: model files to and from JSON, parameters to and from .npz, a
model to ONNX, specs between YAML and JSON. What is converted is chosen by the two extensions
(``CONVERSIONS``); any other pair is one error listing the supported ones. An existing DST is
never replaced without ``--overwrite``.

The JSON form of a model (``MODEL_JSON``) is for people and for other programs::

    {"format": "graphnet-model-json", "version": 1,
     "header": {...the model file's header, as stored, less its tensor directory...},
     "tensors": {"params": {"fc1.w": {"dtype": "<f4", "shape": [784, 800],
                                      "data": [[0.0123, -0.0456, ...], ...]}, ...},
                 "state": {...}, "optimizer": {...}}}

Tensors are nested lists of numbers (one innermost row per line) and lossless: each value is
written as the shortest decimal that reads back to the same bits (a float32 as the shortest
float32 decimal, ``0.1``; checked value by value as the writer goes, and any value that would
not read back exactly, through a float64 parse, is written as its exact float64 decimal
instead). Converting that JSON back writes the header and tensors with ``write_model_file``,
which recomputes the directory and checksums: model -> JSON -> model gives the same bytes as the
original file (for files graphnet 0.2 wrote; a format-1 file comes back as format 2).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer

from ..errors import GraphnetError, ModelFileError, raise_all
from .app import command, examples
from .files import check_destination, check_source, load_npz, read_source, write_atomically

if TYPE_CHECKING:  # numpy is imported where it is used: `graphnet --help` starts without it
    import numpy as np

MODEL_JSON = "graphnet-model-json"
MODEL_JSON_VERSION = 1
MAX_ROW = 1024  # values per line in a tensor's JSON text
SPEC_SUFFIXES = (".yaml", ".yml")
# numpy dtype kind -> how a nested list of JSON numbers is read back before the exact cast
PARSE_AS = {"f": "float64", "i": "int64", "u": "int64"}


@dataclass(frozen=True)
class Conversion:
    source: str  # "model", "model-json", "npz", "spec", "spec-json"
    target: str  # the destination's extension
    what: str


CONVERSIONS = (
    Conversion("model", ".json", "model file -> JSON (header and tensors, lossless)"),
    Conversion("model-json", ".gnm", "JSON written by convert -> model file (byte-identical)"),
    Conversion("model", ".npz", "model file -> its parameters as .npz (fc1.w, fc1.b, ...)"),
    Conversion("npz", ".gnm", "parameters .npz + --spec SPEC -> model file"),
    Conversion("model", ".onnx", "model file -> ONNX, with its preprocessing (needs onnx)"),
    Conversion("model", ".yaml", "model file -> the spec it holds, as YAML"),
    Conversion("spec", ".json", "spec YAML -> JSON"),
    Conversion("spec-json", ".yaml", "spec JSON -> YAML"),
)
SUPPORTED = "; ".join(f"{c.what}" for c in CONVERSIONS)


@command(
    help="Convert a model file to JSON, .npz or ONNX (and back), or a spec between YAML and JSON."
    "\n\nThe two extensions say what is converted:\n\n"
    + "\n".join(f"- {c.what}" for c in CONVERSIONS)
    + "\n\nA model's JSON converts back to exactly the same model file. An existing DST is never "
    "replaced without --overwrite.",
    epilog=examples(
        "graphnet convert runs/mnist-mlp.gnm mnist-mlp.onnx",
        "graphnet convert runs/mnist-mlp.gnm mnist-mlp.json",
        "graphnet convert params.npz model.gnm --spec specs/mnist-mlp.yaml",
    ),
)
def convert(
    src: Path = typer.Argument(..., metavar="SRC", readable=False, help="The file to convert."),
    dst: Path = typer.Argument(..., metavar="DST", readable=False, help="The file to write."),
    spec: Optional[Path] = typer.Option(
        None, "--spec", metavar="SPEC", readable=False,
        help="The spec the parameters of an .npz SRC belong to (for .npz -> .gnm)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace DST if it exists."),
) -> None:
    conversion = convert_file(src, dst, spec=spec, overwrite=overwrite)
    size = dst.stat().st_size
    typer.echo(f"{src} -> {dst} ({size:,} bytes): {conversion.what}")


def convert_file(src: Path, dst: Path, *, spec: Optional[Path] = None, overwrite: bool = False) -> Conversion:
    """Convert ``src`` to ``dst`` as their extensions say; returns the conversion done."""
    graph = None
    if spec is not None:  # first: its errors name it, and reading it is cheap
        check_source(spec, "a spec")
        graph = _spec_graph(spec)
    check_source(src, "a file to convert")
    conversion = _choose(src, dst, spec)
    check_destination(dst, overwrite, src)
    CONVERTERS[(conversion.source, conversion.target)](src, dst, graph)
    return conversion


def _choose(src: Path, dst: Path, spec: Optional[Path]) -> Conversion:
    source = _source_kind(src)
    target = ".yaml" if dst.suffix.lower() in SPEC_SUFFIXES else dst.suffix.lower()
    for conversion in CONVERSIONS:
        if conversion.source == source and conversion.target == target:
            if source == "npz" and spec is None:
                raise GraphnetError("converting parameters (.npz) to a model file needs the spec they "
                                    "belong to", file=str(src), hint="add --spec SPEC")
            if spec is not None and source != "npz":
                raise GraphnetError("--spec is only for .npz parameters -> model file", file=str(spec),
                                    hint="leave --spec out")
            return conversion
    kinds = {"model": "a model file", "model-json": "a model's JSON", "npz": "an .npz file",
             "spec": "a spec (YAML)", "spec-json": "a spec (JSON)"}
    raise GraphnetError(
        f"cannot convert {kinds[source]} to {target or 'a file without an extension'}",
        file=str(src), hint=f"supported: {SUPPORTED}")


def _source_kind(src: Path) -> str:
    """What SRC is, by its extension: .yaml/.yml a spec, .npz parameters, .json a model's JSON
    or a spec (by its first bytes), anything else a model file (the loader says what it is
    when it is not one)."""
    suffix = src.suffix.lower()
    if suffix in SPEC_SUFFIXES:
        return "spec"
    if suffix == ".npz":
        return "npz"
    if suffix == ".json":
        with open(src, "rb") as handle:
            head = handle.read(4096).decode("utf-8", errors="replace")
        return "model-json" if re.search(r'"format"\s*:\s*"' + MODEL_JSON + '"', head) else "spec-json"
    return "model"


# ----------------------------------------------------------------------------------------------
# model file <-> JSON
# ----------------------------------------------------------------------------------------------


def model_to_json(src: Path, dst: Path, graph: Any = None) -> None:
    from ..modelfile import read_contents

    contents = read_contents(src)  # checksums and values checked; no graph built, no plugin needed
    write_atomically(dst, model_json_text(contents.header.to_dict(), contents.tensors).encode("utf-8"))


def model_json_text(header: dict, tensors: dict[str, dict[str, np.ndarray]]) -> str:
    """The JSON text of a model (see the module docstring)."""
    header = {key: value for key, value in header.items() if key != "tensors"}
    head = _pretty(header, "  ")
    groups = []
    for group, arrays in tensors.items():
        entries = []
        for name, array in arrays.items():
            code = f"<{array.dtype.kind}{array.dtype.itemsize}"
            data = _array_text(array, "        ")
            entries.append(f"      {json.dumps(name)}: {{\"dtype\": \"{code}\", \"shape\": "
                           f"{json.dumps(list(array.shape))}, \"data\": {data}}}")
        body = ("{\n" + ",\n".join(entries) + "\n    }") if entries else "{}"
        groups.append(f"    {json.dumps(group)}: {body}")
    return (f'{{\n  "format": "{MODEL_JSON}",\n  "version": {MODEL_JSON_VERSION},\n  "header": {head},\n'
            f'  "tensors": {{\n' + ",\n".join(groups) + "\n  }\n}\n")


def _pretty(value: Any, indent: str) -> str:
    """JSON of header data, one key per line, a list of numbers or strings on one line when it
    is short (shapes, class names): what json.dumps(indent=2) gives, but readable."""
    if isinstance(value, dict) and value:
        items = [f"{indent}  {json.dumps(key, ensure_ascii=False)}: {_pretty(item, indent + '  ')}"
                 for key, item in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and value:
        flat = json.dumps(value, ensure_ascii=False)
        if len(flat) <= 100 and not any(isinstance(item, (dict, list)) for item in value):
            return flat
        items = [f"{indent}  {_pretty(item, indent + '  ')}" for item in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False)


def _array_text(array: np.ndarray, indent: str) -> str:
    """Nested JSON lists of ``array``'s values, one innermost row per line (long rows wrapped)."""
    if array.ndim == 0:
        return _numbers(array.reshape(1))[0]
    if array.ndim == 1:
        lines = [", ".join(_numbers(array[start:start + MAX_ROW])) for start in range(0, len(array), MAX_ROW)]
        if len(lines) == 1:
            return f"[{lines[0]}]"
        return "[\n" + ",\n".join(indent + "  " + line for line in lines) + "\n" + indent + "]"
    rows = [_array_text(row, indent + "  ") for row in array]
    return "[\n" + ",\n".join(indent + "  " + row for row in rows) + "\n" + indent + "]"


def _numbers(values: np.ndarray) -> list[str]:
    """The shortest decimal of each value that reads back (through JSON's float64) to the same
    bits; values whose shortest form would not (double rounding) get their exact float64 repr."""
    import numpy as np

    texts = values.astype(str).tolist()
    if values.dtype.kind != "f":
        return texts
    back = np.array(json.loads("[" + ", ".join(texts) + "]"), np.float64).astype(values.dtype)
    wrong = np.flatnonzero(back.view(f"u{values.dtype.itemsize}") != values.view(f"u{values.dtype.itemsize}"))
    for index in wrong:
        texts[index] = repr(float(values[index]))
    return texts


def json_to_model(src: Path, dst: Path, graph: Any = None) -> None:
    from ..modelfile import write_model_file

    header, tensors = read_model_json(src)
    try:
        write_model_file(dst, header, tensors)
    except GraphnetError as error:
        for each in error.all():  # what is wrong is in the JSON, not in the file not yet written
            if each.file == str(dst) and not each.message.startswith("cannot write"):
                each.file = str(src)
                if each.path and not each.path.startswith("tensors"):
                    each.path = f"header.{each.path}"
        raise


def read_model_json(src: Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """The header and the tensors of a model's JSON, each tensor checked against its dtype and
    shape."""
    file = str(src)
    try:
        document = json.loads(read_source(src, "a model's JSON"))
    except json.JSONDecodeError as error:
        raise ModelFileError(f"is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}",
                             file=file, line=error.lineno, hint="write it with `graphnet convert MODEL FILE.json`") from None
    except UnicodeDecodeError as error:
        raise ModelFileError(f"is not UTF-8 text (byte {error.start:,})", file=file,
                             hint="write it with `graphnet convert MODEL FILE.json`") from None
    except RecursionError:
        raise ModelFileError("is nested too deeply to be a model's JSON", file=file) from None
    expected = {"format", "version", "header", "tensors"}
    if not isinstance(document, dict) or set(document) != expected:
        keys = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise ModelFileError(f"a model's JSON holds exactly the keys {sorted(expected)}; received {keys}",
                             file=file, hint="write it with `graphnet convert MODEL FILE.json`")
    if document["format"] != MODEL_JSON or type(document["version"]) is not int or (
            document["version"] != MODEL_JSON_VERSION):
        raise ModelFileError(
            f"format {document['format']!r} version {document['version']!r} is not a model's JSON this "
            f"graphnet reads ({MODEL_JSON!r} version {MODEL_JSON_VERSION})", file=file, path="format")
    if not isinstance(document["header"], dict):
        raise ModelFileError("header is not a map", file=file, path="header")
    groups = document["tensors"]
    if not isinstance(groups, dict):
        raise ModelFileError("tensors is not a map of groups", file=file, path="tensors")
    tensors: dict[str, dict[str, np.ndarray]] = {}
    problems: list[GraphnetError] = []
    for group, entries in groups.items():
        if not isinstance(entries, dict):
            problems.append(ModelFileError("is not a map of tensors by name", file=file, path=f"tensors.{group}"))
            continue
        tensors[group] = {}
        for name, entry in entries.items():
            try:
                tensors[group][name] = _tensor(entry, file, f"tensors.{group}.{name}")
            except ModelFileError as error:
                problems.append(error)
    raise_all(problems)
    return document["header"], tensors


def _tensor(entry: Any, file: str, where: str) -> np.ndarray:
    import numpy as np

    from ..modelfile import DTYPES

    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data"}:
        raise ModelFileError("a tensor is {\"dtype\", \"shape\", \"data\"}", file=file, path=where)
    code, shape = entry["dtype"], entry["shape"]
    if code not in DTYPES:
        raise ModelFileError(f"dtype {code!r} is not one of {', '.join(DTYPES)}", file=file, path=f"{where}.dtype")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise ModelFileError(f"shape must be a list of sizes; received {shape!r:.60}", file=file, path=f"{where}.shape")
    dtype = DTYPES[code]
    try:
        values = np.array(entry["data"], dtype=PARSE_AS[dtype.kind])
    except (ValueError, TypeError, OverflowError) as error:
        raise ModelFileError(f"data is not a nested list of numbers of shape {shape} "
                             f"({' '.join(str(error).split())[:120]})", file=file, path=f"{where}.data") from None
    if list(values.shape) != shape:
        raise ModelFileError(f"data has shape {list(values.shape)}, but shape says {shape}", file=file,
                             path=f"{where}.data")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise ModelFileError(f"data holds values outside {dtype.name}", file=file, path=f"{where}.data")
    return values.astype(dtype)


# ----------------------------------------------------------------------------------------------
# parameters <-> .npz
# ----------------------------------------------------------------------------------------------


def model_to_npz(src: Path, dst: Path, graph: Any = None) -> None:
    import io

    import numpy as np

    from ..modelfile import read_contents

    params = read_contents(src).tensors["params"]
    buffer = io.BytesIO()
    np.savez(buffer, **params)
    write_atomically(dst, buffer.getvalue())


def npz_to_model(src: Path, dst: Path, graph: Any = None) -> None:
    import numpy as np

    from ..model import Model
    from ..modelfile import save_model

    assert graph is not None  # _choose asks for --spec, and convert_file builds its graph
    arrays = load_npz(src, read_source(src, "an .npz of parameters"))
    floats = [a for a in arrays.values() if a.dtype.kind == "f"]
    dtype = "float64" if floats and all(a.dtype == np.float64 for a in floats) else "float32"
    model = Model(graph, dtype=dtype, initialize=False)
    _check_params(arrays, model, str(src), graph.spec.file)
    for name, array in arrays.items():
        model.params[name][...] = array
    save_model(dst, model)


def _spec_graph(spec: Path) -> Any:
    """The graph of the spec file ``spec``, checked."""
    from ..graph import build_graph
    from ..spec import load_spec

    return build_graph(load_spec(spec))


def _check_params(arrays: dict[str, np.ndarray], model: Any, file: str, spec: Optional[str]) -> None:
    """The arrays are exactly the graph's parameters, in their shapes, finite numbers."""
    import numpy as np

    from ..errors import listed

    missing = [name for name in model.params if name not in arrays]
    extra = [name for name in arrays if name not in model.params]
    if missing or extra:
        parts = ([f"missing {listed(missing)}"] if missing else []) + ([f"unexpected {listed(extra)}"] if extra else [])
        raise GraphnetError(
            f"the arrays are not the parameters of spec {spec}: " + "; ".join(parts), file=file,
            hint="the parameters of a spec are " + listed(list(model.params), 12) + " (graphnet convert "
                 "MODEL FILE.npz writes them)")
    problems = []
    for name, array in arrays.items():
        expected = model.params[name].shape
        if array.shape != expected:
            problems.append(GraphnetError(
                f"array '{name}' has shape {list(array.shape)}; the spec makes it {list(expected)}", file=file))
        elif array.dtype.kind not in "iuf":
            problems.append(GraphnetError(f"array '{name}' holds {array.dtype}, not numbers", file=file))
        elif array.dtype.kind == "f" and not np.isfinite(array).all():
            problems.append(GraphnetError(f"array '{name}' holds NaN or infinite values", file=file))
    raise_all(problems)


# ----------------------------------------------------------------------------------------------
# ONNX, specs
# ----------------------------------------------------------------------------------------------


def model_to_onnx(src: Path, dst: Path, graph: Any = None) -> None:
    from ..export.onnx import export_onnx
    from ..modelfile import load_model

    loaded = load_model(src)
    try:
        export_onnx(loaded.model, dst, preprocess=loaded.preprocess)
    except GraphnetError as error:
        for each in error.all():
            each.file = each.file or str(src)
        raise


def model_to_yaml(src: Path, dst: Path, graph: Any = None) -> None:
    from ..modelfile import read_header

    write_atomically(dst, _yaml(read_header(src).spec).encode("utf-8"))


def spec_to_json(src: Path, dst: Path, graph: Any = None) -> None:
    data = _checked_spec_data(src)
    write_atomically(dst, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def spec_to_yaml(src: Path, dst: Path, graph: Any = None) -> None:
    write_atomically(dst, _yaml(_checked_spec_data(src)).encode("utf-8"))


def _checked_spec_data(src: Path) -> Any:
    """The spec's data as written (key order kept, nothing added), once the spec is valid
    (structure and graph: a broken spec is not converted)."""
    from ..graph import build_graph
    from ..spec import load_spec
    from ..spec.files import read_spec_file
    from ..spec.text import parse_text

    build_graph(load_spec(src))
    data, _ = parse_text(read_spec_file(src), str(src))
    return data


def _yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)


# (source kind, target) -> convert(src, dst, graph of --spec or None)
CONVERTERS: dict[tuple[str, str], Callable[[Path, Path, Any], None]] = {
    ("model", ".json"): model_to_json,
    ("model-json", ".gnm"): json_to_model,
    ("model", ".npz"): model_to_npz,
    ("npz", ".gnm"): npz_to_model,
    ("model", ".onnx"): model_to_onnx,
    ("model", ".yaml"): model_to_yaml,
    ("spec", ".json"): spec_to_json,
    ("spec-json", ".yaml"): spec_to_yaml,
}
