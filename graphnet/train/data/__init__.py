"""Training data: find and read the examples, split off validation, preprocess, and batch them.

``load_data`` is what the training loop calls. It reads one of four sources (``train.data``):

    mnist, fashion-mnist   the four IDX files of a named dataset, searched for in a list of
                           directories (``find``) and downloaded into the cache if absent
                           (``download``, verified against pinned SHA-256 checksums)
    idx                    four IDX files of your own (``files:``, relative to ``path:``)
    npz                    one .npz file holding x_train, y_train, x_test, y_test (or the
                           names in ``keys:``)

``--data-dir`` (``data_dir``) replaces where the examples are read from: an .npz file (for any
dataset: the arrays x_train, y_train, x_test, y_test), the directory of a named dataset's IDX
files, or for ``dataset: idx`` the directory ``files:`` are relative to.

then, in this order:

    limit        keep the first N training examples
    validation   hold out the LAST `count` training examples (a fraction is rounded to a count;
                 null, the default, is 10% capped at 5,000), or read x_val/y_val from a
                 separate .npz; 0 means no validation set. A hold-out that leaves less than
                 half of the examples to train on is a warning (``Data.warnings``)
    scale        uint8 examples -> x / 255 (float examples are left as they are)
    standardize  (x - mean) / std, one scalar mean and std computed on the training split only
    flatten      each example to a vector
    one_hot      class ids -> one-hot rows (width: the label input's [C], else max train label + 1)

and finally checks every split's per-example shape and dtype against the graph inputs the
examples and labels feed (``prepare``), so a mismatch is reported before training starts.

What the model file keeps (``Data.preprocess``, ``Data.class_names``, ``Data.description``): the
preprocessing record with the fitted statistics (``record``), the classes' names, and a
description of the data that holds no absolute path. ``load_split`` reads ONE split of the data
a model was trained on (``graphnet eval``): the test split reads only the test files and
standardizes with the recorded statistics; the validation split, a hold-out of the training
examples, reads the training files (or the validation file).

Relative paths in the spec are resolved against the spec file's directory. Only downloads are
checked against the pinned checksums (files already on disk may be your own); every IDX file's
structure is always checked. Nothing is ever unpickled. Every error is a one-line ``DataError``.

The modules, each depending only on those listed before it::

    common     path resolution, one-line messages
    split      Split, the validation hold-out, shuffled_batches
    idx        the IDX format
    find       the search order of a named dataset, the cache directory, not-found errors
    download   mirrors, pinned checksums, the staged and verified download
    user       dataset: npz, dataset: idx, a validation file
    prepare    preprocessing and the checks against the inputs
    record     the preprocessing record of a model file; new raw examples prepared from it
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from ...errors import DataError
from ...spec import DataSpec, InputSpec, ValidationFile
from .common import resolve
from .download import CHECKSUMS, MIRRORS, download_dataset, file_sha256
from .find import NAMED_DATASETS, SYSTEM_DIR, cache_dir, find_dataset, not_found, search_dirs
from .idx import IDX_FILES, find_idx_files, read_idx, read_idx_roles
from .prepare import Statistics, prepare_examples, prepare_labels
from .record import CLASS_NAMES, apply_record, class_count, labels_record, preprocess_record
from .split import Raw, Split, auto_validation_count, hold_out, shuffled_batches, split_warnings
from .user import from_data_dir, is_npz_file, read_idx_dataset, read_npz_dataset, read_validation_file

__all__ = [
    "CHECKSUMS",
    "CLASS_NAMES",
    "IDX_FILES",
    "MIRRORS",
    "NAMED_DATASETS",
    "SYSTEM_DIR",
    "Data",
    "Part",
    "Split",
    "Statistics",
    "apply_record",
    "auto_validation_count",
    "cache_dir",
    "file_sha256",
    "find_idx_files",
    "load_data",
    "load_split",
    "read_idx",
    "search_dirs",
    "shuffled_batches",
]

DATA_DIR = "--data-dir"
TRAIN_ROLES = ("x_train", "y_train")
TEST_ROLES = ("x_test", "y_test")


@dataclass
class Data:
    """The splits ready to train on, and what the training code checks before it starts.

    ``classes``: the number of classes the labels imply, over ALL splits (train, val, test).
    Integer class ids (one non-negative whole number per example): the largest id + 1. One-hot
    labels (``preprocess.one_hot``, or rows already in the files): the row width. Anything else
    (negative or fractional targets, mixed shapes): 0, meaning "not class labels".

    ``example_shape``: one example's shape as read, before ``flatten`` (``(28, 28)`` for
    MNIST, whatever ``train.x`` has become).

    ``source``: the absolute path (symbolic links resolved) of the directory or file the
    examples came from (printed by ``graphnet run``; never stored in a model file).

    ``warnings``: things that are allowed but probably not meant (a validation split that
    leaves less than half of the examples to train on), one line each; ``graphnet run`` prints
    them under its header.

    For the model file: ``preprocess``, the preprocessing record with the statistics fitted on
    the training split (see ``record``; None for examples that are single numbers);
    ``class_names``, one per class when known (MNIST, Fashion-MNIST, an .npz's ``class_names``);
    ``description``, where the data came from and the split sizes, without absolute paths.
    """

    train: Split
    val: Optional[Split]
    test: Split
    classes: int
    example_shape: tuple[int, ...]
    source: str
    warnings: list[str] = field(default_factory=list)
    preprocess: Optional[dict[str, Any]] = None
    class_names: Optional[list[str]] = None
    description: str = ""

    def classes_record(self) -> Optional[dict[str, Any]]:
        """``{"count": ..., "names": ...}`` for the model file; None when the labels are not
        classes."""
        labels = (self.preprocess or {}).get("labels")
        if labels is not None:
            return {"count": labels["classes"], "names": labels["names"]}
        if self.classes < 1:
            return None
        return {"count": class_count(self.classes, self.class_names, "train.data"), "names": self.class_names}


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
    and the labels. ``data_dir`` is ``--data-dir`` (relative to the working directory): an
    .npz file, or a directory that must hold the files (``from_data_dir``; a named dataset's
    is searched for first, strictly). ``spec_dir`` is the spec file's directory, against which
    relative spec paths are resolved (default: the working directory). ``env`` replaces
    ``os.environ``; ``mirrors`` (dataset -> base URLs) and ``checksums`` (dataset -> file ->
    SHA-256) replace ``MIRRORS`` and ``CHECKSUMS``; ``download=False`` never downloads. Every
    bad input raises ``DataError``.
    """
    env = os.environ if env is None else env
    spec_dir = Path(spec_dir).absolute() if spec_dir is not None else Path.cwd()
    raw = _read(spec, TRAIN_ROLES + TEST_ROLES, data_dir, DATA_DIR, spec_dir, env, mirrors, checksums, download)
    train, test = raw.split("train"), raw.split("test")

    if spec.limit is not None:
        train = Split(train.x[: spec.limit], train.y[: spec.limit])
    warnings: list[str] = []
    if isinstance(spec.validation, ValidationFile):
        val = read_validation_file(spec.validation, spec, spec_dir)
    else:
        before = len(train)
        train, val = hold_out(train, spec.validation, spec.limit)
        warnings = split_warnings(spec.validation, before, val)

    example_shape = tuple(int(size) for size in train.x.shape[1:])
    raw_dtype = train.x.dtype
    splits = {"train": train, "val": val, "test": test}
    present = {name: split for name, split in splits.items() if split is not None}
    xs, statistics = prepare_examples(
        {f"x_{name}": split.x for name, split in present.items()}, spec.preprocess, *x_input
    )
    ys, classes = prepare_labels(
        {f"y_{name}": split.y for name, split in present.items()}, spec.preprocess, *y_input
    )
    ready = {name: Split(xs[f"x_{name}"], ys[f"y_{name}"]) for name in present}
    names = raw.class_names
    if names is None and spec.dataset in CLASS_NAMES and len(CLASS_NAMES[spec.dataset]) >= classes:
        names = CLASS_NAMES[spec.dataset]  # not for other data read in their place (--data-dir)
    labels = labels_record(y_input[0], spec.preprocess, class_count(classes, names, "train.data.path"), names)
    return Data(
        train=ready["train"],
        val=ready.get("val"),
        test=ready["test"],
        classes=classes,
        example_shape=example_shape,
        source=str(Path(raw.source).resolve()),
        warnings=warnings,
        preprocess=preprocess_record(x_input[0], example_shape, raw_dtype, spec.preprocess, statistics, labels),
        class_names=names,
        description=describe(spec, raw.place, ready),
    )


@dataclass
class Part:
    """One split of a model's data, prepared for scoring (``load_split``): the examples and
    labels, the number of classes its labels imply, where it came from (``source``, absolute,
    for printing) and whether the training examples had to be read (``read_train``)."""

    split: Split
    name: str
    classes: int
    source: str
    read_train: bool


def load_split(
    spec: DataSpec,
    x_input: tuple[str, InputSpec],
    y_input: tuple[str, InputSpec],
    which: str = "test",
    *,
    statistics: Statistics | None = None,
    data: str | None = None,
    flag: str = "--data",
    spec_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    mirrors: dict[str, list[str]] | None = None,
    checksums: dict[str, dict[str, str]] | None = None,
    download: bool = True,
) -> Part:
    """The ``which`` split ("test" or "val") of the data ``spec`` describes, prepared as
    ``load_data`` prepares it, reading no more than it needs (``graphnet eval``).

    "test" reads the test files only; "val" is a hold-out of the training examples, so it reads
    the training files (after ``limit``) and keeps the hold-out, or reads ``validation: {file}``.
    ``standardize`` uses ``statistics`` (the model file's) when given; without them it fits
    them on the training examples, which are then read. ``data`` is where to read from instead
    of the spec's place (``--data``, ``flag`` in messages): an .npz file or a folder of IDX files
    (any dataset). The rest is as for ``load_data``."""
    if which not in ("test", "val"):
        raise ValueError(f"which is 'test' or 'val', not {which!r}")
    env = os.environ if env is None else env
    spec_dir = Path(spec_dir).absolute() if spec_dir is not None else Path.cwd()
    pre = spec.preprocess
    fit = pre.standardize and (statistics is None or statistics.mean is None)
    from_file = which == "val" and isinstance(spec.validation, ValidationFile)
    roles = (TRAIN_ROLES if which == "val" or fit else ()) + (TEST_ROLES if which == "test" else ())
    if from_file and not fit:
        roles = ()
    raw = _read(spec, roles, data, flag, spec_dir, env, mirrors, checksums, download) if roles else None
    train = raw.split("train") if raw is not None and "x_train" in raw.arrays else None
    if train is not None and spec.limit is not None:
        train = Split(train.x[: spec.limit], train.y[: spec.limit])
    if which == "test":
        part = raw.split("test")
        source = raw.source
        if fit and not isinstance(spec.validation, ValidationFile):
            train, _ = hold_out(train, spec.validation, spec.limit)  # training fitted on what it kept
    elif from_file:
        part = read_validation_file(spec.validation, spec, spec_dir)
        source = resolve(spec.validation.file, spec_dir)
    else:
        train, part = hold_out(train, spec.validation, spec.limit)
        if part is None:
            raise DataError("the model's spec holds out no validation split",
                            path="train.data.validation", hint="score the test split")
        source = raw.source
    xs = {f"x_{which}": part.x}
    if fit:  # no recorded statistics: fit them on the training examples, as training did
        xs = {"x_train": train.x, **xs}
    prepared, _ = prepare_examples(xs, pre, *x_input, statistics=None if fit else statistics)
    ys, classes = prepare_labels({f"y_{which}": part.y}, pre, *y_input)
    split = Split(prepared[f"x_{which}"], ys[f"y_{which}"])
    return Part(split, which, classes, str(Path(source).resolve()), read_train=train is not None)


def describe(spec: DataSpec, place: str, splits: dict[str, Split]) -> str:
    """Where the data came from and how it was split, for people (kept in the model file): no
    absolute path, nothing a program needs to load the model.

    ``mnist: IDX files found in $GRAPHNET_DATA/mnist; 55,000 train, 5,000 validation (the last
    5,000 training examples), 10,000 test; preprocess: scale``"""
    counts = [f"{len(splits['train']):,} train"]
    val = splits.get("val")
    if val is not None:
        if isinstance(spec.validation, ValidationFile):
            how = f"file {Path(spec.validation.file).name}"
        else:
            how = f"the last {len(val):,} training examples"
        counts.append(f"{len(val):,} validation ({how})")
    counts.append(f"{len(splits['test']):,} test")
    limit = f" (limit: first {spec.limit:,} training examples)" if spec.limit is not None else ""
    steps = [name for name in ("scale", "standardize", "flatten", "one_hot") if getattr(spec.preprocess, name)]
    named = f"{spec.dataset}: " if spec.dataset in NAMED_DATASETS else ""
    return f"{named}{place}; {', '.join(counts)}{limit}; preprocess: {', '.join(steps) or 'none'}"


def _read(spec: DataSpec, roles: tuple[str, ...], data_dir, flag, spec_dir, env, mirrors, checksums,
          allow_download) -> Raw:
    """The arrays of ``roles`` from where the data is: ``data_dir`` (the flag) when given, else
    the spec's place."""
    if data_dir and (spec.dataset not in NAMED_DATASETS or is_npz_file(resolve(data_dir, None))):
        return from_data_dir(spec, data_dir, roles, flag)
    if spec.dataset in NAMED_DATASETS:
        return _read_named(spec, roles, data_dir, flag, spec_dir, env, mirrors, checksums, allow_download)
    if spec.dataset == "idx":
        return read_idx_dataset(spec, spec_dir, roles)
    return read_npz_dataset(spec, spec_dir, roles)


def _read_named(spec, roles, data_dir, flag, spec_dir, env, mirrors, checksums, allow_download) -> Raw:
    """The arrays of ``roles`` of mnist or fashion-mnist: from the first directory of the
    search holding their files, else from a verified download into the cache."""
    name = spec.dataset
    directory, what, passed_over = find_dataset(name, data_dir, spec.path, spec_dir, env, roles=roles, flag=flag)
    if directory is None and allow_download:
        target = cache_dir(name, env)
        failures = download_dataset(name, target, mirrors, checksums)
        if failures:
            raise not_found(name, passed_over, target, failures)
        directory, what = target, "downloaded into the cache"
    if directory is None:
        raise not_found(name, passed_over, None, [])
    found, _ = find_idx_files(directory)
    files = {role: found[role] for role in roles}
    arrays = read_idx_roles(files, "train.data.path")
    place = f"IDX files found in {what}" if what.startswith(("$", "~", "/")) else f"IDX files ({what})"
    if what in (flag, "train.data.path"):
        place = f"IDX files in folder {directory.name} (given with {what})"
    return Raw(arrays, {role: str(file) for role, file in files.items()}, "train.data.path", directory, place)
