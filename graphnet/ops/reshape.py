"""reshape: per-sample shape -> attrs.shape."""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from ..errors import ShapeError
from ..op import MAX_DIM, Example, Op, OpAttrs


class ReshapeAttrs(OpAttrs):
    shape: list[int] = Field(
        description="per-sample target shape (no batch axis); one entry may be -1, inferred"
    )

    @field_validator("shape")
    @classmethod
    def _check_entries(cls, shape: list[int]) -> list[int]:
        if any(size < 1 and size != -1 for size in shape):
            raise ValueError(f"entries must be positive or -1, got {shape}")
        if any(size > MAX_DIM for size in shape):
            raise ValueError(f"entries must be at most {MAX_DIM:,}, got {shape}")
        if shape.count(-1) > 1:
            raise ValueError(f"at most one entry may be -1, got {shape}")
        return shape


def resolve_shape(target: list[int], x: tuple[int, ...]) -> tuple[int, ...]:
    """The target shape with its -1 filled in; ShapeError when the element counts differ."""
    count = math.prod(x)
    known = math.prod(size for size in target if size != -1)
    if -1 in target:
        if count % known != 0:
            raise ShapeError(
                f"reshape target {target} cannot hold input x of per-sample shape {list(x)} "
                f"({count} elements is not a multiple of {known})",
                hint="change the target shape so its sizes divide the input's element count",
            )
        return tuple(count // known if size == -1 else size for size in target)
    if known != count:
        raise ShapeError(
            f"reshape target {target} has {known} elements, input x of per-sample shape "
            f"{list(x)} has {count}",
            hint="the target's sizes must multiply to the input's element count (or use -1)",
        )
    return tuple(target)


class Reshape(Op):
    """Reshapes each sample: (N, *x_shape) -> (N, *shape), in C order; -1 in shape is inferred.

    Gradient: dx = dy reshaped back to x's shape.
    """

    version = 1
    inputs = ("x",)
    Attrs = ReshapeAttrs

    def shape(self, attrs, x):
        return resolve_shape(attrs.shape, tuple(x))

    def forward(self, attrs, ctx, x):
        target = resolve_shape(attrs.shape, x.shape[1:])
        return x.reshape((x.shape[0],) + target), x.shape

    def backward(self, attrs, saved, dy, wants):
        x_shape = saved
        grads = {}
        if "x" in wants:
            grads["x"] = dy.reshape(x_shape)
        return grads

    def onnx(self, attrs, b, inputs, params):
        # ONNX Reshape copies a 0 entry from the input: the batch axis stays as it is
        return b.node("Reshape", [inputs["x"], b.constant([0, *attrs.shape])])

    def examples(self, rng):
        return [Example(attrs={"shape": [4, -1]}, inputs={"x": rng.standard_normal((3, 2, 6))})]
