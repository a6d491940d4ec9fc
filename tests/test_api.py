"""The Python API without hidden state: a forward's result is a mapping of its outputs that
carries its own backward; model.backward() refuses to guess; outputs need only the inputs they
depend on; memory is checked (with the numbers) before it is allocated; Ctrl-C stops training
between two whole steps."""

from __future__ import annotations

import gc
import os
import random
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from graphnet import Model, build_graph, load_spec, parse_spec
from graphnet.errors import GraphnetError, SpecError
from graphnet.executor import Plan
from graphnet.model import (
    ForwardResult,
    MemoryNeed,
    check_fits,
    format_bytes,
    memory_need,
    training_memory,
)
from graphnet.spec import AdamSpec, SGDSpec
from graphnet.train import loop
from graphnet.train.optim import make_optimizer

REPO = Path(__file__).resolve().parents[1]
SPECS_DIR = REPO / "specs"

# x -> h = x W + b -> r = relu(h) -> y = r + h -> loss = sum((y - t)^2) / N
SKIP = """
name: skip
inputs: {x: {shape: [4]}, t: {shape: [3]}}
nodes:
  h: {op: linear, inputs: {x: x}, attrs: {units: 3}}
  r: {op: relu, inputs: {x: h}}
  y: {op: add, inputs: {a: r, b: h}}
  loss: {op: mse, inputs: {pred: y, target: t}, attrs: {reduction: sum_per_sample}}
outputs: [y, loss]
"""


def skip_model() -> Model:
    return Model.from_spec(parse_spec(SKIP), seed=1, dtype="float64")


def skip_batch(seed: int, n: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, 4)), "t": rng.standard_normal((n, 3))}


def skip_reference(model: Model, batch: dict) -> dict[str, np.ndarray]:
    """The SKIP graph's outputs and gradients, in plain numpy."""
    x, t = batch["x"], batch["t"]
    w, b = model.params["h.w"], model.params["h.b"]
    h = x @ w + b
    y = np.maximum(h, 0) + h
    n = len(x)
    dy = 2 * (y - t) / n
    dh = dy * (h > 0) + dy
    return {"y": y, "loss": np.sum((y - t) ** 2) / n, "h.w": x.T @ dh, "h.b": dh.sum(axis=0)}


def assert_grads(model: Model, expected: dict) -> None:
    np.testing.assert_allclose(model.grads["h.w"], expected["h.w"], rtol=1e-12)
    np.testing.assert_allclose(model.grads["h.b"], expected["h.b"], rtol=1e-12)


# -- the result of a forward --------------------------------------------------------------------


def test_result_is_a_mapping_of_the_outputs_with_values_of_plain_numpy():
    model = skip_model()
    batch = skip_batch(0)
    expected = skip_reference(model, batch)
    out = model.forward(batch, training=True)
    assert isinstance(out, Mapping) and isinstance(out, ForwardResult)
    assert list(out) == ["y", "loss"] and len(out) == 2
    assert set(dict(out)) == {"y", "loss"}
    np.testing.assert_allclose(out["y"], expected["y"], rtol=1e-13)
    np.testing.assert_allclose(out["loss"], expected["loss"], rtol=1e-13)
    assert out.training
    assert "r" not in out and out.get("r") is None  # computed on the way, but not asked for
    with pytest.raises(KeyError) as info:
        out["r"]
    assert isinstance(info.value, GraphnetError)
    assert str(info.value) == "'r' is not an output of this forward (outputs: y, loss) " \
        "(ask for it: forward(batch, outputs=[..., 'r']))"
    out.backward("loss")
    assert_grads(model, expected)
    assert repr(out) == "ForwardResult({y: [5, 3], loss: []}, training=True)"


def test_forward_forward_backward_sequence_of_the_issue():
    """forward(A, training=True), forward(B, training=False), backward() used to give B's
    gradients silently."""
    model = skip_model()
    a, b = skip_batch(1), skip_batch(2, n=7)
    expected_a, expected_b = skip_reference(model, a), skip_reference(model, b)
    assert not np.allclose(expected_a["h.w"], expected_b["h.w"])

    out_a = model.forward(a, training=True)
    out_b = model.forward(b, training=False)
    model.grads["h.w"][...] = 7.0
    with pytest.raises(GraphnetError) as info:
        model.backward("loss")
    assert info.value.message == (
        "model.backward() is ambiguous: a training forward has not been backpropagated, and 1 "
        "later forward (training=False) ran since; its gradients would be those of the later batch"
    )
    assert "out.backward('loss')" in info.value.hint
    assert np.all(model.grads["h.w"] == 7.0)  # refused before touching anything

    out_a.backward("loss")  # A's own result: A's gradients, whatever ran since
    assert_grads(model, expected_a)
    out_b.backward("loss")
    assert_grads(model, expected_b)
    out_a.backward("loss")  # again, after B's
    assert_grads(model, expected_a)
    # A is backpropagated: nothing is ambiguous any more, the shortcut means the latest (B)
    model.backward("loss")
    assert_grads(model, expected_b)


def test_model_backward_means_the_latest_forward_when_that_is_unambiguous():
    model = skip_model()
    a, b = skip_batch(3), skip_batch(4)
    expected_b = skip_reference(model, b)
    for training_a, training_b in [(True, True), (False, False), (False, True)]:
        model.forward(a, training=training_a)
        model.forward(b, training=training_b)
        model.grads["h.w"][...] = 0
        model.backward("loss")
        assert_grads(model, expected_b)


def test_model_backward_errors():
    model = skip_model()
    with pytest.raises(GraphnetError, match="backward before any forward"):
        model.backward("loss")
    model.forward(skip_batch(0), outputs=["y"])
    with pytest.raises(GraphnetError) as info:
        model.backward("loss")
    assert info.value.message == (
        "cannot backpropagate from 'loss': this forward did not compute it (its outputs: y)"
    )
    assert info.value.hint == "include 'loss' in forward(outputs=[...])"
    out = model.forward(skip_batch(0), outputs=["y"])
    shapes = r"the gradient given for 'y' has shape \[2\], its output has shape \[5, 3\]"
    with pytest.raises(GraphnetError, match=shapes):
        out.backward({"y": np.ones(2)})


def test_backward_through_an_earlier_forward_uses_its_own_dropout_mask():
    model = Model.from_spec(load_spec(SPECS_DIR / "fashion-mlp.yaml"), seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    a = {"image": rng.uniform(0, 1, (6, 784)), "label": np.arange(6)}
    b = {"image": rng.uniform(0, 1, (6, 784)), "label": np.arange(6)[::-1].copy()}
    fresh = model.forward(a, training=True, step=3)
    fresh.backward("loss")
    alone = model.flat_grads.copy()

    out_a = model.forward(a, training=True, step=3)
    out_b = model.forward(b, training=True, step=4)  # another batch, another dropout mask
    out_b.backward("loss")
    assert not np.allclose(model.flat_grads, alone)
    out_a.backward("loss")
    np.testing.assert_array_equal(model.flat_grads, alone)


def test_train_step_is_a_training_forward_and_its_backward():
    model = skip_model()
    batch = skip_batch(2)
    expected = skip_reference(model, batch)
    loss = model.train_step(batch, "loss")
    np.testing.assert_allclose(loss, expected["loss"], rtol=1e-12)
    assert_grads(model, expected)
    # with dropout: the same mask as a training forward of the same step
    model = Model.from_spec(load_spec(SPECS_DIR / "fashion-mlp.yaml"), seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    batch = {"image": rng.uniform(0, 1, (6, 784)), "label": np.arange(6)}
    out = model.forward(batch, training=True, step=7)
    out.backward("loss")
    grads = model.flat_grads.copy()
    model.flat_grads[...] = 0
    assert model.train_step(batch, "loss", step=7) == out["loss"]
    np.testing.assert_array_equal(model.flat_grads, grads)
    # an earlier result keeps its own pass
    other = {"image": rng.uniform(0, 1, (6, 784)), "label": np.arange(6)[::-1].copy()}
    model.train_step(other, "loss", step=8)
    out.backward("loss")
    np.testing.assert_array_equal(model.flat_grads, grads)


def test_model_backward_after_train_step_refuses():
    model = skip_model()
    model.forward(skip_batch(0), training=True)  # a training forward not backpropagated ...
    model.train_step(skip_batch(1), "loss")  # ... then a step, which keeps nothing
    with pytest.raises(GraphnetError) as info:
        model.backward("loss")
    assert info.value.message == (
        "model.backward() after model.train_step(): it kept nothing to backpropagate through, "
        "and its gradients are in model.grads already"
    )
    with pytest.raises(GraphnetError, match="'nope' is not a node"):
        model.train_step(skip_batch(1), "nope")
    with pytest.raises(GraphnetError, match="the batch has no array for input 't'"):
        model.train_step({"x": skip_batch(1)["x"]}, "loss")
    model.forward(skip_batch(0), training=True).backward("loss")  # forwards work as before
    model.backward("loss")


def test_predict_gives_the_outputs_of_an_evaluation_forward_and_keeps_nothing():
    model = Model.from_spec(load_spec(SPECS_DIR / "fashion-mlp.yaml"), seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    batch = {"image": rng.uniform(0, 1, (6, 784)), "label": np.arange(6)}
    out = model.forward(batch)  # evaluation: no dropout
    predicted = model.predict(batch)
    assert type(predicted) is dict and list(predicted) == list(out)
    for name in out:
        np.testing.assert_array_equal(predicted[name], out[name])
    logits = model.predict({"image": batch["image"]}, ["fc3"])  # no labels needed
    np.testing.assert_array_equal(logits["fc3"], out["fc3"])
    with pytest.raises(GraphnetError) as info:
        model.backward("loss")
    assert info.value.message == "model.backward() after model.predict(): it kept nothing to backpropagate through"
    out.backward("loss")  # an earlier result still backpropagates its own pass


def test_predict_frees_each_array_after_its_last_reader():
    model = skip_model()  # h -> r -> y = r + h -> loss
    relu, mse = model.graph.nodes["r"].op, model.graph.nodes["loss"].op
    relu_forward, mse_forward = relu.forward, mse.forward
    outputs, alive = [], []

    def watched_relu(attrs, ctx, x):
        out, saved = relu_forward(attrs, ctx, x)
        outputs.append(weakref.ref(out))
        return out, saved

    def watched_mse(attrs, ctx, **inputs):
        alive.append(outputs[-1]() is not None)  # is r's output still held when the loss runs?
        return mse_forward(attrs, ctx, **inputs)

    relu.forward, mse.forward = watched_relu, watched_mse  # these op instances only
    try:
        gc.disable()
        model.predict(skip_batch(0), ["loss"])
        model.forward(skip_batch(0), ["loss"])  # a forward keeps everything for its backward
        result = model.predict(skip_batch(0), ["r", "loss"])  # an output is kept
        assert alive == [False, True, True]
        assert outputs[-1]() is result["r"]
    finally:
        gc.enable()
        del relu.forward, mse.forward


def test_train_step_frees_its_pass_when_it_returns():
    # the tape's arrays (activations, what ops saved) go when the step returns, not at the next
    model = skip_model()
    kept = []
    relu = model.graph.nodes["r"].op
    forward = relu.forward

    def watched(attrs, ctx, x):
        out, saved = forward(attrs, ctx, x)
        kept.append(weakref.ref(out))
        return out, saved

    relu.forward = watched  # on this op instance only (before the plan is made)
    try:
        gc.disable()
        model.train_step(skip_batch(0), "loss")
        assert kept and kept[0]() is None
        out = model.forward(skip_batch(0), training=True)  # a result keeps its pass ...
        out.backward("loss")
        assert kept[1]() is not None
        del out
        model.forward(skip_batch(1), outputs=["y"])  # ... and the model its latest forward
        assert kept[1]() is None
    finally:
        gc.enable()
        del relu.forward


def test_the_executor_keeps_nothing_of_a_call():
    model = skip_model()
    before = dict(vars(model.executor))
    out = model.forward(skip_batch(0), training=True)
    out.backward("loss")
    assert set(vars(model.executor)) == set(before) == {"graph", "dtype", "_float_inputs", "_plans"}
    # the plan cache holds plans (a function of the graph and the outputs asked for), no arrays
    assert list(model.executor._plans) == [("y", "loss")]
    assert all(isinstance(plan, Plan) for plan in model.executor._plans.values())


def test_a_dropped_model_is_freed_at_once_after_a_forward():
    # the model keeps its latest tape, the result keeps the model: no cycle, so a model dropped
    # in a loop (a sweep) frees its arrays at once, not when the garbage collector runs
    model = skip_model()
    out = model.forward(skip_batch(0), training=True)
    gone = weakref.ref(model)
    gc.disable()
    try:
        del model
        assert gone() is not None  # the result still uses it
        out.backward("loss")
        del out
        assert gone() is None
    finally:
        gc.enable()


# -- outputs need only the inputs they depend on ------------------------------------------------


def test_predicting_needs_no_labels():
    model = Model.from_spec(load_spec(SPECS_DIR / "seed-softmax.yaml"), seed=0, dtype="float64")
    x = np.random.default_rng(0).uniform(-1, 1, (3, 784))
    logits = model.forward({"image": x}, outputs=["fc3"])["fc3"]
    p = model.params
    h1 = np.maximum(x @ p["fc1.w"] + p["fc1.b"], 0)
    h2 = np.maximum(h1 @ p["fc2.w"] + p["fc2.b"], 0)
    np.testing.assert_allclose(logits, h2 @ p["fc3.w"] + p["fc3.b"], rtol=1e-12)


def test_default_outputs_without_labels_say_what_is_missing_and_what_to_ask_for():
    model = Model.from_spec(load_spec(SPECS_DIR / "seed-softmax.yaml"))
    with pytest.raises(GraphnetError) as info:
        model.forward({"image": np.zeros((2, 784))})
    assert info.value.message == "the batch has no array for input 'label', which output 'loss' needs"
    assert info.value.hint == (
        "batch keys: image; give the missing arrays, or compute only what the batch allows "
        "with outputs=['fc3']"
    )
    with pytest.raises(GraphnetError) as info:
        model.forward({}, outputs=["loss", "fc3"])
    assert info.value.message == (
        "the batch has no array for inputs 'image', 'label', which outputs 'loss', 'fc3' need"
    )
    assert info.value.hint == "batch keys: none; give the missing arrays, or ask for other outputs=[...]"


# -- memory ------------------------------------------------------------------------------------

TINY = """
name: tiny
inputs: {x: {shape: [4]}, t: {shape: [3]}}
nodes:
  fc: {op: linear, inputs: {x: x}, attrs: {units: 3}}
  act: {op: relu, inputs: {x: fc}}
  loss: {op: mse, inputs: {pred: act, target: t}}
"""


def test_training_memory_of_a_small_graph_by_hand():
    graph = build_graph(parse_spec(TINY))
    # 15 parameters (W 4x3, b 3) in 3 + 2 buffers of float32: 5 * 15 * 4 = 300 bytes.
    # A batch of 10: inputs 4 + 3 values per sample, fc and act 3 each, counted twice (output and
    # what is saved or the gradient): 7 + 2 * 6 = 19 per sample, 190 values, plus 2 for the loss.
    assert training_memory(graph, batch_size=10, optimizer_slots=2) == 300 + (190 + 2) * 4
    assert training_memory(graph, batch_size=10, optimizer_slots=2, dtype="float64") == 2 * (300 + 192 * 4)
    assert training_memory(graph, batch_size=0, optimizer_slots=0) == 3 * 15 * 4
    need = memory_need(graph, batch_size=10)
    assert (need.parameters, need.itemsize, need.activations) == (15, 4, 192 * 4)
    assert need.describe() == (
        "15 parameters; about 948 bytes (3 buffers of 60 bytes: parameters, gradients, decay "
        "mask; 768 bytes of activations for a batch of 10)"
    )


@pytest.mark.parametrize(
    "optimizer",
    [
        SGDSpec(type="sgd", lr=0.1, momentum=0.0),
        SGDSpec(type="sgd", lr=0.1, momentum=0.9),
        SGDSpec(type="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
        AdamSpec(type="adam", lr=1e-3),
        AdamSpec(type="adam", lr=1e-3, weight_decay=1e-4),
        AdamSpec(type="adamw", lr=1e-3, weight_decay=1e-4),
    ],
    ids=["sgd", "momentum", "nesterov-decay", "adam", "adam-decay", "adamw-decay"],
)
def test_optimizer_buffers_are_those_the_optimizer_allocates(optimizer):
    size = 37
    mask = np.ones(size, np.float32)
    made = make_optimizer(optimizer, size, np.float32, mask)
    flat = [v for v in vars(made).values() if isinstance(v, np.ndarray) and v.shape == (size,)]
    assert len(loop.optimizer_buffers(optimizer)) == len(flat)


def seed_mse_numbers():
    parameters = 784 * 200 + 200 + 200 * 100 + 100 + 100 * 10 + 10
    return parameters, 3 * 4 * parameters


def test_a_model_that_does_not_fit_is_refused_with_the_numbers(monkeypatch):
    parameters, need = seed_mse_numbers()
    monkeypatch.setattr("graphnet.model.available_memory", lambda: 1 << 20)
    path = SPECS_DIR / "seed-mse.yaml"
    with pytest.raises(SpecError) as info:
        Model.from_spec(load_spec(path))
    error = info.value
    assert error.message == (
        f"not enough memory to hold this model: {parameters:,} parameters; about "
        f"{need / 2**20:.1f} MiB (3 buffers of {4 * parameters / 1024:.1f} KiB: parameters, "
        "gradients, decay mask), but 1.0 MiB is available"
    )
    assert error.file == str(path) and error.path == "nodes.fc1"
    assert error.line == 9  # `layers:`, where fc1 comes from
    assert error.hint == (
        f"its largest layer, 'fc1', has {784 * 200 + 200:,} parameters; make the layers smaller (units)"
    )
    # with enough memory the same model is made
    monkeypatch.setattr("graphnet.model.available_memory", lambda: need)
    assert Model.from_spec(load_spec(path)).size == parameters


def test_training_memory_is_checked_before_any_data_is_read(monkeypatch):
    parameters, model_need = seed_mse_numbers()
    spec = load_spec(SPECS_DIR / "seed-mse.yaml")
    graph = build_graph(spec)
    need = loop.training_memory_need(graph, spec.train)
    # sgd without momentum: one scratch buffer; and the copy of the best parameters
    assert need.buffers == ("parameters", "gradients", "decay mask", "scratch", "best parameters", "ones (the NaN guard)")
    assert need.batch_size == 1000  # evaluation batches are larger than the training batch of 64
    available = model_need + 1  # enough for the model, not for training it
    monkeypatch.setattr("graphnet.model.available_memory", lambda: available)
    with pytest.raises(SpecError) as info:
        loop.prepare(spec, data_dir="/nonexistent/data")  # memory is refused first
    assert info.value.message.startswith(f"not enough memory to train this model: {parameters:,} parameters;")
    assert info.value.message.endswith(f"but {format_bytes(available)} is available")
    assert Model(graph).size == parameters


def test_a_spec_larger_than_any_machine_is_an_error_not_a_memory_error():
    huge = 1 << 24  # the largest number of units an attribute allows
    spec = parse_spec(
        f"""
        name: huge
        inputs: {{x: {{shape: [784]}}, y: {{shape: [], dtype: int64}}}}
        layers: {{input: x, sizes: [784, {huge}, {huge}, 10], labels: y}}
        train: {{data: {{dataset: mnist}}}}
        """
    )
    parameters = 784 * huge + huge + huge * huge + huge + huge * 10 + 10  # Python ints: exact
    graph = build_graph(spec)
    assert graph.param_count() == parameters
    with pytest.raises(SpecError, match=f"not enough memory to hold this model: {parameters:,} parameters"):
        Model(graph)
    with pytest.raises(SpecError, match=f"not enough memory to train this model: {parameters:,} parameters"):
        loop.prepare(spec)
    with pytest.raises(SpecError, match="its largest layer, 'fc2', has 281,474,993,487,872 parameters"):
        loop.check_memory(graph)


def test_check_fits_takes_the_available_memory_it_is_given():
    graph = build_graph(parse_spec(TINY))
    need = MemoryNeed(parameters=15, itemsize=4)
    check_fits(graph, need, "hold it", available=180)  # exactly enough
    with pytest.raises(GraphnetError, match="but 179 bytes is available"):
        check_fits(graph, need, "hold it", available=179)


def test_initialize_false_leaves_parameters_at_zero():
    spec = load_spec(SPECS_DIR / "skip-mlp.yaml")
    blank = Model.from_spec(spec, initialize=False)
    drawn = Model.from_spec(spec)
    assert not np.any(blank.flat_params) and np.any(drawn.flat_params)
    np.testing.assert_array_equal(blank.decay_mask, drawn.decay_mask)  # the mask is not random
    assert np.any(blank.decay_mask) and not np.all(blank.decay_mask)


# -- Ctrl-C while training ---------------------------------------------------------------------

SYNTH = """
format: 1
name: synth
inputs:
  x: {{shape: [8]}}
  y: {{shape: [], dtype: int64}}
layers: {{input: x, sizes: [8, {hidden}, {hidden}, 3], labels: y}}
train:
  data: {{dataset: npz, path: {path}, validation: {validation}, preprocess: {{scale: false, flatten: false}}}}
  batch_size: {batch}
  epochs: {epochs}
  seed: 3
  optimizer: {optimizer}
  keep_best: {keep_best}
"""


@pytest.fixture
def synth(tmp_path):
    """synth(epochs=4, keep_best="null", hidden=16, batch=16, validation=60, optimizer=...) ->
    path of a spec on 300 + 100 synthetic examples (by default 240 train: 15 steps per epoch)."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 8)) * 3

    def make(n):
        y = rng.integers(0, 3, n)
        return (centers[y] + rng.standard_normal((n, 8))).astype(np.float32), y

    x_train, y_train = make(300)
    x_test, y_test = make(100)
    data = tmp_path / "synth.npz"
    np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    def spec_file(epochs=4, keep_best="null", hidden=16, batch=16, validation=60,
                  optimizer="{type: adam, lr: 0.001}", name="synth.yaml"):
        file = tmp_path / name
        file.write_text(SYNTH.format(path=data, epochs=epochs, keep_best=keep_best, hidden=hidden,
                                     batch=batch, validation=validation, optimizer=optimizer))
        return file

    return spec_file


class Saved:
    """A checkpoint function that keeps a copy of what it was given."""

    def __init__(self):
        self.calls = 0
        self.params = None
        self.log = None

    def __call__(self, model, log, metrics):
        self.calls += 1
        self.params, self.log = model.flat_params.copy(), log


class AtStep(loop.Silent):
    """Calls ``action`` after the ``at``-th step (progress.step runs after the optimizer step)."""

    def __init__(self, at, action):
        self.steps, self.at, self.action = 0, at, action

    def step(self, loss, samples):
        self.steps += 1
        if self.steps == self.at:
            self.action()


def press_ctrl_c():
    """What a Ctrl-C does while training: call the SIGINT handler train() installed."""
    handler = signal.getsignal(signal.SIGINT)
    assert isinstance(handler, loop._CtrlC)
    handler(signal.SIGINT, None)


def raise_keyboard_interrupt():
    raise KeyboardInterrupt


def test_ctrl_c_in_an_epochs_last_step_saves_exactly_the_state_of_a_run_that_long(synth):
    spec = load_spec(synth())
    interrupted, whole = Saved(), Saved()
    result = loop.train(spec, checkpoint=interrupted, progress=AtStep(15, press_ctrl_c))
    assert result.stopped == "interrupted" and result.steps == 15
    assert [e.epoch for e in result.epochs] == [1]  # the epoch finished: it is logged
    reference = loop.train(load_spec(synth(epochs=1, name="one.yaml")), checkpoint=whole)
    assert reference.steps == 15 and reference.stopped is None
    np.testing.assert_array_equal(interrupted.params, whole.params)
    assert interrupted.log["stopped"] == "interrupted"


def test_ctrl_c_mid_epoch_stops_after_a_whole_step(synth):
    spec = load_spec(synth())
    by_signal, by_exception = Saved(), Saved()
    first = loop.train(spec, checkpoint=by_signal, progress=AtStep(20, press_ctrl_c))
    second = loop.train(spec, checkpoint=by_exception, progress=AtStep(20, raise_keyboard_interrupt))
    assert first.steps == second.steps == 20
    assert [e.epoch for e in first.epochs] == [1]  # epoch 2 did not finish: not logged
    np.testing.assert_array_equal(by_signal.params, by_exception.params)
    np.testing.assert_array_equal(first.model.flat_params, by_signal.params)


def test_a_second_ctrl_c_aborts_at_once_and_saves_nothing_more(synth):
    spec = load_spec(synth(keep_best="{metric: val_error}"))
    saved = Saved()

    def twice():
        press_ctrl_c()
        press_ctrl_c()

    with pytest.raises(KeyboardInterrupt):
        loop.train(spec, checkpoint=saved, progress=AtStep(20, twice))
    assert saved.calls == 1 and [e["epoch"] for e in saved.log["epochs"]] == [1]  # epoch 1's only


def test_the_handler_is_installed_only_while_training_and_only_in_the_main_thread(synth):
    spec = load_spec(synth(epochs=1))
    before = signal.getsignal(signal.SIGINT)
    seen = []
    loop.train(spec, progress=AtStep(1, lambda: seen.append(signal.getsignal(signal.SIGINT))))
    assert isinstance(seen[0], loop._CtrlC)
    assert signal.getsignal(signal.SIGINT) is before

    seen.clear()
    thread = threading.Thread(
        target=loop.train, args=(spec,),
        kwargs={"progress": AtStep(1, lambda: seen.append(signal.getsignal(signal.SIGINT)))},
    )
    thread.start()
    thread.join()
    assert seen == [before]


SIGINT_CHILD = """
import sys
import numpy as np
from graphnet import load_spec
from graphnet.train.loop import Silent, train

class Count(Silent):
    steps = 0
    def step(self, loss, samples):
        Count.steps += 1
        if Count.steps == 25:  # epoch 1 (20 steps) is done: the parent may press Ctrl-C now
            print("ready", flush=True)

def checkpoint(model, log, metrics):
    np.save(sys.argv[2], model.flat_params)

result = train(load_spec(sys.argv[1]), checkpoint=checkpoint, progress=Count())
print(Count.steps, result.stopped)
"""


def test_a_real_sigint_at_a_random_moment_leaves_a_whole_step_state(synth, tmp_path):
    """A training process sent SIGINT at a random moment saves the parameters of a run stopped
    cleanly after the same number of whole steps. The model (1M parameters, batches of one)
    spends most of a step in the optimizer update, so the signal usually lands inside it; AdamW
    changes the parameters twice per step (decay, then the Adam step), so an update cut in half
    shows in them. Before the loop checked Ctrl-C between steps, most runs saved half an update."""
    spec_path = synth(epochs=100000, hidden=1024, batch=1, validation=280,  # 20 steps per epoch
                      optimizer="{type: adamw, lr: 0.001, weight_decay: 0.01}")
    script = tmp_path / "child.py"
    script.write_text(SIGINT_CHILD)
    saved = tmp_path / "interrupted.npy"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, str(script), str(spec_path), str(saved)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(random.uniform(0.0, 0.3))
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err
    steps, stopped = out.split()
    steps = int(steps)
    assert stopped == "interrupted" and steps >= 25
    reference = Saved()
    result = loop.train(load_spec(spec_path), checkpoint=reference,
                        progress=AtStep(steps, raise_keyboard_interrupt))
    assert result.steps == steps
    np.testing.assert_array_equal(np.load(saved), reference.params)
