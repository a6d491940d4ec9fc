"""Model files: round trip, data only, atomic writes, and every kind of broken file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgpack
import numpy as np
import pytest

from graphnet import Model, load_spec
from graphnet.errors import ModelFileError
from graphnet.modelfile import MAGIC, load_model, save_model

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.fixture
def model():
    return Model.from_spec(load_spec(SPECS / "skip-mlp.yaml"), seed=7)


def rewrap(path: Path, payload: dict | None = None, **outer) -> None:
    """Write a file with the given payload (re-checksummed) and outer fields."""
    blob = msgpack.unpackb(path.read_bytes())
    if payload is not None:
        blob["payload"] = msgpack.packb(payload, use_bin_type=True)
        blob["sha256"] = hashlib.sha256(blob["payload"]).hexdigest()
    blob.update(outer)
    path.write_bytes(msgpack.packb(blob, use_bin_type=True))


def payload_of(path: Path) -> dict:
    return msgpack.unpackb(msgpack.unpackb(path.read_bytes())["payload"])


def test_round_trip_is_exact(model, tmp_path):
    path = tmp_path / "m.gnm"
    save_model(path, model, log={"epochs": [{"epoch": 1}]}, metrics={"test_error": 0.5})
    loaded = load_model(path)
    assert loaded.model.spec == model.spec
    assert loaded.model.param_names == model.param_names
    assert np.array_equal(loaded.model.flat_params, model.flat_params)
    assert loaded.log == {"epochs": [{"epoch": 1}]}
    assert loaded.metrics == {"test_error": 0.5}
    x = np.random.default_rng(0).standard_normal((4, 784)).astype(np.float32)
    a = model.forward({"image": x}, ["logits"])["logits"]
    b = loaded.model.forward({"image": x}, ["logits"])["logits"]
    assert np.array_equal(a, b)


def test_file_is_plain_msgpack_data(model, tmp_path):
    path = tmp_path / "m.gnm"
    save_model(path, model)
    outer = msgpack.unpackb(path.read_bytes())
    assert outer["magic"] == MAGIC and outer["format"] == 1
    body = payload_of(path)
    assert body["op_versions"]["linear"] == 1
    w = body["params"][0]
    assert w["dtype"] == "<f4"
    assert np.array_equal(np.frombuffer(w["data"], "<f4").reshape(w["shape"]), model.params[w["name"]])


def test_atomic_write_leaves_no_temporary_files(model, tmp_path):
    save_model(tmp_path / "m.gnm", model)
    save_model(tmp_path / "m.gnm", model)
    assert [p.name for p in tmp_path.iterdir()] == ["m.gnm"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-100]), "not valid msgpack|truncated"),
        (lambda p: p.write_bytes(b"\x00\x01garbage"), "not a graphnet model file|not valid msgpack"),
        (lambda p: rewrap(p, magic="something-else"), "not a graphnet model file"),
        (lambda p: rewrap(p, format=99), "format 99 is not supported"),
        (lambda p: p.write_bytes(p.read_bytes()[:-40] + bytes(40)), "checksum mismatch"),
    ],
    ids=["truncated", "garbage", "magic", "format", "corrupted"],
)
def test_broken_files_are_rejected_clearly(model, tmp_path, damage, message):
    path = tmp_path / "m.gnm"
    save_model(path, model)
    damage(path)
    with pytest.raises(ModelFileError, match=message) as caught:
        load_model(path)
    assert str(path) in str(caught.value)


def _truncate_weights(body):
    body["params"][0]["data"] = body["params"][0]["data"][:-4]


def _rename_weight(body):
    body["params"][0]["name"] = "nope.w"


def _bump_op_version(body):
    body["op_versions"]["linear"] = 2


def _extension_type(body):
    body["log"] = msgpack.ExtType(42, b"code")


def _code_as_op(body):
    body["spec"]["nodes"]["stem"]["op"] = "os.system"


@pytest.mark.parametrize(
    "change, message",
    [
        (_truncate_weights, "do not hold"),
        (_rename_weight, "missing .*unexpected"),
        (_bump_op_version, "op 'linear' version 2"),
        (_extension_type, "extension type 42"),
        (_code_as_op, "embedded spec is invalid.*unknown op 'os.system'"),
    ],
    ids=["truncated-weights", "renamed-weight", "op-version", "extension-type", "code-as-op"],
)
def test_tampered_payloads_are_rejected(model, tmp_path, change, message):
    # the checksum is recomputed, so only the content checks can catch these
    path = tmp_path / "m.gnm"
    save_model(path, model)
    body = payload_of(path)
    change(body)
    rewrap(path, body)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_missing_file():
    with pytest.raises(ModelFileError, match="cannot read model file"):
        load_model("/nonexistent/model.gnm")
