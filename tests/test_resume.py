"""Resuming a run (``train(spec, resume=read_resume(load_model(file), spec))``, what `graphnet run
--resume` does): a run stopped after any epoch, in the middle of one, by Ctrl-C or by SIGKILL,
then resumed, ends with the parameters of a run never stopped, bit for bit, and the same log
apart from the timings; and every file or spec that cannot be resumed is refused with one error
saying why. Small synthetic data: each run takes a fraction of a second."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from graphnet import load_spec
from graphnet.errors import ModelFileError, SpecError, TrainingError
from graphnet.modelfile import header_dict, load_model, read_contents, read_header, save_model, write_model_file
from graphnet.train import loop
from graphnet.train.loop import Silent, evaluate, prepare, resolve_roles
from graphnet.train.resume import EpochRecord, read_resume

REPO = Path(__file__).resolve().parents[1]

# 16 features seen as 4x4 images (for the shifts), dropout, Adam on a cosine schedule with a
# warm-up, best-on-validation; each test changes what it is about with --set overrides.
SPEC = """
format: 1
name: resume
inputs:
  x: {{shape: [16]}}
  y: {{shape: [], dtype: int64}}
layers: {{input: x, sizes: [16, 24, 3], labels: y, dropout: 0.2}}
train:
  data: {{dataset: npz, path: {path}, validation: 60, preprocess: {{scale: false, flatten: false}}}}
  augment: {{shift: 1, image_shape: [4, 4]}}
  batch_size: 16
  epochs: 6
  seed: 3
  optimizer: {{type: adam, lr: 0.01}}
  schedule: {{type: cosine, warmup_epochs: 1}}
  keep_best: {{metric: val_loss}}
  output: unused.gnm
"""
STEPS_PER_EPOCH = 15  # 300 examples, 60 held out, batches of 16

CONFIGS = {
    "sgd-momentum": ["train.optimizer={type: sgd, lr: 0.05, momentum: 0.9}",
                     "train.schedule={type: constant}", "train.keep_best={metric: val_error}"],
    "nesterov-piecewise": ["train.optimizer={type: sgd, lr: 0.1, momentum: 0.8, nesterov: true, weight_decay: 0.01}",
                           "train.epochs=null",
                           "train.schedule={type: piecewise, warmup_epochs: 0.5, stages: [{epochs: 3, lr: 0.3}, {epochs: 3, lr: 0.03}]}",
                           "train.keep_best={metric: val_error}"],
    "adam-cosine": [],
    "adamw-step-keep-last": ["train.optimizer={type: adamw, lr: 0.02, weight_decay: 0.1}",
                             "train.schedule={type: step, step_epochs: 2, gamma: 0.5}", "train.keep_best=null"],
    "adam-accuracy-no-augment": ["train.keep_best={metric: val_accuracy}", "train.augment=null"],
}
# (epochs done, steps of the next epoch done) when the run is killed
KILLS = [(1, 0), (3, 0), (2, 7), (5, 14)]
TIMINGS = ("seconds", "samples_per_second")


@pytest.fixture
def make_spec(tmp_path):
    """make_spec(*overrides) -> a loaded spec on 300 + 100 noisy examples of 3 classes (noisy
    enough that validation does not improve every epoch)."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 16))

    def examples(n):
        y = rng.integers(0, 3, n)
        return (centers[y] + 1.5 * rng.standard_normal((n, 16))).astype(np.float32), y

    x_train, y_train = examples(300)
    x_test, y_test = examples(100)
    data = tmp_path / "data.npz"
    np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    spec_file = tmp_path / "resume.yaml"
    spec_file.write_text(SPEC.format(path=data))

    def make(*overrides):
        return load_spec(spec_file, overrides=list(overrides))

    return make


def saving_to(path: Path):
    """A checkpoint function that writes what `graphnet run` writes: the model with its log and
    metrics, and the resume snapshot."""

    def checkpoint(model, log, metrics, resume=None):
        save_model(path, model, log=log, metrics=metrics,
                   resume=resume.header if resume else None, optimizer=resume.tensors if resume else None)

    return checkpoint


class Killed(Exception):
    """Stands for SIGKILL: the run stops where it is, with nothing more saved."""


class KillAt(Silent):
    """Raises Killed when ``epochs`` epochs are done and ``steps`` steps of the next one."""

    def __init__(self, epochs: int, steps: int = 0) -> None:
        self.at = (epochs + 1, steps)
        self.where = (0, 0)

    def epoch_start(self, epoch, epochs, steps):
        self.where = (epoch, 0)
        if self.where == self.at:
            raise Killed

    def step(self, loss, samples):
        self.where = (self.where[0], self.where[1] + 1)
        if self.where == self.at:
            raise Killed


class KillAfterCheckpoint(Silent):
    """Raises Killed right after the checkpoint of epoch ``epoch``, before anything else."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_end(self, log, best):
        if log.epoch == self.epoch:
            raise Killed


def resume(spec, path: Path, **kwargs):
    return loop.train(spec, checkpoint=saving_to(path), resume=read_resume(load_model(path), spec), **kwargs)


def without_timings(header: dict) -> dict:
    """A model file's header without the fields that measure time."""
    header = dict(header)
    log = dict(header["log"])
    log.pop("seconds", None)
    log["epochs"] = [{k: v for k, v in entry.items() if k not in TIMINGS} for entry in log["epochs"]]
    header["log"] = log
    return header


def assert_same_run(file: Path, reference: Path, result=None, reference_result=None) -> None:
    """Two model files hold the same run: every tensor bit for bit (values and bytes), the
    header (log, metrics, resume map, tensor digests) equal but for the timings."""
    mine, theirs = read_contents(file), read_contents(reference)
    for group in ("params", "state", "optimizer"):
        assert mine.tensors[group].keys() == theirs.tensors[group].keys(), group
        for name, array in theirs.tensors[group].items():
            assert np.array_equal(mine.tensors[group][name], array), (group, name)
            assert mine.tensors[group][name].tobytes() == array.tobytes(), (group, name)
    assert without_timings(header_dict(file)) == without_timings(header_dict(reference))
    if result is not None:
        assert result.model.flat_params.tobytes() == reference_result.model.flat_params.tobytes()
        strip = lambda r: [{k: v for k, v in vars(e).items() if k not in TIMINGS} for e in r.epochs]  # noqa: E731
        assert strip(result) == strip(reference_result)
        assert (result.test, result.best_epoch, result.stopped, result.steps) == (
            reference_result.test, reference_result.best_epoch, reference_result.stopped, reference_result.steps)


# ----------------------------------------------------------------------------------------------
# Killed, resumed: the same run
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", list(CONFIGS))
def test_killed_and_resumed_runs_end_bit_identical(make_spec, tmp_path, config):
    spec = make_spec(*CONFIGS[config])
    reference = loop.train(spec, checkpoint=saving_to(tmp_path / "reference.gnm"))
    assert reference.stopped is None and len(reference.epochs) == 6
    for epochs, steps in KILLS:
        file = tmp_path / f"killed-{epochs}-{steps}.gnm"
        with pytest.raises(Killed):
            loop.train(spec, checkpoint=saving_to(file), progress=KillAt(epochs, steps))
        saved = read_header(file).resume
        assert saved["position"] == {"epoch": epochs, "step": 0, "steps": epochs * STEPS_PER_EPOCH}
        assert saved["finished"] is None
        resumed = resume(spec, file)
        assert_same_run(file, tmp_path / "reference.gnm", resumed, reference)


def test_the_checkpoint_keeps_the_best_weights_as_params_and_the_current_ones_for_resuming(make_spec, tmp_path):
    """After an epoch that is not the best, the file's params are the best epoch's weights
    (what eval uses: they score the best validation loss logged) and the optimizer group
    carries the current weights and the optimizer's slots, per parameter."""
    spec = make_spec(*CONFIGS["nesterov-piecewise"])
    reference = loop.train(spec, checkpoint=saving_to(tmp_path / "reference.gnm"))
    errors = [e.val_error for e in reference.epochs]
    # an epoch k after which the best epoch is an earlier one
    k = next(k for k in range(2, 7) if min(errors[:k]) < errors[k - 1])
    best = errors.index(min(errors[:k])) + 1
    file = tmp_path / "killed.gnm"
    with pytest.raises(Killed):
        loop.train(spec, checkpoint=saving_to(file), progress=KillAt(k))
    saved = load_model(file)
    assert saved.resume["weights"] == "optimizer" and saved.resume["best"]["epoch"] == best
    names = saved.model.param_names
    assert set(saved.optimizer) == {f"{slot}/{n}" for slot in ("momentum", "weights") for n in names}
    graph, roles, data = prepare(spec)
    assert evaluate(saved.model, data.val, resolve_roles(graph, spec.train))["error"] == errors[best - 1]
    for name in names:
        assert not np.array_equal(saved.optimizer[f"weights/{name}"], saved.model.params[name])


def test_a_resumed_run_can_be_killed_and_resumed_again(make_spec, tmp_path):
    spec = make_spec(*CONFIGS["sgd-momentum"])
    reference = loop.train(spec, checkpoint=saving_to(tmp_path / "reference.gnm"))
    file = tmp_path / "run.gnm"
    with pytest.raises(Killed):
        loop.train(spec, checkpoint=saving_to(file), progress=KillAt(1, 3))
    with pytest.raises(Killed):
        resume(spec, file, progress=KillAt(4, 2))
    assert read_header(file).resume["position"]["epoch"] == 4
    assert_same_run(file, tmp_path / "reference.gnm", resume(spec, file), reference)


def press_ctrl_c():
    """What a Ctrl-C does while training: call the SIGINT handler train() installed."""
    handler = signal.getsignal(signal.SIGINT)
    assert isinstance(handler, loop._CtrlC)
    handler(signal.SIGINT, None)


class CtrlCAt(Silent):
    def __init__(self, steps: int) -> None:
        self.steps, self.at = 0, steps

    def step(self, loss, samples):
        self.steps += 1
        if self.steps == self.at:
            press_ctrl_c()


@pytest.mark.parametrize("config", ["adam-cosine", "nesterov-piecewise"])
@pytest.mark.parametrize("epochs, steps", [(2, 5), (3, 0)])
def test_ctrl_c_resumes_from_the_step_it_stopped_after(make_spec, tmp_path, config, epochs, steps):
    """Ctrl-C after step 5 of epoch 3, or after the last step of epoch 3: the file holds the best
    weights as params and resumes from that very step (the shifts and dropout of the steps after
    it, the epoch's mean loss)."""
    spec = make_spec(*CONFIGS[config])
    reference = loop.train(spec, checkpoint=saving_to(tmp_path / "reference.gnm"))
    file = tmp_path / "interrupted.gnm"
    total = epochs * STEPS_PER_EPOCH + steps
    stopped = loop.train(spec, checkpoint=saving_to(file), progress=CtrlCAt(total))
    assert stopped.stopped == "interrupted" and stopped.steps == total
    saved = read_header(file)
    assert saved.resume["position"] == {"epoch": epochs, "step": steps, "steps": total}
    partial = saved.resume["partial"]
    assert (partial["seen"] if partial else 0) == steps * 16  # none at an epoch's end
    assert saved.log.stopped == "interrupted" and "test_error" in saved.metrics
    resumed = resume(spec, file)
    assert resumed.stopped is None
    assert_same_run(file, tmp_path / "reference.gnm", resumed, reference)


def test_early_stopping_resumed_stops_where_the_uninterrupted_run_stopped(make_spec, tmp_path):
    """Killed right after the epoch that ran out of patience (checkpoint written, last file
    not): the resumed run trains no further epoch."""
    spec = make_spec("train.optimizer.lr=1e-9", "train.keep_best={metric: val_loss, patience: 2}",
                     "train.epochs=20", "train.schedule={type: constant}")
    reference = loop.train(spec, checkpoint=saving_to(tmp_path / "reference.gnm"))
    assert reference.stopped == "early stopping"
    stop = len(reference.epochs)
    assert stop < 20
    assert read_header(tmp_path / "reference.gnm").resume["finished"] == "early stopping"
    for name, kill in [("in-the-last-epoch", KillAt(stop - 1, 4)), ("after-it", KillAfterCheckpoint(stop))]:
        file = tmp_path / f"killed-{name}.gnm"
        with pytest.raises(Killed):
            loop.train(spec, checkpoint=saving_to(file), progress=kill)
        assert read_header(file).resume["finished"] is None
        resumed = resume(spec, file)
        assert resumed.stopped == "early stopping" and len(resumed.epochs) == stop
        assert_same_run(file, tmp_path / "reference.gnm", resumed, reference)


def test_the_optimizer_state_in_the_file_is_the_optimizers_own(make_spec, tmp_path):
    """The Adam moments and step count a checkpoint saves are the optimizer's, exactly: the
    snapshot handed to the checkpoint function holds them, and the file gives them back."""
    spec = make_spec()
    seen = {}

    def checkpoint(model, log, metrics, resume=None):
        if metrics is None and len(log["epochs"]) == 2:
            seen["header"] = resume.header
            seen["tensors"] = {name: array.copy() for name, array in resume.tensors.items()}
        saving_to(tmp_path / "run.gnm")(model, log, metrics, resume)

    with pytest.raises(Killed):
        loop.train(spec, checkpoint=checkpoint, progress=KillAt(2, 1))
    point = read_resume(load_model(tmp_path / "run.gnm"), spec)
    assert point.record.optimizer.step == 2 * STEPS_PER_EPOCH == seen["header"]["optimizer"]["step"]
    assert point.record.optimizer.slots == ["exp_avg", "exp_avg_sq"]
    for slot, arrays in point.slots.items():
        for name, array in arrays.items():
            assert array.tobytes() == seen["tensors"][f"{slot}/{name}"].tobytes()
            assert np.any(array != 0)
    squares = np.concatenate([a.ravel() for a in point.slots["exp_avg_sq"].values()])
    assert np.all(squares >= 0)


def test_checkpoint_functions_without_resume_still_work(make_spec, tmp_path):
    """graphnet 0.1's three-parameter checkpoint functions are called as before (after every
    epoch now, always with the best weights so far) and get no resume data."""
    spec = make_spec()
    calls = []

    def old(model, log, metrics):
        calls.append(len(log["epochs"]))
        save_model(tmp_path / "old.gnm", model, log=log, metrics=metrics)

    result = loop.train(spec, checkpoint=old)
    assert calls == [1, 2, 3, 4, 5, 6, 6]
    saved = load_model(tmp_path / "old.gnm")
    assert saved.resume is None
    assert np.array_equal(saved.model.flat_params, result.model.flat_params)


# ----------------------------------------------------------------------------------------------
# A real process, killed with SIGKILL
# ----------------------------------------------------------------------------------------------

# What `graphnet run SPEC [--resume FILE]` does, as a library call, with a progress that slows
# every step down so that the parent can kill the process in the middle of the run.
CHILD = """
import sys, time
from graphnet import load_spec
from graphnet.modelfile import load_model, save_model
from graphnet.train.loop import Silent, prepare, train
from graphnet.train.resume import read_resume

spec_file, out, resume_from, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
spec = load_spec(spec_file)
point = read_resume(load_model(resume_from), spec) if resume_from else None
graph, roles, data = prepare(spec)

def checkpoint(model, log, metrics, resume=None):
    save_model(out, model, log={**log, "data": data.description}, metrics=metrics,
               preprocess=data.preprocess, classes=data.classes_record(), data=data.description,
               resume=resume.header if resume else None, optimizer=resume.tensors if resume else None)

class Slow(Silent):
    def step(self, loss, samples):
        time.sleep(delay)

result = train(spec, checkpoint=checkpoint, progress=Slow(), prepared=(graph, roles, data), resume=point)
print(len(result.epochs), result.stopped)
"""


def run_child(spec_file: Path, out: Path, resume_from: Path | None = None, delay: float = 0.0):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-c", CHILD, str(spec_file), str(out), str(resume_from or ""), str(delay)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def epochs_done(file: Path) -> int:
    """Epochs in the file's log; 0 while there is no file yet (writes are atomic: once the file
    exists it is always whole, the last checkpoint or the one before)."""
    return len(read_header(file).log.epochs) if file.exists() else 0


def test_a_process_killed_with_sigkill_after_epoch_k_resumes_to_the_same_parameters(make_spec, tmp_path):
    spec = make_spec("train.epochs=8", "train.keep_best={metric: val_error}")
    spec_file = tmp_path / "killed.yaml"
    spec_file.write_text(spec.to_json())  # the spec with its overrides, as the child reads it
    spec = load_spec(spec_file)
    reference = loop.train(spec, checkpoint=saving_to(tmp_path / "reference.gnm"))
    file = tmp_path / "run.gnm"
    child = run_child(spec_file, file, delay=0.01)  # about 0.2 s per epoch
    try:
        deadline = time.monotonic() + 120
        while epochs_done(file) < 3:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(random.uniform(0.0, 0.2))  # anywhere in epoch 4, or in its checkpoint's write
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL
    saved = read_header(file).resume
    assert saved["finished"] is None and 3 <= saved["position"]["epoch"] < 8
    resumed = run_child(spec_file, file, resume_from=file)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert out.split() == ["8", "None"]
    mine, theirs = load_model(file), load_model(tmp_path / "reference.gnm")
    assert mine.model.flat_params.tobytes() == reference.model.flat_params.tobytes()
    for name, array in theirs.model.params.items():
        assert mine.model.params[name].tobytes() == array.tobytes(), name
    strip = lambda log: [{k: v for k, v in e.items() if k not in TIMINGS} for e in log["epochs"]]  # noqa: E731
    assert strip(mine.log) == strip(theirs.log)
    assert mine.metrics == theirs.metrics and mine.resume == theirs.resume


# ----------------------------------------------------------------------------------------------
# What cannot be resumed
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def killed(make_spec, tmp_path):
    """(spec, file) of a run killed after epoch 2."""
    spec = make_spec()
    file = tmp_path / "killed.gnm"
    with pytest.raises(Killed):
        loop.train(spec, checkpoint=saving_to(file), progress=KillAt(2))
    return spec, file


def test_a_finished_run_is_not_resumed(make_spec, tmp_path):
    spec = make_spec()
    loop.train(spec, checkpoint=saving_to(tmp_path / "done.gnm"))
    saved = load_model(tmp_path / "done.gnm")
    assert saved.resume["finished"] == "completed" and saved.optimizer == {}
    with pytest.raises(TrainingError) as caught:
        read_resume(saved, spec)
    message = str(caught.value)
    assert message == (f"{tmp_path / 'done.gnm'}: the run has finished: it trained all 6 epochs; there is "
                       "nothing to resume (to train longer, start a new run; --out writes it to another file)")


def test_a_file_saved_without_resume_data_is_not_resumed(make_spec, tmp_path):
    spec = make_spec()
    result = loop.train(spec)
    save_model(tmp_path / "plain.gnm", result.model, log=result.log_dict())
    with pytest.raises(TrainingError, match="plain.gnm: the model file was saved without resume data"):
        read_resume(load_model(tmp_path / "plain.gnm"), spec)


def test_a_different_spec_is_refused_naming_every_path_that_differs(killed, make_spec):
    spec, file = killed
    other = make_spec("train.optimizer.lr=0.02", "layers.dropout=0.3", "train.epochs=7")
    with pytest.raises(SpecError) as caught:
        read_resume(load_model(file), other)
    errors = caught.value.all()
    assert [e.path for e in errors] == ["layers.dropout", "train.epochs", "train.optimizer.lr"]
    assert all(e.file == "--set " + s for e, s in zip(errors, ["layers.dropout=0.3", "train.epochs=7",
                                                               "train.optimizer.lr=0.02"]))
    assert "it was trained with 0.01, the spec now says 0.02" in errors[2].message
    assert str(file) in errors[0].message


def test_a_spec_file_that_differs_is_located_at_its_line(killed, tmp_path):
    spec, file = killed
    changed = tmp_path / "changed.yaml"
    changed.write_text((tmp_path / "resume.yaml").read_text().replace("seed: 3", "seed: 4"))
    with pytest.raises(SpecError) as caught:
        read_resume(load_model(file), load_spec(changed))
    assert (caught.value.file, caught.value.line, caught.value.path) == (str(changed), 13, "train.seed")


def test_another_output_path_is_not_a_different_run(killed, make_spec):
    spec, file = killed
    point = read_resume(load_model(file), make_spec("train.output=elsewhere.gnm"))
    assert point.position.epoch == 2


def test_other_data_are_refused(killed, tmp_path):
    spec, file = killed
    point = read_resume(load_model(file), spec)
    with np.load(tmp_path / "data.npz") as arrays:
        changed = dict(arrays)
    changed["x_train"][5, 3] += 1.0
    np.savez(tmp_path / "data.npz", **changed)
    with pytest.raises(TrainingError, match="killed.gnm: the training or validation examples differ"):
        loop.train(spec, resume=point)
    changed["x_train"] = changed["x_train"][:-10]
    changed["y_train"] = changed["y_train"][:-10]
    np.savez(tmp_path / "data.npz", **changed)
    with pytest.raises(TrainingError, match="240 training and 60 validation examples; the data now hold 230 and 60"):
        loop.train(spec, resume=point)


def rewrite(file: Path, change) -> Path:
    """The file with its header changed by ``change(fields, tensors)`` (re-signed, as a program
    that writes model files would)."""
    contents = read_contents(file)
    fields = contents.header.to_dict()
    tensors = {group: dict(arrays) for group, arrays in contents.tensors.items()}
    change(fields, tensors)
    out = file.with_name("changed.gnm")
    write_model_file(out, fields, tensors)
    return out


def _set(path: str, value):
    def change(fields, tensors):
        *parents, last = path.split(".")
        target = fields
        for key in parents:
            target = target[key]
        target[last] = value
    return change


def _drop_tensor(fields, tensors):
    del tensors["optimizer"]["exp_avg/fc1.w"]


@pytest.mark.parametrize("change, path, message", [
    (_set("resume.position.epoch", "2"), "resume.position.epoch", "Input should be a valid integer"),
    (_set("resume.optimizer.step", 29), "resume.optimizer.step", "the optimizer took 29 steps, the run 30"),
    (_set("resume.position.steps", 31), "resume.position.steps", "31 steps in all after 2 epochs of 15 steps"),
    (_set("resume.extra", 1), "resume", "unknown key 'extra'"),
    (_set("resume.version", 2), "resume.version", "version 2; this graphnet reads version 1"),
    (_set("resume.best.metric", "val_error"), "resume.best.metric", "chosen by val_error, the spec's keep_best by val_loss"),
    (_set("resume.partial", {"loss_sum": 1.0, "seen": 16}), "resume.partial", "only there"),
    (_set("log.epochs", []), "log.epochs", "the log has 0 epochs, the position says 2"),
    (_drop_tensor, "tensors.optimizer", "the optimizer tensors lack exp_avg/fc1.w"),
])
def test_resume_data_that_do_not_hold_together_are_refused(killed, change, path, message):
    spec, file = killed
    changed = rewrite(file, change)
    with pytest.raises(ModelFileError) as caught:
        read_resume(load_model(changed), spec)
    assert caught.value.file == str(changed) and caught.value.path == path
    assert message in caught.value.message


def test_the_epoch_record_has_the_fields_of_the_loops_log():
    from dataclasses import fields

    assert [f.name for f in fields(loop.EpochLog)] == list(EpochRecord.model_fields)


# ----------------------------------------------------------------------------------------------
# `graphnet run --resume`, a real process killed with SIGKILL
# ----------------------------------------------------------------------------------------------

# 4,000 examples of 64 features through 64-256-3 with dropout: 225 steps an epoch, a few tenths
# of a second each, so that the process can be killed in the middle of the run.
CLI_SPEC = """
format: 1
name: cli-resume
inputs:
  x: {{shape: [64]}}
  y: {{shape: [], dtype: int64}}
layers: {{input: x, sizes: [64, 256, 3], labels: y, dropout: 0.2}}
train:
  data: {{dataset: npz, path: {path}, validation: 400, preprocess: {{scale: false, flatten: false}}}}
  augment: {{shift: 1, image_shape: [8, 8]}}
  batch_size: 16
  epochs: 8
  seed: 5
  optimizer: {{type: adam, lr: 0.003}}
  schedule: {{type: cosine, warmup_epochs: 1}}
"""


def graphnet_cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "GRAPHNET_DATA"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, "-m", "graphnet.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def cli_spec(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((3, 64))
    y = rng.integers(0, 3, 4000)
    x = (centers[y] + 2.0 * rng.standard_normal((4000, 64))).astype(np.float32)
    np.savez(tmp_path / "data.npz", x_train=x[:3600], y_train=y[:3600], x_test=x[3600:], y_test=y[3600:])
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(CLI_SPEC.format(path="data.npz"))
    return spec_file


def test_graphnet_run_killed_with_sigkill_then_resumed_ends_as_an_uninterrupted_run(cli_spec, tmp_path):
    reference = graphnet_cli("run", str(cli_spec), "--out", "reference.gnm", cwd=tmp_path)
    out, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err
    file = tmp_path / "run.gnm"
    child = graphnet_cli("run", str(cli_spec), "--out", "run.gnm", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while epochs_done(file) < 3:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        # anywhere in the next epoch or its checkpoint's write: an epoch's own length, as its log
        # says (a fixed delay could outlast the 5 epochs left, ~0.25 s on this machine)
        time.sleep(random.uniform(0.0, read_header(file).log.epochs[-1]["seconds"]))
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL
    saved = read_header(file).resume
    assert saved["finished"] is None and 3 <= saved["position"]["epoch"] < 8
    resumed = graphnet_cli("run", str(cli_spec), "--resume", "run.gnm", cwd=tmp_path)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"resuming run.gnm after epoch {saved['position']['epoch']} of 8" in out
    assert_same_run(file, tmp_path / "reference.gnm")


def test_graphnet_run_resume_refuses_a_finished_run(cli_spec, tmp_path):
    done = graphnet_cli("run", str(cli_spec), "--set", "train.epochs=1", "--out", "done.gnm", cwd=tmp_path)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    again = graphnet_cli("run", str(cli_spec), "--set", "train.epochs=1", "--resume", "done.gnm", cwd=tmp_path)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 1
    assert err.strip() == ("graphnet: error: done.gnm: the run has finished: it trained its only epoch; "
                           "there is nothing to resume (to train longer, start a new run; --out writes it "
                           "to another file)")
    assert not (tmp_path / "runs").exists()


def test_graphnet_run_resume_with_another_setting_names_the_flag(killed, tmp_path):
    spec, file = killed
    run = graphnet_cli("run", "resume.yaml", "--resume", file.name, "--set", "train.optimizer.lr=0.5",
                       cwd=tmp_path)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 1
    assert err.strip() == (
        f"graphnet: error: --set train.optimizer.lr=0.5: train.optimizer.lr: differs from the run being "
        f"resumed ({file.name}): it was trained with 0.01, the spec now says 0.5 (resume with the spec "
        "and --set flags the run started with, or start a new run)")
