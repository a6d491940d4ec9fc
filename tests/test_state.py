"""Op state (``graphnet.op.State``): non-trainable arrays an op reads and, in training only,
replaces (batch norm's running statistics).

Checked here with a small op of this file, ``recenter`` (y = x minus the batch mean in training,
minus the running mean in evaluation), registered in process, so the core's contract is tested
without any plugin:

- the model keeps state in its own buffer, out of the parameters, the gradients, the optimizer
  and weight decay; a training forward moves it by the op's rule, an evaluation forward does not,
  the executor never writes it (a forward is repeatable);
- a wrong update (an undeclared name, a wrong shape or dtype) is an error naming the node;
- model files keep it (the ``state`` group) and refuse a file that lacks it;
- training checkpoints keep the best state with the best weights and the current state with the
  current ones, and a killed run resumed ends bit for bit as the run never stopped.
"""

from __future__ import annotations

import numpy as np
import pytest

from graphnet import Model, build_graph, parse_spec
from graphnet import registry as registry_module
from graphnet.errors import ModelFileError, OpError
from graphnet.executor import Executor
from graphnet.modelfile import load_model, read_contents, save_model, write_model_file
from graphnet.op import Context, Op, State
from graphnet.registry import default_registry
from graphnet.train import loop
from test_resume import Killed, KillAt, assert_same_run, resume, saving_to


class Recenter(Op):
    """y = x - mean over the batch (training) or - running_mean (evaluation); the running mean
    moves half way to each batch's mean."""

    state = (State("running_mean", shape=lambda attrs, shapes: (shapes["x"][-1],), init="zeros"),)

    def shape(self, attrs, x):
        return tuple(x)

    def forward(self, attrs, ctx, x):
        if ctx.training:
            mean = x.mean(axis=0)
            old = ctx.state.get("running_mean", np.zeros_like(mean))
            ctx.set_state("running_mean", (old + mean) / 2)
        else:
            mean = ctx.state["running_mean"]
        return x - mean, ctx.training

    def backward(self, attrs, training, dy):
        return {"x": dy - dy.mean(axis=0) if training else dy}


class BadUpdate(Recenter):
    """Sets a state it does not declare, or one of the wrong shape (attrs-free: by class)."""

    wrong = "name"

    def forward(self, attrs, ctx, x):
        if self.wrong == "name":
            ctx.set_state("running_men", x.mean(axis=0))
        else:
            ctx.set_state("running_mean", x[:, :1].mean(axis=0))
        return x, True


class BadShape(BadUpdate):
    wrong = "shape"


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    """The process-wide registry with this file's ops, for this test only."""
    copy = default_registry().copy()
    monkeypatch.setattr(registry_module, "_default", copy)
    monkeypatch.setattr(registry_module, "_carried", [])
    for cls, name in ((Recenter, "recenter"), (BadUpdate, "bad_update"), (BadShape, "bad_shape")):
        copy.register(cls, name)
    return copy


SPEC = """
name: stateful
inputs:
  x: {shape: [4]}
  y: {shape: [], dtype: int64}
nodes:
  centre: {op: recenter, inputs: {x: x}}
  fc: {op: linear, inputs: {x: centre}, attrs: {units: 3}}
  loss: {op: softmax_cross_entropy, inputs: {logits: fc, labels: y}}
outputs: [fc, loss]
"""


def batch(seed=0, n=6):
    rng = np.random.default_rng(seed)
    return {"x": (rng.standard_normal((n, 4)) + 3).astype(np.float32), "y": rng.integers(0, 3, n)}


# -- the model's state buffer ---------------------------------------------------------------------


def test_state_lives_in_its_own_buffer_out_of_parameters_and_gradients():
    model = Model.from_spec(parse_spec(SPEC))
    assert list(model.state) == ["centre.running_mean"]
    assert model.state["centre.running_mean"].shape == (4,)
    assert np.array_equal(model.flat_state, np.zeros(4, np.float32))
    assert model.flat_state.dtype == np.float32
    assert "centre.running_mean" not in model.params and model.size == 4 * 3 + 3  # fc only
    assert np.shares_memory(model.state["centre.running_mean"], model.flat_state)


def test_a_training_forward_moves_the_state_an_evaluation_forward_reads_it():
    model = Model.from_spec(parse_spec(SPEC))
    first, second = batch(0), batch(1)
    model.forward(first, training=True).backward("loss")
    expected = first["x"].mean(axis=0) / 2
    np.testing.assert_allclose(model.state["centre.running_mean"], expected, rtol=1e-6)
    model.forward(second, training=True)
    expected = (expected + second["x"].mean(axis=0)) / 2
    np.testing.assert_allclose(model.state["centre.running_mean"], expected, rtol=1e-6)
    before = model.flat_state.copy()
    out = model.forward(second, outputs=["centre"])  # evaluation: the running mean, unchanged
    np.testing.assert_allclose(out["centre"], second["x"] - before, rtol=1e-6)
    assert np.array_equal(model.flat_state, before)


def test_the_executor_never_writes_state_a_forward_is_repeatable():
    graph = build_graph(parse_spec(SPEC))
    model = Model(graph)
    executor = Executor(graph, np.float32)
    state = {"centre": {"running_mean": np.full(4, 0.5, np.float32)}}
    params = {"fc": {"w": model.params["fc.w"], "b": model.params["fc.b"]}}
    one = executor.forward(batch(), params, ("loss",), training=True, state=state)
    two = executor.forward(batch(), params, ("loss",), training=True, state=state)
    assert np.array_equal(state["centre"]["running_mean"], np.full(4, 0.5, np.float32))
    new = one.updates["centre"]["running_mean"]
    np.testing.assert_allclose(new, (0.5 + batch()["x"].mean(axis=0)) / 2, rtol=1e-6)
    assert np.array_equal(new, two.updates["centre"]["running_mean"])
    evaluation = executor.forward(batch(), params, ("loss",), training=False, state=state)
    assert evaluation.updates == {}


def test_optimizers_and_weight_decay_never_touch_state():
    model = Model.from_spec(parse_spec(SPEC))
    assert model.decay_mask.size == model.size  # one entry per parameter, none for state
    out = model.forward(batch(), training=True)
    out.backward("loss")
    assert model.flat_grads.size == model.size  # no gradient slot for the state


def test_set_state_outside_training_is_ignored_and_a_context_without_state_is_empty():
    ctx = Context(training=False)
    ctx.set_state("running_mean", np.zeros(2))
    assert ctx.updates == {} and dict(ctx.state) == {}
    ctx = Context(training=True, state={"running_mean": np.ones(2)})
    ctx.set_state("running_mean", np.zeros(2))
    assert list(ctx.updates) == ["running_mean"]


@pytest.mark.parametrize("op, words", [
    ("bad_update", "set state 'running_men', which it does not declare (its state: 'running_mean')"),
    ("bad_shape", "set state 'running_mean' to a float32 array of shape [1], expected a float32 array of shape [4]"),
])
def test_a_wrong_update_is_an_error_naming_the_node(op, words):
    model = Model.from_spec(parse_spec(SPEC.replace("op: recenter", f"op: {op}")))
    with pytest.raises(OpError) as caught:
        model.forward(batch(), training=True)
    assert words in caught.value.message
    assert caught.value.path == "nodes.centre" and "node 'centre'" in caught.value.message
    assert np.array_equal(model.flat_state, np.zeros(4, np.float32))  # nothing kept


def test_load_state_checks_names_and_shapes():
    model = Model.from_spec(parse_spec(SPEC))
    model.load_state({"centre.running_mean": np.arange(4)})
    assert np.array_equal(model.state["centre.running_mean"], np.arange(4, dtype=np.float32))
    with pytest.raises(Exception, match="missing"):
        model.load_state({})
    with pytest.raises(Exception, match=r"has shape \[4\], received \[3\]"):
        model.load_state({"centre.running_mean": np.arange(3)})


# -- model files -----------------------------------------------------------------------------------


def test_a_model_file_keeps_the_state(tmp_path):
    model = Model.from_spec(parse_spec(SPEC))
    model.forward(batch(), training=True)
    save_model(tmp_path / "m.gnm", model)
    contents = read_contents(tmp_path / "m.gnm")
    assert list(contents.tensors["state"]) == ["centre.running_mean"]
    loaded = load_model(tmp_path / "m.gnm")
    assert loaded.model.state["centre.running_mean"].tobytes() == model.state["centre.running_mean"].tobytes()
    x = batch(3)
    assert np.array_equal(loaded.model.forward(x)["fc"], model.forward(x)["fc"])


def test_a_model_file_without_the_state_is_refused(tmp_path):
    model = Model.from_spec(parse_spec(SPEC))
    save_model(tmp_path / "m.gnm", model)
    contents = read_contents(tmp_path / "m.gnm")
    header = dict(contents.header.to_dict())
    header.pop("tensors", None)
    tensors = {"params": contents.tensors["params"], "state": {}, "optimizer": {}}
    with pytest.raises(ModelFileError) as refused:  # checked when written, too
        write_model_file(tmp_path / "stateless.gnm", header, tensors)
    write_model_file(tmp_path / "stateless.gnm", header, tensors, check_graph=False)
    with pytest.raises(ModelFileError) as caught:
        load_model(tmp_path / "stateless.gnm")
    for error in (refused.value, caught.value):
        assert "op state tensors do not match the embedded spec's: missing centre.running_mean" in error.message
        assert error.path == "tensors.state"


# -- training, checkpoints and resume --------------------------------------------------------------


TRAIN_SPEC = """
format: 1
name: stateful-run
inputs:
  x: {{shape: [16]}}
  y: {{shape: [], dtype: int64}}
nodes:
  centre: {{op: recenter, inputs: {{x: x}}}}
  fc1: {{op: linear, inputs: {{x: centre}}, attrs: {{units: 24}}}}
  act: {{op: relu, inputs: {{x: fc1}}}}
  drop: {{op: dropout, inputs: {{x: act}}, attrs: {{rate: 0.2}}}}
  fc2: {{op: linear, inputs: {{x: drop}}, attrs: {{units: 3}}}}
  loss: {{op: softmax_cross_entropy, inputs: {{logits: fc2, labels: y}}}}
outputs: [fc2, loss]
train:
  data: {{dataset: npz, path: {path}, validation: 60, preprocess: {{scale: false, flatten: false}}}}
  batch_size: 16
  epochs: 6
  seed: 3
  optimizer: {{type: sgd, lr: 0.05, momentum: 0.9}}
  keep_best: {{metric: val_error}}
  output: unused.gnm
"""


@pytest.fixture
def train_spec(tmp_path):
    from graphnet import load_spec

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 16))

    def examples(n):
        y = rng.integers(0, 3, n)
        return (centers[y] + 2 + 1.5 * rng.standard_normal((n, 16))).astype(np.float32), y

    x_train, y_train = examples(300)
    x_test, y_test = examples(100)
    data = tmp_path / "data.npz"
    np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    spec_file = tmp_path / "stateful.yaml"
    spec_file.write_text(TRAIN_SPEC.format(path=data))
    return load_spec(spec_file)


def test_training_keeps_the_best_state_with_the_best_weights(train_spec, tmp_path):
    """The file's state goes with its params (the best epoch's); the state of the current
    weights travels in the optimizer group, next to them."""
    result = loop.train(train_spec, checkpoint=saving_to(tmp_path / "run.gnm"))
    assert result.model.flat_state.any()  # it moved
    errors = [e.val_error for e in result.epochs]
    k = next((k for k in range(2, 7) if min(errors[:k]) < errors[k - 1]), None)
    if k is None:
        pytest.fail(f"every epoch improved ({errors}): the data do not exercise a best epoch")
    file = tmp_path / "killed.gnm"
    with pytest.raises(Killed):
        loop.train(train_spec, checkpoint=saving_to(file), progress=KillAt(k, 0))
    contents = read_contents(file)
    assert "weights/centre.running_mean" in contents.tensors["optimizer"]
    current = contents.tensors["optimizer"]["weights/centre.running_mean"]
    best = contents.tensors["state"]["centre.running_mean"]
    assert not np.array_equal(current, best)
    # the file's params and state, evaluated, score the best epoch's validation error
    loaded = load_model(file)
    graph, roles, data = loop.prepare(train_spec)
    assert loop.evaluate(loaded.model, data.val, roles)["error"] == min(errors[:k])


@pytest.mark.parametrize("epochs, steps", [(2, 0), (3, 7), (5, 14)])
def test_a_killed_run_with_state_resumes_bit_identical(train_spec, tmp_path, epochs, steps):
    reference = loop.train(train_spec, checkpoint=saving_to(tmp_path / "reference.gnm"))
    file = tmp_path / "killed.gnm"
    with pytest.raises(Killed):
        loop.train(train_spec, checkpoint=saving_to(file), progress=KillAt(epochs, steps))
    resumed = resume(train_spec, file)
    assert_same_run(file, tmp_path / "reference.gnm", resumed, reference)
    assert resumed.model.flat_state.tobytes() == reference.model.flat_state.tobytes()
