"""From a validated spec to a checked graph: ops resolved, roles bound, order fixed, shapes known.

``build_graph(spec)`` does every check that needs the op registry, before any compute:
unknown ops (listing the known ones), attributes validated by each op's own model, roles the op
does not have or required roles missing, references to missing nodes or inputs, cycles (naming
the cycle), and shape mismatches found by static shape inference through the whole graph.
The topological order is computed iteratively (Kahn's algorithm), never by recursion.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .errors import GraphnetError, OpError, ShapeError, did_you_mean, first_to_report
from .op import Op, Param, Shape
from .registry import Registry, default_registry
from .spec import Spec


@dataclass
class Edge:
    """One input of a node: ``role`` (with ``index`` for a variadic role) fed by ``source``."""

    role: str
    index: int | None
    source: str


@dataclass
class Node:
    name: str
    op: Op
    attrs: Any
    edges: list[Edge]
    params: tuple[Param, ...]
    shape: Shape = ()
    param_shapes: dict[str, Shape] = field(default_factory=dict)
    needs_grad: bool = False  # does any parameter feed it (so a gradient must reach it)?

    @property
    def sources(self) -> list[str]:
        return [edge.source for edge in self.edges]


@dataclass
class Graph:
    spec: Spec
    inputs: dict[str, Shape]
    input_dtypes: dict[str, str]
    nodes: dict[str, Node]  # in topological order
    outputs: list[str]

    @property
    def order(self) -> list[str]:
        return list(self.nodes)

    def shape_of(self, name: str) -> Shape:
        return self.inputs[name] if name in self.inputs else self.nodes[name].shape

    def param_count(self) -> int:
        return sum(math.prod(shape) for node in self.nodes.values() for shape in node.param_shapes.values())

    def op_versions(self) -> dict[str, int]:
        """Which version of each op this graph uses (recorded in model files)."""
        return {node.op.name: node.op.version for node in self.nodes.values()}


def build_graph(spec: Spec, registry: Registry | None = None) -> Graph:
    """Check the spec's graph against the registry and infer every shape."""
    registry = registry or default_registry()
    spec_nodes = spec.all_nodes()
    nodes: dict[str, Node] = {}
    for name, node_spec in spec_nodes.items():
        path = ("nodes", name)
        if name in spec.inputs:
            raise spec.error(path, f"node '{name}' has the same name as an input", hint="rename one")
        try:
            op = registry.get(node_spec.op)
        except OpError as error:
            raise spec.error(path + ("op",), error.message, hint=error.hint) from None
        attrs = _validate_attrs(spec, path, op, node_spec.attrs)
        edges = _bind_roles(spec, path, op, node_spec.inputs, spec_nodes)
        nodes[name] = Node(name, op, attrs, edges, op.active_params(attrs))

    order = _topological_order(spec, nodes)
    graph = Graph(
        spec=spec,
        inputs={name: tuple(inp.shape) for name, inp in spec.inputs.items()},
        input_dtypes={name: inp.dtype for name, inp in spec.inputs.items()},
        nodes={name: nodes[name] for name in order},
        outputs=spec.output_names(),
    )
    for index, out in enumerate(graph.outputs):
        if out not in graph.nodes:
            raise spec.error(
                ("outputs", index), f"output '{out}' is not a node",
                hint=did_you_mean(out, list(graph.nodes)),
            )
    _infer_shapes(graph)
    return graph


def _validate_attrs(spec: Spec, path: tuple, op: Op, raw: dict) -> Any:
    try:
        return op.Attrs(**raw)
    except ValidationError as error:
        first = first_to_report(error.errors())  # a typo in `units` is unknown 'unitz', not missing
        loc = tuple(first["loc"])
        key = loc[0] if loc else None
        attr_path = path + ("attrs",) + ((key,) if key is not None else ())
        known = list(op.Attrs.model_fields)
        if first["type"] == "extra_forbidden":
            message = f"op '{op.name}' has no attribute '{key}'"
            hint = did_you_mean(str(key), known, "its attributes") if known else "it takes no attributes"
        elif first["type"] == "missing":
            message = f"op '{op.name}' needs attribute '{key}'"
            hint = f"add attrs: {{{key}: ...}}"
        else:
            message = f"{first['msg']}; received {first.get('input')!r}"
            hint = f"see `graphnet ops` for {op.name}'s attributes"
        raise spec.error(attr_path, message, hint=hint) from None


def _bind_roles(spec: Spec, path: tuple, op: Op, inputs: dict, spec_nodes: dict) -> list[Edge]:
    for role in inputs:
        if role not in op.inputs:
            raise spec.error(
                path + ("inputs", role),
                f"op '{op.name}' has no input role '{role}'",
                hint=did_you_mean(role, op.inputs, "its roles"),
            )
    edges: list[Edge] = []
    known = [*spec.inputs, *spec_nodes]
    for role in op.inputs:
        if role not in inputs:
            raise spec.error(
                path + ("inputs",),
                f"op '{op.name}' needs input role '{role}'",
                hint=f"add `{role}: <node or input>` under inputs (roles: {', '.join(op.inputs)})",
            )
        value = inputs[role]
        if role in op.variadic:
            sources = value if isinstance(value, list) else [value]
            if not sources:
                raise spec.error(path + ("inputs", role), f"role '{role}' needs at least one input")
            items = list(enumerate(sources))
        elif isinstance(value, list):
            raise spec.error(
                path + ("inputs", role),
                f"role '{role}' of op '{op.name}' takes one input, received a list of {len(value)}",
                hint="give a single node or input name",
            )
        else:
            items = [(None, value)]
        for index, source in items:
            where = path + ("inputs", role) + ((index,) if index is not None else ())
            if source not in known:
                raise spec.error(
                    where, f"'{source}' is neither a node nor an input",
                    hint=did_you_mean(source, known),
                )
            edges.append(Edge(role, index, source))
    return edges


def _topological_order(spec: Spec, nodes: dict[str, Node]) -> list[str]:
    """Kahn's algorithm, in declaration order where there is a choice; cycles are named."""
    waiting = {name: {s for s in node.sources if s in nodes} for name, node in nodes.items()}
    users: dict[str, list[str]] = {name: [] for name in nodes}
    for name, deps in waiting.items():
        for dep in deps:
            users[dep].append(name)
    # The ready nodes form a heap keyed by declaration position, so a spec declared in a valid
    # order keeps that order (and a node appended to the spec does not move the others).
    position = {name: index for index, name in enumerate(nodes)}
    ready = [(position[name], name) for name, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for user in users[name]:
            waiting[user].discard(name)
            if not waiting[user]:
                heapq.heappush(ready, (position[user], user))
    if len(order) < len(nodes):
        cycle = _find_cycle({n: deps for n, deps in waiting.items() if deps})
        raise spec.error(
            ("nodes", cycle[0]),
            "the graph has a cycle: " + " -> ".join(cycle + [cycle[0]]),
            hint="a node cannot depend on its own output; break the cycle",
        )
    return order


def _find_cycle(waiting: dict[str, set[str]]) -> list[str]:
    """Walk dependencies from any stuck node until a node repeats (iteratively)."""
    start = min(waiting)
    seen: list[str] = []
    node = start
    while node not in seen:
        seen.append(node)
        node = min(waiting[node])
    cycle = seen[seen.index(node):]
    return list(reversed(cycle))


def _infer_shapes(graph: Graph) -> None:
    spec = graph.spec
    for name, node in graph.nodes.items():
        shapes = group_inputs(node, graph.shape_of)
        path = ("nodes", name)
        try:
            node.shape = tuple(node.op.shape(node.attrs, **shapes))
            for param in node.params:
                node.param_shapes[param.name] = tuple(param.shape(node.attrs, shapes))
        except ShapeError as error:
            raise spec.error(path, error.message, hint=error.hint, cls=ShapeError) from None
        except GraphnetError:
            raise
        except Exception as error:  # a plugin's shape rule crashed: say which
            raise spec.error(
                path, f"shape rule of op '{node.op.name}' failed: {type(error).__name__}: {error}",
                cls=OpError,
            ) from error
        node.needs_grad = bool(node.params) or any(
            graph.nodes[e.source].needs_grad for e in node.edges
            if e.source in graph.nodes and e.role not in node.op.no_grad
        )
        for edge in node.edges:
            if edge.source in graph.nodes and graph.nodes[edge.source].op.reduces_batch:
                raise spec.error(
                    path + ("inputs", edge.role),
                    f"'{edge.source}' is a loss (one number per batch) and cannot feed another node",
                    cls=ShapeError,
                )


def group_inputs(node: Node, value_of) -> dict[str, Any]:
    """Role -> value (a list for variadic roles), from the node's edges."""
    grouped: dict[str, Any] = {}
    for edge in node.edges:
        if edge.index is None:
            grouped[edge.role] = value_of(edge.source)
        else:
            grouped.setdefault(edge.role, []).append(value_of(edge.source))
    return grouped


