"""Shared fixtures: spec files in a temp dir, the CLI (in process and as a real process), and
throwaway modules and distributions for registry/plugin tests."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
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
