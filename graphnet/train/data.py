"""Training data: find and read the examples, split off validation, preprocess, and batch them.

``load_data`` is what the training loop calls. It reads one of four sources (``train.data``):

    mnist, fashion-mnist   the four IDX files of a named dataset, searched for in a list of
                           directories (``search_dirs``) and downloaded into the cache if absent
    idx                    four IDX files of your own (``files:``, relative to ``path:``)
    npz                    one .npz file holding x_train, y_train, x_test, y_test (or the
                           names in ``keys:``)

then, in this order:

    limit        keep the first N training examples
    validation   hold out the LAST `count` training examples (a fraction is rounded to a count),
                 or read x_val/y_val from a separate .npz; 0 means no validation set
    scale        uint8 examples -> x / 255 (float examples are left as they are)
    standardize  (x - mean) / std, one scalar mean and std computed on the training split only
    flatten      each example to a vector
    one_hot      class ids -> one-hot rows (width: the label input's [C], else max train label + 1)

and finally checks every split's per-example shape and dtype against the graph inputs the
examples and labels feed, so a mismatch is reported before training starts, with the fix.

The named-dataset search order (the first directory holding all four files wins; each file may
be gzipped, as NAME.gz)::

    1. --data-dir
    2. train.data.path              (relative to the spec file's directory)
    3. $GRAPHNET_DATA/<name>
    4. $GRAPHNET_CACHE/<name>       (default ~/.cache/graphnet/<name>; downloads go here)
    5. /usr/share/datasets/<name>   (Debian's dataset-fashion-mnist installs there)

Only downloads are checked against the pinned SHA-256 of the decompressed files (files already on
disk may be your own); every IDX file's structure is always checked. Nothing is ever unpickled.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional

import numpy as np

from ..errors import DataError
from ..spec import DataSpec, InputSpec, PreprocessSpec, ValidationFile

# ----------------------------------------------------------------------------------------------
# Constants
# ----------------------------------------------------------------------------------------------

NAMED_DATASETS = ("mnist", "fashion-mnist")

# role -> file name, in the order files are searched for, downloaded and listed in messages
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

# SHA-256 of the DECOMPRESSED files: stable whatever gzip produced the .gz.
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

SYSTEM_DIR = Path("/usr/share/datasets")  # Debian's dataset-* packages install here
DOWNLOAD_TIMEOUT_S = 60
CHUNK = 1 << 20

NPZ_ROLES = ("x_train", "y_train", "x_test", "y_test")
VAL_ROLES = ("x_val", "y_val")

GZIP_MAGIC = b"\x1f\x8b"
# IDX type code -> numpy dtype (multi-byte values are big-endian in the file)
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
FLATTEN = "train.data.preprocess.flatten"
ONE_HOT = "train.data.preprocess.one_hot"
IDX_HINT = "an IDX file starts with 00 00, a type code (08 = uint8) and the number of dimensions"


# ----------------------------------------------------------------------------------------------
# The public API
# ----------------------------------------------------------------------------------------------


@dataclass
class Split:
    """Examples ``x`` and their labels ``y``; axis 0 indexes the examples in both."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise DataError(
                f"a split needs as many labels as examples; received {len(self.x)} examples "
                f"and {len(self.y)} labels",
                hint="x and y must come from the same dataset",
            )

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Data:
    """The splits ready to train on; ``classes`` is 0 when the labels are not class ids."""

    train: Split
    val: Optional[Split]
    test: Split
    classes: int
    source: str  # the directory or file the examples came from


def load_data(
    spec: DataSpec,
    x_input: tuple[str, InputSpec],
    y_input: tuple[str, InputSpec],
    *,
    data_dir: str | None = None,
    spec_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    mirrors: dict[str, list[str]] | None = None,
    checksums: dict[str, dict[str, str]] | None = None,
    download: bool = True,
) -> Data:
    """Read, split and preprocess the data ``spec`` describes, checked against the two inputs.

    ``x_input`` and ``y_input`` are ``(name, InputSpec)`` of the graph inputs fed the examples
    and the labels. ``spec_dir`` is the spec file's directory (relative paths are resolved
    against it; default: the working directory). ``env`` replaces ``os.environ``; ``mirrors``
    (dataset -> base URLs) and ``checksums`` (dataset -> file -> SHA-256) replace ``MIRRORS``
    and ``CHECKSUMS``. Every bad input raises ``DataError``.
    """
    env = os.environ if env is None else env
    spec_dir = Path(spec_dir) if spec_dir is not None else Path.cwd()
    train, test, source = _read_source(
        spec, data_dir, spec_dir, env, mirrors, checksums, download
    )
    if spec.limit is not None:
        train = Split(train.x[: spec.limit], train.y[: spec.limit])
    train, val = _hold_out(train, spec, spec_dir)

    splits = {"train": train, "val": val, "test": test}
    present = {name: split for name, split in splits.items() if split is not None}
    xs = _prepare_examples(
        {f"x_{name}": split.x for name, split in present.items()}, spec.preprocess, *x_input
    )
    ys, classes = _prepare_labels(
        {f"y_{name}": split.y for name, split in present.items()}, spec.preprocess, *y_input
    )
    ready = {name: Split(xs[f"x_{name}"], ys[f"y_{name}"]) for name in present}
    return Data(
        train=ready["train"], val=ready.get("val"), test=ready["test"], classes=classes,
        source=source,
    )


def search_dirs(
    name: str,
    data_dir: str | None,
    spec_path: str | None,
    spec_dir: Path | None,
    env: Mapping[str, str] | None,
) -> list[Path]:
    """The directories searched for a named dataset, in order (duplicates dropped).

    ``data_dir`` is ``--data-dir``; ``spec_path`` is ``train.data.path`` (resolved against
    ``spec_dir``); then ``$GRAPHNET_DATA/<name>``, the cache (``cache_dir``) and
    ``/usr/share/datasets/<name>``.
    """
    env = os.environ if env is None else env
    candidates = []
    if data_dir:
        candidates.append(_resolve(data_dir, None))
    if spec_path:
        candidates.append(_resolve(spec_path, spec_dir))
    if env.get("GRAPHNET_DATA"):
        candidates.append(_resolve(env["GRAPHNET_DATA"], None) / name)
    candidates.append(cache_dir(name, env))
    candidates.append(SYSTEM_DIR / name)
    unique: list[Path] = []
    for candidate in candidates:
        if candidate not in unique:
            unique.append(candidate)
    return unique


def cache_dir(name: str, env: Mapping[str, str] | None = None) -> Path:
    """Where downloads of dataset ``name`` go: ``$GRAPHNET_CACHE/<name>``, by default
    ``~/.cache/graphnet/<name>`` (``~`` is ``$HOME`` from ``env``)."""
    env = os.environ if env is None else env
    if env.get("GRAPHNET_CACHE"):
        return _resolve(env["GRAPHNET_CACHE"], None) / name
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".cache" / "graphnet" / name


def shuffled_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of ``(x_batch, y_batch)`` in a random order; the last batch may be smaller.

    ONE permutation of the example axis (axis 0) is drawn from ``rng`` when this is called, and
    the same permutation indexes ``x`` and ``y``, so every example keeps its label and its
    features stay in order. ``x`` and ``y`` are never modified.
    """
    # NOTE: never np.random.shuffle: shuffling x and y separately (or along the wrong axis)
    # silently destroys the data; one index array for both cannot.
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; received {batch_size}")
    order = rng.permutation(len(x))
    return _batches(x, y, order, batch_size)


def _batches(x, y, order: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield x[index], y[index]


# ----------------------------------------------------------------------------------------------
# Reading the source
# ----------------------------------------------------------------------------------------------


def _read_source(spec, data_dir, spec_dir, env, mirrors, checksums, download):
    """(train, test, source) as read, before any limit, split or preprocessing."""
    if spec.dataset in NAMED_DATASETS:
        return _read_named(spec, data_dir, spec_dir, env, mirrors, checksums, download)
    if spec.dataset == "idx":
        return _read_idx_dataset(spec, spec_dir)
    return _read_npz_dataset(spec, spec_dir)


def _read_named(spec, data_dir, spec_dir, env, mirrors, checksums, download):
    """Find a named dataset's directory (downloading it if needed) and read its four files."""
    name = spec.dataset
    dirs = search_dirs(name, data_dir, spec.path, spec_dir, env)
    notes = []
    for directory in dirs:
        files, missing = _find_idx_files(directory)
        if not missing:
            train, test = _read_idx_files(files, where="train.data.path")
            return train, test, str(directory)
        notes.append(_why_not(directory, missing))

    target = cache_dir(name, env)
    failures = []
    if download:
        urls = (MIRRORS if mirrors is None else mirrors).get(name, [])
        pins = (CHECKSUMS if checksums is None else checksums).get(name, {})
        failures = _download(name, target, urls, pins)
        if not failures:
            files, _ = _find_idx_files(target)
            train, test = _read_idx_files(files, where="train.data.path")
            return train, test, str(target)
    raise _not_found(name, dirs, notes, target if download else None, failures)


def _find_idx_files(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """The four IDX files in ``directory`` (each as NAME.gz or NAME) and the names missing."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, file_name in IDX_FILES.items():
        for candidate in (directory / (file_name + ".gz"), directory / file_name):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            missing.append(file_name)
    return found, missing


def _why_not(directory: Path, missing: list[str]) -> str:
    if not directory.exists():
        return "does not exist"
    if not directory.is_dir():
        return "not a directory"
    if len(missing) == len(IDX_FILES):
        return "none of the four files"
    return "missing " + ", ".join(missing)


def _not_found(
    name: str, dirs: list[Path], notes: list[str], target: Path | None, failures: list[str]
) -> DataError:
    """One error: every place searched, in order, and why the download failed."""
    lines = [f"cannot find the {name} dataset; searched, in order:"]
    for number, (directory, note) in enumerate(zip(dirs, notes), start=1):
        lines.append(f"  {number}. {directory} ({note})")
    if target is None:
        lines.append("and downloading is turned off")
    else:
        lines.append(f"and downloading into {target} failed:")
        lines.extend(f"  - {failure}" for failure in failures)
    names = ", ".join(IDX_FILES.values())
    return DataError(
        "\n".join(lines),
        path="train.data.path",
        hint=f"put the four files {names} (each may be gzipped, as NAME.gz) in one of these "
        f"directories, pass --data-dir DIR, or set GRAPHNET_DATA to a directory holding {name}/",
    )


def _read_idx_dataset(spec: DataSpec, spec_dir: Path):
    """dataset: idx -- the four files in ``files:`` (default: the MNIST names), under ``path:``."""
    base = _resolve(spec.path, spec_dir) if spec.path else spec_dir
    if spec.files is None:
        files, missing = _find_idx_files(base)
        if missing:
            raise DataError(
                f"dataset: idx without `files:` looks for the standard file names in {base}, "
                f"but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not there",
                path="train.data.files",
                hint="list your files: "
                "files: {x_train: ..., y_train: ..., x_test: ..., y_test: ...}",
            )
    else:
        absent = [role for role in IDX_FILES if role not in spec.files]
        if absent:
            raise DataError(
                f"`files:` lacks {', '.join(absent)}; received {sorted(spec.files)}",
                path="train.data.files",
                hint="give all four: x_train, y_train, x_test, y_test",
            )
        files = {role: _resolve(spec.files[role], base) for role in IDX_FILES}
    train, test = _read_idx_files(files, where="train.data.files")
    return train, test, str(base)


def _read_idx_files(files: dict[str, Path], where: str) -> tuple[Split, Split]:
    arrays = {}
    for role, file in files.items():
        try:
            arrays[role] = read_idx(file)
        except DataError as error:
            error.path = error.path or where
            raise
    return (
        _pair(arrays, "x_train", "y_train", files, where),
        _pair(arrays, "x_test", "y_test", files, where),
    )


def _pair(arrays: dict, x_role: str, y_role: str, origin: Mapping, where: str) -> Split:
    """Split(arrays[x_role], arrays[y_role]), with a clear error if their lengths differ."""
    x, y = arrays[x_role], arrays[y_role]
    for role, array in ((x_role, x), (y_role, y)):
        if array.ndim == 0:
            raise DataError(
                f"{role} ({origin[role]}) is a single value, not an array of examples",
                path=where,
                hint="axis 0 must index the examples",
            )
    if len(x) != len(y):
        raise DataError(
            f"{x_role} ({origin[x_role]}) has {len(x)} examples but {y_role} "
            f"({origin[y_role]}) has {len(y)} labels",
            path=where,
            hint="the examples and the labels must belong together",
        )
    return Split(x, y)


def _read_npz_dataset(spec: DataSpec, spec_dir: Path):
    if not spec.path:
        raise DataError(
            "dataset: npz needs `path:` naming the .npz file",
            path="train.data.path",
            hint="set train.data.path: data.npz (relative to the spec file)",
        )
    file = _resolve(spec.path, spec_dir)
    keys = spec.keys or {}
    names = {role: keys.get(role, role) for role in NPZ_ROLES}
    arrays = _load_npz(file, names, "train.data.path", renamed=bool(keys))
    origin = {role: f"array '{names[role]}' of {file}" for role in NPZ_ROLES}
    train = _pair(arrays, "x_train", "y_train", origin, "train.data.path")
    test = _pair(arrays, "x_test", "y_test", origin, "train.data.path")
    return train, test, str(file)


def _load_npz(
    file: Path, names: dict[str, str], where: str, renamed: bool
) -> dict[str, np.ndarray]:
    """role -> array, read from the .npz ``file`` without ever unpickling."""
    try:
        handle = open(file, "rb")
    except OSError as error:
        raise DataError(
            f"cannot read {file}: {error.strerror or error}",
            path=where,
            hint="check the path (relative paths start at the spec file's directory)",
        ) from None
    # NOTE: we open the file ourselves: np.load leaks its own handle when the zip is corrupt.
    with handle:
        archive = _open_npz(handle, file, where)
        present = sorted(archive.files)
        missing = [f"'{name}'" for name in names.values() if name not in present]
        if missing:
            raise DataError(
                f"{file} has no array {', '.join(missing)}; the arrays in it are: "
                f"{', '.join(present) or 'none'}",
                path="train.data.keys" if renamed else where,
                hint="rename the arrays, or map them with keys: {"
                + ", ".join(f"{role}: NAME" for role in names)
                + "}",
            )
        return {role: _npz_array(archive, name, file, where) for role, name in names.items()}


def _open_npz(handle, file: Path, where: str):
    try:
        archive = np.load(handle, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(
            f"{file} is not a readable .npz file: {error}",
            path=where,
            hint="write it with numpy.savez(file, x_train=..., y_train=..., ...)",
        ) from None
    if isinstance(archive, np.ndarray):
        raise DataError(
            f"{file} holds a single array (.npy), not an .npz archive of named arrays",
            path=where,
            hint="write it with numpy.savez(file, x_train=..., y_train=..., ...)",
        )
    return archive


def _npz_array(archive, name: str, file: Path, where: str) -> np.ndarray:
    try:
        return archive[name]
    except ValueError as error:  # object arrays need pickle, which is refused
        raise DataError(
            f"array '{name}' of {file} cannot be read without unpickling: {error}",
            path=where,
            hint="store plain numeric arrays (no dtype=object)",
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(
            f"array '{name}' of {file} is corrupt: {error}", path=where, hint="write the file again"
        ) from None


def _resolve(path: str | Path, base: Path | None) -> Path:
    """``path`` with ``~`` expanded, relative to ``base`` (default: the working directory)."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    return (base if base is not None else Path.cwd()) / path


# ----------------------------------------------------------------------------------------------
# IDX files
# ----------------------------------------------------------------------------------------------


def read_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file (gzipped or not: detected by its magic bytes, not its name).

    Layout: ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the values,
    big-endian, row-major. Types: 08 uint8, 09 int8, 0B int16, 0C int32, 0D float32, 0E float64.
    The payload must be exactly as long as the sizes say. Returns a writable array in native
    byte order.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise _idx_error(path, f"is {len(raw)} bytes long, too short for an IDX header")
    zero1, zero2, code, ndim = raw[:4]
    if zero1 != 0 or zero2 != 0:
        found = " ".join(f"{byte:02x}" for byte in raw[:4])
        raise _idx_error(
            path, f"does not start with an IDX magic number (00 00 type ndim); found {found}"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} {d.name}" for c, d in IDX_DTYPES.items())
        raise _idx_error(path, f"has unknown IDX data type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise _idx_error(path, "declares 0 dimensions")
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise _idx_error(
            path,
            f"is truncated: its header declares {ndim} dimensions but the file is {len(raw)} bytes",
        )
    dims = struct.unpack(f">{ndim}I", raw[4:start])
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    actual = len(raw) - start
    if actual != expected:
        problem = "is truncated" if actual < expected else "has trailing bytes"
        raise _idx_error(
            path,
            f"{problem}: its header says {list(dims)} {dtype.name} values ({expected} bytes) "
            f"but the payload is {actual} bytes",
        )
    values = np.frombuffer(raw, dtype=dtype, offset=start).reshape(dims)
    return values.astype(dtype.newbyteorder("="))  # a native-order, writable copy


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when they start with the gzip magic."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(
            f"cannot read {path}: {error.strerror or error}",
            hint="check that the file exists and is readable",
        ) from None
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{path} is gzip-compressed but cannot be decompressed ({error})",
            hint="the file is truncated or corrupt: copy or download it again",
        ) from None


def _idx_error(path: Path, problem: str) -> DataError:
    return DataError(f"{path} {problem}", hint=IDX_HINT + "; copy or download the file again")


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of the file's content, decompressed first if it is gzipped."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == GZIP_MAGIC
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# Downloading
# ----------------------------------------------------------------------------------------------


def _download(name: str, target: Path, urls: list[str], pins: Mapping[str, str]) -> list[str]:
    """Download the four files into ``target``; the failures (empty on success).

    All four are fetched into a staging directory next to ``target`` and verified there; only
    when every one matches its pinned SHA-256 are they renamed (atomically) into ``target``.
    Whatever fails, the staging directory is removed: a bad download never reaches the cache.
    """
    if not urls:
        return [f"no download mirrors are known for {name}"]
    root = target.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-download-", dir=root))
    except OSError as error:
        return [f"cannot create the cache directory {root}: {error.strerror or error}"]
    try:
        for file_name in IDX_FILES.values():
            failures = _fetch_verified(file_name, urls, pins.get(file_name), staging)
            if failures:
                return failures
        target.mkdir(parents=True, exist_ok=True)
        for file_name in IDX_FILES.values():
            os.replace(staging / (file_name + ".gz"), target / (file_name + ".gz"))
        return []
    except OSError as error:
        return [f"cannot write into the cache directory {target}: {error.strerror or error}"]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch_verified(
    file_name: str, urls: list[str], expected: str | None, staging: Path
) -> list[str]:
    """Fetch NAME.gz from the first mirror that serves it with the pinned SHA-256; the
    failures of every mirror tried (empty on success, the file then at staging/NAME.gz)."""
    if not expected:
        return [f"no pinned SHA-256 for {file_name}: refusing an unverified download"]
    failures = []
    for base in urls:
        url = base.rstrip("/") + "/" + file_name + ".gz"
        partial = staging / (file_name + ".gz.part")
        try:
            _fetch(url, partial)
            actual = file_sha256(partial)
        except urllib.error.HTTPError as error:
            failures.append(f"{file_name} from {url}: HTTP {error.code} {error.reason}")
        except urllib.error.URLError as error:
            failures.append(f"{file_name} from {url}: {error.reason}")
        except (OSError, EOFError, ValueError, zlib.error, http.client.HTTPException) as error:
            failures.append(f"{file_name} from {url}: {error}")
        else:
            if actual == expected.lower():
                os.replace(partial, staging / (file_name + ".gz"))
                return []
            failures.append(
                f"checksum mismatch for {file_name} from {url}: expected {expected}, got {actual}"
            )
        partial.unlink(missing_ok=True)
    return failures


def _fetch(url: str, destination: Path) -> None:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        with open(destination, "wb") as out:
            shutil.copyfileobj(response, out, CHUNK)


# ----------------------------------------------------------------------------------------------
# Validation split
# ----------------------------------------------------------------------------------------------


def _hold_out(train: Split, spec: DataSpec, spec_dir: Path) -> tuple[Split, Optional[Split]]:
    """(train, val): the last examples held out, or a separate file (see the module doc)."""
    validation = spec.validation
    if isinstance(validation, ValidationFile):
        return train, _read_validation_file(validation, spec, spec_dir)
    n = len(train)
    limited = f" (after limit: {spec.limit})" if spec.limit is not None else ""
    if isinstance(validation, float):
        count = int(validation * n + 0.5)  # rounded half up
        if count == 0:
            raise DataError(
                f"validation fraction {validation} of {n} training examples{limited} holds out "
                "no example",
                path="train.data.validation",
                hint="use a larger fraction, a count, or 0 for no validation set",
            )
    else:
        count = int(validation)
    if count == 0:
        return train, None
    if count >= n:
        raise DataError(
            f"validation holds out {count} examples but there are only {n} training "
            f"examples{limited}",
            path="train.data.validation",
            hint=f"use a count below {n}, a fraction such as 0.1, or 0 for no validation set",
        )
    cut = n - count
    return Split(train.x[:cut], train.y[:cut]), Split(train.x[cut:], train.y[cut:])


def _read_validation_file(validation: ValidationFile, spec: DataSpec, spec_dir: Path) -> Split:
    file = _resolve(validation.file, spec_dir)
    keys = spec.keys or {}
    names = {role: keys.get(role, role) for role in VAL_ROLES}
    where = "train.data.validation.file"
    arrays = _load_npz(file, names, where, renamed=any(role in keys for role in VAL_ROLES))
    origin = {role: f"array '{names[role]}' of {file}" for role in VAL_ROLES}
    return _pair(arrays, "x_val", "y_val", origin, where)


# ----------------------------------------------------------------------------------------------
# Preprocessing and checks against the inputs
# ----------------------------------------------------------------------------------------------


def _prepare_examples(
    xs: dict[str, np.ndarray], pre: PreprocessSpec, name: str, spec: InputSpec
) -> dict[str, np.ndarray]:
    """scale, standardize, flatten, then check shape and cast to the input's dtype."""
    target = np.dtype(spec.dtype)
    work = target if target.kind == "f" else np.dtype(np.float32)
    for role, x in xs.items():
        _check_numeric(x, role)
    raw_shapes = {role: x.shape[1:] for role, x in xs.items()}
    if pre.scale:
        xs = {role: _scale(x, work) for role, x in xs.items()}
    if pre.standardize:
        mean, std = _mean_std(xs["x_train"])
        if std == 0 or not math.isfinite(std):
            raise DataError(
                f"cannot standardize: the training examples have standard deviation {std}",
                path="train.data.preprocess.standardize",
                hint="set preprocess.standardize: false",
            )
        xs = {role: _standardize(x, mean, std, work) for role, x in xs.items()}
    if pre.flatten:
        xs = {role: x.reshape(len(x), -1) if x.ndim > 2 else x for role, x in xs.items()}
    for role, x in xs.items():
        _check_example_shape(role, x, raw_shapes[role], pre, name, spec)
    where = "train.data.preprocess.scale"
    xs = {role: _cast(x, target, role, name, where) for role, x in xs.items()}
    for role, x in xs.items():
        _check_finite(x, role)
    return xs


def _scale(x: np.ndarray, work: np.dtype) -> np.ndarray:
    """uint8 pixels -> [0, 1]; anything else is left as it is."""
    if x.dtype != np.uint8:
        return x
    scaled = x.astype(work)
    scaled /= 255
    return scaled


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    """One scalar mean and (population) std over all of ``x``, accumulated in float64 in
    chunks of examples so no float64 copy of the whole set is made."""
    count = x.size
    if count == 0:
        return 0.0, 0.0
    rows = max(1, CHUNK // max(1, x[0].size))
    total = 0.0
    for start in range(0, len(x), rows):
        total += float(x[start : start + rows].sum(dtype=np.float64))
    mean = total / count
    squares = 0.0
    for start in range(0, len(x), rows):
        deviation = x[start : start + rows].astype(np.float64) - mean
        squares += float(np.vdot(deviation, deviation))
    return mean, math.sqrt(squares / count)


def _standardize(x: np.ndarray, mean: float, std: float, work: np.dtype) -> np.ndarray:
    out = x.astype(work, copy=True)
    out -= mean
    out /= std
    return out


def _check_example_shape(role, x, raw_shape, pre: PreprocessSpec, name, spec: InputSpec) -> None:
    shape, expected = list(x.shape[1:]), list(spec.shape)
    if shape == expected:
        return
    flattened = " (after preprocess.flatten)" if pre.flatten and list(raw_shape) != shape else ""
    message = f"{role} examples have shape {shape}{flattened} but input '{name}' expects {expected}"
    if not pre.flatten and len(expected) == 1 and math.prod(shape) == expected[0]:
        raise DataError(message, path=FLATTEN, hint="set preprocess.flatten: true")
    if pre.flatten and list(raw_shape) == expected:
        raise DataError(message, path=FLATTEN, hint="set preprocess.flatten: false")
    raise DataError(
        message,
        path=f"inputs.{name}.shape",
        hint=f"declare input '{name}' with shape {shape}, or feed it data of shape {expected}",
    )


def _prepare_labels(
    ys: dict[str, np.ndarray], pre: PreprocessSpec, name: str, spec: InputSpec
) -> tuple[dict[str, np.ndarray], int]:
    """one_hot if asked, then check shape and cast to the label input's dtype; also the class
    count (one-hot width; else max class id + 1 over all splits; 0 if not class ids)."""
    target = np.dtype(spec.dtype)
    for role, y in ys.items():
        _check_numeric(y, role)
    ids = all(_are_class_ids(y) for y in ys.values())
    if pre.one_hot:
        ys, classes = _one_hot_all(ys, ids, name, spec)
    elif ids:
        classes = max((int(y.max()) + 1 for y in ys.values() if y.size), default=0)
    elif all(y.ndim == 2 for y in ys.values()):
        classes = ys["y_train"].shape[1]  # already one-hot (or scores)
    else:
        classes = 0
    for role, y in ys.items():
        _check_label_shape(role, y, pre, name, spec)
    ys = {role: _cast(y, target, role, name, f"inputs.{name}.dtype") for role, y in ys.items()}
    for role, y in ys.items():
        _check_finite(y, role)
    return ys, classes


def _are_class_ids(y: np.ndarray) -> bool:
    """One non-negative whole number per example."""
    if y.ndim != 1:
        return False
    if y.size == 0:
        return True
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.floor(y)):
            return False
    elif y.dtype.kind not in "iub":
        return False
    return bool(y.min() >= 0)


def _one_hot_all(ys, ids: bool, name: str, spec: InputSpec):
    expected = list(spec.shape)
    if not ids:
        shapes = {role: list(y.shape[1:]) for role, y in ys.items()}
        raise DataError(
            f"preprocess.one_hot needs one non-negative integer class id per example; the "
            f"labels have per-example shapes {shapes} and dtype {ys['y_train'].dtype}",
            path=ONE_HOT,
            hint="set preprocess.one_hot: false if the labels are already encoded",
        )
    train = ys["y_train"]
    if len(expected) == 1:
        width, why = expected[0], f"input '{name}' has shape {expected}"
    else:
        width = int(train.max()) + 1 if train.size else 0
        why = f"the largest training label is {width - 1}"
    for role, y in ys.items():
        if y.size and int(y.max()) >= width:
            raise DataError(
                f"{role} holds label {int(y.max())}, but the one-hot width is {width} ({why})",
                path=ONE_HOT,
                hint=f"declare input '{name}' with shape [C], C greater than every label",
            )
    dtype = np.dtype(spec.dtype)
    identity = np.eye(width, dtype=dtype)
    return {role: identity[y.astype(np.int64)] for role, y in ys.items()}, width


def _check_label_shape(role, y, pre: PreprocessSpec, name, spec: InputSpec) -> None:
    shape, expected = list(y.shape[1:]), list(spec.shape)
    if shape == expected:
        return
    if pre.one_hot:
        message = (
            f"{role} labels have shape {shape} after preprocess.one_hot but input '{name}' "
            f"expects {expected}"
        )
        raise DataError(
            message,
            path=ONE_HOT,
            hint=f"set preprocess.one_hot: false, or declare input '{name}' with shape {shape}",
        )
    message = f"{role} labels have shape {shape} but input '{name}' expects {expected}"
    if shape == [] and len(expected) == 1:
        raise DataError(message, path=ONE_HOT, hint="set preprocess.one_hot: true")
    raise DataError(
        message,
        path=f"inputs.{name}.shape",
        hint=f"declare input '{name}' with shape {shape}",
    )


def _check_numeric(array: np.ndarray, role: str) -> None:
    if array.dtype.kind not in "biuf":
        raise DataError(
            f"{role} has dtype {array.dtype}; graphnet reads numbers only",
            path="train.data",
            hint="store integer or float arrays",
        )


def _check_finite(array: np.ndarray, role: str) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataError(
            f"{role} contains NaN or infinite values",
            path="train.data",
            hint="clean the data before training",
        )


def _cast(array: np.ndarray, target: np.dtype, role: str, name: str, where: str) -> np.ndarray:
    """``array`` as ``target``, refusing casts that would change values (float -> int of
    non-whole numbers, integers out of range)."""
    if array.dtype == target:
        return array
    if target.kind in "iu" and array.size:
        if array.dtype.kind == "f":
            whole = np.isfinite(array).all() and np.all(array == np.floor(array))
            if not whole:
                raise DataError(
                    f"{role} holds non-integer values ({array.dtype}) but input '{name}' "
                    f"expects {target}",
                    path=where,
                    hint=f"declare input '{name}' as float32"
                    + (" or set preprocess.scale: false" if role.startswith("x") else ""),
                )
        low, high = array.min(), array.max()
        info = np.iinfo(target)
        if low < info.min or high > info.max:
            raise DataError(
                f"{role} values range from {low} to {high}, outside {target} of input '{name}'",
                path=f"inputs.{name}.dtype",
                hint=f"declare input '{name}' with a wider dtype",
            )
    return array.astype(target)
