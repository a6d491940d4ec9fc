"""Shared fixtures: spec files in a temp dir, the CLI (in process and as a real process),
throwaway modules and distributions for registry/plugin tests, and the optional things some tests
need: real images (MNIST or Fashion-MNIST) and PyTorch.

Optional requirements. A test that needs real images asks for the ``real_images`` fixture (or
``mnist`` / ``fashion_mnist`` for one dataset in particular); a test that compares against PyTorch
carries the ``torch`` marker (tests/test_torch.py marks the whole module). Where the requirement
is missing the test is skipped with a reason that names what would enable it. In CI the skips
must not hide anything, so::

    GRAPHNET_REQUIRE_DATA=1    a skipped data test is a failure
    GRAPHNET_REQUIRE_TORCH=1   a skipped torch test is a failure

Real images: MNIST from ``$GRAPHNET_DATA/mnist`` when that holds the four IDX files, otherwise
Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``;
``GRAPHNET_TEST_FASHION_DIR`` points the tests at another copy, or at an empty directory to see
what a machine without it does).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

# The tests multiply tiny matrices, where BLAS threads only add overhead; on a busy 2-core machine
# OpenBLAS's spinning threads made one whole-graph gradient check 20x slower (30 s instead of 1.5 s).
# Set before numpy is first imported (subprocesses inherit it); an explicit setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

REPO = Path(__file__).resolve().parents[1]
_module_ids = itertools.count()


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(text, name="spec.yaml") -> path of a file holding the dedented text."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def _env(pythonpath: list[str] | None) -> dict[str, str]:
    env = dict(os.environ)
    parts = [str(p) for p in (pythonpath or [])] + [str(REPO)]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def run_cli():
    """run_cli(*args, pythonpath=[...]) -> CompletedProcess of ``python -m graphnet.cli`` (the
    real ``main()``: exit codes and the one-line stderr), run from the repository root."""

    def run(*args: str, pythonpath: list[str] | None = None, timeout: float = 120):
        return subprocess.run(
            [sys.executable, "-m", "graphnet.cli", *map(str, args)],
            cwd=REPO, env=_env(pythonpath), capture_output=True, text=True, timeout=timeout,
        )

    return run


@pytest.fixture
def run_python():
    """run_python(code, pythonpath=[...]) -> CompletedProcess of ``python -c code``."""

    def run(code: str, pythonpath: list[str] | None = None, timeout: float = 120):
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=REPO, env=_env(pythonpath), capture_output=True, text=True, timeout=timeout,
        )

    return run


@pytest.fixture
def cli_runner():
    """invoke(*args) -> click Result of ``graphnet.cli.app`` run in process (typer's CliRunner)."""
    from typer.testing import CliRunner

    from graphnet.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture
def make_module(tmp_path, monkeypatch):
    """make_module(source) -> name of a fresh importable module holding the dedented source.

    The module lives in tmp_path (put on sys.path) under a unique name and is dropped from
    sys.modules afterwards, so tests never see each other's throwaway classes."""
    directory = tmp_path / "modules"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    made: list[str] = []

    def make(source: str) -> str:
        name = f"gn_throwaway_{os.getpid()}_{next(_module_ids)}"
        (directory / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        made.append(name)
        return name

    yield make
    for name in made:
        sys.modules.pop(name, None)


@pytest.fixture
def make_dist(tmp_path):
    """make_dist(dist_name, entry_points={op: "module:Class"}, modules={name: source}) -> the
    site directory holding a ``<dist>-1.0.dist-info`` (found by importlib.metadata on sys.path)
    and the modules. Each call makes its own directory; put it on sys.path (monkeypatch) or on
    PYTHONPATH (subprocess) to install the throwaway distribution."""
    counter = itertools.count()
    made_modules: list[str] = []

    def make(dist_name: str, entry_points: dict[str, str], modules: dict[str, str] | None = None) -> Path:
        site = tmp_path / f"site{next(counter)}"
        # the directory name carries the normalized name ("-" would end the name part)
        info = site / f"{dist_name.replace('-', '_')}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n", encoding="utf-8"
        )
        lines = ["[graphnet.ops]"] + [f"{name} = {value}" for name, value in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for module, source in (modules or {}).items():
            (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            made_modules.append(module)
        return site

    yield make
    for module in made_modules:
        sys.modules.pop(module, None)


# ----------------------------------------------------------------------------------------------
# Optional requirements: real images and PyTorch (skipped without them, required in CI)
# ----------------------------------------------------------------------------------------------

# kind of requirement -> the variable that turns its skips into failures
REQUIRE = {"data": "GRAPHNET_REQUIRE_DATA", "torch": "GRAPHNET_REQUIRE_TORCH"}
FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # where Debian's package installs it
TORCH_PIP = "pip install 'torch==2.13.0+cpu'"


def required(kind: str) -> bool:
    """Whether the CI variable makes a missing ``kind`` ("data", "torch") a failure."""
    return os.environ.get(REQUIRE[kind]) == "1"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"data: needs real images; skipped without them, a failure when {REQUIRE['data']}=1"
    )
    config.addinivalue_line(
        "markers", f"torch: compares against PyTorch; skipped without it, a failure when {REQUIRE['torch']}=1"
    )


def pytest_collection_modifyitems(config, items):
    """Skip the torch-marked tests when torch is not installed (found without importing it:
    importing torch takes seconds, and only the tests that use it should pay for that)."""
    if importlib.util.find_spec("torch") is not None:
        return
    reason = f"PyTorch is not installed ({TORCH_PIP} enables the torch comparisons)"
    for item in items:
        if item.get_closest_marker("torch"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under GRAPHNET_REQUIRE_DATA=1 / GRAPHNET_REQUIRE_TORCH=1, a skip of a test marked
    ``data`` / ``torch`` (whatever skipped it: a fixture, a marker, importorskip) is reported
    as a failure that says which variable made it one."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    for kind, variable in REQUIRE.items():
        if item.get_closest_marker(kind) and required(kind):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason.removeprefix("Skipped: ")
            report.outcome = "failed"
            report.longrepr = f"{variable}=1 makes this skip a failure: {reason}"
            return


@dataclass(frozen=True)
class RealImages:
    """A dataset of real images found on this machine."""

    name: str  # "mnist" or "fashion-mnist": what train.data.dataset says for it
    directory: Path  # holds the four IDX files: pass it as --data-dir
    origin: str  # where it was found, for messages: "$GRAPHNET_DATA/mnist" or the package


def _complete(directory: Path) -> bool:
    from graphnet.train.data import find_idx_files

    return not find_idx_files(directory)[1]


def find_mnist() -> tuple[RealImages | None, str]:
    """MNIST from $GRAPHNET_DATA/mnist, or None and why not (a sentence saying how to enable it)."""
    data = os.environ.get("GRAPHNET_DATA")
    if not data:
        return None, "MNIST needs GRAPHNET_DATA set to a directory holding mnist/ (here: ../shared/data)"
    directory = Path(data).resolve() / "mnist"
    if not _complete(directory):
        return None, f"$GRAPHNET_DATA/mnist = {directory} does not hold the four MNIST IDX files"
    return RealImages("mnist", directory, "$GRAPHNET_DATA/mnist"), ""


def find_fashion_mnist() -> tuple[RealImages | None, str]:
    """Fashion-MNIST from Debian's package (or $GRAPHNET_TEST_FASHION_DIR), or None and why not."""
    directory = Path(os.environ.get("GRAPHNET_TEST_FASHION_DIR") or FASHION_DIR)
    if not _complete(directory):
        return None, (
            f"Fashion-MNIST is not installed at {directory} "
            f"(apt-get install -y {FASHION_PACKAGE} installs it)"
        )
    return RealImages("fashion-mnist", directory, FASHION_PACKAGE), ""


def _data_or_skip(request, found: tuple[RealImages | None, str]) -> RealImages:
    request.node.add_marker("data")  # so that GRAPHNET_REQUIRE_DATA=1 turns the skip into a failure
    images, why_not = found
    if images is None:
        pytest.skip(why_not)
    return images


@pytest.fixture
def real_images(request) -> RealImages:
    """Real images to train on: MNIST when GRAPHNET_DATA provides it, else Fashion-MNIST."""
    mnist, why_not_mnist = find_mnist()
    if mnist is not None:
        return _data_or_skip(request, (mnist, ""))
    fashion, why_not_fashion = find_fashion_mnist()
    return _data_or_skip(request, (fashion, f"no real images: {why_not_mnist}; {why_not_fashion}"))


@pytest.fixture
def mnist(request) -> RealImages:
    """MNIST itself (for the tests of its pinned numbers)."""
    return _data_or_skip(request, find_mnist())


@pytest.fixture
def fashion_mnist(request) -> RealImages:
    """Fashion-MNIST from Debian's package."""
    return _data_or_skip(request, find_fashion_mnist())
