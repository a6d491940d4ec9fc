"""Downloading a named dataset into the cache, verified against pinned SHA-256 checksums.

All four files are fetched into a staging directory next to the cache directory and checked
there; only when every one matches its pin are they renamed into place. A file without a pin
is never downloaded, and a bad download never reaches the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Mapping

from .common import one_line
from .idx import GZIP_MAGIC, IDX_FILES

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

DOWNLOAD_TIMEOUT_S = 60
CHUNK = 1 << 20


def download_dataset(
    name: str,
    target: Path,
    mirrors: Mapping[str, list[str]] | None = None,
    checksums: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Download dataset ``name``'s four files into ``target``; the failures (empty on success).

    ``mirrors`` (dataset -> base URLs) and ``checksums`` (dataset -> file -> SHA-256) default
    to ``MIRRORS`` and ``CHECKSUMS``. Each failure is one line naming the file and the URL.
    """
    urls = (MIRRORS if mirrors is None else mirrors).get(name, [])
    pins = (CHECKSUMS if checksums is None else checksums).get(name, {})
    if not urls:
        return [f"no download mirrors are known for {name}"]
    root = target.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-download-", dir=root))
    except OSError as error:
        return [f"cannot create the cache directory {root}: {one_line(error.strerror or error)}"]
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
        reason = one_line(error.strerror or error)
        return [f"cannot write into the cache directory {target}: {reason}"]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
            failures.append(f"{file_name} from {url}: HTTP {error.code} {one_line(error.reason)}")
        except urllib.error.URLError as error:
            failures.append(f"{file_name} from {url}: {one_line(error.reason)}")
        except (OSError, EOFError, ValueError, zlib.error, http.client.HTTPException) as error:
            failures.append(f"{file_name} from {url}: {one_line(error)}")
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
