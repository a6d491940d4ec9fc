"""Datasets of your own: ``dataset: npz``, ``dataset: idx``, and a validation .npz file.

Relative paths are resolved against the spec file's directory. An .npz is read with
``allow_pickle=False``: nothing is ever unpickled.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from ...errors import DataError
from ...spec import DataSpec, ValidationFile
from .common import one_line, resolve
from .idx import IDX_FILES, find_idx_files, read_idx_files
from .split import Split, pair

NPZ_ROLES = ("x_train", "y_train", "x_test", "y_test")
VAL_ROLES = ("x_val", "y_val")
NPZ_HINT = "write it with numpy.savez(file, x_train=..., y_train=..., ...)"


def read_idx_dataset(spec: DataSpec, spec_dir: Path) -> tuple[Split, Split, Path]:
    """(train, test, directory) of ``dataset: idx``: the four files in ``files:`` (default:
    the MNIST names), relative to ``path:``."""
    base = resolve(spec.path, spec_dir) if spec.path else spec_dir
    if spec.files is None:
        files, missing = find_idx_files(base)
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
        files = {role: resolve(spec.files[role], base) for role in IDX_FILES}
    train, test = read_idx_files(files, where="train.data.files")
    return train, test, base


def read_npz_dataset(spec: DataSpec, spec_dir: Path) -> tuple[Split, Split, Path]:
    """(train, test, file) of ``dataset: npz``: the arrays x_train, y_train, x_test, y_test
    (or the names in ``keys:``) of the file ``path:``."""
    if not spec.path:
        raise DataError(
            "dataset: npz needs `path:` naming the .npz file",
            path="train.data.path",
            hint="set train.data.path: data.npz (relative to the spec file)",
        )
    file = resolve(spec.path, spec_dir)
    arrays, origin = _load_npz(file, NPZ_ROLES, spec.keys, "train.data.path")
    train = pair(arrays, "x_train", "y_train", origin, "train.data.path")
    test = pair(arrays, "x_test", "y_test", origin, "train.data.path")
    return train, test, file


def read_validation_file(validation: ValidationFile, spec: DataSpec, spec_dir: Path) -> Split:
    """The validation set of ``validation: {file: ...}``: arrays x_val and y_val (or the names
    in ``keys:``)."""
    file = resolve(validation.file, spec_dir)
    where = "train.data.validation.file"
    arrays, origin = _load_npz(file, VAL_ROLES, spec.keys, where)
    return pair(arrays, "x_val", "y_val", origin, where)


def _load_npz(
    file: Path, roles: tuple[str, ...], keys: dict[str, str] | None, where: str
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """role -> array, read from the .npz ``file`` without ever unpickling (the array named
    ``keys[role]``, else ``role``); and role -> where the array came from, for messages."""
    keys = keys or {}
    names = {role: keys.get(role, role) for role in roles}
    renamed = any(role in keys for role in roles)
    try:
        handle = open(file, "rb")
    except OSError as error:
        raise DataError(
            f"cannot read {file}: {one_line(error.strerror or error)}",
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
        arrays = {role: _npz_array(archive, name, file, where) for role, name in names.items()}
    origin = {role: f"array '{name}' of {file}" for role, name in names.items()}
    return arrays, origin


def _open_npz(handle, file: Path, where: str):
    try:
        archive = np.load(handle, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(
            f"{file} is not a readable .npz file: {one_line(error)}", path=where, hint=NPZ_HINT
        ) from None
    if isinstance(archive, np.ndarray):
        raise DataError(
            f"{file} holds a single array (.npy), not an .npz archive of named arrays",
            path=where,
            hint=NPZ_HINT,
        )
    return archive


def _npz_array(archive, name: str, file: Path, where: str) -> np.ndarray:
    try:
        return archive[name]
    except ValueError as error:  # object arrays need pickle, which is refused
        raise DataError(
            f"array '{name}' of {file} cannot be read without unpickling: {one_line(error)}",
            path=where,
            hint="store plain numeric arrays (no dtype=object)",
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(
            f"array '{name}' of {file} is corrupt: {one_line(error)}",
            path=where,
            hint="write the file again",
        ) from None
