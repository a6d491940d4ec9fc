"""docs/plugins.md, followed literally: its files are taken from the page's code blocks (each
starts with a comment naming its path), the package is built and installed with pip, and the
commands of its "Try it" blocks run as written.

What the test changes, and only that: ``pip install ./graphnet-gelu`` runs offline (no build
isolation, no dependencies: graphnet is this checkout) into a folder put on PYTHONPATH instead of
the environment; ``graphnet`` and ``pytest`` run as ``python -m`` of this interpreter; and
``graphnet run`` trains two epochs on a small synthetic dataset (``--data-dir``) instead of MNIST,
writing its model file into the test's folder.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "plugins.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
FILE_MARKER = re.compile(r"# (\S+\.(?:py|toml|yaml))\n")


def code_blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(GUIDE.read_text(encoding="utf-8")) if lang == language]


def guide_files() -> dict[str, str]:
    """path -> text of every code block that starts with ``# path``."""
    files = {}
    for language in ("toml", "python", "yaml"):
        for body in code_blocks(language):
            marker = FILE_MARKER.match(body)
            if marker:
                files[marker.group(1)] = body
    return files


def guide_commands() -> list[list[str]]:
    """The commands of each ``sh`` block, comments dropped."""
    blocks = []
    for body in code_blocks("sh"):
        lines = [line.split("  #")[0].strip() for line in body.splitlines()]
        blocks.append([line for line in lines if line and not line.startswith("#")])
    return blocks


def environment(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["COLUMNS"] = "200"
    for name in ("GRAPHNET_DISABLE_PLUGINS", "GRAPHNET_OP_PROVIDER"):
        env.pop(name, None)
    return env


def run(argv: list[str], cwd: Path, site: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=cwd, env=environment(site), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The guide's files written out and its package installed; (folder, site)."""
    root = tmp_path_factory.mktemp("guide")
    for path, text in guide_files().items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    site = root / "site"
    (install, *_), *_ = guide_commands()
    assert install == "pip install ./graphnet-gelu"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", "--no-index",
         "--target", str(site), "./graphnet-gelu"], root, site)
    return root, site


def synthetic_mnist(path: Path) -> Path:
    """600 + 100 random 28x28 uint8 images with labels a linear rule gives (learnable)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(700, 784), dtype=np.uint8)
    y = (x.astype(np.float64) @ rng.standard_normal((784, 10))).argmax(axis=1)
    np.savez(path, x_train=x[:600], y_train=y[:600], x_test=x[600:], y_test=y[600:])
    return path


def test_the_guide_shows_a_whole_package():
    files = guide_files()
    assert sorted(files) == [
        "gelu-mlp.yaml",
        "graphnet-gelu/graphnet_gelu/__init__.py",
        "graphnet-gelu/graphnet_gelu/gelu.py",
        "graphnet-gelu/graphnet_gelu/scale.py",
        "graphnet-gelu/pyproject.toml",
        "graphnet-gelu/tests/test_gelu.py",
    ]
    pyproject = files["graphnet-gelu/pyproject.toml"]
    for table in ("[build-system]", "[project]", '[project.entry-points."graphnet.ops"]'):
        assert table in pyproject
    assert len(files["graphnet-gelu/graphnet_gelu/gelu.py"].splitlines()) <= 30  # "the op in about 30 lines"


def test_the_guide_works_as_written(plugin, tmp_path):
    root, site = plugin
    data = synthetic_mnist(tmp_path / "toy.npz")
    model = tmp_path / "gelu-mlp.gnm"
    in_plugin_folder, in_checkout = guide_commands()
    outputs = {}
    for command in in_plugin_folder[1:]:  # the install is the fixture's
        argv = shlex.split(command)
        if argv[0] == "graphnet":
            argv = [sys.executable, "-m", "graphnet.cli", *argv[1:]]
            if argv[3] == "run":
                argv += ["--data-dir", str(data), "--set", "train.epochs=2", "--out", str(model)]
        elif argv[0] == "pytest":
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *argv[1:]]
        else:
            pytest.fail(f"the guide runs a command this test does not know: {command}")
        outputs[command] = run(argv, root, site).stdout

    assert "gelu v1  [graphnet-gelu]" in outputs["graphnet ops"]
    assert "scale v1  [graphnet-gelu]" in outputs["graphnet ops"]
    checked = outputs["graphnet gradcheck --op gelu --op scale"]
    assert checked.rstrip().endswith("ok: 2 checked, tolerance 1e-05")
    assert {line.split()[0] for line in checked.splitlines()[1:-1]} == {"gelu", "scale"}
    assert "2 passed" in outputs["pytest graphnet-gelu/tests"]
    assert "gelu-mlp.yaml: ok" in outputs["graphnet validate gelu-mlp.yaml"]
    ran = outputs["graphnet run gelu-mlp.yaml"]
    trained = re.search(r"^test \(best epoch \d \(val\)\): loss \S+  error (\S+%)", ran, re.MULTILINE)
    assert trained, ran

    # the model file records the plugin's ops, and loads (through the plugin) to evaluate
    report = json.loads(run([sys.executable, "-m", "graphnet.cli", "inspect", str(model), "--json"], root, site).stdout)
    losses = [epoch["train_loss"] for epoch in report["log"]["epochs"]]
    assert len(losses) == 2 and losses[1] < losses[0] < 2.4  # it learns (chance: ln 10 = 2.30)
    assert {node["name"]: (node["op"], node["version"]) for node in report["nodes"]} == {
        "fc1": ("linear", 1), "act1": ("gelu", 1), "gain1": ("scale", 1), "fc2": ("linear", 1),
        "loss": ("softmax_cross_entropy", 1),
    }
    assert report["problems"] == []
    evaluated = run([sys.executable, "-m", "graphnet.cli", "eval", str(model), "--data-dir", str(data)], root, site)
    assert f"error {trained.group(1)}" in evaluated.stdout

    (validate,) = in_checkout
    argv = shlex.split(validate)
    listing = run([sys.executable, "-m", "graphnet.cli", *argv[1:]], REPO, site).stdout
    assert re.search(r"^\s+gelu1\s+gelu\s", listing, re.MULTILINE), listing
