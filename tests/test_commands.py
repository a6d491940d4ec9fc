"""The commands that use a model file: inspect, convert, predict, plot, eval, and what `graphnet
run` records for them, on models trained by ``graphnet.train.loop.train`` on small synthetic
data (checked against independent computations: numpy forward passes, onnxruntime, the JSON
and .npz files read back by hand). The claim "works from the file alone after the data is moved
away" is tested end to end with real processes.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from graphnet import Model, load_spec
from graphnet.errors import GraphnetError, ModelFileError
from graphnet.modelfile import header_dict, load_model, read_header, save_model
from graphnet.train.loop import prepare, train

REPO = Path(__file__).resolve().parents[1]

# 3 overlapping classes in 8 features: learnable, but with validation errors to plot
SYNTH_SPEC = """
format: 1
name: synth
inputs:
  x: {{shape: [8]}}
  y: {{shape: [], dtype: int64}}
layers: {{input: x, sizes: [8, 16, 3], labels: y, dropout: 0.1}}
train:
  data: {{dataset: npz, path: {path}, validation: {validation}, preprocess: {{scale: false, flatten: false, standardize: true}}}}
  batch_size: 16
  epochs: 5
  seed: 3
  optimizer: {{type: sgd, lr: 0.05, momentum: 0.9}}
  keep_best: {keep_best}
"""

# 28x28 uint8 "digits": class k is a bright square at one of ten places, on noise
BLOCKS_SPEC = """
format: 1
name: blocks
inputs:
  image: {{shape: [784]}}
  label: {{shape: [], dtype: int64}}
layers: {{input: image, sizes: [784, 32, 10], labels: label}}
train:
  data: {{dataset: npz, path: {path}, validation: 40, preprocess: {{scale: true, standardize: true, flatten: true}}}}
  batch_size: 32
  epochs: 4
  seed: 0
  optimizer: {{type: adam, lr: 0.003}}
  keep_best: {keep_best}
"""


def synth_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((3, 8)) * 1.2

    def make(n):
        y = rng.integers(0, 3, n)
        return (centers[y] + rng.standard_normal((n, 8)) * 1.5 + 4).astype(np.float32), y

    x_train, y_train = make(300)
    x_test, y_test = make(100)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "class_names": np.array(["circle", "square", "triangle"])}


def blocks_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n) % 10
        x = rng.integers(0, 60, (n, 28, 28))
        for i, k in enumerate(y):
            row, col = 4 + 8 * (k // 4), 2 + 7 * (k % 4)
            x[i, row:row + 6, col:col + 5] = rng.integers(180, 256, (6, 5))
        return x.astype(np.uint8), y

    x_train, y_train = make(400)
    x_test, y_test = make(50)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


@dataclass
class Trained:
    """A model file written as `graphnet run` writes it, and what it was trained on."""

    folder: Path
    spec_file: Path
    model: Path
    arrays: dict[str, np.ndarray]
    result: object
    data: object


def train_file(folder: Path, spec_text: str, arrays: dict, name: str, validation: int = 60) -> Trained:
    """Train with graphnet.train.loop.train, saving each checkpoint with what `graphnet run`
    records (the preprocessing record, the classes, the data's description)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{name}.npz", **arrays)
    spec_file = folder / f"{name}.yaml"
    keep_best = "{metric: val_error}" if validation else "null"
    spec_file.write_text(spec_text.format(path=f"{name}.npz", validation=validation, keep_best=keep_best),
                         encoding="utf-8")
    spec = load_spec(spec_file)
    graph, roles, data = prepare(spec)
    out = folder / f"{name}.gnm"

    def checkpoint(model, log, metrics):
        save_model(out, model, log={**log, "data": data.description}, metrics=metrics,
                   preprocess=data.preprocess, classes=data.classes_record(), data=data.description)

    result = train(spec, checkpoint=checkpoint, prepared=(graph, roles, data))
    return Trained(folder, spec_file, out, arrays, result, data)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Trained:
    return train_file(tmp_path_factory.mktemp("synth"), SYNTH_SPEC, synth_arrays(), "synth")


@pytest.fixture(scope="module")
def blocks(tmp_path_factory) -> Trained:
    return train_file(tmp_path_factory.mktemp("blocks"), BLOCKS_SPEC, blocks_arrays(), "blocks")


def cli(*args, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m graphnet.cli ARGS`` as a real process (exit codes, stderr), GRAPHNET_DATA
    dropped: these tests need no dataset."""
    env = {key: value for key, value in os.environ.items() if key != "GRAPHNET_DATA"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "graphnet.cli", *map(str, args)], cwd=cwd or REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def invoke(*args):
    """The command run in process (fast); a GraphnetError it raises is re-raised here."""
    from typer.testing import CliRunner

    from graphnet.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one error line of a failed command (no traceback, exit 1)."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    return line


def forward_classes(model: Model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(argmax, softmax) of the logits, by a numpy forward pass written here from the weights
    (fc1 -> relu -> fc2 for both models), independent of graphnet's executor."""
    h = np.maximum(x @ model.params["fc1.w"] + model.params["fc1.b"], 0)
    logits = (h @ model.params["fc2.w"] + model.params["fc2.b"]).astype(np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return logits.argmax(axis=1), e / e.sum(axis=1, keepdims=True)


def write_png(path: Path, gray: np.ndarray) -> Path:
    """An 8-bit grayscale PNG, written by hand (zlib + struct)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width = gray.shape
    rows = b"".join(b"\x00" + row.astype(np.uint8).tobytes() for row in gray)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------------------------
# what `graphnet run` records
# ----------------------------------------------------------------------------------------------


def test_run_records_the_preprocessing_classes_and_a_description(tmp_path):
    arrays = synth_arrays()
    np.savez(tmp_path / "synth.npz", **arrays)
    (tmp_path / "synth.yaml").write_text(SYNTH_SPEC.format(path="synth.npz", validation=60, keep_best="{metric: val_error}"), encoding="utf-8")
    result = cli("run", tmp_path / "synth.yaml", "--out", tmp_path / "m.gnm", "--set", "train.epochs=2")
    assert result.returncode == 0, result.stderr
    header = header_dict(tmp_path / "m.gnm")
    kept = arrays["x_train"][:240].astype(np.float64)
    record = header["preprocess"]
    assert record["mean"] == pytest.approx(kept.mean(), rel=1e-12)
    assert record["std"] == pytest.approx(kept.std(), rel=1e-12)
    assert record["raw_shape"] == [8] and record["raw_dtype"] == "float32" and record["scale"] is None
    names = ["circle", "square", "triangle"]
    assert record["labels"] == {"input": "y", "one_hot": False, "classes": 3, "names": names}
    assert header["classes"] == {"count": 3, "names": names}
    assert header["data"] == ("npz file synth.npz; 240 train, 60 validation (the last 60 training "
                              "examples), 100 test; preprocess: standardize")
    assert header["log"]["data"] == header["data"]  # the log's copy holds no absolute path either
    assert str(tmp_path) not in json.dumps({k: v for k, v in header.items() if k not in ("log", "spec")})
    assert (f"preprocess: float32 [8] -> (x - {record['mean']:.6g}) / {record['std']:.6g} -> input 'x'; "
            "labels 'y' as class ids; 3 classes (circle, square, triangle)") in result.stdout


# ----------------------------------------------------------------------------------------------
# inspect
# ----------------------------------------------------------------------------------------------


def test_inspect_json_describes_the_file(synth):
    report = json.loads(invoke("inspect", synth.model, "--json").stdout)
    header = read_header(synth.model)
    assert report["file"] == str(synth.model) and report["format"] == 2 and report["name"] == "synth"
    assert [(n["name"], n["op"], n["version"], n["shape"], n["params"]) for n in report["nodes"]] == [
        ("fc1", "linear", 1, [16], 8 * 16 + 16), ("relu1", "relu", 1, [16], 0),
        ("dropout1", "dropout", 1, [16], 0), ("fc2", "linear", 1, [3], 16 * 3 + 3),
        ("loss", "softmax_cross_entropy", 1, [], 0)]
    assert report["nodes"][4]["inputs"] == {"logits": "fc2", "labels": "y"}
    assert report["totals"]["parameters"] == header.param_count() == 195
    assert report["totals"]["parameter_bytes"] == 195 * 4
    assert report["totals"]["file_bytes"] == synth.model.stat().st_size
    assert report["preprocess"] == synth.data.preprocess
    assert report["classes"] == {"count": 3, "names": ["circle", "square", "triangle"]}
    assert report["data"] == synth.data.description
    assert [e["epoch"] for e in report["log"]["epochs"]] == [1, 2, 3, 4, 5]
    assert report["best_epoch"] == synth.result.best_epoch
    assert report["metrics"]["test_error"] == synth.result.test["error"]
    import graphnet

    assert report["plugins"] == [{"distribution": "graphnet", "version": graphnet.__version__,
                                  "ops": {"dropout": 1, "linear": 1, "relu": 1, "softmax_cross_entropy": 1}}]
    assert report["problems"] == [] and report["resumable"] is False
    assert set(report) == {"file", "format", "graphnet", "name", "description", "dtype", "inputs", "nodes",
                           "outputs", "totals", "preprocess", "classes", "data", "log", "best_epoch",
                           "metrics", "plugins", "resumable", "problems"}


def test_inspect_text_shows_graph_log_and_metrics(synth):
    text = invoke("inspect", synth.model).stdout
    best = synth.result.best_epoch
    assert "model 'synth'" in text and "195 parameters" in text
    assert "fc2" in text and "softmax_cross_entropy" in text and "['N', 16]" in text
    assert f"│ {best} * │" in text.replace("  ", " ") or f"{best} *" in text
    assert f"best epoch: {best}" in text
    assert f"error {synth.result.test['error'] * 100:.2f}%" in text
    assert "plugins: graphnet" in text and "linear v1" in text
    assert "preprocess: float32 [8] -> (x - " in text
    assert "data: npz file synth.npz; 240 train" in text


def test_inspect_reads_only_the_header(synth, tmp_path):
    """Tensors are never read: a file whose last tensor bytes are corrupted still inspects (and
    plots), while loading the model finds the corruption."""
    broken = tmp_path / "broken.gnm"
    data = bytearray(synth.model.read_bytes())
    data[-1] ^= 0xFF
    broken.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(broken)
    report = json.loads(invoke("inspect", broken, "--json").stdout)
    assert report["totals"]["parameters"] == 195
    invoke("plot", broken, "-o", tmp_path / "c.png")


def test_inspect_without_the_plugin_shows_the_graph_and_what_to_install(tmp_path, monkeypatch):
    pytest.importorskip("graphnet_swish")
    from graphnet.registry import Registry, default_registry

    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(
        "name: sw\ninputs:\n  x: {shape: [4]}\nnodes:\n  fc: {op: linear, inputs: {x: x}, attrs: {units: 3}}\n"
        "  act: {op: swish, inputs: {x: fc}}\noutputs: [act]\n", encoding="utf-8")
    save_model(tmp_path / "sw.gnm", Model.from_spec(load_spec(spec_file)))
    full = default_registry()
    without = Registry({name: [full.source(name)] for name in full.names() if name != "swish"})
    monkeypatch.setattr("graphnet.modelfile.read.default_registry", lambda: without)
    report = json.loads(invoke("inspect", tmp_path / "sw.gnm", "--json").stdout)
    assert [n["shape"] for n in report["nodes"]] == [None, None]
    assert report["nodes"][1]["op"] == "swish"
    (problem,) = report["problems"]
    assert "op 'swish' is not installed" in problem and "pip install 'graphnet-swish==" in problem
    assert {p["distribution"] for p in report["plugins"]} == {"graphnet", "graphnet-swish"}


# ----------------------------------------------------------------------------------------------
# convert
# ----------------------------------------------------------------------------------------------


def test_model_json_round_trip_is_byte_identical(synth, tmp_path):
    invoke("convert", synth.model, tmp_path / "m.json")
    document = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert document["format"] == "graphnet-model-json" and document["version"] == 1
    header = header_dict(synth.model)
    assert document["header"] == {k: v for k, v in header.items() if k != "tensors"}
    loaded = load_model(synth.model)
    for name, array in loaded.model.params.items():
        entry = document["tensors"]["params"][name]
        assert entry["dtype"] == "<f4" and entry["shape"] == list(array.shape)
        assert np.array_equal(np.array(entry["data"], np.float64).astype(np.float32), array)  # lossless
    assert "0.10000000149011612" not in (tmp_path / "m.json").read_text()  # shortest decimals
    invoke("convert", tmp_path / "m.json", tmp_path / "back.gnm")
    assert (tmp_path / "back.gnm").read_bytes() == synth.model.read_bytes()


@pytest.mark.parametrize("golden", sorted((REPO / "tests" / "golden").glob("v2-*.gnm")), ids=lambda p: p.stem)
def test_golden_files_json_round_trip_is_byte_identical(golden, tmp_path):
    """Files holding a resume record and optimizer tensors too."""
    invoke("convert", golden, tmp_path / "g.json")
    invoke("convert", tmp_path / "g.json", tmp_path / "g.gnm")
    assert (tmp_path / "g.gnm").read_bytes() == golden.read_bytes()


def test_model_json_is_the_source_of_truth_when_edited(synth, tmp_path):
    invoke("convert", synth.model, tmp_path / "m.json")
    document = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    document["tensors"]["params"]["fc2.b"]["data"] = [0.25, -0.5, 1.0]
    (tmp_path / "edited.json").write_text(json.dumps(document), encoding="utf-8")
    invoke("convert", tmp_path / "edited.json", tmp_path / "edited.gnm")
    assert load_model(tmp_path / "edited.gnm").model.params["fc2.b"].tolist() == [0.25, -0.5, 1.0]
    document["tensors"]["params"]["fc2.b"]["data"] = [0.25, -0.5]
    (tmp_path / "bad.json").write_text(json.dumps(document), encoding="utf-8")
    line = error_line(cli("convert", tmp_path / "bad.json", tmp_path / "bad.gnm"))
    assert line.startswith(f"graphnet: error: {tmp_path / 'bad.json'}: tensors.params.fc2.b.data: data has shape [2]")
    document["tensors"]["params"]["fc2.b"]["data"] = [0.25, -0.5, 1.0]
    document["header"]["metrics"] = ["not", "a", "map"]
    (tmp_path / "bad2.json").write_text(json.dumps(document), encoding="utf-8")
    line = error_line(cli("convert", tmp_path / "bad2.json", tmp_path / "bad2.gnm"))
    assert line.startswith(f"graphnet: error: {tmp_path / 'bad2.json'}: header.metrics: ")
    assert not (tmp_path / "bad.gnm").exists() and not (tmp_path / "bad2.gnm").exists()


def test_parameters_npz_round_trip(synth, tmp_path):
    invoke("convert", synth.model, tmp_path / "p.npz")
    loaded = load_model(synth.model)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(loaded.model.params)
        for name in npz.files:
            assert np.array_equal(npz[name], loaded.model.params[name])
    invoke("convert", tmp_path / "p.npz", tmp_path / "rebuilt.gnm", "--spec", synth.spec_file)
    rebuilt = load_model(tmp_path / "rebuilt.gnm")
    assert np.array_equal(rebuilt.model.flat_params, loaded.model.flat_params)
    assert rebuilt.model.spec == loaded.model.spec and rebuilt.preprocess is None


def test_npz_that_does_not_fit_the_spec_is_one_error_per_problem(synth, tmp_path):
    params = dict(load_model(synth.model).model.params)
    np.savez(tmp_path / "missing.npz", **{k: v for k, v in params.items() if k != "fc2.b"})
    line = error_line(cli("convert", tmp_path / "missing.npz", tmp_path / "x.gnm", "--spec", synth.spec_file))
    assert line.startswith(f"graphnet: error: {tmp_path / 'missing.npz'}: the arrays are not the parameters")
    assert "missing fc2.b" in line
    np.savez(tmp_path / "shape.npz", **{**params, "fc1.b": np.zeros(5, np.float32), "fc2.b": np.zeros(7)})
    result = cli("convert", tmp_path / "shape.npz", tmp_path / "x.gnm", "--spec", synth.spec_file)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 2
    assert "array 'fc1.b' has shape [5]; the spec makes it [16]" in lines[0]
    assert "array 'fc2.b' has shape [7]; the spec makes it [3]" in lines[1]
    line = error_line(cli("convert", tmp_path / "shape.npz", tmp_path / "x.gnm"))
    assert "needs the spec they belong to" in line and "--spec SPEC" in line
    assert not (tmp_path / "x.gnm").exists()


@pytest.mark.parametrize("spec", sorted(p for p in (REPO / "specs").glob("*.yaml") if not p.stem.endswith("-sweep")), ids=lambda p: p.stem)
def test_spec_yaml_json_yaml_keeps_the_spec(spec, tmp_path):
    invoke("convert", spec, tmp_path / "s.json")
    invoke("convert", tmp_path / "s.json", tmp_path / "s.yaml")
    original = load_spec(spec)
    assert load_spec(tmp_path / "s.json") == original
    assert load_spec(tmp_path / "s.yaml") == original
    with open(spec, encoding="utf-8") as handle:
        import yaml

        assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8")) == yaml.safe_load(handle)


def test_model_to_yaml_is_its_embedded_spec(synth, tmp_path):
    invoke("convert", synth.model, tmp_path / "embedded.yaml")
    assert load_spec(tmp_path / "embedded.yaml") == load_model(synth.model).model.spec


def test_convert_never_overwrites_and_lists_what_it_supports(synth, tmp_path):
    target = tmp_path / "m.json"
    target.write_text("precious", encoding="utf-8")
    line = error_line(cli("convert", synth.model, target))
    assert line == f"graphnet: error: {target}: already exists (pass --overwrite to replace it, or write to another file)"
    assert target.read_text(encoding="utf-8") == "precious"
    invoke("convert", synth.model, target, "--overwrite")
    assert json.loads(target.read_text(encoding="utf-8"))["format"] == "graphnet-model-json"
    line = error_line(cli("convert", synth.model, tmp_path / "m.csv"))
    assert line.startswith(f"graphnet: error: {synth.model}: cannot convert a model file to .csv (supported: ")
    for supported in ("model file -> JSON", "spec YAML -> JSON", "model file -> ONNX", "--spec SPEC -> model file"):
        assert supported in line
    line = error_line(cli("convert", synth.spec_file, tmp_path / "s.onnx"))
    assert "cannot convert a spec (YAML) to .onnx" in line


def test_convert_to_onnx_matches_predict_in_onnxruntime(synth, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    invoke("convert", synth.model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]  # the raw examples; no label input
    x = synth.arrays["x_test"][:64]
    np.save(tmp_path / "x.npy", x)
    predicted = json.loads(invoke("predict", synth.model, tmp_path / "x.npy", "--top-k", "3", "--json").stdout)
    ours = np.zeros((64, 3))
    for row, record in enumerate(predicted["predictions"]):
        for item in record["top_k"]:
            ours[row, item["class"]] = item["probability"]
    names = [o.name for o in session.get_outputs()]
    for batch in (1, 7, 64):
        out = dict(zip(names, session.run(None, {"x": x[:batch]})))
        assert np.max(np.abs(out["probabilities"] - ours[:batch])) <= 1e-5
        assert out["probabilities"].argmax(axis=1).tolist() == [r["class"] for r in predicted["predictions"][:batch]]


# ----------------------------------------------------------------------------------------------
# predict
# ----------------------------------------------------------------------------------------------


def test_predict_arrays_match_an_independent_forward_pass(synth, tmp_path):
    loaded = load_model(synth.model)
    x = synth.arrays["x_test"]
    prepared = (x - np.float32(loaded.preprocess["mean"])) / np.float32(loaded.preprocess["std"])
    classes, probabilities = forward_classes(loaded.model, prepared)
    np.save(tmp_path / "many.npy", x[:20])
    np.save(tmp_path / "one.npy", x[5])
    result = json.loads(invoke("predict", synth.model, tmp_path / "many.npy", tmp_path / "one.npy",
                               "--top-k", "2", "--json").stdout)
    records = result["predictions"]
    assert result["scores"] == "probabilities" and len(records) == 21
    assert [r["class"] for r in records[:20]] == classes[:20].tolist()
    assert [r["index"] for r in records[:3]] == [0, 1, 2] and records[20]["index"] is None
    assert records[20]["class"] == classes[5] and records[20]["input"] == str(tmp_path / "one.npy")
    names = ["circle", "square", "triangle"]
    for record, p in zip(records, probabilities[:20]):
        assert record["name"] == names[record["class"]]
        assert len(record["top_k"]) == 2
        order = np.argsort(-p, kind="stable")[:2]
        assert [item["class"] for item in record["top_k"]] == order.tolist()
        np.testing.assert_allclose([item["probability"] for item in record["top_k"]], p[order], atol=1e-6)
    # the table says the same
    table = invoke("predict", synth.model, tmp_path / "one.npy").stdout
    (row,) = [line for line in table.splitlines() if "one.npy" in line]
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[:3] == [str(tmp_path / "one.npy"), str(classes[5]), names[classes[5]]]
    assert cells[3] == f"{records[20]['top_k'][0]['probability']:.4f}"


def test_predict_npz_uses_every_fitting_array_and_notes_the_others(synth):
    result = cli("predict", synth.model, synth.folder / "synth.npz", "--json")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)["predictions"]
    assert {r["array"] for r in records} == {"x_train", "x_test"} and len(records) == 400
    assert "note: " in result.stderr and "array 'y_train' of shape [300] skipped" in result.stderr


def test_predict_png_matches_the_same_digit_as_npy(blocks, tmp_path):
    digits = blocks.arrays["x_test"][:10]
    records = {}
    np.save(tmp_path / "digits.npy", digits)
    from_npy = json.loads(invoke("predict", blocks.model, tmp_path / "digits.npy", "--json", "--top-k", "10").stdout)
    for i, digit in enumerate(digits):
        write_png(tmp_path / f"d{i}.png", digit)  # white on black, like the training data
        write_png(tmp_path / f"paper{i}.png", 255 - digit)  # dark ink on white paper
        write_png(tmp_path / f"big{i}.png", np.kron(digit, np.ones((2, 2), np.uint8)))  # 56 x 56
    for kind in ("d", "paper", "big"):
        paths = [tmp_path / f"{kind}{i}.png" for i in range(10)]
        records[kind] = json.loads(invoke("predict", blocks.model, *paths, "--json", "--top-k", "10").stdout)
    for i, record in enumerate(from_npy["predictions"]):
        for kind in ("d", "paper", "big"):  # auto-inverted paper; area-averaged 2x2 blocks: the same pixels
            image = records[kind]["predictions"][i]
            assert image["class"] == record["class"]
            assert [t["probability"] for t in image["top_k"]] == [t["probability"] for t in record["top_k"]]
    classes = [r["class"] for r in from_npy["predictions"]]
    assert np.mean(np.array(classes) == blocks.arrays["y_test"][:10]) >= 0.8  # the model learned
    kept = json.loads(invoke("predict", blocks.model, tmp_path / "paper0.png", "--json", "--invert", "no").stdout)
    assert kept["predictions"][0]["top_k"][0]["probability"] != records["paper"]["predictions"][0]["top_k"][0]["probability"]


def test_predict_refuses_float_pixels_for_a_uint8_model(blocks, tmp_path):
    np.save(tmp_path / "floats.npy", blocks.arrays["x_test"][:2] / 255.0)
    line = error_line(cli("predict", blocks.model, tmp_path / "floats.npy"))
    assert line.startswith(f"graphnet: error: {tmp_path / 'floats.npy'}: holds float64 values from 0")
    assert "(not whole numbers); the model was trained on uint8 pixels 0 to 255 (multiply by 255" in line


def test_predict_without_a_record_takes_preprocessed_arrays(tmp_path):
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("name: plain\ninputs:\n  x: {shape: [4]}\n  y: {shape: [], dtype: int64}\n"
                         "layers: {input: x, sizes: [4, 5, 3], labels: y}\n", encoding="utf-8")
    model = Model.from_spec(load_spec(spec_file), seed=1)
    save_model(tmp_path / "plain.gnm", model)  # from Python: no preprocessing record
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = cli("predict", tmp_path / "plain.gnm", tmp_path / "x.npy", "--json")
    assert result.returncode == 0, result.stderr
    assert "records no preprocessing" in result.stderr and "already preprocessed" in result.stderr
    classes, _ = forward_classes(model, x)
    assert [r["class"] for r in json.loads(result.stdout)["predictions"]] == classes.tolist()
    write_png(tmp_path / "i.png", np.zeros((2, 2), np.uint8))
    line = error_line(cli("predict", tmp_path / "plain.gnm", tmp_path / "i.png"))
    assert "is an image, but the model file records no preprocessing" in line


def test_predict_bad_inputs_are_one_error_naming_the_input(synth, tmp_path):
    os.mkfifo(tmp_path / "fifo.npy")
    (tmp_path / "folder.npy").mkdir()
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 4)
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5), np.float32))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases = {"fifo.npy": "is a FIFO", "folder.npy": "is a directory", "empty.npy": "is empty",
             "junk.bin": "is not a .npy or .npz array nor an image", "absent.npy": "no such file",
             "wrong.npy": "shape [3, 5]", "objects.npy": "not a readable .npy file"}
    for name, fragment in cases.items():
        line = error_line(cli("predict", synth.model, tmp_path / name, timeout=60))
        assert line.startswith(f"graphnet: error: {tmp_path / name}"), line
        assert fragment in line, line


# ----------------------------------------------------------------------------------------------
# plot
# ----------------------------------------------------------------------------------------------


def test_plot_two_models_and_one_without_validation(synth, tmp_path):
    pytest.importorskip("matplotlib")
    other = train_file(tmp_path / "b", SYNTH_SPEC, synth_arrays(seed=1), "synth", validation=0)
    result = cli("plot", synth.model, other.model, "-o", tmp_path / "curves.png")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"wrote {tmp_path / 'curves.png'}"
    # both files are named synth.gnm: labelled by their folders
    assert lines[:-1] == ["note: validation loss, validation error of 'b/synth': not recorded (trained "
                          "without a validation split)"]
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    line = error_line(cli("plot", synth.model, "-o", tmp_path / "curves.png"))
    assert "the figure already exists" in line and "--overwrite" in line


def test_run_labels_are_stems_made_unique():
    from graphnet.cli.show import run_labels

    assert run_labels([Path("runs/a.gnm"), Path("runs/b.gnm")]) == ["a", "b"]
    assert run_labels([Path("x/m.gnm"), Path("y/m.gnm"), Path("z.gnm")]) == ["x/m", "y/m", "z"]
    assert run_labels([Path("p/x/m.gnm"), Path("q/x/m.gnm")]) == ["p/x/m", "q/x/m"]
    assert run_labels([Path("m.gnm"), Path("m.gnm")]) == ["m", "m (2)"]


# ----------------------------------------------------------------------------------------------
# eval, and everything from the file alone once the data has moved
# ----------------------------------------------------------------------------------------------


def test_eval_scores_the_test_split_with_the_recorded_statistics(blocks, tmp_path):
    """The test split alone: a copy of the .npz without the training arrays still scores
    exactly what training recorded."""
    only_test = tmp_path / "only-test.npz"
    np.savez(only_test, x_test=blocks.arrays["x_test"], y_test=blocks.arrays["y_test"])
    result = invoke("eval", blocks.model, "--data", only_test)
    error = load_model(blocks.model).metrics["test_error"]
    assert f"error {error * 100:.2f}%" in result.stdout and "recorded when trained" in result.stdout
    assert "fitted again" not in result.stdout
    with pytest.raises(GraphnetError, match="x_train"):  # the validation split needs them
        invoke("eval", blocks.model, "--data", only_test, "--split", "val")


def test_everything_works_from_the_file_alone_after_the_data_moved(tmp_path):
    pytest.importorskip("onnx")
    work = tmp_path / "work"
    work.mkdir()
    np.savez(work / "synth.npz", **synth_arrays())
    (work / "synth.yaml").write_text(SYNTH_SPEC.format(path="synth.npz", validation=60, keep_best="{metric: val_error}"), encoding="utf-8")
    run = cli("run", work / "synth.yaml", "--out", work / "m.gnm")
    assert run.returncode == 0, run.stderr
    recorded = float(run.stdout.split("test (")[1].split("error ")[1].split("%")[0])
    elsewhere = tmp_path / "elsewhere"
    shutil.move(work / "synth.npz", tmp_path / "moved.npz")
    shutil.move(work, elsewhere)  # the spec's folder is gone too
    model = elsewhere / "m.gnm"

    line = error_line(cli("eval", model))
    assert line.startswith(f"graphnet: error: {model}: train.data.path: cannot read ")
    assert "pass --data DIR|FILE.npz (the model was trained on npz file synth.npz; 240 train" in line
    evaluated = cli("eval", model, "--data", tmp_path / "moved.npz")
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"error {recorded:.2f}%" in evaluated.stdout
    assert cli("eval", model, "--data-dir", tmp_path / "moved.npz", "--split", "val").returncode == 0

    inspected = json.loads(cli("inspect", model, "--json").stdout)
    assert inspected["data"].startswith("npz file synth.npz")
    for target in ("m.json", "p.npz", "m.onnx", "spec.yaml"):
        converted = cli("convert", model, tmp_path / target)
        assert converted.returncode == 0, converted.stderr
    assert cli("convert", tmp_path / "m.json", tmp_path / "back.gnm").returncode == 0
    assert (tmp_path / "back.gnm").read_bytes() == model.read_bytes()
    predicted = cli("predict", model, tmp_path / "moved.npz", "--json")
    assert predicted.returncode == 0, predicted.stderr
    test_records = [r for r in json.loads(predicted.stdout)["predictions"] if r["array"] == "x_test"]
    wrong = np.mean([r["class"] != y for r, y in zip(test_records, synth_arrays()["y_test"])])
    assert round(wrong * 100, 2) == recorded  # predict agrees with the recorded test error
    plotted = cli("plot", model, "-o", tmp_path / "curves.png")
    assert plotted.returncode == 0, plotted.stderr
