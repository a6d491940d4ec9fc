"""Where a named dataset (mnist, fashion-mnist) is looked for, and the errors when it is not there.

The search order; the first directory holding all four IDX files wins (each may be gzipped, as
NAME.gz)::

    1. --data-dir                   strict: a --data-dir without the four files is an error
    2. train.data.path              relative to the spec file's directory
    3. $GRAPHNET_DATA/<name>
    4. $GRAPHNET_CACHE/<name>       default ~/.cache/graphnet/<name>; downloads go here
    5. /usr/share/datasets/<name>   Debian's dataset-fashion-mnist installs there
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

from ...errors import DataError
from .common import resolve
from .idx import IDX_FILES, find_idx_files

NAMED_DATASETS = ("mnist", "fashion-mnist")
SYSTEM_DIR = Path("/usr/share/datasets")  # Debian's dataset-* packages install here
DATA_DIR = "--data-dir"


def search_dirs(
    name: str,
    data_dir: str | None,
    spec_path: str | None,
    spec_dir: Path | None,
    env: Mapping[str, str] | None,
) -> list[Path]:
    """The directories searched for dataset ``name``, in order, duplicates dropped.

    ``data_dir`` is ``--data-dir``; ``spec_path`` is ``train.data.path`` (relative to
    ``spec_dir``); then ``$GRAPHNET_DATA/<name>``, the cache (``cache_dir``) and
    ``/usr/share/datasets/<name>``.
    """
    return [directory for _, directory in _places(name, data_dir, spec_path, spec_dir, env)]


def cache_dir(name: str, env: Mapping[str, str] | None = None) -> Path:
    """Where downloads of dataset ``name`` go: ``$GRAPHNET_CACHE/<name>``, by default
    ``~/.cache/graphnet/<name>`` (``~`` is ``$HOME`` from ``env``)."""
    env = os.environ if env is None else env
    if env.get("GRAPHNET_CACHE"):
        return resolve(env["GRAPHNET_CACHE"], None) / name
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".cache" / "graphnet" / name


def find_dataset(
    name: str,
    data_dir: str | None,
    spec_path: str | None,
    spec_dir: Path | None,
    env: Mapping[str, str] | None,
) -> tuple[Optional[Path], list[str]]:
    """The first directory of the search holding the four files (None when none does), and
    each directory passed over before it, with why (``"$GRAPHNET_DATA/mnist = /x (does not
    exist)"``).

    A ``--data-dir`` without the four files raises ``DataError``: the user named that
    directory, and silently training on another copy found later would surprise them.
    """
    passed_over = []
    for what, directory in _places(name, data_dir, spec_path, spec_dir, env):
        _, missing = find_idx_files(directory)
        if not missing:
            return directory, passed_over
        if what == DATA_DIR:
            raise _data_dir_error(name, directory, missing)
        place = f"{what} = {directory}" if what else str(directory)
        passed_over.append(f"{place} ({_why_not(directory, missing)})")
    return None, passed_over


def not_found(
    name: str, passed_over: list[str], target: Path | None, failures: list[str]
) -> DataError:
    """The one-line error: every place searched, in order, then why the download into
    ``target`` failed (``target`` None: downloading was turned off)."""
    searched = "; ".join(f"{number}. {place}" for number, place in enumerate(passed_over, 1))
    if target is None:
        download = "downloading is turned off"
    else:
        download = f"downloading into {target} failed: " + "; ".join(failures)
    names = ", ".join(IDX_FILES.values())
    return DataError(
        f"{name} not found: searched {searched}; {download}",
        path="train.data.path",
        hint=f"put {names} (each .gz or not) in one of these directories, pass --data-dir DIR, "
        f"or set GRAPHNET_DATA to a directory holding {name}/",
    )


def _places(name, data_dir, spec_path, spec_dir, env) -> list[tuple[str, Path]]:
    """(what, directory) in search order, duplicates dropped; ``what`` names the setting
    the directory came from ("" for the system directory, which is its own name)."""
    env = os.environ if env is None else env
    places = []
    if data_dir:
        places.append((DATA_DIR, resolve(data_dir, None)))
    if spec_path:
        places.append(("train.data.path", resolve(spec_path, spec_dir)))
    if env.get("GRAPHNET_DATA"):
        places.append((f"$GRAPHNET_DATA/{name}", resolve(env["GRAPHNET_DATA"], None) / name))
    cache = "$GRAPHNET_CACHE" if env.get("GRAPHNET_CACHE") else "~/.cache/graphnet"
    places.append((f"{cache}/{name}", cache_dir(name, env)))
    places.append(("", SYSTEM_DIR / name))
    unique: list[tuple[str, Path]] = []
    for what, directory in places:
        if directory not in [seen for _, seen in unique]:
            unique.append((what, directory))
    return unique


def _why_not(directory: Path, missing: list[str]) -> str:
    if not directory.exists():
        return "does not exist"
    if not directory.is_dir():
        return "not a directory"
    if len(missing) == len(IDX_FILES):
        return "none of the four files"
    return "missing " + ", ".join(missing)


def _data_dir_error(name: str, directory: Path, missing: list[str]) -> DataError:
    if not directory.exists():
        why = "it does not exist"
    elif not directory.is_dir():
        why = "it is not a directory"
    else:
        why = "missing " + ", ".join(f"{file_name}(.gz)" for file_name in missing)
    return DataError(
        f"{DATA_DIR} {directory} does not hold the {name} files: {why}",
        hint=f"put the four IDX files there, or drop {DATA_DIR} to search train.data.path, "
        f"GRAPHNET_DATA, the cache and {SYSTEM_DIR}",
    )
