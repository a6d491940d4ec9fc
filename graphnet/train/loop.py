"""The training loop behind ``graphnet run``: epochs of shuffled mini-batches, validation after
each epoch, best-on-validation parameters kept, early stopping, and a NaN/Inf guard.

Saving is the caller's: ``train`` hands the model, the log and (at the end) the test metrics to a
``checkpoint`` function each time validation improves and once at the end, so whatever it writes
always holds the best parameters so far (``graphnet run`` writes a model file).

Reproducibility: the model's initial parameters come from ``seed``; epoch ``e`` shuffles with a
generator seeded by ``(seed, e)`` and augments with one seeded by ``(seed, e, 1)``; dropout draws
from ``(seed, step, node)``. Same spec, same seed, same machine: bit-identical parameters, and a
bit-identical log apart from the timings.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from ..errors import DataError, GraphnetError, SpecError, TrainingError, did_you_mean
from ..graph import Graph, build_graph
from ..model import Model
from ..spec import Spec, TrainSpec
from .augment import shift_batch
from .data import Data, Split, load_data, shuffled_batches
from .optim import make_optimizer
from .schedule import learning_rate

EVAL_BATCH = 1000

# checkpoint(model, log, metrics): metrics is None while training, the test metrics at the end.
Checkpoint = Callable[[Model, dict, "dict | None"], None]


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
    saved_epoch: int | None = None  # the epoch whose parameters the last checkpoint holds
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
        out = model.forward({roles.x: x, roles.y: y}, (roles.loss, roles.predict))
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


def train(
    spec: Spec,
    *,
    data_dir: str | None = None,
    checkpoint: Checkpoint | None = None,
    progress: Progress | None = None,
    prepared: tuple[Graph, Roles, Data] | None = None,
) -> RunResult:
    """Train ``spec`` as its ``train:`` section says; returns the model with its best parameters.

    ``checkpoint`` is called each time validation improves and once at the end (with the test
    metrics). Ctrl-C stops after the current step; the best parameters so far are checkpointed
    unless no epoch had finished."""
    graph, roles, data = prepared or prepare(spec, data_dir)
    cfg = train_section(spec)
    progress = progress or Silent()
    save = checkpoint or (lambda model, log, metrics: None)
    model = Model(graph, seed=cfg.seed)
    optimizer = make_optimizer(cfg.optimizer, model.size, model.dtype, model.decay_mask)
    best = _Best(cfg, model)
    started = time.perf_counter()
    result = RunResult(model, data_source=data.source)
    global_step = 0
    try:
        for epoch in range(cfg.total_epochs()):
            t0 = time.perf_counter()
            train_loss, lr, global_step = _train_epoch(
                model, optimizer, data.train, cfg, roles, epoch, global_step, progress, result
            )
            seconds = time.perf_counter() - t0
            val = evaluate(model, data.val, roles) if data.val is not None and len(data.val) else None
            log = EpochLog(
                epoch=epoch + 1, lr=lr, train_loss=train_loss,
                val_loss=val["loss"] if val else None, val_error=val["error"] if val else None,
                val_accuracy=val["accuracy"] if val else None,
                seconds=seconds, samples_per_second=len(data.train) / max(seconds, 1e-9),
            )
            result.epochs.append(log)
            improved = best.update(epoch + 1, val)
            if improved:
                result.best_epoch = best.epoch
                result.seconds = time.perf_counter() - started
                save(model, result.log_dict(), None)
                result.saved_epoch = best.epoch
            progress.epoch_end(log, improved)
            if best.patience_ran_out(epoch + 1):
                result.stopped = "early stopping"
                break
    except KeyboardInterrupt:
        result.stopped = "interrupted"
        if not result.epochs:
            return result  # nothing trained to the end of an epoch: nothing worth saving
    best.restore()
    result.best_epoch = best.epoch
    result.test = evaluate(model, data.test, roles)
    result.seconds = time.perf_counter() - started
    save(model, result.log_dict(), {f"test_{k}": v for k, v in result.test.items()})
    result.saved_epoch = best.epoch or len(result.epochs)
    return result


def _train_epoch(model: Model, optimizer, train_split: Split, cfg: TrainSpec, roles: Roles, epoch: int,
                 global_step: int, progress: Progress, result: RunResult) -> tuple[float, float, int]:
    """One pass over the shuffled training set; returns (mean loss, last lr, global step)."""
    epochs = cfg.total_epochs()
    steps_per_epoch = -(-len(train_split) // cfg.batch_size)
    progress.epoch_start(epoch + 1, epochs, steps_per_epoch)
    rng = np.random.default_rng([cfg.seed, epoch])
    augment_rng = np.random.default_rng([cfg.seed, epoch, 1])
    loss_sum, seen, lr = 0.0, 0, cfg.optimizer.lr
    for step, (xb, yb) in enumerate(shuffled_batches(train_split.x, train_split.y, cfg.batch_size, rng)):
        lr = learning_rate(cfg.schedule, cfg.optimizer.lr, epoch, step, steps_per_epoch, epochs)
        if cfg.augment is not None:
            xb = shift_batch(xb, cfg.augment, augment_rng)
        batch = {roles.x: xb, roles.y: yb}
        # Overflow shows up as Inf/NaN, which the guard below reports with its location.
        with np.errstate(over="ignore", invalid="ignore"):
            loss = float(model.forward(batch, (roles.loss,), training=True, step=global_step)[roles.loss])
            model.backward(roles.loss)
        # NaN guard: one sum over the flat gradient buffer catches any NaN or Inf.
        if not (np.isfinite(loss) and np.isfinite(np.sum(model.flat_grads))):
            raise _locate_non_finite(model, batch, roles, epoch, step, global_step, result)
        optimizer.step(model.flat_params, model.flat_grads, lr)
        loss_sum += loss * len(xb)
        seen += len(xb)
        global_step += 1
        progress.step(loss, len(xb))
    return loss_sum / max(seen, 1), lr, global_step


class _Best:
    """Best-on-validation bookkeeping: the monitored metric, a copy of the best parameters,
    and early stopping's patience."""

    def __init__(self, cfg: TrainSpec, model: Model) -> None:
        self.metric = cfg.keep_best.metric if cfg.keep_best else None
        self.patience = cfg.keep_best.patience if cfg.keep_best else None
        self.model = model
        self.params = model.flat_params.copy()
        self.value: float | None = None
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
        return True

    def patience_ran_out(self, epoch: int) -> bool:
        return bool(self.patience) and self.epoch is not None and epoch - self.epoch >= self.patience

    def restore(self) -> None:
        """Put the best parameters back into the model (no-op when nothing was monitored)."""
        if self.epoch is not None:
            self.model.flat_params[...] = self.params


def _locate_non_finite(model: Model, batch, roles: Roles, epoch: int, step: int, global_step: int,
                       result: RunResult) -> TrainingError:
    """Re-run the failed step with checks on to name the first node that went non-finite."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            model.forward(batch, (roles.loss,), training=True, step=global_step, check_finite=True)
            model.backward(roles.loss, check_finite=True)
    except TrainingError as error:
        detail = error.message
    else:
        detail = "the loss or a gradient is not finite"
    if result.saved_epoch is not None:
        kept = f"the checkpoint of epoch {result.saved_epoch} (the best so far) is untouched"
    else:
        kept = "nothing was saved"
    return TrainingError(
        f"training diverged at epoch {epoch + 1}, step {step + 1}: {detail}; {kept}",
        hint="lower the learning rate (--set train.optimizer.lr=...) or check the data scaling",
    )
