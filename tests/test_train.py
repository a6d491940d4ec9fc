"""The training loop and `graphnet run` / `graphnet eval`: determinism, best-on-val, early stopping,
Ctrl-C, the NaN guard, --set errors (on small synthetic data), and short runs on real images
(MNIST from $GRAPHNET_DATA, else Debian's Fashion-MNIST: the ``real_images`` fixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graphnet import load_spec
from graphnet.errors import GraphnetError, TrainingError
from graphnet.modelfile import header_dict, load_model, save_model
from graphnet.train.loop import Silent, train as train_loop

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m graphnet.cli ARGS`` from the repository root. GRAPHNET_DATA is dropped: a test
    that needs real images passes ``--data-dir`` (the ``real_images`` fixture's directory), so
    every other test shows it needs no data at all."""
    full_env = {key: value for key, value in os.environ.items() if key != "GRAPHNET_DATA"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "graphnet.cli", *args], capture_output=True, text=True, env=full_env,
        cwd=ROOT, timeout=600,
    )


def real_data_args(images) -> list[str]:
    """The flags that train on ``images`` (a RealImages): the dataset's name, so that the model
    file records what it was trained on, and its directory."""
    return ["--set", f"train.data.dataset={images.name}", "--data-dir", str(images.directory)]


# ----------------------------------------------------------------------------------------------
# Small synthetic data (npz): fast, and every property can be forced
# ----------------------------------------------------------------------------------------------

SYNTH_SPEC = """
format: 1
name: synth
inputs:
  x: {{shape: [8]}}
  y: {{shape: [], dtype: int64}}
layers: {{input: x, sizes: [8, 16, 3], labels: y, dropout: 0.1}}
train:
  data: {{dataset: npz, path: {path}, validation: 60, preprocess: {{scale: false, flatten: false}}}}
  batch_size: 16
  epochs: 6
  seed: 3
  optimizer: {{type: sgd, lr: 0.1, momentum: 0.9}}
  output: {out}
"""


class Run:
    """A training result and the model file its checkpoints wrote."""

    def __init__(self, result, output: Path):
        self.result, self.output = result, output

    def __getattr__(self, name):
        return getattr(self.result, name)


def train(spec, **kwargs) -> Run:
    """Train with checkpoints written to the spec's train.output, as `graphnet run` does."""
    output = Path(spec.train.output) if spec.train and spec.train.output else Path("unused.gnm")

    def checkpoint(model, log, metrics):
        save_model(output, model, log=log, metrics=metrics)

    return Run(train_loop(spec, checkpoint=checkpoint, **kwargs), output)


@pytest.fixture
def synth(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 8)) * 3

    def make(n):
        y = rng.integers(0, 3, n)
        return (centers[y] + rng.standard_normal((n, 8))).astype(np.float32), y

    x_train, y_train = make(300)
    x_test, y_test = make(100)
    path = tmp_path / "synth.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    def spec_file(overrides=(), out="model.gnm"):
        file = tmp_path / "synth.yaml"
        file.write_text(SYNTH_SPEC.format(path=path, out=tmp_path / out))
        return load_spec(file, overrides=list(overrides))

    return spec_file


def test_synthetic_run_learns_and_file_reproduces_metrics(synth, tmp_path):
    result = train(synth())
    assert result.test["error"] < 0.05
    assert len(result.epochs) == 6
    assert result.best_epoch is not None
    loaded = load_model(result.output)
    assert np.array_equal(loaded.model.flat_params, result.model.flat_params)
    assert loaded.metrics["test_error"] == result.test["error"]
    assert [e["epoch"] for e in loaded.log["epochs"]] == [1, 2, 3, 4, 5, 6]


def test_same_seed_is_bit_identical_and_other_seed_differs(synth):
    first = train(synth(out="a.gnm"))
    second = train(synth(out="b.gnm"))
    assert np.array_equal(first.model.flat_params, second.model.flat_params)
    strip = lambda r: [(e.epoch, e.lr, e.train_loss, e.val_loss, e.val_error) for e in r.epochs]  # noqa: E731
    assert strip(first) == strip(second)
    other = train(synth(["train.seed=4"], out="c.gnm"))
    assert not np.array_equal(first.model.flat_params, other.model.flat_params)


def test_best_on_validation_parameters_are_kept(synth):
    result = train(synth())
    best = result.epochs[result.best_epoch - 1]
    assert best.val_error == min(e.val_error for e in result.epochs)
    # the model holds the best epoch's parameters: its validation error is the best one
    from graphnet.train.loop import evaluate, resolve_roles
    from graphnet.train.data import load_data

    spec = result.model.spec
    roles = resolve_roles(result.model.graph, spec.train)
    data = load_data(spec.train.data, ("x", spec.inputs["x"]), ("y", spec.inputs["y"]))
    assert evaluate(result.model, data.val, roles)["error"] == best.val_error


def test_early_stopping_with_patience(synth):
    # a learning rate so small nothing changes: validation never improves after epoch 1
    result = train(synth(["train.optimizer.lr=1e-12", "train.optimizer.momentum=0",
                          "train.keep_best.patience=2"]))
    assert result.stopped == "early stopping"
    assert len(result.epochs) == 3
    assert result.best_epoch == 1


def test_piecewise_schedule_is_logged_per_epoch(synth):
    result = train(synth(["train.epochs=null", "train.schedule=[{epochs: 2, lr: 0.1}, {epochs: 1, lr: 0.01}]"]))
    assert [e.lr for e in result.epochs] == [0.1, 0.1, 0.01]


def test_ctrl_c_in_the_first_epoch_saves_nothing(synth, tmp_path):
    class Interrupt(Silent):
        def step(self, loss, samples):
            raise KeyboardInterrupt

    result = train(synth(), progress=Interrupt())
    assert result.stopped == "interrupted" and result.epochs == []
    assert not (tmp_path / "model.gnm").exists()


def test_ctrl_c_saves_best_so_far(synth):
    class Interrupt(Silent):
        def __init__(self):
            self.steps = 0

        def step(self, loss, samples):
            self.steps += 1
            if self.steps == 20:  # in epoch 2 (15 steps per epoch)
                raise KeyboardInterrupt

    result = train(synth(), progress=Interrupt())
    assert result.stopped == "interrupted"
    assert len(result.epochs) == 1 and result.best_epoch == 1
    loaded = load_model(result.output)
    assert loaded.log["stopped"] == "interrupted"
    assert np.array_equal(loaded.model.flat_params, result.model.flat_params)


def test_nan_guard_names_epoch_step_node(synth):
    with pytest.raises(TrainingError) as caught:
        train(synth(["train.optimizer.lr=1e30"]))
    message = str(caught.value)
    assert "training diverged at epoch 1, step" in message
    assert "node '" in message
    assert "nothing was saved" in message
    assert "\n" not in message


def test_nan_guard_leaves_the_last_good_file_intact(synth, tmp_path):
    # epoch 1 trains normally and is saved; epoch 2's huge rate diverges
    spec = synth(["train.epochs=null", "train.optimizer.momentum=0",
                  "train.schedule=[{epochs: 1, lr: 0.05}, {epochs: 1, lr: 1.0e+30}]"])
    with pytest.raises(TrainingError, match="epoch 2, step .* the checkpoint of epoch 1 .* is untouched"):
        train(spec)
    saved = load_model(tmp_path / "model.gnm")
    assert [e["epoch"] for e in saved.log["epochs"]] == [1]
    assert np.all(np.isfinite(saved.model.flat_params))


def test_the_file_is_checkpointed_after_every_epoch_with_the_best_weights(synth, tmp_path):
    """Epoch 2 barely changes the weights (a rate of 1e-6), so epoch 1 stays the best; epoch 3
    diverges. The file written after epoch 2 is kept: its log has both epochs, its weights are
    epoch 1's, not the current ones."""
    stages = ["{epochs: 1, lr: 0.05}", "{epochs: 1, lr: 1.0e-6}", "{epochs: 1, lr: 1.0e+30}"]
    fixed = ["train.epochs=null", "train.optimizer.momentum=0", "layers.dropout=0"]
    spec = synth([*fixed, f"train.schedule=[{', '.join(stages)}]"])
    epoch_one = train_loop(synth([*fixed, f"train.schedule=[{stages[0]}]"], out="one.gnm"))
    two = train_loop(synth([*fixed, "train.keep_best=null", f"train.schedule=[{', '.join(stages[:2])}]"],
                           out="two.gnm"))
    assert two.epochs[1].val_error >= epoch_one.epochs[0].val_error  # epoch 2 is not better
    assert not np.array_equal(two.model.flat_params, epoch_one.model.flat_params)  # but not the same
    with pytest.raises(TrainingError) as caught:
        train(spec)
    assert "training diverged at epoch 3, step " in str(caught.value)
    assert "the checkpoint of epoch 2 (best weights: epoch 1) is untouched" in str(caught.value)
    saved = load_model(tmp_path / "model.gnm")
    assert [e["epoch"] for e in saved.log["epochs"]] == [1, 2] and saved.log["best_epoch"] == 1
    assert np.array_equal(saved.model.flat_params, epoch_one.model.flat_params)


def test_spec_without_train_section(tmp_path):
    file = tmp_path / "s.yaml"
    file.write_text("name: n\ninputs: {x: {shape: [2]}}\nnodes: {r: {op: relu, inputs: {x: x}}}\n")
    with pytest.raises(GraphnetError, match="no `train:` section"):
        train(load_spec(file))


def test_loss_must_be_a_loss(synth):
    with pytest.raises(GraphnetError, match="is not a loss"):
        train(synth(["train.loss=fc2"]))


# ----------------------------------------------------------------------------------------------
# Real images through the CLI
# ----------------------------------------------------------------------------------------------

# Test error after the short run below: 5,000 training examples, 2 epochs. Measured (seed 0, this
# machine): MNIST 8.62%, Fashion-MNIST 20.13%; the bounds leave room for BLAS differences.
SHORT_RUN_MAX_ERROR = {"mnist": 10.0, "fashion-mnist": 25.0}


def test_short_real_run_and_eval_from_file(tmp_path, real_images):
    out = tmp_path / "short.gnm"
    run = cli("run", str(SPECS / "seed-softmax.yaml"), "--out", str(out), *real_data_args(real_images),
              "--set", "train.data.limit=6000", "--set", "train.data.validation=1000",
              "--set", "train.schedule=[{epochs: 2, lr: 0.05}]", "--set", "train.optimizer.momentum=0.9")
    assert run.returncode == 0, run.stderr
    assert "epoch 2/2" in run.stdout
    assert str(real_images.directory) in run.stdout  # the header says where the data came from
    test_line = [line for line in run.stdout.splitlines() if line.startswith("test (")][0]
    error = float(test_line.split("error ")[1].split("%")[0])
    assert error < SHORT_RUN_MAX_ERROR[real_images.name]
    evaluated = cli("eval", str(out), "--data-dir", str(real_images.directory))
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"error {error:.2f}%" in evaluated.stdout
    assert load_model(out).model.spec.train.data.dataset == real_images.name


def test_existing_model_file_is_not_overwritten(synth, tmp_path):
    synth()
    out = tmp_path / "keep.gnm"
    out.write_bytes(b"a trained model")
    run = cli("run", str(tmp_path / "synth.yaml"), "--out", str(out))
    assert run.returncode == 1
    assert "already exists" in run.stderr and "--overwrite" in run.stderr
    assert out.read_bytes() == b"a trained model"
    again = cli("run", str(tmp_path / "synth.yaml"), "--out", str(out), "--overwrite", "--set", "train.epochs=1")
    assert again.returncode == 0, again.stderr
    assert load_model(out).log["epochs"][0]["epoch"] == 1


@pytest.mark.parametrize("where", ["dir", "file-parent"])
def test_bad_output_path_fails_before_training(synth, tmp_path, where):
    synth()
    if where == "dir":
        out = tmp_path
    else:
        (tmp_path / "plain").write_text("x")
        out = tmp_path / "plain" / "m.gnm"
    run = cli("run", str(tmp_path / "synth.yaml"), "--out", str(out))
    assert run.returncode == 1
    assert "epoch 1" not in run.stdout  # nothing was trained
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert not list(Path("/").glob(".*.gnm.*.tmp"))


def test_eval_from_another_directory_needs_the_data_named(synth, tmp_path):
    # the spec names its .npz relative to the spec file; the model file keeps no path of this
    # machine, so from elsewhere eval says where to point it, and --data does
    synth()
    spec_file = tmp_path / "synth.yaml"
    spec_file.write_text(spec_file.read_text().replace(str(tmp_path / "synth.npz"), "synth.npz"))
    out = tmp_path / "m.gnm"
    assert cli("run", str(spec_file), "--out", str(out), "--set", "train.epochs=1").returncode == 0
    header = header_dict(out)
    del header["spec"]  # the user's own text (its train.output names a folder here)
    assert str(tmp_path) not in json.dumps(header)  # nothing else records this machine's paths
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lost = subprocess.run([sys.executable, "-m", "graphnet.cli", "eval", str(out)],
                          capture_output=True, text=True, cwd=elsewhere)
    assert lost.returncode == 1 and "--data" in lost.stderr
    evaluated = subprocess.run([sys.executable, "-m", "graphnet.cli", "eval", str(out), "--data", str(tmp_path / "synth.npz")],
                               capture_output=True, text=True, cwd=elsewhere)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "recorded when trained" in evaluated.stdout


def test_labels_beyond_the_outputs_fail_before_training(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 8)).astype(np.float32)
    y = np.arange(50) % 5  # 5 classes, the spec's last layer has 3 units
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(SYNTH_SPEC.format(path=tmp_path / "d.npz", out=tmp_path / "m.gnm").replace("validation: 60", "validation: 10"))
    run = cli("run", str(spec_file))
    assert run.returncode == 1
    assert "5 classes" in run.stderr and "'fc2' has 3 outputs" in run.stderr
    assert "epoch 1" not in run.stdout


def test_validate_checks_the_train_section(tmp_path):
    bad = cli("validate", str(SPECS / "mnist-mlp.yaml"), "--set", "train.loss=fc9")
    assert bad.returncode == 1 and "train.loss" in bad.stderr and "is not a node" in bad.stderr
    shape = cli("validate", str(SPECS / "mnist-mlp.yaml"), "--set", "train.augment.image_shape=[20, 20]")
    assert shape.returncode == 1 and "not 20x20 images" in shape.stderr


def test_set_errors_point_at_the_flag():
    bad = cli("run", str(SPECS / "seed-softmax.yaml"), "--set", "train.optimizer.lr=-1")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1
    assert "--set train.optimizer.lr=-1" in bad.stderr and "greater than 0" in bad.stderr
    typo = cli("run", str(SPECS / "seed-softmax.yaml"), "--set", "train.epochz=3")
    assert typo.returncode == 1
    assert "did you mean 'epochs'" in typo.stderr
    malformed = cli("run", str(SPECS / "seed-softmax.yaml"), "--set", "train.epochs")
    assert malformed.returncode == 1 and "PATH=VALUE" in malformed.stderr
    assert "Traceback" not in bad.stderr + typo.stderr + malformed.stderr


def test_cli_shows_the_metrics_the_spec_asks_for(synth, tmp_path):
    synth()  # writes tmp_path/synth.yaml
    run = cli("run", str(tmp_path / "synth.yaml"), "--set", "train.metrics=[loss, accuracy]",
              "--set", "train.epochs=2")
    assert run.returncode == 0, run.stderr
    epoch_lines = [line for line in run.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2
    assert all("val accuracy" in line and "val loss" in line and "val error" not in line for line in epoch_lines)
    assert "val accuracy" in run.stdout.split("training log")[1]


def test_terminal_gets_a_progress_bar(synth, tmp_path, monkeypatch):
    pty = pytest.importorskip("pty")
    synth()
    import io

    out = io.BytesIO()

    def read(fd):
        data = os.read(fd, 1024)
        out.write(data)
        return data

    monkeypatch.setenv("COLUMNS", "120")
    status = pty.spawn([sys.executable, "-m", "graphnet.cli", "run", str(tmp_path / "synth.yaml"),
                        "--set", "train.epochs=2"], read)
    text = out.getvalue().decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "samples/s" in text and "epoch 2/2" in text
    assert "\x1b[" in text  # the live bar redraws with terminal control sequences


def test_real_runs_are_bit_identical(tmp_path, real_images):
    args = [*real_data_args(real_images), "--set", "train.data.limit=3000", "--set", "train.data.validation=500",
            "--set", "train.schedule=[{epochs: 1, lr: 0.05}]", "--set", "layers.dropout=0.3"]
    spec = str(SPECS / "seed-softmax.yaml")
    first = cli("run", spec, "--out", str(tmp_path / "a.gnm"), *args)
    second = cli("run", spec, "--out", str(tmp_path / "b.gnm"), *args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = load_model(tmp_path / "a.gnm"), load_model(tmp_path / "b.gnm")
    assert np.array_equal(a.model.flat_params, b.model.flat_params)
    timing = {"seconds", "samples_per_second"}
    strip = lambda log: [{k: v for k, v in e.items() if k not in timing} for e in log["epochs"]]  # noqa: E731
    assert strip(a.log) == strip(b.log)
    assert a.metrics == b.metrics
