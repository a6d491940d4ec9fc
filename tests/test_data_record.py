"""What the data code hands the model file, and reading one split for `graphnet eval`: the
preprocessing record (fitted statistics checked against numpy), the classes' names, a
description without absolute paths; new raw examples prepared from the record exactly as the
training data was; and ``load_split`` reading only what the split it scores needs.

Everything makes its own small data in tmp_path: no test needs a real dataset.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from graphnet.errors import DataError
from graphnet.spec import DataSpec, InputSpec, PreprocessSpec, ValidationFile
from graphnet.train.data import CLASS_NAMES, Statistics, apply_record, load_data, load_split

X8 = ("x", InputSpec(shape=[8], dtype="float32"))
X784 = ("image", InputSpec(shape=[784], dtype="float32"))
LABEL = ("label", InputSpec(shape=[], dtype="int64"))
MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}


def write_npz(path: Path, n_train: int = 40, n_test: int = 10, **extra) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": (rng.normal(size=(n_train, 8)) * 3 + 1).astype(np.float32),
        "y_train": rng.integers(0, 3, n_train),
        "x_test": (rng.normal(size=(n_test, 8)) * 3 + 1).astype(np.float32),
        "y_test": rng.integers(0, 3, n_test),
    }
    arrays["y_train"][:3] = [0, 1, 2]  # every class present
    np.savez(path, **arrays, **extra)
    return arrays


def write_idx(path: Path, array: np.ndarray) -> None:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fake_mnist(directory: Path, n_train: int = 30, n_test: int = 12) -> dict[str, np.ndarray]:
    """Four uint8 IDX files of MNIST's shapes, every class present in both splits."""
    rng = np.random.default_rng(5)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for part, n in (("train", n_train), ("test", n_test)):
        arrays[f"x_{part}"] = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        arrays[f"y_{part}"] = np.arange(n) % 10
    for role, name in MNIST_FILES.items():
        write_idx(directory / name, arrays[role])
    return arrays


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Nothing but what a test puts in tmp_path: no $GRAPHNET_DATA, an empty cache, no system
    directory (downloads are turned off by the tests themselves)."""
    monkeypatch.setattr("graphnet.train.data.find.SYSTEM_DIR", tmp_path / "system")
    return {"HOME": str(tmp_path / "home"), "GRAPHNET_CACHE": str(tmp_path / "cache")}


# ----------------------------------------------------------------------------------------------
# the record
# ----------------------------------------------------------------------------------------------


def test_npz_record_holds_the_statistics_of_the_training_split_only(tmp_path):
    arrays = write_npz(tmp_path / "d.npz", class_names=np.array(["cat", "dog", "emu"]))
    pre = PreprocessSpec(scale=True, standardize=True, flatten=False)
    data = load_data(DataSpec(dataset="npz", path="d.npz", validation=10, preprocess=pre), X8, LABEL,
                     spec_dir=tmp_path)
    kept = arrays["x_train"][:30].astype(np.float64)  # the last 10 are the validation split
    record = data.preprocess
    assert record["mean"] == pytest.approx(kept.mean(), rel=1e-12, abs=1e-12)
    assert record["std"] == pytest.approx(kept.std(), rel=1e-12)
    assert record["mean"] != pytest.approx(arrays["x_train"].astype(np.float64).mean(), rel=1e-6)
    assert record == {
        "input": "x", "raw_shape": [8], "raw_dtype": "float32",
        "scale": None,  # preprocess.scale divides uint8 examples only
        "mean": record["mean"], "std": record["std"], "flatten": False,
        "labels": {"input": "label", "one_hot": False, "classes": 3, "names": ["cat", "dog", "emu"]},
    }
    assert data.classes_record() == {"count": 3, "names": ["cat", "dog", "emu"]}
    # the training split was standardized with exactly these numbers
    expected = (arrays["x_train"][:30] - np.float32(record["mean"])) / np.float32(record["std"])
    np.testing.assert_allclose(data.train.x, expected, rtol=1e-6, atol=1e-6)


def test_named_dataset_record_names_the_digits_and_describes_without_paths(tmp_path, isolated):
    fake_mnist(tmp_path / "data" / "mnist")
    env = dict(isolated, GRAPHNET_DATA=str(tmp_path / "data"))
    data = load_data(DataSpec(dataset="mnist", validation=5), X784, LABEL, env=env, download=False)
    assert data.preprocess == {
        "input": "image", "raw_shape": [28, 28], "raw_dtype": "uint8", "scale": 255.0,
        "mean": None, "std": None, "flatten": True,
        "labels": {"input": "label", "one_hot": False, "classes": 10, "names": CLASS_NAMES["mnist"]},
    }
    assert CLASS_NAMES["mnist"] == [str(d) for d in range(10)]
    assert data.description == (
        "mnist: IDX files found in $GRAPHNET_DATA/mnist; 25 train, 5 validation (the last 5 training "
        "examples), 12 test; preprocess: scale, flatten")
    assert str(tmp_path) not in data.description
    assert data.source == str((tmp_path / "data" / "mnist").resolve())  # printed, never stored


def test_fashion_mnist_has_its_ten_names(tmp_path, isolated):
    fake_mnist(tmp_path / "fashion")
    data = load_data(DataSpec(dataset="fashion-mnist", validation=0), X784, LABEL,
                     data_dir=str(tmp_path / "fashion"), env=isolated, download=False)
    assert data.class_names == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                "Sneaker", "Bag", "Ankle boot"]
    assert data.description.startswith("fashion-mnist: IDX files in folder fashion (given with --data-dir); ")


def test_a_named_dataset_read_from_other_data_names_its_classes_only_if_they_fit(tmp_path, isolated):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 28, 28)).astype(np.uint8)
    np.savez(tmp_path / "twenty.npz", x_train=x, y_train=np.arange(40) % 20, x_test=x[:5], y_test=np.arange(5))
    data = load_data(DataSpec(dataset="mnist", validation=0), X784, ("label", InputSpec(shape=[], dtype="int64")),
                     data_dir=str(tmp_path / "twenty.npz"), env=isolated, download=False)
    assert data.classes_record() == {"count": 20, "names": None}  # MNIST's ten digits would not do
    assert data.description.startswith("mnist: npz file twenty.npz (given with --data-dir); 40 train")


def test_more_names_than_labelled_classes_count_the_names(tmp_path):
    write_npz(tmp_path / "d.npz", class_names=np.array(["a", "b", "c", "d"]))  # labels 0..2
    data = load_data(DataSpec(dataset="npz", path="d.npz", validation=0), X8, LABEL, spec_dir=tmp_path)
    assert data.classes == 3
    assert data.preprocess["labels"]["classes"] == 4
    assert data.classes_record() == {"count": 4, "names": ["a", "b", "c", "d"]}


@pytest.mark.parametrize("names, fragment", [
    (np.array(["a", "b"]), "class_names holds 2 names, but the labels have 3 classes"),
    (np.array([1, 2, 3]), "array 'class_names' of"),
    (np.array([["a", "b", "c"]]), "of shape [1, 3]"),
])
def test_bad_class_names_are_one_error(tmp_path, names, fragment):
    write_npz(tmp_path / "d.npz", class_names=names)
    with pytest.raises(DataError) as info:
        load_data(DataSpec(dataset="npz", path="d.npz", validation=0), X8, LABEL, spec_dir=tmp_path)
    assert fragment in info.value.message
    assert "\n" not in str(info.value)


def test_examples_that_are_single_numbers_have_no_record(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "s.npz", x_train=rng.normal(size=20).astype(np.float32), y_train=np.arange(20) % 2,
             x_test=rng.normal(size=5).astype(np.float32), y_test=np.arange(5) % 2)
    data = load_data(DataSpec(dataset="npz", path="s.npz", validation=0,
                              preprocess=PreprocessSpec(flatten=False)),
                     ("x", InputSpec(shape=[], dtype="float32")), LABEL, spec_dir=tmp_path)
    assert data.preprocess is None
    assert data.classes_record() == {"count": 2, "names": None}


# ----------------------------------------------------------------------------------------------
# new raw examples, prepared from the record alone
# ----------------------------------------------------------------------------------------------


def test_apply_record_prepares_raw_examples_bit_for_bit_like_training(tmp_path, isolated):
    arrays = fake_mnist(tmp_path / "mnist")
    pre = PreprocessSpec(scale=True, standardize=True, flatten=True)
    data = load_data(DataSpec(dataset="mnist", validation=0, preprocess=pre), X784, LABEL,
                     data_dir=str(tmp_path / "mnist"), env=isolated, download=False)
    prepared = apply_record(arrays["x_test"], data.preprocess, X784[1], "test")
    assert prepared.dtype == np.float32
    assert np.array_equal(prepared, data.test.x)  # the same bits
    one = apply_record(arrays["x_test"][3], data.preprocess, X784[1], "one")  # one example, no batch axis
    assert np.array_equal(one, data.test.x[3:4])
    as_int = apply_record(arrays["x_test"].astype(np.int64), data.preprocess, X784[1], "ints")
    assert np.array_equal(as_int, data.test.x)  # whole numbers 0..255 in another dtype are pixels too


@pytest.mark.parametrize("raw, fragment", [
    (np.full((2, 28, 28), 0.5, np.float32), "float32 values from 0.5 to 0.5 (not whole numbers)"),
    (np.full((2, 28, 28), 300, np.int64), "int64 values from 300 to 300"),
    (np.zeros((2, 784), np.uint8), "holds an array of shape [2, 784]; the model takes raw examples of shape [28, 28]"),
])
def test_apply_record_refuses_what_the_model_was_not_trained_on(raw, fragment):
    record = {"input": "image", "raw_shape": [28, 28], "raw_dtype": "uint8", "scale": 255.0,
              "mean": None, "std": None, "flatten": True, "labels": None}
    with pytest.raises(DataError) as info:
        apply_record(raw, record, X784[1], "in.npy")
    assert info.value.file == "in.npy"
    assert fragment in info.value.message


# ----------------------------------------------------------------------------------------------
# one split, for `graphnet eval`
# ----------------------------------------------------------------------------------------------


def test_test_split_reads_only_the_test_files(tmp_path, isolated):
    fake_mnist(tmp_path / "mnist")
    pre = PreprocessSpec(standardize=True)
    spec = DataSpec(dataset="mnist", validation=5, preprocess=pre)
    data = load_data(spec, X784, LABEL, data_dir=str(tmp_path / "mnist"), env=isolated, download=False)
    for role in ("x_train", "y_train"):
        (tmp_path / "mnist" / MNIST_FILES[role]).unlink()  # the training files are gone
    statistics = Statistics(data.preprocess["mean"], data.preprocess["std"])
    part = load_split(spec, X784, LABEL, "test", statistics=statistics, data=str(tmp_path / "mnist"),
                      env=isolated, download=False)
    assert np.array_equal(part.split.x, data.test.x) and np.array_equal(part.split.y, data.test.y)
    assert part.classes == 10 and not part.read_train
    # without recorded statistics, standardize must fit them on the training files: named
    with pytest.raises(DataError) as info:
        load_split(spec, X784, LABEL, "test", data=str(tmp_path / "mnist"), env=isolated, download=False)
    assert "train-images-idx3-ubyte" in info.value.message and "--data" in info.value.message


def test_test_split_found_by_the_usual_search_with_only_the_test_files(tmp_path, isolated):
    arrays = fake_mnist(tmp_path / "data" / "mnist")
    for role in ("x_train", "y_train"):
        (tmp_path / "data" / "mnist" / MNIST_FILES[role]).unlink()
    env = dict(isolated, GRAPHNET_DATA=str(tmp_path / "data"))
    part = load_split(DataSpec(dataset="mnist"), X784, LABEL, "test", env=env, download=False)
    np.testing.assert_array_equal(part.split.y, arrays["y_test"])
    np.testing.assert_allclose(part.split.x, arrays["x_test"].reshape(-1, 784) / 255, rtol=1e-6)


def test_validation_split_is_the_hold_out_of_the_training_files(tmp_path):
    write_npz(tmp_path / "d.npz", n_train=40)
    spec = DataSpec(dataset="npz", path="d.npz", validation=0.25, limit=36,
                    preprocess=PreprocessSpec(standardize=True))
    data = load_data(spec, X8, LABEL, spec_dir=tmp_path)
    statistics = Statistics(data.preprocess["mean"], data.preprocess["std"])
    part = load_split(spec, X8, LABEL, "val", statistics=statistics, spec_dir=tmp_path)
    assert len(part.split) == 9 and part.read_train
    assert np.array_equal(part.split.x, data.val.x) and np.array_equal(part.split.y, data.val.y)
    # without statistics they are fitted again, on the same examples: the same numbers
    refit = load_split(spec, X8, LABEL, "test", spec_dir=tmp_path)
    assert refit.read_train and np.array_equal(refit.split.x, data.test.x)


def test_validation_file_split(tmp_path):
    write_npz(tmp_path / "d.npz")
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "v.npz", x_val=rng.normal(size=(6, 8)).astype(np.float32), y_val=np.arange(6) % 3)
    spec = DataSpec(dataset="npz", path="d.npz", validation=ValidationFile(file="v.npz"))
    data = load_data(spec, X8, LABEL, spec_dir=tmp_path)
    (tmp_path / "d.npz").unlink()  # the validation file is all it reads
    part = load_split(spec, X8, LABEL, "val", statistics=Statistics(), spec_dir=tmp_path)
    assert np.array_equal(part.split.x, data.val.x)
    assert part.source == str((tmp_path / "v.npz").resolve())


def test_no_validation_split_is_an_error(tmp_path):
    write_npz(tmp_path / "d.npz")
    spec = DataSpec(dataset="npz", path="d.npz", validation=0)
    with pytest.raises(DataError) as info:
        load_split(spec, X8, LABEL, "val", spec_dir=tmp_path)
    assert "holds out no validation split" in info.value.message


def test_data_flag_takes_an_idx_folder_for_an_npz_dataset(tmp_path):
    arrays = fake_mnist(tmp_path / "idx")
    spec = DataSpec(dataset="npz", path="gone.npz")
    part = load_split(spec, X784, LABEL, "test", data=str(tmp_path / "idx"), spec_dir=tmp_path)
    np.testing.assert_array_equal(part.split.y, arrays["y_test"])
    data = load_data(DataSpec(dataset="npz", path="gone.npz", validation=0), X784, LABEL,
                     data_dir=str(tmp_path / "idx"), spec_dir=tmp_path)
    assert data.description.startswith("IDX files in folder idx (given with --data-dir); 30 train")


def test_data_flag_errors_name_the_flag_given(tmp_path):
    with pytest.raises(DataError) as info:
        load_split(DataSpec(dataset="npz", path="d.npz"), X8, LABEL, "test", data=str(tmp_path / "no.npz"),
                   flag="--data")
    assert info.value.file == f"--data {tmp_path / 'no.npz'}"
    assert "a relative --data starts at the working directory" in info.value.hint
