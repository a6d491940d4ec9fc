"""docs/model-format.md is the format's specification: an independent reader written from it
(its own code block, run as it stands) decodes graphnet's files to the same arrays, and its
tables of header keys, preprocessing fields and limits are the code's.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import graphnet.modelfile as modelfile
from graphnet import Model, load_spec
from graphnet.modelfile import HEADER_KEYS, Preprocess, TensorEntry, header_dict, load_model, read_contents, save_model

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "model-format.md"
GOLDEN = Path(__file__).resolve().parent / "golden"


def reference_reader() -> dict:
    """The namespace of the doc's reference reader: the python block after its marker, run on
    its own. Only msgpack, numpy, hashlib and struct may be imported: nothing of graphnet's."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- reference-reader -->\n```python\n(.*?)\n```", text, re.DOTALL)
    assert found, "docs/model-format.md lost its reference reader block"
    code = found.group(1)
    imported = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"hashlib", "struct", "msgpack", "numpy"}, imported
    namespace: dict = {"__name__": "reference_reader"}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def read_model_file():
    return reference_reader()["read_model_file"]


def saved_files(folder: Path) -> list[Path]:
    """A model with every header field and every tensor dtype, plus the golden format-2 files."""
    model = Model.from_spec(load_spec(ROOT / "specs" / "skip-mlp.yaml"), seed=11)
    path = folder / "full.gnm"
    save_model(path, model, {"epochs": [{"epoch": 1, "lr": 0.5}]}, {"test_error": 0.125},
               classes={"count": 10, "names": None}, data="somewhere", resume={"epoch": 1},
               optimizer={f"v/{n}": p * 2 for n, p in model.params.items()},
               state={"i4": np.arange(-3, 3, dtype=np.int32), "i8": np.array(2**40), "u1": np.arange(7, dtype=np.uint8),
                      "f8": np.linspace(-1, 1, 9).reshape(3, 3)})
    return [path, GOLDEN / "v2-tiny-float32.gnm", GOLDEN / "v2-tiny-float64.gnm"]


def test_the_independent_reader_gets_the_same_header_and_arrays(read_model_file, tmp_path):
    for path in saved_files(tmp_path):
        header, tensors = read_model_file(path)
        assert header == header_dict(path)
        ours = read_contents(path).tensors
        assert {group: list(arrays) for group, arrays in tensors.items()} == {
            group: list(arrays) for group, arrays in ours.items()}
        for group, arrays in ours.items():
            for name, value in arrays.items():
                theirs = tensors[group][name]
                assert theirs.dtype == value.dtype and theirs.shape == value.shape, name
                assert np.array_equal(theirs, value), name
        model = load_model(path).model
        for name, value in tensors["params"].items():
            assert np.array_equal(value, model.params[name])


def test_the_readers_constants_are_the_codes():
    namespace = reference_reader()
    assert namespace["MAGIC"] == modelfile.MAGIC
    assert namespace["BLOCK"] == modelfile.layout.HASH_BLOCK
    assert namespace["DTYPES"] == set(modelfile.DTYPES)
    assert namespace["GROUPS"] == modelfile.GROUPS
    assert namespace["PRELUDE"].format == modelfile.layout.PRELUDE.format


def test_the_independent_reader_checks_the_checksums(read_model_file, tmp_path):
    path = saved_files(tmp_path)[0]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # the last byte of the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is corrupted"):
        read_model_file(path)


def table_rows(heading: str) -> list[list[str]]:
    """The rows of the first markdown table after ``heading`` (cells stripped, header row
    and separator dropped)."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(heading)
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def test_the_documented_header_keys_are_the_codes_in_order():
    keys = [row[0].strip("`") for row in table_rows("graphnet writes the keys in this order")]
    assert keys == list(HEADER_KEYS)


def test_the_documented_tensor_entry_is_the_codes():
    keys = [row[0].strip("`") for row in table_rows("All three keys are present")]
    assert keys == list(TensorEntry.model_fields)


def test_the_documented_preprocess_record_is_the_codes():
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index("### preprocess") :]
    block = block[block.index("```") + 3 :]
    block = block[: block.index("```")]
    documented = re.findall(r'"(\w+)":', block)
    labels = documented.index("labels")
    assert documented[: labels + 1] == list(Preprocess.model_fields)
    assert documented[labels + 1 :] == list(modelfile.Labels.model_fields)


def test_the_documented_limits_are_the_codes():
    rows = table_rows("### Limits")
    assert len(rows) >= 14
    for what, value, where in rows:
        module, name = where.strip("`").split(".")
        actual = getattr(__import__(f"graphnet.modelfile.{module}", fromlist=[name]), name)
        documented = int(value.split()[0].replace(",", ""))
        assert documented == actual, f"{what}: the doc says {documented}, {where} is {actual}"


def test_the_documented_dtypes_are_the_codes():
    text = DOC.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `dtype` | str | one of"))
    assert re.findall(r"`(<[a-z]\d)`", row) == list(modelfile.DTYPES)
