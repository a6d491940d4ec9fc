"""Learning-rate schedules: the rate for each step of a run.

Steps are counted over the whole run: ``global_step = epoch * steps_per_epoch + step`` (both
0-based). The schedule types (see ``graphnet.spec``)::

    constant   lr = base_lr
    piecewise  lr = the rate of the stage holding `epoch` (base_lr unused; after the last stage,
               its rate)
    step       lr = base_lr * gamma ** (epoch // step_epochs)
    cosine     lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * t)) / 2,
               t = (global_step - warmup_steps) / (total_steps - warmup_steps)

Warm-up (every type): the first ``warmup_steps = ceil(warmup_epochs * steps_per_epoch)`` steps
multiply the rate by ``(global_step + 1) / warmup_steps``, a linear ramp that reaches the full rate
on the last warm-up step. A cosine schedule starts its decay after the warm-up.
"""

from __future__ import annotations

import math
from typing import Union

from ..spec import ConstantSchedule, CosineSchedule, PiecewiseSchedule, StepSchedule

Schedule = Union[ConstantSchedule, PiecewiseSchedule, StepSchedule, CosineSchedule]


def warmup_steps(schedule: Schedule, steps_per_epoch: int) -> int:
    """How many steps the warm-up lasts (0 for none)."""
    # NOTE: the small slack keeps float noise (0.1 * 30 = 3.0000000000000004) from adding a step.
    return max(0, math.ceil(schedule.warmup_epochs * steps_per_epoch - 1e-9))


def learning_rate(
    schedule: Schedule,
    base_lr: float,
    epoch: int,
    step: int,
    steps_per_epoch: int,
    total_epochs: int,
) -> float:
    """The learning rate for step ``step`` (0-based) of epoch ``epoch`` (0-based)."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1; received {steps_per_epoch}")
    if epoch < 0 or step < 0:
        raise ValueError(f"epoch and step must be >= 0; received epoch={epoch}, step={step}")
    global_step = epoch * steps_per_epoch + step
    warmup = warmup_steps(schedule, steps_per_epoch)

    if isinstance(schedule, ConstantSchedule):
        lr = float(base_lr)
    elif isinstance(schedule, PiecewiseSchedule):
        lr = _stage_rate(schedule, epoch)
    elif isinstance(schedule, StepSchedule):
        lr = base_lr * schedule.gamma ** (epoch // schedule.step_epochs)
    elif isinstance(schedule, CosineSchedule):
        lr = _cosine_rate(schedule, base_lr, global_step, warmup, total_epochs * steps_per_epoch)
    else:
        raise ValueError(f"unknown schedule {type(schedule).__name__}")

    if global_step < warmup:
        lr *= (global_step + 1) / warmup
    return float(lr)


def _stage_rate(schedule: PiecewiseSchedule, epoch: int) -> float:
    end = 0
    for stage in schedule.stages:
        end += stage.epochs
        if epoch < end:
            return stage.lr
    return schedule.stages[-1].lr


def _cosine_rate(
    schedule: CosineSchedule, base_lr: float, global_step: int, warmup: int, total_steps: int
) -> float:
    decay_steps = total_steps - warmup
    if decay_steps <= 0 or global_step <= warmup:
        return float(base_lr)
    t = min((global_step - warmup) / decay_steps, 1.0)
    return schedule.min_lr + (base_lr - schedule.min_lr) * (1.0 + math.cos(math.pi * t)) / 2.0


def describe(schedule: Schedule, base_lr: float, total_epochs: int) -> str:
    """A one-line summary, e.g. ``10 ep @ 0.01, 10 ep @ 0.001`` or
    ``cosine 0.001 -> 0 over 20 epochs (warm-up 1 epoch)``."""
    if isinstance(schedule, ConstantSchedule):
        text = f"constant {_num(base_lr)} for {_epochs(total_epochs)}"
    elif isinstance(schedule, PiecewiseSchedule):
        text = ", ".join(f"{stage.epochs} ep @ {_num(stage.lr)}" for stage in schedule.stages)
    elif isinstance(schedule, StepSchedule):
        text = (
            f"{_num(base_lr)} x{_num(schedule.gamma)} every {_epochs(schedule.step_epochs)} "
            f"over {_epochs(total_epochs)}"
        )
    elif isinstance(schedule, CosineSchedule):
        text = (
            f"cosine {_num(base_lr)} -> {_num(schedule.min_lr)} over {_epochs(total_epochs)}"
        )
    else:
        raise ValueError(f"unknown schedule {type(schedule).__name__}")
    if schedule.warmup_epochs > 0:
        text += f" (warm-up {_epochs(schedule.warmup_epochs)})"
    return text


def _num(value: float) -> str:
    return f"{value:g}"


def _epochs(count: float) -> str:
    return f"{_num(count)} epoch" + ("" if count == 1 else "s")
