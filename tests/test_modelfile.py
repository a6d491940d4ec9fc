"""Model files: round trips, determinism, the layout on disk, checksums, atomic writes (SIGKILL
included), the golden files of every format version, op versions and plugins, random states.

Hostile files (every way a file can be broken or forged) are in test_modelfile_hostile.py; the
independent reader written from docs/model-format.md is in test_model_format_doc.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest

from graphnet import Model, load_spec
from graphnet.errors import ModelFileError
from graphnet.graph import build_graph
from graphnet.modelfile import (
    ALIGN,
    BIT_GENERATORS,
    MAGIC,
    MAX_FILE_BYTES,
    generator_from_plain,
    header_dict,
    load_model,
    read_contents,
    read_header,
    rng_state_from_plain,
    rng_state_to_plain,
    save_model,
    write_model_file,
)
from graphnet.registry import Registry, default_registry
from graphnet.spec import validate_spec_data

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
GOLDEN = Path(__file__).resolve().parent / "golden"
PRELUDE = struct.Struct("<8sIIQ32s")


@pytest.fixture
def model():
    return Model.from_spec(load_spec(SPECS / "skip-mlp.yaml"), seed=7)


LOG = {"epochs": [{"epoch": 1, "lr": 0.01, "train_loss": 0.5, "val_loss": None, "seconds": 1.5}],
       "best_epoch": 1, "stopped": None, "data": "mnist (IDX) from /somewhere", "seconds": 2.0}
METRICS = {"test_loss": 0.25, "test_error": 0.0625, "test_accuracy": 0.9375}
PREPROCESS = {
    "input": "image", "raw_shape": [28, 28], "raw_dtype": "uint8", "scale": 255.0,
    "mean": 0.1307, "std": 0.3081, "flatten": True,
    "labels": {"input": "label", "one_hot": False, "classes": 10, "names": None},
}


def everything(model: Model) -> dict:
    """save_model's keyword arguments, every one of them set."""
    rng = np.random.default_rng(5)
    return dict(
        preprocess=PREPROCESS, classes={"count": 10, "names": [str(i) for i in range(10)]},
        data="mnist: 55,000 train / 5,000 val / 10,000 test",
        resume={"epoch": 3, "step": 1290, "rng": rng_state_to_plain(rng), "optimizer": {"type": "adam"}},
        optimizer={f"m/{name}": value * 0.5 for name, value in model.params.items()},
        state={"counts": np.arange(6, dtype=np.int64).reshape(2, 3), "mask": np.ones(5, np.uint8)},
    )


def split(path: Path) -> tuple[dict, bytes, int]:
    """(header, tensor section bytes, data_start) of a format-2 file, decoded by hand."""
    data = path.read_bytes()
    _, _, _, length, _ = PRELUDE.unpack_from(data)
    start = -(-(PRELUDE.size + length) // ALIGN) * ALIGN
    return msgpack.unpackb(data[PRELUDE.size : PRELUDE.size + length]), data[start:], start


# ----------------------------------------------------------------------------------------------
# Round trips and determinism
# ----------------------------------------------------------------------------------------------


def test_round_trip_is_exact(model, tmp_path):
    path = tmp_path / "m.gnm"
    extra = everything(model)
    save_model(path, model, LOG, METRICS, **extra)
    loaded = load_model(path)
    assert loaded.model.spec == model.spec
    assert loaded.model.param_names == model.param_names
    assert loaded.model.dtype == model.dtype
    assert np.array_equal(loaded.model.flat_params, model.flat_params)
    assert (loaded.log, loaded.metrics) == (LOG, METRICS)
    assert loaded.preprocess == PREPROCESS
    assert loaded.classes == extra["classes"] and loaded.data == extra["data"]
    assert loaded.resume == extra["resume"]
    assert list(loaded.optimizer) == list(extra["optimizer"])
    for name, value in extra["optimizer"].items():
        assert np.array_equal(loaded.optimizer[name], value) and loaded.optimizer[name].dtype == np.float32
    for name, value in extra["state"].items():
        assert np.array_equal(loaded.state[name], value) and loaded.state[name].dtype == value.dtype
    x = np.random.default_rng(0).standard_normal((4, 784)).astype(np.float32)
    a = model.forward({"image": x}, ["logits"])["logits"]
    b = loaded.model.forward({"image": x}, ["logits"])["logits"]
    assert np.array_equal(a, b)


def test_float64_models_stay_float64(tmp_path):
    model = Model.from_spec(load_spec(SPECS / "skip-mlp.yaml"), seed=1, dtype="float64")
    save_model(tmp_path / "m.gnm", model)
    loaded = load_model(tmp_path / "m.gnm").model
    assert loaded.dtype == np.float64 and np.array_equal(loaded.flat_params, model.flat_params)


def test_same_model_same_bytes_and_save_load_save_is_identical(model, tmp_path):
    extra = everything(model)
    save_model(tmp_path / "a.gnm", model, LOG, METRICS, **extra)
    save_model(tmp_path / "b.gnm", model, LOG, METRICS, **extra)
    first = (tmp_path / "a.gnm").read_bytes()
    assert first == (tmp_path / "b.gnm").read_bytes()
    loaded = load_model(tmp_path / "a.gnm")
    save_model(tmp_path / "c.gnm", loaded.model, loaded.log, loaded.metrics, preprocess=loaded.preprocess,
               classes=loaded.classes, data=loaded.data, resume=loaded.resume,
               optimizer=loaded.optimizer, state=loaded.state)
    assert (tmp_path / "c.gnm").read_bytes() == first


def test_positional_log_and_metrics_still_work(model, tmp_path):
    # cli/train.py and the README call save_model(path, model, log, metrics)
    save_model(tmp_path / "m.gnm", model, {"epochs": [{"epoch": 1}]}, {"test_error": 0.5})
    loaded = load_model(tmp_path / "m.gnm")
    assert loaded.log == {"epochs": [{"epoch": 1}]} and loaded.metrics == {"test_error": 0.5}
    assert loaded.data is None  # nothing said where the data came from


def test_data_defaults_to_the_logs_description(model, tmp_path):
    save_model(tmp_path / "m.gnm", model, LOG)
    assert read_header(tmp_path / "m.gnm").data == LOG["data"]


def test_header_as_json_and_back_gives_the_same_bytes(model, tmp_path):
    """What `graphnet convert` model -> .json -> model does: header_dict and the tensors, through
    JSON text, back into write_model_file: byte-identical."""
    path = tmp_path / "m.gnm"
    save_model(path, model, LOG, METRICS, **everything(model))
    text = json.dumps(header_dict(path))
    contents = read_contents(path)
    write_model_file(tmp_path / "back.gnm", json.loads(text), contents.tensors)
    assert (tmp_path / "back.gnm").read_bytes() == path.read_bytes()


# ----------------------------------------------------------------------------------------------
# The layout on disk (checked with struct, msgpack and numpy only)
# ----------------------------------------------------------------------------------------------


def test_file_layout_is_as_documented(model, tmp_path):
    path = tmp_path / "m.gnm"
    save_model(path, model, LOG, METRICS, **everything(model))
    data = path.read_bytes()
    magic, version, reserved, length, digest = PRELUDE.unpack_from(data)
    assert (magic, version, reserved) == (MAGIC, 2, 0) == (b"\x89GNM\r\n\x1a\n", 2, 0)
    assert hashlib.sha256(data[56 : 56 + length]).digest() == digest
    header, section, start = split(path)
    assert start % 64 == 0 and set(data[56 + length : start]) <= {0}
    assert list(header) == ["format", "graphnet", "spec", "ops", "dtype", "tensors", "preprocess",
                            "classes", "data", "log", "metrics", "resume"]
    assert header["ops"]["linear"] == {"version": 1, "distribution": "graphnet",
                                       "distribution_version": header["graphnet"]}
    end = 0
    for group, arrays in (("params", model.params), ("state", everything(model)["state"])):
        entries = header["tensors"][group]
        assert [e["name"] for e in entries] == list(arrays)
        for entry in entries:
            assert entry["offset"] == -(-end // 64) * 64  # the next multiple of 64: no gaps, no overlap
            raw = section[entry["offset"] : entry["offset"] + entry["nbytes"]]
            assert entry["sha256"] == [hashlib.sha256(raw).hexdigest()]  # one 16 MiB block
            value = np.frombuffer(raw, entry["dtype"]).reshape(entry["shape"])
            assert np.array_equal(value, arrays[entry["name"]])
            end = entry["offset"] + entry["nbytes"]
        if group == "params":
            end_of_params = end
    assert header["tensors"]["state"][0]["dtype"] == "<i8" and header["tensors"]["state"][1]["dtype"] == "<u1"
    assert header["tensors"]["optimizer"][0]["offset"] > end_of_params
    last = header["tensors"]["optimizer"][-1]
    assert len(section) == last["offset"] + last["nbytes"]  # the file ends at the last tensor


def test_a_tensor_has_one_digest_per_16_mib_block_and_corruption_names_the_block(tmp_path):
    spec = validate_spec_data({
        "format": 1, "name": "wide", "inputs": {"x": {"shape": [3000]}},
        "nodes": {"fc": {"op": "linear", "inputs": {"x": "x"}, "attrs": {"units": 3000}}}, "outputs": ["fc"],
    })
    model = Model(build_graph(spec), initialize=False)  # fc.w: 36,000,000 bytes, 3 blocks
    model.flat_params[:] = np.arange(model.size) % 1000 / 7
    path = tmp_path / "wide.gnm"
    save_model(path, model)
    header, section, start = split(path)
    entry = header["tensors"]["params"][0]
    raw = section[: entry["nbytes"]]
    block = 16 << 20
    assert entry["sha256"] == [hashlib.sha256(raw[i : i + block]).hexdigest() for i in (0, block, 2 * block)]
    assert np.array_equal(load_model(path).model.flat_params, model.flat_params)
    data = bytearray(path.read_bytes())
    data[start + block + 123] ^= 0x04  # a byte of the second block
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=f"tensor 'fc.w' fails its checksum: bytes {start + block:,} to "
                                             f"{start + 2 * block:,} \\(block 1 of 3\\) are corrupted"):
        load_model(path)


def test_header_is_read_without_the_tensors(model, tmp_path):
    path = tmp_path / "m.gnm"
    save_model(path, model)
    header, _, start = split(path)
    entry = header["tensors"]["params"][1]
    data = bytearray(path.read_bytes())
    data[start + entry["offset"] + 5] ^= 0xFF  # corrupt one tensor byte
    path.write_bytes(bytes(data))
    assert read_header(path).param_count() == model.size  # never looked at the tensors
    with pytest.raises(ModelFileError, match=f"tensor '{entry['name']}' fails its checksum") as caught:
        load_model(path)
    assert caught.value.path == "tensors.params.1"


def test_reading_the_header_of_a_large_model_is_fast(tmp_path):
    spec = validate_spec_data({
        "format": 1, "name": "wide", "inputs": {"x": {"shape": [4096]}},
        "nodes": {"fc": {"op": "linear", "inputs": {"x": "x"}, "attrs": {"units": 4096}}}, "outputs": ["fc"],
    })
    model = Model(build_graph(spec), initialize=False)  # 16.8M parameters, 67 MB
    save_model(tmp_path / "wide.gnm", model)
    started = time.perf_counter()
    for _ in range(10):
        read_header(tmp_path / "wide.gnm")
    assert (time.perf_counter() - started) / 10 < 0.05  # hashing the tensors alone takes ~0.05 s


# ----------------------------------------------------------------------------------------------
# Writing: atomic, and never a file the reader would refuse
# ----------------------------------------------------------------------------------------------


def test_atomic_write_leaves_no_temporary_files(model, tmp_path):
    save_model(tmp_path / "m.gnm", model)
    save_model(tmp_path / "m.gnm", model)
    assert [p.name for p in tmp_path.iterdir()] == ["m.gnm"]


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(optimizer={"m": np.zeros(3, np.int16)}), "dtype int16 is not one of"),
        (dict(optimizer={"m": np.array([1.0, np.nan], np.float32)}), "tensor 'm' holds 1 non-finite"),
        (dict(state={"s": np.zeros((0, 3))}), "it is empty"),
        (dict(resume={"seed": 2**70}), "outside the signed 64-bit range"),
        (dict(resume={"when": {1, 2}}), "resume.when: cannot save: a set cannot be stored"),
        (dict(preprocess={**PREPROCESS, "mean": None}), "mean and std come together"),
        (dict(classes={"count": 3, "names": ["a"]}), "names has 1 entries for 3 classes"),
    ],
    ids=["dtype", "nan", "empty", "big-int", "set", "preprocess", "classes"],
)
def test_saving_refuses_what_a_reader_would_refuse_and_keeps_the_old_file(model, tmp_path, bad, message):
    path = tmp_path / "m.gnm"
    save_model(path, model)
    before = path.read_bytes()
    with pytest.raises(ModelFileError, match=message):
        save_model(path, model, **bad)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.gnm"]


def test_nan_parameters_are_refused_when_saving(model, tmp_path):
    model.params["block.w"][3, 4] = np.inf
    with pytest.raises(ModelFileError, match=r"tensor 'block.w' holds 1 non-finite values \(the first, inf, at index \[3, 4\]\)"):
        save_model(tmp_path / "m.gnm", model)


def test_write_model_file_checks_shapes_against_the_spec(model, tmp_path):
    path = tmp_path / "m.gnm"
    save_model(path, model)
    contents = read_contents(path)
    contents.tensors["params"]["stem.w"] = np.zeros((784, 255), np.float32)
    with pytest.raises(ModelFileError, match=r"'stem.w' is stored with shape \[784, 255\], but the embedded spec makes it \[784, 256\]"):
        write_model_file(tmp_path / "other.gnm", header_dict(path), contents.tensors)
    assert not (tmp_path / "other.gnm").exists()


SAVER = textwrap.dedent("""
    import os, sys
    import numpy as np
    from graphnet import Model
    from graphnet.graph import build_graph
    from graphnet.modelfile import save_model
    from graphnet.spec import validate_spec_data

    spec = validate_spec_data({"format": 1, "name": "big", "inputs": {"x": {"shape": [2048]}},
        "nodes": {"fc": {"op": "linear", "inputs": {"x": "x"}, "attrs": {"units": 2048}}}, "outputs": ["fc"]})
    model = Model(build_graph(spec), initialize=False)
    for line in sys.stdin:  # one round per line: a child process saves in a loop until killed
        first = int(line) * 10_000
        pid = os.fork()
        if pid == 0:
            for i in range(first, first + 10_000):
                model.flat_params[:] = i  # every save a different, recognisable file
                save_model(sys.argv[1], model, metrics={"i": i})
                if i == first:
                    print("saved", flush=True)
            os._exit(0)
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
""")


def test_a_save_killed_at_any_moment_leaves_the_old_file_or_the_new_one(tmp_path):
    """SIGKILL a process saving a 16 MB model in a loop at random moments: the file on disk is
    always a complete one (loads, checksums pass, all parameters equal its recorded i). The
    savers are forked from one server process, so that each round does not pay for imports."""
    path = tmp_path / "m.gnm"
    rng = random.Random(0)
    seen = set()
    server = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for round_ in range(12):
            server.stdin.write(f"{round_}\n")
            server.stdin.flush()
            lines = {server.stdout.readline().strip(), server.stdout.readline().strip()}
            assert "saved" in lines  # one complete save of this round before the kill
            pid = int((lines - {"saved"}).pop())
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(pid, signal.SIGKILL)
            assert server.stdout.readline().strip() == "reaped"  # dead: it can write nothing more
            loaded = load_model(path)
            i = loaded.metrics["i"]
            assert i // 10_000 == round_ and np.all(loaded.model.flat_params == i)
            seen.add(i % 10_000)
    finally:
        server.kill()
        server.communicate()
    assert len(seen) > 1  # the kills did land at different moments
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "m.gnm"]
    assert all(name.startswith(".m.gnm.") and name.endswith(".tmp") for name in leftovers)


# ----------------------------------------------------------------------------------------------
# Golden files: every format version loads, forever, to these values
# ----------------------------------------------------------------------------------------------

GOLDEN_WEIGHTS = {  # k/16 - 1 for k = 0, 1, 2, ... in parameter order
    "fc1.w": np.arange(0, 12).reshape(4, 3) / 16 - 1,
    "fc1.b": np.arange(12, 15) / 16 - 1,
    "fc2.w": np.arange(15, 21).reshape(3, 2) / 16 - 1,
    "fc2.b": np.arange(21, 23) / 16 - 1,
}
GOLDEN_LOG = {
    "epochs": [
        {"epoch": 1, "lr": 0.1, "train_loss": 0.75, "val_loss": 0.625, "val_error": 0.5,
         "val_accuracy": 0.5, "seconds": 0.25, "samples_per_second": 32.0},
        {"epoch": 2, "lr": 0.1, "train_loss": 0.5, "val_loss": 0.375, "val_error": 0.0,
         "val_accuracy": 1.0, "seconds": 0.25, "samples_per_second": 32.0},
    ],
    "best_epoch": 2, "stopped": None, "data": "npz data/tiny.npz", "seconds": 0.5,
    "spec_dir": "/home/someone/project",
}
GOLDEN_METRICS = {"test_loss": 0.4375, "test_error": 0.25, "test_accuracy": 0.75}


def check_golden_model(loaded, dtype: str) -> None:
    model = loaded.model
    assert model.spec.name == "golden-tiny" and model.dtype == np.dtype(dtype)
    assert model.param_names == list(GOLDEN_WEIGHTS)
    for name, value in GOLDEN_WEIGHTS.items():
        assert np.array_equal(model.params[name], value), name
    # the forward pass, against numpy by hand
    x = np.array([[-1.0, 0.5, -2.0, 0.25], [3.0, -1.0, 0.0, -4.0]], dtype)
    hidden = np.maximum(x @ GOLDEN_WEIGHTS["fc1.w"] + GOLDEN_WEIGHTS["fc1.b"], 0)
    logits = hidden @ GOLDEN_WEIGHTS["fc2.w"] + GOLDEN_WEIGHTS["fc2.b"]
    got = model.forward({"x": x}, ["fc2"])["fc2"]
    np.testing.assert_allclose(got, logits, rtol=1e-6 if dtype == "float32" else 1e-12)
    assert hidden.max() > 0  # the relu lets something through: the check is not vacuous


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_golden_format1_files_load_through_the_migration(dtype, tmp_path):
    path = GOLDEN / f"v1-tiny-{dtype}.gnm"
    loaded = load_model(path)
    check_golden_model(loaded, dtype)
    assert loaded.header.source_format == 1
    assert (loaded.log, loaded.metrics) == (GOLDEN_LOG, GOLDEN_METRICS)
    assert loaded.data == "npz data/tiny.npz"  # the log's description, now the header's
    assert (loaded.preprocess, loaded.classes, loaded.resume) == (None, None, None)
    assert loaded.header.ops["linear"].distribution is None  # format 1 did not record it
    # migrated, then saved as format 2: the same model
    save_model(tmp_path / "v2.gnm", loaded.model, loaded.log, loaded.metrics)
    again = load_model(tmp_path / "v2.gnm")
    assert again.header.source_format == 2
    check_golden_model(again, dtype)


def test_golden_format2_files_load_to_known_values():
    loaded = load_model(GOLDEN / "v2-tiny-float32.gnm")
    check_golden_model(loaded, "float32")
    assert (loaded.log, loaded.metrics) == (GOLDEN_LOG, GOLDEN_METRICS)
    assert loaded.preprocess == {
        "input": "x", "raw_shape": [4], "raw_dtype": "uint8", "scale": 255.0, "mean": 0.5, "std": 0.25,
        "flatten": False, "labels": {"input": "label", "one_hot": False, "classes": 2, "names": ["no", "yes"]},
    }
    assert loaded.classes == {"count": 2, "names": ["no", "yes"]}
    assert loaded.data == "tiny.npz (8 examples: 4 train, 2 validation, 2 test)"
    assert loaded.header.graphnet == "0.1.0"
    assert {name: (op.version, op.distribution) for name, op in loaded.header.ops.items()} == {
        "linear": (1, "graphnet"), "relu": (1, "graphnet"), "softmax_cross_entropy": (1, "graphnet")}
    assert list(loaded.optimizer) == [f"velocity/{name}" for name in GOLDEN_WEIGHTS]
    for name, value in GOLDEN_WEIGHTS.items():
        assert np.array_equal(loaded.optimizer[f"velocity/{name}"], value * 0.5)
    resume = loaded.resume
    assert (resume["epoch"], resume["step"], resume["optimizer"]) == (2, 4, {"type": "sgd", "lr": 0.1, "momentum": 0.0})
    expected = np.random.default_rng(20261130)
    expected.standard_normal(3)
    restored = generator_from_plain(resume["rng"]["shuffle"])
    assert np.array_equal(restored.standard_normal(5), expected.standard_normal(5))

    minimal = load_model(GOLDEN / "v2-tiny-float64.gnm")
    check_golden_model(minimal, "float64")
    assert (minimal.log, minimal.metrics, minimal.preprocess, minimal.resume, minimal.optimizer) == ({}, {}, None, None, {})


@pytest.mark.parametrize("name", ["v2-tiny-float32.gnm", "v2-tiny-float64.gnm"])
def test_golden_format2_files_are_rewritten_byte_for_byte(name, tmp_path):
    """The writer is canonical: header fields and tensors of a golden file give its exact bytes."""
    contents = read_contents(GOLDEN / name)
    write_model_file(tmp_path / name, contents.header.to_dict(), contents.tensors)
    assert (tmp_path / name).read_bytes() == (GOLDEN / name).read_bytes()


def test_golden_files_are_the_committed_ones():
    """Golden files are never regenerated: a changed byte here is a broken promise."""
    digests = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(GOLDEN.glob("*.gnm"))}
    assert digests == {
        "v1-tiny-float32.gnm": "ebdc24f2fed39ad9322685211afdfc5fea5eb2d4691b8416f41094723cc489d2",
        "v1-tiny-float64.gnm": "b28baa4f19f4d9c4ede8f2f4cfb5f2377e6a35ed50f06d62f8fd2f27019d9f63",
        "v2-tiny-float32.gnm": "30a2964458f2198a528ef2ef9dc0f94816eda8e30f2e7f71b116b12b8b660da0",
        "v2-tiny-float64.gnm": "0390fe71930112f50bd881522b4e04d9d3438636e0367a3d9f60f7262ffadb22",
    }


# ----------------------------------------------------------------------------------------------
# Ops: plugins and versions
# ----------------------------------------------------------------------------------------------


def resign(path: Path, change) -> None:
    """Rewrite a format-2 file with ``change(header)`` applied and a valid header checksum."""
    header, section, _ = split(path)
    change(header)
    body = msgpack.packb(header, use_bin_type=True)
    start = -(-(PRELUDE.size + len(body)) // ALIGN) * ALIGN
    prelude = PRELUDE.pack(MAGIC, 2, 0, len(body), hashlib.sha256(body).digest())
    path.write_bytes(prelude + body + bytes(start - PRELUDE.size - len(body)) + section)


SWISH_SPEC = {
    "format": 1, "name": "swishy", "inputs": {"x": {"shape": [3]}},
    "nodes": {"fc": {"op": "linear", "inputs": {"x": "x"}, "attrs": {"units": 2}},
              "act": {"op": "swish", "inputs": {"x": "fc"}}},
    "outputs": ["act"],
}


def test_a_missing_plugin_is_named_with_what_to_install(tmp_path):
    full = default_registry()
    if "swish" not in full.names():
        pytest.skip("the graphnet-swish example plugin is not installed (pip install -e plugins/graphnet-swish)")
    path = tmp_path / "m.gnm"
    save_model(path, Model(build_graph(validate_spec_data(SWISH_SPEC))))
    recorded = read_header(path).ops["swish"]
    assert recorded.distribution == "graphnet-swish"
    without = Registry({name: [full.source(name)] for name in full.names() if name != "swish"})
    with pytest.raises(ModelFileError) as caught:
        load_model(path, registry=without)
    text = str(caught.value)
    assert text.startswith(f"{path}: ops.swish: op 'swish' is not installed; the model was saved with it "
                           f"from graphnet-swish {recorded.distribution_version}")
    assert f"pip install 'graphnet-swish=={recorded.distribution_version}'" in text


def test_an_op_version_the_installation_does_not_provide_is_named(model, tmp_path):
    path = tmp_path / "m.gnm"
    save_model(path, model)
    resign(path, lambda h: h["ops"]["linear"].update(version=2, distribution_version="9.9"))
    with pytest.raises(ModelFileError) as caught:
        load_model(path)
    text = str(caught.value)
    assert "the model was saved with op 'linear' version 2 (from graphnet 9.9); the installed graphnet" in text
    assert "provides version 1" in text and "pip install 'graphnet==9.9'" in text


# ----------------------------------------------------------------------------------------------
# Random generator states (resume)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BIT_GENERATORS))
def test_random_states_round_trip_through_a_file(name, model, tmp_path):
    generator = np.random.Generator(BIT_GENERATORS[name](12345))
    generator.standard_normal(7)
    plain = rng_state_to_plain(generator)
    save_model(tmp_path / "m.gnm", model, resume={"rng": plain})
    restored = generator_from_plain(load_model(tmp_path / "m.gnm").resume["rng"])
    assert np.array_equal(restored.standard_normal(100), generator.standard_normal(100))
    assert np.array_equal(restored.integers(0, 2**63, 10), generator.integers(0, 2**63, 10))


def test_pcg64_state_holds_128_bit_integers_as_hex_strings():
    plain = rng_state_to_plain(np.random.default_rng(0))
    state = np.random.default_rng(0).bit_generator.state["state"]
    assert plain["state"] == {"state": hex(state["state"]), "inc": hex(state["inc"])}
    assert state["state"] >= 2**64  # why: msgpack integers stop at 64 bits


@pytest.mark.parametrize(
    "plain, message",
    [
        ({"bit_generator": "os.system", "state": {}}, "bit generator 'os.system' is not one graphnet restores"),
        ({"bit_generator": "PCG64", "state": {"state": "0x1"}}, "not a valid PCG64 state"),
        ("PCG64", "bit generator None"),
    ],
    ids=["unknown-class", "incomplete", "not-a-map"],
)
def test_bad_random_states_are_refused(plain, message):
    with pytest.raises(ModelFileError, match=message):
        rng_state_from_plain(plain)


# ----------------------------------------------------------------------------------------------
# Not a model file at all
# ----------------------------------------------------------------------------------------------


def test_files_of_other_kinds_are_named(tmp_path):
    cases = {
        "spec.yaml": ((SPECS / "skip-mlp.yaml").read_bytes(), "this is a spec, not a model file; did you mean `graphnet run` or `graphnet validate`?"),
        "spec.json": (json.dumps(load_spec(SPECS / "skip-mlp.yaml").to_dict()).encode(), "this is a spec, not a model file"),
        "latin1.yaml": ('description: "café"\nname: x\n'.encode("latin-1"), r"this is a spec.*not UTF-8 text: byte 0xe9 at line 1"),
        "picture.png": (b"\x89PNG\r\n\x1a\n" + bytes(50), "this is a PNG image, not a graphnet model file"),
        "arrays.npz": (b"PK\x03\x04" + bytes(50), r"a zip archive \(an .npz\?\)"),
        "model.pkl": (b"\x80\x04\x95" + bytes(20), "a Python pickle"),
        "notes.txt": (b"hello\n", "this is a text file, not a graphnet model file"),
        "junk.bin": (np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "not a graphnet model file"),
        "empty.gnm": (b"", r"the file is empty \(0 bytes\)"),
        "short.gnm": (MAGIC[:5], "truncated"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        for reader in (load_model, read_header):
            with pytest.raises(ModelFileError, match=message) as caught:
                reader(path)
            assert str(caught.value).startswith(f"{path}: "), name


def test_a_directory_a_fifo_and_a_missing_file(tmp_path):
    fifo = tmp_path / "fifo.gnm"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match=f"^{fifo}: is a FIFO, not a model file"):
        load_model(fifo)  # returns at once: a FIFO is never opened
    with pytest.raises(ModelFileError, match=f"^{tmp_path}: is a directory, not a model file"):
        load_model(tmp_path)
    with pytest.raises(ModelFileError, match="cannot read the model file: No such file or directory"):
        load_model(tmp_path / "nope.gnm")


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.gnm"
    with open(path, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: takes no disk space
    with pytest.raises(ModelFileError, match=f"is {MAX_FILE_BYTES + 1:,} bytes, more than the {MAX_FILE_BYTES:,}"):
        read_header(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission (tests/test_hostile_files.py drops to another user)")
def test_an_unreadable_file(model, tmp_path):
    path = tmp_path / "m.gnm"
    save_model(path, model)
    path.chmod(0)
    with pytest.raises(ModelFileError, match="Permission denied"):
        load_model(path)
