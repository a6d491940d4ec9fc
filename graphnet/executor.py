"""The graph executor: forward over the topological order, backward over it in reverse.

The plan (which nodes run, in which order, which gradients they owe) is computed once per set of
requested outputs and reused. Forward keeps each node's output and what its op saved for backward.
Backward seeds the loss with 1, walks the plan in reverse, asks each op only for the gradients that
are needed (never for labels or data inputs), *adds* the contributions of a node that feeds several
consumers, and checks every gradient an op returns (present, shape, dtype), naming the node and op
when one is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .errors import GradientError, GraphnetError, OpError, TrainingError
from .graph import Graph, Node, group_inputs
from .op import Context


@dataclass
class Step:
    """One node of the plan with what backward owes: the roles and parameters that need a
    gradient (``wants``)."""

    node: Node
    index: int  # position in the graph's order: seeds the node's random generator
    wants: frozenset[str]


class Executor:
    """Runs a graph's forward and backward passes on batches (dicts of arrays)."""

    def __init__(self, graph: Graph, dtype: np.dtype) -> None:
        self.graph = graph
        self.dtype = np.dtype(dtype)
        self._plans: dict[tuple[str, ...], list[Step]] = {}
        self.values: dict[str, np.ndarray] = {}
        self.saved: dict[str, Any] = {}
        self._last_plan: list[Step] = []
        self._last_context: tuple[bool, int, int] = (False, 0, 0)

    # -- planning ---------------------------------------------------------------------------

    def plan(self, outputs: tuple[str, ...]) -> list[Step]:
        """The steps needed to compute ``outputs``, in topological order (cached)."""
        if outputs not in self._plans:
            for name in outputs:
                if name not in self.graph.nodes:
                    raise GraphnetError(
                        f"'{name}' is not a node of graph '{self.graph.spec.name}'",
                        hint="known nodes: " + ", ".join(self.graph.nodes),
                    )
            needed = set(outputs)
            for name in reversed(self.graph.order):  # walk back from the outputs
                if name in needed:
                    needed.update(s for s in self.graph.nodes[name].sources if s in self.graph.nodes)
            steps = []
            for index, name in enumerate(self.graph.order):
                if name in needed:
                    node = self.graph.nodes[name]
                    steps.append(Step(node, index, self._wants(node)))
            self._plans[outputs] = steps
        return self._plans[outputs]

    def _wants(self, node: Node) -> frozenset[str]:
        wants = {param.name for param in node.params}
        for edge in node.edges:
            source = self.graph.nodes.get(edge.source)
            if source is not None and source.needs_grad and edge.role not in node.op.no_grad:
                wants.add(edge.role)
        return frozenset(wants)

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
    ) -> dict[str, np.ndarray]:
        """Compute ``outputs`` for ``batch``. ``params[node][param]`` are the node parameters."""
        steps = self.plan(outputs)
        values: dict[str, np.ndarray] = dict(self._batch_inputs(batch, steps))
        self.saved = {}
        for item in steps:
            node = item.node
            arrays = group_inputs(node, values.__getitem__)
            arrays.update(params.get(node.name, {}))
            ctx = Context(
                training=training,
                rng=np.random.default_rng([seed, step, item.index]),
                dtype=self.dtype,
            )
            try:
                out, saved = node.op.forward(node.attrs, ctx, **arrays)
            except GraphnetError:
                raise
            except Exception as error:
                raise OpError(
                    f"op '{node.op.name}' failed in forward: {type(error).__name__}: {error}",
                    path=f"nodes.{node.name}",
                ) from error
            if check_finite and not np.all(np.isfinite(out)):
                raise TrainingError(
                    f"output of node '{node.name}' (op {node.op.name}) is not finite",
                    path=f"nodes.{node.name}",
                )
            values[node.name] = out
            self.saved[node.name] = saved
        self.values = values
        self._last_plan = steps
        return {name: values[name] for name in outputs}

    def _batch_inputs(self, batch: Mapping[str, np.ndarray], steps: list[Step]):
        needed = {e.source for s in steps for e in s.node.edges if e.source in self.graph.inputs}
        sizes = set()
        for name in sorted(needed):
            if name not in batch:
                raise GraphnetError(
                    f"the batch has no array for input '{name}'",
                    hint="batch keys: " + (", ".join(batch) or "none") + f"; inputs: {', '.join(self.graph.inputs)}",
                )
            array = np.asarray(batch[name])
            expected = self.graph.inputs[name]
            if tuple(array.shape[1:]) != expected:
                raise GraphnetError(
                    f"input '{name}' has per-sample shape {list(array.shape[1:])}, "
                    f"the graph expects {list(expected)} (array shape {list(array.shape)})",
                    path=f"inputs.{name}",
                    hint="the first axis is the batch; reshape the data",
                )
            if self.graph.input_dtypes[name].startswith("float"):
                array = array.astype(self.dtype, copy=False)
            sizes.add(array.shape[0])
            yield name, array
        if len(sizes) > 1:
            raise GraphnetError(f"batch arrays have different lengths: {sorted(sizes)}")

    # -- backward ---------------------------------------------------------------------------

    def backward(
        self,
        seeds: Mapping[str, np.ndarray],
        write_param_grad: Callable[[str, str, np.ndarray], None],
        *,
        check_finite: bool = False,
    ) -> None:
        """Backpropagate from ``seeds`` (node -> gradient of the objective wrt its output).

        Parameter gradients are handed to ``write_param_grad(node, param, grad)``; gradients wrt
        graph inputs are never computed. ``check_finite`` stops at the first non-finite gradient,
        naming the node (the training loop's NaN guard re-runs a failed step with it on)."""
        grads: dict[str, np.ndarray] = {}
        for name, seed in seeds.items():
            value = self.values[name]
            grads[name] = np.broadcast_to(np.asarray(seed, self.dtype), value.shape).copy()
        for item in reversed(self._last_plan):
            node = item.node
            if node.name not in grads or not item.wants:
                grads.pop(node.name, None)
                continue
            dy = grads.pop(node.name)
            try:
                returned = node.op.backward(node.attrs, self.saved[node.name], dy, item.wants)
            except GraphnetError:
                raise
            except Exception as error:
                raise OpError(
                    f"op '{node.op.name}' failed in backward: {type(error).__name__}: {error}",
                    path=f"nodes.{node.name}",
                ) from error
            self._check_returned(node, item.wants, returned)
            for param in node.params:
                g = returned[param.name]
                if check_finite and not np.all(np.isfinite(g)):
                    raise TrainingError(
                        f"gradient of parameter '{node.name}.{param.name}' (op {node.op.name}) is not finite",
                        path=f"nodes.{node.name}",
                    )
                write_param_grad(node.name, param.name, g)
            for edge in node.edges:
                if edge.role not in item.wants or edge.source not in self.graph.nodes:
                    continue
                g = returned[edge.role]
                if edge.index is not None:
                    g = g[edge.index]
                self._check_shape(node, edge.role, g, self.values[edge.source].shape, edge.index)
                if check_finite and not np.all(np.isfinite(g)):
                    raise TrainingError(
                        f"gradient flowing from node '{node.name}' (op {node.op.name}) into "
                        f"'{edge.source}' through role '{edge.role}' is not finite",
                        path=f"nodes.{node.name}",
                    )
                if not self.graph.nodes[edge.source].needs_grad:
                    continue
                if edge.source in grads:
                    # fan-out: a node used several times gets the sum (never in place: the op may
                    # have returned an array it also returned elsewhere, e.g. add's dy)
                    grads[edge.source] = grads[edge.source] + g
                else:
                    grads[edge.source] = g

    def _check_returned(self, node: Node, wants: frozenset[str], returned: Any) -> None:
        where = f"op '{node.op.name}' (node '{node.name}')"
        if not isinstance(returned, dict):
            raise GradientError(
                f"{where} backward returned {type(returned).__name__}, expected a dict of gradients",
                path=f"nodes.{node.name}",
            )
        allowed = set(node.op.inputs) | {p.name for p in node.params}
        unknown = set(returned) - allowed
        if unknown:
            raise GradientError(
                f"{where} backward returned gradients for unknown names {sorted(unknown)}",
                path=f"nodes.{node.name}",
                hint=f"return gradients only for {sorted(allowed)}",
            )
        missing = wants - set(returned)
        if missing:
            raise GradientError(
                f"{where} backward did not return gradients for {sorted(missing)}",
                path=f"nodes.{node.name}",
                hint="backward must return one gradient per wanted input role and parameter",
            )
        for param in node.params:
            self._check_shape(node, param.name, returned[param.name], node.param_shapes[param.name], None)
        for role in wants & set(node.op.variadic):
            count = sum(1 for e in node.edges if e.role == role)
            if not isinstance(returned[role], (list, tuple)) or len(returned[role]) != count:
                raise GradientError(
                    f"{where} backward must return a list of {count} gradients for variadic role '{role}'",
                    path=f"nodes.{node.name}",
                )

    def _check_shape(self, node: Node, name: str, grad: Any, shape: tuple, index: int | None) -> None:
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
