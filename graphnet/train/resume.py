"""Resuming a run: what a checkpoint holds besides the best weights, and reading it back.

A run stopped by SIGKILL, a crash or Ctrl-C continues with ``graphnet run SPEC --resume MODEL``
and ends with parameters bit-identical to a run never stopped, and the same log apart from the
timings. ``train`` checkpoints after every epoch and where Ctrl-C stopped it; a checkpoint holds

- the position: whole epochs done, steps done in the epoch in progress (only after Ctrl-C), and
  optimizer steps in all;
- the current weights and the optimizer's state: its step count and its buffers (momentum, Adam's
  two moments);
- best-on-validation: the best weights, their epoch and metric value (early stopping's patience
  follows from the epoch);
- the log so far and, in the middle of an epoch, the sums behind the epoch's mean training loss;
- a fingerprint of the examples trained and validated on (counts, SHA-256), so that a resume on
  other data is refused instead of silently diverging.

No random generator's state is saved because none is needed: every draw is a function of the seed
and the position. Epoch ``e`` shuffles with ``default_rng([seed, e])`` and augments with
``default_rng([seed, e, 1])`` (advanced past the batches already done: ``augment.skip_batch``);
dropout at optimizer step ``n`` in the node at position ``i`` draws from ``[seed, n, i]``; the
initial weights are not drawn again. The position is the state of every generator.

In a model file (docs/model-format.md)::

    params                     the best weights, which eval and inspect use (the current ones
                               when nothing is monitored)
    state                      the ops' state (batch norm's running statistics) that goes with
                               the params
    optimizer  <slot>/<param>  each optimizer buffer, per parameter: momentum/fc1.w,
                               exp_avg/fc1.w, exp_avg_sq/fc1.w
               weights/<param> the current weights, when they are not the params, and
               weights/<state> the current op state with them
    log                        the epochs so far
    resume     {version: 1, finished: null, position: {epoch, step, steps},
                optimizer: {type, step, slots}, best: {metric, epoch, value},
                partial: {loss_sum, seen} | null, weights: params | optimizer,
                data: {train, val, sha256}}

The last file of a finished run (every epoch trained, or early stopping) keeps the same map with
``finished`` set ("completed" or "early stopping"), ``weights`` null and no optimizer tensors: it
cannot be resumed, and the model handed around does not carry the optimizer's state.

Training sits below model files, so nothing here reads or writes one: a checkpoint function gets
a :class:`Snapshot` to save with the model (``save_model(..., resume=snapshot.header,
optimizer=snapshot.tensors)``), and :func:`read_resume` takes what ``modelfile.load_model``
returned.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Mapping, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ..errors import GraphnetError, ModelFileError, TrainingError, listed, raise_all, short
from ..spec import Spec
from .data import Split

VERSION = 1  # of the resume map; a reader refuses a later one
WEIGHTS = "weights"  # the prefix of the current weights in the optimizer group
IGNORED = (("train", "output"),)  # spec paths that may differ: where the run writes its file
EDITED_HINT = "the file was edited or written by another program; resume from a file `graphnet run` wrote"


# ----------------------------------------------------------------------------------------------
# Where a run is
# ----------------------------------------------------------------------------------------------


@dataclass
class Position:
    """Where a run is: ``epoch`` whole epochs done, ``step`` steps done in the next one, and for
    those steps the sum of loss x batch size (``loss_sum``) over ``seen`` examples, from which
    the epoch's mean training loss is computed when it ends."""

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    seen: int = 0


@dataclass
class Snapshot:
    """What a checkpoint saves for resuming, besides the model (the best weights), its log and
    metrics: ``header``, plain data for the model file's ``resume`` map, and ``tensors`` for its
    ``optimizer`` group. The tensors are the training buffers themselves, not copies: save them
    before the checkpoint function returns."""

    header: dict[str, Any]
    tensors: dict[str, np.ndarray]


def data_fingerprint(train: Split, val: Split | None) -> dict[str, Any]:
    """The examples and labels training reads (train and validation splits, after
    preprocessing): counts and one SHA-256 over the arrays' dtypes, shapes and bytes. Hashing
    MNIST's 60,000 images takes about 0.1 s."""
    digest = hashlib.sha256()
    for array in (train.x, train.y, *((val.x, val.y) if val is not None else ())):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.reshape(-1).view(np.uint8))
    return {"train": len(train), "val": len(val) if val is not None else 0, "sha256": digest.hexdigest()}


def make_snapshot(
    model,
    optimizer,
    *,
    optimizer_type: str,
    position: Position,
    steps: int,
    best: dict[str, Any],
    data: dict[str, Any],
    current: np.ndarray | None,
    finished: str | None = None,
    current_state: np.ndarray | None = None,
) -> Snapshot:
    """The snapshot of a run at ``position`` after ``steps`` optimizer steps in all.

    ``model`` holds the weights the file's params get (the best ones); ``current`` is a flat
    buffer with the current weights when they differ from those, else None, and
    ``current_state`` the op state that goes with them (laid out as ``model.flat_state``). ``best`` is
    ``{"metric", "epoch", "value"}``; ``data`` is ``data_fingerprint``'s. A ``finished`` run
    ("completed", "early stopping") saves no tensors."""
    header = {
        "version": VERSION,
        "finished": finished,
        "position": {"epoch": position.epoch, "step": position.step, "steps": steps},
        "optimizer": {"type": optimizer_type, "step": optimizer.steps, "slots": list(optimizer.buffer_names)},
        "best": dict(best),
        "partial": {"loss_sum": position.loss_sum, "seen": position.seen} if position.step else None,
        "weights": None if finished else ("optimizer" if current is not None else "params"),
        "data": dict(data),
    }
    tensors: dict[str, np.ndarray] = {}
    if finished is None:
        for slot, buffer in optimizer.buffers().items():
            for name, view in model.views(buffer).items():
                tensors[f"{slot}/{name}"] = view
        if current is not None:
            for name, view in model.views(current).items():
                tensors[f"{WEIGHTS}/{name}"] = view
            if current_state is not None:
                for name, view in model.state_views(current_state).items():
                    tensors[f"{WEIGHTS}/{name}"] = view
    return Snapshot(header, tensors)


# ----------------------------------------------------------------------------------------------
# The resume map, as a reader checks it
# ----------------------------------------------------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Count = Annotated[int, Field(ge=0, le=(1 << 63) - 1)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Slot = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _PositionRecord(_Record):
    epoch: Count = Field(description="whole epochs done")
    step: Count = Field(description="steps done in the epoch in progress")
    steps: Count = Field(description="optimizer steps in all")


class _OptimizerRecord(_Record):
    type: Literal["sgd", "adam", "adamw"]
    step: Count
    slots: list[Slot] = Field(max_length=16)


class _BestRecord(_Record):
    metric: Optional[Literal["val_loss", "val_error", "val_accuracy"]]
    epoch: Optional[Annotated[int, Field(ge=1)]]
    value: Optional[Finite]


class _PartialRecord(_Record):
    loss_sum: Finite
    seen: Annotated[int, Field(ge=1)]


class _DataRecord(_Record):
    train: Count
    val: Count
    sha256: Sha256


class ResumeRecord(_Record):
    """The ``resume`` map of a model file (see the module docstring)."""

    version: Annotated[int, Field(ge=1)]
    finished: Optional[Literal["completed", "early stopping"]]
    position: _PositionRecord
    optimizer: _OptimizerRecord
    best: _BestRecord
    partial: Optional[_PartialRecord]
    weights: Optional[Literal["params", "optimizer"]]
    data: _DataRecord


class EpochRecord(_Record):
    """One entry of the log's ``epochs`` (``loop.EpochLog``'s fields)."""

    epoch: Annotated[int, Field(ge=1)]
    lr: float
    train_loss: float
    val_loss: Optional[float]
    val_error: Optional[float]
    val_accuracy: Optional[float]
    seconds: float
    samples_per_second: float


# ----------------------------------------------------------------------------------------------
# Reading a checkpoint back
# ----------------------------------------------------------------------------------------------


@dataclass
class ResumePoint:
    """A checkpoint read back and checked against the spec: ``train(spec, resume=point)``
    continues the run from it.

    ``weights`` are the current weights and ``best_weights`` the best ones (None when no epoch
    was best) by parameter name, ``state`` and ``best_state`` the op state that goes with each
    (by state name: ``bn1.running_mean``); ``slots`` the optimizer's buffers, slot -> parameter -> array;
    ``epochs`` the log's entries (``loop.EpochLog``'s fields); ``seconds`` the time the run had
    taken."""

    file: str
    record: ResumeRecord
    epochs: list[dict[str, Any]]
    seconds: float
    weights: Mapping[str, np.ndarray]
    best_weights: Optional[Mapping[str, np.ndarray]]
    slots: dict[str, dict[str, np.ndarray]]
    state: Mapping[str, np.ndarray] = field(default_factory=dict)  # the current op state
    best_state: Optional[Mapping[str, np.ndarray]] = None  # the op state of the best weights

    @property
    def position(self) -> Position:
        record = self.record
        partial = record.partial
        return Position(record.position.epoch, record.position.step,
                        partial.loss_sum if partial else 0.0, partial.seen if partial else 0)

    def describe(self, total_epochs: int, steps_per_epoch: int) -> str:
        """``after epoch 3 of 6`` or ``in epoch 4 of 6 after step 5 of 15``."""
        where = self.record.position
        if where.step:
            return f"in epoch {where.epoch + 1} of {total_epochs} after step {where.step} of {steps_per_epoch}"
        return f"after epoch {where.epoch} of {total_epochs}"

    def check_data(self, fingerprint: Mapping[str, Any]) -> None:
        """Refuse to go on with other examples than the run trained on so far."""
        saved = self.record.data
        if saved.train != fingerprint["train"] or saved.val != fingerprint["val"]:
            raise TrainingError(
                f"the run was trained on {saved.train:,} training and {saved.val:,} validation "
                f"examples; the data now hold {fingerprint['train']:,} and {fingerprint['val']:,}",
                file=self.file, hint="resume with the data the run started with (--data-dir)")
        if saved.sha256 != fingerprint["sha256"]:
            raise TrainingError(
                "the training or validation examples differ from those the run was trained on "
                f"(SHA-256 {saved.sha256[:12]}..., now {fingerprint['sha256'][:12]}...)",
                file=self.file, hint="resume with the data the run started with (--data-dir)")


def read_resume(saved, spec: Spec) -> ResumePoint:
    """Check the checkpoint ``saved`` (what ``modelfile.load_model`` returns) against ``spec``
    and return where to resume from. Refused, with one error naming the file: a file saved
    without resume data, a finished run, a spec that differs from the one the run was trained
    with (every differing path is reported), and resume data that do not hold together."""
    file = str(saved.path)
    if saved.resume is None:
        raise TrainingError(
            "the model file was saved without resume data, so the run cannot be resumed",
            file=file,
            hint="graphnet run writes resume data after every epoch; files converted, migrated "
                 "from graphnet 0.1, or saved by save_model without resume= have none: start a new run",
        )
    record = _validate(saved.resume, file)
    if record.finished is not None:
        raise TrainingError(
            f"the run has finished: {_finished(record, spec)}; there is nothing to resume",
            file=file,
            hint="to train longer, start a new run; --out writes it to another file",
        )
    check_same_spec(spec, saved.model.spec, file)
    epochs = _check_log(saved.log, record, file)
    _check_position(record, spec, file)
    weights, best_weights, slots, state, best_state = _check_tensors(record, saved, file)
    seconds = saved.log.get("seconds")
    return ResumePoint(
        file=file, record=record, epochs=epochs,
        seconds=float(seconds) if isinstance(seconds, (int, float)) else 0.0,
        weights=weights, best_weights=best_weights, slots=slots, state=state, best_state=best_state,
    )


def check_same_spec(spec: Spec, saved: Spec, file: str) -> None:
    """Every spec path (but ``train.output``) must hold what the run was trained with: one
    error per differing path, located in the spec file (or at the --set that changed it)."""
    problems: list[GraphnetError] = []
    for path, now, before in spec_differences(spec.to_dict(), saved.to_dict()):
        problems.append(spec.error(
            path,
            f"differs from the run being resumed ({file}): it was trained with {short(before)}, "
            f"the spec now says {short(now)}",
            hint="resume with the spec and --set flags the run started with, or start a new run",
        ))
    raise_all(problems)


def spec_differences(now: Any, before: Any, path: tuple = ()) -> list[tuple[tuple, Any, Any]]:
    """(path, value now, value before) wherever two canonical spec dicts differ, by the deepest
    path that differs (a list of another length differs as a whole); ``IGNORED`` paths skipped."""
    if path in IGNORED:
        return []
    if isinstance(now, dict) and isinstance(before, dict):
        found = []
        for key in list(now) + [k for k in before if k not in now]:
            found += spec_differences(now.get(key), before.get(key), path + (key,))
        return found
    if isinstance(now, list) and isinstance(before, list) and len(now) == len(before):
        found = []
        for index, (a, b) in enumerate(zip(now, before)):
            found += spec_differences(a, b, path + (index,))
        return found
    same = type(now) is type(before) and now == before
    return [] if same else [(path, now, before)]


def _validate(raw: Any, file: str) -> ResumeRecord:
    if not isinstance(raw, dict):
        raise ModelFileError(f"resume is {short(raw)}, not a map", file=file, path="resume", hint=EDITED_HINT)
    version = raw.get("version")
    if type(version) is int and version > VERSION:
        raise ModelFileError(
            f"the resume data are version {version}; this graphnet reads version {VERSION}",
            file=file, path="resume.version", hint="resume with the graphnet version that wrote the file")
    try:
        record = ResumeRecord.model_validate(raw)
    except ValidationError as error:
        raise_all([_from_pydantic(e, file) for e in error.errors(include_url=False)])
        raise AssertionError("unreachable")  # pragma: no cover
    if record.version != VERSION:
        raise ModelFileError(f"the resume data are version {record.version}; this graphnet reads "
                             f"version {VERSION}", file=file, path="resume.version", hint=EDITED_HINT)
    return record


def _from_pydantic(error: dict, file: str, where: str = "resume") -> ModelFileError:
    loc = [where, *(str(part) for part in error["loc"])]
    if error["type"] == "extra_forbidden":
        message = f"unknown key '{loc.pop()}'"
    elif error["type"] == "missing":
        message = f"missing key '{loc.pop()}'"
    else:
        message = f"{error['msg'].removeprefix('Value error, ')}; received {short(error.get('input'))}"
    return ModelFileError(message, file=file, path=".".join(loc), hint=EDITED_HINT)


def _finished(record: ResumeRecord, spec: Spec) -> str:
    epochs = record.position.epoch
    if record.finished == "early stopping":
        return f"early stopping after epoch {epochs} (best epoch {record.best.epoch})"
    total = spec.train.total_epochs() if spec.train is not None else epochs
    if epochs != total:
        return f"it trained {epochs} of {total} epochs"
    return "it trained its only epoch" if total == 1 else f"it trained all {total} epochs"


def _inconsistent(message: str, file: str, path: str) -> ModelFileError:
    return ModelFileError(f"the resume data do not hold together: {message}", file=file, path=path,
                          hint=EDITED_HINT)


def _check_log(log: Mapping[str, Any], record: ResumeRecord, file: str) -> list[dict[str, Any]]:
    """The log's epochs, one per epoch done, each with exactly ``EpochLog``'s fields."""
    entries = log.get("epochs") if isinstance(log, Mapping) else None
    if not isinstance(entries, list):
        raise _inconsistent("the log has no list of epochs", file, "log.epochs")
    done = record.position.epoch
    if len(entries) != done:
        raise _inconsistent(f"the log has {len(entries)} epochs, the position says {done} were done",
                            file, "log.epochs")
    epochs = []
    for index, entry in enumerate(entries):
        try:
            checked = EpochRecord.model_validate(entry)
        except ValidationError as error:
            raise_all([_from_pydantic(e, file, f"log.epochs.{index}") for e in error.errors(include_url=False)])
            raise AssertionError("unreachable")  # pragma: no cover
        if checked.epoch != index + 1:
            raise _inconsistent(f"entry {index} of the log is epoch {checked.epoch}", file,
                                f"log.epochs.{index}.epoch")
        epochs.append(checked.model_dump())
    if log.get("best_epoch") != record.best.epoch:
        raise _inconsistent(f"the log's best epoch is {short(log.get('best_epoch'))}, the resume "
                            f"data's {record.best.epoch}", file, "resume.best.epoch")
    return epochs


def _check_position(record: ResumeRecord, spec: Spec, file: str) -> None:
    """The position, the optimizer's step count, the partial epoch's sums and the best epoch
    agree with each other and with the spec (epochs, batch size, keep_best)."""
    cfg = spec.train
    assert cfg is not None  # the spec equals the one trained, which had a train section
    where = record.position
    steps_per_epoch = -(-record.data.train // cfg.batch_size)
    problems = []
    if where.epoch > cfg.total_epochs() or (where.epoch == cfg.total_epochs() and where.step):
        problems.append(("resume.position", f"position epoch {where.epoch}, step {where.step} is past "
                                            f"the run's {cfg.total_epochs()} epochs"))
    if where.step >= steps_per_epoch:
        problems.append(("resume.position.step", f"step {where.step} in an epoch of {steps_per_epoch} steps"))
    if where.steps != where.epoch * steps_per_epoch + where.step:
        problems.append(("resume.position.steps", f"{where.steps} steps in all after {where.epoch} "
                                                  f"epochs of {steps_per_epoch} steps and {where.step} more"))
    if record.optimizer.step != where.steps:
        problems.append(("resume.optimizer.step", f"the optimizer took {record.optimizer.step} steps, "
                                                  f"the run {where.steps}"))
    if record.optimizer.type != cfg.optimizer.type:
        problems.append(("resume.optimizer.type", f"the optimizer is {record.optimizer.type}, the spec's "
                                                  f"{cfg.optimizer.type}"))
    partial = record.partial
    if (partial is None) != (where.step == 0):
        problems.append(("resume.partial", "the sums of the epoch in progress go with a position inside "
                                           "an epoch, and only there"))
    elif partial is not None and partial.seen != where.step * cfg.batch_size:
        problems.append(("resume.partial.seen", f"{partial.seen} examples in {where.step} steps of "
                                                f"{cfg.batch_size}"))
    best = record.best
    metric = cfg.keep_best.metric if cfg.keep_best else None
    if best.metric != metric:
        problems.append(("resume.best.metric", f"the best epoch was chosen by {best.metric}, the spec's "
                                               f"keep_best by {metric}"))
    if (best.epoch is None) != (best.value is None) or (best.epoch or 0) > where.epoch:
        problems.append(("resume.best", f"best epoch {best.epoch} with value {best.value} after "
                                        f"{where.epoch} epochs"))
    differs = best.epoch is not None and (best.epoch != where.epoch or where.step > 0)
    expected = "optimizer" if differs else "params"
    if record.weights != expected:
        problems.append(("resume.weights", f"the current weights are said to be in {record.weights}, "
                                           f"but they are not the best ones only when they are in "
                                           f"{expected}"))
    raise_all([_inconsistent(message, file, path) for path, message in problems])


def _check_tensors(record: ResumeRecord, saved, file: str):
    """(current weights, best weights or None, slots, current op state, best op state or None)
    by name, every one present, of the parameter's (the state's) shape and the model's dtype, and
    nothing else in the optimizer group. The file's params and state are the best ones (or the
    current ones, when ``weights`` says "params")."""
    params = saved.model.params
    model_state = getattr(saved.model, "state", {})
    dtype = saved.model.dtype
    tensors = saved.optimizer
    expected = {f"{slot}/{name}": array for slot in record.optimizer.slots for name, array in params.items()}
    if record.weights == "optimizer":
        expected.update({f"{WEIGHTS}/{name}": array for name, array in {**params, **model_state}.items()})
    missing = [name for name in expected if name not in tensors]
    unexpected = [name for name in tensors if name not in expected]
    problems = []
    if missing:
        problems.append(_inconsistent(f"the optimizer tensors lack {listed(missing)}", file, "tensors.optimizer"))
    if unexpected:
        problems.append(_inconsistent(f"unexpected optimizer tensors {listed(unexpected)}", file,
                                      "tensors.optimizer"))
    for name, param in expected.items():
        array = tensors.get(name)
        if array is not None and (array.shape != param.shape or array.dtype != dtype):
            problems.append(_inconsistent(
                f"optimizer tensor '{name}' is {array.dtype} {list(array.shape)}, the parameter "
                f"{dtype} {list(param.shape)}", file, "tensors.optimizer"))
    raise_all(problems)
    slots = {slot: {name: tensors[f"{slot}/{name}"] for name in params} for slot in record.optimizer.slots}
    if record.weights == "optimizer":
        weights = {name: tensors[f"{WEIGHTS}/{name}"] for name in params}
        state = {name: tensors[f"{WEIGHTS}/{name}"] for name in model_state}
    else:
        weights = dict(params)
        state = dict(model_state)
    best_weights = dict(params) if record.best.epoch is not None else None
    best_state = dict(model_state) if record.best.epoch is not None else None
    return weights, best_weights, slots, state, best_state
