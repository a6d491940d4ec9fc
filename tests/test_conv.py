"""The graphnet-conv plugin: conv2d, max_pool2d, avg_pool2d, global_avg_pool and batch_norm.

- Against plain loops written here in numpy (no torch needed): forward and every gradient on
  small cases with stride, padding (uneven too), dilation and ties.
- Against PyTorch (marked ``torch``): a table of configurations, float64 (tight) and float32.
- The shape rules and attribute checks: one error per mistake, with the node, the line and the
  numbers, before any compute.
- A whole CNN spec: validates, passes the finite-difference check end to end, runs in float32,
  exports to ONNX and runs in onnxruntime.
- batch_norm: against PyTorch in training and evaluation (output, every gradient, the running
  statistics after several steps); in a CNN: gradient check, ONNX with its running statistics,
  a model file round trip and a killed run resumed bit for bit.

The registry-wide tests (test_gradcheck.py, test_ops.py, test_onnx.py) run these ops through their
own examples as well, once the plugin is installed.
"""

from __future__ import annotations

import itertools
import textwrap

import numpy as np
import pytest

pytest.importorskip(
    "graphnet_conv",
    reason="the graphnet-conv plugin is not installed (pip install -e plugins/graphnet-conv)",
)

from graphnet import GraphnetError, Model, build_graph, parse_spec  # noqa: E402
from graphnet.errors import ShapeError  # noqa: E402
from graphnet.gradcheck import TOLERANCE, check_graph  # noqa: E402
from graphnet.op import Context  # noqa: E402
from graphnet.registry import default_registry  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # conftest.py skips the tests marked torch (a failure in CI)
    torch = F = None

OPS = ("conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool", "batch_norm")


# ----------------------------------------------------------------------------------------------
# Running one op as the executor does
# ----------------------------------------------------------------------------------------------


def run(name, attrs, dy_seed=5, dtype=np.float64, **arrays):
    """Forward then backward of op ``name`` with every gradient wanted; dy is standard normal.
    Returns (y, grads, dy)."""
    op = default_registry().get(name)
    parsed = op.Attrs(**attrs)
    arrays = {key: value.astype(dtype) for key, value in arrays.items() if value is not None}
    y, saved = op.forward(parsed, Context(training=True, dtype=dtype), **arrays)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(dtype)
    grads = op.backward(parsed, saved, dy, frozenset(arrays))
    return y, grads, dy


def window_of(name, attrs):
    """(kernel, stride, dilation, pads) as the op understood its attributes."""
    window = default_registry().get(name).Attrs(**attrs).window()
    return window.kernel, window.stride, window.dilation, window.pads


# ----------------------------------------------------------------------------------------------
# Plain loops: the definitions, one output element at a time
# ----------------------------------------------------------------------------------------------


def padded(x, pads, fill=0.0):
    top, bottom, left, right = pads
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), fill)
    out[:, :, top : top + h, left : left + w] = x
    return out


def out_size(size, before, after, kernel, stride, dilation):
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


def loop_conv2d(x, w, b, dy, kernel, stride, dilation, pads):
    """y, dx, dw, db of a convolution by its definition:
    y[n, o, p, q] = b[o] + sum_{c, i, j} w[o, c, i, j] xpad[n, c, p sh + i dh, q sw + j dw]."""
    n_, c_, h, w_ = x.shape
    o_ = w.shape[0]
    (kh, kw), (sh, sw), (dh, dw_) = kernel, stride, dilation
    oh = out_size(h, pads[0], pads[1], kh, sh, dh)
    ow = out_size(w_, pads[2], pads[3], kw, sw, dw_)
    xp = padded(x, pads)
    y = np.zeros((n_, o_, oh, ow))
    dxp, dw, db = np.zeros_like(xp), np.zeros_like(w), np.zeros(o_)
    for n, o, p, q in itertools.product(range(n_), range(o_), range(oh), range(ow)):
        y[n, o, p, q] = b[o]
        db[o] += dy[n, o, p, q]
        for c, i, j in itertools.product(range(c_), range(kh), range(kw)):
            row, col = p * sh + i * dh, q * sw + j * dw_
            y[n, o, p, q] += w[o, c, i, j] * xp[n, c, row, col]
            dxp[n, c, row, col] += w[o, c, i, j] * dy[n, o, p, q]
            dw[o, c, i, j] += xp[n, c, row, col] * dy[n, o, p, q]
    top, left = pads[0], pads[2]
    return y, dxp[:, :, top : top + h, left : left + w_], dw, db


def loop_pool(x, dy, kernel, stride, pads, kind):
    """y, dx of max or average pooling by the definition; max: the first of equal maxima (in
    row-major order) gets the gradient, padding never does; average: divisor kh * kw always."""
    n_, c_, h, w_ = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    oh = out_size(h, pads[0], pads[1], kh, sh, 1)
    ow = out_size(w_, pads[2], pads[3], kw, sw, 1)
    xp = padded(x, pads, fill=-np.inf if kind == "max" else 0.0)
    y = np.zeros((n_, c_, oh, ow))
    dxp = np.zeros_like(xp)
    for n, c, p, q in itertools.product(range(n_), range(c_), range(oh), range(ow)):
        cells = [(p * sh + i, q * sw + j) for i in range(kh) for j in range(kw)]
        if kind == "max":
            values = [xp[n, c, row, col] for row, col in cells]
            first = int(np.argmax(values))  # numpy's argmax: the first of equal maxima
            y[n, c, p, q] = values[first]
            dxp[(n, c) + cells[first]] += dy[n, c, p, q]
        else:
            y[n, c, p, q] = sum(xp[n, c, row, col] for row, col in cells) / (kh * kw)
            for row, col in cells:
                dxp[n, c, row, col] += dy[n, c, p, q] / (kh * kw)
    top, left = pads[0], pads[2]
    return y, dxp[:, :, top : top + h, left : left + w_]


def close(actual, expected, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


LOOP_CONVS = [
    ({"channels": 3, "kernel": 3, "padding": 1}, (2, 2, 5, 4)),
    ({"channels": 2, "kernel": [3, 2], "stride": [2, 3], "padding": [2, 1], "dilation": [1, 2]},
     (2, 3, 7, 8)),
    ({"channels": 2, "kernel": [2, 3], "padding": "same", "bias": False}, (1, 2, 4, 5)),  # uneven pads
]


@pytest.mark.parametrize("attrs, shape", LOOP_CONVS)
def test_conv2d_matches_the_definition(attrs, shape):
    r = np.random.default_rng(0)
    kernel, stride, dilation, pads = window_of("conv2d", attrs)
    x = r.standard_normal(shape)
    w = r.standard_normal((attrs["channels"], shape[1], *kernel))
    b = r.standard_normal(attrs["channels"]) if attrs.get("bias", True) else None
    y, grads, dy = run("conv2d", attrs, x=x, w=w, b=b)
    zeros = np.zeros(attrs["channels"])
    expected = loop_conv2d(x, w, zeros if b is None else b, dy, kernel, stride, dilation, pads)
    close(y, expected[0])
    close(grads["x"], expected[1])
    close(grads["w"], expected[2])
    if b is not None:
        close(grads["b"], expected[3])
    else:
        assert "b" not in grads


def test_same_padding_keeps_the_size_and_puts_the_odd_row_at_the_bottom():
    assert window_of("conv2d", {"channels": 1, "kernel": [2, 3], "padding": "same"})[3] == (0, 1, 1, 1)
    dilated = {"channels": 1, "kernel": 4, "dilation": 3, "padding": "same"}
    assert window_of("conv2d", dilated)[3] == (4, 5, 4, 5)
    y, _, _ = run("conv2d", {"channels": 2, "kernel": [2, 4], "padding": "same"},
                  x=np.ones((1, 1, 5, 6)), w=np.ones((2, 1, 2, 4)), b=np.zeros(2))
    assert y.shape == (1, 2, 5, 6)
    # the top-left output sees rows 0-1 and columns -1..2 (one column of padding on the left)
    assert y[0, 0, 0, 0] == 6 and y[0, 0, -1, 0] == 3 and y[0, 0, -1, -1] == 2


POOL_LOOPS = [
    ({"kernel": 2}, (2, 2, 5, 7)),  # the odd last row and column are dropped
    ({"kernel": 3, "stride": 2, "padding": 1}, (1, 2, 6, 7)),  # overlapping windows, padding
    ({"kernel": [2, 3], "stride": [3, 1], "padding": [1, 0]}, (2, 1, 7, 5)),  # gaps between rows
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("attrs, shape", POOL_LOOPS)
def test_pooling_matches_the_definition(kind, attrs, shape):
    r = np.random.default_rng(1)
    x = r.standard_normal(shape)
    if kind == "max":  # plenty of ties, negative values, and windows that are all padding but one
        x = r.integers(-3, 2, shape).astype(np.float64)
    kernel, stride, _, pads = window_of(f"{kind}_pool2d", attrs)
    y, grads, dy = run(f"{kind}_pool2d", attrs, x=x)
    expected_y, expected_dx = loop_pool(x, dy, kernel, stride, pads, kind)
    close(y, expected_y)
    close(grads["x"], expected_dx)


def test_max_pool_gives_a_tie_to_the_first_element():
    x = np.array([[[[1.0, 1.0], [1.0, 1.0]]]])
    y, grads, dy = run("max_pool2d", {"kernel": 2}, x=x)
    assert y.item() == 1.0
    np.testing.assert_array_equal(grads["x"][0, 0], [[dy.item(), 0.0], [0.0, 0.0]])


def test_global_avg_pool_is_the_mean_of_each_channel():
    x = np.random.default_rng(2).standard_normal((3, 4, 5, 2))
    y, grads, dy = run("global_avg_pool", {}, x=x)
    close(y, x.mean(axis=(2, 3)))
    close(grads["x"], np.broadcast_to(dy[:, :, None, None] / 10, x.shape))


def test_conv2d_computes_only_the_wanted_gradients():
    op = default_registry().get("conv2d")
    attrs = op.Attrs(channels=2, kernel=3)
    r = np.random.default_rng(3)
    arrays = {"x": r.standard_normal((2, 1, 5, 5)), "w": r.standard_normal((2, 1, 3, 3)), "b": np.zeros(2)}
    y, saved = op.forward(attrs, Context(training=True), **arrays)
    assert set(op.backward(attrs, saved, np.ones_like(y), frozenset({"w", "b"}))) == {"w", "b"}


@pytest.mark.parametrize("name, attrs, shape", [
    ("conv2d", {"channels": 3, "kernel": 3, "stride": 2, "padding": 1}, (2, 2, 7, 6)),
    ("max_pool2d", {"kernel": 3, "stride": 2, "padding": 1}, (2, 3, 7, 6)),
    ("avg_pool2d", {"kernel": 2}, (2, 3, 7, 6)),
    ("global_avg_pool", {}, (2, 3, 7, 6)),
])
def test_float32_stays_float32(name, attrs, shape):
    r = np.random.default_rng(4)
    arrays = {"x": r.standard_normal(shape)}
    if name == "conv2d":
        arrays |= {"w": r.standard_normal((3, 2, 3, 3)), "b": r.standard_normal(3)}
    y, grads, _ = run(name, attrs, dtype=np.float32, **arrays)
    assert y.dtype == np.float32
    assert {key: grad.dtype for key, grad in grads.items()} == {key: np.float32 for key in arrays}
    y64, grads64, _ = run(name, attrs, **arrays)
    close(y, y64, rtol=1e-5, atol=1e-5)
    for key in arrays:
        close(grads[key], grads64[key], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Against PyTorch
# ----------------------------------------------------------------------------------------------

TORCH_TOLERANCE = {np.float64: 1e-11, np.float32: 2e-6}  # relative to the largest |value|
DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]

CONV_TABLE = [
    ({"channels": 4, "kernel": 3}, (2, 3, 8, 7)),
    ({"channels": 4, "kernel": 3, "padding": "valid"}, (1, 2, 5, 5)),
    ({"channels": 5, "kernel": [3, 5], "stride": [2, 1], "padding": [1, 2]}, (3, 2, 9, 10)),
    ({"channels": 3, "kernel": 3, "stride": 2, "padding": 1, "dilation": 2}, (2, 4, 11, 9)),
    ({"channels": 2, "kernel": [4, 2], "padding": "same", "dilation": [1, 3]}, (2, 3, 7, 8)),
    ({"channels": 6, "kernel": 5, "padding": 2, "bias": False}, (1, 1, 12, 12)),
    ({"channels": 8, "kernel": 1, "stride": 3}, (2, 5, 7, 7)),
    ({"channels": 16, "kernel": 5, "padding": 2}, (4, 8, 14, 14)),  # a real layer's shape
]
POOL_TABLE = [
    ({"kernel": 2}, (2, 3, 8, 8)),
    ({"kernel": 2}, (2, 3, 7, 9)),
    ({"kernel": 3, "stride": 2, "padding": 1}, (2, 2, 9, 8)),
    ({"kernel": [3, 2], "stride": [1, 2], "padding": [1, 0]}, (1, 3, 6, 7)),
    ({"kernel": 3, "stride": 1, "padding": 1}, (2, 2, 5, 5)),
    ({"kernel": [2, 3], "stride": [3, 4]}, (2, 2, 8, 11)),
]


def to_numpy(tensor):
    return tensor.detach().numpy()


def torch_close(actual, expected, dtype, what):
    assert actual.dtype == dtype, what
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TORCH_TOLERANCE[dtype] * scale, err_msg=what)


def torch_padding(attrs):
    padding = attrs.get("padding", 0)
    return padding if isinstance(padding, str) else tuple(np.broadcast_to(padding, 2).tolist())


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")  # torch's
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("attrs, shape", CONV_TABLE, ids=[str(a) for a, _ in CONV_TABLE])
def test_conv2d_against_torch(attrs, shape, dtype):
    r = np.random.default_rng(10)
    kernel = window_of("conv2d", attrs)[0]
    x = r.standard_normal(shape).astype(dtype)
    w = r.standard_normal((attrs["channels"], shape[1], *kernel)).astype(dtype)
    b = r.standard_normal(attrs["channels"]).astype(dtype) if attrs.get("bias", True) else None
    y, grads, dy = run("conv2d", attrs, dtype=dtype, x=x, w=w, b=b)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if b is not None else None
    ty = F.conv2d(tx, tw, tb, stride=attrs.get("stride", 1), padding=torch_padding(attrs),
                  dilation=attrs.get("dilation", 1))
    ty.backward(torch.tensor(dy))
    torch_close(y, to_numpy(ty), dtype, "y")
    torch_close(grads["x"], to_numpy(tx.grad), dtype, "dx")
    torch_close(grads["w"], to_numpy(tw.grad), dtype, "dw")
    if tb is not None:
        torch_close(grads["b"], to_numpy(tb.grad), dtype, "db")


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("attrs, shape", POOL_TABLE, ids=[str(a) for a, _ in POOL_TABLE])
def test_pooling_against_torch(attrs, shape, kind, dtype):
    r = np.random.default_rng(11)
    x = r.standard_normal(shape).astype(dtype)
    if kind == "max" and shape[-1] % 2:  # ties (integers) on half the table
        x = r.integers(-3, 3, shape).astype(dtype)
    y, grads, dy = run(f"{kind}_pool2d", attrs, dtype=dtype, x=x)
    tx = torch.tensor(x, requires_grad=True)
    stride = attrs.get("stride", attrs["kernel"])
    if kind == "max":
        ty = F.max_pool2d(tx, attrs["kernel"], stride, torch_padding(attrs))
    else:
        ty = F.avg_pool2d(tx, attrs["kernel"], stride, torch_padding(attrs), count_include_pad=True)
    ty.backward(torch.tensor(dy))
    torch_close(y, to_numpy(ty), dtype, "y")
    torch_close(grads["x"], to_numpy(tx.grad), dtype, "dx")


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_global_avg_pool_against_torch(dtype):
    x = np.random.default_rng(12).standard_normal((3, 5, 7, 6)).astype(dtype)
    y, grads, dy = run("global_avg_pool", {}, dtype=dtype, x=x)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.adaptive_avg_pool2d(tx, 1).flatten(1)
    ty.backward(torch.tensor(dy))
    torch_close(y, to_numpy(ty), dtype, "y")
    torch_close(grads["x"], to_numpy(tx.grad), dtype, "dx")


# ----------------------------------------------------------------------------------------------
# Shape rules and attributes: caught when the spec loads
# ----------------------------------------------------------------------------------------------


def errors_of(nodes: str, image=(1, 3, 3)) -> list[GraphnetError]:
    """Every error build_graph reports for a spec with one image input and ``nodes``."""
    text = textwrap.dedent(f"""\
        name: broken
        inputs: {{image: {{shape: {list(image)}}}}}
        nodes:
        """) + textwrap.indent(textwrap.dedent(nodes), "  ")
    with pytest.raises(GraphnetError) as caught:
        build_graph(parse_spec(text, file="spec.yaml"))
    return caught.value.all()


def one_error(nodes: str, image=(1, 3, 3)) -> GraphnetError:
    (error,) = errors_of(nodes, image)
    return error


@pytest.mark.parametrize("node, message, hint", [
    ("{op: conv2d, inputs: {x: image}, attrs: {channels: 4, kernel: 5}}",
     "kernel 5 with padding 0 does not fit input height and width 3",
     "use a kernel of at most 3, padding of at least 1 on each side or a larger input"),
    ("{op: conv2d, inputs: {x: image}, attrs: {channels: 4, kernel: [2, 5]}}",
     "kernel 5 with padding 0 does not fit input width 3",
     "for the width: use a kernel of at most 3, padding of at least 1 on each side or a larger input"),
    ("{op: conv2d, inputs: {x: image}, attrs: {channels: 4, kernel: 3, dilation: 2, padding: [0, 1]}}",
     "kernel 3 and dilation 2 (a span of 5) with padding 0 does not fit input height 3",
     "for the height: use a kernel of at most 2, padding of at least 1 on each side or a larger input"),
    ("{op: conv2d, inputs: {x: image}, attrs: {channels: 4, kernel: 3, in_channels: 3}}",
     "input x has 1 channel, weight expects 3", "set in_channels to 1 or fix the layer feeding it"),
    ("{op: max_pool2d, inputs: {x: image}, attrs: {kernel: 7, padding: 1}}",
     "kernel 7 with padding 1 does not fit input height and width 3",
     "use a kernel of at most 5, padding of at least 2 on each side or a larger input"),
    ("{op: avg_pool2d, inputs: {x: image}, attrs: {kernel: 9, padding: 2}}",
     "kernel 9 with padding 2 does not fit input height and width 3",
     "use a kernel of at most 7, padding of at least 3 on each side or a larger input"),
])
def test_a_window_that_does_not_fit_is_a_shape_error_with_the_numbers(node, message, hint):
    error = one_error(f"n: {node}\n")
    assert isinstance(error, ShapeError)
    assert (error.path, error.line, error.message) == ("nodes.n", 4, message)
    assert error.hint == hint


def test_images_are_required_and_the_hint_says_how():
    error = one_error("n: {op: conv2d, inputs: {x: image}, attrs: {channels: 2, kernel: 3}}\n", image=(784,))
    assert error.message == "input x has per-sample shape [784], conv2d needs [channels, height, width]"
    assert error.hint == "put a reshape node before it: {op: reshape, attrs: {shape: [1, 28, 28]}}"
    error = one_error("n: {op: global_avg_pool, inputs: {x: image}}\n", image=(5, 6))
    assert error.hint == "put a reshape node before it: {op: reshape, attrs: {shape: [1, 5, 6]}}"
    error = one_error("n: {op: max_pool2d, inputs: {x: image}, attrs: {kernel: 2}}\n", image=(1, 2, 3, 4))
    assert "max_pool2d needs [channels, height, width]" in error.message


@pytest.mark.parametrize("attrs, path, words", [
    ("{kernel: [3]}", "nodes.n.attrs.kernel",
     "must be an integer from 1 to 16,777,216 or a list [height, width] of two; received [3]"),
    ("{kernel: 0}", "nodes.n.attrs.kernel", "must be an integer from 1"),
    ("{kernel: 2, stride: [1, 0]}", "nodes.n.attrs.stride", "received [1, 0]"),
    ("{kernel: 2.5}", "nodes.n.attrs.kernel", "received 2.5"),
    ("{kernel: 3, padding: 2}", "nodes.n.attrs",
     "padding 2 is more than half of kernel 3, so a window could hold padding only"),
    ("{kernel: [4, 3], padding: [2, 2]}", "nodes.n.attrs",
     "padding [2, 2] is more than half of kernel [4, 3]"),
    ("{kernel: 2, dilation: 2}", "nodes.n.attrs.dilation", "op 'max_pool2d' has no attribute 'dilation'"),
])
def test_bad_pool_attributes_are_one_error_each(attrs, path, words):
    error = one_error(f"n: {{op: max_pool2d, inputs: {{x: image}}, attrs: {attrs}}}\n", image=(1, 8, 8))
    assert error.path == path
    assert words in str(error)


@pytest.mark.parametrize("attrs, path, words", [
    ("{channels: 2, kernel: 3, stride: 2, padding: same}", "nodes.n.attrs",
     "padding 'same' needs stride 1 (with stride 2 the output is smaller than the input)"),
    ("{channels: 2, kernel: 3, padding: full}", "nodes.n.attrs.padding",
     "or a list [height, width] of two, or 'same' or 'valid'; received 'full'"),
    ("{channels: 2, kernel: 3, padding: -1}", "nodes.n.attrs.padding", "must be an integer from 0"),
    ("{channels: 0, kernel: 3}", "nodes.n.attrs.channels", "greater than 0"),
    ("{kernel: 3}", "nodes.n.attrs.channels", "op 'conv2d' needs attribute 'channels'"),
])
def test_bad_conv_attributes_are_one_error_each(attrs, path, words):
    error = one_error(f"n: {{op: conv2d, inputs: {{x: image}}, attrs: {attrs}}}\n", image=(1, 8, 8))
    assert error.path == path
    assert words in str(error)


def test_every_layer_that_does_not_fit_is_reported_once(run_cli, write_spec):
    path = write_spec("""\
        name: broken
        inputs: {image: {shape: [1, 28, 28]}}
        nodes:
          c1: {op: conv2d, inputs: {x: image}, attrs: {channels: 8, kernel: 5}}
          p1: {op: max_pool2d, inputs: {x: c1}, attrs: {kernel: 4}}
          c2: {op: conv2d, inputs: {x: p1}, attrs: {channels: 8, kernel: 7}}
          p2: {op: max_pool2d, inputs: {x: c2}, attrs: {kernel: 2}}
          side: {op: conv2d, inputs: {x: image}, attrs: {channels: 8, kernel: 3, stride: 9, dilation: 15}}
        outputs: [p2, side]
    """)
    result = run_cli("validate", path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"graphnet: error: {path}:6: nodes.c2: kernel 7 with padding 0 does not fit input height and "
        "width 6 (use a kernel of at most 6, padding of at least 1 on each side or a larger input)",
        f"graphnet: error: {path}:8: nodes.side: kernel 3 and dilation 15 (a span of 31) with padding 0 "
        "does not fit input height and width 28 (use a kernel of at most 2, padding of at least 2 on "
        "each side or a larger input)",
    ]


# ----------------------------------------------------------------------------------------------
# A whole CNN
# ----------------------------------------------------------------------------------------------

CNN = """
name: small-cnn
inputs:
  image: {shape: [2, 10, 9]}
  label: {shape: [], dtype: int64}
nodes:
  conv1: {op: conv2d, inputs: {x: image}, attrs: {channels: 3, kernel: 3, padding: 1}}
  relu1: {op: relu, inputs: {x: conv1}}
  pool1: {op: max_pool2d, inputs: {x: relu1}, attrs: {kernel: 2}}
  conv2: {op: conv2d, inputs: {x: pool1}, attrs: {channels: 4, kernel: [3, 2], padding: same}}
  relu2: {op: relu, inputs: {x: conv2}}
  pool2: {op: avg_pool2d, inputs: {x: relu2}, attrs: {kernel: 2, stride: 1}}
  flat:  {op: flatten, inputs: {x: pool2}}
  gap:   {op: global_avg_pool, inputs: {x: relu2}}
  both:  {op: concat, inputs: {xs: [flat, gap]}}
  fc:    {op: linear, inputs: {x: both}, attrs: {units: 5}}
  loss:  {op: softmax_cross_entropy, inputs: {logits: fc, labels: label}}
outputs: [fc, loss]
"""


def test_the_plugin_registers_its_ops_through_entry_points():
    registry = default_registry()
    for name in OPS:
        assert registry.source(name).distribution == "graphnet-conv"
        assert registry.get(name).name == name


def test_a_cnn_validates_with_the_shapes_of_every_layer():
    graph = build_graph(parse_spec(CNN))
    shapes = {name: graph.shape_of(name) for name in graph.nodes}
    assert shapes["conv1"] == (3, 10, 9) and shapes["pool1"] == (3, 5, 4)
    assert shapes["conv2"] == (4, 5, 4) and shapes["pool2"] == (4, 4, 3)
    assert shapes["gap"] == (4,) and shapes["both"] == (52,) and shapes["fc"] == (5,)
    assert graph.nodes["conv2"].param_shapes == {"w": (4, 3, 3, 2), "b": (4,)}


def test_a_cnn_passes_the_gradient_check_end_to_end():
    result = check_graph(build_graph(parse_spec(CNN)), seed=1)
    assert result.ok, result.failures()
    assert set(result.roles) == {f"{node}.{p}" for node in ("conv1", "conv2", "fc") for p in ("w", "b")}
    for role in result.roles.values():
        assert role.checked > 0 and role.worst <= TOLERANCE


def test_a_cnn_trains_in_float32_from_fan_in_scaled_weights():
    model = Model.from_spec(parse_spec(CNN), seed=0)
    # he_normal with the convolution's fan-in, in_channels * kh * kw (not graphnet's matrix rule)
    for name, fan_in in (("conv1.w", 2 * 3 * 3), ("conv2.w", 3 * 3 * 2)):
        std = float(model.params[name].std())
        assert abs(std - np.sqrt(2 / fan_in)) < 0.35 * np.sqrt(2 / fan_in), (name, std)
    r = np.random.default_rng(0)
    batch = {"image": r.standard_normal((16, 2, 10, 9)).astype(np.float32), "label": r.integers(0, 5, 16)}
    losses = []
    for step in range(30):
        out = model.forward(batch, ("loss",), training=True, step=step)
        model.backward("loss")
        assert all(grad.dtype == np.float32 for grad in model.grads.values())
        model.flat_params[...] -= np.float32(0.05) * model.flat_grads
        losses.append(float(out["loss"]))
    assert losses[-1] < 0.5 * losses[0]  # it fits 16 examples


def test_a_cnn_exports_to_onnx_and_runs_like_graphnet():
    pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install 'graphnet[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="running the export needs onnxruntime")
    from graphnet.export.onnx import export_onnx

    model = Model.from_spec(parse_spec(CNN), seed=3)
    r = np.random.default_rng(3)
    for name, value in model.params.items():  # biases start at zero: make them count
        model.set_param(name, value + 0.1 * r.standard_normal(value.shape))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(export_onnx(model, outputs=["fc", "relu2"]), options,
                                   providers=["CPUExecutionProvider"])
    for n in (1, 7):
        x = r.standard_normal((n, 2, 10, 9)).astype(np.float32)
        got = session.run(["fc", "relu2"], {"image": x})
        expected = model.forward({"image": x}, ["fc", "relu2"])
        np.testing.assert_allclose(got[0], expected["fc"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(got[1], expected["relu2"], rtol=0, atol=1e-5)


def test_a_cnn_survives_a_model_file(tmp_path):
    from graphnet.modelfile import load_model, save_model

    model = Model.from_spec(parse_spec(CNN), seed=4)
    save_model(tmp_path / "cnn.gnm", model)
    loaded = load_model(tmp_path / "cnn.gnm").model
    assert loaded.graph.nodes["conv2"].attrs == model.graph.nodes["conv2"].attrs  # 'same', [3, 2]
    x = np.random.default_rng(4).standard_normal((3, 2, 10, 9)).astype(np.float32)
    expected = model.forward({"image": x}, ["fc"])["fc"]
    np.testing.assert_array_equal(loaded.forward({"image": x}, ["fc"])["fc"], expected)


# ----------------------------------------------------------------------------------------------
# batch_norm
# ----------------------------------------------------------------------------------------------


def batch_norm_steps(attrs, xs, dtype, training, gamma=None, beta=None, state=None):
    """Forward and backward of batch_norm on each array of ``xs`` in turn, the running
    statistics carried from step to step as a model carries them. Returns the last (y, grads, dy)
    and the running statistics after the last step."""
    op = default_registry().get("batch_norm")
    parsed = op.Attrs(**attrs)
    channels = xs[0].shape[1]
    state = state or {"running_mean": np.zeros(channels, dtype), "running_var": np.ones(channels, dtype)}
    params = {} if gamma is None else {"gamma": gamma.astype(dtype), "beta": beta.astype(dtype)}
    for step, x in enumerate(xs):
        ctx = Context(training=training, dtype=dtype, state=state)
        y, saved = op.forward(parsed, ctx, x=x.astype(dtype), **params)
        state = {**state, **ctx.updates}
        dy = np.random.default_rng(step).standard_normal(y.shape).astype(dtype)
        grads = op.backward(parsed, saved, dy, frozenset(["x", *params]))
    return y, grads, dy, state


BN_TABLE = [
    ({}, (4, 3, 5, 6)),
    ({"momentum": 0.3, "eps": 1e-3}, (3, 2, 4, 5)),
    ({"affine": False}, (5, 3, 2, 2)),
    ({}, (6, 7)),  # features: BatchNorm1d
]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("attrs, shape", BN_TABLE, ids=[f"{a}-{s}" for a, s in BN_TABLE])
def test_batch_norm_against_torch(attrs, shape, training, dtype):
    """Three steps (running statistics carried), then output and gradients compared; in
    evaluation the running statistics are random (positive variances)."""
    r = np.random.default_rng(20)
    xs = [(3 * r.standard_normal(shape) + 1.5).astype(dtype) for _ in range(3)]
    channels = shape[1]
    affine = attrs.get("affine", True)
    gamma = r.standard_normal(channels).astype(dtype) if affine else None
    beta = r.standard_normal(channels).astype(dtype) if affine else None
    state = None if training else {"running_mean": r.standard_normal(channels).astype(dtype),
                                   "running_var": r.uniform(0.5, 2, channels).astype(dtype)}
    y, grads, dy, new_state = batch_norm_steps(attrs, xs, dtype, training, gamma, beta, state)

    momentum, eps = attrs.get("momentum", 0.1), attrs.get("eps", 1e-5)
    running_mean = torch.tensor(state["running_mean"] if state else np.zeros(channels, dtype))
    running_var = torch.tensor(state["running_var"] if state else np.ones(channels, dtype))
    tg = torch.tensor(gamma, requires_grad=True) if affine else None
    tb = torch.tensor(beta, requires_grad=True) if affine else None
    for step, x in enumerate(xs):
        tx = torch.tensor(x, requires_grad=True)
        ty = F.batch_norm(tx, running_mean, running_var, tg, tb, training=training, momentum=momentum, eps=eps)
        if step == len(xs) - 1:
            ty.backward(torch.tensor(dy))
    torch_close(y, to_numpy(ty), dtype, "y")
    torch_close(grads["x"], to_numpy(tx.grad), dtype, "dx")
    if affine:
        torch_close(grads["gamma"], to_numpy(tg.grad), dtype, "dgamma")
        torch_close(grads["beta"], to_numpy(tb.grad), dtype, "dbeta")
    else:
        assert set(grads) == {"x"}
    torch_close(new_state["running_mean"], to_numpy(running_mean), dtype, "running_mean")
    torch_close(new_state["running_var"], to_numpy(running_var), dtype, "running_var")
    if not training:
        assert new_state["running_mean"] is state["running_mean"]  # evaluation leaves them


def test_batch_norm_normalises_each_channel_with_the_batch_statistics():
    """Without torch: in training each channel of y has mean beta and (biased) std gamma; the
    running variance moves towards the unbiased batch variance."""
    r = np.random.default_rng(2)
    x = 4 * r.standard_normal((5, 3, 4, 4)) + 7
    gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 3.0])
    y, _, _, state = batch_norm_steps({"eps": 1e-12}, [x], np.float64, True, gamma, beta)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), beta, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), gamma, rtol=1e-9)
    unbiased = x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(state["running_var"], 0.9 + 0.1 * unbiased, rtol=1e-12)
    np.testing.assert_allclose(state["running_mean"], 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-12)


def test_batch_norm_in_training_needs_more_than_one_value_per_channel():
    model = Model.from_spec(parse_spec(BN_FEATURES))
    batch = {"x": np.ones((1, 4), np.float32), "y": np.zeros(1, np.int64)}
    with pytest.raises(GraphnetError) as caught:
        model.forward(batch, training=True)
    assert "needs more than one value per channel, got a batch of 1" in caught.value.message
    assert caught.value.path == "nodes.bn"
    model.forward(batch)  # evaluation uses the running statistics: fine


def test_batch_norm_of_a_scalar_per_sample_is_a_shape_error():
    spec = BN_FEATURES.replace("x: {shape: [4]}", "x: {shape: []}")
    with pytest.raises(ShapeError) as caught:
        build_graph(parse_spec(spec))
    assert "batch_norm needs per-sample inputs with a channel axis" in caught.value.message


BN_FEATURES = """
name: bn-features
inputs:
  x: {shape: [4]}
  y: {shape: [], dtype: int64}
nodes:
  bn: {op: batch_norm, inputs: {x: x}}
  fc: {op: linear, inputs: {x: bn}, attrs: {units: 3}}
  loss: {op: softmax_cross_entropy, inputs: {logits: fc, labels: y}}
outputs: [fc, loss]
"""

BN_CNN = """
name: bn-cnn
inputs:
  image: {shape: [2, 6, 5]}
  label: {shape: [], dtype: int64}
nodes:
  conv: {op: conv2d, inputs: {x: image}, attrs: {channels: 3, kernel: 3, padding: 1, bias: false}}
  norm: {op: batch_norm, inputs: {x: conv}}
  relu: {op: relu, inputs: {x: norm}}
  pool: {op: max_pool2d, inputs: {x: relu}, attrs: {kernel: 2}}
  flat: {op: flatten, inputs: {x: pool}}
  fc:   {op: linear, inputs: {x: flat}, attrs: {units: 4}}
  fbn:  {op: batch_norm, inputs: {x: fc}, attrs: {momentum: 0.5}}
  loss: {op: softmax_cross_entropy, inputs: {logits: fbn, labels: label}}
outputs: [fbn, loss]
"""


def trained_bn_cnn(steps: int = 4) -> Model:
    """The BN CNN after a few SGD steps: its running statistics have moved."""
    model = Model.from_spec(parse_spec(BN_CNN), seed=5)
    r = np.random.default_rng(5)
    for step in range(steps):
        batch = {"image": (r.standard_normal((8, 2, 6, 5)) + 1).astype(np.float32),
                 "label": r.integers(0, 4, 8)}
        model.forward(batch, training=True, step=step).backward("loss")
        model.flat_params[...] -= np.float32(0.05) * model.flat_grads
    return model


def test_batch_norm_state_is_in_the_model_not_in_its_parameters():
    model = trained_bn_cnn()
    assert list(model.state) == ["norm.running_mean", "norm.running_var", "fbn.running_mean", "fbn.running_var"]
    assert set(model.params) == {"conv.w", "norm.gamma", "norm.beta", "fc.w", "fc.b", "fbn.gamma", "fbn.beta"}
    assert model.state["norm.running_mean"].any() and (model.state["norm.running_var"] != 1).all()
    decays = model.views(model.decay_mask)
    assert not decays["norm.gamma"].any() and not decays["norm.beta"].any()  # no weight decay


def test_a_bn_cnn_passes_the_gradient_check_end_to_end():
    result = check_graph(build_graph(parse_spec(BN_CNN)), seed=2)
    assert result.ok, result.failures()
    assert {"norm.gamma", "norm.beta", "fbn.gamma", "fbn.beta"} <= set(result.roles)
    for role in result.roles.values():
        assert role.checked > 0 and role.worst <= TOLERANCE


def test_a_bn_cnn_keeps_its_running_statistics_in_a_model_file(tmp_path):
    from graphnet.modelfile import load_model, read_contents, save_model

    model = trained_bn_cnn()
    save_model(tmp_path / "bn.gnm", model)
    assert set(read_contents(tmp_path / "bn.gnm").tensors["state"]) == set(model.state)
    loaded = load_model(tmp_path / "bn.gnm").model
    assert loaded.flat_state.tobytes() == model.flat_state.tobytes()
    x = np.random.default_rng(6).standard_normal((3, 2, 6, 5)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward({"image": x}, ["fbn"])["fbn"],
                                  model.forward({"image": x}, ["fbn"])["fbn"])


def test_a_bn_cnn_exports_its_running_statistics_to_onnx():
    pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install 'graphnet[onnx]')")
    ort = pytest.importorskip("onnxruntime", reason="running the export needs onnxruntime")
    import onnx

    from graphnet.export.onnx import export_onnx

    model = trained_bn_cnn()
    data = export_onnx(model, outputs=["fbn"])
    proto = onnx.load_from_string(data)
    assert {"norm.running_mean", "norm.running_var"} <= {i.name for i in proto.graph.initializer}
    assert "BatchNormalization" in {n.op_type for n in proto.graph.node}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(7).standard_normal((5, 2, 6, 5)).astype(np.float32)
    got = session.run(["fbn"], {"image": x})[0]
    np.testing.assert_allclose(got, model.forward({"image": x}, ["fbn"])["fbn"], rtol=0, atol=1e-5)


BN_RUN = """
format: 1
name: bn-run
inputs:
  x: {{shape: [16]}}
  y: {{shape: [], dtype: int64}}
nodes:
  image: {{op: reshape, inputs: {{x: x}}, attrs: {{shape: [1, 4, 4]}}}}
  conv:  {{op: conv2d, inputs: {{x: image}}, attrs: {{channels: 4, kernel: 3, padding: 1}}}}
  norm:  {{op: batch_norm, inputs: {{x: conv}}}}
  relu:  {{op: relu, inputs: {{x: norm}}}}
  flat:  {{op: flatten, inputs: {{x: relu}}}}
  drop:  {{op: dropout, inputs: {{x: flat}}, attrs: {{rate: 0.2}}}}
  fc:    {{op: linear, inputs: {{x: drop}}, attrs: {{units: 3}}}}
  loss:  {{op: softmax_cross_entropy, inputs: {{logits: fc, labels: y}}}}
outputs: [fc, loss]
train:
  data: {{dataset: npz, path: {path}, validation: 60, preprocess: {{scale: false, flatten: false}}}}
  augment: {{shift: 1, image_shape: [4, 4]}}
  batch_size: 16
  epochs: 5
  seed: 3
  optimizer: {{type: adam, lr: 0.01}}
  schedule: {{type: cosine, warmup_epochs: 1}}
  keep_best: {{metric: val_loss}}
  output: unused.gnm
"""


def test_a_killed_bn_run_resumes_bit_identical(tmp_path):
    from graphnet import load_spec
    from graphnet.train import loop
    from test_resume import Killed, KillAt, assert_same_run, resume, saving_to

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 16))

    def examples(n):
        y = rng.integers(0, 3, n)
        return (centers[y] + 1.5 * rng.standard_normal((n, 16))).astype(np.float32), y

    (x_train, y_train), (x_test, y_test) = examples(300), examples(100)
    np.savez(tmp_path / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    (tmp_path / "bn.yaml").write_text(BN_RUN.format(path=tmp_path / "data.npz"))
    spec = load_spec(tmp_path / "bn.yaml")
    reference = loop.train(spec, checkpoint=saving_to(tmp_path / "reference.gnm"))
    assert (reference.model.state["norm.running_var"] != 1).all()
    for epochs, steps in [(2, 0), (3, 7)]:
        file = tmp_path / f"killed-{epochs}-{steps}.gnm"
        with pytest.raises(Killed):
            loop.train(spec, checkpoint=saving_to(file), progress=KillAt(epochs, steps))
        resumed = resume(spec, file)
        assert_same_run(file, tmp_path / "reference.gnm", resumed, reference)
        assert resumed.model.flat_state.tobytes() == reference.model.flat_state.tobytes()
