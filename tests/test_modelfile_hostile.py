"""Model files from strangers: every broken or forged file is ONE ModelFileError that starts with
the file's name and says what is wrong; never another exception, a hang, or a large allocation.

The corpus is generated here, deterministically, from small valid files: truncations at every
section boundary, bit flips in every section, wrong magic, huge declared lengths, deep nesting,
shape/byte mismatches, duplicates, bad checksums, and headers re-signed (valid checksum) with
wrong types or values: everything the fuzz of issue 7 found, in format 2 and in format 1. Then a
hypothesis fuzz mutates valid files (bytes, and re-signed header structures); bench/modelfile_fuzz.py
runs the same mutations on 10,000+ cases in isolated processes.
"""

from __future__ import annotations

import copy
import hashlib
import struct
import time
import tracemalloc
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphnet import Model, load_spec
from graphnet.errors import ModelFileError
from graphnet.modelfile import MAGIC, load_model, read_header, rng_state_to_plain, save_model

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
PRELUDE = struct.Struct("<8sIIQ32s")


# ----------------------------------------------------------------------------------------------
# Files to break, and how to forge them
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    """Valid files: a small model with every header field and tensor group, the MNIST MLP, and
    the golden files (both formats)."""
    folder = tmp_path_factory.mktemp("valid")
    model = Model.from_spec(load_spec(ROOT / "specs" / "skip-mlp.yaml"), seed=3)
    save_model(folder / "full.gnm", model, {"epochs": [{"epoch": 1, "lr": 0.1}], "best_epoch": 1},
               {"test_error": 0.25},
               preprocess={"input": "image", "raw_shape": [784], "raw_dtype": "uint8", "scale": 255.0,
                           "mean": None, "std": None, "flatten": False,
                           "labels": {"input": "label", "one_hot": False, "classes": 10, "names": None}},
               classes={"count": 10, "names": None}, data="mnist", resume={"rng": rng_state_to_plain(np.random.default_rng(1))},
               optimizer={"m/stem.b": np.ones(256, np.float32)}, state={"count": np.arange(3)})
    found = {"full": (folder / "full.gnm").read_bytes()}
    softmax = Model.from_spec(load_spec(ROOT / "specs" / "seed-softmax.yaml"))  # 784-200-100-10
    save_model(folder / "softmax.gnm", softmax)
    found["softmax"] = (folder / "softmax.gnm").read_bytes()
    for path in sorted(GOLDEN.glob("*.gnm")):
        found[path.stem] = path.read_bytes()
    return found


def parts(data: bytes) -> tuple[dict, bytes, dict]:
    """(header, tensor section, offsets of the sections) of a format-2 file."""
    _, _, _, length, _ = PRELUDE.unpack_from(data)
    start = -(-(56 + length) // 64) * 64
    header = msgpack.unpackb(data[56 : 56 + length], strict_map_key=False)
    return header, data[start:], {"header": 56, "padding": 56 + length, "tensors": start}


def sign(body: bytes, section: bytes, *, version: int = 2) -> bytes:
    """A file of this header body and tensor section, with a valid header checksum."""
    start = -(-(56 + len(body)) // 64) * 64
    return PRELUDE.pack(MAGIC, version, 0, len(body), hashlib.sha256(body).digest()) + body + bytes(
        start - 56 - len(body)) + section


def resigned(data: bytes, change) -> bytes:
    """``data`` with ``change(header)`` applied (it may return a replacement) and re-signed."""
    header, section, _ = parts(data)
    header = change(header) or header
    return sign(msgpack.packb(header, use_bin_type=True), section)


def with_tensor(data: bytes, name: str, values: np.ndarray) -> bytes:
    """``data`` with parameter ``name``'s bytes replaced and its checksum re-signed."""
    header, section, _ = parts(data)
    entry = next(e for e in header["tensors"]["params"] if e["name"] == name)
    raw = np.ascontiguousarray(values, entry["dtype"]).tobytes()
    assert len(raw) == entry["nbytes"]
    section = section[: entry["offset"]] + raw + section[entry["offset"] + len(raw) :]
    entry["sha256"] = [hashlib.sha256(raw[i : i + (16 << 20)]).hexdigest() for i in range(0, len(raw), 16 << 20)]
    return sign(msgpack.packb(header, use_bin_type=True), section)


def v1_parts(data: bytes) -> dict:
    outer = msgpack.unpackb(data)
    return msgpack.unpackb(outer["payload"])


def v1_file(body, **outer_changes) -> bytes:
    """A format-1 file holding ``body`` as its payload, with a valid checksum."""
    payload = msgpack.packb(body, use_bin_type=True)
    outer = {"magic": "graphnet-model", "format": 1, "sha256": hashlib.sha256(payload).hexdigest(),
             "payload": payload}
    outer.update(outer_changes)
    return msgpack.packb(outer, use_bin_type=True)


def refused(tmp_path: Path, data: bytes, fragment: str, name: str = "hostile.gnm") -> ModelFileError:
    """Load ``data`` from a file: it must be one ModelFileError naming the file and containing
    ``fragment``; both readers (header only, and the whole model) agree when the header is bad."""
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ModelFileError) as caught:
        load_model(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: "), text
    assert fragment in text, text
    return caught.value


# ----------------------------------------------------------------------------------------------
# Bytes: truncation, bit flips, magic, lengths
# ----------------------------------------------------------------------------------------------


def boundaries(data: bytes) -> dict[str, int]:
    header, _, at = parts(data)
    cuts = {"empty": 0, "inside magic": 5, "after magic": 8, "after format": 12, "after reserved": 16,
            "after length": 24, "after prelude": 56, "inside header": at["header"] + 10,
            "after header": at["padding"], "after padding": at["tensors"]}
    for group, entries in header["tensors"].items():
        for entry in entries:
            start = at["tensors"] + entry["offset"]
            cuts[f"inside {group}/{entry['name']}"] = start + entry["nbytes"] // 2
            cuts[f"after {group}/{entry['name']}"] = start + entry["nbytes"]
    cuts["last byte missing"] = len(data) - 1
    return cuts


def test_truncated_at_every_section_boundary(files, tmp_path):
    data = files["full"]
    for where, cut in boundaries(data).items():
        if cut >= len(data):
            continue
        expected = "empty" if cut == 0 else "truncated"
        refused(tmp_path, data[:cut], expected)


def test_truncated_format1_files(files, tmp_path):
    data = files["v1-tiny-float32"]
    for cut in (0, 1, 20, 100, len(data) // 2, len(data) - 1):
        refused(tmp_path, data[:cut], "empty" if cut == 0 else "")


@pytest.mark.parametrize(
    "section, offset, fragment",
    [
        ("magic", 1, "not a graphnet model file"),
        ("magic", 7, "not a graphnet model file"),
        ("format", 8, "model file format 3 is not supported"),
        ("reserved", 12, "reserved field is 1, not 0"),
        ("length", 16, ""),
        ("length", 23, "declares a header of"),
        ("checksum", 30, "header checksum mismatch"),
        ("header", 100, "header checksum mismatch"),
        ("padding", -1, "is not zero bytes"),
    ],
)
def test_bit_flips_in_every_section(files, tmp_path, section, offset, fragment):
    data = bytearray(files["full"])
    if offset == -1:
        offset = parts(bytes(data))[2]["tensors"] - 1
        assert offset > parts(bytes(data))[2]["padding"], "the header leaves padding to flip"
    data[offset] ^= 0x01
    refused(tmp_path, bytes(data), fragment)


def test_bit_flips_in_every_tensor_name_the_tensor(files, tmp_path):
    data = files["full"]
    header, _, at = parts(data)
    for group, entries in header["tensors"].items():
        for index, entry in enumerate(entries):
            broken = bytearray(data)
            broken[at["tensors"] + entry["offset"] + entry["nbytes"] - 1] ^= 0x80
            error = refused(tmp_path, bytes(broken), f"tensor '{entry['name']}' fails its checksum")
            assert error.path == f"tensors.{group}.{index}"


def test_padding_between_tensors_must_be_zero(files, tmp_path):
    data = bytearray(files["full"])
    header, _, at = parts(bytes(data))
    entries = [e for group in ("params", "state", "optimizer") for e in header["tensors"][group]]
    padded = [(a, b) for a, b in zip(entries, entries[1:]) if b["offset"] > a["offset"] + a["nbytes"]]
    before, after = padded[0]  # logits.b: 10 floats, 40 bytes, then 24 bytes of padding
    data[at["tensors"] + before["offset"] + before["nbytes"]] = 1
    refused(tmp_path, bytes(data), f"the padding before tensor '{after['name']}'")


@pytest.mark.parametrize(
    "length, fragment",
    [(2**63, "declares a header of 9,223,372,036,854,775,808 bytes"), (2**25 + 1, "declares a header of"),
     (30_000_000, "truncated: the header ends at byte 30,000,056"), (0, "not valid msgpack")],
)
def test_huge_or_wrong_declared_header_lengths(files, tmp_path, length, fragment):
    data = bytearray(files["full"])
    data[16:24] = struct.pack("<Q", length)
    if length == 0:
        data[24:56] = hashlib.sha256(b"").digest()
    refused(tmp_path, bytes(data), fragment)


def test_wrong_magic_and_trailing_bytes(files, tmp_path):
    data = files["full"]
    refused(tmp_path, b"\x89GNN\r\n\x1a\n" + data[8:], "not a graphnet model file")
    refused(tmp_path, MAGIC.replace(b"\r\n", b"\n") + data[8:], "not a graphnet model file")  # a text-mode copy
    refused(tmp_path, data + b"\x00", "1 bytes after its last tensor")
    refused(tmp_path, data[:56] + b"\xc1" + data[57:], "header checksum mismatch")


# ----------------------------------------------------------------------------------------------
# Forged headers (valid checksum): types, values, limits
# ----------------------------------------------------------------------------------------------


def set_at(path: str, value):
    """A change setting the header's dotted ``path`` to ``value``."""
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]

    def change(header):
        target = header
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def deleted(path: str):
    keys = path.split(".")

    def change(header):
        target = header
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


def nested(depth: int):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def spec_with(change):
    def apply(header):
        change(header["spec"])
    return apply


FORGED = {
    # the list
    "ops as a list": (set_at("ops", ["linear", 1]), "ops: Input should be a valid dictionary"),
    "empty ops": (set_at("ops", {}), "ops: Dictionary should have at least 1 item"),
    "missing ops": (deleted("ops"), "missing key 'ops'"),
    "op record true": (set_at("ops.linear", True), "ops.linear: Input should be a valid dictionary"),
    "op version true": (set_at("ops.linear.version", True), "ops.linear.version: Input should be a valid integer"),
    "op version 1.0": (set_at("ops.linear.version", 1.0), "ops.linear.version: Input should be a valid integer"),
    "an op missing": (lambda h: h["ops"].pop("relu") and None, "ops records no version for relu, which the spec uses"),
    "an op extra": (set_at("ops.sigmoid", {"version": 1, "distribution": "graphnet", "distribution_version": "0.1.0"}),
                    "ops records sigmoid, which the spec does not use"),
    "op as a module path": (set_at("ops.os:system", {"version": 1, "distribution": None, "distribution_version": None}),
                            "String should match pattern"),
    "op from another distribution": (set_at("ops.relu.distribution", "acme-ops"),
                                     "saved with op 'relu' from acme-ops 0.1.0, but the installed op 'relu' comes from graphnet"),
    "distribution as a path": (set_at("ops.relu.distribution", "../../etc/passwd"), "ops.relu.distribution: String should match pattern"),
    "tensor offset as a string": (set_at("tensors.params.0.offset", "0"), "tensors.params.0.offset: Input should be a valid integer"),
    "tensor digest as bytes": (set_at("tensors.params.0.sha256", b"\x00" * 32), "binary data is not allowed in a header"),
    "negative shape": (set_at("tensors.params.0.shape", [-1, -784]), "tensors.params.0.shape.0: Input should be greater than or equal to 1"),
    "shape as a string": (set_at("tensors.params.0.shape", "784,256"), "Input should be a valid list"),
    "shape and bytes disagree": (set_at("tensors.params.0.shape", [784, 255]), "tensors.params.0: nbytes is 802,816, but shape [784, 255] of <f4 holds 799,680 bytes"),
    "shape and bytes agree, spec not": (lambda h: h["tensors"]["params"][0].update(shape=[256, 784]),
                                        "'stem.w' is stored with shape [256, 784], but the embedded spec makes it [784, 256]"),
    "too many axes": (set_at("tensors.params.0.shape", [1] * 40), "List should have at most 32 items"),
    "unknown dtype": (set_at("tensors.params.0.dtype", "object"), "tensors.params.0.dtype: Input should be '<f4'"),
    "dtype switches the model": (set_at("dtype", "float64"), "parameter 'stem.w' is <f4, but the model's dtype is float64"),
    "dtype of one tensor": (lambda h: h["tensors"]["params"][1].update(dtype="<f8", shape=[128]),
                            "parameter 'stem.b' is <f8, but the model's dtype is float32"),
    "duplicate tensor": (lambda h: h["tensors"]["params"].insert(1, copy.deepcopy(h["tensors"]["params"][0])),
                         "tensor 'stem.w' is listed twice in params"),
    "renamed tensor": (set_at("tensors.params.0.name", "nope.w"), "missing stem.w; unexpected nope.w"),
    "gap between tensors": (lambda h: h["tensors"]["params"][1].update(offset=h["tensors"]["params"][1]["offset"] + 64),
                            "is at offset"),
    "overlapping tensors": (lambda h: h["tensors"]["params"][1].update(offset=0), "is at offset 0, expected"),
    "bad tensor checksum": (set_at("tensors.params.2.sha256", ["0" * 64]), "tensor 'block.w' fails its checksum"),
    "tensor checksum as a string": (set_at("tensors.params.2.sha256", "0" * 64), "tensors.params.2.sha256: Input should be a valid list"),
    "too many digests": (set_at("tensors.params.2.sha256", ["0" * 64] * 2), "sha256 has 2 digests, but 262,144 bytes make 1 blocks"),
    "log as a list": (set_at("log", [1, 2]), "log: Input should be a valid dictionary"),
    "log epoch without epoch": (set_at("log.epochs", [{"lr": 0.1}]), "every entry has an integer epoch >= 1"),
    "log epoch value a map": (set_at("log.epochs", [{"epoch": 1, "lr": {"a": 1}}]), "should be a number, a string, a boolean or null"),
    "metrics as a string": (set_at("metrics", "0.5"), "metrics: Input should be a valid dictionary"),
    "metric as a string": (set_at("metrics.test_error", "0.5"), "metrics.test_error: should be a number, not a string"),
    "format true": (set_at("format", True), "format is True; it must be the integer 2"),
    "format 1.0": (set_at("format", 2.0), "format is 2.0; it must be the integer 2"),
    "format 3": (set_at("format", 3), "format: Input should be 2"),
    "unknown key": (set_at("comment", "hi"), "unknown key 'comment'"),
    "unknown key deep": (set_at("ops.linear.module", "os"), "ops.linear: unknown key 'module'"),
    "preprocess extra key": (set_at("preprocess.eval", "print(1)"), "preprocess: unknown key 'eval'"),
    "preprocess wrong input": (set_at("preprocess.input", "pixels"), "the preprocessing names input 'pixels'"),
    "preprocess NaN scale": (set_at("preprocess.scale", float("nan")), "preprocess.scale: Input should be a finite number"),
    "preprocess raw shape": (set_at("preprocess.raw_shape", [783]), "the preprocessing gives examples of shape [783], but input 'image' takes [784]"),
    "preprocess labels into the examples": (set_at("preprocess.labels.input", "image"),
                                            "the preprocessing feeds input 'image' both the examples and the labels"),
    "classes disagree": (set_at("classes.count", 9), "the preprocessing has 10 classes, the header's classes 9"),
    "data as bytes": (set_at("data", b"mnist"), "binary data is not allowed"),
    "data too long": (set_at("data", "x" * 5000), "data: String should have at most 4096 characters"),
    "header as a list": (lambda h: [h], "the header is a list, not a map"),
    "timestamp extension": (set_at("resume", {"when": msgpack.Timestamp(1, 0)}), "msgpack extension type -1 (a timestamp)"),
    "extension type 42": (set_at("log", msgpack.ExtType(42, b"code")), "msgpack extension type 42 is not allowed"),
    "uint64 integer": (set_at("resume.seed", 2**64 - 1), "outside the signed 64-bit range"),
    "deep nesting": (set_at("resume.deep", nested(40)), "nested more than 32 levels deep"),
    "integer map key": (set_at("resume", {1: "a"}), "a map key is int 1; keys are strings"),
    # the embedded spec
    "units 2**40": (spec_with(lambda s: s["nodes"]["stem"]["attrs"].update(units=2**40)),
                    "spec.nodes.stem.attrs.units: the embedded spec is invalid"),
    "code as an op": (spec_with(lambda s: s["nodes"]["stem"].update(op="os.system")),
                      "ops records no version for os.system, which the spec uses"),
    "code as an op, recorded": (lambda h: [h["spec"]["nodes"][n].update(op="os.system") for n in ("act0", "act1")] + [h["ops"].pop("relu"),
                                           h["ops"].update({"os.system": {"version": 1, "distribution": "os",
                                                                          "distribution_version": "1"}})] and None,
                                "ops.os.system: op 'os.system' is not installed; the model was saved with it from os 1"),
    "spec not a spec": (set_at("spec", {"hello": 1}), "the embedded spec is invalid"),
    "100,000 layers": (spec_with(lambda s: s.update(layers={"input": "image", "sizes": [4] * 100_000, "labels": "label"})),
                       "spec.layers.sizes: 100,000 entries, more than the 10,000"),
    "4,000 layers": (spec_with(lambda s: s.update(layers={"input": "image", "sizes": [4] * 4_000, "labels": "label"})),
                     "spec: the embedded spec has about 12,010 nodes, more than the 10,000 a model file may have"),
    "a list of 100,000 where a name belongs": (spec_with(lambda s: s["nodes"]["block"]["inputs"].update(x=[0] * 100_000)),
                                               "spec.nodes.block.inputs.x: 100,000 entries"),
}


@pytest.mark.parametrize("change, fragment", list(FORGED.values()), ids=list(FORGED))
def test_forged_headers_are_refused(files, tmp_path, change, fragment):
    refused(tmp_path, resigned(files["full"], change), fragment)


def test_units_300000_fail_fast_without_allocating(files, tmp_path):
    """A 714 KB file whose spec says 300,000 units used to take 8 s and 2.8 GB before failing."""
    assert 700_000 < len(files["softmax"]) < 730_000
    data = resigned(files["softmax"], spec_with(lambda s: s["layers"]["sizes"].__setitem__(1, 300_000)))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        refused(tmp_path, data, "parameter 'fc1.w' is stored with shape [784, 200], but the embedded spec makes it [784, 300000]")
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seconds < 2 and peak < 20e6, (seconds, peak)


def test_nan_and_inf_weights_name_the_tensor(files, tmp_path):
    values = np.zeros((784, 256), np.float32)
    values[10, 20] = np.nan
    error = refused(tmp_path, with_tensor(files["full"], "stem.w", values),
                    "tensor 'stem.w' holds 1 non-finite values (the first, nan, at index [10, 20])")
    assert error.path == "tensors.params.0"
    values = np.zeros(256, np.float32)
    values[-3:] = -np.inf
    refused(tmp_path, with_tensor(files["full"], "stem.b", values), "tensor 'stem.b' holds 3 non-finite values (the first, -inf")


def test_duplicate_map_keys_are_refused(files, tmp_path):
    header, section, _ = parts(files["full"])
    body = msgpack.packb(header, use_bin_type=True)
    # the header map gains a second "data" key, written by hand (msgpack would keep the last one)
    count = len(header) + 1
    duplicated = bytes([0x80 | count]) + body[1:] + msgpack.packb("data") + msgpack.packb("/etc/passwd")
    refused(tmp_path, sign(duplicated, section), "the header has the key 'data' twice")


def test_nesting_deeper_than_msgpack_allows(files, tmp_path):
    body = b"\x81" + msgpack.packb("resume") + b"\x91" * 100_000 + b"\xc0"
    refused(tmp_path, sign(body, b""), "the header is nested too deeply")


def test_a_spec_given_as_a_model_and_other_strangers(tmp_path):
    refused(tmp_path, (ROOT / "specs" / "mnist-mlp.yaml").read_bytes(),
            "this is a spec, not a model file; did you mean `graphnet run` or `graphnet validate`?")
    refused(tmp_path, b"\x89PNG\r\n\x1a\n" + bytes(100), "this is a PNG image")
    refused(tmp_path, np.random.default_rng(0).bytes(5_000_000), "not a graphnet model file")


# ----------------------------------------------------------------------------------------------
# Format 1, forged the same ways
# ----------------------------------------------------------------------------------------------


def v1_set(path: str, value):
    return set_at(path, value)


FORGED_V1 = {
    "op_versions as a list": (v1_set("op_versions", ["linear"]), "payload.op_versions: Input should be a valid dictionary"),
    "empty op_versions": (v1_set("op_versions", {}), "payload.op_versions: Dictionary should have at least 1 item"),
    "missing op_versions": (deleted("op_versions"), "payload: missing key 'op_versions'"),
    "op_versions linear true": (v1_set("op_versions", {"linear": True, "relu": 1, "softmax_cross_entropy": 1}),
                                "payload.op_versions.linear: Input should be a valid integer"),
    "an op missing": (lambda b: b["op_versions"].pop("relu") and None, "ops records no version for relu"),
    "data as a string": (v1_set("params.0.data", "abc"), "payload.params.0.data: Input should be a valid bytes"),
    "negative shape": (v1_set("params.0.shape", [-1, -3]), "payload.params.0.shape.0: Input should be greater than or equal to 1"),
    "short data": (lambda b: b["params"][0].update(data=b["params"][0]["data"][:-4]), "44 bytes do not hold <f4 values of shape [4, 3]"),
    "log as a list": (v1_set("log", [1]), "log: Input should be a valid dictionary"),
    "metrics as a string": (v1_set("metrics", "x"), "metrics: Input should be a valid dictionary"),
    "dtype switches the model": (v1_set("dtype", "float64"), "parameter 'fc1.w' is <f4, but the model's dtype is float64"),
    "duplicate params": (lambda b: b["params"].append(copy.deepcopy(b["params"][0])), "parameter 'fc1.w' is listed twice"),
    "timestamp": (v1_set("log", msgpack.Timestamp(5, 0)), "msgpack extension type -1 (a timestamp)"),
    "nan weights": (lambda b: b["params"][3].update(data=np.array([np.nan, 1], "<f4").tobytes()),
                    "tensor 'fc2.b' holds 1 non-finite values"),
    "units 300000": (lambda b: b["spec"]["nodes"]["fc1"]["attrs"].update(units=300_000),
                     "the embedded spec makes it [4, 300000]"),
    "op version 2": (lambda b: b["op_versions"].update(linear=2), "saved with op 'linear' version 2"),
    "unknown key": (v1_set("extra", 1), "payload: unknown key 'extra'"),
}


@pytest.mark.parametrize("change, fragment", list(FORGED_V1.values()), ids=list(FORGED_V1))
def test_forged_format1_files_are_refused(files, tmp_path, change, fragment):
    body = v1_parts(files["v1-tiny-float32"])
    change(body)
    refused(tmp_path, v1_file(body), fragment)


@pytest.mark.parametrize(
    "outer, fragment",
    [({"format": True}, "format is True; it must be the integer 1"),
     ({"format": 1.0}, "format is 1.0; it must be the integer 1"),
     ({"format": 2}, "format: Input should be less than or equal to 1"),
     ({"sha256": "0" * 64}, "checksum mismatch: the payload is corrupted"),
     ({"magic": "graphnet-modeX"}, "not a graphnet model file"),
     ({"payload": "text"}, "payload: Input should be a valid bytes")],
    ids=["format-true", "format-1.0", "format-2", "checksum", "magic", "payload-text"],
)
def test_forged_format1_outer_maps_are_refused(files, tmp_path, outer, fragment):
    refused(tmp_path, v1_file(v1_parts(files["v1-tiny-float32"]), **outer), fragment)


def test_format1_bit_flips_anywhere_are_caught(files, tmp_path):
    data = files["v1-tiny-float32"]
    for offset in range(0, len(data), 37):
        broken = bytearray(data)
        broken[offset] ^= 0x10
        refused(tmp_path, bytes(broken), "")


# ----------------------------------------------------------------------------------------------
# Fuzz: mutate valid files, expect a model or one ModelFileError naming the file
# ----------------------------------------------------------------------------------------------


def outcome(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "fuzzed.gnm"
    path.write_bytes(data)
    try:
        load_model(path)
    except ModelFileError as error:
        assert str(error).startswith(f"{path}: "), str(error)
        assert "\n" not in error.message
        return "refused"
    read_header(path)  # a file that loads has a header that reads
    return "loaded"


BASES = ["full", "v2-tiny-float32", "v2-tiny-float64", "v1-tiny-float32"]
HOSTILE_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=True)
    | st.text(max_size=20) | st.binary(max_size=8) | st.sampled_from([0, 1, -1, 2**31, 2**40, "<f8", "float64"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(BASES), edits=st.lists(
    st.tuples(st.sampled_from(["flip", "set", "cut", "insert", "delete"]), st.floats(0, 1), st.integers(0, 255)),
    min_size=1, max_size=4))
def test_fuzz_bytes(files, tmp_path, base, edits):
    data = bytearray(files[base])
    for kind, where, value in edits:
        at = min(int(where * len(data)), max(len(data) - 1, 0))
        if not data:
            break
        if kind == "flip":
            data[at] ^= 1 << (value % 8)
        elif kind == "set":
            data[at] = value
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = bytes([value]) * (value % 7 + 1)
        else:
            del data[at : at + value % 9 + 1]
    outcome(tmp_path, bytes(data))


def paths_of(value, prefix=()):
    """Every (container path) in a header: where a mutation can land."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths_of(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths_of(child, prefix + (index,))
    return found


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(["full", "v2-tiny-float32"]), pick=st.floats(0, 1),
       action=st.sampled_from(["replace", "delete", "duplicate", "add"]), value=HOSTILE_VALUES)
def test_fuzz_resigned_headers(files, tmp_path, base, pick, action, value):
    """Structural mutations inside the header, re-signed so the checksum cannot catch them."""
    header, section, _ = parts(files[base])
    paths = [p for p in paths_of(header) if p]
    path = paths[min(int(pick * len(paths)), len(paths) - 1)]
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "replace":
        parent[key] = value
    elif action == "delete":
        del parent[key]
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    elif isinstance(parent, dict):
        parent[f"{key}_x"] = value
    else:
        parent.append(value)
    outcome(tmp_path, sign(msgpack.packb(header, use_bin_type=True), section))
