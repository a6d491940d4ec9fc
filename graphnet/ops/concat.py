"""concat: y = the inputs xs joined along one per-sample axis."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..errors import ShapeError
from ..op import Example, Op, OpAttrs


class ConcatAttrs(OpAttrs):
    axis: int = Field(-1, ge=-64, le=63, description="per-sample axis to join along (no batch axis); negative "
                                      "counts from the end")


class Concat(Op):
    """Concatenates a list of inputs along a per-sample axis: y = [x_0, x_1, ...] along axis.

    Every input must have the same per-sample shape except along axis.
    Gradient: dx_i = the slice of dy that x_i filled.
    """

    version = 1
    inputs = ("xs",)
    variadic = ("xs",)
    Attrs = ConcatAttrs

    def shape(self, attrs, xs):
        if len(xs) == 0:
            raise ShapeError("input xs is empty, concat needs at least one input",
                             hint="list the nodes to join under xs")
        first = tuple(xs[0])
        ndim = len(first)
        if not -ndim <= attrs.axis < ndim:
            raise ShapeError(
                f"axis {attrs.axis} is out of range for xs[0] of per-sample shape {list(first)}",
                hint=f"use an axis in {-ndim}..{ndim - 1}" if ndim else "join vectors, not scalars",
            )
        axis = attrs.axis % ndim
        total = 0
        for index, shape in enumerate(xs):
            shape = tuple(shape)
            others_match = len(shape) == ndim and all(
                shape[i] == first[i] for i in range(ndim) if i != axis
            )
            if not others_match:
                raise ShapeError(
                    f"input xs[{index}] has per-sample shape {list(shape)}, xs[0] has "
                    f"{list(first)}; concat along axis {attrs.axis} needs every other axis equal",
                    hint="reshape the inputs so only the joined axis differs",
                )
            total += shape[axis]
        return first[:axis] + (total,) + first[axis + 1:]

    def forward(self, attrs, ctx, xs):
        # the per-sample axis, counted on arrays that carry the batch axis first
        axis = attrs.axis % (xs[0].ndim - 1) + 1
        sizes = [x.shape[axis] for x in xs]
        return np.concatenate(xs, axis=axis), (axis, sizes)

    def backward(self, attrs, saved, dy, wants):
        axis, sizes = saved
        grads = {}
        if "xs" in wants:  # views of dy: the slice each input filled
            before = (slice(None),) * axis
            start, grads["xs"] = 0, []
            for size in sizes:
                grads["xs"].append(dy[before + (slice(start, start + size),)])
                start += size
        return grads

    def onnx(self, attrs, b, inputs, params):
        # a negative axis counts from the end either way; a per-sample axis k is axis k + 1 of the
        # batched tensor
        axis = attrs.axis if attrs.axis < 0 else attrs.axis + 1
        return b.node("Concat", inputs["xs"], {"axis": axis})

    def examples(self, rng):
        return [Example(inputs={"xs": [rng.standard_normal((3, 2)), rng.standard_normal((3, 4))]})]
