"""A model: a checked graph, its parameters in one flat buffer, and an executor to run it.

This is the Python API::

    from graphnet import load_spec, Model
    model = Model.from_spec(load_spec("specs/mnist-mlp.yaml"), seed=0)          # float32
    out = model.forward({"image": x, "label": y}, training=True)              # dict of outputs
    model.backward("loss")                                                    # fills model.grads
    model.params["fc1.w"], model.grads["fc1.w"]                                # views, by name
    model.set_param("fc1.b", np.zeros(800))

Every parameter is a view into ``model.flat_params`` and every gradient a view into
``model.flat_grads``, so an optimizer updates the whole model with a few vectorized operations.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .errors import GraphnetError
from .executor import BackwardPlan, Executor
from .graph import Graph, build_graph
from .op import INITIALIZERS
from .registry import Registry
from .spec import Spec

DTYPES = ("float32", "float64")


class Model:
    """Parameters and gradients by name (``"fc1.w"``), forward and backward on batches."""

    def __init__(self, graph: Graph, *, seed: int = 0, dtype: str = "float32") -> None:
        if str(dtype) not in DTYPES:
            raise GraphnetError(f"unsupported dtype {dtype!r}", hint=f"use one of {', '.join(DTYPES)}")
        self.graph = graph
        self.spec = graph.spec
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.executor = Executor(graph, self.dtype)
        self._layout: dict[str, tuple[int, tuple[int, ...]]] = {}
        offset = 0
        for node in graph.nodes.values():
            for param in node.params:
                shape = node.param_shapes[param.name]
                self._layout[f"{node.name}.{param.name}"] = (offset, shape)
                offset += int(np.prod(shape, dtype=np.int64))
        self.flat_params = np.zeros(offset, self.dtype)
        self.flat_grads = np.zeros(offset, self.dtype)
        self.decay_mask = np.zeros(offset, self.dtype)
        self.params = {name: self._view(self.flat_params, name) for name in self._layout}
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
        self._initialize(seed)

    @classmethod
    def from_spec(
        cls, spec: Spec, *, seed: int = 0, dtype: str = "float32", registry: Registry | None = None
    ) -> "Model":
        return cls(build_graph(spec, registry), seed=seed, dtype=dtype)

    def _view(self, flat: np.ndarray, name: str) -> np.ndarray:
        offset, shape = self._layout[name]
        size = int(np.prod(shape, dtype=np.int64))
        return flat[offset : offset + size].reshape(shape)

    def _initialize(self, seed: int) -> None:
        # One generator per parameter, keyed by its position: adding a node to the end of a spec
        # does not change the initial values of the others.
        for index, node in enumerate(self.graph.nodes.values()):
            for p_index, param in enumerate(node.params):
                name = f"{node.name}.{param.name}"
                init = param.initializer(node.attrs)
                if init not in INITIALIZERS:
                    raise GraphnetError(
                        f"parameter '{name}' asks for unknown initializer '{init}'",
                        hint="known: " + ", ".join(INITIALIZERS),
                    )
                rng = np.random.default_rng([seed, index, p_index])
                value = INITIALIZERS[init](rng, self.params[name].shape, self.dtype)
                self.params[name][...] = value
                if param.decay:
                    self._view(self.decay_mask, name)[...] = 1

    # -- parameters -------------------------------------------------------------------------

    @property
    def param_names(self) -> list[str]:
        return list(self._layout)

    @property
    def size(self) -> int:
        """Number of trainable scalars."""
        return int(self.flat_params.size)

    def set_param(self, name: str, value: np.ndarray) -> None:
        if name not in self.params:
            raise GraphnetError(f"no parameter '{name}'", hint="parameters: " + ", ".join(self.params))
        value = np.asarray(value)
        if value.shape != self.params[name].shape:
            raise GraphnetError(
                f"parameter '{name}' has shape {list(self.params[name].shape)}, "
                f"received {list(value.shape)}",
                hint="the spec decides parameter shapes; check you load the right weights",
            )
        self.params[name][...] = value

    def load_params(self, values: Mapping[str, np.ndarray]) -> None:
        missing = set(self.params) - set(values)
        extra = set(values) - set(self.params)
        if missing or extra:
            raise GraphnetError(
                "parameters do not match the graph: "
                + (f"missing {sorted(missing)} " if missing else "")
                + (f"unexpected {sorted(extra)}" if extra else ""),
                hint="the weights come from a different spec",
            )
        for name, value in values.items():
            self.set_param(name, value)

    # -- running ----------------------------------------------------------------------------

    def forward(
        self,
        batch: Mapping[str, np.ndarray],
        outputs: list[str] | tuple[str, ...] | None = None,
        *,
        training: bool = False,
        step: int = 0,
        check_finite: bool = False,
    ) -> dict[str, np.ndarray]:
        """Run the graph on ``batch`` (input name -> array with the batch axis first).

        Returns the requested nodes' outputs (default: the spec's outputs). ``step`` seeds the
        random ops (dropout) together with the model's seed, so a step is reproducible."""
        names = tuple(outputs) if outputs is not None else tuple(self.graph.outputs)
        return self.executor.forward(
            batch, self._node_params, names,
            training=training, seed=self.seed, step=step, check_finite=check_finite,
        )

    def backward(self, loss: str | Mapping[str, np.ndarray] = "loss", *, check_finite: bool = False) -> None:
        """Gradients of ``loss`` (a node computed by the last forward) into ``model.grads``.

        Pass a dict ``{node: upstream gradient}`` to backpropagate from non-scalar outputs."""
        seeds = {loss: np.ones((), self.dtype)} if isinstance(loss, str) else dict(loss)
        for name in seeds:
            if name not in self.executor.values or name not in self.graph.nodes:
                raise GraphnetError(
                    f"cannot backpropagate from '{name}': it was not computed by the last forward",
                    hint="include it in forward(outputs=...)",
                )
        plan = self.executor.backward(seeds, self._write_grad, check_finite=check_finite)
        if plan not in self._unwritten:  # the same for every backward of this plan
            self._unwritten[plan] = [
                self._node_grads[node][param]
                for node, names in self._node_grads.items()
                for param in names
                if (node, param) not in plan.params
            ]
        for grad in self._unwritten[plan]:  # not on the path to the loss
            grad[...] = 0

    def _write_grad(self, node: str, param: str, grad: np.ndarray) -> None:
        np.copyto(self._node_grads[node][param], grad)  # a copy: the op's array is not kept
