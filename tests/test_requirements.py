"""The optional-requirement machinery of conftest.py, run on a tiny test file in a separate pytest
process: without real images or torch the tests that need them are skipped with a reason that
says what would enable them; GRAPHNET_REQUIRE_DATA=1 / GRAPHNET_REQUIRE_TORCH=1 make those
skips (and only those) failures."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from graphnet.train.data import IDX_FILES

SAMPLE = """
import pytest


@pytest.mark.torch
def test_torch_skipped_in_its_body():
    pytest.importorskip("graphnet_no_such_module")


@pytest.mark.torch
def test_torch_marked():
    import torch  # noqa: F401  (skipped before it runs when torch is missing)


def test_images(real_images):
    assert real_images.directory.is_dir()
    print("IMAGES", real_images.name, real_images.directory)


def test_unrelated_skip():
    pytest.skip("nothing to do with data or torch")


def test_plain():
    pass
"""

# a plugin loaded with -p: makes torch look uninstalled (find_spec gives None, import fails)
HIDE_TORCH = "import sys\nsys.modules['torch'] = None\n"


@pytest.fixture
def sample(tmp_path):
    """run(hide_torch=False, **env) -> (counts by outcome, output) of pytest on the sample,
    with the project's conftest.py and nothing of this process's data variables."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(Path(__file__).with_name("conftest.py"), project / "conftest.py")
    (project / "test_sample.py").write_text(SAMPLE, encoding="utf-8")
    (project / "hide_torch.py").write_text(HIDE_TORCH, encoding="utf-8")
    absent = tmp_path / "no-fashion-here"

    def run(hide_torch: bool = False, **variables: str) -> tuple[dict[str, int], str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("GRAPHNET_REQUIRE") and key != "GRAPHNET_DATA"}
        env["GRAPHNET_TEST_FASHION_DIR"] = str(absent)  # a machine without the package
        env["PYTHONPATH"] = os.pathsep.join([str(project), env.get("PYTHONPATH", "")])
        env.update(variables)
        args = [sys.executable, "-m", "pytest", "-q", "-rs", "-s", "-p", "no:cacheprovider", str(project)]
        if hide_torch:
            args[3:3] = ["-p", "hide_torch"]
        done = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=120)
        output = done.stdout + done.stderr
        last = output.strip().splitlines()[-1]
        counts = {word: int(number) for number, word in re.findall(r"(\d+) (passed|failed|skipped|error)", last)}
        assert (done.returncode != 0) == bool(counts.get("failed") or counts.get("error")), output
        return counts, output

    return run


def fake_dataset(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for name in IDX_FILES.values():
        (directory / (name + ".gz")).write_bytes(b"")
    return directory


def test_missing_things_are_skipped_with_what_enables_them(sample):
    counts, output = sample(hide_torch=True)
    assert counts == {"passed": 1, "skipped": 4}
    assert "apt-get install -y dataset-fashion-mnist" in output
    assert "GRAPHNET_DATA set to a directory holding mnist/" in output
    assert "pip install 'torch==2.13.0+cpu'" in output


def test_require_torch_turns_only_torch_skips_into_failures(sample):
    counts, output = sample(hide_torch=True, GRAPHNET_REQUIRE_TORCH="1")
    # both torch tests are skipped at setup (no torch), which makes them errors
    assert counts == {"passed": 1, "skipped": 2, "error": 2}
    assert output.count("GRAPHNET_REQUIRE_TORCH=1 makes this skip a failure") >= 2
    assert "GRAPHNET_REQUIRE_DATA" not in output


def test_require_data_turns_only_data_skips_into_failures(sample):
    counts, output = sample(hide_torch=True, GRAPHNET_REQUIRE_DATA="1")
    assert counts == {"passed": 1, "skipped": 3, "error": 1}
    assert "GRAPHNET_REQUIRE_DATA=1 makes this skip a failure: no real images" in output
    assert "GRAPHNET_REQUIRE_TORCH" not in output


def test_fashion_mnist_when_there_is_no_mnist(sample, tmp_path):
    fashion = fake_dataset(tmp_path / "fashion")
    counts, output = sample(hide_torch=True, GRAPHNET_REQUIRE_DATA="1", GRAPHNET_TEST_FASHION_DIR=str(fashion))
    assert counts == {"passed": 2, "skipped": 3}
    assert f"IMAGES fashion-mnist {fashion}" in output


def test_mnist_from_graphnet_data_comes_first(sample, tmp_path):
    mnist = fake_dataset(tmp_path / "shared" / "mnist")
    fashion = fake_dataset(tmp_path / "fashion")
    counts, output = sample(hide_torch=True, GRAPHNET_DATA=str(tmp_path / "shared"),
                            GRAPHNET_TEST_FASHION_DIR=str(fashion))
    assert counts == {"passed": 2, "skipped": 3}
    assert f"IMAGES mnist {mnist.resolve()}" in output
    # an incomplete $GRAPHNET_DATA/mnist: Fashion-MNIST instead
    (mnist / "t10k-labels-idx1-ubyte.gz").unlink()
    counts, output = sample(hide_torch=True, GRAPHNET_DATA=str(tmp_path / "shared"),
                            GRAPHNET_TEST_FASHION_DIR=str(fashion))
    assert counts == {"passed": 2, "skipped": 3}
    assert f"IMAGES fashion-mnist {fashion}" in output


@pytest.mark.torch
def test_torch_tests_run_when_torch_is_installed(sample):
    counts, _ = sample(GRAPHNET_REQUIRE_TORCH="1")
    # the marked test runs; the importorskip in the other one still fails under the variable
    assert counts == {"passed": 2, "skipped": 2, "failed": 1}
