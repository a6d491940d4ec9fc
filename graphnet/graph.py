"""From a validated spec to a checked graph: ops resolved, roles bound, order fixed, shapes known.

``build_graph(spec)`` does every check that needs the op registry, before any compute:
unknown ops (listing the known ones), attributes validated by each op's own model, roles the op
does not have or required roles missing, references to missing nodes or inputs, cycles (naming
the cycle), and shape mismatches found by static shape inference through the whole graph.

The `layers:` shorthand names ops (its activation, output activation and loss); they are checked
here, where the ops are known: each must fit its place (an activation takes one input, a loss
two and reduces the batch), and its input roles come from the op itself.

An op that is registered but cannot be used (a plugin that fails to import, two distributions
registering the name, a version that is not installed) is reported once, where the spec first
names it, however many nodes use it: it is a problem of the installation, not of each node.

Errors are reported together, each located at its own spec path and line (up to
``errors.MAX_REPORTED``): every node's op, attributes, roles and references are checked before
any error is raised; then, once the graph is known to be well formed, every shape. A node whose
input shape could not be inferred is skipped, so one mistake is reported once, not once per node
downstream of it.

Every step is linear in the size of the graph (a 60,000-node chain builds in about a second): names
are looked up in sets and dicts, the topological order is computed iteratively (Kahn's algorithm,
a heap keeping declaration order among equals), never by recursion.
"""

from __future__ import annotations

import gc
import heapq
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Collection, Iterator, Mapping

from pydantic import ValidationError

from .errors import (
    MAX_REPORTED, GraphnetError, OpError, ShapeError, clip, did_you_mean, raise_all, short,
)
from .op import Op, Param, Shape, known_initializers
from .registry import Registry, default_registry
from .spec import NodeSpec, Spec
from .spec.models import NO_OP


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
        """Number of trainable scalars (a Python int: exact however large the layers are)."""
        return sum(math.prod(shape) for node in self.nodes.values() for shape in node.param_shapes.values())

    def op_versions(self) -> dict[str, int]:
        """Which version of each op this graph uses (recorded in model files)."""
        return {node.op.name: node.op.version for node in self.nodes.values()}


def build_graph(
    spec: Spec, registry: Registry | None = None, *, op_versions: Mapping[str, int] | None = None
) -> Graph:
    """Check the spec's graph against the registry and infer every shape.

    ``op_versions`` (op name -> version) asks for earlier versions of some ops, as a model file
    saved with them does; the others are the current ones. Raises the first error found, carrying
    the others in ``.more`` (``errors.raise_all``)."""
    with _gc_paused():
        return _build(spec, _Ops(spec, registry or default_registry(), op_versions or {}))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector. Building a graph allocates a few objects per node
    but leaves next to no garbage cycles (any are collected once it is back on), while each full
    collection walks every live object, the spec's included: on a 60,000-node spec the collector
    took half the build time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(spec: Spec, ops: "_Ops") -> Graph:
    """build_graph's work: the shorthand's ops, every node, then the order, then every shape."""
    errors: list[GraphnetError] = []
    roles = _shorthand_roles(spec, ops, errors)
    spec_nodes = spec.all_nodes(roles)
    known = _Names(spec.inputs, spec_nodes)
    nodes: dict[str, Node] = {}
    for name, node_spec in spec_nodes.items():
        node = _check_node(spec, name, node_spec, ops, known, errors)
        if node is not None:
            nodes[name] = node
    outputs = spec.output_names()
    for index, out in enumerate(outputs):
        if out not in spec_nodes:
            errors.append(spec.error(
                ("outputs", index), f"output '{out}' is not a node",
                hint=did_you_mean(out, list(spec_nodes)) if _room(errors) else None,
            ))
    raise_all(errors)

    order = _topological_order(spec, nodes)
    graph = Graph(
        spec=spec,
        inputs={name: tuple(inp.shape) for name, inp in spec.inputs.items()},
        input_dtypes={name: inp.dtype for name, inp in spec.inputs.items()},
        nodes={name: nodes[name] for name in order},
        outputs=outputs,
    )
    raise_all(_infer_shapes(graph))
    spec.learn_roles(roles)  # so that spec.all_nodes() shows the graph's roles from now on
    return graph


def _room(errors: list) -> bool:
    """Whether another error will be shown in full. Past ``MAX_REPORTED`` errors are only counted,
    so their hints (a search through every name) are not worth computing."""
    return len(errors) < MAX_REPORTED


class _Names:
    """The graph inputs and node names: membership in O(1), and hints for a name that is not one."""

    def __init__(self, inputs: Collection[str], nodes: Collection[str]) -> None:
        self.listing = [*inputs, *nodes]
        self.known = set(self.listing)

    def __contains__(self, name: object) -> bool:
        return name in self.known

    def hint(self, name: str) -> str:
        return did_you_mean(name, self.listing)


# ----------------------------------------------------------------------------------------------
# The ops, each looked up once
# ----------------------------------------------------------------------------------------------


class _Ops:
    """The ops a spec uses, looked up once per name, and the names already reported: a problem
    with a registered op (the installation's) is reported once; so is any problem with an op the
    `layers:` shorthand names, at the shorthand's field."""

    def __init__(self, spec: Spec, registry: Registry, versions: Mapping[str, int]) -> None:
        self.spec = spec
        self.registry = registry
        self.versions = versions
        self.registered = set(registry.names())
        self.found: dict[str, Op | OpError] = {}
        self.reported: set[str] = set()  # op names whose problem is reported
        self.refused: set[str] = set()  # op names the shorthand cannot use (reported at layers.*)

    def get(self, name: str) -> Op:
        """The op (in the version asked for), or the OpError saying why not."""
        if name not in self.found:
            try:
                self.found[name] = self.registry.get(name, version=self.versions.get(name))
            except OpError as error:
                self.found[name] = error
        found = self.found[name]
        if isinstance(found, OpError):
            raise found
        return found

    def report(self, name: str, error: OpError, path: tuple, errors: list) -> None:
        """Append ``error`` about op ``name`` at ``path``, unless it is an installation problem
        reported already (a name that is not registered at all is a typo at each node)."""
        if name in self.reported:
            return
        if name in self.registered:
            self.reported.add(name)
        errors.append(self.spec.error(path, error.message, hint=error.hint))

    def from_shorthand(self, node_name: str) -> bool:
        return self.spec.layers is not None and node_name not in self.spec.nodes


# ----------------------------------------------------------------------------------------------
# The `layers:` shorthand's ops
# ----------------------------------------------------------------------------------------------


def _shorthand_roles(spec: Spec, ops: _Ops, errors: list) -> dict[str, list[str]]:
    """Check the ops the `layers:` shorthand names, at its fields, and return each one's input
    roles in the order the shorthand binds them (the loss: prediction, then labels)."""
    layers = spec.layers
    if layers is None:
        return {}
    places = [("activation", layers.activation), ("output_activation", layers.output_activation),
              ("loss", layers.loss)]
    roles: dict[str, list[str]] = {}
    for field_name, op_name in places:
        if op_name == NO_OP and field_name != "activation":
            continue
        path = ("layers", field_name)
        try:
            op = ops.get(op_name)
        except OpError as error:
            ops.report(op_name, error, path, errors)
            ops.refused.add(op_name)
            continue
        problem = shorthand_misfit(op, field_name)
        if problem is not None:
            errors.append(spec.error(path, problem[0], hint=problem[1]))
            ops.refused.add(op_name)
            continue
        roles[op_name] = _binding_order(op)
    return roles


def shorthand_misfit(op: Op, field_name: str) -> tuple[str, str] | None:
    """Why ``op`` cannot stand where the shorthand's ``field_name`` puts it: (message, hint)."""
    if field_name == "loss":
        if not op.reduces_batch or len(op.inputs) != 2 or op.variadic:
            return (f"op '{op.name}' is not a loss of two inputs (roles: {', '.join(op.inputs)})",
                    "a loss takes the prediction and the labels and reduces the batch: "
                    "softmax_cross_entropy, cross_entropy, mse, or none")
        return None
    if op.reduces_batch or len(op.inputs) != 1 or op.variadic:
        return (f"op '{op.name}' takes {len(op.inputs)} inputs (roles: {', '.join(op.inputs)})"
                + (" and reduces the batch" if op.reduces_batch else "") + "; an activation takes one",
                "use an op of one input such as relu, tanh or sigmoid, or write the graph under nodes:")
    required = [name for name, f in op.Attrs.model_fields.items() if f.is_required()]
    if required:
        return (f"op '{op.name}' needs attributes ({', '.join(required)}), which the layers: "
                "shorthand cannot give", "write the graph under nodes: to set them")
    try:  # the chain's activations get vectors of features and must keep them
        kept = tuple(op.shape(op.Attrs(), **{op.inputs[0]: (5,)})) == (5,)
    except Exception:
        kept = False
    if not kept:
        return (f"op '{op.name}' does not keep the shape of a vector of features, which an "
                "activation of the layers: shorthand must",
                "use an elementwise op such as relu, tanh or sigmoid, or write the graph under nodes:")
    return None


def _binding_order(op: Op) -> list[str]:
    """The roles in the order the shorthand binds its sources: for a loss the labels come second
    (the role that gets no gradient, when exactly one does not)."""
    roles = list(op.inputs)
    labels = [role for role in roles if role in op.no_grad]
    if len(roles) == 2 and len(labels) == 1:
        return [role for role in roles if role not in labels] + labels
    return roles


# ----------------------------------------------------------------------------------------------
# One node: op, attributes, roles, references
# ----------------------------------------------------------------------------------------------


def _check_node(
    spec: Spec, name: str, node_spec: NodeSpec, ops: _Ops, known: _Names, errors: list
) -> Node | None:
    """The checked node, or None when something is wrong with it (appended to ``errors``)."""
    path = ("nodes", name)
    count = len(errors)
    if ops.from_shorthand(name) and node_spec.op in ops.refused:
        return None  # reported at the shorthand's field
    if name in spec.inputs:
        errors.append(spec.error(path, f"node '{name}' has the same name as an input", hint="rename one"))
    try:
        op = ops.get(node_spec.op)
    except OpError as error:
        ops.report(node_spec.op, error, path + ("op",), errors)
        # without the op, roles cannot be checked; the references still can
        for where, source in _references(path, node_spec.inputs):
            if source not in known:
                errors.append(_missing_reference(spec, where, source, known, errors))
        return None
    attrs = _validate_attrs(spec, path, op, node_spec.attrs, errors)
    edges = _bind_roles(spec, path, op, node_spec.inputs, known, errors)
    if len(errors) > count:
        return None
    params = _active_params(spec, path, op, attrs, errors)
    if params is None:
        return None
    return Node(name, op, attrs, edges, params)


def _active_params(spec: Spec, path: tuple, op: Op, attrs: Any, errors: list) -> tuple[Param, ...] | None:
    """The parameters these attributes turn on, each with a known initializer (checked now, not
    when the model is created); None with the error appended when one is not."""
    try:
        params = op.active_params(attrs)
        for param in params:
            init = param.initializer(attrs)
            if init not in known_initializers():
                errors.append(spec.error(
                    path, f"parameter '{param.name}' of op '{op.name}' asks for unknown initializer {short(init)}",
                    hint="known: " + ", ".join(known_initializers()), cls=OpError,
                ))
                return None
    except Exception as error:  # a plugin's enabled= or init= function crashed: say which
        located = spec.error(path, f"parameters of op '{op.name}' failed: {type(error).__name__}: {error}",
                             cls=OpError)
        located.__cause__ = error
        errors.append(located)
        return None
    return params


def _references(path: tuple, inputs: dict) -> list[tuple[tuple, str]]:
    """(spec path, name) of every node or input a node's ``inputs`` name, whatever the roles."""
    found = []
    for role, value in inputs.items():
        if isinstance(value, list):
            found.extend((path + ("inputs", role, i), source) for i, source in enumerate(value))
        else:
            found.append((path + ("inputs", role), value))
    return found


def _missing_reference(spec: Spec, where: tuple, source: str, known: _Names, errors: list) -> GraphnetError:
    return spec.error(
        where, f"'{clip(source)}' is neither a node nor an input",
        hint=known.hint(source) if _room(errors) else None,
    )


def _validate_attrs(spec: Spec, path: tuple, op: Op, raw: dict, errors: list) -> Any:
    """The op's attributes model, or None with one error per bad attribute appended."""
    try:
        return op.Attrs(**raw)
    except ValidationError as error:
        for item in _attribute_errors(error.errors()):
            errors.append(_attribute_error(spec, path, op, item))
        return None


def _attribute_errors(found: list[dict]) -> list[dict]:
    """Pydantic's errors worth reporting: a typo in a required key (``unitz``) causes both
    "unknown 'unitz'" and "missing 'units'"; the unknown one says what to fix, so the missing
    ones are dropped when a key at the same level is unknown."""
    unknown_levels = {tuple(e["loc"][:-1]) for e in found if e["type"] == "extra_forbidden"}
    return [e for e in found if not (e["type"] == "missing" and tuple(e["loc"][:-1]) in unknown_levels)]


def _attribute_error(spec: Spec, path: tuple, op: Op, item: dict) -> GraphnetError:
    loc = tuple(item["loc"])
    key = loc[0] if loc else None
    attr_path = path + ("attrs",) + ((key,) if key is not None else ())
    known = list(op.Attrs.model_fields)
    if item["type"] == "extra_forbidden":
        message = f"op '{op.name}' has no attribute '{clip(str(key))}'"
        hint = did_you_mean(str(key), known, "its attributes") if known else "it takes no attributes"
    elif item["type"] == "missing":
        message = f"op '{op.name}' needs attribute '{key}'"
        hint = f"add attrs: {{{key}: ...}}"
    else:
        message = f"{item['msg']}; received {short(item.get('input'))}"
        hint = f"see `graphnet ops` for {op.name}'s attributes"
    return spec.error(attr_path, message, hint=hint)


def _bind_roles(spec: Spec, path: tuple, op: Op, inputs: dict, known: _Names, errors: list) -> list[Edge]:
    """The node's edges, role by role; every unknown or missing role and every reference to
    something that does not exist is appended to ``errors``."""
    for role in inputs:
        if role not in op.inputs:
            errors.append(spec.error(
                path + ("inputs", role),
                f"op '{op.name}' has no input role '{clip(str(role))}'",
                hint=did_you_mean(role, op.inputs, "its roles"),
            ))
    edges: list[Edge] = []
    for role in op.inputs:
        if role not in inputs:
            errors.append(spec.error(
                path + ("inputs",),
                f"op '{op.name}' needs input role '{role}'",
                hint=f"add `{role}: <node or input>` under inputs (roles: {', '.join(op.inputs)})",
            ))
            continue
        value = inputs[role]
        if role in op.variadic:
            sources = value if isinstance(value, list) else [value]
            if not sources:
                errors.append(spec.error(path + ("inputs", role), f"role '{role}' needs at least one input"))
            items = list(enumerate(sources))
        elif isinstance(value, list):
            errors.append(spec.error(
                path + ("inputs", role),
                f"role '{role}' of op '{op.name}' takes one input, received a list of {len(value)}",
                hint="give a single node or input name",
            ))
            continue
        else:
            items = [(None, value)]
        for index, source in items:
            where = path + ("inputs", role) + ((index,) if index is not None else ())
            if source not in known:
                errors.append(_missing_reference(spec, where, source, known, errors))
            edges.append(Edge(role, index, source))
    return edges


# ----------------------------------------------------------------------------------------------
# Order
# ----------------------------------------------------------------------------------------------


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
    node = min(waiting)
    seen: dict[str, int] = {}  # node -> position in the walk
    walk: list[str] = []
    while node not in seen:
        seen[node] = len(walk)
        walk.append(node)
        node = min(waiting[node])
    cycle = walk[seen[node]:]
    return list(reversed(cycle))


# ----------------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------------


def _infer_shapes(graph: Graph) -> list[GraphnetError]:
    """Every node's output and parameter shapes, in topological order; returns the errors.

    A node fed by a node whose shape is unknown (because of an earlier error) is skipped, so one
    mistake is reported once."""
    errors: list[GraphnetError] = []
    failed: set[str] = set()
    for node in graph.nodes.values():
        if any(edge.source in failed for edge in node.edges):
            failed.add(node.name)
            continue
        error = _infer_node_shape(graph, node) or _loss_feeds_a_node(graph, node)
        if error is not None:
            errors.append(error)
            failed.add(node.name)
            continue
        node.needs_grad = bool(node.params) or any(
            graph.nodes[e.source].needs_grad for e in node.edges
            if e.source in graph.nodes and e.role not in node.op.no_grad
        )
    return errors


def _infer_node_shape(graph: Graph, node: Node) -> GraphnetError | None:
    """Set ``node.shape`` and ``node.param_shapes`` from its op's rules; the error, if any."""
    spec = graph.spec
    path = ("nodes", node.name)
    shapes = group_inputs(node, graph.shape_of)
    rule = "shape rule"
    try:
        node.shape = tuple(node.op.shape(node.attrs, **shapes))
        for param in node.params:
            rule = f"shape rule of parameter '{param.name}'"
            node.param_shapes[param.name] = tuple(param.shape(node.attrs, shapes))
    except ShapeError as error:
        return spec.error(path, error.message, hint=error.hint, cls=ShapeError)
    except GraphnetError as error:
        if error.path:
            return spec.locate(error)
        return spec.error(path, error.message, hint=error.hint, cls=type(error))
    except Exception as error:  # a plugin's shape rule is missing or crashed: say which
        if isinstance(error, NotImplementedError) and not str(error) and rule == "shape rule":
            return spec.error(
                path, f"op '{node.op.name}' has no shape rule: define shape(...)",
                hint="give the op class `def shape(self, attrs, **input_shapes)` returning the "
                     "per-sample output shape",
                cls=OpError,
            )
        located = spec.error(path, f"{rule} of op '{node.op.name}' failed: {type(error).__name__}: {error}",
                             cls=OpError)
        located.__cause__ = error  # `graphnet --debug` shows the plugin's traceback
        return located
    return None


def _loss_feeds_a_node(graph: Graph, node: Node) -> GraphnetError | None:
    for edge in node.edges:
        if edge.source in graph.nodes and graph.nodes[edge.source].op.reduces_batch:
            return graph.spec.error(
                ("nodes", node.name, "inputs", edge.role),
                f"'{edge.source}' is a loss (one number per batch) and cannot feed another node",
                cls=ShapeError,
            )
    return None


def group_inputs(node: Node, value_of) -> dict[str, Any]:
    """Role -> value (a list for variadic roles), from the node's edges."""
    grouped: dict[str, Any] = {}
    for edge in node.edges:
        if edge.index is None:
            grouped[edge.role] = value_of(edge.source)
        else:
            grouped.setdefault(edge.role, []).append(value_of(edge.source))
    return grouped
