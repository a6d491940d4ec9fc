"""``graphnet sweep`` and sweep files.

Without Ray: the sweep file's located errors (all at once), ``graphnet validate`` on a sweep file,
every searched value checked against the spec (paths the spec lacks, values out of range, shapes
that do not fit), values turned into --set items that read back exactly, and that nothing but
``graphnet.sweep.ray`` imports Ray.

With Ray Tune (``pip install 'graphnet[sweep]'``): real sweeps as real processes. One Ray head
(``ray start --head``, 2 CPUs, its own ports, temp folder and HOME) serves the tests that join it
with ``--address`` (its HOST:PORT, and its Ray Client server's ray://HOST:PORT): a sweep end to
end on a small synthetic dataset (ASHA stopping the hopeless trials, a diverging trial reported
with its values and its error line, the results files, the model files, best.gnm scored
independently with numpy and by ``graphnet eval``), and Ctrl-C then ``--resume`` (finished trials
not redone, the interrupted one continued from its checkpoint to the parameters of a run never
stopped; through Ray Client too). ``specs/quick-sweep.yaml`` runs on the local Ray the command
starts by itself. Every Ray process the tests start is stopped, and checked gone.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import pytest

from graphnet.errors import GraphnetError
from graphnet.spec.text import parse_value
from graphnet.sweep import check_sweep, load_sweep, looks_like_sweep, override_item

REPO = Path(__file__).resolve().parents[1]
NEEDS_RAY = "graphnet sweep needs Ray Tune: pip install 'graphnet[sweep]'"
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

TINY_SPEC = """\
format: 1
name: tiny
inputs:
  x: {shape: [8]}
  y: {shape: [], dtype: int64}
layers: {input: x, sizes: [8, 16, 3], labels: y}
train:
  data: {dataset: npz, path: blobs.npz, validation: 300, preprocess: {scale: false, flatten: false}}
  batch_size: 32
  epochs: 4
  seed: 0
  optimizer: {type: sgd, lr: 0.1, momentum: 0.9}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """A folder with blobs.npz (3 classes in 8 features: 1,200 training examples, of which the
    last 300 validate, and 300 test) and tiny.yaml, a 8-16-3 MLP trained 4 epochs on it."""
    folder = tmp_path_factory.mktemp("synth")
    rng = np.random.default_rng(0)

    def blobs(n):
        y = rng.integers(0, 3, n)
        x = (np.eye(3, 8)[y] * 2.5 + rng.normal(0, 1, (n, 8))).astype(np.float32)
        return x, y

    x_train, y_train = blobs(1200)
    x_test, y_test = blobs(300)
    np.savez(folder / "blobs.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    write(folder, "tiny.yaml", TINY_SPEC)
    return folder


def errors_of(call) -> list[str]:
    with pytest.raises(GraphnetError) as caught:
        call()
    return [str(error) for error in caught.value.all()]


# ----------------------------------------------------------------------------------------------
# The sweep file, without Ray
# ----------------------------------------------------------------------------------------------


def test_a_sweep_file_s_mistakes_are_reported_together_each_at_its_line(synth):
    path = write(synth, "bad.yaml", """\
        spec: tiny.yaml
        serach: 1
        search:
          train.optimizer.lr: {loguniform: [0, 1.0e-2]}
          layers.dropout: {choice: [0, 0.1], uniform: [0, 0.5]}
          layers.sizes: [[8, 16, 3]]
        metric: val_acc
        scheduler: {type: asha, grace_periods: 2}
        resources: {cpus: 0}
        """)
    lines = errors_of(lambda: load_sweep(path))
    assert lines == [
        f"{path}:2: serach: unknown key 'serach' (did you mean 'search'? allowed keys: format, name, "
        "description, spec, set, search, metric, mode, samples, seed, scheduler, resources, output)",
        f"{path}:4: search.train.optimizer.lr.loguniform: loguniform needs low > 0; received 0.0 "
        "(use uniform for ranges that include 0)",
        f"{path}:5: search.layers.dropout: give exactly one of loguniform, uniform, randint, choice, grid "
        "(found: uniform, choice) (for example {loguniform: [1.0e-4, 1.0e-2]}, {uniform: [0, 0.5]}, "
        "{randint: [1, 4]}, {choice: [0, 0.1, 0.2]} or {grid: [64, 128]})",
        f"{path}:6: search.layers.sizes: a search entry is a mapping of one kind to its values; received "
        "[[8, 16, 3]] (for example {loguniform: [1.0e-4, 1.0e-2]}, {uniform: [0, 0.5]}, {randint: [1, 4]}, "
        "{choice: [0, 0.1, 0.2]} or {grid: [64, 128]})",
        f"{path}:7: metric: Input should be 'val_error', 'val_loss', 'val_accuracy' or 'train_loss'; "
        "received 'val_acc' (use one of: 'val_error', 'val_loss', 'val_accuracy' or 'train_loss')",
        f"{path}:8: scheduler.grace_periods: unknown key 'grace_periods' (did you mean 'grace_period'? "
        "allowed keys: type, grace_period, reduction_factor, max_t)",
        f"{path}:9: resources.cpus: Input should be greater than or equal to 1; received 0 "
        "(use a value in the allowed range)",
    ]


@pytest.mark.parametrize("text, expected", [
    ("spec: tiny.yaml\nsearch: {train.epochs: {grid: [1, 2]}}\nmetric: val_accuracy\nmode: min\n",
     "{f}:4: mode: mode min would pick the worst trial: higher val_accuracy is better (leave mode out "
     "(it follows the metric) or set mode: max)"),
    ("spec: tiny.yaml\nsearch: {train.epochs: {randint: [3, 1]}}\n",
     "{f}:2: search.train.epochs.randint: randint: low 3 is not below high 1 (write [low, high])"),
    ("spec: tiny.yaml\nset: {train.epochs: 2}\nsearch: {train.epochs: {grid: [1, 2]}}\n",
     "{f}:2: set.train.epochs: train.epochs is both set and searched (keep it in one of the two)"),
    ("spec: tiny.yaml\nsearch: {train.epochs: {grid: [1, 2]}}\nscheduler: {type: none, grace_period: 2}\n",
     "{f}:3: scheduler: grace_period only apply to type: asha (remove them or set type: asha)"),
    ("spec: missing.yaml\nsearch: {train.epochs: {grid: [1, 2]}}\n",
     "{f}:1: spec: {d}/missing.yaml: cannot read spec: No such file or directory (check the path; the "
     "path is relative to the sweep file)"),
    ("- spec\n", "{f}:1: a sweep file is a mapping with `spec:` and `search:` (see specs/quick-sweep.yaml)"),
    (TINY_SPEC, "{f}:1: this is a spec, not a sweep file (a sweep file names its spec (`spec: ...`) and a "
     "search space over it (`search:`); see specs/quick-sweep.yaml)"),
], ids=["mode", "randint", "set-and-searched", "asha-settings", "missing-spec", "not-a-mapping", "a-spec"])
def test_rules_of_a_sweep_file(synth, text, expected):
    path = write(synth, "rules.yaml", text)
    assert errors_of(lambda: load_sweep(path)) == [expected.format(f=path, d=synth)]


def test_every_searched_value_is_checked_against_the_spec_at_its_line(synth):
    path = write(synth, "against.yaml", """\
        spec: tiny.yaml
        set:
          train.batch_size: 16
        search:
          train.optimzer.lr: {loguniform: [1.0e-4, 1.0e-2]}
          layers.dropout: {uniform: [0, 1]}
          layers.sizes:
            grid:
              - [8, 16, 3]
              - [9, 16, 3]
              - [8, 3]
          nodes.fc1.attrs.units: {choice: [4]}
          train.epochs: {randint: [1, 3]}
        scheduler: {grace_period: 5}
        """)
    lines = errors_of(lambda: check_sweep(load_sweep(path)))
    assert lines == [
        f"{path}:5: search.train.optimzer.lr: train.optimzer: unknown key 'optimzer' (did you mean "
        "'optimizer'? allowed keys: data, augment, batch_size, epochs, seed, loss, predict, metrics, "
        "optimizer, schedule, keep_best, output)",
        f"{path}:6: search.layers.dropout: high end 1: layers.dropout: Input should be less than 1; "
        "received 1.0 (use a value in the allowed range)",
        f"{path}:10: search.layers.sizes: value [9, 16, 3]: nodes.fc1: input x has 8 features, weight "
        "expects 9 (set in_features to 8 or fix the layer feeding it)",
        f"{path}:12: search.nodes.fc1.attrs.units: nodes.fc1: there is no node 'fc1' (nodes made by the "
        "`layers:` shorthand (fc1, fc2, ...) are changed through layers, e.g. --set layers.sizes=[...]; "
        "to add a node, set its op first (--set nodes.fc1.op=...))",
        f"{path}:14: scheduler.grace_period: grace_period 5 is more than the 4 epochs a trial trains, so "
        "ASHA would stop nothing (use a grace_period below 4, or scheduler: none)",
    ]


def test_a_set_value_the_spec_refuses_is_reported_at_its_line(synth):
    path = write(synth, "set.yaml", "spec: tiny.yaml\nset:\n  train.epochs: 0\nsearch: {layers.dropout: {choice: [0]}}\n")
    assert errors_of(lambda: check_sweep(load_sweep(path))) == [
        f"{path}:3: set.train.epochs: train.epochs: Input should be greater than or equal to 1; received 0 "
        "(use a value in the allowed range)"]


def test_the_data_s_place_cannot_be_searched(synth):
    path = write(synth, "place.yaml", "spec: tiny.yaml\nsearch:\n  train.data.path: {choice: [a.npz, b.npz]}\n")
    assert errors_of(lambda: check_sweep(load_sweep(path))) == [
        f"{path}:3: search.train.data.path: the data's place (train.data.path) cannot be searched (every "
        "trial reads the data the spec names; make one sweep per dataset)"]


def test_a_validation_metric_needs_a_validation_split(synth):
    path = write(synth, "metric.yaml", "spec: tiny.yaml\nset: {train.data.validation: 0, train.keep_best: null}\n"
                                       "search: {layers.dropout: {choice: [0]}}\nmetric: val_loss\n")
    assert errors_of(lambda: check_sweep(load_sweep(path))) == [
        f"{path}:4: metric: val_loss needs a validation split, but the spec's train.data.validation is 0 "
        "(hold out a validation split in the spec (or with set:), or rank by train_loss)"]


def test_a_valid_sweep_is_planned(synth):
    path = write(synth, "ok.yaml", """\
        spec: tiny.yaml
        set: {train.epochs: 3}
        search:
          train.optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}
          layers.sizes: {grid: [[8, 16, 3], [8, 32, 3]]}
          train.batch_size: {choice: [16, 32, 64]}
        samples: 5
        """)
    plan = check_sweep(load_sweep(path))
    assert plan.sweep.name == "ok"
    assert plan.fixed == ["train.epochs=3"]
    assert plan.base.train.total_epochs() == 3 and plan.max_epochs == 3
    assert plan.checked == {"train.optimizer.lr": 2, "layers.sizes": 2, "train.batch_size": 3}
    assert plan.sweep.model.trial_count() == 10  # Tune repeats the grid for every sample
    assert plan.sweep.model.mode == "min" and plan.sweep.model.metric == "val_error"


@pytest.mark.parametrize("value", [1e-5, 0.1, 1 / 3, 3e300, -2.5e-12, 7, 0, True, None, "relu", "1e-4",
                                   "a: b", "two\nlines", [784, 800, 10], {"type": "cosine", "min_lr": 1e-6}, [[1], []]])
def test_a_value_becomes_a_set_item_that_reads_back_exactly(value):
    item = override_item("some.path", value)
    path, _, text = item.partition("=")
    assert path == "some.path"
    read = parse_value(text, "--set")
    assert read == value and type(read) is type(value)


def test_a_sweep_file_is_told_from_a_spec_by_its_search_key():
    assert looks_like_sweep("spec: a.yaml\nsearch:\n  x: {grid: [1]}\n")
    assert looks_like_sweep('{"spec": "a.yaml", "search": {"x": {"grid": [1]}}}')
    assert not looks_like_sweep((REPO / "specs" / "mnist-mlp.yaml").read_text())
    assert not looks_like_sweep('{"name": "x", "nodes": {"search": {"op": "relu"}}}')


def test_validate_checks_a_sweep_file(run_cli, synth):
    path = write(synth, "v.yaml", "spec: tiny.yaml\nsearch:\n  train.optimizer.lr: {loguniform: [1.0e-3, 1.0e-1]}\n"
                                  "  layers.dropout: {choice: [0, 0.1, 0.2]}\nsamples: 4\n")
    result = run_cli("validate", path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (f"{path}: ok — sweep 'v' of {synth}/tiny.yaml: 4 trials (4 samples x 1 grid point), "
                        "ranked by val_error (min); ASHA (grace 1, reduction 2, max 4 epochs); 1 CPU per trial")
    assert lines[1] == "  search train.optimizer.lr  loguniform 0.001 .. 0.1   (2 values checked)"
    assert lines[2] == "  search layers.dropout      choice of 3: 0, 0.1, 0.2   (3 values checked)"
    assert lines[3].startswith("  spec   'tiny' with set: applied: 4 nodes, 195 parameters; memory: ")

    bad = write(synth, "vbad.yaml", "spec: tiny.yaml\nsearch:\n  layers.dropout: {choice: [0, 1.5]}\n")
    result = run_cli("validate", bad)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        f"graphnet: error: {bad}:3: search.layers.dropout: value 1.5: layers.dropout: Input should be less "
        "than 1; received 1.5 (use a value in the allowed range)")
    result = run_cli("validate", path, "--set", "train.epochs=2")
    assert result.returncode == 1
    assert "--set applies to specs; this is a sweep file (put fixed values in the sweep's `set:` section)" in result.stderr


def test_the_example_sweeps_validate(run_cli):
    for name in ("quick-sweep.yaml", "mnist-sweep.yaml"):
        result = run_cli("validate", f"specs/{name}")
        assert result.returncode == 0, result.stderr
        assert "ok — sweep" in result.stdout


def test_blas_threads_are_set_on_the_loaded_library():
    """In a process started with 2 BLAS threads, pin_threads(1) leaves numpy's OpenBLAS with one
    (what a trial runs with); the count is read back from the library itself."""
    code = ("from graphnet.sweep.blas import current_threads, pin_threads; "
            "before = current_threads(); print(before, pin_threads(1), current_threads())")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    before, pinned, after = result.stdout.split()
    if before == "None":
        pytest.skip("numpy's BLAS here is not an OpenBLAS graphnet can reach (the environment variables still apply)")
    assert (before, pinned, after) == ("2", "1", "1")


def test_nothing_but_the_ray_module_imports_ray(run_python):
    """Import every graphnet module but graphnet.sweep.ray: ray is not imported; and no source
    file but that one names it in an import statement."""
    result = run_python("""
        import importlib, pkgutil, sys
        import graphnet
        for info in pkgutil.walk_packages(graphnet.__path__, "graphnet."):
            if info.name != "graphnet.sweep.ray" and not info.name.endswith(".__main__"):
                importlib.import_module(info.name)
        print(sorted(name for name in sys.modules if name == "ray" or name.startswith("ray.")))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    importing = re.compile(r"^\s*(import ray\b|from ray\b)", re.MULTILINE)
    named = [str(p.relative_to(REPO)) for p in (REPO / "graphnet").rglob("*.py") if importing.search(p.read_text())]
    assert named == ["graphnet/sweep/ray.py"]


def _sweep_without(module: str, args: list[str]) -> str:
    """A script running `graphnet sweep ARGS` with ``module`` made unimportable (a finder that
    refuses it), as on a machine without the package."""
    return f"""
        import sys
        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name == {module!r} or name.startswith({module + "."!r}):
                    raise ModuleNotFoundError(f"No module named {{name!r}}")
        sys.meta_path.insert(0, Refuse())
        from graphnet.cli import main
        sys.argv = ["graphnet", "sweep", *{args!r}]
        main()
    """


def test_without_ray_the_sweep_command_says_what_to_install(run_python, synth):
    """Ray made unimportable (a finder that refuses it), as on a machine without the extra."""
    result = run_python(_sweep_without("ray", [str(synth / "whatever.yaml")]))
    assert result.returncode == 1
    assert result.stderr.strip() == ("graphnet: error: graphnet sweep runs on Ray Tune, which is not installed "
                                     "(pip install 'graphnet[sweep]' (or pip install 'ray[tune]'))")


def test_without_ray_client_a_ray_address_says_what_to_install(run_python, synth):
    """gRPC made unimportable, as with ray[tune] but not ray[client]: refused before anything is read."""
    pytest.importorskip("ray", reason=NEEDS_RAY)
    result = run_python(_sweep_without("grpc", [str(synth / "whatever.yaml"), "--address", "ray://head:10001"]))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "graphnet: error: --address: joining ray://head:10001 needs Ray Client, which is not installed "
        "(pip install 'graphnet[sweep]' (or pip install 'ray[client]'), or give the head's HOST:PORT (the GCS "
        "port `ray start --head` printed), or auto on a cluster machine)")


def test_the_output_folder_and_the_address_are_checked_before_anything_runs(run_cli, synth, tmp_path):
    pytest.importorskip("ray", reason=NEEDS_RAY)
    sweep = write(synth, "folder.yaml", "spec: tiny.yaml\nsearch: {layers.dropout: {choice: [0]}}\n")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    cases = [
        (["--out", taken], f"{taken}: the output folder exists and is not empty (give a new or empty folder with --out)"),
        (["--out", tmp_path / "new", "--resume"],
         f"{tmp_path / 'new'}: there is no sweep to resume here (no journal.json) (start the sweep without "
         "--resume, or give the folder it wrote with --out)"),
        (["--resume", "--max-concurrent", "2"],
         "--max-concurrent: --max-concurrent cannot change when a sweep resumes (resume without it: the sweep "
         "goes on with the value it started with)"),
    ]
    for args, message in cases:
        result = run_cli("sweep", sweep, *args)
        assert (result.returncode, result.stderr.strip()) == (1, f"graphnet: error: {message}")
    assert (taken / "notes.txt").read_text() == "mine" and not (tmp_path / "new").exists()


# ----------------------------------------------------------------------------------------------
# Real sweeps on Ray
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_folder():
    """A short folder for Ray (its Unix sockets' paths are limited to 107 bytes): its temp files
    (RAY_TMPDIR) and a HOME of its own (Ray keeps its cluster token in ~/.ray)."""
    pytest.importorskip("ray", reason=NEEDS_RAY)
    folder = Path(tempfile.mkdtemp(prefix="gsw", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def ray_env(folder: Path, name: str) -> dict[str, str]:
    """The environment of a command using Ray: its own temp folder and HOME; no BLAS thread
    variables (the sweep sets them for its trials, and the trials report what they ran with)."""
    env = {key: value for key, value in os.environ.items() if key not in THREAD_VARIABLES}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               RAY_TMPDIR=str(folder / name), HOME=str(folder / "home"), RAY_USAGE_STATS_ENABLED="0",
               COLUMNS="200")
    (folder / name).mkdir(exist_ok=True)
    (folder / "home").mkdir(exist_ok=True)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def group_alive(group: int) -> list[int]:
    """The processes of process group ``group`` that are running (zombies excluded)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def using(marker: str) -> list[int]:
    """The running processes whose command line or environment mentions ``marker``."""
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            if (folder / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            text = (folder / "cmdline").read_bytes() + (folder / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in text and int(folder.name) != os.getpid():
            found.append(int(folder.name))
    return found


class Head(NamedTuple):
    address: str  # HOST:PORT, the head's GCS
    env: dict[str, str]  # the environment of a command that joins it
    client: Optional[str]  # ray://HOST:PORT, its Ray Client server (None without ray[client])
    logs: Path  # its session's logs


def has_ray_client() -> bool:
    return importlib.util.find_spec("grpc") is not None


@pytest.fixture(scope="module")
def ray_head(ray_folder):
    """``ray start --head`` with 2 CPUs on free ports (its Ray Client server's too, where
    ``ray[client]`` is installed: Ray would take 10001 otherwise), in a process group of its own.
    Stopped (the whole group) and checked gone."""
    # Ray's clusters authenticate their clients with a token (Ray >= 2.5x); one made up for this one
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**ray_env(ray_folder, "head"), **token}
    port, client_port = free_port(), free_port() if has_ray_client() else None
    log_path = ray_folder / "head.log"
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2",
               f"--temp-dir={ray_folder / 'head'}", "--include-dashboard=false",
               f"--dashboard-port={free_port()}", "--disable-usage-stats", "--block"]
    if client_port is not None:
        command.append(f"--ray-client-server-port={client_port}")
    with open(log_path, "w") as log:
        head = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log_path.read_text():
            assert head.poll() is None, f"ray start failed:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"ray start did not finish:\n{log_path.read_text()}"
            time.sleep(0.3)
        yield Head(f"127.0.0.1:{port}", {**ray_env(ray_folder, "driver"), **token},
                   f"ray://127.0.0.1:{client_port}" if client_port is not None else None,
                   ray_folder / "head" / "session_latest" / "logs")
    finally:
        stop_group(head)


def stop_group(process: subprocess.Popen) -> None:
    group = process.pid
    try:
        os.killpg(group, signal.SIGTERM)  # `ray start --block` stops its processes, given time
        process.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    deadline = time.monotonic() + 10
    while group_alive(group) and time.monotonic() < deadline:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    if process.poll() is None:
        process.wait(timeout=10)
    assert group_alive(group) == [], "Ray processes were left running"


def graphnet(env: dict, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphnet.cli", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def results_of(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def forward_error(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """The error of a tiny MLP model file on (x, y), computed with numpy from its parameters
    (independently of graphnet's executor): fc1, ReLU, fc2, argmax."""
    from graphnet.modelfile import read_contents

    params = read_contents(path).tensors["params"]
    hidden = np.maximum(x @ params["fc1.w"] + params["fc1.b"], 0)
    logits = hidden @ params["fc2.w"] + params["fc2.b"]
    return float(np.count_nonzero(np.argmax(logits, axis=1) != y)) / len(y)


def test_a_sweep_end_to_end_on_a_ray_cluster(ray_head, synth, tmp_path):
    """5 trials of the tiny spec: two sensible learning rates first, then two hopeless ones that
    ASHA stops after their first epoch (by then a sensible trial has set the bar at that rung),
    and one that diverges (the NaN guard fails it; the sweep goes on)."""
    address, env = ray_head.address, ray_head.env
    sweep = write(synth, "e2e.yaml", """\
        spec: tiny.yaml
        search:
          train.optimizer.lr: {grid: [0.1, 0.05, 1.0e-6, 2.0e-6, 1.0e+6]}
          layers.dropout: {choice: [0.0, 0.1]}
        seed: 3
        scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
        """)
    out = tmp_path / "e2e"
    result = graphnet(env, "sweep", sweep, "--address", address, "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Ray cluster at {address}: 2 CPUs on 1 node" in result.stdout

    document = results_of(out)
    rows = {row["trial"]: row for row in document["trials"]}
    assert sorted(rows) == [f"trial-00{n}" for n in range(1, 6)]
    lrs = {name: row["values"]["train.optimizer.lr"] for name, row in rows.items()}
    assert lrs == {"trial-001": 0.1, "trial-002": 0.05, "trial-003": 1e-6, "trial-004": 2e-6, "trial-005": 1e6}
    sensible = [rows["trial-001"], rows["trial-002"]]  # the first at a rung goes on: one completes at least
    assert {row["status"] for row in sensible} <= {"completed", "stopped"}
    assert "completed" in {row["status"] for row in sensible}
    for row in sensible:
        assert row["epochs"] == 4 if row["status"] == "completed" else 1 <= row["epochs"] < 4
    for name in ("trial-003", "trial-004"):  # hopeless: stopped by ASHA at the first rung
        assert rows[name]["status"] == "stopped" and rows[name]["epochs"] == 1, rows[name]
        assert rows[name]["score"] > 0.4
    failed = rows["trial-005"]
    assert failed["status"] == "failed" and failed["rank"] is None and failed["model"] is None
    assert failed["error"].startswith("training diverged at epoch 1, step ")
    assert "trial-005 failed (train.optimizer.lr=1e+06, layers.dropout=" in result.stdout
    assert failed["error"] in result.stdout

    # ranked by the score of the kept weights; the CSV holds the same rows
    ranked = [row for row in document["trials"] if row["rank"] is not None]
    assert [row["rank"] for row in ranked] == [1, 2, 3, 4]
    assert [row["score"] for row in ranked] == sorted(row["score"] for row in ranked)
    with open(out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["trial"], r["status"], r["rank"]) for r in table] == [
        (row["trial"], row["status"], str(row["rank"] or "")) for row in document["trials"]]
    assert [float(r["train.optimizer.lr"]) for r in table] == [row["values"]["train.optimizer.lr"] for row in document["trials"]]

    # every finished trial's model file holds the spec with its values applied
    from graphnet.modelfile import read_header

    data = np.load(synth / "blobs.npz")
    x_val, y_val = data["x_train"][-300:], data["y_train"][-300:]
    for row in ranked:
        model = out / row["model"]
        header = read_header(model)
        assert header.spec["train"]["optimizer"]["lr"] == row["values"]["train.optimizer.lr"]
        assert header.spec["layers"]["dropout"] == row["values"]["layers.dropout"]
        assert header.spec["description"].startswith(f"sweep e2e, {row['trial']}: train.optimizer.lr=")
        assert row["blas_threads"] == 1  # one BLAS thread per CPU the trial was given
        assert forward_error(model, x_val, y_val) == row["score"]

        if row["status"] == "completed":  # trained to the end: tested too
            assert forward_error(model, data["x_test"], data["y_test"]) == row["metrics"]["test_error"]
        else:
            assert "test_error" not in row["metrics"]

    # best.gnm: the best trial's file; graphnet eval gives the score it was ranked by
    best = document["best"]
    assert best["trial"] == ranked[0]["trial"]
    assert (out / "best.gnm").read_bytes() == (out / best["model"]).read_bytes()
    scored = graphnet(env, "eval", out / "best.gnm", "--split", "val", "--data", synth / "blobs.npz")
    assert scored.returncode == 0, scored.stderr
    assert f"error {best['score'] * 100:.2f}%" in scored.stdout
    tested = graphnet(env, "eval", out / "best.gnm", "--data", synth / "blobs.npz")
    assert f"error {forward_error(out / 'best.gnm', data['x_test'], data['y_test']) * 100:.2f}%" in tested.stdout
    assert f"best: {out / 'best.gnm'} = {out / best['model']}" in result.stdout


def client_address(head: Head) -> str:
    if head.client is None:
        pytest.skip("Ray Client needs pip install 'ray[client]'")
    return head.client


def client_server_logs(head: Head) -> str:
    """The end of the head's Ray Client server logs (what an assertion shows when joining fails)."""
    logs = sorted(head.logs.glob("ray_client_server*.err")) if head.client is not None else []
    return "".join(f"\n--- {log.name}:\n" + log.read_text(errors="replace")[-3000:] for log in logs)


def test_a_sweep_through_ray_client(ray_head, synth, tmp_path):
    """``--address ray://HOST:PORT``: Tune's driver runs on the cluster (Ray Client starts it
    there), and the trials' events still reach this command: the live lines, the journal, the
    results, the model files and best.gnm, as with HOST:PORT."""
    address, env = client_address(ray_head), ray_head.env
    sweep = write(synth, "client.yaml", """\
        spec: tiny.yaml
        search:
          train.optimizer.lr: {grid: [0.1, 0.05, 1.0e-6, 1.0e+6]}
        seed: 3
        scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
        """)
    out = tmp_path / "client"
    result = graphnet(env, "sweep", sweep, "--address", address, "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr + client_server_logs(ray_head)
    assert f"Ray cluster at {address}: 2 CPUs on 1 node" in result.stdout
    assert "trial-001 started: train.optimizer.lr=0.1" in result.stdout
    assert re.search(r"^trial-001 epoch 1/4: val_error ", result.stdout, re.MULTILINE)

    document = results_of(out)
    rows = {row["trial"]: row for row in document["trials"]}
    assert sorted(rows) == ["trial-001", "trial-002", "trial-003", "trial-004"]
    sensible = [rows["trial-001"], rows["trial-002"]]
    assert "completed" in {row["status"] for row in sensible}
    hopeless = rows["trial-003"]  # started once a sensible trial had set the bar at the first rung
    assert (hopeless["status"], hopeless["epochs"]) == ("stopped", 1)
    failed = rows["trial-004"]
    assert failed["status"] == "failed" and failed["error"].startswith("training diverged at epoch 1, step ")
    assert f"trial-004 failed (train.optimizer.lr=1e+06): {failed['error']}" in result.stdout

    data = np.load(synth / "blobs.npz")
    x_val, y_val = data["x_train"][-300:], data["y_train"][-300:]
    ranked = sorted((row for row in rows.values() if row["rank"] is not None), key=lambda row: row["rank"])
    assert [row["trial"] for row in ranked[-1:]] == ["trial-003"]
    for row in ranked:
        assert forward_error(out / row["model"], x_val, y_val) == row["score"]
    best = document["best"]
    assert best["trial"] == ranked[0]["trial"] in ("trial-001", "trial-002")
    assert (out / "best.gnm").read_bytes() == (out / best["model"]).read_bytes()
    scored = graphnet(env, "eval", out / "best.gnm", "--split", "val", "--data", synth / "blobs.npz")
    assert scored.returncode == 0, scored.stderr
    assert f"error {best['score'] * 100:.2f}%" in scored.stdout


@pytest.mark.parametrize("client", [False, True], ids=["gcs", "ray-client"])
def test_ctrl_c_keeps_finished_trials_and_resume_goes_on(ray_head, synth, tmp_path, client):
    """Ctrl-C while the second of three trials runs; --resume does not redo the first, continues
    the second from its last epoch (to the parameters of a run never stopped) and runs the third.
    Through Ray Client too, where Tune's driver runs on the cluster and this command stops it."""
    address = client_address(ray_head) if client else ray_head.address
    env = ray_head.env
    sweep = write(synth, "slow.yaml", """\
        spec: tiny.yaml
        set: {train.epochs: 60}
        search:
          train.optimizer.lr: {grid: [0.1, 0.05, 0.02]}
        scheduler: none
        """)
    out = tmp_path / "slow"
    command = [sys.executable, "-m", "graphnet.cli", "sweep", str(sweep), "--address", address, "--out", str(out),
               "--max-concurrent", "1"]
    driver = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    seen = []
    try:
        for line in driver.stdout:
            seen.append(line)
            if line.startswith("trial-002 epoch 5/60"):
                os.killpg(driver.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
                break
        output = "".join(seen) + driver.communicate(timeout=120)[0]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 130, output + (client_server_logs(ray_head) if client else "")
    assert f"interrupted: the finished trials are kept; go on with: graphnet sweep {sweep} --resume --out {out}" in output
    rows = {row["trial"]: row for row in results_of(out)["trials"]}
    assert rows["trial-001"]["status"] == "completed"
    assert rows["trial-002"]["status"] == "interrupted" and 5 <= rows["trial-002"]["epochs"] < 60
    assert "trial-003" not in rows
    first = (out / "trials" / "trial-001.gnm").read_bytes()
    assert not (out / "trials" / "trial-002.gnm").exists()

    # a changed sweep file is not resumed
    original = sweep.read_text()
    sweep.write_text(original.replace("60", "61"))
    changed = graphnet(env, "sweep", sweep, "--address", address, "--out", out, "--resume")
    assert changed.returncode == 1
    assert f"graphnet: error: {out}: the sweep here was started from another version of {sweep}" in changed.stderr
    sweep.write_text(original)

    resumed = graphnet(env, "sweep", sweep, "--address", address, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "trial-001 started" not in resumed.stdout
    assert "trial-002 started" in resumed.stdout and "trial-003 started" in resumed.stdout
    first_epoch = re.search(r"^trial-002 epoch (\d+)/60", resumed.stdout, re.MULTILINE)
    # went on from its last checkpoint Tune had recorded (the last epoch reported, or the one before)
    assert first_epoch and 1 < int(first_epoch.group(1)) <= rows["trial-002"]["epochs"] + 1
    rows = {row["trial"]: row for row in results_of(out)["trials"]}
    assert [rows[n]["status"] for n in ("trial-001", "trial-002", "trial-003")] == ["completed"] * 3
    assert (out / "trials" / "trial-001.gnm").read_bytes() == first

    # the resumed trial ends where a run never stopped ends
    from graphnet.modelfile import load_model
    from graphnet.spec import parse_spec
    from graphnet.train.loop import train

    spec = parse_spec(TINY_SPEC, file=str(synth / "tiny.yaml"), overrides=["train.epochs=60", "train.optimizer.lr=0.05"])
    reference = train(spec).model
    swept = load_model(out / "trials" / "trial-002.gnm").model
    for name, array in reference.params.items():
        assert np.array_equal(swept.params[name], array), name


@pytest.mark.data
def test_the_quick_sweep_on_a_local_ray(ray_folder, fashion_mnist, tmp_path):
    """specs/quick-sweep.yaml as the README runs it: Ray started by the command (2 CPUs here),
    8 trials, the hopeless learning rates stopped by ASHA; nothing of Ray left running after."""
    env = ray_env(ray_folder, "local")
    out = tmp_path / "quick"
    result = graphnet(env, "sweep", "specs/quick-sweep.yaml", "--out", out, "--data-dir", fashion_mnist.directory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^local Ray: \d+ CPUs? on 1 node; ", result.stdout, re.MULTILINE)
    document = results_of(out)
    rows = document["trials"]
    assert len(rows) == 8 and document["status"].get("failed") is None
    hopeless = [row for row in rows if row["values"]["train.optimizer.lr"] < 1e-4]
    assert any(row["status"] == "stopped" and row["epochs"] < 4 for row in hopeless)
    best = document["best"]
    assert best["values"]["train.optimizer.lr"] >= 1e-3 and best["score"] < 0.3
    scored = graphnet(env, "eval", out / "best.gnm", "--split", "val", "--data", fashion_mnist.directory)
    assert f"error {best['score'] * 100:.2f}%" in scored.stdout
    deadline = time.monotonic() + 10
    while using(env["RAY_TMPDIR"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert using(env["RAY_TMPDIR"]) == [], "the sweep left Ray processes running"
