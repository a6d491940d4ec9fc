"""``graphnet predict MODEL INPUT...``: the class a model predicts for raw examples (.npy and
.npz arrays) and images, prepared with the preprocessing recorded in the model file.

What is fed: for a model with a preprocessing record, raw examples exactly like the training
data's (shape ``raw_shape``, or ``[N, *raw_shape]``; a uint8 model takes pixels 0..255), which the
record's steps turn into the model's input; an image is first made into one raw example by
:func:`graphnet.images.to_model_input` (grayscale, optional inversion, resized). A model without a
record (trained before records existed, or built from Python) takes arrays already
preprocessed, of the input's own shape; images need a record. No label is needed: only the
prediction node is computed.

What is shown: per example, the predicted class (the argmax of the prediction node, as
``graphnet eval`` scores it), its name when the model file has class names, and the top k
classes with their probabilities (the softmax of the logits, when the prediction node feeds a
softmax cross-entropy loss, or the output of a softmax node) or raw scores otherwise.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from ..errors import DataError, GraphnetError
from .app import command, examples
from .files import check_source, load_npy, load_npz, read_source

if TYPE_CHECKING:  # numpy is imported where it is used: `graphnet --help` starts without it
    import numpy as np

BATCH = 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
INPUT = "an input (.npy, .npz or an image)"


class Invert(str, Enum):
    """Whether an image is inverted (255 - v) before it is fed."""

    auto = "auto"
    yes = "yes"
    no = "no"


@command(epilog=examples(
    "graphnet predict runs/mnist-mlp.gnm digit.png",
    "graphnet predict runs/fashion-mlp.gnm shoes.npy --top-k 3 --json",
    "graphnet predict runs/mnist-mlp.gnm scan.jpg --invert yes",
))
def predict(
    model: Path = typer.Argument(..., metavar="MODEL", readable=False, help="Model file (.gnm)."),
    inputs: list[Path] = typer.Argument(
        ..., metavar="INPUT...", readable=False,
        help=".npy/.npz arrays of raw examples (one example, or N of them along the first axis; "
        "every fitting array of an .npz), or images (.png; .jpg and others with Pillow)."),
    top_k: int = typer.Option(3, "--top-k", metavar="K", min=1, help="How many classes to list per example."),
    as_json: bool = typer.Option(False, "--json", help="One JSON record per example."),
    invert: Invert = typer.Option(
        Invert.auto, "--invert", metavar="[auto|yes|no]",
        help="Images: invert (255 - v) before feeding. auto: when the border is light (a dark digit "
        "on white paper becomes MNIST's white digit on black)."),
) -> None:
    """Predict the class of raw examples (.npy, .npz) and images with a model file.

    The inputs are prepared with the preprocessing stored in the model file (its fitted
    statistics included), and no labels are needed. Shows each example's class, its name when
    the model file has class names, and the top K classes with their probabilities. A model file
    without a preprocessing record takes arrays already preprocessed."""
    import numpy as np

    from ..modelfile import load_model

    loaded = load_model(model)
    target = prediction_target(loaded.model.graph, loaded.preprocess)
    examples_, notes = read_inputs(inputs, loaded.preprocess, target, loaded.model, invert)
    if loaded.preprocess is None:
        notes.insert(0, f"{model} records no preprocessing (trained before graphnet recorded it, or "
                        "built from Python): the arrays were fed as they are, already preprocessed, of "
                        f"the input's shape {list(loaded.model.graph.inputs[target.x])}")
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    scores = run_model(loaded.model, target, np.concatenate([e.x for e in examples_]))
    names = class_names(loaded)
    records = prediction_records(examples_, scores, names, top_k, target.probabilities)
    if as_json:
        typer.echo(json.dumps({"model": str(model), "scores": "probabilities" if target.probabilities else "scores",
                               "predictions": records}, indent=2))
    else:
        _print_table(records, target.probabilities)


# ----------------------------------------------------------------------------------------------
# What is computed
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The graph input fed the examples, the node whose argmax is the prediction, and whether
    its values become probabilities (softmax of logits) or already are."""

    x: str
    node: str
    softmax: bool  # take the softmax of the node's output
    probabilities: bool  # the values shown are probabilities (softmax taken, or a softmax node)


def prediction_target(graph: Any, record: Optional[dict]) -> Target:
    """The prediction node as training scores it: ``train.predict``, else the loss's first input;
    without a train section, the first input of a loss among the outputs, else the first output."""
    train = graph.spec.train
    loss = graph.nodes.get(train.loss) if train is not None else None
    if loss is None:
        losses = [graph.nodes[name] for name in graph.outputs if graph.nodes[name].op.reduces_batch]
        loss = losses[0] if losses else None
    node = train.predict if train is not None and train.predict else None
    if node is None:
        node = loss.edges[0].source if loss is not None else graph.outputs[0]
    if graph.nodes[node].op.reduces_batch:
        raise GraphnetError(f"the prediction node '{node}' is a loss", path="train.predict",
                            hint="set train.predict to the node whose argmax is the class")
    logits = (loss is not None and loss.op.name == "softmax_cross_entropy" and loss.edges[0].source == node
              and loss.edges[0].role == "logits")
    x = record["input"] if record is not None else _examples_input(graph)
    probabilities = logits or graph.nodes[node].op.name == "softmax"
    return Target(x=x, node=node, softmax=logits, probabilities=probabilities)


def _examples_input(graph: Any) -> str:
    train = graph.spec.train
    if train is not None and train.data.x:
        return train.data.x
    floats = [name for name in graph.inputs if graph.input_dtypes[name].startswith("float")]
    return floats[0] if floats else next(iter(graph.inputs))


def run_model(model: Any, target: Target, x: np.ndarray) -> np.ndarray:
    """(N, classes) scores of the prediction node (probabilities when ``target.softmax``), in
    batches; only the prediction node and what it needs are computed."""
    import numpy as np

    parts = []
    for start in range(0, len(x), BATCH):
        out = model.predict({target.x: x[start:start + BATCH]}, [target.node])[target.node]
        parts.append(np.asarray(out, np.float64).reshape(len(out), -1))
    scores = np.concatenate(parts)
    if target.softmax:
        shifted = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        scores = exp / exp.sum(axis=1, keepdims=True)
    return scores


def class_names(loaded: Any) -> Optional[list[str]]:
    classes = loaded.classes or {}
    labels = (loaded.preprocess or {}).get("labels") or {}
    return classes.get("names") or labels.get("names")


def prediction_records(examples_: list["Example"], scores: np.ndarray, names: Optional[list[str]],
                       top_k: int, probabilities: bool) -> list[dict[str, Any]]:
    """One record per example: input, array, index, class, name, top_k [{class, name,
    probability or score}]."""
    import numpy as np

    key = "probability" if probabilities else "score"
    records = []
    row = 0
    for example in examples_:
        for index in range(len(example.x)):
            values = scores[row]
            row += 1
            order = np.argsort(-values, kind="stable")[:top_k]
            best = int(np.argmax(values))
            records.append({
                "input": example.file,
                "array": example.array,
                "index": index if example.batch else None,
                "class": best,
                "name": _name(names, best),
                "top_k": [{"class": int(c), "name": _name(names, int(c)), key: float(values[c])} for c in order],
            })
    return records


def _name(names: Optional[list[str]], index: int) -> Optional[str]:
    return names[index] if names is not None and index < len(names) else None


# ----------------------------------------------------------------------------------------------
# Reading the inputs
# ----------------------------------------------------------------------------------------------


@dataclass
class Example:
    """Prepared examples from one input: ``x`` (N, *input shape) ready for the model."""

    file: str
    array: Optional[str]  # the .npz array they came from
    batch: bool  # the input held a batch (N, ...), not one example
    x: np.ndarray


def read_inputs(paths: list[Path], record: Optional[dict], target: Target, model: Any,
                invert: Invert) -> tuple[list[Example], list[str]]:
    """Every input prepared for the model, and notes (arrays of an .npz that do not fit)."""
    from ..spec import InputSpec

    graph = model.graph
    spec = InputSpec(shape=list(graph.inputs[target.x]), dtype=graph.input_dtypes[target.x])
    found, notes = [], []
    for path in paths:
        kind = _input_kind(path)
        if kind == "image":
            found.append(_image(path, record, spec, invert))
        elif kind == "npy":
            array = load_npy(path, read_source(path, INPUT))
            found.append(_arrays(str(path), None, array, record, spec))
        else:
            arrays = load_npz(path, read_source(path, INPUT))
            shape = list(record["raw_shape"]) if record is not None else list(spec.shape)
            fitting = {name: a for name, a in arrays.items() if _fits(a, shape)}
            for name, array in arrays.items():
                if name not in fitting:
                    notes.append(f"{path}: array '{name}' of shape {list(array.shape)} skipped (the "
                                 f"model takes {shape} or {['N', *shape]})")
            if not fitting:
                found_shapes = ", ".join(f"'{name}' {list(a.shape)}" for name, a in arrays.items())
                raise DataError(f"none of its arrays ({found_shapes or 'none'}) holds examples of shape "
                                f"{shape} or {['N', *shape]}", file=str(path), hint=_shape_hint(record, spec))
            found.extend(_arrays(str(path), name, array, record, spec) for name, array in fitting.items())
    return found, notes


def _fits(array: np.ndarray, shape: list[int]) -> bool:
    return list(array.shape) == shape or (list(array.shape[1:]) == shape and len(array) > 0)


def _input_kind(path: Path) -> str:
    """"image", "npy" or "npz": by the extension, else by the first bytes."""
    check_source(path, INPUT)
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in (".npy", ".npz"):
        return suffix[1:]
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK"):
        return "npz"
    if head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    raise DataError("is not a .npy or .npz array nor an image", file=str(path),
                    hint="give .npy/.npz arrays (numpy.save, numpy.savez) or images (.png, .jpg)")


def _arrays(file: str, name: Optional[str], array: np.ndarray, record: Optional[dict], spec: Any) -> Example:
    from ..train.data.record import apply_record, as_batch

    source = f"{file}" + (f" (array '{name}')" if name else "")
    if record is not None:
        shape = list(record["raw_shape"])
        one = list(array.shape) == shape
        x = apply_record(array, record, spec, source)
    else:
        shape = list(spec.shape)
        one = list(array.shape) == shape
        x = _as_input(as_batch(array, shape, source, "examples"), spec, source)
    return Example(file, name, not one, x)


def _as_input(batch: np.ndarray, spec: Any, source: str) -> np.ndarray:
    """Already preprocessed examples, as the input's dtype."""
    import numpy as np

    if batch.dtype.kind not in "biuf":
        raise DataError(f"holds {batch.dtype} values; the model takes numbers", file=source)
    if batch.dtype.kind == "f" and not np.isfinite(batch).all():
        raise DataError("holds NaN or infinite values", file=source, hint="give finite numbers")
    return batch.astype(spec.dtype)


def _image(path: Path, record: Optional[dict], spec: Any, invert: Invert) -> Example:
    from ..images import read_image, to_model_input
    from ..train.data.record import apply_record

    if record is None:
        raise DataError(
            "is an image, but the model file records no preprocessing, so nothing says how an image "
            "becomes its input", file=str(path),
            hint=f"give a .npy of already preprocessed examples of shape {list(spec.shape)}")
    pixels = read_image(path)
    choice = {Invert.auto: None, Invert.yes: True, Invert.no: False}[invert]
    raw = to_model_input(pixels, record["raw_shape"], record["raw_dtype"], invert=choice, source=str(path))
    return Example(str(path), None, False, apply_record(raw, record, spec, str(path)))


def _shape_hint(record: Optional[dict], spec: Any) -> str:
    shape = list(record["raw_shape"]) if record is not None else list(spec.shape)
    return f"give arrays of shape {shape} or {['N', *shape]}"


# ----------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------


def _print_table(records: list[dict[str, Any]], probabilities: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    key = "probability" if probabilities else "score"
    named = any(record["name"] is not None for record in records)
    table = Table()
    table.add_column("input", no_wrap=True, overflow="fold")
    table.add_column("class", justify="right")
    if named:
        table.add_column("name")
    table.add_column(key, justify="right")
    table.add_column("top " + str(len(records[0]["top_k"])) if records else "top")
    for record in records:
        where = record["input"] + (f":{record['array']}" if record["array"] else "")
        where += f"[{record['index']}]" if record["index"] is not None else ""
        top = ", ".join(
            (f"{item['name']}" if item["name"] is not None else f"{item['class']}") + f" {_value(item[key], probabilities)}"
            for item in record["top_k"])
        cells = [escape(where), str(record["class"])] + ([escape(record["name"] or "-")] if named else [])
        cells += [_value(record["top_k"][0][key], probabilities), escape(top)]
        table.add_row(*cells)
    Console(width=None if sys.stdout.isatty() else 120, highlight=False).print(table)


def _value(value: float, probabilities: bool) -> str:
    return f"{value:.4f}" if probabilities else f"{value:.4g}"
