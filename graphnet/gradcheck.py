"""Finite-difference gradient checking, in float64, for ops and for whole graphs.

For an op, each case from ``op.examples(rng)`` is run with parameters drawn from N(0, 1); the
objective is ``f = sum(output * R)`` with a fixed random ``R`` (so every output element matters).
Each input and parameter element is perturbed by ±h and the central difference
``(f(x+h) - f(x-h)) / 2h`` is compared with the analytic gradient from ``backward``.

Error measure (Caffe's): ``|analytic - numeric| / max(|analytic|, |numeric|, 1)``.

Kinks (ReLU at 0, a max that switches): where the function is not smooth between x-h and x+h the
central difference is meaningless. Such points are detected without knowing the op: the second
difference ``f(x+h) - 2 f(x) + f(x-h)`` is about ``f'' h^2`` for a smooth function but about
``jump * h`` across a kink, so points with ``|second difference| / (2h) > KINK`` are skipped and
counted. A wrong gradient never shows up as a large second difference, so skipping cannot hide it.

Besides the numbers, every case also runs once in float64 and once in float32 through the op's
contract as the executor enforces it: forward returns ``(output, saved)``, the output has the
shape the op's shape rule gives and the inputs' dtype, and every gradient has the shape and dtype
of what it is the gradient of. An op that returns float64 for float32 inputs fails here rather
than in the middle of a training run.

Every version of an op is checked: an earlier one (which model files saved with it still load)
is named ``name@version``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import GraphnetError
from .graph import Graph
from .model import Model
from .op import Context, Op
from .registry import Registry, default_registry

STEP = 1e-6
TOLERANCE = 1e-5
KINK = 1e-4
MAX_POINTS = 40  # elements checked per input/parameter in a whole-graph check


@dataclass
class RoleResult:
    """The worst error found for one input role or parameter."""

    name: str
    worst: float = 0.0
    checked: int = 0
    skipped: int = 0  # points next to a kink

    @property
    def ok(self) -> bool:
        return self.worst <= TOLERANCE and self.checked > 0


@dataclass
class CheckResult:
    """One op (or one graph): results per role/parameter, over all its cases."""

    target: str
    roles: dict[str, RoleResult] = field(default_factory=dict)
    error: str | None = None  # the op failed to load or crashed
    # broken contract: an output or gradient of the wrong dtype or shape ("float32: ...")
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems and all(r.ok for r in self.roles.values())

    def role(self, name: str) -> RoleResult:
        return self.roles.setdefault(name, RoleResult(name))

    def failures(self) -> list[str]:
        if self.error:
            return [self.error]
        return [f"{self.target}: {problem}" for problem in self.problems] + [
            f"{self.target}: {r.name} " + (
                f"max relative error {r.worst:.2e} > {TOLERANCE:.0e}" if r.checked else "no point could be checked"
            )
            for r in self.roles.values() if not r.ok
        ]


def _compare(result: RoleResult, f: Callable[[], float], array: np.ndarray, analytic: np.ndarray,
             indices: np.ndarray) -> None:
    """Central differences of ``f`` wrt ``array`` (perturbed in place) at flat ``indices``."""
    flat = array.reshape(-1)
    grad = analytic.reshape(-1)
    center = f()  # f is deterministic and every element is restored after its perturbation
    for i in indices:
        original = flat[i]
        flat[i] = original + STEP
        plus = f()
        flat[i] = original - STEP
        minus = f()
        flat[i] = original
        if abs(plus - 2 * center + minus) / (2 * STEP) > KINK:
            result.skipped += 1
            continue
        numeric = (plus - minus) / (2 * STEP)
        scale = max(abs(grad[i]), abs(numeric), 1.0)
        result.worst = max(result.worst, abs(grad[i] - numeric) / scale)
        result.checked += 1


# ----------------------------------------------------------------------------------------------
# One op
# ----------------------------------------------------------------------------------------------


def check_op(op: Op, seed: int = 0, label: str | None = None) -> CheckResult:
    """Check every differentiable input role and parameter of ``op`` on its example cases, and
    its contract (dtypes and shapes) in float64 and float32. ``label`` names it in the result
    (default: the op's name)."""
    label = label or op.name
    result = CheckResult(label)
    rng = np.random.default_rng(seed)
    try:
        cases = op.examples(rng)
    except Exception as error:
        result.error = f"{label}: examples() failed: {type(error).__name__}: {error}"
        return result
    for case_index, case in enumerate(cases):
        try:
            _check_case(op, case, rng, case_index, seed, result)
        except Exception as error:
            result.error = f"{label}: case {case_index} failed: {type(error).__name__}: {error}"
            return result
    return result


def _check_case(op: Op, case, rng, case_index: int, seed: int, result: CheckResult) -> None:
    attrs = op.Attrs(**case.attrs)
    inputs = {role: _as_float64(value) for role, value in case.inputs.items()}
    shapes = {
        role: [v.shape[1:] for v in value] if isinstance(value, list) else value.shape[1:]
        for role, value in inputs.items()
    }
    params = {
        p.name: rng.standard_normal(p.shape(attrs, shapes)) for p in op.active_params(attrs)
    }
    wants = set(params)
    for role, value in inputs.items():
        if role in op.no_grad:
            continue
        items = value if isinstance(value, list) else [value]
        if all(np.issubdtype(v.dtype, np.floating) for v in items):
            wants.add(role)
    for dtype in ("float64", "float32"):
        for problem in _contract_problems(op, attrs, case, inputs, params, frozenset(wants), dtype, seed, case_index):
            result.problems.append(f"case {case_index}, {dtype}: {problem}")
    if result.problems:
        return  # the numbers of an op that breaks its contract are not worth comparing
    f64 = np.dtype("float64")

    def run() -> tuple[np.ndarray, Any]:
        ctx = Context(training=case.training, rng=np.random.default_rng([seed, case_index]), dtype=f64)
        return op.forward(attrs, ctx, **inputs, **params)

    out, saved = run()
    projection = rng.standard_normal(np.shape(out))

    def objective() -> float:
        return float(np.sum(run()[0] * projection))

    grads = op.backward(attrs, saved, np.asarray(projection, f64), frozenset(wants))
    for name in sorted(wants):
        if name not in grads:
            raise GraphnetError(f"backward returned no gradient for '{name}'")
        if name in params:
            targets = [(name, params[name], grads[name])]
        elif name in op.variadic:
            targets = [(f"{name}[{i}]", v, g) for i, (v, g) in enumerate(zip(inputs[name], grads[name]))]
        else:
            targets = [(name, inputs[name], grads[name])]
        for label, array, analytic in targets:
            if np.shape(analytic) != array.shape:
                raise GraphnetError(
                    f"gradient of '{label}' has shape {list(np.shape(analytic))}, expected {list(array.shape)}"
                )
            _compare(result.role(label), objective, array, np.asarray(analytic), np.arange(array.size))


def _contract_problems(
    op: Op, attrs: Any, case, inputs: dict, params: dict, wants: frozenset[str], dtype: str,
    seed: int, case_index: int,
) -> list[str]:
    """Run forward and backward once with the float inputs and parameters in ``dtype``; what
    breaks the contract the executor enforces (see the module docstring)."""
    work = np.dtype(dtype)
    arrays = {name: _cast(value, work) for name, value in {**inputs, **params}.items()}
    ctx = Context(training=case.training, rng=np.random.default_rng([seed, case_index]), dtype=work)
    returned = op.forward(attrs, ctx, **arrays)
    if not (isinstance(returned, tuple) and len(returned) == 2):
        return [f"forward returned {_kind(returned)}, not the pair (output, saved)"]
    out, saved = returned
    shapes = {
        role: [v.shape[1:] for v in value] if isinstance(value, list) else value.shape[1:]
        for role, value in inputs.items()
    }
    batch = next(iter(_flat(list(inputs.values())))).shape[0]
    expected = () if op.reduces_batch else (batch, *op.shape(attrs, **shapes))
    problem = _array_problem(out, expected, work)
    if problem:
        return [f"forward output {problem}"]
    dy = _cast(np.random.default_rng([seed, case_index, 1]).standard_normal(expected), work)
    grads = op.backward(attrs, saved, dy, wants)
    if not isinstance(grads, dict):
        return [f"backward returned {_kind(grads)}, not a dict of gradients"]
    problems = []
    for name in sorted(wants):
        if name not in grads:
            problems.append(f"backward returned no gradient for '{name}'")
            continue
        given, got = arrays[name], grads[name]
        if isinstance(given, list):
            if not isinstance(got, list) or len(got) != len(given):
                problems.append(f"gradient of variadic '{name}' is {_kind(got)}, not a list of {len(given)} arrays")
                continue
            pairs = [(f"{name}[{i}]", g, a) for i, (g, a) in enumerate(zip(got, given))]
        else:
            pairs = [(name, got, given)]
        for shown, gradient, of in pairs:
            problem = _array_problem(gradient, of.shape, work)
            if problem:
                problems.append(f"gradient of '{shown}' {problem}")
    return problems


def _array_problem(value: Any, shape: tuple, dtype: np.dtype) -> str | None:
    if not isinstance(value, np.ndarray):
        return f"is {_kind(value)}, not an array"
    if value.shape != tuple(shape):
        return f"has shape {list(value.shape)}, expected {list(shape)}"
    if value.dtype != dtype:
        return (f"is {value.dtype} for {dtype} inputs (keep the inputs' dtype: write constants as "
                "x.dtype.type(c), cast a result with .astype(x.dtype, copy=False))")
    return None


def _kind(value: Any) -> str:
    return f"a {type(value).__name__}"


def _flat(values: list) -> list:
    return [v for value in values for v in (value if isinstance(value, list) else [value])]


def _cast(value: Any, dtype: np.dtype) -> Any:
    if isinstance(value, list):
        return [_cast(v, dtype) for v in value]
    return value.astype(dtype) if np.issubdtype(value.dtype, np.floating) else value


def _as_float64(value: Any) -> Any:
    if isinstance(value, list):
        return [_as_float64(v) for v in value]
    array = np.array(value)  # a copy: the checker perturbs it in place
    return array.astype(np.float64) if np.issubdtype(array.dtype, np.floating) else array


def check_registry(registry: Registry | None = None, names: list[str] | None = None) -> list[CheckResult]:
    """Check every version of every registered op (or of ``names``; ``name@version`` for one
    version): one result per op version, load failures included. An earlier version is labelled
    ``name@version``."""
    registry = registry or default_registry()
    results = []
    for wanted in names or registry.names():
        name, at, version = wanted.partition("@")
        try:
            if at and not version.isdigit():
                raise GraphnetError(f"'{wanted}' is not NAME or NAME@VERSION", hint="for example swish@1")
            versions = [int(version)] if at else registry.versions(name)
            current = registry.versions(name)[-1]
            ops = [(v, registry.get(name, version=v)) for v in versions]
        except GraphnetError as error:
            results.append(CheckResult(wanted, error=str(error)))
            continue
        for v, op in ops:
            results.append(check_op(op, label=name if v == current else f"{name}@{v}"))
    return results


# ----------------------------------------------------------------------------------------------
# A whole graph
# ----------------------------------------------------------------------------------------------


def check_graph(graph: Graph, seed: int = 0, batch_size: int = 3) -> CheckResult:
    """Check d(objective)/d(parameter) end to end through ``graph`` in float64.

    The objective is the sum of the graph's losses (ops that reduce over the batch), or
    ``sum(output * R)`` over its outputs when it has none. Up to ``MAX_POINTS`` random elements
    of each parameter are checked."""
    model = Model(graph, seed=seed, dtype="float64")
    rng = np.random.default_rng(seed)
    batch = random_batch(graph, rng, batch_size)
    losses = [n for n in graph.outputs if graph.nodes[n].op.reduces_batch]
    if not losses:
        losses = [n for n, node in graph.nodes.items() if node.op.reduces_batch]
    outputs = tuple(losses or graph.outputs)
    values = model.forward(batch, outputs, training=True)
    seeds = {
        name: (np.ones((), np.float64) if name in losses else rng.standard_normal(values[name].shape))
        for name in outputs
    }

    def objective() -> float:
        out = model.forward(batch, outputs, training=True)
        return float(sum(np.sum(out[name] * seeds[name]) for name in outputs))

    values.backward(seeds)
    analytic = {name: grad.copy() for name, grad in model.grads.items()}
    result = CheckResult(graph.spec.name)
    for name in model.param_names:
        array = model.params[name]
        count = min(MAX_POINTS, array.size)
        indices = rng.choice(array.size, size=count, replace=False)
        # params are views into the flat buffer: perturbing them in place changes the model
        _compare(result.role(name), objective, array, analytic[name], indices)
    return result


def random_batch(graph: Graph, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
    """Standard-normal float inputs; integer inputs (labels) drawn in the range of the classes
    their consumer expects (the last axis of the consumer's first input)."""
    batch: dict[str, np.ndarray] = {}
    for name, shape in graph.inputs.items():
        dtype = graph.input_dtypes[name]
        if dtype.startswith("float"):
            batch[name] = rng.standard_normal((batch_size, *shape))
        else:
            batch[name] = rng.integers(0, _classes_for(graph, name), size=(batch_size, *shape))
    return batch


def _classes_for(graph: Graph, input_name: str) -> int:
    for node in graph.nodes.values():
        if input_name in node.sources:
            first = node.edges[0].source
            shape = graph.shape_of(first)
            if first != input_name and shape:
                return int(shape[-1])
    return 2



