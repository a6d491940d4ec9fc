"""Optimizers on a flat parameter buffer: hand-computed steps, plain-numpy reference loops that
write the formulas out, resuming from a saved state. (tests/test_torch.py compares them with torch.optim.)"""

from __future__ import annotations

import numpy as np
import pytest

from graphnet.errors import TrainingError
from graphnet.spec import AdamSpec, SGDSpec, TrainSpec
from graphnet.train.optim import SGD, Adam, make_optimizer

# A tiny model: two decayed weights, then two biases (no decay). Values include negatives.
P0 = np.array([1.0, -2.0, 0.5, 3.0])
MASK = np.array([1.0, 1.0, 0.0, 0.0])
GRADS = [
    np.array([0.1, -0.3, 0.2, -1.0]),
    np.array([-0.2, 0.4, 0.0, 0.5]),
    np.array([0.3, 0.1, -0.4, 0.25]),
]
LRS = [0.1, 0.05, 0.02]


def sgd(spec: dict, dtype=np.float64, mask=MASK):
    return make_optimizer(SGDSpec(type="sgd", **spec), mask.size, dtype, mask.astype(dtype))


def adam(spec: dict, dtype=np.float64, mask=MASK):
    spec = {"type": "adam", **spec}
    return make_optimizer(AdamSpec(**spec), mask.size, dtype, mask.astype(dtype))


def run(opt, p0=P0, grads=GRADS, lrs=LRS, dtype=np.float64):
    params = p0.astype(dtype)
    for grad, lr in zip(grads, lrs):
        opt.step(params, grad.astype(dtype), lr)
    return params


# -- plain-numpy references: the formulas written out, one step at a time -----------------------


def reference_sgd(p, grads, lrs, momentum=0.0, nesterov=False, wd=0.0, mask=MASK):
    p = p.copy()
    v = None
    for grad, lr in zip(grads, lrs):
        g = grad + wd * mask * p
        if momentum:
            v = g.copy() if v is None else momentum * v + g
            update = g + momentum * v if nesterov else v
        else:
            update = g
        p = p - lr * update
    return p


def reference_adam(p, grads, lrs, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, mask=MASK, decoupled=False):
    p = p.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, (grad, lr) in enumerate(zip(grads, lrs), start=1):
        if decoupled:
            p = p * (1 - lr * wd * mask)
            g = grad
        else:
            g = grad + wd * mask * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


# -- SGD ---------------------------------------------------------------------------------------


def test_sgd_plain_by_hand():
    opt = sgd({})
    params = P0.copy()
    opt.step(params, GRADS[0], 0.1)
    # p - 0.1 * g
    np.testing.assert_allclose(params, [0.99, -1.97, 0.48, 3.1], rtol=0, atol=1e-15)
    opt.step(params, GRADS[1], 0.1)
    np.testing.assert_allclose(params, [1.01, -2.01, 0.48, 3.05], rtol=0, atol=1e-15)


def test_sgd_momentum_by_hand():
    opt = sgd({"momentum": 0.9})
    params = P0.copy()
    opt.step(params, GRADS[0], 0.1)
    # v1 = g1, so the first step is plain SGD
    np.testing.assert_allclose(params, [0.99, -1.97, 0.48, 3.1], rtol=0, atol=1e-15)
    opt.step(params, GRADS[1], 0.1)
    # v2 = 0.9 g1 + g2 = [-0.11, 0.13, 0.18, -0.4]
    np.testing.assert_allclose(params, [1.001, -1.983, 0.462, 3.14], rtol=0, atol=1e-15)


def test_sgd_nesterov_by_hand_differs_from_momentum():
    opt = sgd({"momentum": 0.9, "nesterov": True})
    params = P0.copy()
    opt.step(params, GRADS[0], 0.1)
    # u1 = g1 + 0.9 v1 = 1.9 g1 = [0.19, -0.57, 0.38, -1.9]
    np.testing.assert_allclose(params, [0.981, -1.943, 0.462, 3.19], rtol=0, atol=1e-15)
    opt.step(params, GRADS[1], 0.1)
    # v2 = [-0.11, 0.13, 0.18, -0.4]; u2 = g2 + 0.9 v2 = [-0.299, 0.517, 0.162, 0.14]
    np.testing.assert_allclose(params, [1.0109, -1.9947, 0.4458, 3.176], rtol=0, atol=1e-15)
    plain = run(sgd({"momentum": 0.9}), lrs=[0.1, 0.1])
    assert not np.allclose(params, plain[:4])


def test_sgd_weight_decay_only_where_masked_by_hand():
    opt = sgd({"weight_decay": 0.5})
    params = P0.copy()
    opt.step(params, GRADS[0], 0.1)
    # g = g1 + 0.5 * mask * p0 = [0.6, -1.3, 0.2, -1.0]; the biases get g1 alone
    np.testing.assert_allclose(params, [0.94, -1.87, 0.48, 3.1], rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"momentum": 0.9},
        {"momentum": 0.5, "weight_decay": 0.01},
        {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
    ],
)
def test_sgd_matches_reference_loop(config):
    params = run(sgd(config))
    expected = reference_sgd(
        P0,
        GRADS,
        LRS,
        momentum=config.get("momentum", 0.0),
        nesterov=config.get("nesterov", False),
        wd=config.get("weight_decay", 0.0),
    )
    np.testing.assert_allclose(params, expected, rtol=1e-14, atol=1e-15)


# -- Adam / AdamW ----------------------------------------------------------------------------


def test_adam_first_step_by_hand():
    opt = adam({"lr": 0.01})
    params = P0.copy()
    opt.step(params, GRADS[0], 0.01)
    # After bias correction m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps):
    # about lr * sign(g).
    np.testing.assert_allclose(params, P0 - 0.01 * GRADS[0] / (np.abs(GRADS[0]) + 1e-8), atol=1e-15)
    np.testing.assert_allclose(params, [0.99, -1.99, 0.49, 3.01], rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    "config",
    [
        {"type": "adam"},
        {"type": "adam", "beta1": 0.5, "beta2": 0.9, "eps": 1e-3},
        {"type": "adam", "weight_decay": 0.1},
        {"type": "adamw", "weight_decay": 0.1},
        {"type": "adamw", "weight_decay": 0.5, "beta1": 0.8},
    ],
)
def test_adam_matches_reference_loop(config):
    params = run(adam(config))
    expected = reference_adam(
        P0,
        GRADS,
        LRS,
        b1=config.get("beta1", 0.9),
        b2=config.get("beta2", 0.999),
        eps=config.get("eps", 1e-8),
        wd=config.get("weight_decay", 0.0),
        decoupled=config["type"] == "adamw",
    )
    np.testing.assert_allclose(params, expected, rtol=1e-13, atol=1e-15)


def test_adam_and_adamw_decay_differ_as_they_should():
    # Two parameters of value 3 with no gradient: the first decayed, the second a bias.
    p0 = np.array([3.0, 3.0])
    mask = np.array([1.0, 0.0])
    grad = np.zeros(2)
    coupled = p0.copy()
    adam({"weight_decay": 0.1}, mask=mask).step(coupled, grad, 0.01)
    decoupled = p0.copy()
    adam({"type": "adamw", "weight_decay": 0.1}, mask=mask).step(decoupled, grad, 0.01)
    # adam: g = 0.1 * 3 = 0.3 goes through the moments and is normalized into a full step of
    # about lr = 0.01.
    np.testing.assert_allclose(coupled, [3.0 - 0.01 * 0.3 / (0.3 + 1e-8), 3.0], rtol=0, atol=1e-15)
    # adamw: p * (1 - lr * wd) = 3 * 0.999, and the zero gradient moves nothing.
    np.testing.assert_allclose(decoupled, [2.997, 3.0], rtol=0, atol=1e-15)
    # Unmasked parameters are untouched by either kind of decay.
    assert coupled[1] == 3.0 and decoupled[1] == 3.0


def test_decay_with_all_zero_mask_changes_nothing():
    mask = np.zeros(4)
    for make, config in [(sgd, {"momentum": 0.9, "weight_decay": 0.5}), (adam, {"weight_decay": 0.5}),
                         (adam, {"type": "adamw", "weight_decay": 0.5})]:
        with_decay = run(make(config, mask=mask))
        config = {**config, "weight_decay": 0.0}
        without = run(make(config, mask=mask))
        assert np.array_equal(with_decay, without)


# -- dtypes, inputs, errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, config",
    [
        (sgd, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
        (adam, {"weight_decay": 0.1}),
        (adam, {"type": "adamw", "weight_decay": 0.1}),
    ],
)
def test_float32_stays_float32(make, config):
    opt = make(config, dtype=np.float32)
    params = run(opt, dtype=np.float32)
    assert params.dtype == np.float32
    for name, value in opt.state().items():
        if name != "step":
            assert value.dtype == np.float32, name
    for scratch in vars(opt).values():
        if isinstance(scratch, np.ndarray):
            assert scratch.dtype == np.float32
    np.testing.assert_allclose(params, run(make(config)), rtol=1e-5, atol=1e-6)


def test_step_does_not_modify_grads():
    for opt in [sgd({"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
                adam({"weight_decay": 0.1}), adam({"type": "adamw", "weight_decay": 0.1})]:
        params = P0.copy()
        grads = [g.copy() for g in GRADS]
        for grad, lr in zip(grads, LRS):
            opt.step(params, grad, lr)
        for grad, original in zip(grads, GRADS):
            assert np.array_equal(grad, original)


def test_step_rejects_wrong_size_or_dtype():
    opt = sgd({})
    with pytest.raises(TrainingError, match="4 values"):
        opt.step(np.zeros(5), np.zeros(5), 0.1)
    with pytest.raises(TrainingError, match="float64"):
        opt.step(np.zeros(4), np.zeros(4, np.float32), 0.1)


def test_make_optimizer_checks_mask_and_dtype():
    with pytest.raises(TrainingError, match="decay_mask"):
        make_optimizer(SGDSpec(type="sgd"), 4, np.float64, np.ones(3))
    with pytest.raises(TrainingError, match="0.0"):
        make_optimizer(SGDSpec(type="sgd"), 2, np.float64, np.array([0.5, 1.0]))
    with pytest.raises(TrainingError, match="float32 or float64"):
        make_optimizer(SGDSpec(type="sgd"), 2, np.int64, np.ones(2))


def test_make_optimizer_from_train_spec():
    train = TrainSpec.model_validate(
        {"optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True}}
    )
    opt = make_optimizer(train.optimizer, 4, np.float64, MASK)
    assert isinstance(opt, SGD) and opt.momentum == 0.9 and opt.nesterov
    train = TrainSpec.model_validate({"optimizer": {"type": "adamw", "weight_decay": 0.01}})
    opt = make_optimizer(train.optimizer, 4, np.float32, MASK.astype(np.float32))
    assert isinstance(opt, Adam) and opt.decoupled and opt.dtype == np.float32


# -- resuming --------------------------------------------------------------------------------

RESUME_CONFIGS = [
    (sgd, {}),
    (sgd, {"momentum": 0.9}),
    (sgd, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    (adam, {"weight_decay": 0.1}),
    (adam, {"type": "adamw", "weight_decay": 0.1, "beta1": 0.8}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make, config", RESUME_CONFIGS)
def test_state_round_trip_continues_bit_identically(make, config, dtype):
    rng = np.random.default_rng(7)
    size = 10
    mask = (np.arange(size) % 3 != 0).astype(dtype)
    p0 = rng.standard_normal(size).astype(dtype)
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(5)]
    lrs = [0.1, 0.08, 0.05, 0.03, 0.01]

    first = make(config, dtype=dtype, mask=mask)
    params = p0.copy()
    for i in range(5):
        first.step(params, grads[i], lrs[i])
        if i == 1:
            saved_state = first.state()
            saved_params = params.copy()

    assert saved_state["step"] == 2  # a snapshot: later steps did not change it
    second = make(config, dtype=dtype, mask=mask)
    second.load_state(saved_state)
    resumed = saved_params
    for i in range(2, 5):
        second.step(resumed, grads[i], lrs[i])

    assert np.array_equal(resumed, params)
    final_first, final_second = first.state(), second.state()
    assert final_first.keys() == final_second.keys()
    for name in final_first:
        assert np.array_equal(final_first[name], final_second[name]), name


def test_load_state_wrong_size_raises():
    state = adam({}).state()
    small = make_optimizer(AdamSpec(type="adam"), 3, np.float64, np.ones(3))
    with pytest.raises(TrainingError, match="'exp_avg' has shape \\(4,\\) but the model has 3"):
        small.load_state(state)


def test_load_state_wrong_names_dtype_or_step_raises():
    with pytest.raises(TrainingError, match="missing 'exp_avg', 'exp_avg_sq'"):
        adam({}).load_state(sgd({"momentum": 0.9}).state())
    with pytest.raises(TrainingError, match="unexpected 'momentum'"):
        sgd({}).load_state(sgd({"momentum": 0.9}).state())
    with pytest.raises(TrainingError, match="float32 but the parameters are float64"):
        adam({}).load_state(adam({}, dtype=np.float32).state())
    state = adam({}).state()
    state["step"] = -1
    with pytest.raises(TrainingError, match="'step'"):
        adam({}).load_state(state)


def test_failed_load_state_changes_nothing():
    opt = adam({})
    params = P0.copy()
    opt.step(params, GRADS[0], 0.01)
    before = opt.state()
    bad = opt.state()
    bad["exp_avg_sq"] = bad["exp_avg_sq"].astype(np.float32)
    with pytest.raises(TrainingError):
        opt.load_state(bad)
    after = opt.state()
    assert after["step"] == before["step"] == 1
    assert np.array_equal(after["exp_avg"], before["exp_avg"])


def test_buffers_are_the_live_state_that_state_copies():
    """``buffers()`` is what a checkpoint writes: the optimizer's own arrays, by name, changing
    with every step; ``state()`` is a copy that does not."""
    opt = adam({})
    params = P0.copy()
    live = opt.buffers()
    assert list(live) == ["exp_avg", "exp_avg_sq"]
    opt.step(params, GRADS[0], 0.1)
    np.testing.assert_allclose(live["exp_avg"], 0.1 * GRADS[0], rtol=1e-15)  # m_1 = (1 - b1) g
    copied = opt.state()
    opt.step(params, GRADS[1], 0.1)
    assert np.array_equal(live["exp_avg"], opt.state()["exp_avg"])
    assert not np.array_equal(copied["exp_avg"], live["exp_avg"])
    assert sgd({}).buffers() == {}
    assert list(sgd({"momentum": 0.9}).buffers()) == ["momentum"]


def test_adam_resumed_continues_its_step_count_and_moments_by_hand():
    """Resumed after two steps, Adam's third step uses the saved moments and the bias
    corrections of t = 3 (written out here); the moments without the count give another step."""
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.05
    first = adam({})
    params = P0.copy()
    for grad in GRADS[:2]:
        first.step(params, grad, lr)
    state = first.state()
    resumed = adam({})
    resumed.load_state(state)
    stepped = params.copy()
    resumed.step(stepped, GRADS[2], lr)
    m = b1 * state["exp_avg"] + (1 - b1) * GRADS[2]
    v = b2 * state["exp_avg_sq"] + (1 - b2) * GRADS[2] ** 2
    expected = params - lr * (m / (1 - b1**3)) / (np.sqrt(v / (1 - b2**3)) + eps)
    np.testing.assert_allclose(stepped, expected, rtol=1e-12, atol=0)
    assert resumed.steps == 3
    forgetful = adam({})
    forgetful.load_state({**state, "step": 0})
    other = params.copy()
    forgetful.step(other, GRADS[2], lr)
    assert not np.allclose(other, stepped, rtol=1e-6)
