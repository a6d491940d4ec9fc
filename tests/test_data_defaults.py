"""Sensible defaults for the user's own data: the automatic validation split (10%, at most
5,000), the warning when a split leaves less than half of the examples to train on, and
``--data-dir`` given an .npz file, or the folder above mnist/.

Everything here makes its own small data in tmp_path: no test needs a real dataset.
"""

from __future__ import annotations

import struct
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from graphnet.errors import DataError
from graphnet.spec import DataSpec, InputSpec, ValidationFile
from graphnet.train.data import auto_validation_count, load_data
from graphnet.train.data.split import Split, hold_out, split_warnings

X8 = ("x", InputSpec(shape=[8], dtype="float32"))
X784 = ("image", InputSpec(shape=[784], dtype="float32"))
LABEL = ("label", InputSpec(shape=[], dtype="int64"))

SPEC = """\
name: tiny
inputs:
  x: {shape: [8], dtype: float32}
  label: {shape: [], dtype: int64}
layers: {input: x, sizes: [8, 16, 3], labels: label}
outputs: [loss]
train:
  data: {dataset: npz, path: d8000.npz}
  epochs: 1
  batch_size: 256
  optimizer: {type: adam, lr: 0.01}
"""


def write_npz(path: Path, n_train: int, n_test: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """A learnable 3-class problem: labels are the argmax of a fixed linear map of x."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(8, 3))
    arrays = {}
    for part, n in (("train", n_train), ("test", n_test)):
        x = rng.normal(size=(n, 8)).astype(np.float32)
        arrays[f"x_{part}"], arrays[f"y_{part}"] = x, np.argmax(x @ weights, axis=1)
    np.savez(path, **arrays)
    return arrays


def npz_spec(**fields) -> DataSpec:
    fields.setdefault("path", "d.npz")
    return DataSpec(dataset="npz", **fields)


@pytest.fixture
def d8000(tmp_path):
    """The issue's case: 8,000 training examples in an .npz (and 50 test examples)."""
    return write_npz(tmp_path / "d.npz", 8000)


# ----------------------------------------------------------------------------------------------
# the automatic split
# ----------------------------------------------------------------------------------------------


def reference_auto(n: int) -> int:
    """10% rounded half up (exact fractions), at most 5,000, at least 1 from two examples."""
    if n < 2:
        return 0
    return min(5000, max(1, int(Fraction(n, 10) + Fraction(1, 2))))


@pytest.mark.parametrize(
    "n, expected",
    [(0, 0), (1, 0), (2, 1), (4, 1), (5, 1), (14, 1), (15, 2), (8000, 800), (8004, 800),
     (8005, 801), (49_994, 4999), (49_995, 5000), (60_000, 5000), (10**9, 5000)],
)
def test_auto_validation_count(n, expected):
    assert auto_validation_count(n) == expected == reference_auto(n)


def test_auto_validation_count_agrees_with_the_reference_everywhere_small():
    for n in range(0, 3000):
        assert auto_validation_count(n) == reference_auto(n), n


def test_the_spec_default_is_the_automatic_split():
    assert DataSpec().validation is None
    assert npz_spec().validation is None


def test_auto_split_of_8000_examples_holds_out_the_last_800(tmp_path, d8000):
    data = load_data(npz_spec(), X8, LABEL, spec_dir=tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (7200, 800, 50)
    np.testing.assert_array_equal(data.val.x, d8000["x_train"][7200:])
    np.testing.assert_array_equal(data.val.y, d8000["y_train"][7200:])
    np.testing.assert_array_equal(data.train.x, d8000["x_train"][:7200])
    assert data.warnings == []


def test_auto_split_is_capped_at_5000(tmp_path):
    write_npz(tmp_path / "d.npz", 60_000, n_test=5)
    data = load_data(npz_spec(), X8, LABEL, spec_dir=tmp_path)
    assert (len(data.train), len(data.val)) == (55_000, 5000)


def test_auto_split_applies_after_limit(tmp_path, d8000):
    data = load_data(npz_spec(limit=1000), X8, LABEL, spec_dir=tmp_path)
    assert (len(data.train), len(data.val)) == (900, 100)
    np.testing.assert_array_equal(data.val.x, d8000["x_train"][900:1000])


def test_auto_split_of_one_example_is_none_with_a_warning():
    train = Split(np.zeros((1, 8), np.float32), np.zeros(1, np.int64))
    kept, val = hold_out(train, None, None)
    assert val is None and len(kept) == 1
    (warning,) = split_warnings(None, 1, val)
    assert warning.startswith("train.data.validation: 1 training example(s) are too few")


# ----------------------------------------------------------------------------------------------
# the warning: less than half of the examples left to train on
# ----------------------------------------------------------------------------------------------


def test_validation_5000_of_8000_warns(tmp_path, d8000):
    data = load_data(npz_spec(validation=5000), X8, LABEL, spec_dir=tmp_path)
    assert (len(data.train), len(data.val)) == (3000, 5000)
    assert data.warnings == [
        "train.data.validation: holding out 5,000 of the 8,000 training examples leaves 3,000 "
        "(38%) to train on (use a smaller count, a fraction such as 0.1, or leave validation "
        "out for the automatic 10%)"
    ]


@pytest.mark.parametrize(
    "validation, warns",
    [(4000, False), (4001, True), (0.5, False), (0.6, True), (0, False), (800, False)],
)
def test_warning_starts_below_half(tmp_path, d8000, validation, warns):
    data = load_data(npz_spec(validation=validation), X8, LABEL, spec_dir=tmp_path)
    assert len(data.train) + (len(data.val) if data.val is not None else 0) == 8000
    assert bool(data.warnings) == warns
    assert (2 * len(data.train) < 8000) == warns  # the rule, checked against the split itself


def test_a_validation_file_never_warns(tmp_path, d8000):
    np.savez(tmp_path / "v.npz", x_val=d8000["x_train"][:9000], y_val=d8000["y_train"][:9000])
    data = load_data(npz_spec(validation=ValidationFile(file="v.npz")), X8, LABEL, spec_dir=tmp_path)
    assert (len(data.train), len(data.val)) == (8000, 8000)
    assert data.warnings == []


def test_run_prints_the_automatic_split_in_its_header(run_cli, tmp_path):
    write_npz(tmp_path / "d8000.npz", 8000)
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    result = run_cli("run", tmp_path / "spec.yaml", "--out", tmp_path / "m.gnm")
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0]
    assert f"data {(tmp_path / 'd8000.npz').resolve()} (7,200 train / 800 val (automatic) / 50 test)" in header
    assert "warning" not in result.stdout + result.stderr


def test_run_warns_in_its_header_when_validation_leaves_less_than_half(run_cli, tmp_path):
    write_npz(tmp_path / "d8000.npz", 8000)
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    result = run_cli("run", tmp_path / "spec.yaml", "--out", tmp_path / "m.gnm",
                     "--set", "train.data.validation=5000")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "(3,000 train / 5,000 val / 50 test)" in lines[0]
    assert lines[1] == (
        "warning: train.data.validation: holding out 5,000 of the 8,000 training examples "
        "leaves 3,000 (38%) to train on (use a smaller count, a fraction such as 0.1, or leave "
        "validation out for the automatic 10%)"
    )
    assert (tmp_path / "m.gnm").is_file()


# ----------------------------------------------------------------------------------------------
# --data-dir: an .npz file for any dataset; a folder one level too high
# ----------------------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fake_mnist(directory: Path, n_train: int = 12, n_test: int = 5) -> None:
    rng = np.random.default_rng(3)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An environment where only what a test puts in tmp_path exists: no $GRAPHNET_DATA, an
    empty cache, no system directory, no download."""
    monkeypatch.setattr("graphnet.train.data.find.SYSTEM_DIR", tmp_path / "system")
    return {"HOME": str(tmp_path / "home"), "GRAPHNET_CACHE": str(tmp_path / "cache")}


def test_data_dir_npz_replaces_a_named_dataset(tmp_path, isolated):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, 30)
    np.savez(tmp_path / "mine.npz", x_train=x, y_train=y, x_test=x[:7], y_test=y[:7])
    data = load_data(DataSpec(dataset="mnist", validation=6), X784, LABEL,
                     data_dir=str(tmp_path / "mine.npz"), env=isolated, download=False)
    assert data.source == str((tmp_path / "mine.npz").resolve())
    assert (len(data.train), len(data.val), len(data.test)) == (24, 6, 7)
    np.testing.assert_allclose(data.train.x, x[:24].reshape(24, 784) / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.val.y, y[24:])


def test_data_dir_npz_replaces_the_path_of_an_npz_dataset(tmp_path):
    write_npz(tmp_path / "other.npz", 40)
    data = load_data(npz_spec(path="absent.npz", validation=0), X8, LABEL, spec_dir=tmp_path,
                     data_dir=str(tmp_path / "other.npz"))
    assert len(data.train) == 40
    assert data.source == str((tmp_path / "other.npz").resolve())


def test_data_dir_npz_that_is_missing_names_the_flag(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(DataError) as info:
        load_data(npz_spec(), X8, LABEL, spec_dir=tmp_path, data_dir=str(missing))
    assert str(info.value) == (
        f"--data-dir {missing}: cannot read {missing}: No such file or directory (check the path "
        "(a relative --data-dir starts at the working directory))"
    )


def test_data_dir_npz_without_the_arrays_names_the_flag(tmp_path):
    np.savez(tmp_path / "wrong.npz", a=np.zeros(3))
    with pytest.raises(DataError) as info:
        load_data(DataSpec(dataset="fashion-mnist"), X784, LABEL, data_dir=str(tmp_path / "wrong.npz"))
    assert info.value.file == f"--data-dir {tmp_path / 'wrong.npz'}"
    assert info.value.path is None  # not a spec path: nothing to look up in the spec file
    assert "has no array 'x_train', 'y_train', 'x_test', 'y_test'; the arrays in it are: a" in info.value.message


def test_data_dir_directory_for_an_npz_dataset_lists_the_npz_files_in_it(tmp_path):
    write_npz(tmp_path / "d.npz", 10)
    with pytest.raises(DataError) as info:
        load_data(npz_spec(), X8, LABEL, spec_dir=tmp_path, data_dir=str(tmp_path))
    assert str(info.value) == (
        f"--data-dir {tmp_path}: dataset: npz reads one .npz file, but {tmp_path} is a directory "
        f"(it holds d.npz: pass it, --data-dir {tmp_path / 'd.npz'})"
    )


def test_data_dir_directory_of_an_idx_dataset(tmp_path):
    fake_mnist(tmp_path / "elsewhere", n_train=12, n_test=5)
    data = load_data(DataSpec(dataset="idx", path="absent", validation=2), X784, LABEL,
                     spec_dir=tmp_path, data_dir=str(tmp_path / "elsewhere"))
    assert (len(data.train), len(data.val), len(data.test)) == (10, 2, 5)
    assert data.source == str((tmp_path / "elsewhere").resolve())


def test_data_dir_above_mnist_says_use_the_folder_inside(tmp_path, isolated):
    fake_mnist(tmp_path / "data" / "mnist")
    with pytest.raises(DataError) as info:
        load_data(DataSpec(), X784, LABEL, data_dir=str(tmp_path / "data"), env=isolated, download=False)
    above, inside = tmp_path / "data", tmp_path / "data" / "mnist"
    assert info.value.message == (
        f"--data-dir {above} does not hold the mnist files, but found mnist/ inside: use {inside}"
    )
    assert info.value.hint == f"pass --data-dir {inside}, or set GRAPHNET_DATA={above} and drop --data-dir"


def test_data_dir_above_another_dataset_names_the_dataset_setting(tmp_path, isolated):
    fake_mnist(tmp_path / "data" / "mnist")
    with pytest.raises(DataError) as info:
        load_data(DataSpec(dataset="fashion-mnist"), X784, LABEL, data_dir=str(tmp_path / "data"),
                  env=isolated, download=False)
    assert info.value.path == "train.data.dataset"
    assert "found mnist/ inside, but the spec's dataset is fashion-mnist" in info.value.message
    assert info.value.hint.startswith("set train.data.dataset: mnist")


def test_graphnet_data_one_level_too_deep_is_explained(tmp_path, isolated):
    fake_mnist(tmp_path / "data" / "mnist")
    env = dict(isolated, GRAPHNET_DATA=str(tmp_path / "data" / "mnist"))
    with pytest.raises(DataError) as info:
        load_data(DataSpec(), X784, LABEL, env=env, download=False)
    assert (
        f"$GRAPHNET_DATA/mnist = {tmp_path / 'data' / 'mnist' / 'mnist'} (does not exist; "
        "GRAPHNET_DATA itself holds the four files, but it should name the folder that holds "
        f"mnist/: set GRAPHNET_DATA={tmp_path / 'data'})"
    ) in info.value.message


def test_run_data_dir_npz_through_the_cli(run_cli, tmp_path):
    """The README's promise, end to end: a spec for mnist trained on an .npz via --data-dir."""
    write_npz(tmp_path / "d8000.npz", 300)
    (tmp_path / "spec.yaml").write_text(SPEC.replace("{dataset: npz, path: d8000.npz}", "{dataset: mnist}"),
                                        encoding="utf-8")
    result = run_cli("run", tmp_path / "spec.yaml", "--data-dir", tmp_path / "d8000.npz",
                     "--out", tmp_path / "m.gnm")
    assert result.returncode == 0, result.stderr
    assert "(270 train / 30 val (automatic) / 50 test)" in result.stdout.splitlines()[0]
    evaluated = run_cli("eval", tmp_path / "m.gnm", "--data-dir", tmp_path / "d8000.npz", "--split", "val")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "on val (30 examples from" in evaluated.stdout


@pytest.mark.parametrize("how", ["--data-dir", "train.data.path"])
def test_an_npz_that_is_a_fifo_is_refused_without_hanging(run_cli, tmp_path, how):
    import os

    os.mkfifo(tmp_path / "pipe.npz")
    spec = SPEC.replace("path: d8000.npz", "path: pipe.npz")
    (tmp_path / "spec.yaml").write_text(spec, encoding="utf-8")
    extra = ["--data-dir", tmp_path / "pipe.npz"] if how == "--data-dir" else []
    result = run_cli("run", tmp_path / "spec.yaml", "--out", tmp_path / "m.gnm", *extra, timeout=30)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    where = f"--data-dir {tmp_path / 'pipe.npz'}" if how == "--data-dir" else f"{tmp_path / 'spec.yaml'}:8: train.data.path"
    assert line.startswith(f"graphnet: error: {where}: {tmp_path / 'pipe.npz'} is not a regular file")


def test_an_idx_file_that_is_a_fifo_is_refused(tmp_path):
    import os

    fake_mnist(tmp_path / "raw")
    os.mkfifo(tmp_path / "raw" / "pipe")
    files = {"x_train": "train-images-idx3-ubyte", "y_train": "pipe",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    spec = DataSpec(dataset="idx", path="raw", files=files, validation=0)
    raised: list[BaseException] = []

    def load() -> None:
        try:
            load_data(spec, X784, LABEL, spec_dir=tmp_path)
        except BaseException as error:  # noqa: BLE001 (handed to the test thread)
            raised.append(error)

    # in a thread: reading a FIFO blocks forever, and a hang must fail this test, not the suite
    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "load_data blocked on the FIFO"
    (error,) = raised
    assert isinstance(error, DataError)
    assert f"{tmp_path / 'raw' / 'pipe'} is not a regular file" in error.message
