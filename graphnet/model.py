"""A model: a checked graph, its parameters in one flat buffer, and an executor to run it.

This is the Python API::

    from graphnet import load_spec, Model
    model = Model.from_spec(load_spec("specs/mnist-mlp.yaml"), seed=0)      # float32
    out = model.forward({"image": x, "label": y}, training=True)          # the spec's outputs
    out["loss"], dict(out)                                                 # a mapping of arrays
    out.backward("loss")                  # gradients of *this* forward into model.grads
    model.params["fc1.w"], model.grads["fc1.w"]                            # views, by name
    model.set_param("fc1.b", np.zeros(800))
    logits = model.forward({"image": x}, outputs=["fc3"])["fc3"]          # no labels needed
    loss = model.train_step({"image": x, "label": y}, "loss")   # forward + backward, keeps nothing
    model.predict({"image": x}, ["fc3"])["fc3"]                  # forward only, keeps nothing

``forward`` returns a :class:`ForwardResult`: a read-only mapping of the requested outputs that
carries its own tape (the values and saved arrays of that pass), so its ``backward`` always
computes the gradients of that pass, whatever ran in between — the result is the backprop
callback, as thinc's ``forward -> (output, backprop)``. The executor keeps nothing per call.
``model.backward(loss)`` is a shortcut for the most recent forward's ``backward`` and refuses when
that is ambiguous (see :meth:`Model.backward`).

Computing outputs reads only the graph inputs they depend on: predicting ``fc3`` needs no labels.
Do not change the parameters between a forward and its backward: ops keep references to the
parameters they used (``linear`` keeps ``W`` for ``dx = dy W^T``).

Every parameter is a view into ``model.flat_params`` and every gradient a view into
``model.flat_grads``, so an optimizer updates the whole model with a few vectorized operations.

Op state (batch norm's running statistics, see ``graphnet.op``) lives in a buffer of its own,
``model.flat_state``, with views by name in ``model.state`` (``model.state["bn1.running_mean"]``):
no optimizer, no weight decay and no gradient touch it. A training forward keeps the new values
its ops give (after the whole forward ran); an evaluation forward reads it only.

Memory is checked before it is allocated: :func:`memory_need` says what a model takes (parameter
buffers, optimizer state, activations of a batch), :func:`check_fits` refuses, with the numbers, a
model the machine cannot hold, and ``Model(...)`` checks its own buffers, so a too-large spec is
an error naming the largest layer instead of a ``MemoryError`` minutes later.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from .allocator import keep_freed_memory
from .errors import GraphnetError
from .executor import BackwardPlan, Executor, Tape
from .graph import Graph, Node, build_graph, group_inputs
from .registry import Registry
from .spec import Spec

DTYPES = ("float32", "float64")

# The flat buffers of P values every model allocates: parameters, gradients, decay mask.
MODEL_BUFFERS = ("parameters", "gradients", "decay mask")


class Model:
    """Parameters and gradients by name (``"fc1.w"``), forward and backward on batches."""

    def __init__(
        self, graph: Graph, *, seed: int = 0, dtype: str = "float32", initialize: bool = True
    ) -> None:
        """``initialize=False`` leaves every parameter at zero instead of drawing initial values
        (for loading saved weights right after)."""
        if str(dtype) not in DTYPES:
            raise GraphnetError(f"unsupported dtype {dtype!r}", hint=f"use one of {', '.join(DTYPES)}")
        self.graph = graph
        self.spec = graph.spec
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.executor = Executor(graph, self.dtype)
        keep_freed_memory()  # each step's arrays reuse the last step's pages (see allocator.py)
        self._layout: dict[str, tuple[int, tuple[int, ...]]] = {}
        offset = 0
        for node in graph.nodes.values():
            for param in node.params:
                shape = node.param_shapes[param.name]
                self._layout[f"{node.name}.{param.name}"] = (offset, shape)
                offset += math.prod(shape)  # Python ints: exact for any layer size
        need = memory_need(graph, dtype=self.dtype)
        check_fits(graph, need, "hold this model")
        try:
            self.flat_params = np.zeros(offset, self.dtype)
            self.flat_grads = np.zeros(offset, self.dtype)
            self.decay_mask = np.zeros(offset, self.dtype)
        except MemoryError:
            raise _too_large(graph, need, "hold this model", available_memory()) from None
        self.params = {name: self._view(self.flat_params, name) for name in self._layout}
        self._init_state()
        self.grads = {name: self._view(self.flat_grads, name) for name in self._layout}
        self._node_params = {
            node.name: {p.name: self.params[f"{node.name}.{p.name}"] for p in node.params}
            for node in graph.nodes.values()
        }
        self._node_grads = {
            node.name: {p.name: self.grads[f"{node.name}.{p.name}"] for p in node.params}
            for node in graph.nodes.values()
        }
        # backward plan -> the gradients it does not write (zeroed after each backward)
        self._unwritten: dict[BackwardPlan, list[np.ndarray]] = {}
        self._one = np.ones((), self.dtype)  # a loss's gradient wrt itself (the executor copies it)
        # What model.backward() needs, and needs to refuse an ambiguous call (see its docstring).
        # The model keeps the latest tape, not the latest result: a result refers to its model,
        # and a cycle would keep a dropped model's arrays until the garbage collector runs.
        self._forwards = 0  # forwards run so far: numbers them
        # the most recent forward: number, tape (or the name of the method that kept none)
        self._latest: tuple[int, Tape | str] | None = None
        self._training_pending: int | None = None  # number of a training forward not backpropagated
        self._set_decay_mask()
        if initialize:
            self._initialize(seed)

    @classmethod
    def from_spec(
        cls, spec: Spec, *, seed: int = 0, dtype: str = "float32", registry: Registry | None = None,
        initialize: bool = True,
    ) -> "Model":
        return cls(build_graph(spec, registry), seed=seed, dtype=dtype, initialize=initialize)

    def _init_state(self) -> None:
        """The state buffer (``flat_state``), its views by name (``state``) and by node, set to
        each state's initial value."""
        declared = [(node.name, entry, shape) for node in self.graph.nodes.values()
                    for entry, shape in state_shapes(self.graph, node).items()]
        self._state_layout: dict[str, tuple[int, tuple[int, ...]]] = {}
        offset = 0
        for node, entry, shape in declared:
            self._state_layout[f"{node}.{entry.name}"] = (offset, shape)
            offset += math.prod(shape)
        self.flat_state = np.zeros(offset, self.dtype)
        self.state = self.state_views(self.flat_state)
        self._node_state: dict[str, dict[str, np.ndarray]] = {}
        for node, entry, shape in declared:
            view = self.state[f"{node}.{entry.name}"]
            view[...] = entry.initial(shape, self.dtype)
            self._node_state.setdefault(node, {})[entry.name] = view

    def state_views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Views by state name into ``flat``, a buffer laid out as ``flat_state`` (a copy of the
        op state)."""
        if flat.shape != self.flat_state.shape:
            raise GraphnetError(
                f"a buffer of {flat.size:,} values does not hold this model's {self.flat_state.size:,} state values",
                hint="give a flat buffer laid out as model.flat_state",
            )
        return {name: flat[o : o + math.prod(shape)].reshape(shape)
                for name, (o, shape) in self._state_layout.items()}

    def load_state(self, values: Mapping[str, np.ndarray]) -> None:
        """Set the op state from arrays by name (``"bn1.running_mean"``): every state this model
        has, each of its shape."""
        _fill(self.state, values, "state", "op state does not match the graph", "the state comes from a different spec",
              "the spec decides state shapes; check you load the right file")

    def _view(self, flat: np.ndarray, name: str) -> np.ndarray:
        offset, shape = self._layout[name]
        return flat[offset : offset + math.prod(shape)].reshape(shape)

    def _set_decay_mask(self) -> None:
        for node in self.graph.nodes.values():
            for param in node.params:
                if param.decay:
                    self._view(self.decay_mask, f"{node.name}.{param.name}")[...] = 1

    def _initialize(self, seed: int) -> None:
        # One generator per parameter, keyed by its position: adding a node to the end of a spec
        # does not change the initial values of the others.
        for index, node in enumerate(self.graph.nodes.values()):
            for p_index, param in enumerate(node.params):
                # the initializer, with the fans of the parameter's layout (Param.fans); its
                # name was checked when the graph was built
                target = self.params[f"{node.name}.{param.name}"]
                rng = np.random.default_rng([seed, index, p_index])
                target[...] = param.initial_value(node.attrs, rng, target.shape, self.dtype)

    # -- parameters -------------------------------------------------------------------------

    @property
    def param_names(self) -> list[str]:
        return list(self._layout)

    @property
    def size(self) -> int:
        """Number of trainable scalars."""
        return int(self.flat_params.size)

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Views by parameter name into ``flat``, a buffer laid out as ``flat_params`` (an
        optimizer's momentum, a copy of the parameters): ``views(model.flat_params)`` gives the
        arrays ``model.params`` holds. Writing a view writes ``flat``."""
        if flat.shape != self.flat_params.shape:
            raise GraphnetError(
                f"a buffer of {flat.size:,} values does not hold this model's {self.size:,} parameters",
                hint="give a flat buffer laid out as model.flat_params",
            )
        return {name: self._view(flat, name) for name in self._layout}

    def set_param(self, name: str, value: np.ndarray) -> None:
        if name not in self.params:
            raise GraphnetError(f"no parameter '{name}'", hint="parameters: " + ", ".join(self.params))
        _fill_one(self.params[name], name, value, "parameter",
                  "the spec decides parameter shapes; check you load the right weights")

    def load_params(self, values: Mapping[str, np.ndarray]) -> None:
        _fill(self.params, values, "parameter", "parameters do not match the graph", "the weights come from a different spec",
              "the spec decides parameter shapes; check you load the right weights")

    # -- running ----------------------------------------------------------------------------

    def forward(
        self,
        batch: Mapping[str, np.ndarray],
        outputs: list[str] | tuple[str, ...] | None = None,
        *,
        training: bool = False,
        step: int = 0,
        check_finite: bool = False,
    ) -> "ForwardResult":
        """Run the graph on ``batch`` (input name -> array with the batch axis first).

        Returns the requested nodes' outputs (default: the spec's outputs) as a mapping that also
        carries this pass's tape: ``result.backward(loss)`` computes its gradients. Only the graph
        inputs the requested outputs depend on are read. ``step`` seeds the random ops (dropout)
        together with the model's seed, so a step is reproducible."""
        names = tuple(dict.fromkeys(outputs if outputs is not None else self.graph.outputs))
        tape = self.executor.forward(
            batch, self._node_params, names,
            training=training, seed=self.seed, step=step, check_finite=check_finite,
            state=self._node_state,
        )
        self._keep_state(tape)
        self._forwards += 1
        self._latest = (self._forwards, tape)
        if training:
            self._training_pending = self._forwards
        return ForwardResult(self, tape, self._forwards)

    def train_step(self, batch: Mapping[str, np.ndarray], loss: str = "loss", *, step: int = 0) -> np.ndarray:
        """One training step's gradients: ``out = forward(batch, [loss], training=True, step=step)``
        then ``out.backward(loss)``, keeping nothing of the pass. Returns the loss value.

        Its arrays are freed when it returns, so a training loop holds one step's activations,
        not two (the next step reuses memory still in the cache). Like any forward it becomes the
        most recent one: ``model.backward()`` after it refuses (the gradients are in
        ``model.grads`` already)."""
        tape = self.executor.forward(
            batch, self._node_params, (loss,), training=True, seed=self.seed, step=step,
            state=self._node_state,
        )
        self._keep_state(tape)
        self._forwards += 1
        self._latest = (self._forwards, "train_step")
        self._training_pending = None
        value = tape.values[loss]
        self._backward(self._forwards, tape, loss, False, release=True)
        return value

    def predict(
        self, batch: Mapping[str, np.ndarray], outputs: list[str] | tuple[str, ...] | None = None
    ) -> dict[str, np.ndarray]:
        """The requested outputs (default: the spec's) of an evaluation forward, as a dict,
        keeping nothing to backpropagate through: every other array is freed as soon as no
        later node reads it (``graphnet eval`` and ``predict`` evaluate with it). Like any
        forward it becomes the most recent one: ``model.backward()`` after it refuses."""
        names = tuple(dict.fromkeys(outputs if outputs is not None else self.graph.outputs))
        tape = self.executor.forward(batch, self._node_params, names, seed=self.seed,
                                     state=self._node_state, keep=False)
        self._forwards += 1
        self._latest = (self._forwards, "predict")
        return {name: tape.values[name] for name in names}

    def _keep_state(self, tape: Tape) -> None:
        for node, updates in tape.updates.items():  # new op state: training forwards only
            for key, value in updates.items():
                np.copyto(self._node_state[node][key], value)

    def backward(
        self, loss: str | Mapping[str, np.ndarray] = "loss", *, check_finite: bool = False
    ) -> None:
        """Shortcut for ``backward`` on the result of this model's most recent ``forward``.

        The rule: it backpropagates through the most recent forward, and raises a GraphnetError
        instead of guessing when

        - no forward has run;
        - the most recent forward was a ``train_step`` or ``predict``, which keep nothing;
        - the most recent forward did not compute ``loss``;
        - a training forward (``training=True``) has not been backpropagated yet and a later
          forward has run since: ``forward(A, training=True)``, ``forward(B)``, ``backward()``
          would give B's gradients, almost certainly not what was meant.

        Keeping the result and calling ``result.backward(loss)`` is never ambiguous."""
        if self._latest is None:
            raise GraphnetError(
                "backward before any forward",
                hint="run out = model.forward(batch, training=True), then out.backward('loss')",
            )
        number, tape = self._latest
        if isinstance(tape, str):  # the most recent forward kept nothing
            done = ", and its gradients are in model.grads already" if tape == "train_step" else ""
            raise GraphnetError(
                f"model.backward() after model.{tape}(): it kept nothing to backpropagate through{done}",
                hint="to backpropagate yourself, run out = model.forward(batch, training=True), "
                     "then out.backward('loss')",
            )
        if self._training_pending is not None and self._training_pending != number:
            later = self._forwards - self._training_pending
            raise GraphnetError(
                "model.backward() is ambiguous: a training forward has not been backpropagated, "
                f"and {later} later forward{'s' if later > 1 else ''} (training=False) ran since; "
                "its gradients would be those of the later batch",
                hint="keep the training forward's result and call its backward: "
                     "out = model.forward(batch, training=True); ...; out.backward('loss')",
            )
        self._backward(number, tape, loss, check_finite)

    def _backward(
        self, number: int, tape: Tape, loss: str | Mapping[str, np.ndarray], check_finite: bool,
        release: bool = False,
    ) -> None:
        """Gradients of forward ``number`` (its ``tape``) into ``model.grads``; the gradients of
        parameters off the path to the loss are set to zero."""
        seeds = {loss: self._one} if isinstance(loss, str) else dict(loss)
        plan = self.executor.backward(tape, seeds, self._node_grads, check_finite=check_finite,
                                      release=release)
        if plan not in self._unwritten:  # the same for every backward of this plan
            self._unwritten[plan] = [
                self._node_grads[node][param]
                for node, names in self._node_grads.items()
                for param in names
                if (node, param) not in plan.params
            ]
        for grad in self._unwritten[plan]:  # not on the path to the loss
            grad[...] = 0
        if number == self._training_pending:
            self._training_pending = None


def state_shapes(graph: Graph, node: Node) -> dict:
    """The op state of ``node`` that its attributes enable, each with its shape (State ->
    shape), from the per-sample input shapes as for parameters."""
    entries = node.op.active_state(node.attrs) if hasattr(node.op, "active_state") else ()
    if not entries:
        return {}
    shapes = group_inputs(node, graph.shape_of)
    return {entry: tuple(int(n) for n in entry.shape(node.attrs, shapes)) for entry in entries}


class ForwardResult(Mapping):
    """The outputs of one forward pass, and the way back through that same pass.

    A read-only mapping of the requested outputs (``out["loss"]``, ``dict(out)``, ``list(out)``);
    ``out.backward("loss")`` writes the gradients of this pass into ``model.grads``, even after
    other forwards of the same model. It may be called more than once (the same gradients)."""

    def __init__(self, model: Model, tape: Tape, number: int) -> None:
        self.model = model
        self.tape = tape
        self.number = number  # the model's n-th forward

    @property
    def training(self) -> bool:
        return self.tape.training

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.tape.outputs:
            raise NotAnOutput(
                f"'{name}' is not an output of this forward (outputs: {', '.join(self.tape.outputs)})",
                hint=f"ask for it: forward(batch, outputs=[..., '{name}'])",
            )
        return self.tape.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tape.outputs)

    def __len__(self) -> int:
        return len(self.tape.outputs)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}: {list(np.shape(value))}" for name, value in self.items())
        return f"ForwardResult({{{shapes}}}, training={self.training})"

    def backward(
        self, loss: str | Mapping[str, np.ndarray] = "loss", *, check_finite: bool = False
    ) -> None:
        """Gradients of ``loss`` (a node this forward computed) into ``model.grads``.

        Pass a dict ``{node: upstream gradient}`` to backpropagate from non-scalar outputs.
        ``check_finite`` names the first node whose gradient is not finite."""
        self.model._backward(self.number, self.tape, loss, check_finite)


class NotAnOutput(GraphnetError, KeyError):
    """A ForwardResult was asked for a node it does not hold (a KeyError, as mappings raise)."""


# ----------------------------------------------------------------------------------------------
# Memory: what a model needs, checked before it is allocated
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryNeed:
    """Bytes a model needs: ``buffers`` flat arrays of its ``parameters`` values each (what
    each holds, in order), plus ``activations`` bytes for one batch of ``batch_size``."""

    parameters: int
    itemsize: int
    buffers: tuple[str, ...] = MODEL_BUFFERS
    activations: int = 0
    batch_size: int = 0

    @property
    def parameter_bytes(self) -> int:
        return self.parameters * self.itemsize * len(self.buffers)

    @property
    def total(self) -> int:
        return self.parameter_bytes + self.activations

    def describe(self) -> str:
        """One line: ``1,234,567 parameters; about 23.6 MiB (5 buffers of 4.7 MiB: parameters, ...)``."""
        one = self.parameters * self.itemsize
        counts = Counter(self.buffers)  # in order of first appearance
        held = ", ".join(name if n == 1 else f"{name} x{n}" for name, n in counts.items())
        text = (
            f"{self.parameters:,} parameters; about {format_bytes(self.total)} "
            f"({len(self.buffers)} buffers of {format_bytes(one)}: {held}"
        )
        if self.batch_size:
            text += f"; {format_bytes(self.activations)} of activations for a batch of {self.batch_size}"
        return text + ")"


def memory_need(
    graph: Graph, *, dtype="float32", batch_size: int = 0, buffers: tuple[str, ...] = MODEL_BUFFERS
) -> MemoryNeed:
    """What ``graph`` takes as a model of ``dtype``: the flat ``buffers`` (a model's own three,
    plus whatever training adds: optimizer state, a copy of the best parameters), and, for a
    ``batch_size`` > 0, the activations of one training step.

    Activations are counted as each graph input of the batch, plus, for every node, its output and
    one more array of the same size (what its op saves, or the gradient flowing back): per sample
    ``inputs + 2 * sum(node outputs)`` values, a loss (one number per batch) counting 2 values.
    It is an estimate of the peak, not an exact account (ops may save more, numpy may copy)."""
    itemsize = np.dtype(dtype).itemsize
    activations = 0
    if batch_size:
        per_sample = sum(math.prod(shape) for shape in graph.inputs.values())
        per_batch = 0
        for node in graph.nodes.values():
            if node.op.reduces_batch:
                per_batch += 2
            else:
                per_sample += 2 * math.prod(node.shape)
        activations = (batch_size * per_sample + per_batch) * itemsize
    return MemoryNeed(graph.param_count(), itemsize, tuple(buffers), activations, batch_size)


def training_memory(graph: Graph, batch_size: int, optimizer_slots: int, dtype="float32") -> int:
    """Bytes training ``graph`` needs: parameters, gradients, decay mask and ``optimizer_slots``
    buffers of optimizer state (each one value per parameter), plus the activations of a batch
    (see :func:`memory_need`)."""
    buffers = MODEL_BUFFERS + ("optimizer state",) * optimizer_slots
    return memory_need(graph, dtype=dtype, batch_size=batch_size, buffers=buffers).total


def available_memory() -> int | None:
    """Bytes a new allocation can get now: ``MemAvailable`` of /proc/meminfo (Linux: free memory
    plus caches the kernel can drop), else the free physical pages (``os.sysconf``); None when the
    system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the value is in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_fits(graph: Graph, need: MemoryNeed, doing: str, available: int | None = None) -> None:
    """Refuse (a GraphnetError at the largest layer, with the numbers) a ``need`` larger than the
    ``available`` memory (default: :func:`available_memory`). ``doing`` completes "memory to ...".
    """
    available = available_memory() if available is None else available
    if available is not None and need.total > available:
        raise _too_large(graph, need, doing, available)


def _too_large(graph: Graph, need: MemoryNeed, doing: str, available: int | None) -> GraphnetError:
    node, count = _largest_layer(graph)
    have = f"{format_bytes(available)} is available" if available is not None else "the allocation failed"
    message = f"not enough memory to {doing}: {need.describe()}, but {have}"
    if need.activations > need.parameter_bytes and graph.spec.train is not None:
        return graph.spec.error(("train", "batch_size"), message, hint="lower train.batch_size")
    if node is None:
        return GraphnetError(message, file=graph.spec.file, hint="make the layers smaller")
    hint = f"its largest layer, '{node}', has {count:,} parameters; make the layers smaller (units)"
    return graph.spec.error(("nodes", node), message, hint=hint)


def _largest_layer(graph: Graph) -> tuple[str | None, int]:
    """The node with the most parameters and how many (None, 0 when no node has any)."""
    best, most = None, 0
    for name, node in graph.nodes.items():
        count = sum(math.prod(shape) for shape in node.param_shapes.values())
        if count > most:
            best, most = name, count
    return best, most


def format_bytes(count: int) -> str:
    """``1536`` -> ``1.5 KiB``; binary units, up to PiB."""
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            break
        value /= 1024
    if unit == "bytes":
        return f"{count:,} bytes"
    return f"{value:,.1f} {unit}"


def _fill(views: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray], noun: str, mismatch: str,
          mismatch_hint: str, shape_hint: str) -> None:
    """Copy ``values`` into ``views`` by name: the names must be exactly those of ``views`` and
    each value of its view's shape (what ``load_params`` and ``load_state`` check)."""
    missing = set(views) - set(values)
    extra = set(values) - set(views)
    if missing or extra:
        raise GraphnetError(
            f"{mismatch}: "
            + (f"missing {sorted(missing)} " if missing else "")
            + (f"unexpected {sorted(extra)}" if extra else ""),
            hint=mismatch_hint,
        )
    for name, value in values.items():
        _fill_one(views[name], name, value, noun, shape_hint)


def _fill_one(view: np.ndarray, name: str, value: np.ndarray, noun: str, shape_hint: str) -> None:
    value = np.asarray(value)
    if value.shape != view.shape:
        raise GraphnetError(f"{noun} '{name}' has shape {list(view.shape)}, received {list(value.shape)}",
                            hint=shape_hint)
    view[...] = value
