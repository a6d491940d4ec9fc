"""ONNX export: a model, and the preprocessing recorded with it, as one ONNX graph.

    from graphnet.export.onnx import export_onnx
    export_onnx(model, "model.onnx", preprocess=record)      # or path None: the bytes

What the exported file holds:

- one input per graph input the outputs need (never the labels): float32 of shape (N, ...), the
  batch axis N dynamic. With a preprocessing record, the examples' input takes *raw* examples of
  shape (N, *raw_shape) as float32 (uint8 images given as float32 values 0..255) and the recorded
  steps (x / scale, (x - mean) / std, flatten) run inside the graph, so the file takes the same
  inputs as ``graphnet predict``;
- the parameters as float32 initializers, named as in graphnet (``fc1.w``), and so is the ops'
  state (batch norm's ``bn1.running_mean``): an op's ``onnx`` hook finds both in ``params``;
- the outputs, named after their nodes. By default: the prediction node (``train.predict``, else
  the loss's first input) and, when that node holds the loss's logits, ``probabilities``, its
  softmax. Losses are not exported.

Each node's op maps itself through its optional ``onnx`` method (the contract is in
:mod:`graphnet.op`), given a :class:`Builder`; an op without one is an error naming it. Every
export is checked: each mapping's output shape (by ONNX shape inference) against graphnet's shape
rule, then ``onnx.checker.check_model`` with full shape inference. Only this module imports onnx,
and only when an export runs (``pip install 'graphnet[onnx]'``).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .. import __version__
from ..atomic import write_atomic
from ..errors import GraphnetError, OpError, first_to_report
from ..graph import Graph, Node, group_inputs
from ..model import Model
from ..op import Op

# Opset 21 (ONNX 1.16, 2024): recent, and run by every onnxruntime since 1.18. From 13 on, Softmax
# and LogSoftmax take one axis and Squeeze/Unsqueeze take their axes as an input, which the
# built-in mappings rely on.
DEFAULT_OPSET = 21
MIN_OPSET = 13
BATCH = "N"  # the name of the dynamic batch axis
PROBABILITIES = "probabilities"
INSTALL = "pip install 'graphnet[onnx]' (or: pip install onnx onnxruntime)"


# ----------------------------------------------------------------------------------------------
# The preprocessing record (written by the model file; documented in docs/model-format.md)
# ----------------------------------------------------------------------------------------------


class Preprocess(BaseModel):
    """The preprocessing fields the export uses; the record's other fields (labels) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    input: str = Field(description="the graph input fed the examples")
    raw_shape: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=8,
                                                         description="per-example raw shape")
    raw_dtype: Literal["uint8", "float32", "float64"] = "float32"
    scale: float | None = Field(None, gt=0, allow_inf_nan=False, description="x / scale")
    mean: float | None = Field(None, allow_inf_nan=False, description="(x - mean) / std")
    std: float | None = Field(None, gt=0, allow_inf_nan=False)
    flatten: bool = False

    @model_validator(mode="after")
    def _mean_with_std(self) -> "Preprocess":
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std come together (standardize) or not at all")
        return self


def _parse_preprocess(record: Any, graph: Graph) -> Preprocess:
    try:
        parsed = Preprocess.model_validate(record)
    except ValidationError as error:
        first = first_to_report(error.errors())
        where = ".".join(["preprocess", *map(str, first["loc"])])
        message = first["msg"].removeprefix("Value error, ")
        if first["loc"]:  # one field: show it (a rule over the whole record has no one value)
            message += f"; received {first.get('input')!r}"
        raise GraphnetError(
            message, path=where,
            hint="the preprocessing record holds input, raw_shape, raw_dtype, scale, mean, std, "
                 "flatten (see docs/model-format.md)",
        ) from None
    if parsed.input not in graph.inputs:
        raise GraphnetError(
            f"the preprocessing record feeds input '{parsed.input}', which graph "
            f"'{graph.spec.name}' does not have", path="preprocess.input",
            hint="graph inputs: " + ", ".join(graph.inputs),
        )
    return parsed


# ----------------------------------------------------------------------------------------------
# The builder an op's `onnx` method gets as `b`
# ----------------------------------------------------------------------------------------------


class Builder:
    """Collects ONNX nodes and constants while the ops map themselves (see :mod:`graphnet.op`).

    Names it makes are ``<scope>/<OpType>`` (the scope is the graphnet node being mapped), which
    never clash with graphnet's node, input and parameter names (those cannot hold ``/``).
    Made only during an export, when onnx is imported.
    """

    def __init__(self, opset: int, shapes: dict[str, tuple[int, ...]], taken: set[str]) -> None:
        from onnx import helper

        self._helper = helper
        self.opset = opset
        self.scope = ""
        self.nodes: list = []  # onnx NodeProto, in order
        self.constants: dict[str, np.ndarray] = {}
        self._shapes = shapes  # tensor name -> per-sample shape, for the tensors of graph nodes
        self._taken = set(taken)

    def node(self, op_type: str, inputs: list[str], attrs: dict[str, Any] | None = None) -> str:
        """Add an ONNX node (default domain, one output); returns the output's name."""
        output = self._fresh(f"{self.scope}/{op_type}")
        inputs = [str(name) for name in inputs]
        made = self._helper.make_node(op_type, inputs, [output], name=output, **(attrs or {}))
        self.nodes.append(made)
        return output

    def constant(self, value: Any) -> str:
        """A constant tensor: floats become float32, integers and booleans int64."""
        array = np.asarray(value)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        elif array.dtype.kind in "iub":
            array = array.astype(np.int64)
        else:
            raise TypeError(f"b.constant takes numbers, received an array of dtype {array.dtype}")
        name = self._fresh(f"{self.scope}/const")
        self.constants[name] = array
        return name

    def shape(self, name: str) -> tuple[int, ...]:
        """The per-sample shape (no batch axis) of a tensor fed to the op being mapped."""
        if name not in self._shapes:
            raise KeyError(f"b.shape knows the tensors fed to the op, not {name!r}")
        return self._shapes[name]

    def is_tensor(self, name: Any) -> bool:
        return isinstance(name, str) and name in self._taken

    def name_output(self, result: str, name: str, start: int) -> None:
        """Give the tensor a mapping returned the graphnet node's name: rename the output of the
        mapping's own node, else (the mapping returned a tensor it did not make) add an Identity.
        ``start`` is where the mapping's nodes begin in ``nodes``."""
        made = [node for node in self.nodes[start:] if node.output[0] == result]
        if not made:
            self.nodes.append(self._helper.make_node("Identity", [result], [name], name=name))
            return
        made[0].output[0] = name
        made[0].name = name
        for node in self.nodes[start:]:
            for index, source in enumerate(node.input):
                if source == result:
                    node.input[index] = name

    def _fresh(self, base: str) -> str:
        name, count = base, 0
        while name in self._taken:
            count += 1
            name = f"{base}_{count}"
        self._taken.add(name)
        return name


# ----------------------------------------------------------------------------------------------
# What is exported
# ----------------------------------------------------------------------------------------------


@dataclass
class Outputs:
    """The graph nodes exported as outputs, and the node whose softmax is ``probabilities``."""

    nodes: list[str]
    softmax_of: str | None = None


def default_outputs(graph: Graph) -> Outputs:
    """The prediction node: ``train.predict``, else the loss's first input (the node graphnet
    takes the argmax of); plus its softmax when it holds the loss's logits. Without a loss, the
    spec's outputs that are not losses."""
    train = graph.spec.train
    loss = graph.nodes.get(train.loss if train is not None else "loss")
    if loss is not None and not loss.op.reduces_batch:
        loss = None
    predict = train.predict if train is not None else None
    if predict is None and loss is not None:
        predict = loss.edges[0].source
    if predict is None:
        nodes = [name for name in graph.outputs if not graph.nodes[name].op.reduces_batch]
        if not nodes:
            raise GraphnetError(
                f"graph '{graph.spec.name}' has no output to export: its outputs are all losses",
                hint="name the nodes to export (outputs=[...])",
            )
        return Outputs(nodes)
    logits = loss is not None and loss.edges[0].source == predict and loss.edges[0].role == "logits"
    return Outputs([predict], softmax_of=predict if logits else None)


def _requested(outputs: Any) -> Outputs:
    names = [outputs] if isinstance(outputs, str) else list(outputs)
    if not names or not all(isinstance(name, str) for name in names):
        raise GraphnetError(f"outputs must be a list of node names, received {outputs!r}",
                            hint="e.g. outputs=['fc3'], or None for the prediction node")
    return Outputs(list(dict.fromkeys(names)))  # each once, in the order given


def _check_outputs(graph: Graph, outputs: Outputs) -> None:
    for name in outputs.nodes:
        if name not in graph.nodes:
            what = "a graph input" if name in graph.inputs else "not a node"
            raise GraphnetError(
                f"cannot export '{name}': it is {what}",
                hint="export nodes: " + ", ".join(n for n, node in graph.nodes.items()
                                                   if not node.op.reduces_batch),
            )
        node = graph.nodes[name]
        if node.op.reduces_batch:
            raise graph.spec.error(
                ("nodes", name),
                f"node '{name}' is a loss (op {node.op.name}); losses are not exported to ONNX",
                hint=f"export the node that feeds it, '{node.edges[0].source}'",
                cls=OpError,
            )


def _needed(graph: Graph, outputs: list[str]) -> tuple[list[Node], list[str]]:
    """The nodes the outputs depend on (in graph order) and the graph inputs they read."""
    wanted = set(outputs)
    for name in reversed(graph.order):
        if name in wanted:
            wanted.update(graph.nodes[name].sources)
    nodes = [node for name, node in graph.nodes.items() if name in wanted]
    inputs = [name for name in graph.inputs if name in wanted]
    return nodes, inputs


# ----------------------------------------------------------------------------------------------
# The export
# ----------------------------------------------------------------------------------------------


def export_onnx(
    model: Model,
    path: str | os.PathLike | None = None,
    *,
    preprocess: dict | None = None,
    outputs: list[str] | None = None,
    opset: int = DEFAULT_OPSET,
) -> bytes | Path:
    """Export ``model`` to ONNX; returns the serialized model, or writes it to ``path``
    (atomically) and returns the path.

    ``preprocess`` is the model file's preprocessing record (a plain dict); ``outputs`` names the
    nodes to export (default: see :func:`default_outputs`); ``opset`` is the ONNX opset written.
    Raises GraphnetError (OpError for an op without a mapping, or a mapping that misbehaves).
    """
    onnx = _import_onnx()
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise GraphnetError(
            f"ONNX opset {opset!r} is not supported",
            hint=f"use an opset from {MIN_OPSET} to {onnx.defs.onnx_opset_version()}; the default "
                 f"is {DEFAULT_OPSET}",
        )
    graph = model.graph
    chosen = default_outputs(graph) if outputs is None else _requested(outputs)
    _check_outputs(graph, chosen)
    record = _parse_preprocess(preprocess, graph) if preprocess is not None else None
    proto = _build(model, chosen, record, opset)
    if record is not None:
        # the whole record (class names included), for whoever runs the file
        record_json = json.dumps(preprocess, sort_keys=True, default=str)
        onnx.helper.set_model_props(proto, {"graphnet.preprocess": record_json})
    _check_shapes(onnx, proto, graph)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as error:  # onnx's ValidationError / InferenceError
        raise _invalid(graph, _one_line(error)) from None
    data = proto.SerializeToString(deterministic=True)
    if path is None:
        return data
    return _write_atomically(Path(path), data)


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise GraphnetError("exporting to ONNX needs the onnx package, which is not installed",
                            hint=INSTALL) from None
    return onnx


def _build(model: Model, chosen: Outputs, record: Preprocess | None, opset: int):
    """The ONNX model: inputs (preprocessed), every needed node mapped by its op, outputs."""
    from onnx import helper, numpy_helper

    graph = model.graph
    nodes, input_names = _needed(graph, chosen.nodes)
    params = {f"{node.name}.{p.name}": model.params[f"{node.name}.{p.name}"]
              for node in nodes for p in node.params}
    params.update({name: model.state[name] for name in _state_names(model, nodes)})
    taken = set(graph.inputs) | set(graph.nodes) | set(params)
    shapes = {node.name: tuple(node.shape) for node in nodes}  # what b.shape answers
    b = Builder(opset, shapes, taken)

    declared, tensor_of = _inputs(b, graph, input_names, record)
    for name, tensor in tensor_of.items():
        shapes[tensor] = tuple(graph.inputs[name])
    context = _checker_context(opset)
    for node in nodes:
        _map_node(b, graph, node, tensor_of, context)
        tensor_of[node.name] = node.name
    results = _outputs(b, graph, chosen, taken)

    initializers = [numpy_helper.from_array(np.asarray(value, np.float32), name)
                    for name, value in params.items()]
    initializers += [numpy_helper.from_array(value, name) for name, value in b.constants.items()]
    body = helper.make_graph(b.nodes, graph.spec.name, declared, results, initializer=initializers)
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(
        body, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="graphnet", producer_version=__version__, doc_string=graph.spec.description,
    )


def _inputs(b: Builder, graph: Graph, names: list[str], record: Preprocess | None):
    """The declared ONNX inputs, and the tensor each graph input is read from: the examples'
    input is raw, and read after the recorded preprocessing."""
    from onnx import TensorProto, helper

    declared, tensor_of = [], {}
    for name in names:
        if record is not None and name == record.input:
            shape, kind = record.raw_shape, TensorProto.FLOAT
            tensor_of[name] = _preprocess(b, record, graph)
        else:
            dtype = graph.input_dtypes[name]
            shape = graph.inputs[name]
            kind = (TensorProto.FLOAT if dtype.startswith("float")
                    else helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
            tensor_of[name] = name
        declared.append(helper.make_tensor_value_info(name, kind, [BATCH, *shape]))
    return declared, tensor_of


def _outputs(b: Builder, graph: Graph, chosen: Outputs, taken: set[str]) -> list:
    """The declared ONNX outputs (float32, batch axis N); adds the softmax for probabilities."""
    from onnx import TensorProto, helper

    shapes = {name: graph.nodes[name].shape for name in chosen.nodes}
    if chosen.softmax_of is not None:
        logits = chosen.softmax_of
        probs = PROBABILITIES if PROBABILITIES not in taken else f"{logits}/{PROBABILITIES}"
        b.nodes.append(helper.make_node("Softmax", [logits], [probs], name=probs, axis=-1))
        shapes[probs] = graph.nodes[logits].shape
    return [helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *shape])
            for name, shape in shapes.items()]


def _preprocess(b: Builder, record: Preprocess, graph: Graph) -> str:
    """x / scale, (x - mean) / std, flatten, as ``graphnet predict`` does; the tensor's name."""
    b.scope = f"{record.input}/preprocess"
    start = len(b.nodes)
    x = record.input
    if record.scale is not None:
        x = b.node("Div", [x, b.constant(record.scale)])
    if record.mean is not None:
        x = b.node("Sub", [x, b.constant(record.mean)])
        x = b.node("Div", [x, b.constant(record.std)])
    shape = tuple(record.raw_shape)
    if record.flatten and len(shape) > 1:
        x = b.node("Flatten", [x], {"axis": 1})
        shape = (math.prod(shape),)
    expected = tuple(graph.inputs[record.input])
    if shape != expected:
        flattened = " (after flatten)" if record.flatten else ""
        raise GraphnetError(
            f"the preprocessing record gives examples of shape {list(shape)}{flattened}, but input "
            f"'{record.input}' takes {list(expected)}", path="preprocess.raw_shape",
            hint="the record belongs to another model; export with the model file's own record",
        )
    if x == record.input:
        return x
    b.name_output(x, f"{record.input}/preprocessed", start)
    return f"{record.input}/preprocessed"


def _state_names(model: Model, nodes: list[Node]) -> list[str]:
    """The names of the op state of ``nodes`` (``bn1.running_mean``), exported as initializers:
    the evaluation forward reads them as it reads parameters."""
    wanted = {node.name for node in nodes}
    return [name for name in getattr(model, "state", {}) if name.split(".", 1)[0] in wanted]


def _map_node(b: Builder, graph: Graph, node: Node, tensor_of: dict[str, str], context) -> None:
    """Let the node's op add its ONNX nodes; its output tensor is named after the node."""
    mapping = getattr(type(node.op), "onnx", None)
    path = ("nodes", node.name)
    if mapping is None or mapping is Op.onnx:
        raise graph.spec.error(
            path,
            f"op '{node.op.name}' has no ONNX mapping, so node '{node.name}' cannot be exported",
            hint="an op (a plugin's too) exports by defining an `onnx` method; see graphnet.op",
            cls=OpError,
        )
    b.scope = node.name
    start = len(b.nodes)
    inputs = group_inputs(node, lambda source: tensor_of[source])
    params = {p.name: f"{node.name}.{p.name}" for p in node.params}
    state = getattr(node.op, "active_state", lambda attrs: ())(node.attrs)
    params.update({entry.name: f"{node.name}.{entry.name}" for entry in state})
    try:
        result = node.op.onnx(node.attrs, b, inputs, params)
    except GraphnetError:
        raise
    except Exception as error:  # a plugin's mapping crashed: say which
        raise graph.spec.error(
            path, f"ONNX mapping of op '{node.op.name}' failed: {type(error).__name__}: {error}",
            hint="fix the op's onnx method", cls=OpError,
        ) from error
    if not b.is_tensor(result):
        raise graph.spec.error(
            path, f"ONNX mapping of op '{node.op.name}' returned {result!r}, not a tensor name",
            hint="return the name b.node(...) gave the output", cls=OpError,
        )
    b.name_output(result, node.name, start)
    for made in b.nodes[start:]:
        _check_node(made, context, graph, node)


def _checker_context(opset: int):
    import onnx

    context = onnx.checker.C.CheckerContext()
    context.opset_imports = {"": opset}
    context.ir_version = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    return context


def _check_node(made, context, graph: Graph, node: Node) -> None:
    """One ONNX node against its operator's schema (inputs, attributes), reported at the
    graphnet node whose mapping made it."""
    import onnx

    try:
        onnx.checker.check_node(made, context)
    except Exception as error:  # onnx.checker.ValidationError
        raise graph.spec.error(
            ("nodes", node.name),
            f"ONNX mapping of op '{node.op.name}' made an invalid {made.op_type} node: "
            f"{_one_line(error).split(' ==> Context')[0]}",
            hint="see the operator's page in the ONNX docs (onnx.ai/onnx/operators)", cls=OpError,
        ) from None


def _check_shapes(onnx, proto, graph: Graph) -> None:
    """Each graph node's tensor, as ONNX shape inference sees it, against graphnet's shape rule:
    a wrong mapping is reported at its node, with both shapes."""
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    for value in probe.graph.output:  # the declared shapes would hide what the mappings give
        value.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(probe)
    except Exception:
        return  # reported by check_model, with onnx's own message
    values = list(inferred.graph.value_info) + list(inferred.graph.output)
    for value in values:
        if value.name not in graph.nodes or not value.type.tensor_type.HasField("shape"):
            continue
        dims = value.type.tensor_type.shape.dim
        got = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
        node = graph.nodes[value.name]
        expected = [BATCH, *node.shape]
        per_sample_ok = len(got) == len(expected) and all(
            not isinstance(g, int) or g == e for g, e in zip(got[1:], expected[1:])
        )
        batch_ok = bool(got) and not isinstance(got[0], int)
        if not (per_sample_ok and batch_ok):
            raise graph.spec.error(
                ("nodes", node.name),
                f"ONNX mapping of op '{node.op.name}' gives shape {got}, graphnet's shape rule "
                f"{expected}",
                hint="the mapping must keep the batch axis dynamic and match the op's forward",
                cls=OpError,
            )


def _invalid(graph: Graph, message: str) -> OpError:
    """check_model's complaint, reported at the graphnet node whose mapping made the ONNX node
    it names (ONNX node names are the graphnet node's name, or ``NODE/OpType``)."""
    named = re.search(r"node name: ([^)/]+)", message)
    node = graph.nodes.get(named.group(1)) if named else None
    text = f"the exported ONNX graph is invalid: {message}"
    if node is None:
        return OpError(text, hint="an op's onnx method built a node ONNX rejects")
    return graph.spec.error(("nodes", node.name), text, hint=f"fix the onnx method of op "
                            f"'{node.op.name}'", cls=OpError)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _write_atomically(path: Path, data: bytes) -> Path:
    """Write to a temporary file beside ``path``, then rename it into place: a reader sees the
    old file or the new one, never a torn one (graphnet.atomic)."""
    return write_atomic(path, data, what="the ONNX file", hint="check the folder exists and is writable")