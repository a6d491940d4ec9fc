"""The preprocessing record: what a model file keeps of how its examples were prepared, and
how new raw examples are prepared the same way from it alone (``graphnet predict``, the ONNX
export, ``graphnet eval`` without the training set).

The record (agreed with the model-file format and the ONNX exporter; docs/model-format.md)::

    {"input": "image",                the graph input fed the examples
     "raw_shape": [28, 28],           one raw example's shape, as stored in the data files
     "raw_dtype": "uint8",            "uint8" | "float32" | "float64"
     "scale": 255.0,                  x = raw / scale          (None: not scaled)
     "mean": 0.1307, "std": 0.3081,   x = (x - mean) / std     (both None: not standardized)
     "flatten": true,                 each example to a vector
     "labels": {"input": "label", "one_hot": false, "classes": 10, "names": ["0", ..., "9"]}}

``mean`` and ``std`` are those ``standardize`` fitted on the training split (``prepare``
computes them once; they are carried here, never recomputed). ``raw_dtype`` is the examples'
dtype as read: uint8 and float64 as such, every other dtype as float32 (what training converted
it to). Class names: MNIST's digits, Fashion-MNIST's ten names, or an .npz's ``class_names``.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from ...errors import DataError
from ...spec import InputSpec, PreprocessSpec
from .prepare import UINT8_SCALE, Statistics, prepare_examples

RAW_DTYPES = ("uint8", "float32", "float64")

# The classes of the named datasets, by class id.
CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion-mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}


def raw_dtype_name(dtype: np.dtype) -> str:
    """The record's name for raw examples of ``dtype``: uint8 and float64 as they are, any other
    dtype float32 (training converted it to float32 without scaling it)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return "uint8"
    if dtype == np.float64:
        return "float64"
    return "float32"


def preprocess_record(
    x_name: str,
    raw_shape: Sequence[int],
    raw_dtype: np.dtype,
    pre: PreprocessSpec,
    statistics: Statistics,
    labels: Optional[dict[str, Any]],
) -> Optional[dict[str, Any]]:
    """The record of examples of per-example shape ``raw_shape`` and dtype ``raw_dtype`` fed
    to input ``x_name`` through ``pre`` with the fitted ``statistics``. None for examples that
    are single numbers (a record's raw shape has at least one axis)."""
    shape = [int(size) for size in raw_shape]
    if not shape or min(shape) < 1:
        return None
    name = raw_dtype_name(raw_dtype)
    return {
        "input": x_name,
        "raw_shape": shape,
        "raw_dtype": name,
        # preprocess.scale divides uint8 examples only (see prepare.scale_examples)
        "scale": UINT8_SCALE if pre.scale and name == "uint8" else None,
        "mean": statistics.mean,
        "std": statistics.std,
        "flatten": bool(pre.flatten),
        "labels": labels,
    }


def labels_record(y_name: str, pre: PreprocessSpec, classes: int, names: Optional[list[str]]) -> Optional[dict[str, Any]]:
    """How labels feed input ``y_name``: class ids or one-hot rows, the number of classes and
    their names. None when the labels are not classes (``classes`` 0: regression targets)."""
    if classes < 1:
        return None
    return {"input": y_name, "one_hot": bool(pre.one_hot), "classes": classes, "names": names}


def class_count(classes: int, names: Optional[list[str]], where: str) -> int:
    """The classes a model file records: the labels' count (largest id + 1), or the number of
    names when the names list more (a class absent from the data still has its name). Fewer
    names than classes is an error: each class id needs its name."""
    if names is None or classes < 1:
        return classes
    if len(names) < classes:
        raise DataError(
            f"class_names holds {len(names)} names, but the labels have {classes} classes "
            f"(ids 0 to {classes - 1})",
            path=where,
            hint="give one name per class id, in order",
        )
    return len(names)


# ----------------------------------------------------------------------------------------------
# Preparing new raw examples from a record
# ----------------------------------------------------------------------------------------------


def record_statistics(record: dict[str, Any]) -> Statistics:
    return Statistics(record.get("mean"), record.get("std"))


def apply_record(raw: np.ndarray, record: dict[str, Any], spec: InputSpec, source: str) -> np.ndarray:
    """Raw examples ``raw`` (shape (N, *raw_shape), or one example of shape raw_shape) as the
    model's input, prepared exactly as the recorded preprocessing prepared the training data:
    x = raw / scale, x = (x - mean) / std, flattened; cast to the input's dtype.

    The raw examples must be what the record says: a uint8 record takes uint8 arrays (or whole
    numbers from 0 to 255 in any numeric dtype, as an ONNX runtime takes them); a float record
    takes any numeric array. ``source`` names the input in errors."""
    raw = np.asarray(raw)
    shape = list(record["raw_shape"])
    batch = as_batch(raw, shape, source, "raw examples")
    batch = _as_raw_dtype(batch, record, source)
    work = np.dtype(spec.dtype) if np.dtype(spec.dtype).kind == "f" else np.dtype(np.float32)
    scale = record.get("scale")
    if scale is not None:
        batch = batch.astype(work)
        batch /= scale
    pre = PreprocessSpec(scale=False, standardize=record.get("mean") is not None, flatten=record["flatten"])
    try:
        prepared, _ = prepare_examples({"raw": batch}, pre, record["input"], spec, record_statistics(record))
    except DataError as error:  # the record does not fit the model's input (an edited file)
        raise DataError(error.message, file=source, hint=error.hint) from None
    return prepared["raw"]


def as_batch(array: np.ndarray, shape: list[int], source: str, what: str) -> np.ndarray:
    """``array`` with a batch axis: one example of ``shape``, or (N, *shape)."""
    if list(array.shape) == shape:
        return array[None]
    if array.ndim == len(shape) + 1 and list(array.shape[1:]) == shape and len(array):
        return array
    raise DataError(
        f"holds an array of shape {list(array.shape)}; the model takes {what} of shape {shape} "
        f"(one) or {['N', *shape]} (several)",
        file=source,
        hint=f"reshape it to {['N', *shape]}",
    )


def _as_raw_dtype(batch: np.ndarray, record: dict[str, Any], source: str) -> np.ndarray:
    """``batch`` in the record's raw dtype; values that dtype cannot hold are refused (a float
    array of 0..1 pixels given to a model of uint8 pixels would otherwise be read as black)."""
    if batch.dtype.kind not in "biuf":
        raise DataError(f"holds {batch.dtype} values; the model takes numbers", file=source,
                        hint=f"give an array of {record['raw_dtype']}")
    wanted = record["raw_dtype"]
    if wanted != "uint8":
        if batch.dtype.kind == "f" and not np.isfinite(batch).all():
            raise DataError("holds NaN or infinite values", file=source, hint="give finite numbers")
        return batch.astype(wanted, copy=False)
    if batch.dtype == np.uint8:
        return batch
    low, high = (float(batch.min()), float(batch.max())) if batch.size else (0.0, 0.0)
    whole = batch.dtype.kind != "f" or bool(np.all(np.isfinite(batch)) and np.all(batch == np.floor(batch)))
    if not whole or low < 0 or high > 255:
        found = f"{batch.dtype} values from {_number(low)} to {_number(high)}"
        hint = "multiply by 255 and round" if whole is False and 0 <= low and high <= 1 else "give pixel values 0 to 255"
        raise DataError(
            f"holds {found}{'' if whole else ' (not whole numbers)'}; the model was trained on uint8 "
            "pixels 0 to 255", file=source, hint=f"{hint}, e.g. as a uint8 array",
        )
    return batch.astype(np.uint8)


def _number(value: float) -> str:
    return str(int(value)) if math.isfinite(value) and value == int(value) else f"{value:.4g}"


# ----------------------------------------------------------------------------------------------
# For people
# ----------------------------------------------------------------------------------------------


def describe_record(record: Optional[dict[str, Any]], classes: Optional[dict[str, Any]] = None) -> str:
    """One line saying what a record does: ``uint8 [28, 28] -> x / 255 -> (x - 0.1307) / 0.3081
    -> flatten -> input 'image'; labels 'label': 10 classes (0, 1, ..., 9)``."""
    if record is None:
        text = "none recorded (the model takes examples already preprocessed)"
    else:
        steps = [f"{record['raw_dtype']} {list(record['raw_shape'])}"]
        if record.get("scale") is not None:
            steps.append(f"x / {_number(record['scale'])}")
        if record.get("mean") is not None:
            steps.append(f"(x - {record['mean']:.6g}) / {record['std']:.6g}")
        if record.get("flatten"):
            steps.append("flatten")
        steps.append(f"input '{record['input']}'")
        text = " -> ".join(steps)
        labels = record.get("labels")
        if labels is not None:
            encoding = "one-hot rows" if labels.get("one_hot") else "class ids"
            text += f"; labels '{labels['input']}' as {encoding}"
    if classes is not None:
        text += f"; {classes['count']} classes"
        names = classes.get("names")
        if names:
            shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            text += f" ({shown})"
    return text
