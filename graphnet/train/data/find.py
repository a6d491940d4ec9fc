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
    return [directory for _, directory in _places(name, data_dir, spec_path, spec_dir, env, DATA_DIR)]


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
    *,
    roles: tuple[str, ...] = tuple(IDX_FILES),
    flag: str = DATA_DIR,
) -> tuple[Optional[Path], str, list[str]]:
    """The first directory of the search holding the files of ``roles`` (all four by default;
    scoring the test split needs only the two test files), None when none does; what setting
    named it (``$GRAPHNET_DATA/mnist``, ``--data-dir``; the system directory names itself), and
    each directory passed over before it, with why (``"$GRAPHNET_DATA/mnist = /x (does not
    exist)"``).

    A ``--data-dir`` (``flag``) without the files raises ``DataError``: the user named that
    directory, and silently training on another copy found later would surprise them.
    """
    wanted = {IDX_FILES[role] for role in roles}
    passed_over = []
    for what, directory in _places(name, data_dir, spec_path, spec_dir, env, flag):
        _, missing = find_idx_files(directory)
        missing = [file_name for file_name in missing if file_name in wanted]
        if not missing:
            return directory, what or str(directory), passed_over
        if what == flag:
            raise _data_dir_error(name, directory, missing, flag)
        place = f"{what} = {directory}" if what else str(directory)
        why = _why_not(directory, missing, len(wanted))
        if what.startswith("$GRAPHNET_DATA"):
            why += _one_level_too_deep(name, directory.parent)
        passed_over.append(f"{place} ({why})")
    return None, "", passed_over


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


def _places(name, data_dir, spec_path, spec_dir, env, flag) -> list[tuple[str, Path]]:
    """(what, directory) in search order, duplicates dropped; ``what`` names the setting
    the directory came from ("" for the system directory, which is its own name)."""
    env = os.environ if env is None else env
    places = []
    if data_dir:
        places.append((flag, resolve(data_dir, None)))
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


def _why_not(directory: Path, missing: list[str], wanted: int = len(IDX_FILES)) -> str:
    if not directory.exists():
        return "does not exist"
    if not directory.is_dir():
        return "not a directory"
    if len(missing) == len(IDX_FILES):
        return "none of the four files"
    if len(missing) == wanted:
        return "none of " + ", ".join(missing)
    return "missing " + ", ".join(missing)


def _one_level_too_deep(name: str, graphnet_data: Path) -> str:
    """What to add to why $GRAPHNET_DATA/<name> was passed over when $GRAPHNET_DATA itself
    holds the four files: it names the folder that HOLDS <name>/ ("" otherwise)."""
    if find_idx_files(graphnet_data)[1]:
        return ""
    if graphnet_data.name == name:
        fix = f"set GRAPHNET_DATA={graphnet_data.parent}"
    else:
        fix = f"pass --data-dir {graphnet_data}"
    return (
        f"; GRAPHNET_DATA itself holds the four files, but it should name the folder that "
        f"holds {name}/: {fix}"
    )


def _data_dir_error(name: str, directory: Path, missing: list[str], flag: str = DATA_DIR) -> DataError:
    if not directory.exists():
        why = "it does not exist"
    elif not directory.is_dir():
        why = "it is not a directory"
    elif len(missing) == len(IDX_FILES) and (inside := _dataset_inside(directory)):
        return _one_level_too_high(name, directory, inside, flag)
    else:
        why = "missing " + ", ".join(f"{file_name}(.gz)" for file_name in missing)
    return DataError(
        f"{flag} {directory} does not hold the {name} files: {why}",
        hint=f"put the four IDX files there, or drop {flag} to search train.data.path, "
        f"GRAPHNET_DATA, the cache and {SYSTEM_DIR}",
    )


def _dataset_inside(directory: Path) -> list[str]:
    """The named datasets whose four files are in a sub-folder of ``directory`` named after
    them: ``--data-dir`` given the folder GRAPHNET_DATA should name (the one that holds
    mnist/) instead of mnist/ itself."""
    return [
        candidate for candidate in NAMED_DATASETS
        if not find_idx_files(directory / candidate)[1]
    ]


def _one_level_too_high(name: str, directory: Path, inside: list[str], flag: str = DATA_DIR) -> DataError:
    """--data-dir names the folder holding the datasets ``inside``: point at the right one."""
    if name in inside:
        return DataError(
            f"{flag} {directory} does not hold the {name} files, but found {name}/ inside: "
            f"use {directory / name}",
            hint=f"pass {flag} {directory / name}, or set GRAPHNET_DATA={directory} and "
            f"drop {flag}",
        )
    found = ", ".join(f"{each}/" for each in inside)
    return DataError(
        f"{flag} {directory} does not hold the {name} files; found {found} inside, but "
        f"the spec's dataset is {name}",
        path="train.data.dataset",
        hint=f"set train.data.dataset: {inside[0]} to train on it, or pass a directory "
        f"holding the {name} files",
    )
