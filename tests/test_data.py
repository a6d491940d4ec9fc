"""graphnet.train.data: IDX reading, the dataset search and download, npz data, validation
splits, preprocessing, the checks against the spec's inputs, and batching.

No test reaches the internet: downloads are served by a local http.server. The real datasets come
from the fixtures in conftest.py: MNIST through $GRAPHNET_DATA, Fashion-MNIST from Debian's
dataset-fashion-mnist; each test of them runs for each one found, and is skipped for the others.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from graphnet.errors import DataError
from graphnet.spec import DataSpec, InputSpec, PreprocessSpec, ValidationFile
from graphnet.train.data import (
    CHECKSUMS,
    IDX_FILES,
    Data,
    Split,
    cache_dir,
    file_sha256,
    find_idx_files,
    load_data,
    read_idx,
    search_dirs,
    shuffled_batches,
)

IMAGE = ("image", InputSpec(shape=[784]))
LABEL = ("label", InputSpec(shape=[], dtype="int64"))
NAMES = list(IDX_FILES.values())
IDX_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D, "float64": 0x0E}


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, code: int | None = None) -> bytes:
    """The IDX encoding of ``array`` (big-endian, as in the MNIST files)."""
    code = IDX_CODES[array.dtype.name] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def fake_mnist(directory: Path, n_train: int = 12, n_test: int = 5, gz: bool = True, seed: int = 0):
    """Four small IDX files with the MNIST names; returns their arrays by role."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 4, 4), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 3).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 4, 4), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 3).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for role, name in IDX_FILES.items():
        write_idx(directory / (name + ".gz" if gz else name), arrays[role], gz=gz)
    return arrays


def sha256_of_idx(array: np.ndarray) -> str:
    return hashlib.sha256(idx_bytes(array)).hexdigest()


SMALL_X = ("image", InputSpec(shape=[16]))


def small_spec(**fields) -> DataSpec:
    fields.setdefault("validation", 0)
    return DataSpec(**fields)


def isolated_env(tmp_path: Path, **extra) -> dict[str, str]:
    """An environment whose cache is an empty temp directory."""
    return {"GRAPHNET_CACHE": str(tmp_path / "cache"), **extra}


@pytest.fixture
def no_system_dir(tmp_path, monkeypatch):
    """/usr/share/datasets replaced by an empty temp directory."""
    system = tmp_path / "system"
    system.mkdir()
    monkeypatch.setattr("graphnet.train.data.find.SYSTEM_DIR", system)
    return system


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_root(tmp_path):
    """(served directory, base URL) of a local HTTP server on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@contextlib.contextmanager
def raises_data_error(match: str | None = None):
    """``pytest.raises(DataError, match=...)`` that also checks the error is ONE line: its
    message, its hint and everything ``str()`` prints (the CLI prints that line)."""
    with pytest.raises(DataError, match=match) as info:
        yield info
    error = info.value
    for text in (str(error), error.message, error.hint or ""):
        assert "\n" not in text and "\r" not in text, f"a DataError spans lines: {text!r}"


def files_under(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file()) if directory.exists() else []


# ----------------------------------------------------------------------------------------------
# IDX files
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", list(IDX_CODES))
def test_read_idx_round_trips_every_type(tmp_path, dtype, gz):
    rng = np.random.default_rng(1)
    array = (rng.normal(size=(3, 4, 2)) * 100).astype(dtype)
    result = read_idx(write_idx(tmp_path / "a.idx", array, gz=gz))
    assert result.dtype == np.dtype(dtype).newbyteorder("=")
    assert result.dtype.isnative
    assert result.flags.writeable
    np.testing.assert_array_equal(result, array)


def test_read_idx_detects_gzip_by_magic_not_by_name(tmp_path):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    gz_without_suffix = tmp_path / "images"
    gz_without_suffix.write_bytes(gzip.compress(idx_bytes(array)))
    plain_with_suffix = tmp_path / "labels.gz"
    plain_with_suffix.write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(read_idx(gz_without_suffix), array)
    np.testing.assert_array_equal(read_idx(plain_with_suffix), array)


def test_read_idx_rejects_bad_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 2) + b"\x00\x00")
    with raises_data_error() as info:
        read_idx(path)
    assert str(path) in info.value.message
    assert "magic" in info.value.message and "01 02 08 01" in info.value.message
    assert info.value.hint


def test_read_idx_rejects_unknown_type_code(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(idx_bytes(np.zeros(3, np.uint8), code=0x07))
    with raises_data_error(r"unknown IDX data type code 0x07 \(known: 0x08 uint8"):
        read_idx(path)


def test_read_idx_rejects_truncated_payload(tmp_path):
    path = tmp_path / "short.idx"
    path.write_bytes(idx_bytes(np.zeros((10, 2, 2), np.uint8))[:-3])
    with raises_data_error() as info:
        read_idx(path)
    message = info.value.message
    assert str(path) in message and "truncated" in message
    assert "[10, 2, 2]" in message and "40 bytes" in message and "37 bytes" in message


def test_read_idx_rejects_trailing_bytes(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(np.zeros(4, np.int32)) + b"\x00")
    with raises_data_error("trailing bytes.*16 bytes.*17 bytes"):
        read_idx(path)


@pytest.mark.parametrize(
    "raw, problem",
    [
        (b"\x00\x00", "too short for an IDX header"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 5), "declares 3 dimensions but the file is 8 bytes"),
        (b"\x00\x00\x08\x00", "declares 0 dimensions"),
    ],
)
def test_read_idx_rejects_broken_headers(tmp_path, raw, problem):
    path = tmp_path / "header.idx"
    path.write_bytes(raw)
    with raises_data_error(problem):
        read_idx(path)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))[:-20])
    with raises_data_error("gzip-compressed but cannot be decompressed") as info:
        read_idx(path)
    assert str(path) in info.value.message


def test_read_idx_missing_file(tmp_path):
    with raises_data_error("cannot read .*nothing.idx"):
        read_idx(tmp_path / "nothing.idx")


def test_file_sha256_hashes_the_decompressed_content(tmp_path):
    raw = idx_bytes(np.arange(5, dtype=np.uint8))
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    assert file_sha256(tmp_path / "a") == file_sha256(tmp_path / "a.gz") == hashlib.sha256(raw).hexdigest()


# ----------------------------------------------------------------------------------------------
# The real datasets: MNIST ($GRAPHNET_DATA/mnist) and Fashion-MNIST (Debian's package)
# ----------------------------------------------------------------------------------------------

# What each dataset's files hold (../shared/data/README.md; the Fashion-MNIST mean measured here).
REAL = {
    "mnist": {
        "train_counts": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        "test_counts": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
        "mean_pixel": 33.318,
    },
    "fashion-mnist": {"train_counts": [6000] * 10, "test_counts": [1000] * 10, "mean_pixel": 72.940},
}


@pytest.fixture(params=["mnist", "fashion-mnist"])
def dataset(request):
    """Each real dataset in turn (a RealImages; skipped where it is not on this machine)."""
    return request.getfixturevalue(request.param.replace("-", "_"))


@functools.lru_cache(maxsize=None)
def raw_arrays(directory: Path) -> dict[str, np.ndarray]:
    """The four IDX files of a directory, read once per test run (60,000 images take a second)."""
    files, missing = find_idx_files(directory)
    assert not missing
    return {role: read_idx(path) for role, path in files.items()}


def test_real_shapes_and_types(dataset):
    raw = raw_arrays(dataset.directory)
    assert raw["x_train"].shape == (60000, 28, 28)
    assert raw["x_test"].shape == (10000, 28, 28)
    assert raw["y_train"].shape == (60000,)
    assert raw["y_test"].shape == (10000,)
    assert all(array.dtype == np.uint8 for array in raw.values())


def test_real_label_counts_and_mean_pixel(dataset):
    raw, expected = raw_arrays(dataset.directory), REAL[dataset.name]
    assert np.bincount(raw["y_train"]).tolist() == expected["train_counts"]
    assert np.bincount(raw["y_test"]).tolist() == expected["test_counts"]
    assert raw["x_train"].mean(dtype=np.float64) == pytest.approx(expected["mean_pixel"], abs=1e-3)


def test_real_files_match_the_pinned_checksums(dataset):
    files, _ = find_idx_files(dataset.directory)
    for role, path in files.items():
        assert file_sha256(path) == CHECKSUMS[dataset.name][IDX_FILES[role]], path


def test_load_real_preprocessed(dataset, tmp_path, no_system_dir):
    # found through $GRAPHNET_DATA/<name> (a link to the dataset's directory): the system
    # directory and the cache are empty
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / dataset.name).symlink_to(dataset.directory)
    data = load_data(
        DataSpec(dataset=dataset.name), IMAGE, LABEL,
        env=isolated_env(tmp_path, GRAPHNET_DATA=str(tmp_path / "data")), download=False,
    )
    raw = raw_arrays(dataset.directory)
    assert isinstance(data, Data)
    assert data.source == str(dataset.directory.resolve())  # the link resolved
    assert data.classes == 10
    assert data.example_shape == (28, 28)
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == np.float32 and split.x.shape[1:] == (784,)
        assert split.x.min() >= 0.0 and split.x.max() <= 1.0
        assert split.y.dtype == np.int64
    # the validation set is the LAST 5000 training examples, untouched but scaled
    np.testing.assert_array_equal(data.val.y, raw["y_train"][55000:])
    np.testing.assert_allclose(data.val.x, raw["x_train"][55000:].reshape(5000, 784) / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.train.y, raw["y_train"][:55000])
    np.testing.assert_array_equal(data.test.y, raw["y_test"])


def test_fashion_mnist_from_the_system_directory(fashion_mnist, tmp_path, monkeypatch):
    # Debian's package installs into <system dir>/fashion-mnist; found with nothing configured
    monkeypatch.setattr("graphnet.train.data.find.SYSTEM_DIR", fashion_mnist.directory.parent)
    data = load_data(
        DataSpec(dataset="fashion-mnist", validation=0.1), IMAGE, LABEL,
        env=isolated_env(tmp_path), download=False,
    )
    assert data.source == str(fashion_mnist.directory.resolve())
    assert (len(data.train), len(data.val), len(data.test)) == (54000, 6000, 10000)
    counts = np.bincount(np.concatenate([data.train.y, data.val.y]))
    assert counts.tolist() == REAL["fashion-mnist"]["train_counts"]


# ----------------------------------------------------------------------------------------------
# The search for a named dataset
# ----------------------------------------------------------------------------------------------


def test_search_dirs_order(tmp_path, no_system_dir):
    env = {"GRAPHNET_DATA": str(tmp_path / "shared"), "GRAPHNET_CACHE": str(tmp_path / "cache")}
    dirs = search_dirs("mnist", str(tmp_path / "cli"), "rel/mnist", tmp_path / "specs", env)
    assert dirs == [
        tmp_path / "cli",
        tmp_path / "specs" / "rel" / "mnist",
        tmp_path / "shared" / "mnist",
        tmp_path / "cache" / "mnist",
        no_system_dir / "mnist",
    ]


def test_search_dirs_defaults_and_duplicates(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GRAPHNET_CACHE", raising=False)
    monkeypatch.delenv("GRAPHNET_DATA", raising=False)
    same = str(tmp_path / "d")
    dirs = search_dirs("fashion-mnist", same, same, None, None)
    assert dirs == [
        tmp_path / "d",
        tmp_path / "home" / ".cache" / "graphnet" / "fashion-mnist",
        Path("/usr/share/datasets/fashion-mnist"),
    ]
    assert cache_dir("mnist", {"HOME": "/h"}) == Path("/h/.cache/graphnet/mnist")


LOCATIONS = ["data_dir", "spec_path", "graphnet_data", "cache", "system"]


@pytest.mark.parametrize("winner", LOCATIONS)
def test_first_complete_directory_wins(tmp_path, no_system_dir, winner):
    places = {
        "data_dir": tmp_path / "cli",
        "spec_path": tmp_path / "specs" / "data",
        "graphnet_data": tmp_path / "shared" / "mnist",
        "cache": tmp_path / "cache" / "mnist",
        "system": no_system_dir / "mnist",
    }
    # the winner and every later place hold a dataset of a different size
    for number, place in enumerate(LOCATIONS[LOCATIONS.index(winner):]):
        fake_mnist(places[place], n_train=10 + number)
    env = {"GRAPHNET_DATA": str(tmp_path / "shared"), "GRAPHNET_CACHE": str(tmp_path / "cache")}
    data_dir = str(places["data_dir"]) if winner == "data_dir" else None  # --data-dir is strict
    data = load_data(
        small_spec(path="data"), SMALL_X, LABEL,
        data_dir=data_dir, spec_dir=tmp_path / "specs", env=env, download=False,
    )
    assert data.source == str(places[winner])
    assert len(data.train) == 10


def test_incomplete_directory_is_skipped(tmp_path, no_system_dir):
    fake_mnist(tmp_path / "specs" / "data", n_train=7)
    (tmp_path / "specs" / "data" / "t10k-labels-idx1-ubyte.gz").unlink()
    fake_mnist(tmp_path / "shared" / "mnist", n_train=9, gz=False)  # plain files count too
    data = load_data(
        small_spec(path="data"), SMALL_X, LABEL, spec_dir=tmp_path / "specs",
        env=isolated_env(tmp_path, GRAPHNET_DATA=str(tmp_path / "shared")), download=False,
    )
    assert data.source == str(tmp_path / "shared" / "mnist")
    assert len(data.train) == 9


@pytest.mark.parametrize("problem", ["missing", "absent", "file"])
def test_data_dir_without_the_files_is_an_error(tmp_path, no_system_dir, problem):
    """--data-dir is what the user asked for: never silently fall through to another copy."""
    cli = tmp_path / "cli"
    if problem == "missing":
        fake_mnist(cli)
        (cli / "t10k-labels-idx1-ubyte.gz").unlink()
        (cli / "train-images-idx3-ubyte.gz").unlink()
        why = "missing train-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz)"
    elif problem == "absent":
        why = "it does not exist"
    else:
        cli.write_text("not a directory")
        why = "it is not a directory"
    fake_mnist(tmp_path / "shared" / "mnist")  # a complete copy later in the search order
    env = isolated_env(tmp_path, GRAPHNET_DATA=str(tmp_path / "shared"))
    with raises_data_error() as info:
        load_data(small_spec(), SMALL_X, LABEL, data_dir=str(cli), env=env, download=False)
    assert info.value.message == f"--data-dir {cli} does not hold the mnist files: {why}"
    assert info.value.hint == (
        f"put the four IDX files there, or drop --data-dir to search train.data.path, "
        f"GRAPHNET_DATA, the cache and {no_system_dir}"
    )


def test_relative_data_dir_is_relative_to_the_working_directory(tmp_path, no_system_dir, monkeypatch):
    fake_mnist(tmp_path / "here" / "mnist", n_train=8)
    monkeypatch.chdir(tmp_path / "here")
    data = load_data(
        small_spec(), SMALL_X, LABEL, data_dir="mnist", spec_dir=tmp_path / "elsewhere",
        env=isolated_env(tmp_path), download=False,
    )
    assert data.source == str(tmp_path / "here" / "mnist")
    assert len(data.train) == 8


def test_not_found_is_one_line_listing_every_place_in_order(tmp_path, no_system_dir):
    partial = tmp_path / "specs" / "mnist"
    fake_mnist(partial)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "empty").mkdir()
    env = isolated_env(tmp_path, GRAPHNET_DATA=str(tmp_path / "empty"))
    (tmp_path / "empty" / "mnist").mkdir()
    with raises_data_error() as info:
        load_data(
            small_spec(path="mnist"), SMALL_X, LABEL, spec_dir=tmp_path / "specs", env=env,
            download=False,
        )
    error = info.value
    assert error.path == "train.data.path"
    assert error.message == (
        f"mnist not found: searched "
        f"1. train.data.path = {partial} (missing t10k-labels-idx1-ubyte); "
        f"2. $GRAPHNET_DATA/mnist = {tmp_path / 'empty' / 'mnist'} (none of the four files); "
        f"3. $GRAPHNET_CACHE/mnist = {tmp_path / 'cache' / 'mnist'} (does not exist); "
        f"4. {no_system_dir / 'mnist'} (does not exist); "
        f"downloading is turned off"
    )
    for name in NAMES:
        assert name in error.hint
    assert "--data-dir" in error.hint and "GRAPHNET_DATA" in error.hint


def test_not_found_names_the_default_cache(tmp_path, no_system_dir):
    with raises_data_error() as info:
        load_data(small_spec(), SMALL_X, LABEL, env={"HOME": str(tmp_path)}, download=False)
    cache = tmp_path / ".cache" / "graphnet" / "mnist"
    assert f"1. ~/.cache/graphnet/mnist = {cache} (does not exist); 2. " in info.value.message


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_mirrors_are_all_reported(tmp_path, no_system_dir, http_root):
    root, base = http_root
    dead = f"http://127.0.0.1:{closed_port()}"
    with raises_data_error() as info:
        load_data(
            small_spec(), SMALL_X, LABEL, env=isolated_env(tmp_path),
            mirrors={"mnist": [base + "/missing/", dead]},
            checksums={"mnist": {n: "0" * 64 for n in NAMES}},
        )
    message = info.value.message
    first = f"train-images-idx3-ubyte from {base}/missing/train-images-idx3-ubyte.gz: HTTP 404"
    second = f"train-images-idx3-ubyte from {dead}/train-images-idx3-ubyte.gz: "
    assert f"downloading into {tmp_path / 'cache' / 'mnist'} failed: {first}" in message
    assert f"; {second}" in message
    assert files_under(tmp_path / "cache") == []


# ----------------------------------------------------------------------------------------------
# Downloading (from a local server)
# ----------------------------------------------------------------------------------------------


def serve_fake_mnist(root: Path, subdir: str = "mnist", n_train: int = 12):
    """Fake MNIST .gz files under root/subdir; returns (arrays, their pinned checksums)."""
    arrays = fake_mnist(root / subdir, n_train=n_train)
    pins = {name: sha256_of_idx(arrays[role]) for role, name in IDX_FILES.items()}
    return arrays, pins


def test_download_into_the_cache(tmp_path, no_system_dir, http_root):
    root, base = http_root
    arrays, pins = serve_fake_mnist(root)
    env = isolated_env(tmp_path)
    data = load_data(
        small_spec(validation=2), SMALL_X, LABEL, env=env,
        mirrors={"mnist": [base + "/mnist"]}, checksums={"mnist": pins},
    )
    cache = tmp_path / "cache" / "mnist"
    assert data.source == str(cache)
    assert files_under(tmp_path / "cache") == sorted(cache / (name + ".gz") for name in NAMES)
    np.testing.assert_array_equal(data.train.y, arrays["y_train"][:10])
    np.testing.assert_allclose(data.test.x, arrays["x_test"].reshape(5, 16) / 255, rtol=1e-6)
    # the next load finds the cache and needs no server
    again = load_data(small_spec(), SMALL_X, LABEL, env=env, mirrors={"mnist": []}, download=False)
    assert again.source == str(cache)


def test_checksum_mismatch_leaves_nothing_in_the_cache(tmp_path, no_system_dir, http_root):
    root, base = http_root
    _, pins = serve_fake_mnist(root)
    pins["train-labels-idx1-ubyte"] = "ab" * 32
    with raises_data_error() as info:
        load_data(
            small_spec(), SMALL_X, LABEL, env=isolated_env(tmp_path),
            mirrors={"mnist": [base + "/mnist/"]}, checksums={"mnist": pins},
        )
    message = info.value.message
    assert (
        f"checksum mismatch for train-labels-idx1-ubyte from {base}/mnist/train-labels-idx1-ubyte.gz: "
        f"expected {'ab' * 32}, got " in message
    )
    assert files_under(tmp_path / "cache") == []


def test_first_mirror_404_second_works(tmp_path, no_system_dir, http_root):
    root, base = http_root
    _, pins = serve_fake_mnist(root, subdir="good")
    data = load_data(
        small_spec(), SMALL_X, LABEL, env=isolated_env(tmp_path),
        mirrors={"mnist": [base + "/gone/", base + "/good/"]}, checksums={"mnist": pins},
    )
    assert data.source == str(tmp_path / "cache" / "mnist")


def test_mirror_with_wrong_files_is_skipped(tmp_path, no_system_dir, http_root):
    root, base = http_root
    serve_fake_mnist(root, subdir="stale", n_train=3)
    _, pins = serve_fake_mnist(root, subdir="good")
    data = load_data(
        small_spec(), SMALL_X, LABEL, env=isolated_env(tmp_path),
        mirrors={"mnist": [base + "/stale/", base + "/good/"]}, checksums={"mnist": pins},
    )
    assert len(data.train) == 12
    assert len(files_under(tmp_path / "cache")) == 4


def test_download_without_a_pin_is_refused(tmp_path, no_system_dir, http_root):
    root, base = http_root
    _, pins = serve_fake_mnist(root)
    del pins["t10k-images-idx3-ubyte"]
    with raises_data_error("no pinned SHA-256 for t10k-images-idx3-ubyte"):
        load_data(
            small_spec(), SMALL_X, LABEL, env=isolated_env(tmp_path),
            mirrors={"mnist": [base + "/mnist/"]}, checksums={"mnist": pins},
        )
    assert files_under(tmp_path / "cache") == []


# ----------------------------------------------------------------------------------------------
# dataset: npz and dataset: idx
# ----------------------------------------------------------------------------------------------


def make_npz(path: Path, n_train: int = 20, n_test: int = 6, shape=(4, 5), **arrays) -> dict:
    """An .npz with uint8 examples x[i] = i (so the row is known) and labels i % 3."""
    content = {
        "x_train": np.repeat(np.arange(n_train, dtype=np.uint8), np.prod(shape)).reshape(n_train, *shape),
        "y_train": np.arange(n_train) % 3,
        "x_test": np.full((n_test, *shape), 7, dtype=np.uint8),
        "y_test": np.arange(n_test) % 3,
    }
    content.update(arrays)
    content = {key: value for key, value in content.items() if value is not None}
    np.savez(path, **content)
    return content


X20 = ("image", InputSpec(shape=[20]))


def npz_spec(**fields) -> DataSpec:
    fields.setdefault("validation", 0)
    return DataSpec(dataset="npz", path="d.npz", **fields)


def test_npz_happy_path(tmp_path):
    content = make_npz(tmp_path / "d.npz")
    data = load_data(npz_spec(validation=5), X20, LABEL, spec_dir=tmp_path)
    assert data.source == str(tmp_path / "d.npz")
    assert (len(data.train), len(data.val), len(data.test)) == (15, 5, 6)
    assert data.train.x.dtype == np.float32 and data.train.x.shape == (15, 20)
    np.testing.assert_allclose(data.val.x[:, 0], np.arange(15, 20) / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.val.y, content["y_train"][15:])
    assert data.test.y.dtype == np.int64
    assert data.classes == 3


def test_npz_keys_rename_the_arrays(tmp_path):
    np.savez(
        tmp_path / "d.npz", a=np.zeros((4, 20), np.float32), b=np.arange(4),
        c=np.ones((2, 20), np.float32), d=np.arange(2),
    )
    spec = npz_spec(keys={"x_train": "a", "y_train": "b", "x_test": "c", "y_test": "d"})
    data = load_data(spec, X20, LABEL, spec_dir=tmp_path)
    assert (len(data.train), len(data.test)) == (4, 2)
    np.testing.assert_array_equal(data.test.x, 1.0)  # float data is not scaled


def test_npz_missing_array_lists_the_ones_present(tmp_path):
    make_npz(tmp_path / "d.npz", y_test=None, labels=np.arange(3))
    with raises_data_error() as info:
        load_data(npz_spec(), X20, LABEL, spec_dir=tmp_path)
    assert "has no array 'y_test'" in info.value.message
    assert "labels, x_test, x_train, y_train" in info.value.message
    assert "keys" in info.value.hint
    assert info.value.path == "train.data.path"


@pytest.mark.parametrize(
    "problem, expected",
    [
        ("missing", "cannot read"),
        ("npy", "single array"),
        ("garbage", "not a readable .npz"),
        ("pickle", "without unpickling"),
    ],
)
def test_npz_bad_files(tmp_path, problem, expected):
    path = tmp_path / "d.npz"
    if problem == "npy":
        with open(path, "wb") as handle:
            np.save(handle, np.zeros(3))
    elif problem == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    elif problem == "pickle":
        make_npz(path, x_train=np.array([{"a": 1}, None], dtype=object))
    with raises_data_error(expected) as info:
        load_data(npz_spec(), X20, LABEL, spec_dir=tmp_path)
    assert info.value.path == "train.data.path"


def test_npz_needs_a_path():
    with raises_data_error("needs `path:`") as info:
        load_data(DataSpec(dataset="npz", validation=0), X20, LABEL)
    assert info.value.path == "train.data.path"


def test_npz_length_mismatch(tmp_path):
    make_npz(tmp_path / "d.npz", y_train=np.arange(19))
    with raises_data_error("x_train .* has 20 examples but y_train .* has 19 labels"):
        load_data(npz_spec(), X20, LABEL, spec_dir=tmp_path)


def test_shape_mismatch_names_the_input_and_both_shapes(tmp_path):
    make_npz(tmp_path / "d.npz")
    spec = npz_spec(preprocess=PreprocessSpec(flatten=False))
    with raises_data_error() as info:
        load_data(spec, X20, LABEL, spec_dir=tmp_path)
    assert info.value.message == "x_train examples have shape [4, 5] but input 'image' expects [20]"
    assert info.value.hint == "set preprocess.flatten: true"
    assert info.value.path == "train.data.preprocess.flatten"


def test_shape_mismatch_flatten_does_not_fix(tmp_path):
    make_npz(tmp_path / "d.npz")
    with raises_data_error() as info:
        load_data(npz_spec(), ("image", InputSpec(shape=[784])), LABEL, spec_dir=tmp_path)
    assert "x_train examples have shape [20] (after preprocess.flatten) but input 'image' expects [784]" in str(info.value)
    assert info.value.path == "inputs.image.shape"


def test_flatten_off_for_image_inputs(tmp_path):
    make_npz(tmp_path / "d.npz")
    with raises_data_error() as info:
        load_data(npz_spec(), ("image", InputSpec(shape=[4, 5])), LABEL, spec_dir=tmp_path)
    assert info.value.hint == "set preprocess.flatten: false"
    spec = npz_spec(preprocess=PreprocessSpec(flatten=False))
    data = load_data(spec, ("image", InputSpec(shape=[4, 5])), LABEL, spec_dir=tmp_path)
    assert data.train.x.shape == (20, 4, 5)


def test_float_examples_into_an_integer_input(tmp_path):
    make_npz(tmp_path / "d.npz")
    with raises_data_error("non-integer values") as info:
        load_data(npz_spec(), ("image", InputSpec(shape=[20], dtype="uint8")), LABEL, spec_dir=tmp_path)
    assert "preprocess.scale: false" in info.value.hint
    spec = npz_spec(preprocess=PreprocessSpec(scale=False))
    data = load_data(spec, ("image", InputSpec(shape=[20], dtype="uint8")), LABEL, spec_dir=tmp_path)
    assert data.train.x.dtype == np.uint8


def test_non_finite_examples_are_refused(tmp_path):
    x = np.zeros((20, 20), np.float32)
    x[3, 4] = np.nan
    make_npz(tmp_path / "d.npz", x_train=x)
    with raises_data_error("x_train contains NaN"):
        load_data(npz_spec(), X20, LABEL, spec_dir=tmp_path)


def test_idx_dataset_with_files_relative_to_path(tmp_path):
    arrays = fake_mnist(tmp_path / "raw")
    rename = {"x_train": "a.idx", "y_train": "b.idx", "x_test": "c.idx", "y_test": "d.idx"}
    for role, name in rename.items():
        write_idx(tmp_path / "raw" / name, arrays[role], gz=role == "x_train")
    spec = DataSpec(dataset="idx", path="raw", files=rename, validation=0)
    data = load_data(spec, SMALL_X, LABEL, spec_dir=tmp_path)
    assert data.source == str(tmp_path / "raw")
    np.testing.assert_array_equal(data.train.y, arrays["y_train"])
    # without `files:`, the standard names
    data = load_data(DataSpec(dataset="idx", path="raw", validation=0), SMALL_X, LABEL, spec_dir=tmp_path)
    assert len(data.train) == 12


def test_idx_dataset_errors(tmp_path):
    fake_mnist(tmp_path / "raw")
    spec = DataSpec(dataset="idx", path="raw", files={"x_train": "a", "y_train": "b"}, validation=0)
    with raises_data_error("`files:` lacks x_test, y_test") as info:
        load_data(spec, SMALL_X, LABEL, spec_dir=tmp_path)
    assert info.value.path == "train.data.files"
    files = {"x_train": "nope", "y_train": "b", "x_test": "c", "y_test": "d"}
    with raises_data_error("cannot read .*nope") as info:
        load_data(DataSpec(dataset="idx", path="raw", files=files), SMALL_X, LABEL, spec_dir=tmp_path)
    assert info.value.path == "train.data.files"


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"files": {"x_train": "a"}}, "only used with dataset: idx"),
        ({"keys": {"x_train": "a"}}, "name arrays of an .npz file"),
        ({"keys": {"x_val": "a"}}, "name arrays of a validation file"),
    ],
)
def test_fields_that_do_not_apply_are_errors(fields, expected):
    # rejected when the spec loads, before any data is read
    with pytest.raises(ValidationError, match=expected):
        DataSpec(**fields)


# ----------------------------------------------------------------------------------------------
# Validation split and limit
# ----------------------------------------------------------------------------------------------


def test_validation_count_holds_out_the_last_examples(tmp_path):
    make_npz(tmp_path / "d.npz")
    data = load_data(npz_spec(validation=4), X20, LABEL, spec_dir=tmp_path)
    np.testing.assert_allclose(data.train.x[:, 0] * 255, np.arange(16), atol=1e-4)
    np.testing.assert_allclose(data.val.x[:, 0] * 255, np.arange(16, 20), atol=1e-4)


def test_validation_zero_means_none(tmp_path):
    make_npz(tmp_path / "d.npz")
    data = load_data(npz_spec(validation=0), X20, LABEL, spec_dir=tmp_path)
    assert data.val is None and len(data.train) == 20


@pytest.mark.parametrize("fraction, held", [(0.1, 2), (0.25, 5), (0.5, 10), (0.95, 19), (0.49, 10)])
def test_validation_fraction(tmp_path, fraction, held):
    make_npz(tmp_path / "d.npz")
    data = load_data(npz_spec(validation=fraction), X20, LABEL, spec_dir=tmp_path)
    assert (len(data.train), len(data.val)) == (20 - held, held)


@pytest.mark.parametrize("validation, expected", [(20, "holds out 20 examples but there are only 20"), (0.01, "holds out no example")])
def test_validation_too_large_or_too_small(tmp_path, validation, expected):
    make_npz(tmp_path / "d.npz")
    with raises_data_error(expected) as info:
        load_data(npz_spec(validation=validation), X20, LABEL, spec_dir=tmp_path)
    assert info.value.path == "train.data.validation"


def test_default_validation_too_large_after_limit(tmp_path):
    make_npz(tmp_path / "d.npz")
    spec = DataSpec(dataset="npz", path="d.npz", limit=10, validation=5000)
    with raises_data_error(r"only 10 training examples \(after limit: 10\)") as info:
        load_data(spec, X20, LABEL, spec_dir=tmp_path)
    assert "fraction" in info.value.hint


def test_default_validation_is_a_tenth_after_limit(tmp_path):
    make_npz(tmp_path / "d.npz")
    data = load_data(DataSpec(dataset="npz", path="d.npz", limit=10), X20, LABEL, spec_dir=tmp_path)
    assert (len(data.train), len(data.val)) == (9, 1)  # automatic: 10% of the 10 kept


def test_validation_file(tmp_path):
    make_npz(tmp_path / "d.npz")
    np.savez(tmp_path / "v.npz", xv=np.full((3, 4, 5), 255, np.uint8), yv=np.array([2, 1, 0]))
    spec = npz_spec(validation=ValidationFile(file="v.npz"), keys={"x_val": "xv", "y_val": "yv"})
    data = load_data(spec, X20, LABEL, spec_dir=tmp_path)
    assert len(data.train) == 20  # nothing held out
    np.testing.assert_array_equal(data.val.x, 1.0)
    np.testing.assert_array_equal(data.val.y, [2, 1, 0])


def test_validation_file_missing_arrays(tmp_path):
    make_npz(tmp_path / "d.npz")
    np.savez(tmp_path / "v.npz", x=np.zeros((3, 20)))
    spec = npz_spec(validation=ValidationFile(file="v.npz"))
    with raises_data_error("has no array 'x_val', 'y_val'; the arrays in it are: x") as info:
        load_data(spec, X20, LABEL, spec_dir=tmp_path)
    assert info.value.path == "train.data.validation.file"


def test_limit_applies_before_the_split(tmp_path):
    make_npz(tmp_path / "d.npz")
    data = load_data(npz_spec(limit=10, validation=0.2), X20, LABEL, spec_dir=tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (8, 2, 6)
    np.testing.assert_allclose(data.val.x[:, 0] * 255, [8, 9], atol=1e-4)


# ----------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------


def test_standardize_uses_the_training_split_only(tmp_path):
    rng = np.random.default_rng(3)
    x_train = np.concatenate([rng.normal(2.0, 3.0, (50, 20)), np.full((10, 20), 1000.0)])
    make_npz(
        tmp_path / "d.npz", x_train=x_train, y_train=np.zeros(60, np.int64),
        x_test=np.full((6, 20), -500.0),
    )
    spec = npz_spec(validation=10, preprocess=PreprocessSpec(standardize=True))
    data = load_data(spec, ("image", InputSpec(shape=[20], dtype="float64")), LABEL, spec_dir=tmp_path)
    mean, std = x_train[:50].mean(), x_train[:50].std()
    assert data.train.x.mean() == pytest.approx(0.0, abs=1e-12)
    assert data.train.x.std() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(data.val.x, (1000.0 - mean) / std, rtol=1e-12)
    np.testing.assert_allclose(data.test.x, (-500.0 - mean) / std, rtol=1e-12)


def test_standardize_after_scale(tmp_path):
    content = make_npz(tmp_path / "d.npz")
    spec = npz_spec(preprocess=PreprocessSpec(standardize=True))
    data = load_data(spec, X20, LABEL, spec_dir=tmp_path)
    scaled = content["x_train"].reshape(20, 20) / 255
    np.testing.assert_allclose(data.train.x, (scaled - scaled.mean()) / scaled.std(), rtol=1e-5, atol=1e-6)


def test_standardize_constant_data_is_an_error(tmp_path):
    make_npz(tmp_path / "d.npz", x_train=np.ones((20, 20), np.float32))
    with raises_data_error("standard deviation 0") as info:
        load_data(npz_spec(preprocess=PreprocessSpec(standardize=True)), X20, LABEL, spec_dir=tmp_path)
    assert info.value.hint == "set preprocess.standardize: false"


def test_one_hot_width_from_the_label_input(tmp_path):
    make_npz(tmp_path / "d.npz")
    spec = npz_spec(validation=2, preprocess=PreprocessSpec(one_hot=True))
    data = load_data(spec, X20, ("target", InputSpec(shape=[5])), spec_dir=tmp_path)
    assert data.classes == 5
    assert data.train.y.dtype == np.float32 and data.train.y.shape == (18, 5)
    np.testing.assert_array_equal(data.train.y.argmax(axis=1), np.arange(18) % 3)
    np.testing.assert_array_equal(data.train.y.sum(axis=1), 1.0)


def test_one_hot_width_from_the_training_labels(tmp_path):
    make_npz(tmp_path / "d.npz", y_test=np.array([0, 1, 2, 3, 0, 0]))
    spec = npz_spec(preprocess=PreprocessSpec(one_hot=True))
    with raises_data_error(r"y_test holds label 3, but the one-hot width is 3 \(the largest training label is 2\)"):
        load_data(spec, X20, ("target", InputSpec(shape=[])), spec_dir=tmp_path)
    make_npz(tmp_path / "d.npz")
    with raises_data_error(r"y_train labels have shape \[3\] after preprocess.one_hot but input 'target' expects \[\]"):
        load_data(spec, X20, ("target", InputSpec(shape=[])), spec_dir=tmp_path)


def test_one_hot_needs_class_ids(tmp_path):
    make_npz(tmp_path / "d.npz", y_train=np.linspace(0, 1, 20))
    spec = npz_spec(preprocess=PreprocessSpec(one_hot=True))
    with raises_data_error("needs one non-negative integer class id per example"):
        load_data(spec, X20, ("target", InputSpec(shape=[3])), spec_dir=tmp_path)


def test_vector_label_input_without_one_hot_says_how(tmp_path):
    make_npz(tmp_path / "d.npz")
    with raises_data_error() as info:
        load_data(npz_spec(), X20, ("target", InputSpec(shape=[3])), spec_dir=tmp_path)
    assert info.value.message == "y_train labels have shape [] but input 'target' expects [3]"
    assert info.value.hint == "set preprocess.one_hot: true"


def test_labels_cast_to_the_label_dtype(tmp_path):
    make_npz(tmp_path / "d.npz", y_train=(np.arange(20) % 3).astype(np.float32))
    data = load_data(npz_spec(), X20, LABEL, spec_dir=tmp_path)
    assert data.train.y.dtype == np.int64
    data = load_data(npz_spec(), X20, ("label", InputSpec(shape=[], dtype="float32")), spec_dir=tmp_path)
    assert data.train.y.dtype == np.float32
    make_npz(tmp_path / "d.npz", y_train=np.full(20, 0.5))
    with raises_data_error("y_train holds non-integer values"):
        load_data(npz_spec(), X20, LABEL, spec_dir=tmp_path)
    make_npz(tmp_path / "d.npz", y_train=np.full(20, 300))
    with raises_data_error("y_train values range from 300 to 300, outside uint8"):
        load_data(npz_spec(), X20, ("label", InputSpec(shape=[], dtype="uint8")), spec_dir=tmp_path)


# ----------------------------------------------------------------------------------------------
# What Data tells the training code: classes, example_shape, source
# ----------------------------------------------------------------------------------------------


def test_classes_counts_the_labels_of_every_split(tmp_path):
    # the largest label is only in the test split, then only in the held-out validation split
    make_npz(tmp_path / "d.npz", y_test=np.array([0, 1, 2, 7, 0, 0]))
    assert load_data(npz_spec(), X20, LABEL, spec_dir=tmp_path).classes == 8
    y_train = np.arange(20) % 3
    y_train[-1] = 5
    make_npz(tmp_path / "d.npz", y_train=y_train)
    data = load_data(npz_spec(validation=2), X20, LABEL, spec_dir=tmp_path)
    assert data.train.y.max() == 2 and data.classes == 6


def test_classes_of_float_class_ids(tmp_path):
    make_npz(tmp_path / "d.npz", y_train=(np.arange(20) % 4).astype(np.float64))
    assert load_data(npz_spec(), X20, LABEL, spec_dir=tmp_path).classes == 4


def test_classes_is_the_width_of_one_hot_labels(tmp_path):
    eye = np.eye(4, dtype=np.float32)
    make_npz(tmp_path / "d.npz", y_train=eye[np.arange(20) % 2], y_test=eye[np.arange(6) % 2])
    target = ("target", InputSpec(shape=[4]))
    assert load_data(npz_spec(), X20, target, spec_dir=tmp_path).classes == 4  # not 2
    make_npz(tmp_path / "d.npz")
    spec = npz_spec(preprocess=PreprocessSpec(one_hot=True))
    assert load_data(spec, X20, target, spec_dir=tmp_path).classes == 4  # not 3


@pytest.mark.parametrize(
    "y_train",
    [np.linspace(-1, 1, 20), np.full(20, 0.5), -(np.arange(20) % 3)],
    ids=["regression", "fractions", "negative"],
)
def test_classes_is_zero_when_the_labels_are_not_classes(tmp_path, y_train):
    make_npz(tmp_path / "d.npz", y_train=y_train)
    target = ("target", InputSpec(shape=[], dtype="float32"))
    assert load_data(npz_spec(), X20, target, spec_dir=tmp_path).classes == 0


def test_example_shape_is_the_shape_before_flatten(tmp_path):
    make_npz(tmp_path / "d.npz")
    data = load_data(npz_spec(validation=3), X20, LABEL, spec_dir=tmp_path)
    assert data.example_shape == (4, 5) and data.train.x.shape == (17, 20)
    spec = npz_spec(preprocess=PreprocessSpec(flatten=False))
    data = load_data(spec, ("image", InputSpec(shape=[4, 5])), LABEL, spec_dir=tmp_path)
    assert data.example_shape == (4, 5) and data.train.x.shape == (20, 4, 5)
    make_npz(tmp_path / "d.npz", shape=(20,))
    assert load_data(npz_spec(), X20, LABEL, spec_dir=tmp_path).example_shape == (20,)


def test_relative_paths_start_at_the_spec_dir_and_source_is_absolute(tmp_path, monkeypatch):
    (tmp_path / "specs").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "work").mkdir()
    make_npz(tmp_path / "data" / "d.npz")
    np.savez(tmp_path / "specs" / "v.npz", x_val=np.zeros((3, 20), np.float32), y_val=np.arange(3))
    (tmp_path / "link").symlink_to(tmp_path / "data")
    monkeypatch.chdir(tmp_path / "work")
    spec = DataSpec(dataset="npz", path="../link/d.npz", validation=ValidationFile(file="v.npz"))
    data = load_data(spec, X20, LABEL, spec_dir=Path("../specs"))  # a relative spec_dir too
    assert data.source == str((tmp_path / "data" / "d.npz").resolve())
    assert Path(data.source).is_absolute()
    assert len(data.val) == 3


def test_idx_source_is_the_absolute_directory(tmp_path, monkeypatch):
    fake_mnist(tmp_path / "specs" / "raw")
    monkeypatch.chdir(tmp_path)
    data = load_data(DataSpec(dataset="idx", path="raw", validation=0), SMALL_X, LABEL,
                     spec_dir=Path("specs"))
    assert data.source == str((tmp_path / "specs" / "raw").resolve())


# ----------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------


def row_data(n: int = 23, features: int = 6):
    """x[i] = [i, i + 0.01, i + 0.02, ...] and y[i] = i: any mix-up is visible."""
    x = np.arange(n)[:, None] + 0.01 * np.arange(features)[None, :]
    return x, np.arange(n)


def test_shuffled_batches_keep_pairs_and_cover_every_example_once():
    x, y = row_data()
    x_before, y_before = x.copy(), y.copy()
    batches = list(shuffled_batches(x, y, 5, np.random.default_rng(0)))
    assert [len(bx) for bx, _ in batches] == [5, 5, 5, 5, 3]  # the partial batch is kept
    for bx, by in batches:
        np.testing.assert_array_equal(bx[:, 0], by)  # pairs kept
        np.testing.assert_allclose(bx - bx[:, :1], np.tile(0.01 * np.arange(6), (len(bx), 1)))  # features in order
    seen = np.concatenate([by for _, by in batches])
    assert sorted(seen.tolist()) == list(range(23))
    assert seen.tolist() != list(range(23))  # actually shuffled
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)


def test_shuffled_batches_new_order_each_epoch_same_with_same_seed():
    x, y = row_data(50)
    rng = np.random.default_rng(7)
    epoch1 = np.concatenate([by for _, by in shuffled_batches(x, y, 8, rng)])
    epoch2 = np.concatenate([by for _, by in shuffled_batches(x, y, 8, rng)])
    assert epoch1.tolist() != epoch2.tolist()
    rng = np.random.default_rng(7)
    again1 = np.concatenate([by for _, by in shuffled_batches(x, y, 8, rng)])
    again2 = np.concatenate([by for _, by in shuffled_batches(x, y, 8, rng)])
    np.testing.assert_array_equal(epoch1, again1)
    np.testing.assert_array_equal(epoch2, again2)


def test_shuffled_batches_draws_its_permutation_when_called():
    x, y = row_data(30)
    rng = np.random.default_rng(1)
    first = shuffled_batches(x, y, 30, rng)
    second = shuffled_batches(x, y, 30, rng)
    late_second, late_first = next(second)[1], next(first)[1]  # consumed out of order
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(late_first, next(shuffled_batches(x, y, 30, rng))[1])
    np.testing.assert_array_equal(late_second, next(shuffled_batches(x, y, 30, rng))[1])


def test_shuffled_batches_multi_dimensional_examples():
    x = np.arange(10 * 2 * 3).reshape(10, 2, 3)
    y = np.arange(10)
    for bx, by in shuffled_batches(x, y, 4, np.random.default_rng(0)):
        np.testing.assert_array_equal(bx, x[by])


def test_shuffled_batches_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="x has 3 examples but y has 2"):
        shuffled_batches(np.zeros((3, 2)), np.zeros(2), 1, np.random.default_rng(0))


def test_split_length_and_mismatch():
    assert len(Split(np.zeros((4, 2)), np.zeros(4))) == 4
    with raises_data_error("received 4 examples and 3 labels"):
        Split(np.zeros((4, 2)), np.zeros(3))
