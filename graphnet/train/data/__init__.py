"""Training data: find and read the examples, split off validation, preprocess, and batch them.

``load_data`` is what the training loop calls. It reads one of four sources (``train.data``):

    mnist, fashion-mnist   the four IDX files of a named dataset, searched for in a list of
                           directories (``find``) and downloaded into the cache if absent
                           (``download``, verified against pinned SHA-256 checksums)
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
examples and labels feed (``prepare``), so a mismatch is reported before training starts.

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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from ...spec import DataSpec, InputSpec, ValidationFile
from .download import CHECKSUMS, MIRRORS, download_dataset, file_sha256
from .find import NAMED_DATASETS, SYSTEM_DIR, cache_dir, find_dataset, not_found, search_dirs
from .idx import IDX_FILES, find_idx_files, read_idx, read_idx_files
from .prepare import prepare_examples, prepare_labels
from .split import Split, hold_out, shuffled_batches
from .user import read_idx_dataset, read_npz_dataset, read_validation_file

__all__ = [
    "CHECKSUMS",
    "IDX_FILES",
    "MIRRORS",
    "NAMED_DATASETS",
    "SYSTEM_DIR",
    "Data",
    "Split",
    "cache_dir",
    "file_sha256",
    "find_idx_files",
    "load_data",
    "read_idx",
    "search_dirs",
    "shuffled_batches",
]


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
    examples came from.
    """

    train: Split
    val: Optional[Split]
    test: Split
    classes: int
    example_shape: tuple[int, ...]
    source: str


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
    and the labels. ``data_dir`` is ``--data-dir`` (relative to the working directory; it must
    hold the files of a named dataset). ``spec_dir`` is the spec file's directory, against which
    relative spec paths are resolved (default: the working directory). ``env`` replaces
    ``os.environ``; ``mirrors`` (dataset -> base URLs) and ``checksums`` (dataset -> file ->
    SHA-256) replace ``MIRRORS`` and ``CHECKSUMS``; ``download=False`` never downloads. Every
    bad input raises ``DataError``.
    """
    env = os.environ if env is None else env
    spec_dir = Path(spec_dir).absolute() if spec_dir is not None else Path.cwd()
    if spec.dataset in NAMED_DATASETS:
        train, test, source = _read_named(
            spec, data_dir, spec_dir, env, mirrors, checksums, download
        )
    elif spec.dataset == "idx":
        train, test, source = read_idx_dataset(spec, spec_dir)
    else:
        train, test, source = read_npz_dataset(spec, spec_dir)

    if spec.limit is not None:
        train = Split(train.x[: spec.limit], train.y[: spec.limit])
    if isinstance(spec.validation, ValidationFile):
        val = read_validation_file(spec.validation, spec, spec_dir)
    else:
        train, val = hold_out(train, spec.validation, spec.limit)

    example_shape = tuple(int(size) for size in train.x.shape[1:])
    splits = {"train": train, "val": val, "test": test}
    present = {name: split for name, split in splits.items() if split is not None}
    xs = prepare_examples(
        {f"x_{name}": split.x for name, split in present.items()}, spec.preprocess, *x_input
    )
    ys, classes = prepare_labels(
        {f"y_{name}": split.y for name, split in present.items()}, spec.preprocess, *y_input
    )
    ready = {name: Split(xs[f"x_{name}"], ys[f"y_{name}"]) for name in present}
    return Data(
        train=ready["train"],
        val=ready.get("val"),
        test=ready["test"],
        classes=classes,
        example_shape=example_shape,
        source=str(Path(source).resolve()),
    )


def _read_named(spec, data_dir, spec_dir, env, mirrors, checksums, allow_download):
    """(train, test, directory) of mnist or fashion-mnist: the first directory of the search
    holding the four files, else a verified download into the cache."""
    name = spec.dataset
    directory, passed_over = find_dataset(name, data_dir, spec.path, spec_dir, env)
    if directory is None and allow_download:
        target = cache_dir(name, env)
        failures = download_dataset(name, target, mirrors, checksums)
        if failures:
            raise not_found(name, passed_over, target, failures)
        directory = target
    if directory is None:
        raise not_found(name, passed_over, None, [])
    files, _ = find_idx_files(directory)
    train, test = read_idx_files(files, where="train.data.path")
    return train, test, directory
