"""matmul: y = a @ b, per sample."""

from __future__ import annotations

from ..errors import ShapeError
from ..op import Example, Op


class MatMul(Op):
    """Per-sample matrix product: y = a @ b.

    Per sample, a (m, k) @ b (k, n) -> y (m, n), or a vector a (k,) @ b (k, n) -> y (n,).
    Both inputs carry the batch axis; sample i of a multiplies sample i of b.
    Gradients: da = dy @ b^T, db = a^T @ dy (a and dy taken as (1, k) and (1, n) rows when a is a
    vector).
    """

    version = 1
    inputs = ("a", "b")

    def shape(self, attrs, a, b):
        if len(a) not in (1, 2):
            raise ShapeError(
                f"input a has per-sample shape {list(a)}, matmul needs a vector or a matrix",
                hint="reshape a to (k,) or (m, k)",
            )
        if len(b) != 2:
            raise ShapeError(
                f"input b has per-sample shape {list(b)}, matmul needs a matrix",
                hint="reshape b to (k, n)",
            )
        if a[-1] != b[0]:
            raise ShapeError(
                f"input a has inner size {a[-1]} (shape {list(a)}), "
                f"input b expects {b[0]} (shape {list(b)})",
                hint="the last axis of a must equal the first axis of b",
            )
        return tuple(a[:-1]) + (b[1],)

    def forward(self, attrs, ctx, a, b):
        is_vector = a.ndim == 2
        if is_vector:
            a = a[:, None, :]
        y = a @ b
        if is_vector:
            y = y[:, 0, :]
        return y, (a, b, is_vector)

    def backward(self, attrs, saved, dy, wants):
        a, b, is_vector = saved
        if is_vector:
            dy = dy[:, None, :]
        grads = {}
        if "a" in wants:
            da = dy @ b.swapaxes(-1, -2)
            grads["a"] = da[:, 0, :] if is_vector else da
        if "b" in wants:
            grads["b"] = a.swapaxes(-1, -2) @ dy
        return grads

    def onnx(self, attrs, b, inputs, params):
        a = inputs["a"]
        if len(b.shape(a)) == 2:
            return b.node("MatMul", [a, inputs["b"]])  # batched (m, k) @ (k, n)
        # a vector per sample: (N, k) -> (N, 1, k) @ (N, k, n) -> (N, 1, n) -> (N, n)
        axis = b.constant([1])
        row = b.node("Unsqueeze", [a, axis])
        return b.node("Squeeze", [b.node("MatMul", [row, inputs["b"]]), axis])

    def examples(self, rng):
        matrices = {"a": rng.standard_normal((2, 3, 4)), "b": rng.standard_normal((2, 4, 5))}
        vector = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal((3, 4, 2))}
        return [Example(inputs=matrices), Example(inputs=vector)]
