"""What an op is: the contract every op — built-in or plugin — fulfils.

An op is a small, stateless class. It declares:

- ``inputs``: its input *roles* (``("logits", "labels")``). A role listed in ``variadic`` takes a
  list of nodes instead of one (``concat``'s ``xs``).
- ``no_grad``: roles that never receive a gradient (labels).
- ``Attrs``: a pydantic model of its attributes (``extra="forbid"``, so typos are caught).
- ``params``: its trainable parameters, each a :class:`Param` whose shape is computed from the
  attributes and the input shapes.
- ``shape(attrs, **input_shapes)``: the shape rule. Shapes are *per sample* (no batch axis); an op
  that reduces over the batch (a loss) sets ``reduces_batch = True`` and returns ``()``.
- ``forward(attrs, ctx, **arrays)``: pure; gets every input role and parameter by name (arrays with
  the batch axis first) and returns ``(output, saved)``, where ``saved`` is whatever backward needs.
- ``backward(attrs, saved, dy, wants)``: returns a dict with one gradient per input role and per
  parameter named in ``wants`` (it may return more; the executor drops them). For a variadic role
  the gradient is a list. ``dy`` must never be modified in place. backward may return dy itself or
  views of it; the executor never writes into returned gradients.
- ``examples(rng)``: test cases for the finite-difference gradient checker.

The executor checks every output forward returns (shape ``(N, *shape)``, or ``()`` for a loss,
and dtype) and every gradient backward returns (presence, shape, dtype), and names the node and op
when one is wrong, so a buggy plugin fails loudly instead of training garbage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict

Shape = tuple[int, ...]

# The largest size an op attribute may give one axis (units, a reshape entry): far beyond any real
# layer, small enough that sizes multiplied together stay exact in int64. Use it as
# ``Field(gt=0, le=MAX_DIM)``; the memory a whole model needs is checked separately.
MAX_DIM = 1 << 24


class OpAttrs(BaseModel):
    """Base of every op's attributes model: unknown attributes are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Initializers: name -> function(rng, shape, dtype) -> array. ``fan_in`` is the product of all axes
# but the last for a (in, out) matrix, which is how ``linear`` stores its weight.
def _fan_in(shape: Shape) -> int:
    return int(np.prod(shape[:-1])) if len(shape) > 1 else max(int(shape[0]) if shape else 1, 1)


def _fan_out(shape: Shape) -> int:
    return int(shape[-1]) if shape else 1


def _glorot_uniform(rng: np.random.Generator, shape: Shape, dtype: np.dtype) -> np.ndarray:
    # Glorot & Bengio 2010: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    limit = np.sqrt(6.0 / (_fan_in(shape) + _fan_out(shape)))
    return rng.uniform(-limit, limit, shape).astype(dtype)


INITIALIZERS: dict[str, Callable[[np.random.Generator, Shape, np.dtype], np.ndarray]] = {
    "zeros": lambda rng, shape, dtype: np.zeros(shape, dtype),
    "ones": lambda rng, shape, dtype: np.ones(shape, dtype),
    # He et al. 2015, for ReLU nets: N(0, 2 / fan_in)
    "he_normal": lambda rng, shape, dtype: (
        rng.standard_normal(shape) * np.sqrt(2.0 / _fan_in(shape))
    ).astype(dtype),
    "glorot_uniform": _glorot_uniform,
    # LeCun: N(0, 1 / fan_in), for tanh/sigmoid nets
    "lecun_normal": lambda rng, shape, dtype: (
        rng.standard_normal(shape) * np.sqrt(1.0 / _fan_in(shape))
    ).astype(dtype),
}


@dataclass(frozen=True)
class Param:
    """A trainable parameter of an op.

    ``shape(attrs, input_shapes)`` gives its shape from the attributes and the per-sample input
    shapes. ``init`` names an entry of :data:`INITIALIZERS`, or is a function of the attributes
    returning such a name. ``enabled(attrs)`` turns an optional parameter (a bias) on or off.
    ``decay`` says whether weight decay (L2) applies to it; biases usually say False.
    """

    name: str
    shape: Callable[[Any, Mapping[str, Any]], Shape]
    init: str | Callable[[Any], str] = "zeros"
    enabled: Callable[[Any], bool] | None = None
    decay: bool = True

    def is_enabled(self, attrs: Any) -> bool:
        return True if self.enabled is None else bool(self.enabled(attrs))

    def initializer(self, attrs: Any) -> str:
        return self.init(attrs) if callable(self.init) else self.init


@dataclass
class Example:
    """One gradient-check case: attributes and input arrays (batch axis first, float64)."""

    attrs: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    training: bool = False


class Context:
    """What a forward pass may know besides its inputs.

    ``training`` is True while training (dropout drops, only then). ``rng`` is a generator seeded
    from (seed, step, node), so a forward pass is reproducible and re-running it gives the same
    dropout mask (the gradient checker relies on that). Pass either ``rng`` or ``seed`` (anything
    ``np.random.default_rng`` takes); from a seed the generator is built on first use, as building
    one costs more than most ops and few ops draw. ``dtype`` is the model's dtype.
    """

    def __init__(
        self,
        training: bool,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float64,
        *,
        seed: Any = None,
    ) -> None:
        self.training = training
        self.dtype = np.dtype(dtype)
        self._rng = rng
        self._seed = seed

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = np.random.default_rng(self._seed)
        return self._rng

    def __repr__(self) -> str:
        return f"Context(training={self.training}, dtype={self.dtype})"


class Op:
    """Base class of every op. Subclass it, fill in the class attributes, implement the methods."""

    name: ClassVar[str] = ""  # set by the registry from the entry-point name
    version: ClassVar[int] = 1
    inputs: ClassVar[tuple[str, ...]] = ("x",)
    variadic: ClassVar[tuple[str, ...]] = ()
    no_grad: ClassVar[tuple[str, ...]] = ()
    Attrs: ClassVar[type[OpAttrs]] = OpAttrs
    params: ClassVar[tuple[Param, ...]] = ()
    reduces_batch: ClassVar[bool] = False
    # Default gradient-check case: attributes and per-role input shapes *with* the batch axis.
    example: ClassVar[dict[str, Any]] = {"attrs": {}, "inputs": {"x": (3, 4)}}

    def shape(self, attrs: Any, **shapes: Any) -> Shape:
        raise NotImplementedError

    def forward(self, attrs: Any, ctx: Context, **arrays: Any) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def backward(
        self, attrs: Any, saved: Any, dy: np.ndarray, wants: frozenset[str]
    ) -> dict[str, Any]:
        raise NotImplementedError

    def examples(self, rng: np.random.Generator) -> list[Example]:
        """Gradient-check cases. The default draws standard-normal inputs (negatives included)
        of the shapes in ``example``; ops with integer inputs (labels) override this."""
        inputs: dict[str, Any] = {}
        for role, shape in self.example["inputs"].items():
            if role in self.variadic:
                inputs[role] = [rng.standard_normal(s) for s in shape]
            else:
                inputs[role] = rng.standard_normal(shape)
        return [Example(attrs=dict(self.example.get("attrs", {})), inputs=inputs)]

    def active_params(self, attrs: Any) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.is_enabled(attrs))

    @classmethod
    def summary(cls) -> str:
        """First line of the docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""
