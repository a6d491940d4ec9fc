"""Every built-in op against an independent float64 numpy reference, through the registry.

Table tests run every registered op's gradient-check examples (finite differences, float32,
shape rule, dy left untouched); per-op tests compare forward and backward with a reference
written here, and cover the edge cases (large logits, integer labels, dropout masks, errors).
"""

from __future__ import annotations

import math

import numpy as np
import pydantic
import pytest

from graphnet.errors import DataError, OpError, ShapeError
from graphnet.op import (
    INITIALIZERS, Context, Elementwise, Param, channels_first_fans, known_initializers, matrix_fans,
)
from graphnet.registry import default_registry

RTOL = 1e-12
ATOL = 1e-12
ALL_OPS = default_registry().names()
# underflow (exp(-2000) == 0) is expected and harmless; overflow, 0-division and nan are not
NEEDS_ALL_ERRORS = dict(over="raise", divide="raise", invalid="raise")

# any RuntimeWarning (overflow in exp, log of 0) fails the test
pytestmark = pytest.mark.filterwarnings("error")


def get(name):
    return default_registry().get(name)


def context(training=False, seed=0, dtype=np.float64):
    return Context(training=training, rng=np.random.default_rng(seed), dtype=np.dtype(dtype))


def run(name, attrs=None, training=False, dy=None, wants=None, seed=0, **arrays):
    """Forward then backward of op ``name``; dy defaults to ones. Returns (y, grads, dy)."""
    op = get(name)
    parsed = op.Attrs(**(attrs or {}))
    y, saved = op.forward(parsed, context(training, seed), **arrays)
    if dy is None:
        dy = np.ones_like(y)
    if wants is None:
        wants = frozenset(op.inputs + tuple(p.name for p in op.active_params(parsed))) - set(
            op.no_grad
        )
    grads = op.backward(parsed, saved, dy, frozenset(wants))
    return y, grads, dy


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


def rng():
    return np.random.default_rng(1234)


# ------------------------------------------------------------------------------------------------
# Table tests over every registered op, driven by each op's own gradient-check examples
# ------------------------------------------------------------------------------------------------


def per_sample(value):
    if isinstance(value, list):
        return [v.shape[1:] for v in value]
    return value.shape[1:]


def example_cases():
    """(op name, example index) for every example of every registered op."""
    cases = []
    for name in ALL_OPS:
        for index in range(len(get(name).examples(rng()))):
            cases.append(pytest.param(name, index, id=f"{name}-{index}"))
    return cases


def build_example(name, index, dtype=np.float64):
    op = get(name)
    example = op.examples(rng())[index]
    attrs = op.Attrs(**example.attrs)
    draw = np.random.default_rng(99)
    shapes = {role: per_sample(value) for role, value in example.inputs.items()}
    arrays = dict(example.inputs)
    for param in op.active_params(attrs):
        arrays[param.name] = draw.standard_normal(param.shape(attrs, shapes))

    def cast(value):
        if isinstance(value, list):
            return [cast(v) for v in value]
        if np.issubdtype(value.dtype, np.floating):
            return value.astype(dtype)
        return value

    arrays = {key: cast(value) for key, value in arrays.items()}
    return op, attrs, example.training, shapes, arrays


@pytest.mark.parametrize("name, index", example_cases())
def test_examples_pass_finite_differences(name, index):
    op, attrs, training, _, arrays = build_example(name, index)
    y, saved = op.forward(attrs, context(training), **arrays)
    projection = np.random.default_rng(7).standard_normal(y.shape)
    grads = op.backward(attrs, saved, projection, frozenset(arrays) - set(op.no_grad))

    def loss(values):
        out, _ = op.forward(attrs, context(training), **values)
        return float((out * projection).sum())

    step = 1e-6
    for key, value in arrays.items():
        if key in op.no_grad:
            continue
        targets = value if isinstance(value, list) else [value]
        analytic = grads[key] if isinstance(value, list) else [grads[key]]
        for target, got in zip(targets, analytic):
            numeric = np.zeros_like(target)
            for i in np.ndindex(target.shape):
                saved_value = target[i]
                target[i] = saved_value + step
                up = loss(arrays)
                target[i] = saved_value - step
                down = loss(arrays)
                target[i] = saved_value
                numeric[i] = (up - down) / (2 * step)
            np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-7, err_msg=f"{name} {key}")


@pytest.mark.parametrize("name, index", example_cases())
def test_shape_rule_matches_forward(name, index):
    op, attrs, training, shapes, arrays = build_example(name, index)
    y, _ = op.forward(attrs, context(training), **arrays)
    inputs_only = {role: shapes[role] for role in op.inputs}
    expected = () if op.reduces_batch else y.shape[1:]
    assert tuple(op.shape(attrs, **inputs_only)) == expected
    if op.reduces_batch:
        assert y.shape == ()


@pytest.mark.parametrize("name, index", example_cases())
def test_float32_in_float32_out(name, index):
    op, attrs, training, _, arrays = build_example(name, index, dtype=np.float32)
    y, saved = op.forward(attrs, context(training, dtype=np.float32), **arrays)
    assert y.dtype == np.float32
    dy = np.ones(y.shape, np.float32)
    grads = op.backward(attrs, saved, dy, frozenset(arrays) - set(op.no_grad))
    for key, grad in grads.items():
        for part in grad if isinstance(grad, list) else [grad]:
            assert part.dtype == np.float32, f"{name} gradient {key} is {part.dtype}"


@pytest.mark.parametrize("name, index", example_cases())
def test_backward_leaves_dy_alone(name, index):
    op, attrs, training, _, arrays = build_example(name, index)
    y, saved = op.forward(attrs, context(training), **arrays)
    dy = np.random.default_rng(3).standard_normal(y.shape)
    before = dy.copy()
    grads = op.backward(attrs, saved, dy, frozenset(arrays) - set(op.no_grad))
    np.testing.assert_array_equal(dy, before)
    # gradients may be dy itself or views of it (the executor never writes into them); what
    # matters is that they are arrays and that computing them left dy as it was
    for grad in grads.values():
        for part in grad if isinstance(grad, list) else [grad]:
            assert isinstance(part, np.ndarray), name


def test_registry_loads_every_op():
    assert default_registry().problems() == {}
    for name in ALL_OPS:
        op = get(name)
        assert op.version == 1
        assert op.summary()
        for field in op.Attrs.model_fields.values():
            assert field.description, f"{name} attribute without a description"


# ------------------------------------------------------------------------------------------------
# Per-op references
# ------------------------------------------------------------------------------------------------


def test_linear():
    r = rng()
    x, w, b = r.standard_normal((4, 5)), r.standard_normal((5, 3)), r.standard_normal(3)
    dy = r.standard_normal((4, 3))
    y, grads, _ = run("linear", {"units": 3}, x=x, w=w, b=b, dy=dy)
    close(y, np.einsum("ni,io->no", x, w) + b)
    close(grads["w"], np.einsum("ni,no->io", x, dy))
    close(grads["b"], np.einsum("no->o", dy))
    close(grads["x"], np.einsum("no,io->ni", dy, w))


def test_linear_without_bias_and_wants_subset():
    r = rng()
    x, w = r.standard_normal((4, 5)), r.standard_normal((5, 3))
    y, grads, dy = run("linear", {"units": 3, "bias": False}, x=x, w=w, wants={"w"})
    close(y, x @ w)
    assert "x" not in grads
    close(grads["w"], x.T @ dy)


def test_bias_add_broadcasts_over_all_leading_axes():
    r = rng()
    x, b, dy = r.standard_normal((3, 2, 4)), r.standard_normal(4), r.standard_normal((3, 2, 4))
    y, grads, _ = run("bias_add", x=x, b=b, dy=dy)
    expected = np.empty_like(x)
    for i in range(3):
        for j in range(2):
            expected[i, j] = x[i, j] + b
    close(y, expected)
    close(grads["x"], dy)
    close(grads["b"], dy.reshape(-1, 4).sum(axis=0))
    param = get("bias_add").params[0]
    assert param.init == "zeros" and param.decay is False


def test_matmul_matrices():
    r = rng()
    a, b = r.standard_normal((2, 3, 4)), r.standard_normal((2, 4, 5))
    dy = r.standard_normal((2, 3, 5))
    y, grads, _ = run("matmul", a=a, b=b, dy=dy)
    close(y, np.stack([a[i] @ b[i] for i in range(2)]))
    close(grads["a"], np.stack([dy[i] @ b[i].T for i in range(2)]))
    close(grads["b"], np.stack([a[i].T @ dy[i] for i in range(2)]))


def test_matmul_vector_times_matrix():
    r = rng()
    a, b, dy = r.standard_normal((3, 4)), r.standard_normal((3, 4, 2)), r.standard_normal((3, 2))
    y, grads, _ = run("matmul", a=a, b=b, dy=dy)
    close(y, np.einsum("nk,nkj->nj", a, b))
    close(grads["a"], np.einsum("nj,nkj->nk", dy, b))
    close(grads["b"], np.einsum("nk,nj->nkj", a, dy))
    assert get("matmul").shape(get("matmul").Attrs(), a=(4,), b=(4, 2)) == (2,)


def test_add():
    r = rng()
    a, b, dy = r.standard_normal((3, 4)), r.standard_normal((3, 4)), r.standard_normal((3, 4))
    y, grads, _ = run("add", a=a, b=b, dy=dy)
    close(y, a + b)
    close(grads["a"], dy)
    close(grads["b"], dy)


def test_relu_with_negatives_and_zero():
    x = np.array([[-2.0, -0.0, 0.0, 0.5, 3.0]])
    dy = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    y, grads, _ = run("relu", x=x, dy=dy)
    close(y, [[0.0, 0.0, 0.0, 0.5, 3.0]])
    close(grads["x"], [[0.0, 0.0, 0.0, 4.0, 5.0]])  # relu'(0) taken as 0


def test_leaky_relu():
    x = rng().standard_normal((4, 6))
    dy = rng().standard_normal((4, 6)) + 1
    y, grads, _ = run("leaky_relu", {"negative_slope": 0.2}, x=x, dy=dy)
    expected_y = np.array([[v if v > 0 else 0.2 * v for v in row] for row in x])
    expected_dx = np.array(
        [[g if v > 0 else 0.2 * g for v, g in zip(row, grow)] for row, grow in zip(x, dy)]
    )
    close(y, expected_y)
    close(grads["x"], expected_dx)
    y_default, _, _ = run("leaky_relu", x=np.array([[-1.0, 2.0]]))
    close(y_default, [[-0.01, 2.0]])


def sigmoid_reference(x):
    # independent of the op's formula: s(x) = (1 + tanh(x / 2)) / 2
    return 0.5 * (1 + np.tanh(x / 2))


def test_sigmoid():
    x = rng().standard_normal((4, 5)) * 4
    dy = rng().standard_normal((4, 5))
    y, grads, _ = run("sigmoid", x=x, dy=dy)
    s = sigmoid_reference(x)
    close(y, s)
    close(grads["x"], dy * s * (1 - s))


def test_sigmoid_is_stable_at_plus_minus_1000():
    x = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]])
    with np.errstate(**NEEDS_ALL_ERRORS):
        y, grads, _ = run("sigmoid", x=x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(grads["x"]))
    assert y[0, 0] == 0.0 and y[0, -1] == 1.0 and y[0, 2] == 0.5
    close(y, sigmoid_reference(x))


def test_tanh():
    x = rng().standard_normal((4, 5)) * 2
    dy = rng().standard_normal((4, 5))
    y, grads, _ = run("tanh", x=x, dy=dy)
    expected = np.vectorize(math.tanh)(x)
    close(y, expected)
    close(grads["x"], dy / np.cosh(x) ** 2)


def softmax_reference(x):
    """Row by row with math.exp on shifted values, independent of the op's vectorized code."""
    out = np.empty_like(x)
    for i, row in enumerate(x):
        top = max(row)
        exps = [math.exp(v - top) for v in row]
        total = math.fsum(exps)
        out[i] = [e / total for e in exps]
    return out


def test_softmax():
    x = rng().standard_normal((4, 5)) * 3
    dy = rng().standard_normal((4, 5))
    y, grads, _ = run("softmax", x=x, dy=dy)
    s = softmax_reference(x)
    close(y, s)
    # dx_i = sum_j dy_j ds_j/dx_i, ds_j/dx_i = s_j (delta_ij - s_i): the full Jacobian per row
    expected = np.stack([(np.diag(row) - np.outer(row, row)) @ g for row, g in zip(s, dy)])
    close(grads["x"], expected)


def test_log_softmax():
    x = rng().standard_normal((4, 5)) * 3
    dy = rng().standard_normal((4, 5))
    y, grads, _ = run("log_softmax", x=x, dy=dy)
    close(y, x - np.logaddexp.reduce(x, axis=-1, keepdims=True))
    s = softmax_reference(x)
    expected = np.stack([(np.eye(5) - np.outer(np.ones(5), row)).T @ g for row, g in zip(s, dy)])
    close(grads["x"], expected)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_is_stable_for_huge_logits(name):
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]])
    with np.errstate(**NEEDS_ALL_ERRORS):
        y, grads, _ = run(name, x=x, dy=np.ones_like(x))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(grads["x"]))
    if name == "softmax":
        close(y, [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    else:
        close(y, [[0.0, -2000.0, -1000.0], [-math.log(3)] * 3])


def cross_entropy_reference(logits, indices):
    """Mean over the batch of -log softmax at the true class, with math.log of a fsum."""
    total = 0.0
    for row, k in zip(logits, indices):
        top = max(row)
        log_z = top + math.log(math.fsum(math.exp(v - top) for v in row))
        total += log_z - row[k]
    return total / len(indices)


def test_softmax_cross_entropy_integer_and_one_hot_agree():
    r = rng()
    logits = r.standard_normal((6, 4)) * 3
    indices = r.integers(0, 4, size=6)
    one_hot = np.eye(4)[indices]
    dy = np.asarray(2.5)
    loss_int, grads_int, _ = run("softmax_cross_entropy", logits=logits, labels=indices, dy=dy)
    loss_hot, grads_hot, _ = run("softmax_cross_entropy", logits=logits, labels=one_hot, dy=dy)
    assert loss_int.shape == () and loss_hot.shape == ()
    close(loss_int, cross_entropy_reference(logits, indices))
    close(loss_hot, loss_int)
    expected = 2.5 * (softmax_reference(logits) - one_hot) / 6  # (s - y) / N, times dy
    close(grads_int["logits"], expected)
    close(grads_hot["logits"], expected)
    assert "labels" not in grads_int


def test_softmax_cross_entropy_soft_labels_and_smoothing():
    r = rng()
    logits = r.standard_normal((5, 3))
    soft = softmax_reference(r.standard_normal((5, 3)))
    loss, grads, _ = run("softmax_cross_entropy", logits=logits, labels=soft)
    log_p = np.log(softmax_reference(logits))
    close(loss, -(soft * log_p).sum() / 5)
    close(grads["logits"], (softmax_reference(logits) - soft) / 5)

    indices = r.integers(0, 3, size=5)
    smoothed = np.eye(3)[indices] * 0.8 + 0.2 / 3
    loss, grads, _ = run(
        "softmax_cross_entropy", {"label_smoothing": 0.2}, logits=logits, labels=indices
    )
    close(loss, -(smoothed * log_p).sum() / 5)
    close(grads["logits"], (softmax_reference(logits) - smoothed) / 5)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [1000.0, -1000.0, 0.0]])
    with np.errstate(**NEEDS_ALL_ERRORS):
        loss, grads, _ = run("softmax_cross_entropy", logits=logits, labels=np.array([1, 0]))
    assert np.isfinite(loss) and np.all(np.isfinite(grads["logits"]))
    close(loss, (2000.0 + 0.0) / 2)
    close(grads["logits"], [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]])


def test_class_labels_out_of_range_are_data_errors():
    with pytest.raises(DataError, match="class index 3, expected 0..2"):
        run("softmax_cross_entropy", logits=np.zeros((2, 3)), labels=np.array([0, 3]))
    with pytest.raises(DataError, match="class index -1"):
        run("cross_entropy", probs=np.full((2, 3), 1 / 3), labels=np.array([-1, 0]))


def test_cross_entropy_on_probabilities():
    r = rng()
    probs = softmax_reference(r.standard_normal((5, 4)))
    indices = r.integers(0, 4, size=5)
    dy = np.asarray(1.5)
    loss, grads, _ = run("cross_entropy", probs=probs, labels=indices, dy=dy)
    expected = sum(-math.log(probs[n, k]) for n, k in enumerate(indices)) / 5
    close(loss, expected)
    expected_grad = np.zeros_like(probs)
    for n, k in enumerate(indices):
        expected_grad[n, k] = -1.5 / (5 * probs[n, k])
    close(grads["probs"], expected_grad)
    loss_hot, grads_hot, _ = run("cross_entropy", probs=probs, labels=np.eye(4)[indices], dy=dy)
    close(loss_hot, loss)
    close(grads_hot["probs"], expected_grad)


def test_cross_entropy_clips_zero_probabilities():
    probs = np.array([[0.0, 1.0], [0.5, 0.5]])
    with np.errstate(**NEEDS_ALL_ERRORS):
        loss, grads, _ = run("cross_entropy", {"eps": 1e-8}, probs=probs, labels=np.array([0, 1]))
    close(loss, (-math.log(1e-8) - math.log(0.5)) / 2)
    close(grads["probs"], [[0.0, 0.0], [0.0, -1 / (2 * 0.5)]])  # 0 where clipped


def test_mse_reductions():
    r = rng()
    pred, target = r.standard_normal((4, 3)), r.standard_normal((4, 3))
    dy = np.asarray(0.7)
    total = sum((p - t) ** 2 for p, t in zip(pred.ravel(), target.ravel()))
    loss, grads, _ = run("mse", pred=pred, target=target, dy=dy)
    close(loss, total / 12)
    close(grads["pred"], 0.7 * 2 * (pred - target) / 12)
    loss, grads, _ = run("mse", {"reduction": "sum_per_sample"}, pred=pred, target=target, dy=dy)
    close(loss, total / 4)
    close(grads["pred"], 0.7 * 2 * (pred - target) / 4)


def test_mse_with_class_index_targets():
    r = rng()
    pred = r.standard_normal((4, 3))
    indices = np.array([0, 2, 1, 2])
    loss, grads, _ = run("mse", pred=pred, target=indices)
    loss_hot, grads_hot, _ = run("mse", pred=pred, target=np.eye(3)[indices])
    close(loss, ((pred - np.eye(3)[indices]) ** 2).mean())
    close(loss_hot, loss)
    close(grads["pred"], grads_hot["pred"])


def test_dropout_eval_is_identity():
    x = rng().standard_normal((3, 4))
    y, grads, dy = run("dropout", {"rate": 0.5}, training=False, x=x)
    close(y, x)
    close(grads["x"], dy)


def test_dropout_training_mask():
    x = rng().standard_normal((50, 40))
    dy = rng().standard_normal((50, 40))
    y1, grads1, _ = run("dropout", {"rate": 0.3}, training=True, seed=5, x=x, dy=dy)
    y2, _, _ = run("dropout", {"rate": 0.3}, training=True, seed=5, x=x, dy=dy)
    y3, _, _ = run("dropout", {"rate": 0.3}, training=True, seed=6, x=x, dy=dy)
    np.testing.assert_array_equal(y1, y2)  # same seed, same mask
    assert not np.array_equal(y1, y3)
    kept = y1 != 0
    close(y1[kept], x[kept] / 0.7)
    close(grads1["x"], np.where(kept, dy / 0.7, 0.0))


def test_context_from_a_seed_builds_the_same_generator_once():
    ctx = Context(True, dtype=np.float32, seed=[3, 4, 5])
    assert ctx.rng is ctx.rng
    np.testing.assert_array_equal(ctx.rng.random(5), np.random.default_rng([3, 4, 5]).random(5))
    x = rng().standard_normal((6, 7))
    op = get("dropout")
    attrs = op.Attrs(rate=0.4)
    lazy, _ = op.forward(attrs, Context(True, dtype=np.float64, seed=[1, 2]), x=x)
    eager, _ = op.forward(attrs, context(True, seed=[1, 2]), x=x)
    np.testing.assert_array_equal(lazy, eager)  # same mask either way


def test_dropout_statistics():
    ones = np.ones((1000, 1000))
    y, _, _ = run("dropout", {"rate": 0.3}, training=True, x=ones)
    kept_fraction = np.count_nonzero(y) / y.size
    assert abs(kept_fraction - 0.7) < 0.005
    assert abs(y.mean() - 1.0) < 0.01  # expectation preserved
    y_zero_rate, _, _ = run("dropout", {"rate": 0.0}, training=True, x=ones)
    close(y_zero_rate, ones)


def test_flatten():
    x = rng().standard_normal((3, 2, 4, 5))
    dy = rng().standard_normal((3, 40))
    y, grads, _ = run("flatten", x=x, dy=dy)
    expected = np.array([[v for v in sample.flat] for sample in x])
    close(y, expected)
    close(grads["x"], dy.reshape(3, 2, 4, 5))
    assert get("flatten").shape(get("flatten").Attrs(), x=(2, 4, 5)) == (40,)


def test_reshape_with_inferred_axis():
    x = rng().standard_normal((3, 2, 6))
    dy = rng().standard_normal((3, 4, 3))
    y, grads, _ = run("reshape", {"shape": [4, -1]}, x=x, dy=dy)
    assert y.shape == (3, 4, 3)
    close(y.ravel(), x.ravel())
    close(grads["x"], dy.reshape(3, 2, 6))
    op = get("reshape")
    assert op.shape(op.Attrs(shape=[-1]), x=(2, 6)) == (12,)
    assert op.shape(op.Attrs(shape=[3, 2, 2]), x=(2, 6)) == (3, 2, 2)


def test_concat():
    r = rng()
    a, b, c = r.standard_normal((3, 2)), r.standard_normal((3, 4)), r.standard_normal((3, 1))
    dy = r.standard_normal((3, 7))
    y, grads, _ = run("concat", xs=[a, b, c], dy=dy)
    close(y, np.hstack([a, b, c]))
    assert len(grads["xs"]) == 3
    close(grads["xs"][0], dy[:, :2])
    close(grads["xs"][1], dy[:, 2:6])
    close(grads["xs"][2], dy[:, 6:])


def test_concat_along_first_per_sample_axis():
    r = rng()
    a, b = r.standard_normal((2, 3, 5)), r.standard_normal((2, 1, 5))
    dy = r.standard_normal((2, 4, 5))
    y, grads, _ = run("concat", {"axis": 0}, xs=[a, b], dy=dy)
    close(y, np.stack([np.vstack([a[i], b[i]]) for i in range(2)]))
    close(grads["xs"][0], dy[:, :3])
    close(grads["xs"][1], dy[:, 3:])
    op = get("concat")
    assert op.shape(op.Attrs(axis=-2), xs=[(3, 5), (1, 5)]) == (4, 5)


# ------------------------------------------------------------------------------------------------
# Shape errors and attribute validation
# ------------------------------------------------------------------------------------------------


def shape_error(name, attrs=None, **shapes):
    op = get(name)
    with pytest.raises(ShapeError) as info:
        op.shape(op.Attrs(**(attrs or {})), **shapes)
    assert info.value.hint
    return info.value.message


def test_shape_errors_name_roles_and_sizes():
    message = shape_error("add", a=(3, 4), b=(4, 3))
    assert "[3, 4]" in message and "[4, 3]" in message and "input a" in message

    message = shape_error("linear", {"units": 10, "in_features": 100}, x=(200,))
    assert message == "input x has 200 features, weight expects 100"

    message = shape_error("concat", xs=[(3, 2), (3, 4), (2, 4)])
    assert "xs[2]" in message and "[2, 4]" in message and "[3, 2]" in message

    message = shape_error("reshape", {"shape": [5, 3]}, x=(4, 4))
    assert "[5, 3]" in message and "15" in message and "16" in message
    message = shape_error("reshape", {"shape": [5, -1]}, x=(4, 4))
    assert "not a multiple of 5" in message

    message = shape_error("softmax_cross_entropy", logits=(10,), labels=(9,))
    assert "labels" in message and "[9]" in message and "[10]" in message
    message = shape_error("softmax_cross_entropy", logits=(2, 5), labels=())
    assert "logits" in message and "[2, 5]" in message
    message = shape_error("cross_entropy", probs=(10,), labels=(10, 1))
    assert "[10, 1]" in message
    message = shape_error("mse", pred=(3,), target=(4,))
    assert "[3]" in message and "[4]" in message

    message = shape_error("matmul", a=(3, 4), b=(5, 2))
    assert "inner size 4" in message and "expects 5" in message
    message = shape_error("concat", {"axis": 2}, xs=[(3, 2), (3, 4)])
    assert "axis 2" in message


def test_shape_rules_accept_class_index_labels():
    for name, scores in [("softmax_cross_entropy", "logits"), ("cross_entropy", "probs")]:
        op = get(name)
        assert op.shape(op.Attrs(), **{scores: (10,), "labels": ()}) == ()
        assert op.shape(op.Attrs(), **{scores: (10,), "labels": (10,)}) == ()
    assert get("mse").shape(get("mse").Attrs(), pred=(10,), target=()) == ()


@pytest.mark.parametrize(
    "name, attrs",
    [
        ("dropout", {"rate": 1.5}),
        ("dropout", {"rate": 1.0}),
        ("dropout", {"rate": -0.1}),
        ("leaky_relu", {"negative_slope": -0.1}),
        ("linear", {"units": 0}),
        ("linear", {"units": 3, "unit": 3}),
        ("reshape", {"shape": [-1, -1]}),
        ("reshape", {"shape": [0, 3]}),
        ("cross_entropy", {"eps": 0}),
        ("softmax_cross_entropy", {"label_smoothing": 1.0}),
        ("softmax", {"axis": 0}),
        ("mse", {"reduction": "sum"}),
        ("relu", {"alpha": 1}),
    ],
)
def test_bad_attributes_are_validation_errors(name, attrs):
    with pytest.raises(pydantic.ValidationError):
        get(name).Attrs(**attrs)


# ------------------------------------------------------------------------------------------------
# Parameters: initial values with the fans of their layout
# ------------------------------------------------------------------------------------------------


def draw_param(param, shape, seed=5, dtype=np.float64, attrs=None):
    return param.initial_value(attrs, np.random.default_rng(seed), shape, dtype)


@pytest.mark.parametrize("name", ["zeros", "ones", "he_normal", "glorot_uniform", "lecun_normal"])
def test_default_fans_give_the_values_the_initializer_table_gives(name):
    # models saved before Param had `fans` are initialized bit for bit as before
    param = Param("w", shape=lambda attrs, shapes: (6, 4), init=name)
    expected = INITIALIZERS[name](np.random.default_rng(5), (6, 4), np.dtype(np.float32))
    actual = draw_param(param, (6, 4), dtype=np.float32)
    assert actual.dtype == np.float32
    np.testing.assert_array_equal(actual, expected)


def test_a_convolution_kernel_counts_its_fans_over_the_kernel():
    assert matrix_fans((784, 800)) == (784, 800)
    assert matrix_fans((10,)) == (10, 10)
    assert channels_first_fans((8, 3, 5, 5)) == (75, 200)
    assert channels_first_fans((4, 2)) == (2, 4)  # (out, in), no kernel
    shape = (8, 3, 5, 5)
    he = Param("w", shape=lambda attrs, shapes: shape, init="he_normal", fans=channels_first_fans)
    np.testing.assert_allclose(
        draw_param(he, shape), np.random.default_rng(5).standard_normal(shape) * np.sqrt(2 / 75), rtol=1e-15
    )
    glorot = Param("w", shape=he.shape, init=lambda attrs: "glorot_uniform", fans=channels_first_fans)
    limit = np.sqrt(6 / (75 + 200))
    np.testing.assert_allclose(
        draw_param(glorot, shape), np.random.default_rng(5).uniform(-limit, limit, shape), rtol=1e-15
    )
    # the matrix rule would have taken fan_in = 8 * 3 * 5 = 120 from the same kernel
    assert not np.allclose(draw_param(Param("w", shape=he.shape, init="he_normal"), shape), draw_param(he, shape))


def test_unknown_and_added_initializers(monkeypatch):
    with pytest.raises(OpError) as info:
        draw_param(Param("w", shape=lambda attrs, shapes: (2,), init="he_uniform"), (2,))
    assert info.value.message == "parameter 'w' asks for unknown initializer 'he_uniform'"
    assert info.value.hint == "known: " + ", ".join(known_initializers())
    # a name other code added to the table (how plugins did it before `fans`) is still honoured
    monkeypatch.setitem(INITIALIZERS, "sevens", lambda rng, shape, dtype: np.full(shape, 7, dtype))
    assert "sevens" in known_initializers()
    np.testing.assert_array_equal(draw_param(Param("w", shape=None, init="sevens"), (2, 3)), np.full((2, 3), 7.0))


# ------------------------------------------------------------------------------------------------
# The elementwise base: the shape rule and the gradient-check cases built in
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "leaky_relu"])
def test_the_activations_are_elementwise_ops(name):
    op = get(name)
    assert isinstance(op, Elementwise) and op.inputs == ("x",)
    assert op.shape(op.Attrs(), x=(2, 7)) == (2, 7)
    assert type(op).__dict__.get("shape") is None  # the base's rule, not a copy


def test_the_minimal_elementwise_op_is_about_ten_lines():
    import inspect

    from graphnet.ops.relu import Relu

    lines = [line for line in inspect.getsource(Relu).splitlines() if line.strip()]
    body = [line for line in lines if not line.strip().startswith(("def onnx", 'return b.node("Relu"'))]
    assert len(body) <= 11, "\n".join(body)
