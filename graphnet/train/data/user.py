"""Datasets of your own: ``dataset: npz``, ``dataset: idx``, a validation .npz file, and
``--data-dir`` (``--data`` for eval) pointing at an .npz file or a folder of the four standard
IDX files (for any dataset), or at the folder of a ``dataset: idx``'s files.

Each reader returns the arrays of the roles asked for only (``Raw``): scoring the test split
reads x_test and y_test, never the training examples. An .npz may carry ``class_names``.

Relative paths in the spec are resolved against the spec file's directory, a relative
``--data-dir`` against the working directory. An .npz is read with ``allow_pickle=False``:
nothing is ever unpickled.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from ...errors import DataError
from ...spec import DataSpec, ValidationFile
from .common import located, one_line, resolve
from .idx import IDX_FILES, find_idx_files, read_idx_roles
from .split import Raw, Split, pair

NPZ_ROLES = ("x_train", "y_train", "x_test", "y_test")
VAL_ROLES = ("x_val", "y_val")
CLASS_NAMES = "class_names"  # the optional array of an .npz naming the classes, one per class id
MAX_CLASS_NAMES = 1 << 16
MAX_NAME_CHARS = 256
NPZ_HINT = "write it with numpy.savez(file, x_train=..., y_train=..., ...)"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz is a zip archive (an empty one: the second)
DATA_DIR = "--data-dir"
SPEC_RELATIVE = "relative paths start at the spec file's directory"


def is_npz_file(path: Path) -> bool:
    """Whether ``--data-dir path`` names an .npz file rather than a directory: its name ends
    in .npz (existing or not, so that a typo is reported as a missing file), or it is a regular
    file that starts like a zip archive. Never opens anything but a regular file (a FIFO would
    block)."""
    if path.suffix.lower() == ".npz" and not path.is_dir():
        return True
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(4) in ZIP_MAGICS
    except OSError:
        return False


def from_data_dir(spec: DataSpec, data_dir: str, roles: tuple[str, ...] = NPZ_ROLES,
                  flag: str = DATA_DIR) -> Raw:
    """The arrays of ``roles`` read from where ``--data-dir`` (``flag``) points instead of the
    spec's ``path:``: an .npz file (any dataset: the arrays x_train, y_train, x_test, y_test, or
    for dataset: npz the names in ``keys:``), a folder holding the four standard IDX files (any
    dataset), or for ``dataset: idx`` the folder its ``files:`` are in. (A named dataset's folder
    is searched for by ``find``.) Errors about the place itself name the flag."""
    path = resolve(data_dir, None)
    label = f"{flag} {data_dir}"
    if is_npz_file(path):
        keys = spec.keys if spec.dataset == "npz" else None
        arrays, origin, names = _load_npz(path, roles, keys, label, relative=_cwd_relative(flag))
        return Raw(arrays, origin, label, path, f"npz file {path.name} (given with {flag})", names)
    if path.is_dir() and spec.dataset != "idx" and not find_idx_files(path)[1]:
        files = {role: file for role, file in find_idx_files(path)[0].items() if role in roles}
        arrays = read_idx_roles(files, label)
        return Raw(arrays, {r: str(f) for r, f in files.items()}, label, path,
                   f"IDX files in folder {path.name} (given with {flag})")
    if spec.dataset == "npz":
        raise DataError(
            f"dataset: npz reads one .npz file, but {path} {_what_it_is(path)}",
            file=label,
            hint=_npz_inside(path, flag) or f"pass the .npz file: {flag} DIR/data.npz",
        )
    if not path.is_dir():
        raise DataError(
            f"dataset: idx reads the four IDX files of a directory, but {path} "
            f"{_what_it_is(path)}",
            file=label,
            hint="pass the directory holding the files, or an .npz file",
        )
    raw = read_idx_dataset(spec.model_copy(update={"path": str(path)}), path.parent, roles)
    raw.place = f"IDX files in folder {path.name} (given with {flag})"
    return raw


def _cwd_relative(flag: str) -> str:
    return f"a relative {flag} starts at the working directory"


def _what_it_is(path: Path) -> str:
    if not path.exists():
        return "does not exist"
    if path.is_dir():
        return "is a directory"
    return "is not an .npz file (it does not start like a zip archive)"


def _npz_inside(path: Path, flag: str = DATA_DIR) -> str | None:
    """A hint naming the .npz files in directory ``path`` (None when there are none)."""
    if not path.is_dir():
        return None
    found = sorted(child.name for child in path.glob("*.npz"))[:5]
    if not found:
        return None
    if len(found) == 1:
        return f"it holds {found[0]}: pass it, {flag} {path / found[0]}"
    return f"it holds {', '.join(found)}: pass one of them, e.g. {flag} {path / found[0]}"


def read_idx_dataset(spec: DataSpec, spec_dir: Path, roles: tuple[str, ...] = NPZ_ROLES) -> Raw:
    """The arrays of ``roles`` of ``dataset: idx``: the files in ``files:`` (default: the MNIST
    names), relative to ``path:``."""
    base = resolve(spec.path, spec_dir) if spec.path else spec_dir
    if spec.files is None:
        found, missing = find_idx_files(base)
        missing = [IDX_FILES[role] for role in roles if IDX_FILES[role] in missing]
        if missing:
            raise DataError(
                f"dataset: idx without `files:` looks for the standard file names in {base}, "
                f"but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not there",
                path="train.data.files",
                hint="list your files: "
                "files: {x_train: ..., y_train: ..., x_test: ..., y_test: ...}",
            )
        files = {role: found[role] for role in roles}
    else:
        absent = [role for role in IDX_FILES if role not in spec.files]
        if absent:
            raise DataError(
                f"`files:` lacks {', '.join(absent)}; received {sorted(spec.files)}",
                path="train.data.files",
                hint="give all four: x_train, y_train, x_test, y_test",
            )
        files = {role: resolve(spec.files[role], base) for role in roles}
    arrays = read_idx_roles(files, "train.data.files")
    origin = {role: str(file) for role, file in files.items()}
    return Raw(arrays, origin, "train.data.files", base, f"IDX files in folder {base.name}")


def read_npz_dataset(spec: DataSpec, spec_dir: Path, roles: tuple[str, ...] = NPZ_ROLES) -> Raw:
    """The arrays of ``roles`` of ``dataset: npz``: x_train, y_train, x_test, y_test (or the
    names in ``keys:``) of the file ``path:``, and the classes' names if it has them."""
    if not spec.path:
        raise DataError(
            "dataset: npz needs `path:` naming the .npz file",
            path="train.data.path",
            hint="set train.data.path: data.npz (relative to the spec file)",
        )
    file = resolve(spec.path, spec_dir)
    arrays, origin, names = _load_npz(file, roles, spec.keys, "train.data.path")
    return Raw(arrays, origin, "train.data.path", file, f"npz file {file.name}", names)


def read_validation_file(validation: ValidationFile, spec: DataSpec, spec_dir: Path) -> Split:
    """The validation set of ``validation: {file: ...}``: arrays x_val and y_val (or the names
    in ``keys:``)."""
    file = resolve(validation.file, spec_dir)
    where = "train.data.validation.file"
    arrays, origin, _ = _load_npz(file, VAL_ROLES, spec.keys, where)
    return pair(arrays, "x_val", "y_val", origin, where)


def _load_npz(
    file: Path,
    roles: tuple[str, ...],
    keys: dict[str, str] | None,
    where: str,
    relative: str = SPEC_RELATIVE,
) -> tuple[dict[str, np.ndarray], dict[str, str], list[str] | None]:
    """role -> array, read from the .npz ``file`` without ever unpickling (the array named
    ``keys[role]``, else ``role``); role -> where the array came from, for messages; and the
    names of the classes when the file has an array ``class_names`` (else None). Only the arrays
    asked for are read: an .npz is a zip archive read one member at a time.

    ``where`` is the spec path that named the file, or ``--data-dir ...`` (then errors carry
    it as their ``file``: it is not a spec path to locate); ``relative`` says what a relative
    path starts at, for the hint when the file cannot be opened."""
    place = located(where)
    keys = keys or {}
    names = {role: keys.get(role, role) for role in roles}
    renamed = any(role in keys for role in roles)
    if file.exists() and not file.is_file():  # opening a FIFO for reading would block forever
        kind = "a directory" if file.is_dir() else "not a regular file (a FIFO, a device?)"
        raise DataError(f"{file} is {kind}, not an .npz file", hint=NPZ_HINT, **place)
    try:
        handle = open(file, "rb")
    except OSError as error:
        raise DataError(
            f"cannot read {file}: {one_line(error.strerror or error)}",
            hint=f"check the path ({relative})",
            **place,
        ) from None
    # NOTE: we open the file ourselves: np.load leaks its own handle when the zip is corrupt.
    with handle:
        archive = _open_npz(handle, file, place)
        present = sorted(archive.files)
        missing = [f"'{name}'" for name in names.values() if name not in present]
        if missing:
            raise DataError(
                f"{file} has no array {', '.join(missing)}; the arrays in it are: "
                f"{', '.join(present) or 'none'}",
                **({"path": "train.data.keys"} if renamed else place),
                hint="rename the arrays, or map them with keys: {"
                + ", ".join(f"{role}: NAME" for role in names)
                + "}",
            )
        arrays = {role: _npz_array(archive, name, file, place) for role, name in names.items()}
        class_names = _class_names(archive, file, place) if CLASS_NAMES in present else None
    origin = {role: f"array '{name}' of {file}" for role, name in names.items()}
    return arrays, origin, class_names


def _class_names(archive, file: Path, place: dict[str, str]) -> list[str]:
    """The array ``class_names``: one string per class id, in order (kept in the model file, so
    that `graphnet predict` says "Sneaker" rather than 7)."""
    names = _npz_array(archive, CLASS_NAMES, file, place)
    problem = None
    if names.dtype.kind != "U" or names.ndim != 1:
        problem = f"is {names.dtype} of shape {list(names.shape)}"
    elif not 1 <= len(names) <= MAX_CLASS_NAMES:
        problem = f"holds {len(names):,} names"
    elif max(len(str(name)) for name in names) > MAX_NAME_CHARS:
        problem = f"holds a name longer than {MAX_NAME_CHARS} characters"
    if problem is not None:
        raise DataError(
            f"array '{CLASS_NAMES}' of {file} {problem}; it names the classes, one string per class id",
            hint=f"store numpy.array(['cat', 'dog', ...]) (1 to {MAX_CLASS_NAMES:,} strings of at most "
            f"{MAX_NAME_CHARS} characters), or leave it out",
            **place,
        )
    return [str(name) for name in names]


def _open_npz(handle, file: Path, place: dict[str, str]):
    try:
        archive = np.load(handle, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(
            f"{file} is not a readable .npz file: {one_line(error)}", hint=NPZ_HINT, **place
        ) from None
    if isinstance(archive, np.ndarray):
        raise DataError(
            f"{file} holds a single array (.npy), not an .npz archive of named arrays",
            hint=NPZ_HINT,
            **place,
        )
    return archive


def _npz_array(archive, name: str, file: Path, place: dict[str, str]) -> np.ndarray:
    try:
        return archive[name]
    except ValueError as error:  # object arrays need pickle, which is refused
        raise DataError(
            f"array '{name}' of {file} cannot be read without unpickling: {one_line(error)}",
            hint="store plain numeric arrays (no dtype=object)",
            **place,
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(
            f"array '{name}' of {file} is corrupt: {one_line(error)}",
            hint="write the file again",
            **place,
        ) from None
