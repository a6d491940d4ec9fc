"""Learning-rate schedules at chosen (epoch, step) points, values computed by hand. Schedules are
built through the spec models, so the shorthands (a list of stages, a dict without `type`) are
covered too."""

from __future__ import annotations

import math

import pytest

from graphnet.spec import TrainSpec
from graphnet.train.schedule import describe, learning_rate, warmup_steps


def schedule_of(value, **train):
    return TrainSpec.model_validate({"schedule": value, **train}).schedule


ORIGINAL = [{"epochs": 10, "lr": 1e-2}, {"epochs": 10, "lr": 1e-3}, {"epochs": 10, "lr": 1e-4}]


def test_constant():
    schedule = schedule_of({"type": "constant"})
    for epoch, step in [(0, 0), (3, 7), (99, 9)]:
        assert learning_rate(schedule, 0.05, epoch, step, 10, 100) == 0.05


def test_constant_with_warmup_ramps_linearly():
    # A dict without `type` is a constant schedule. 1 epoch of 4 steps: 1/4, 2/4, 3/4, 4/4.
    schedule = schedule_of({"warmup_epochs": 1})
    assert schedule.type == "constant"
    rates = [learning_rate(schedule, 0.08, 0, step, 4, 5) for step in range(4)]
    assert rates == pytest.approx([0.02, 0.04, 0.06, 0.08], abs=1e-15)
    assert learning_rate(schedule, 0.08, 1, 0, 4, 5) == 0.08
    assert learning_rate(schedule, 0.08, 4, 3, 4, 5) == 0.08


def test_original_piecewise_schedule():
    train = TrainSpec.model_validate({"schedule": ORIGINAL})
    schedule = train.schedule
    assert schedule.type == "piecewise"
    assert train.total_epochs() == 30
    # base_lr is ignored by a piecewise schedule
    rate = lambda epoch, step=0: learning_rate(schedule, 123.0, epoch, step, 50, 30)  # noqa: E731
    assert rate(0) == 1e-2
    assert rate(9, 49) == 1e-2
    assert rate(10) == 1e-3
    assert rate(19, 49) == 1e-3
    for epoch in range(20, 30):
        assert rate(epoch) == 1e-4
    assert rate(35) == 1e-4  # past the end: the last stage's rate


def test_piecewise_with_warmup_ramps_the_first_stage():
    schedule = schedule_of({"type": "piecewise", "stages": ORIGINAL, "warmup_epochs": 0.5})
    # 0.5 epoch of 10 steps = 5 warm-up steps at 1/5 .. 5/5 of 1e-2
    assert learning_rate(schedule, 0.0, 0, 0, 10, 30) == pytest.approx(0.002, abs=1e-18)
    assert learning_rate(schedule, 0.0, 0, 3, 10, 30) == pytest.approx(0.008, abs=1e-18)
    assert learning_rate(schedule, 0.0, 0, 4, 10, 30) == 1e-2
    assert learning_rate(schedule, 0.0, 0, 5, 10, 30) == 1e-2


def test_step():
    schedule = schedule_of({"type": "step", "step_epochs": 10, "gamma": 0.5})
    rate = lambda epoch: learning_rate(schedule, 0.1, epoch, 3, 20, 40)  # noqa: E731
    assert rate(0) == 0.1
    assert rate(9) == 0.1
    assert rate(10) == 0.05
    assert rate(19) == 0.05
    assert rate(20) == 0.025
    assert rate(39) == 0.0125


def test_step_default_gamma():
    schedule = schedule_of({"type": "step", "step_epochs": 3})
    assert learning_rate(schedule, 1.0, 6, 0, 5, 10) == pytest.approx(0.01, abs=1e-17)


def test_cosine_without_warmup():
    schedule = schedule_of({"type": "cosine"})
    # 20 epochs of 10 steps: 200 steps, t = global_step / 200
    rate = lambda epoch, step: learning_rate(schedule, 1e-3, epoch, step, 10, 20)  # noqa: E731
    assert rate(0, 0) == 1e-3
    assert rate(5, 0) == pytest.approx(1e-3 * (1 + math.cos(math.pi / 4)) / 2, abs=1e-18)
    assert rate(10, 0) == pytest.approx(5e-4, abs=1e-18)
    last = rate(19, 9)  # t = 199 / 200
    assert last == pytest.approx(1e-3 * (1 + math.cos(math.pi * 199 / 200)) / 2, abs=1e-18)
    assert 0 < last < 1e-7
    assert rate(25, 0) == 0.0  # past the end: min_lr


def test_cosine_with_warmup_and_min_lr():
    schedule = schedule_of({"type": "cosine", "min_lr": 1e-4, "warmup_epochs": 1})
    # 10 warm-up steps ramp 1e-3 by 1/10 .. 10/10; the cosine runs over the 190 steps after them.
    rate = lambda epoch, step: learning_rate(schedule, 1e-3, epoch, step, 10, 20)  # noqa: E731
    assert rate(0, 0) == pytest.approx(1e-4, abs=1e-18)
    assert rate(0, 4) == pytest.approx(5e-4, abs=1e-18)
    assert rate(0, 9) == 1e-3
    assert rate(1, 0) == 1e-3  # the first step after warm-up: the full base rate
    assert rate(10, 5) == pytest.approx(1e-4 + 9e-4 / 2, abs=1e-18)  # t = 95 / 190 = 1/2
    last = rate(19, 9)  # t = 189 / 190
    assert last == pytest.approx(1e-4 + 9e-4 * (1 + math.cos(math.pi * 189 / 190)) / 2, abs=1e-18)
    assert last - 1e-4 < 1e-7


def test_warmup_steps_rounding():
    # 0.5 epoch of 5 steps is 2.5 steps: the warm-up covers 3 (every step below 2.5).
    schedule = schedule_of({"warmup_epochs": 0.5})
    assert warmup_steps(schedule, 5) == 3
    assert [learning_rate(schedule, 0.3, 0, s, 5, 2) for s in range(4)] == pytest.approx(
        [0.1, 0.2, 0.3, 0.3], abs=1e-16
    )
    # 0.1 * 30 is 3.0000000000000004 in floating point; still 3 warm-up steps.
    assert warmup_steps(schedule_of({"warmup_epochs": 0.1}), 30) == 3
    assert warmup_steps(schedule_of({"type": "constant"}), 30) == 0


def test_bad_arguments():
    schedule = schedule_of({"type": "constant"})
    with pytest.raises(ValueError, match="steps_per_epoch"):
        learning_rate(schedule, 0.1, 0, 0, 0, 10)
    with pytest.raises(ValueError, match="epoch"):
        learning_rate(schedule, 0.1, -1, 0, 10, 10)


def test_describe():
    assert describe(schedule_of(ORIGINAL), 0.1, 30) == "10 ep @ 0.01, 10 ep @ 0.001, 10 ep @ 0.0001"
    cosine = schedule_of({"type": "cosine", "warmup_epochs": 1})
    assert describe(cosine, 1e-3, 20) == "cosine 0.001 -> 0 over 20 epochs (warm-up 1 epoch)"
    assert describe(schedule_of({"type": "constant"}), 0.01, 10) == "constant 0.01 for 10 epochs"
    step = schedule_of({"type": "step", "step_epochs": 10, "gamma": 0.5, "warmup_epochs": 0.5})
    assert describe(step, 0.1, 30) == "0.1 x0.5 every 10 epochs over 30 epochs (warm-up 0.5 epochs)"
