"""The training loop behind ``graphnet run``: epochs of shuffled mini-batches, validation after
each epoch, best-on-validation parameters kept, early stopping, a NaN/Inf guard, and resuming.

Saving is the caller's: after every epoch, and once at the end (with the test metrics), ``train``
hands a ``checkpoint`` function the model holding the best parameters so far (the last ones when
nothing is monitored) and the log; ``graphnet run`` writes them to a model file. A checkpoint
function that takes a ``resume`` keyword also gets a :class:`~graphnet.train.resume.Snapshot`:
what continuing the run needs (the current weights, the optimizer's state, the position), which
``train(spec, resume=read_resume(...))`` puts back. A run killed after epoch k and resumed ends
with parameters bit-identical to a run never stopped, and the same log apart from the timings.
Op state (batch norm's running statistics) travels with the parameters: the best state with the
best parameters (swapped in and out with them), the current state with the current ones.

Ctrl-C: while ``train`` runs (in the main thread) the first Ctrl-C only asks it to stop; the loop
looks between steps, so the parameters it then keeps or saves are always those after a whole
optimizer step, never half an update, and the snapshot saved with them resumes from that step.
A second Ctrl-C aborts at once (KeyboardInterrupt) and saves nothing more: the file on disk keeps
its last checkpoint.

Memory: ``prepare`` refuses, with the numbers, a model whose training would not fit in the memory
available (parameters, gradients, optimizer state, activations), before any data is read.

Reproducibility: the model's initial parameters come from ``seed``; epoch ``e`` shuffles with a
generator seeded by ``(seed, e)`` and augments with one seeded by ``(seed, e, 1)``; dropout draws
from ``(seed, step, node)``. Same spec, same seed, same machine: bit-identical parameters, and a
bit-identical log apart from the timings. Every random draw is thus a function of the seed and
the position (epoch, step), which is why a checkpoint needs no generator state to resume.
"""

from __future__ import annotations

import inspect
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from ..errors import DataError, GraphnetError, SpecError, TrainingError, did_you_mean
from ..graph import Graph, build_graph
from ..model import MODEL_BUFFERS, MemoryNeed, Model, check_fits, memory_need
from ..spec import AdamSpec, OptimizerSpec, Spec, TrainSpec
from .augment import shift_batch, skip_batch
from .data import Data, Split, load_data, shuffled_batches
from .optim import Optimizer, make_optimizer
from .resume import Position, ResumePoint, data_fingerprint, make_snapshot
from .schedule import learning_rate

EVAL_BATCH = 1000
DTYPE = "float32"  # what train() trains in

# checkpoint(model, log, metrics[, resume=snapshot]): the model holds the parameters to save (the
# best so far); metrics is None while training, the test metrics at the end. A function with a
# `resume` parameter also gets the Snapshot to resume from; one with three parameters does not.
Checkpoint = Callable[..., None]


@dataclass
class EpochLog:
    epoch: int  # 1-based
    lr: float  # the rate of the epoch's last step
    train_loss: float
    val_loss: float | None
    val_error: float | None
    val_accuracy: float | None
    seconds: float
    samples_per_second: float


@dataclass
class RunResult:
    model: Model
    epochs: list[EpochLog] = field(default_factory=list)
    best_epoch: int | None = None
    test: dict[str, float] = field(default_factory=dict)
    stopped: str | None = None  # "early stopping" | "interrupted" | None
    steps: int = 0  # optimizer steps taken (each one whole)
    saved_epoch: int | None = None  # the epochs done when the last checkpoint was written
    data_source: str = ""
    seconds: float = 0.0

    def log_dict(self) -> dict[str, Any]:
        return {
            "epochs": [asdict(e) for e in self.epochs],
            "best_epoch": self.best_epoch,
            "stopped": self.stopped,
            "data": self.data_source,
            "seconds": self.seconds,
        }


class Progress(Protocol):
    """What the loop reports while it runs (the CLI draws bars or prints lines)."""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...
    def step(self, loss: float, samples: int) -> None: ...
    def epoch_end(self, log: EpochLog, best: bool) -> None: ...


class Silent:
    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        pass

    def step(self, loss: float, samples: int) -> None:
        pass

    def epoch_end(self, log: EpochLog, best: bool) -> None:
        pass


# ----------------------------------------------------------------------------------------------
# What the train section refers to, checked before any data is read
# ----------------------------------------------------------------------------------------------


@dataclass
class Roles:
    """Which graph input gets the examples and which the labels; which node is the loss and
    which node's argmax is the prediction."""

    x: str
    y: str
    loss: str
    predict: str


def resolve_roles(graph: Graph, train: TrainSpec) -> Roles:
    """Check the train section against the graph (`graphnet validate` calls this too)."""
    spec = graph.spec
    if train.loss not in graph.nodes:
        raise spec.error(("train", "loss"), f"loss node '{train.loss}' is not a node",
                         hint=did_you_mean(train.loss, graph.nodes, "known nodes"))
    loss_node = graph.nodes[train.loss]
    if not loss_node.op.reduces_batch:
        raise spec.error(("train", "loss"), f"node '{train.loss}' (op {loss_node.op.name}) is not a loss",
                         hint="name a node whose op reduces the batch to one number")
    predict = train.predict or loss_node.edges[0].source
    if predict not in graph.nodes:
        raise spec.error(("train", "predict"), f"'{predict}' is not a node",
                         hint=did_you_mean(predict, graph.nodes, "known nodes"))
    inputs = list(graph.inputs)
    floats = [n for n in inputs if graph.input_dtypes[n].startswith("float")]
    x = train.data.x or (floats[0] if floats else inputs[0])
    others = [n for n in inputs if n != x]
    y = train.data.y or (others[0] if others else None)
    for key, name in (("x", x), ("y", y)):
        if name is None or name not in graph.inputs:
            what = "examples" if key == "x" else "labels"
            raise spec.error(("train", "data", key), f"no graph input for the {what}: {name!r}",
                             hint="inputs: " + ", ".join(inputs))
    if train.augment is not None:
        height, width = train.augment.image_shape
        size = math.prod(graph.inputs[x])
        if size != height * width:
            raise spec.error(
                ("train", "augment", "image_shape"),
                f"input '{x}' holds {size} values per example, not {height}x{width} images",
                hint="set image_shape to the examples' height and width",
            )
    return Roles(x=x, y=y, loss=train.loss, predict=predict)


def check_classes(graph: Graph, roles: Roles, data: Data) -> None:
    """Labels must fit the prediction node: class id k needs at least k + 1 outputs."""
    width = graph.nodes[roles.predict].shape[-1] if graph.nodes[roles.predict].shape else 1
    if data.classes > width:
        raise DataError(
            f"the labels hold {data.classes} classes (ids up to {data.classes - 1}) "
            f"but node '{roles.predict}' has {width} outputs",
            path=f"nodes.{roles.predict}",
            hint="give the last layer one unit per class, or fix the labels",
        )


# ----------------------------------------------------------------------------------------------
# Evaluation and training
# ----------------------------------------------------------------------------------------------


def evaluate(model: Model, split: Split, roles: Roles, batch_size: int = EVAL_BATCH) -> dict[str, float]:
    """Mean loss, error and accuracy of ``model`` on ``split`` (eval mode, no dropout)."""
    total_loss = 0.0
    wrong = 0
    for start in range(0, len(split), batch_size):
        x = split.x[start : start + batch_size]
        y = split.y[start : start + batch_size]
        out = model.predict({roles.x: x, roles.y: y}, (roles.loss, roles.predict))
        total_loss += float(out[roles.loss]) * len(x)
        predicted = np.argmax(out[roles.predict].reshape(len(x), -1), axis=1)
        truth = y if y.ndim == 1 else np.argmax(y.reshape(len(y), -1), axis=1)
        wrong += int(np.count_nonzero(predicted != truth))
    n = max(len(split), 1)
    return {"loss": total_loss / n, "error": wrong / n, "accuracy": 1 - wrong / n}


def train_section(spec: Spec) -> TrainSpec:
    """The spec's ``train:`` section; an error when it has none."""
    if spec.train is None:
        raise SpecError("the spec has no `train:` section", path="train", file=spec.file,
                        hint="add one, see specs/mnist-mlp.yaml")
    return spec.train


def prepare(spec: Spec, data_dir: str | None = None, spec_dir: Path | None = None) -> tuple[Graph, Roles, Data]:
    """Everything checked and loaded before the first step: graph, roles, data.

    Relative data paths in the spec are resolved against ``spec_dir`` (default: the folder of
    the spec file)."""
    cfg = train_section(spec)
    graph = build_graph(spec)
    roles = resolve_roles(graph, cfg)
    check_memory(graph)
    try:
        data = load_data(
            cfg.data,
            (roles.x, spec.inputs[roles.x]),
            (roles.y, spec.inputs[roles.y]),
            data_dir=data_dir,
            spec_dir=spec_dir or (Path(spec.file).parent if spec.file else None),
        )
        check_classes(graph, roles, data)
    except GraphnetError as error:
        raise spec.locate(error) from None
    return graph, roles, data


def training_memory_need(graph: Graph, cfg: TrainSpec) -> MemoryNeed:
    """The memory ``train`` needs for ``graph``: the model's buffers, the optimizer's, the copy of
    the best parameters, and the activations of the larger of a training batch and an
    evaluation batch (``EVAL_BATCH``). The data set itself is not counted."""
    buffers = MODEL_BUFFERS + optimizer_buffers(cfg.optimizer) + ("best parameters", "ones (the NaN guard)")
    batch = max(cfg.batch_size, EVAL_BATCH)
    return memory_need(graph, dtype=DTYPE, batch_size=batch, buffers=buffers)


def check_memory(graph: Graph) -> MemoryNeed:
    """What ``graph`` needs in memory: to train, when its spec has a ``train:`` section, else to
    hold the model. Refused (a located GraphnetError with the numbers) when more than is available;
    ``graphnet validate`` prints ``check_memory(graph).describe()``."""
    if graph.spec.train is None:
        need, doing = memory_need(graph, dtype=DTYPE), "hold this model"
    else:
        need, doing = training_memory_need(graph, graph.spec.train), "train this model"
    check_fits(graph, need, doing)
    return need


def optimizer_buffers(spec: OptimizerSpec) -> tuple[str, ...]:
    """The flat buffers, one value per parameter each, that ``make_optimizer`` allocates for
    ``spec`` (its state and its scratch space; see optim.py)."""
    decay = ("weight decay",) if spec.weight_decay else ()
    if isinstance(spec, AdamSpec):
        coupled = ("scratch",) if spec.weight_decay and spec.type != "adamw" else ()
        return ("first moment", "second moment", "scratch") + coupled + decay
    momentum = ("momentum",) if spec.momentum else ()
    nesterov = ("scratch",) if spec.nesterov else ()
    return ("scratch",) + momentum + nesterov + decay


class _CtrlC:
    """SIGINT while training: the first Ctrl-C sets ``requested``, which the loop checks between
    steps; a second one raises KeyboardInterrupt at once and marks the abort ``hard``."""

    def __init__(self) -> None:
        self.requested = False
        self.hard = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:
            self.hard = True
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def _ctrl_c_between_steps() -> Iterator[_CtrlC]:
    """Handle Ctrl-C with a :class:`_CtrlC` while the block runs, then put the previous handler
    back. Only the main thread receives signals and may install handlers, and a process started
    with SIGINT ignored (``nohup``) keeps ignoring it: in both cases nothing is installed."""
    ctrl_c = _CtrlC()
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    ):
        yield ctrl_c
        return
    previous = signal.signal(signal.SIGINT, ctrl_c)
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def train(
    spec: Spec,
    *,
    data_dir: str | None = None,
    checkpoint: Checkpoint | None = None,
    progress: Progress | None = None,
    prepared: tuple[Graph, Roles, Data] | None = None,
    resume: ResumePoint | None = None,
) -> RunResult:
    """Train ``spec`` as its ``train:`` section says; returns the model with its best parameters.

    ``checkpoint`` is called after every epoch and once at the end (with the test metrics).
    Ctrl-C (or a KeyboardInterrupt raised by ``progress``) stops between two steps; the best
    parameters so far (with ``keep_best``; else the last, after a whole step) are checkpointed
    unless no epoch had finished. A second Ctrl-C raises KeyboardInterrupt at once.

    ``resume`` (``resume.read_resume``'s, checked against ``spec``) continues a run from its
    checkpoint: the training data must be those it was trained on, and the result is the one the
    run would have given had it never stopped."""
    graph, roles, data = prepared or prepare(spec, data_dir)
    cfg = train_section(spec)
    progress = progress or Silent()
    model = Model(graph, seed=cfg.seed, dtype=DTYPE, initialize=resume is None)
    optimizer = make_optimizer(cfg.optimizer, model.size, model.dtype, model.decay_mask)
    best = _Best(cfg, model)
    result = RunResult(model, data_source=data.source)
    saver = _Checkpoints(checkpoint, cfg, model, optimizer, best, result, data)
    position = _restore(resume, model, optimizer, best, result, saver) if resume else Position()
    started = time.perf_counter() - result.seconds
    with _ctrl_c_between_steps() as ctrl_c:
        try:
            if best.patience_ran_out(position.epoch):
                result.stopped = "early stopping"  # resumed after the epoch that ran out of patience
            while result.stopped is None and position.epoch < cfg.total_epochs():
                epoch, t0, seen_before = position.epoch, time.perf_counter(), position.seen
                lr = _train_epoch(model, optimizer, data.train, cfg, roles, position, progress, result, ctrl_c)
                if lr is None:
                    break  # Ctrl-C before the epoch's last step: a partial epoch is not logged
                seconds = time.perf_counter() - t0
                val = evaluate(model, data.val, roles) if data.val is not None and len(data.val) else None
                log = EpochLog(
                    epoch=epoch + 1, lr=lr, train_loss=position.loss_sum / max(position.seen, 1),
                    val_loss=val["loss"] if val else None, val_error=val["error"] if val else None,
                    val_accuracy=val["accuracy"] if val else None,
                    seconds=seconds, samples_per_second=(position.seen - seen_before) / max(seconds, 1e-9),
                )
                position = Position(epoch + 1)
                result.epochs.append(log)
                improved = best.update(epoch + 1, val)
                result.best_epoch = best.epoch
                result.seconds = time.perf_counter() - started
                saver.epoch_end(position)
                progress.epoch_end(log, improved)
                if ctrl_c.requested:
                    break
                if best.patience_ran_out(position.epoch):
                    result.stopped = "early stopping"
        except KeyboardInterrupt:
            if ctrl_c.hard:
                raise  # the second Ctrl-C: nothing more is saved, the file keeps its last checkpoint
            ctrl_c.requested = True  # raised by a callback, between steps: the parameters are whole
        if ctrl_c.requested:
            result.stopped = "interrupted"
            if not result.epochs:
                return result  # nothing trained to the end of an epoch: nothing worth saving
        current = saver.best_into_model(position)
        result.best_epoch = best.epoch
        result.test = evaluate(model, data.test, roles)
        result.seconds = time.perf_counter() - started
        finished = None if result.stopped == "interrupted" else (result.stopped or "completed")
        saver.save(position, current, {f"test_{k}": v for k, v in result.test.items()}, finished)
    return result


def _train_epoch(model: Model, optimizer: Optimizer, train_split: Split, cfg: TrainSpec, roles: Roles,
                 position: Position, progress: Progress, result: RunResult, ctrl_c: _CtrlC) -> float | None:
    """Epoch ``position.epoch`` over the shuffled training set, from step ``position.step`` (0
    unless resumed in the middle of it) to its end. ``position`` (the step, the loss sums) and
    ``result.steps`` count each whole step. Returns the last step's learning rate, or None when
    Ctrl-C stopped the epoch before its last step (after a whole step)."""
    epoch, epochs = position.epoch, cfg.total_epochs()
    steps_per_epoch = -(-len(train_split) // cfg.batch_size)
    progress.epoch_start(epoch + 1, epochs, steps_per_epoch - position.step)
    rng = np.random.default_rng([cfg.seed, epoch])
    augment_rng = np.random.default_rng([cfg.seed, epoch, 1])
    lr = cfg.optimizer.lr
    # the schedule's rate for each step, computed up front: the step loop runs lean
    rates = [learning_rate(cfg.schedule, cfg.optimizer.lr, epoch, step, steps_per_epoch, epochs)
             for step in range(steps_per_epoch)]
    augment = cfg.augment
    ones = np.ones_like(model.flat_grads)  # for the NaN guard
    # Overflow shows up as Inf/NaN, which the guard below reports with its location: numpy's
    # warnings are off for the epoch (entered once: entering errstate costs ~5 us, every step)
    with np.errstate(over="ignore", invalid="ignore"):
        for step, (xb, yb) in enumerate(shuffled_batches(train_split.x, train_split.y, cfg.batch_size, rng)):
            if step < position.step:  # trained before the run was resumed: only the draws are redone
                if augment is not None:
                    skip_batch(len(xb), augment, augment_rng)
                continue
            if ctrl_c.requested:
                return None
            lr = rates[step]
            if augment is not None:
                xb = shift_batch(xb, augment, augment_rng)
            batch = {roles.x: xb, roles.y: yb}
            loss = float(model.train_step(batch, roles.loss, step=result.steps))
            # NaN guard: one sum over the flat gradient buffer catches any NaN or Inf (NaN and
            # infinities propagate through a sum); a dot product with ones is that sum, through BLAS,
            # in half the time of numpy's own.
            if not (math.isfinite(loss) and math.isfinite(float(np.dot(model.flat_grads, ones)))):
                raise _locate_non_finite(model, batch, roles, epoch, step, result)
            optimizer.step(model.flat_params, model.flat_grads, lr)
            position.step += 1
            position.loss_sum += loss * len(xb)
            position.seen += len(xb)
            result.steps += 1
            progress.step(loss, len(xb))
    return lr


class _Best:
    """Best-on-validation bookkeeping: the monitored metric, a copy of the best parameters,
    and early stopping's patience."""

    def __init__(self, cfg: TrainSpec, model: Model) -> None:
        self.metric = cfg.keep_best.metric if cfg.keep_best else None
        self.patience = cfg.keep_best.patience if cfg.keep_best else None
        self.model = model
        self.params = model.flat_params.copy()
        self.state = model.flat_state.copy()  # op state (batch norm's statistics) goes with them
        self.value: float | None = None  # the metric, negated where higher is better
        self.epoch: int | None = None

    def update(self, epoch: int, val: dict[str, float] | None) -> bool:
        if self.metric is None or val is None:
            return False
        value = val[self.metric.removeprefix("val_")]
        if self.metric == "val_accuracy":
            value = -value  # higher is better
        if self.value is not None and value >= self.value:
            return False
        self.value, self.epoch = value, epoch
        self.params[...] = self.model.flat_params
        self.state[...] = self.model.flat_state
        return True

    def patience_ran_out(self, epoch: int) -> bool:
        return bool(self.patience) and self.epoch is not None and epoch - self.epoch >= self.patience

    def differs(self, position: Position) -> bool:
        """Whether the best parameters are not the model's current ones: some epoch was best,
        and the model has trained past its end."""
        return self.epoch is not None and (self.epoch != position.epoch or position.step > 0)

    def record(self) -> dict[str, Any]:
        """The bookkeeping as a checkpoint saves it (the metric's own value, not negated)."""
        value = self.value
        if value is not None and self.metric == "val_accuracy":
            value = -value
        return {"metric": self.metric, "epoch": self.epoch, "value": value}

    def load(self, record: Any, params: dict[str, np.ndarray] | None,
             state: dict[str, np.ndarray] | None = None) -> None:
        """Put back what ``record()`` saved, and the best parameters and op state (by name)."""
        self.epoch, self.value = record.epoch, record.value
        if self.value is not None and self.metric == "val_accuracy":
            self.value = -self.value
        if params is None:
            self.params[...] = self.model.flat_params
            self.state[...] = self.model.flat_state
            return
        for name, view in self.model.views(self.params).items():
            view[...] = params[name]
        for name, view in self.model.state_views(self.state).items():
            view[...] = (state or {})[name]

    def swap(self) -> None:
        """Exchange the model's parameters and op state with the best ones."""
        _swap(self.model.flat_params, self.params)
        _swap(self.model.flat_state, self.state)


class _Checkpoints:
    """Calls the caller's checkpoint function with the best parameters in the model (swapped in
    and out around the call, without a third copy of them) and, when it takes ``resume``, the
    snapshot to resume from, which holds the current parameters when they are not the best."""

    def __init__(self, function: Checkpoint | None, cfg: TrainSpec, model: Model, optimizer: Optimizer,
                 best: _Best, result: RunResult, data: Data) -> None:
        self.function = function
        self.wants_resume = function is not None and _takes_resume(function)
        self.cfg, self.model, self.optimizer, self.best, self.result, self.data = (
            cfg, model, optimizer, best, result, data)
        self._fingerprint: dict[str, Any] | None = None

    def fingerprint(self) -> dict[str, Any]:
        """The training data's fingerprint (computed once: about 0.1 s for MNIST)."""
        if self._fingerprint is None:
            self._fingerprint = data_fingerprint(self.data.train, self.data.val)
        return self._fingerprint

    def epoch_end(self, position: Position) -> None:
        """The checkpoint after an epoch: the best parameters, the log, the resume snapshot."""
        if not self.best.differs(position):
            self.save(position, None)
            return
        self.best.swap()
        try:
            self.save(position, self.best.params)
        finally:
            self.best.swap()

    def best_into_model(self, position: Position) -> np.ndarray | None:
        """At the end of the run: the best parameters into the model (for the test and the last
        checkpoint); returns the buffer that now holds the current ones, or None when they are
        the best."""
        if not self.best.differs(position):
            return None
        self.best.swap()
        return self.best.params

    def save(self, position: Position, current: np.ndarray | None, metrics: dict | None = None,
             finished: str | None = None) -> None:
        """Call the checkpoint function; ``current`` holds the current parameters when the
        model holds other (the best) ones (and ``best.state`` the current op state then)."""
        if self.function is None:
            return
        log = self.result.log_dict()
        if self.wants_resume:
            snapshot = make_snapshot(
                self.model, self.optimizer, optimizer_type=self.cfg.optimizer.type, position=position,
                steps=self.result.steps, best=self.best.record(), data=self.fingerprint(),
                current=current, finished=finished,
                current_state=self.best.state if current is not None else None,
            )
            self.function(self.model, log, metrics, resume=snapshot)
        else:
            self.function(self.model, log, metrics)
        self.result.saved_epoch = position.epoch


def _takes_resume(function: Checkpoint) -> bool:
    """Whether a checkpoint function takes the ``resume`` keyword (one with the three
    parameters of graphnet 0.1's does not)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return any(p.name == "resume" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _swap(a: np.ndarray, b: np.ndarray, block: int = 1 << 16) -> None:
    """Exchange the contents of two flat buffers of the same size, a block at a time."""
    scratch = np.empty(min(block, a.size), a.dtype)
    for start in range(0, a.size, block):
        x, y = a[start : start + block], b[start : start + block]
        t = scratch[: x.size]
        np.copyto(t, x)
        np.copyto(x, y)
        np.copyto(y, t)


def _restore(point: ResumePoint, model: Model, optimizer: Optimizer, best: _Best, result: RunResult,
             saver: _Checkpoints) -> Position:
    """Put a checkpoint back into a new run: the current and best parameters and op state, the
    optimizer's state, the log; returns the position to go on from."""
    point.check_data(saver.fingerprint())
    for name, view in model.params.items():
        view[...] = point.weights[name]
    for name, view in model.state.items():
        view[...] = point.state[name]
    best.load(point.record.best, point.best_weights, point.best_state)
    state: dict[str, Any] = {"step": point.record.optimizer.step}
    for slot, arrays in point.slots.items():
        state[slot] = np.empty(model.size, model.dtype)
        for name, view in model.views(state[slot]).items():
            view[...] = arrays[name]
    try:
        optimizer.load_state(state)
    except GraphnetError as error:
        error.file = point.file
        raise
    result.epochs = [EpochLog(**entry) for entry in point.epochs]
    result.steps = point.record.position.steps
    result.best_epoch = best.epoch
    result.seconds = point.seconds
    result.saved_epoch = point.record.position.epoch
    return point.position


def _locate_non_finite(
    model: Model, batch, roles: Roles, epoch: int, step: int, result: RunResult
) -> TrainingError:
    """Re-run the failed step with checks on to name the first node that went non-finite."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            out = model.forward(batch, (roles.loss,), training=True, step=result.steps, check_finite=True)
            out.backward(roles.loss, check_finite=True)
    except TrainingError as error:
        detail = error.message
    else:
        detail = "the loss or a gradient is not finite"
    if result.saved_epoch is None:
        kept = "nothing was saved"
    elif result.best_epoch is None:
        kept = f"the checkpoint of epoch {result.saved_epoch} is untouched"
    else:
        kept = f"the checkpoint of epoch {result.saved_epoch} (best weights: epoch {result.best_epoch}) is untouched"
    return TrainingError(
        f"training diverged at epoch {epoch + 1}, step {step + 1}: {detail}; {kept}",
        hint="lower the learning rate (--set train.optimizer.lr=...) or check the data scaling",
    )
