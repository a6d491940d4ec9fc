"""The graph executor: forward over the topological order, backward over it in reverse.

The executor holds no state of its own between calls. ``forward`` returns a :class:`Tape`: the
plan it ran, each node's output and what its op saved for backward; ``backward`` takes that tape,
so a backward always belongs to the forward that made its tape, however many forwards ran in
between. Op state (batch norm's running statistics) is read from the ``state`` the caller passes
and never written: a training forward records the ops' new values in ``tape.updates`` and the
caller (the model) decides to keep them. The only thing kept is a cache of plans (which nodes run, in which order, which gradients
they owe, which graph inputs they read), computed once per set of requested outputs and, per set
of seeds, the list of nodes whose backward runs: pure functions of the graph.

Forward reads only the graph inputs the requested outputs depend on, and checks each output's
shape and dtype against the node's shape rule. Backward seeds the loss with 1, walks the plan in
reverse, asks each op only for the gradients that are needed (never for labels or data inputs),
*adds* the contributions of a node that feeds several consumers, and checks every gradient an op
returns (present, shape, dtype), naming the node and op when one is wrong. It never writes into an
array an op returned or received as ``dy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from .errors import GradientError, GraphnetError, OpError, TrainingError, did_you_mean, listed
from .graph import Graph, Node, group_inputs
from .op import Context

# the gradient buffers of a node without parameters: none (read-only, so no op writes into it)
_NO_GRADS: Mapping[str, np.ndarray] = MappingProxyType({})


@dataclass(eq=False, slots=True)
class Step:
    """One node of the plan with what backward owes: the roles and parameters that need a
    gradient (``wants``)."""

    node: Node
    index: int  # position in the graph's order: seeds the node's random generator
    wants: frozenset[str]
    allowed: frozenset[str]  # names backward may return gradients for: input roles, parameters
    takes_out: bool = False  # backward takes ``out`` (parameter gradient buffers)
    # looked up once instead of every step: the node's name, its op's methods, and the shape
    # its output must have (``expected`` is the per-sample shape; None for a loss, shape ())
    name: str = ""
    forward: Any = None
    backward: Any = None
    expected: tuple[int, ...] | None = None
    # (role, source) of each input, or None for a node with a variadic role (grouped per call)
    sources: tuple[tuple[str, str], ...] | None = None
    # the parameters' names, looked up once instead of every step
    param_names: tuple[str, ...] = ()
    # the edges from other nodes whose role backward owes a gradient, with whether that source
    # node takes one (a variadic role may mix sources that need a gradient and not)
    grad_edges: tuple[tuple[Any, bool], ...] = ()


@dataclass(eq=False, slots=True)
class BackwardPlan:
    """The steps whose backward runs for one set of seeds, in reverse topological order, and the
    (node, parameter) pairs whose gradient they write."""

    steps: list[Step]
    params: frozenset[tuple[str, str]]


@dataclass(eq=False, slots=True)
class Plan:
    """What computing a set of outputs takes: the steps in topological order, the graph inputs
    they read (sorted), and the backward plans met so far (seed names -> plan)."""

    steps: list[Step]
    inputs: list[str]
    frees: list[tuple[str, ...]]  # per step: the values no later step reads (outputs excepted)
    backward: dict[frozenset[str], BackwardPlan] = field(default_factory=dict)
    # batch size -> the shape each step's output must have, in step order (see output_shapes)
    shapes: dict[int | None, list[tuple]] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class Tape:
    """What one forward pass leaves for its backward: the plan it ran, the outputs it was asked
    for, every value it computed (node outputs and the batch inputs it read, by name) and what
    each op saved. It belongs to that forward alone."""

    plan: Plan
    outputs: tuple[str, ...]
    values: dict[str, np.ndarray]
    saved: dict[str, Any]
    training: bool
    updates: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # node -> state -> new


class Executor:
    """Runs a graph's forward and backward passes on batches (dicts of arrays)."""

    def __init__(self, graph: Graph, dtype: np.dtype) -> None:
        self.graph = graph
        self.dtype = np.dtype(dtype)
        self._plans: dict[tuple[str, ...], Plan] = {}  # a cache: plans depend on the graph only
        # the inputs whose values are cast to the model dtype
        self._float_inputs = frozenset(name for name, kind in graph.input_dtypes.items()
                                       if kind.startswith("float"))

    # -- planning ---------------------------------------------------------------------------

    def plan(self, outputs: tuple[str, ...]) -> Plan:
        """The steps needed to compute ``outputs``, in topological order (cached)."""
        if outputs not in self._plans:
            for name in outputs:
                if name not in self.graph.nodes:
                    raise GraphnetError(
                        f"'{name}' is not a node of graph '{self.graph.spec.name}'",
                        hint=did_you_mean(name, self.graph.nodes, "known nodes"),
                    )
            needed = set(outputs)
            for name in reversed(self.graph.order):  # walk back from the outputs
                if name in needed:
                    needed.update(s for s in self.graph.nodes[name].sources if s in self.graph.nodes)
            steps = []
            inputs = set()
            for index, name in enumerate(self.graph.order):
                if name in needed:
                    node = self.graph.nodes[name]
                    allowed = frozenset(node.op.inputs) | {p.name for p in node.params}
                    takes_out = bool(node.params) and getattr(node.op, "backward_takes_out", False)
                    sources = None if node.op.variadic else tuple((e.role, e.source) for e in node.edges)
                    wants = self._wants(node)
                    grad_edges = tuple((e, self.graph.nodes[e.source].needs_grad) for e in node.edges
                                       if e.role in wants and e.source in self.graph.nodes)
                    steps.append(Step(
                        node, index, wants, allowed, takes_out, node.name, node.op.forward,
                        node.op.backward, None if node.op.reduces_batch else node.shape, sources,
                        tuple(p.name for p in node.params), grad_edges,
                    ))
                    inputs.update(e.source for e in node.edges if e.source in self.graph.inputs)
            last = {}  # value name -> the position of the last step that reads it
            for position, item in enumerate(steps):
                for edge in item.node.edges:
                    last[edge.source] = position
            frees = [[] for _ in steps]
            for name, position in last.items():
                if name not in outputs:
                    frees[position].append(name)
            self._plans[outputs] = Plan(steps, sorted(inputs), [tuple(names) for names in frees])
        return self._plans[outputs]

    def _wants(self, node: Node) -> frozenset[str]:
        wants = {param.name for param in node.params}
        for edge in node.edges:
            source = self.graph.nodes.get(edge.source)
            if source is not None and source.needs_grad and edge.role not in node.op.no_grad:
                wants.add(edge.role)
        return frozenset(wants)

    def backward_plan(self, plan: Plan, seeds: frozenset[str]) -> BackwardPlan:
        """The steps of ``plan`` that a gradient reaches from ``seeds`` and that owe one (cached).

        A node is reached when it is a seed or a reached consumer wants a gradient for one of its
        edges from it; so the set is the same every time, and so are the parameters written."""
        if seeds not in plan.backward:
            reached = set(seeds)
            steps = []
            for item in reversed(plan.steps):
                if item.node.name not in reached or not item.wants:
                    continue
                steps.append(item)
                reached.update(edge.source for edge, needs_grad in item.grad_edges if needs_grad)
            params = frozenset((s.node.name, p.name) for s in steps for p in s.node.params)
            plan.backward[seeds] = BackwardPlan(steps, params)
        return plan.backward[seeds]

    # -- forward ----------------------------------------------------------------------------

    def forward(
        self,
        batch: Mapping[str, np.ndarray],
        params: Mapping[str, Mapping[str, np.ndarray]],
        outputs: tuple[str, ...],
        *,
        training: bool = False,
        seed: int = 0,
        step: int = 0,
        check_finite: bool = False,
        state: Mapping[str, Mapping[str, np.ndarray]] | None = None,
        keep: bool = True,
    ) -> Tape:
        """Compute ``outputs`` for ``batch``; ``params[node][param]`` are the node parameters and
        ``state[node][name]`` the ops' state (``ctx.state``).

        Returns the tape (``tape.values[name]`` for each output) that ``backward`` needs; in
        training, ``tape.updates[node][name]`` holds the new state values the ops gave.
        ``keep=False`` is a pass nothing will backpropagate through (``Model.predict``): nothing
        the ops save is kept, and every value is freed after the last step that reads it, so
        the tape holds the outputs only."""
        plan = self.plan(outputs)
        values, batch_size = self._batch_inputs(batch, plan.inputs, outputs)
        saved: dict[str, Any] = {}
        updates: dict[str, dict[str, np.ndarray]] = {}
        state = state or {}
        dtype = self.dtype
        shapes = self.output_shapes(plan, batch_size)
        # This loop runs every training step: what can be looked up once is in the plan's steps,
        # and the common case of each check is one comparison (the methods say what is wrong).
        for item, expected, frees in zip(plan.steps, shapes, plan.frees):
            node = item.node
            if item.sources is None:
                arrays = group_inputs(node, values.__getitem__)
            else:
                arrays = {}
                for role, source in item.sources:
                    arrays[role] = values[source]
            node_params = params.get(item.name)
            if node_params:
                arrays.update(node_params)
            # the generator is built only if the op draws (dropout): building one costs ~20 us
            current = state.get(item.name)
            ctx = Context(training, dtype=dtype, seed=(seed, step, item.index), state=current)
            try:
                out, kept = item.forward(node.attrs, ctx, **arrays)
            except GraphnetError:
                raise
            except Exception as error:
                raise OpError(
                    f"op '{node.op.name}' failed in forward: {type(error).__name__}: {error}",
                    path=f"nodes.{node.name}",
                ) from error
            if not (isinstance(out, np.ndarray) and out.shape == expected and out.dtype == dtype):
                self._check_output(item, out, expected)
            if check_finite and not np.all(np.isfinite(out)):
                raise TrainingError(
                    f"output of node '{node.name}' (op {node.op.name}) is not finite",
                    path=f"nodes.{node.name}",
                )
            values[item.name] = out
            if keep:
                saved[item.name] = kept
            else:
                del kept
                for name in frees:
                    del values[name]
            if ctx.updates:
                self._check_updates(node, ctx.updates, current or {})
                updates[item.name] = ctx.updates
        return Tape(plan, outputs, values, saved, training, updates)

    def _check_updates(self, node: Node, updates: dict[str, Any], current: Mapping[str, np.ndarray]) -> None:
        """Each new state value an op gives must be state it declares, of the shape and dtype of
        the current value (when the caller passed one)."""
        where = f"op '{node.op.name}' (node '{node.name}')"
        declared = [entry.name for entry in node.op.active_state(node.attrs)]
        for name, value in updates.items():
            if name not in declared:
                known = ", ".join(f"'{n}'" for n in declared) or "none"
                raise OpError(
                    f"{where} set state '{name}', which it does not declare (its state: {known})",
                    path=f"nodes.{node.name}",
                    hint="declare it in the op's `state = (State(...),)` or fix the name",
                )
            expected = current.get(name)
            if expected is None:
                continue  # called without state (a bare executor): nothing to compare with
            if not (isinstance(value, np.ndarray) and value.shape == expected.shape
                    and value.dtype == expected.dtype):
                got = (f"a {value.dtype} array of shape {list(value.shape)}"
                       if isinstance(value, np.ndarray) else f"a {type(value).__name__}")
                raise OpError(
                    f"{where} set state '{name}' to {got}, expected a {expected.dtype} array of "
                    f"shape {list(expected.shape)}",
                    path=f"nodes.{node.name}",
                    hint="keep state in the model dtype and its declared shape",
                )

    def _batch_inputs(
        self, batch: Mapping[str, np.ndarray], names: list[str], outputs: tuple[str, ...]
    ) -> tuple[dict[str, np.ndarray], int | None]:
        """The batch arrays the plan reads (floats cast to the model dtype) and the batch size
        (None when the plan reads no input)."""
        arrays = {}
        size = None
        shapes, dtype = self.graph.inputs, self.dtype
        for name in names:
            if name not in batch:
                raise self._missing_inputs(batch, [n for n in names if n not in batch], outputs)
            array = batch[name]
            if type(array) is not np.ndarray:
                array = np.asarray(array)
            shape = array.shape
            if not shape or shape[1:] != shapes[name]:
                raise self._input_error(name, array)
            if name in self._float_inputs and array.dtype != dtype:
                array = array.astype(dtype)
            if size is None:
                size = shape[0]
            elif shape[0] != size:
                sizes = sorted({len(a) for a in arrays.values()} | {shape[0]})
                raise GraphnetError(f"batch arrays have different lengths: {sizes}")
            arrays[name] = array
        return arrays, size

    def _input_error(self, name: str, array: np.ndarray) -> GraphnetError:
        """A batch array whose shape does not fit input ``name``: what it is, what is expected."""
        expected = list(self.graph.inputs[name])
        if array.ndim == 0:
            return GraphnetError(
                f"input '{name}' is a single value (an array of shape []), not a batch",
                path=f"inputs.{name}",
                hint=f"give a batch: an array of shape [N] + {expected} (one sample: wrap it, [value])",
            )
        return GraphnetError(
            f"input '{name}' has per-sample shape {list(array.shape[1:])}, "
            f"the graph expects {expected} (array shape {list(array.shape)})",
            path=f"inputs.{name}",
            hint="the first axis is the batch; reshape the data",
        )

    def _missing_inputs(
        self, batch: Mapping[str, np.ndarray], missing: list[str], outputs: tuple[str, ...]
    ) -> GraphnetError:
        """The batch lacks inputs the requested outputs need: say which outputs need them and
        which of the requested outputs the given arrays suffice for."""
        needs = {name: set(self.plan((name,)).inputs) for name in outputs}
        needing = [name for name in outputs if needs[name].intersection(missing)]
        computable = [name for name in outputs if not needs[name].intersection(missing)]
        quoted = ", ".join(f"'{name}'" for name in missing)
        what = f"input {quoted}" if len(missing) == 1 else f"inputs {quoted}"
        whose = ", ".join(f"'{name}'" for name in needing)
        need = f"output {whose} needs" if len(needing) == 1 else f"outputs {whose} need"
        given = listed([str(key) for key in batch]) or "none"
        if computable:
            hint = (f"batch keys: {given}; give the missing arrays, or compute only what the batch "
                    f"allows with outputs={computable!r}")
        else:
            hint = f"batch keys: {given}; give the missing arrays, or ask for other outputs=[...]"
        return GraphnetError(f"the batch has no array for {what}, which {need}", hint=hint)

    def output_shapes(self, plan: Plan, batch_size: int | None) -> list[tuple]:
        """The shape of each step's output for a batch of ``batch_size``: (N, *node.shape), or ()
        for an op that reduces the batch (cached). With no batch size (a plan that reads no
        input) the first axis is None: each output's own (see ``_check_output``)."""
        if batch_size not in plan.shapes:
            plan.shapes[batch_size] = [() if item.expected is None else (batch_size,) + item.expected
                                       for item in plan.steps]
        return plan.shapes[batch_size]

    def _check_output(self, item: Step, out: Any, expected: tuple) -> None:
        """A forward output must be an array of the model dtype and of shape ``expected``: a
        wrong shape would broadcast silently later. Raises the error that says what is wrong;
        accepts any first axis where ``expected`` leaves it open (None)."""
        if expected and expected[0] is None:  # nothing fixes N: take the output's own
            expected = (out.shape[0] if getattr(out, "ndim", 0) else None,) + expected[1:]
        if isinstance(out, np.ndarray) and out.shape == expected and out.dtype == self.dtype:
            return
        node = item.node
        where = f"op '{node.op.name}' (node '{node.name}')"
        rule = "a loss: one number per batch, shape ()" if node.op.reduces_batch else (
            f"per-sample shape {list(node.shape)}"
        )
        hint = f"the op's shape rule says {rule}; fix forward or shape"
        if not isinstance(out, np.ndarray):
            received = f"a {type(out).__name__}"
        elif out.shape != expected:
            received = f"shape {list(out.shape)}"
        else:
            received = f"dtype {out.dtype}"
            hint = "keep the computation in the input's dtype (ctx.dtype)"
        shown = ["N" if size is None else size for size in expected]
        raise OpError(
            f"{where} forward returned {received}, expected a {self.dtype} array of shape {shown}",
            path=f"nodes.{node.name}",
            hint=hint,
        )

    # -- backward ---------------------------------------------------------------------------

    def backward(
        self,
        tape: Tape,
        seeds: Mapping[str, np.ndarray],
        param_grads: Mapping[str, Mapping[str, np.ndarray]],
        *,
        check_finite: bool = False,
        release: bool = False,
    ) -> BackwardPlan:
        """Backpropagate through the forward that made ``tape``, from ``seeds`` (node -> gradient
        of the objective wrt its output; each must be a node that forward computed).

        Parameter gradients go into ``param_grads[node][param]`` (arrays of the parameters'
        shapes): an op whose backward takes ``out`` writes them there itself, any other op's are
        copied there. Gradients wrt graph inputs are never computed. ``check_finite`` stops at
        the first non-finite gradient, naming the node (the training loop's NaN guard re-runs a
        failed step with it on). ``release`` frees the tape as it goes (each node's output and
        saved arrays once its backward ran), for a caller that will not backpropagate through
        it again (``Model.train_step``): later allocations reuse memory still in the cache.
        Returns the backward plan that ran (its ``params`` are the gradients written)."""
        values, saved = tape.values, tape.saved
        grads: dict[str, np.ndarray] = {}
        for name, seed in seeds.items():
            grads[name] = self._seed(tape, name, seed)
        backward_plan = self.backward_plan(tape.plan, frozenset(seeds))
        for item in backward_plan.steps:
            node = item.node
            dy = grads.pop(item.name)
            if release:  # its consumers' backward ran: nothing needs its output any more
                kept = saved.pop(item.name)
                del values[item.name]
            else:
                kept = saved[item.name]
            targets = param_grads.get(item.name, _NO_GRADS)
            try:
                if item.takes_out:
                    returned = item.backward(node.attrs, kept, dy, item.wants, out=targets)
                else:
                    returned = item.backward(node.attrs, kept, dy, item.wants)
            except GraphnetError:
                raise
            except Exception as error:
                raise OpError(
                    f"op '{node.op.name}' failed in backward: {type(error).__name__}: {error}",
                    path=f"nodes.{node.name}",
                ) from error
            written = self._check_returned(item, returned, targets)
            if check_finite or not written:
                for name in item.param_names:
                    g = returned[name]
                    if check_finite and not np.all(np.isfinite(g)):
                        raise TrainingError(
                            f"gradient of parameter '{node.name}.{name}' (op {node.op.name}) is not finite",
                            path=f"nodes.{node.name}",
                        )
                    target = targets[name]
                    if g is not target:  # written in place by the op, or copied now
                        np.copyto(target, g)
            for edge, needs_grad in item.grad_edges:
                g = returned[edge.role]
                if edge.index is not None:
                    g = g[edge.index]
                shape = values[edge.source].shape
                if not (isinstance(g, np.ndarray) and g.shape == shape and g.dtype == self.dtype):
                    self._check_shape(node, edge.role, g, shape, edge.index)
                if check_finite and not np.all(np.isfinite(g)):
                    raise TrainingError(
                        f"gradient flowing from node '{node.name}' (op {node.op.name}) into "
                        f"'{edge.source}' through role '{edge.role}' is not finite",
                        path=f"nodes.{node.name}",
                    )
                if not needs_grad:
                    continue
                if edge.source in grads:
                    # fan-out: a node used several times gets the sum, into a new array (ops may
                    # return dy itself or views of it, e.g. add returns dy for both a and b)
                    grads[edge.source] = grads[edge.source] + g
                else:
                    grads[edge.source] = g
        return backward_plan

    def _seed(self, tape: Tape, name: str, seed: Any) -> np.ndarray:
        """The gradient backward starts from at node ``name``: ``seed`` broadcast to its output."""
        if name not in self.graph.nodes or name not in tape.values:
            computed = ", ".join(tape.outputs)
            raise GraphnetError(
                f"cannot backpropagate from '{name}': this forward did not compute it "
                f"(its outputs: {computed})",
                hint=f"include '{name}' in forward(outputs=[...])",
            )
        value = tape.values[name]
        if type(seed) is np.ndarray and seed.shape == value.shape and seed.dtype == self.dtype:
            return seed.copy()  # the usual seed: a loss's gradient of 1
        try:
            return np.broadcast_to(np.asarray(seed, self.dtype), value.shape).copy()
        except ValueError:
            raise GraphnetError(
                f"the gradient given for '{name}' has shape {list(np.shape(seed))}, "
                f"its output has shape {list(value.shape)}",
                hint="give one gradient value per output value (or a scalar)",
            ) from None

    def _check_returned(self, item: Step, returned: Any, targets: Mapping[str, np.ndarray]) -> bool:
        """Backward must return a dict with a gradient for each wanted name and none for unknown
        names, parameter gradients of the parameters' shapes and a list per variadic role.
        Returns True in the common case: every parameter gradient written in place (``out``)."""
        node = item.node
        # (a node with a variadic role, no sources, returns lists: checked below)
        if type(returned) is dict and item.sources is not None and returned.keys() == item.wants:
            for name in item.param_names:
                if returned[name] is not targets.get(name):
                    break
            else:
                return True  # checked cheaply: the parameters' gradient buffers were written
        where = f"op '{node.op.name}' (node '{node.name}')"
        if not isinstance(returned, dict):
            raise GradientError(
                f"{where} backward returned {type(returned).__name__}, expected a dict of gradients",
                path=f"nodes.{node.name}",
            )
        if not item.allowed.issuperset(returned):
            raise GradientError(
                f"{where} backward returned gradients for unknown names {sorted(set(returned) - item.allowed)}",
                path=f"nodes.{node.name}",
                hint=f"return gradients only for {sorted(item.allowed)}",
            )
        missing = item.wants.difference(returned)
        if missing:
            raise GradientError(
                f"{where} backward did not return gradients for {sorted(missing)}",
                path=f"nodes.{node.name}",
                hint="backward must return one gradient per wanted input role and parameter",
            )
        for param in node.params:
            self._check_shape(node, param.name, returned[param.name], node.param_shapes[param.name], None)
        for role in node.op.variadic:
            if role not in item.wants:
                continue
            count = sum(1 for e in node.edges if e.role == role)
            if not isinstance(returned[role], (list, tuple)) or len(returned[role]) != count:
                raise GradientError(
                    f"{where} backward must return a list of {count} gradients for variadic role '{role}'",
                    path=f"nodes.{node.name}",
                )
        return False

    def _check_shape(self, node: Node, name: str, grad: Any, shape: tuple, index: int | None) -> None:
        if isinstance(grad, np.ndarray) and grad.shape == shape and grad.dtype == self.dtype:
            return  # the common case, checked cheaply
        label = f"'{name}'" + (f"[{index}]" if index is not None else "")
        where = f"op '{node.op.name}' (node '{node.name}')"
        if not isinstance(grad, np.ndarray):
            raise GradientError(
                f"{where} returned a {type(grad).__name__} as gradient of {label}, expected an array",
                path=f"nodes.{node.name}",
            )
        if grad.shape != tuple(shape):
            raise GradientError(
                f"{where} returned a gradient of shape {list(grad.shape)} for {label}, "
                f"expected {list(shape)}",
                path=f"nodes.{node.name}",
            )
        if grad.dtype != self.dtype:
            raise GradientError(
                f"{where} returned a {grad.dtype} gradient for {label}, expected {self.dtype}",
                path=f"nodes.{node.name}",
                hint="keep the computation in the input's dtype",
            )
