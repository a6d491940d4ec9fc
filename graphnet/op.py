"""What an op is: the contract every op — built-in or plugin — fulfils.

An op is a small class that keeps nothing between calls (what it learns lives in the model: its
parameters and its declared state). It declares:

- ``inputs``: its input *roles* (``("logits", "labels")``; default ``("x",)``). A role listed in
  ``variadic`` takes a list of nodes instead of one (``concat``'s ``xs``).
- ``no_grad``: roles that never receive a gradient (labels).
- ``Attrs`` (optional): a pydantic model of its attributes, deriving from :class:`OpAttrs`
  (``extra="forbid"``, so typos are caught). Left out, the op takes no attributes.
- ``params``: its trainable parameters, each a :class:`Param` whose shape is computed from the
  attributes and the *per-sample* input shapes (``shapes["x"]`` has no batch axis), and whose
  ``fans`` say how the scaled initializers count fan-in and fan-out for its layout. Parameters
  are shared by every sample of a batch, so their gradient is the sum over the batch.
- ``state`` (optional): its non-trainable state, each a :class:`State` (batch norm's running
  mean and variance): arrays the op reads and, in training only, replaces, that no optimizer
  touches (see "State" below).
- ``shape(attrs, **input_shapes)``: the shape rule. Shapes are *per sample* (no batch axis); an op
  that reduces over the batch (a loss) sets ``reduces_batch = True`` and returns ``()``.
- ``forward(attrs, ctx, **arrays)``: pure; gets every input role and parameter by name (arrays with
  the batch axis first) and returns ``(output, saved)``, where ``saved`` is whatever backward needs
  (``None`` is fine). The output keeps the input's dtype: float32 in, float32 out.
- ``backward(attrs, saved, dy, wants)``: returns a dict with one gradient per input role and per
  parameter, each of the shape and dtype of what it is the gradient of. ``wants`` names the ones
  needed; honouring it is optional (it saves work: the first layer's gradient wrt the data is never
  needed), and an op that ignores it may leave it out of the signature: ``backward(attrs, saved,
  dy)``. Gradients that were not asked for are dropped (a parameter the attributes turn off has
  none to return). For a variadic role the gradient is a list. ``dy`` must never be modified in
  place; backward may return dy itself or views of it (the executor never writes into returned
  gradients). Optionally backward also takes ``out=None``: then the executor passes ``out``, a
  mapping from each parameter's name to the array its gradient goes to (the parameter's slice of
  the model's flat gradient buffer, holding the previous step's values), and an op that writes its
  parameter gradients there (``np.matmul(x.T, dy, out=out["w"])``) and returns those same arrays
  spares a copy and an allocation per step; returning other arrays is fine too (they are copied).
  ``out`` is None when the caller has no buffers (the gradient checker); never write into it
  anything but the complete gradient.
- ``examples(rng)``: the gradient checker's cases, a list of :class:`Example` (attributes and input
  arrays with the batch axis). The default draws standard-normal inputs of shape (3, 4) for every
  role with the default attributes; an op with required attributes, integer inputs (labels) or
  inputs that need special values (probabilities) overrides it.
- ``version``: an integer, bumped when the maths change (model files record it), and ``previous``:
  the classes of the earlier versions the op still provides, so that model files saved with them
  keep loading (``registry.get(name, version=1)``).
- ``onnx(attrs, b, inputs, params)`` (optional): the op's ONNX mapping, used by ``graphnet convert
  MODEL model.onnx``. An op without it cannot be exported, and the export says so, naming the op.

:class:`Elementwise` is the base of ops of one input ``x`` whose output has ``x``'s shape
(activations): the shape rule and two gradient-check cases are built in, so such an op is a
docstring, ``forward`` and ``backward``.

State: an op that declares ``state`` reads its current values from ``ctx.state`` (a read-only
mapping, name -> array of the declared shape, no batch axis) and, while ``ctx.training``, gives new
values with ``ctx.set_state(name, array)`` (a new array: never write into ``ctx.state``'s). The
executor records them in the forward's tape and the model copies them into its state buffer after
the whole forward ran, so forward stays a function of its inputs (calling it twice on the same
state gives the same result) and the gradient checker, which runs forward many times, never sees
the state move. In evaluation ``set_state`` is ignored. Called outside a model (the gradient
checker, a test), ``ctx.state`` holds what the caller gave ``Context(state=...)``, else nothing:
such an op falls back to its initial values (``State.initial``). The state is saved in model files
(the ``state`` group), checkpointed for ``--resume`` and exported to ONNX as initializers (the
``onnx`` hook finds them in ``params`` by name, next to the parameters).

The registry checks a declaration when it loads the op: the signatures of ``shape``, ``forward``,
``backward``, ``examples`` and ``onnx`` must match the roles and parameters declared (a mismatch
is an error naming the op, where it comes from and what does not match, not a TypeError at run
time).

The ONNX mapping builds the op's inference forward out of ONNX nodes through ``b``, a small
builder the exporter passes in, so an op module never imports onnx. ``inputs`` maps each input
role to the name of the tensor feeding it (a list of names for a variadic role), ``params`` maps
each parameter to the name of its initializer (float32, in graphnet's layout: add a ``Transpose``
node where ONNX wants another). Tensors carry the batch axis first, as in ``forward``. The mapping
returns the name of the tensor holding the op's output; the exporter names it after the node and
checks each ONNX node against its schema and the output's shape against ``shape``. What ``b``
offers:

- ``b.node(op_type, inputs, attrs=None) -> str``: add an ONNX node of the default domain (one
  output) and return its output's name; ``attrs`` are the ONNX attributes (``{"alpha": 0.1}``);
- ``b.constant(value) -> str``: a constant tensor (floats become float32, integers int64);
- ``b.shape(name) -> tuple``: the per-sample shape of a tensor fed to the op (no batch axis);
- ``b.opset``: the ONNX opset being written (at least 13).

For example, swish (``y = x * sigmoid(beta * x)``)::

    def onnx(self, attrs, b, inputs, params):
        x = inputs["x"]
        gate = b.node("Sigmoid", [b.node("Mul", [x, b.constant(attrs.beta)])])
        return b.node("Mul", [x, gate])

Only inference is exported: an op that behaves differently in training maps its evaluation
behaviour (dropout is ``Identity``), and losses are not exported.

The executor checks every output forward returns (shape ``(N, *shape)``, or ``()`` for a loss,
and dtype) and every gradient backward returns (presence, shape, dtype), and names the node and op
when one is wrong, so a buggy plugin fails loudly instead of training garbage.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict

from .errors import OpError

Shape = tuple[int, ...]

# The largest size an op attribute may give one axis (units, a reshape entry): far beyond any real
# layer, small enough that sizes multiplied together stay exact in int64. Use it as
# ``Field(gt=0, le=MAX_DIM)``; the memory a whole model needs is checked separately.
MAX_DIM = 1 << 24


class OpAttrs(BaseModel):
    """Base of every op's attributes model: unknown attributes are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------------------------
# Initializers
# ----------------------------------------------------------------------------------------------
# A scaled initializer needs the parameter's fan-in and fan-out, which depend on how the op lays
# out its weight: ``linear`` stores (in, out), a convolution (out, in, kh, kw). A Param says which
# with ``fans``; the default is the matrix rule.

Fans = tuple[int, int]


def matrix_fans(shape: Shape) -> Fans:
    """(fan_in, fan_out) of a (..., in, out) weight: every axis but the last feeds each output."""
    fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else max(int(shape[0]) if shape else 1, 1)
    fan_out = int(shape[-1]) if shape else 1
    return fan_in, fan_out


def channels_first_fans(shape: Shape) -> Fans:
    """(fan_in, fan_out) of an (out, in, *kernel) weight, a convolution's (PyTorch's and ONNX's
    layout): fan_in = in * prod(kernel), fan_out = out * prod(kernel)."""
    out_channels, in_channels, *kernel = shape
    taps = int(np.prod(kernel)) if kernel else 1
    return max(in_channels * taps, 1), max(out_channels * taps, 1)


def _glorot_uniform(rng: np.random.Generator, shape: Shape, dtype: np.dtype, fans: Fans) -> np.ndarray:
    # Glorot & Bengio 2010: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    limit = np.sqrt(6.0 / (fans[0] + fans[1]))
    return rng.uniform(-limit, limit, shape).astype(dtype)


# name -> function(rng, shape, dtype, (fan_in, fan_out)) -> array
INITIALIZER_RULES: dict[str, Callable[[np.random.Generator, Shape, np.dtype, Fans], np.ndarray]] = {
    "zeros": lambda rng, shape, dtype, fans: np.zeros(shape, dtype),
    "ones": lambda rng, shape, dtype, fans: np.ones(shape, dtype),
    # He et al. 2015, for ReLU nets: N(0, 2 / fan_in)
    "he_normal": lambda rng, shape, dtype, fans: (
        rng.standard_normal(shape) * np.sqrt(2.0 / fans[0])
    ).astype(dtype),
    "glorot_uniform": _glorot_uniform,
    # LeCun: N(0, 1 / fan_in), for tanh/sigmoid nets
    "lecun_normal": lambda rng, shape, dtype, fans: (
        rng.standard_normal(shape) * np.sqrt(1.0 / fans[0])
    ).astype(dtype),
}

# The same initializers as functions(rng, shape, dtype), with the matrix rule for the fans. Kept
# for code written before Param had ``fans``; names other code adds here are still honoured, but
# an op should give its Param ``fans`` instead.
INITIALIZERS: dict[str, Callable[[np.random.Generator, Shape, np.dtype], np.ndarray]] = {
    name: (lambda rule: lambda rng, shape, dtype: rule(rng, shape, dtype, matrix_fans(shape)))(rule)
    for name, rule in INITIALIZER_RULES.items()
}


def known_initializers() -> list[str]:
    return list(INITIALIZER_RULES) + [name for name in INITIALIZERS if name not in INITIALIZER_RULES]


@dataclass(frozen=True)
class Param:
    """A trainable parameter of an op.

    ``shape(attrs, shapes)`` gives its shape from the attributes and ``shapes``, the per-sample
    input shapes by role (no batch axis; a list of shapes for a variadic role): a bias over the
    features of x is ``lambda attrs, shapes: (shapes["x"][-1],)``. ``init`` names an initializer
    (``zeros``, ``ones``, ``he_normal``, ``glorot_uniform``, ``lecun_normal``), or is a function of
    the attributes returning such a name. ``fans(shape) -> (fan_in, fan_out)`` says how the scaled
    initializers count them for this parameter's layout (default :func:`matrix_fans`, for an
    (in, out) weight; :func:`channels_first_fans` for an (out, in, kh, kw) kernel).
    ``enabled(attrs)`` turns an optional parameter (a bias) on or off. ``decay`` says whether weight
    decay (L2) applies to it; biases usually say False.
    """

    name: str
    shape: Callable[[Any, Mapping[str, Any]], Shape]
    init: str | Callable[[Any], str] = "zeros"
    enabled: Callable[[Any], bool] | None = None
    decay: bool = True
    fans: Callable[[Shape], Fans] | None = None

    def is_enabled(self, attrs: Any) -> bool:
        return True if self.enabled is None else bool(self.enabled(attrs))

    def initializer(self, attrs: Any) -> str:
        return self.init(attrs) if callable(self.init) else self.init

    def initial_value(self, attrs: Any, rng: np.random.Generator, shape: Shape, dtype: Any) -> np.ndarray:
        """The parameter's first value, drawn from ``rng`` by its initializer with its fans."""
        name = self.initializer(attrs)
        if name in INITIALIZER_RULES:
            fans = (self.fans or matrix_fans)(tuple(shape))
            return INITIALIZER_RULES[name](rng, tuple(shape), np.dtype(dtype), fans)
        if name in INITIALIZERS:  # added to the table by other code
            return INITIALIZERS[name](rng, tuple(shape), np.dtype(dtype))
        raise OpError(
            f"parameter '{self.name}' asks for unknown initializer '{name}'",
            hint="known: " + ", ".join(known_initializers()),
        )


@dataclass(frozen=True)
class State:
    """Non-trainable state of an op (batch norm's running statistics): not a parameter, so no
    gradient, no optimizer, no weight decay; the model keeps it in its own buffer
    (``model.state["bn1.running_mean"]``) and model files keep it in their ``state`` group.

    ``shape(attrs, shapes)`` gives its shape as :class:`Param`'s does; ``init`` is ``"zeros"`` or
    ``"ones"`` (state starts at a fixed value: no random draw). ``enabled(attrs)`` turns it on or
    off. How an op reads and updates it: the module docstring, "State"."""

    name: str
    shape: Callable[[Any, Mapping[str, Any]], Shape]
    init: str = "zeros"
    enabled: Callable[[Any], bool] | None = None

    def is_enabled(self, attrs: Any) -> bool:
        return True if self.enabled is None else bool(self.enabled(attrs))

    def initial(self, shape: Shape, dtype: Any) -> np.ndarray:
        """The state's first value: ``init`` (zeros or ones) of ``shape``."""
        if self.init not in STATE_INITIALIZERS:
            raise OpError(
                f"state '{self.name}' asks for initializer '{self.init}'",
                hint="state starts at zeros or ones: init='zeros' or init='ones'",
            )
        return STATE_INITIALIZERS[self.init](tuple(shape), np.dtype(dtype))


STATE_INITIALIZERS: dict[str, Callable[[Shape, np.dtype], np.ndarray]] = {
    "zeros": lambda shape, dtype: np.zeros(shape, dtype),
    "ones": lambda shape, dtype: np.ones(shape, dtype),
}


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

    ``state`` is the op's current state by name (read-only; empty for an op without state or
    called outside a model); ``set_state(name, value)`` records a new value, kept in
    ``updates`` while training and ignored otherwise (see the module docstring, "State").
    """

    __slots__ = ("training", "dtype", "_rng", "_seed", "state", "updates")  # made per node per step

    def __init__(
        self,
        training: bool,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float64,
        *,
        seed: Any = None,
        state: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.training = training
        self.dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
        self._rng = rng
        self._seed = seed
        self.state: Mapping[str, np.ndarray] = state if state is not None else {}
        self.updates: dict[str, np.ndarray] = {}

    def set_state(self, name: str, value: np.ndarray) -> None:
        """The op's new value of state ``name`` (training only; a new array, not a view of
        ``ctx.state``'s)."""
        if self.training:
            self.updates[name] = value

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = np.random.default_rng(self._seed)
        return self._rng

    def __repr__(self) -> str:
        return f"Context(training={self.training}, dtype={self.dtype})"


# ----------------------------------------------------------------------------------------------
# The op
# ----------------------------------------------------------------------------------------------


class Op:
    """Base class of every op. Subclass it, fill in the class attributes, implement the methods."""

    name: ClassVar[str] = ""  # set by the registry from the entry-point name
    version: ClassVar[int] = 1
    previous: ClassVar[tuple[type["Op"], ...]] = ()  # earlier versions still provided
    inputs: ClassVar[tuple[str, ...]] = ("x",)
    variadic: ClassVar[tuple[str, ...]] = ()
    no_grad: ClassVar[tuple[str, ...]] = ()
    Attrs: ClassVar[type[OpAttrs]] = OpAttrs
    params: ClassVar[tuple[Param, ...]] = ()
    state: ClassVar[tuple[State, ...]] = ()
    reduces_batch: ClassVar[bool] = False
    backward_takes_out: ClassVar[bool] = False  # set from backward's signature (see the docstring)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        backward = cls.__dict__.get("backward")
        if backward is not None and _positional_count(backward) == 4:  # (self, attrs, saved, dy)
            cls.backward = _ignoring_wants(backward)
        cls.backward_takes_out = _takes_keyword(cls.backward, "out")

    def shape(self, attrs: Any, **shapes: Any) -> Shape:
        raise NotImplementedError

    def forward(self, attrs: Any, ctx: Context, **arrays: Any) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def backward(
        self, attrs: Any, saved: Any, dy: np.ndarray, wants: frozenset[str]
    ) -> dict[str, Any]:
        raise NotImplementedError

    def onnx(self, attrs: Any, b: Any, inputs: dict[str, Any], params: dict[str, str]) -> str:
        """The op's ONNX mapping (optional; see the module docstring). Not overriding it means
        the op cannot be exported to ONNX."""
        raise NotImplementedError

    def examples(self, rng: np.random.Generator) -> list[Example]:
        """Gradient-check cases. The default: standard-normal inputs (negatives included) of
        shape (3, 4) for every role (two of them for a variadic role), default attributes."""
        self._check_attrs_have_defaults()
        inputs: dict[str, Any] = {}
        for role in self.inputs:
            if role in self.variadic:
                inputs[role] = [rng.standard_normal((3, 4)) for _ in range(2)]
            else:
                inputs[role] = rng.standard_normal((3, 4))
        return [Example(inputs=inputs)]

    def active_params(self, attrs: Any) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.is_enabled(attrs))

    def active_state(self, attrs: Any) -> tuple[State, ...]:
        return tuple(s for s in self.state if s.is_enabled(attrs))

    @classmethod
    def summary(cls) -> str:
        """First line of the docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def _check_attrs_have_defaults(self) -> None:
        """The default examples use the default attributes: say so when some have none."""
        required = [name for name, f in self.Attrs.model_fields.items() if f.is_required()]
        if required:
            raise OpError(
                f"op '{self.name or type(self).__name__}' has required attributes "
                f"({', '.join(required)}), so the default gradient-check case cannot be built",
                hint="define examples(self, rng) returning [Example(attrs={...}, inputs={...})]",
            )


def _takes_keyword(function: Callable, name: str) -> bool:
    """Whether ``function`` can be called with the keyword argument ``name``."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters and parameters[name].kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class Elementwise(Op):
    """Base of an op of one input ``x`` whose output has ``x``'s shape (an activation): the shape
    rule is built in, and so are the gradient-check cases (a matrix and a 3-d array, standard
    normal, default attributes). Write the docstring, ``forward`` and ``backward``."""

    inputs: ClassVar[tuple[str, ...]] = ("x",)

    def shape(self, attrs: Any, x: Shape) -> Shape:
        return tuple(x)

    def examples(self, rng: np.random.Generator) -> list[Example]:
        self._check_attrs_have_defaults()
        return [
            Example(inputs={"x": rng.standard_normal((3, 4))}),
            Example(inputs={"x": rng.standard_normal((2, 3, 5))}),
        ]


def _positional_count(function: Callable) -> int | None:
    """How many positional parameters ``function`` has (self included); None with ``*args``."""
    count = 0
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _ignoring_wants(backward: Callable) -> Callable:
    """``backward(self, attrs, saved, dy)`` made callable as the executor calls it, with ``wants``
    (which such an op does not honour: it returns every gradient)."""

    def backward_with_wants(self, attrs, saved, dy, wants=None):
        return backward(self, attrs, saved, dy)

    # not functools.wraps: inspect.signature must see the signature the executor calls
    backward_with_wants.__name__ = backward.__name__
    backward_with_wants.__qualname__ = backward.__qualname__
    backward_with_wants.__doc__ = backward.__doc__
    backward_with_wants.__module__ = backward.__module__
    return backward_with_wants
