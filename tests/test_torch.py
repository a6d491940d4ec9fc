"""PyTorch as an independent oracle: graphnet's ops, whole graphs, optimizers and learning-rate
schedules against torch autograd, torch.optim and torch.optim.lr_scheduler, on the same inputs
and the same weights.

- Ops: every built-in op (and the swish plugin, when installed) forward and backward against the
  torch function that computes the same thing, in float64 (tight) and float32 (looser), batch
  sizes 1 and 7.
- Graphs: random DAGs (fan-out, concat, residual adds, reshape/flatten; several loss heads) made
  by a seeded generator, run by graphnet's Model and by a small torch interpreter of the same
  spec: every node's output, the loss and every parameter gradient.
- Optimizers and schedules: SGD (momentum, Nesterov), Adam and AdamW, with and without weight
  decay, step by step against torch.optim; every schedule type, with and without warm-up,
  against torch's schedulers; and a few training steps of a whole graph.

graphnet never imports torch; only these tests do. Without torch they are skipped (conftest.py
marks them); CI installs the CPU build and sets GRAPHNET_REQUIRE_TORCH=1, which makes a skip a
failure.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from graphnet import Model, load_spec, parse_spec
from graphnet.op import Context
from graphnet.registry import default_registry
from graphnet.spec import TrainSpec
from graphnet.train.optim import make_optimizer
from graphnet.train.schedule import learning_rate

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # conftest.py skips every test of this module (a failure in CI)
    torch = F = None

pytestmark = pytest.mark.torch

TOLERANCE = {
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
    np.float32: {"rtol": 2e-5, "atol": 2e-6},
}
DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]
BATCHES = [1, 7]


def close(actual, expected, dtype, what=""):
    np.testing.assert_allclose(actual, expected, err_msg=what, **TOLERANCE[dtype])


def to_numpy(tensor) -> np.ndarray:
    return tensor.detach().numpy()


# ----------------------------------------------------------------------------------------------
# The torch version of each op: (attrs, **tensors) -> tensor, the same roles as graphnet's
# ----------------------------------------------------------------------------------------------


def t_concat(attrs, xs):
    axis = attrs.get("axis", -1)
    return torch.cat(xs, dim=axis if axis < 0 else axis + 1)  # a per-sample axis: skip the batch


def t_cross_entropy(attrs, probs, labels):
    log_p = torch.log(probs.clamp(attrs.get("eps", 1e-12), 1.0))
    if labels.dtype == torch.int64:
        return F.nll_loss(log_p, labels)
    return -(labels * log_p).sum(dim=-1).mean()


def t_matmul(attrs, a, b):
    if a.dim() == 2:  # a vector per sample
        return torch.bmm(a.unsqueeze(1), b).squeeze(1)
    return torch.matmul(a, b)


def t_mse(attrs, pred, target):
    if target.dtype == torch.int64:  # class indices
        target = F.one_hot(target, pred.shape[-1]).to(pred.dtype)
    if attrs.get("reduction", "mean") == "mean":
        return F.mse_loss(pred, target)
    return F.mse_loss(pred, target, reduction="sum") / pred.shape[0]


def t_softmax_cross_entropy(attrs, logits, labels):
    return F.cross_entropy(logits, labels, label_smoothing=attrs.get("label_smoothing", 0.0))


TORCH_OPS: dict[str, Callable] = {
    "add": lambda attrs, a, b: a + b,
    "bias_add": lambda attrs, x, b: x + b,
    "concat": t_concat,
    "cross_entropy": t_cross_entropy,
    "dropout": lambda attrs, x: F.dropout(x, attrs.get("rate", 0.5), training=False),
    "flatten": lambda attrs, x: torch.flatten(x, start_dim=1),
    "leaky_relu": lambda attrs, x: F.leaky_relu(x, attrs.get("negative_slope", 0.01)),
    "linear": lambda attrs, x, w, b=None: F.linear(x, w.T, b),  # torch's weight is (out, in)
    "log_softmax": lambda attrs, x: F.log_softmax(x, dim=-1),
    "matmul": t_matmul,
    "mse": t_mse,
    "relu": lambda attrs, x: torch.relu(x),
    "reshape": lambda attrs, x: x.reshape(x.shape[0], *attrs["shape"]),
    "sigmoid": lambda attrs, x: torch.sigmoid(x),
    "softmax": lambda attrs, x: F.softmax(x, dim=-1),
    "softmax_cross_entropy": t_softmax_cross_entropy,
    "tanh": lambda attrs, x: torch.tanh(x),
    "swish": lambda attrs, x: x * torch.sigmoid(attrs.get("beta", 1.0) * x),  # the plugin
}


# ----------------------------------------------------------------------------------------------
# Ops, one at a time
# ----------------------------------------------------------------------------------------------


def normal(rng, *shape, scale=1.0):
    return rng.standard_normal(shape) * scale


def with_zeros(rng, *shape):
    """Normals with every third element exactly 0: where relu-like ops have a kink, the
    conventions (relu'(0) = 0, leaky_relu'(0) = slope) must be torch's."""
    x = normal(rng, *shape)
    x.reshape(-1)[::3] = 0.0
    return x


def probs(rng, n, classes):
    """Rows of a softmax, with column 0 tiny (1e-5): below cross_entropy's eps of 1e-3 below,
    so the clip and its zero gradient are exercised."""
    scores = normal(rng, n, classes, scale=2.0)
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    p[:, 0] = 1e-5
    return p


def soft_rows(rng, n, classes):
    """Probability rows (each sums to 1): soft labels."""
    return rng.dirichlet(np.ones(classes), size=n)


@dataclass
class OpCase:
    id: str
    op: str
    make: Callable[[np.random.Generator, int], dict]  # (rng, batch size) -> arrays by role/param
    attrs: dict = field(default_factory=dict)


OP_CASES = [
    OpCase("add", "add", lambda r, n: {"a": normal(r, n, 3, 4), "b": normal(r, n, 3, 4)}),
    OpCase("bias_add", "bias_add", lambda r, n: {"x": normal(r, n, 2, 5), "b": normal(r, 5)}),
    OpCase("concat", "concat",
           lambda r, n: {"xs": [normal(r, n, 2, 3), normal(r, n, 2, 1), normal(r, n, 2, 4)]}),
    OpCase("concat-axis0", "concat", lambda r, n: {"xs": [normal(r, n, 1, 3), normal(r, n, 2, 3)]},
           {"axis": 0}),
    OpCase("cross_entropy-indices", "cross_entropy",
           lambda r, n: {"probs": probs(r, n, 4), "labels": r.integers(0, 4, n)}, {"eps": 1e-3}),
    OpCase("cross_entropy-rows", "cross_entropy",
           lambda r, n: {"probs": probs(r, n, 4), "labels": soft_rows(r, n, 4)}, {"eps": 1e-3}),
    OpCase("dropout-evaluation", "dropout", lambda r, n: {"x": normal(r, n, 5)}, {"rate": 0.3}),
    OpCase("flatten", "flatten", lambda r, n: {"x": normal(r, n, 2, 3, 4)}),
    OpCase("leaky_relu", "leaky_relu", lambda r, n: {"x": with_zeros(r, n, 6)}),
    OpCase("leaky_relu-0.2", "leaky_relu", lambda r, n: {"x": with_zeros(r, n, 6)}, {"negative_slope": 0.2}),
    OpCase("linear", "linear",
           lambda r, n: {"x": normal(r, n, 5), "w": normal(r, 5, 3), "b": normal(r, 3)}, {"units": 3}),
    OpCase("linear-no-bias", "linear", lambda r, n: {"x": normal(r, n, 5), "w": normal(r, 5, 3)},
           {"units": 3, "bias": False}),
    OpCase("log_softmax", "log_softmax", lambda r, n: {"x": normal(r, n, 6, scale=30.0)}),
    OpCase("log_softmax-3d", "log_softmax", lambda r, n: {"x": normal(r, n, 3, 6, scale=5.0)}),
    OpCase("matmul", "matmul", lambda r, n: {"a": normal(r, n, 3, 4), "b": normal(r, n, 4, 5)}),
    OpCase("matmul-vector", "matmul", lambda r, n: {"a": normal(r, n, 4), "b": normal(r, n, 4, 2)}),
    OpCase("mse", "mse", lambda r, n: {"pred": normal(r, n, 3), "target": normal(r, n, 3)}),
    OpCase("mse-sum_per_sample", "mse", lambda r, n: {"pred": normal(r, n, 3), "target": normal(r, n, 3)},
           {"reduction": "sum_per_sample"}),
    OpCase("mse-indices", "mse", lambda r, n: {"pred": normal(r, n, 4), "target": r.integers(0, 4, n)}),
    OpCase("relu", "relu", lambda r, n: {"x": with_zeros(r, n, 6)}),
    OpCase("reshape", "reshape", lambda r, n: {"x": normal(r, n, 2, 6)}, {"shape": [4, -1]}),
    OpCase("sigmoid", "sigmoid", lambda r, n: {"x": normal(r, n, 8, scale=15.0)}),
    OpCase("softmax", "softmax", lambda r, n: {"x": normal(r, n, 6, scale=30.0)}),
    OpCase("softmax_cross_entropy-indices", "softmax_cross_entropy",
           lambda r, n: {"logits": normal(r, n, 5, scale=5.0), "labels": r.integers(0, 5, n)}),
    OpCase("softmax_cross_entropy-rows", "softmax_cross_entropy",
           lambda r, n: {"logits": normal(r, n, 5, scale=5.0), "labels": soft_rows(r, n, 5)}),
    OpCase("softmax_cross_entropy-smoothing", "softmax_cross_entropy",
           lambda r, n: {"logits": normal(r, n, 5, scale=5.0), "labels": r.integers(0, 5, n)},
           {"label_smoothing": 0.1}),
    OpCase("softmax_cross_entropy-smoothing-rows", "softmax_cross_entropy",
           lambda r, n: {"logits": normal(r, n, 5, scale=5.0), "labels": soft_rows(r, n, 5)},
           {"label_smoothing": 0.1}),
    OpCase("tanh", "tanh", lambda r, n: {"x": normal(r, n, 6, scale=3.0)}),
    OpCase("swish", "swish", lambda r, n: {"x": with_zeros(r, n, 6) * 4}, {"beta": 1.5}),
]
REGISTERED = set(default_registry().names())


def builtin_ops() -> set[str]:
    """The ops graphnet itself registers (not the plugins installed next to it)."""
    registry = default_registry()
    return {name for name in registry.names() if registry.source(name).distribution == "graphnet"}


def test_every_builtin_op_has_a_torch_case():
    missing = builtin_ops() - {case.op for case in OP_CASES}
    assert not missing, f"add a torch version (TORCH_OPS) and an OpCase for: {sorted(missing)}"
    assert {case.op for case in OP_CASES} <= set(TORCH_OPS)


def cast(value, dtype):
    """Float arrays (and lists of them) to ``dtype``; integer labels stay int64."""
    if isinstance(value, list):
        return [cast(item, dtype) for item in value]
    return value.astype(dtype) if value.dtype.kind == "f" else value.astype(np.int64)


def tensor(value, requires_grad):
    if isinstance(value, list):
        return [tensor(item, requires_grad) for item in value]
    return torch.tensor(value, requires_grad=requires_grad and value.dtype.kind == "f")


def run_graphnet_op(case: OpCase, arrays: dict, dy_rng, dtype, training=False, seed=0):
    """graphnet's forward and backward of one op, through the registry as the executor calls it."""
    op = default_registry().get(case.op)
    attrs = op.Attrs(**case.attrs)
    ctx = Context(training=training, rng=np.random.default_rng(seed), dtype=np.dtype(dtype))
    y, saved = op.forward(attrs, ctx, **arrays)
    dy = dy_rng.standard_normal(np.shape(y)).astype(dtype)
    wants = {name for name, value in arrays.items() if name not in op.no_grad}
    grads = op.backward(attrs, saved, dy.copy(), frozenset(wants))
    return y, grads, dy, wants


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", OP_CASES, ids=lambda case: case.id)
def test_op_matches_torch(case, dtype, batch):
    if case.op not in REGISTERED:
        pytest.skip(f"op {case.op!r} is not registered here (a plugin that is not installed)")
    rng = np.random.default_rng(7)
    arrays = {name: cast(value, dtype) for name, value in case.make(rng, batch).items()}
    y, grads, dy, wants = run_graphnet_op(case, arrays, rng, dtype)

    tensors = {name: tensor(value, name in wants) for name, value in arrays.items()}
    expected = TORCH_OPS[case.op](case.attrs, **tensors)
    expected.backward(torch.tensor(dy))

    assert y.dtype == dtype and y.shape == tuple(expected.shape)
    close(y, to_numpy(expected), dtype, "forward")
    assert set(grads) == wants
    for name in wants:
        got, want = grads[name], tensors[name]
        if isinstance(want, list):
            assert len(got) == len(want)
            for index, (g, w) in enumerate(zip(got, want)):
                assert g.dtype == dtype
                close(g, to_numpy(w.grad), dtype, f"d{name}[{index}]")
        else:
            assert got.dtype == dtype
            close(got, to_numpy(want.grad), dtype, f"d{name}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_in_training_matches_torch_scaling(dtype):
    """Training-mode dropout draws its own mask, so compare given the mask: both scale what they
    keep by 1 / (1 - rate) (inverted dropout) and pass the gradient through the same mask."""
    rate = 0.3
    case = OpCase("dropout", "dropout", lambda r, n: {}, {"rate": rate})
    rng = np.random.default_rng(3)
    x = (rng.uniform(0.5, 2.0, (7, 200)) * rng.choice([-1, 1], (7, 200))).astype(dtype)  # no zeros
    y, grads, dy, _ = run_graphnet_op(case, {"x": x}, rng, dtype, training=True, seed=11)
    kept = y != 0
    assert 0.25 < 1 - kept.mean() < 0.35  # 1,400 draws at rate 0.3

    x_t = torch.tensor(x, requires_grad=True)
    expected = x_t * torch.tensor(kept.astype(dtype)) / (1 - rate)
    expected.backward(torch.tensor(dy))
    close(y, to_numpy(expected), dtype, "forward")
    close(grads["x"], to_numpy(x_t.grad), dtype, "dx")

    torch.manual_seed(0)
    dropped_by_torch = to_numpy(F.dropout(torch.tensor(x), rate, training=True))
    torch_kept = dropped_by_torch != 0
    close(dropped_by_torch[torch_kept], x[torch_kept] / (1 - rate), dtype, "torch's scaling")


# ----------------------------------------------------------------------------------------------
# Random graphs
# ----------------------------------------------------------------------------------------------

ACTIVATIONS = ["relu", "tanh", "sigmoid", "leaky_relu"]
HEADS = ["softmax_cross_entropy", "mse", "softmax+cross_entropy"]
DAG_SEEDS = range(6)


class DagBuilder:
    """Grows a random graph spec of vector nodes; every node may feed any later node."""

    def __init__(self, rng: np.random.Generator, features: int):
        self.rng = rng
        self.nodes: dict[str, dict] = {}
        self.widths = {"x": features}  # vector-valued nodes (and the input): name -> width
        self._ids = itertools.count()

    def add(self, op: str, inputs: dict, attrs: dict | None = None, width: int | None = None) -> str:
        name = f"n{next(self._ids)}_{op}"
        self.nodes[name] = {"op": op, "inputs": inputs, "attrs": attrs or {}}
        if width is not None:
            self.widths[name] = width
        return name

    def pick(self) -> str:
        names = sorted(self.widths)
        return names[self.rng.integers(len(names))]

    def dense(self, source: str, units: int) -> str:
        """linear (sometimes without bias, then a bias_add), then an activation."""
        with_bias = bool(self.rng.integers(2))
        out = self.add("linear", {"x": source}, {"units": units, "bias": with_bias})
        if not with_bias:
            out = self.add("bias_add", {"x": out})
        activation = ACTIVATIONS[self.rng.integers(len(ACTIVATIONS))]
        attrs = {"negative_slope": float(self.rng.uniform(0.05, 0.3))} if activation == "leaky_relu" else {}
        return self.add(activation, {"x": out}, attrs, width=units)

    def skip(self) -> str:
        """A residual block: the source feeds both the block and the add (fan-out)."""
        source = self.pick()
        body = self.dense(source, self.widths[source])
        return self.add("add", {"a": source, "b": body}, width=self.widths[source])

    def concat(self) -> str:
        count = min(len(self.widths), int(self.rng.integers(2, 4)))
        names = list(self.rng.choice(sorted(self.widths), size=count, replace=False))
        return self.add("concat", {"xs": names}, width=sum(self.widths[n] for n in names))

    def reshape(self) -> str:
        source = self.pick()
        width = self.widths[source]
        if width % 2:
            return self.dense(source, width + 1)
        folded = self.add("reshape", {"x": source}, {"shape": [2, -1]})
        return self.add("flatten", {"x": folded}, width=width)


def random_dag(seed: int) -> dict:
    """A random spec (as a dict): at least one residual add, one concat and one fan-out; a
    classifier head that concatenates the last node with an earlier one; one of three losses."""
    rng = np.random.default_rng(seed)
    features, classes = int(rng.integers(3, 7)), int(rng.integers(2, 5))
    dag = DagBuilder(rng, features)
    kinds = ["skip", "concat"] + list(rng.choice(["dense", "dense", "skip", "concat", "reshape"], size=4))
    last = "x"
    for kind in kinds:
        last = dag.dense(dag.pick(), int(rng.integers(2, 7))) if kind == "dense" else getattr(dag, kind)()
    earlier = [name for name in sorted(dag.widths) if name != last]
    other = earlier[rng.integers(len(earlier))]
    head = dag.add("concat", {"xs": [last, other]}, width=dag.widths[last] + dag.widths[other])
    logits = dag.add("linear", {"x": head}, {"units": classes})
    loss_kind = HEADS[seed % len(HEADS)]
    if loss_kind == "softmax+cross_entropy":
        probs_node = dag.add("softmax", {"x": logits})
        dag.nodes["loss"] = {"op": "cross_entropy", "inputs": {"probs": probs_node, "labels": "label"}, "attrs": {}}
    elif loss_kind == "mse":
        dag.nodes["loss"] = {"op": "mse", "inputs": {"pred": logits, "target": "label"}, "attrs": {}}
    else:
        dag.nodes["loss"] = {"op": "softmax_cross_entropy", "inputs": {"logits": logits, "labels": "label"}, "attrs": {}}
    return {
        "format": 1,
        "name": f"random-dag-{seed}",
        "inputs": {"x": {"shape": [features]}, "label": {"shape": [], "dtype": "int64"}},
        "nodes": dag.nodes,
        "outputs": [logits, "loss"],
        "_classes": classes,
    }


def consumers(spec: dict) -> dict[str, int]:
    """How many inputs each node or graph input feeds."""
    counts: dict[str, int] = {}
    for node in spec["nodes"].values():
        for source in node["inputs"].values():
            for name in source if isinstance(source, list) else [source]:
                counts[name] = counts.get(name, 0) + 1
    return counts


def test_random_dags_have_fan_out_concat_and_skip_connections():
    for seed in DAG_SEEDS:
        spec = random_dag(seed)
        ops = [node["op"] for node in spec["nodes"].values()]
        assert "concat" in ops and "add" in ops, seed
        assert max(consumers(spec).values()) >= 2, seed
        # a residual add: one of its inputs also feeds the block whose output is the other
        adds = [node["inputs"] for node in spec["nodes"].values() if node["op"] == "add"]
        assert any(consumers(spec)[inputs["a"]] >= 2 for inputs in adds), seed
    assert {random_dag(seed)["nodes"]["loss"]["op"] for seed in DAG_SEEDS} == {
        "softmax_cross_entropy", "mse", "cross_entropy"}


def build_model(spec: dict, dtype, seed: int) -> Model:
    """graphnet's model of the spec, with random non-zero biases (the initializer's are zero)."""
    text = json.dumps({key: value for key, value in spec.items() if not key.startswith("_")})
    model = Model.from_spec(parse_spec(text), seed=seed, dtype=np.dtype(dtype).name)
    rng = np.random.default_rng(seed + 100)
    for name in model.param_names:
        if name.endswith(".b"):
            model.set_param(name, rng.standard_normal(model.params[name].shape) * 0.5)
    return model


def torch_forward(spec: dict, params: dict, batch: dict) -> dict:
    """The same network in torch: each node's torch op on its inputs and parameters, in the
    spec's order (the generator only ever feeds a node from earlier ones)."""
    values = dict(batch)
    for name, node in spec["nodes"].items():
        inputs = {
            role: [values[s] for s in source] if isinstance(source, list) else values[source]
            for role, source in node["inputs"].items()
        }
        own = {key.split(".", 1)[1]: value for key, value in params.items() if key.split(".", 1)[0] == name}
        values[name] = TORCH_OPS[node["op"]](node["attrs"], **inputs, **own)
    return values


def random_batch(spec: dict, batch: int, rng) -> dict:
    features = spec["inputs"]["x"]["shape"][0]
    return {"x": rng.standard_normal((batch, features)), "label": rng.integers(0, spec["_classes"], batch)}


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", DAG_SEEDS)
def test_random_dag_matches_torch(seed, dtype, batch):
    spec = random_dag(seed)
    model = build_model(spec, dtype, seed)
    data = random_batch(spec, batch, np.random.default_rng(seed))
    names = list(spec["nodes"])
    out = model.forward(data, outputs=names)
    model.backward("loss")

    params = {name: torch.tensor(model.params[name].copy(), requires_grad=True) for name in model.param_names}
    batch_t = {"x": torch.tensor(data["x"].astype(dtype)), "label": torch.tensor(data["label"])}
    expected = torch_forward(spec, params, batch_t)
    expected["loss"].backward()

    for name in names:
        close(out[name], to_numpy(expected[name]), dtype, f"node {name}")
    for name, param in params.items():
        want = np.zeros_like(model.grads[name]) if param.grad is None else to_numpy(param.grad)  # unused
        close(model.grads[name], want, dtype, f"gradient of {name}")


def test_skip_mlp_spec_matches_torch():
    """specs/skip-mlp.yaml (the README's non-chain example), written out by hand in torch."""
    spec = load_spec(Path(__file__).resolve().parents[1] / "specs" / "skip-mlp.yaml")
    model = Model.from_spec(spec, seed=3, dtype="float64")
    rng = np.random.default_rng(5)
    for name in model.param_names:  # non-zero biases too
        model.set_param(name, rng.standard_normal(model.params[name].shape) * 0.1)
    x = rng.standard_normal((8, 784))
    y = rng.integers(0, 10, 8)
    out = model.forward({"image": x, "label": y})
    model.backward("loss")

    p = {name: torch.tensor(model.params[name].copy(), requires_grad=True) for name in model.param_names}
    tx = torch.tensor(x)

    def linear(name, value):
        return value @ p[f"{name}.w"] + p[f"{name}.b"]

    act0 = torch.relu(linear("stem", tx))
    act1 = torch.relu(linear("block", act0))
    skip = act0 + act1
    act2 = torch.tanh(linear("side", tx))
    logits = linear("logits", torch.cat([skip, act2], dim=1))
    loss = F.cross_entropy(logits, torch.tensor(y))
    loss.backward()

    close(out["logits"], to_numpy(logits), np.float64, "logits")
    close(out["loss"], loss.item(), np.float64, "loss")
    for name in model.param_names:
        close(model.grads[name], to_numpy(p[name].grad), np.float64, name)


# ----------------------------------------------------------------------------------------------
# Optimizers on a flat buffer
# ----------------------------------------------------------------------------------------------

OPTIMIZERS = [
    {"type": "sgd"},
    {"type": "sgd", "weight_decay": 0.05},
    {"type": "sgd", "momentum": 0.9},
    {"type": "sgd", "momentum": 0.9, "weight_decay": 0.05},
    {"type": "sgd", "momentum": 0.8, "nesterov": True},
    {"type": "sgd", "momentum": 0.8, "nesterov": True, "weight_decay": 0.05},
    {"type": "adam"},
    {"type": "adam", "weight_decay": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6},
    {"type": "adamw"},
    {"type": "adamw", "weight_decay": 0.05},
    {"type": "adamw", "weight_decay": 0.3, "beta1": 0.5},
]


def optimizer_id(config: dict) -> str:
    return "-".join(f"{key}={value}" if key != "type" else str(value) for key, value in config.items())


def torch_optimizer(config: dict, groups: list[dict], lr: float):
    """torch.optim's optimizer for a graphnet optimizer config; ``groups`` carry weight_decay
    (graphnet decays weights, not biases: two parameter groups)."""
    if config["type"] == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=config.get("momentum", 0.0),
                               nesterov=config.get("nesterov", False))
    cls = torch.optim.AdamW if config["type"] == "adamw" else torch.optim.Adam
    betas = (config.get("beta1", 0.9), config.get("beta2", 0.999))
    return cls(groups, lr=lr, betas=betas, eps=config.get("eps", 1e-8))


def decay_groups(config: dict, decayed: list, not_decayed: list) -> list[dict]:
    # NOTE: torch's AdamW defaults to weight_decay=0.01; graphnet's to 0. Always pass it.
    wd = config.get("weight_decay", 0.0)
    return [{"params": decayed, "weight_decay": wd}, {"params": not_decayed, "weight_decay": 0.0}]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", OPTIMIZERS, ids=optimizer_id)
def test_optimizer_matches_torch_step_by_step(config, dtype):
    rng = np.random.default_rng(3)
    size = 12
    mask = (np.arange(size) % 4 != 3).astype(dtype)  # every 4th value is a bias: no decay
    p0 = rng.standard_normal(size).astype(dtype)
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(10)]
    lrs = [0.1 * 0.8**i for i in range(10)]  # a new rate each step, as a schedule gives

    spec = TrainSpec.model_validate({"optimizer": config}).optimizer
    opt = make_optimizer(spec, size, dtype, mask)
    params = p0.copy()

    decayed = mask == 1.0
    tensors = [torch.tensor(p0[decayed], requires_grad=True), torch.tensor(p0[~decayed], requires_grad=True)]
    oracle = torch_optimizer(config, decay_groups(config, [tensors[0]], [tensors[1]]), lrs[0])
    for step, (grad, lr) in enumerate(zip(grads, lrs), 1):
        opt.step(params, grad, lr)
        tensors[0].grad = torch.tensor(grad[decayed])
        tensors[1].grad = torch.tensor(grad[~decayed])
        for group in oracle.param_groups:
            group["lr"] = lr
        oracle.step()
        expected = np.empty(size, dtype)
        expected[decayed] = to_numpy(tensors[0])
        expected[~decayed] = to_numpy(tensors[1])
        assert params.dtype == dtype
        close(params, expected, dtype, f"parameters after step {step}")


# ----------------------------------------------------------------------------------------------
# Learning-rate schedules (each with and without warm-up) against torch's schedulers
# ----------------------------------------------------------------------------------------------

STEPS_PER_EPOCH = 4
EPOCHS = 5
GEOMETRIC_STAGES = [{"epochs": 2, "lr": 0.1}, {"epochs": 2, "lr": 0.01}, {"epochs": 1, "lr": 0.001}]
OTHER_STAGES = [{"epochs": 1, "lr": 0.05}, {"epochs": 3, "lr": 0.2}, {"epochs": 1, "lr": 0.02}]

SCHEDULES = [
    {"type": "constant"},
    {"type": "constant", "warmup_epochs": 1},
    {"type": "constant", "warmup_epochs": 0.5},
    {"type": "piecewise", "stages": GEOMETRIC_STAGES},
    {"type": "piecewise", "stages": GEOMETRIC_STAGES, "warmup_epochs": 1.5},
    {"type": "piecewise", "stages": OTHER_STAGES},
    {"type": "piecewise", "stages": OTHER_STAGES, "warmup_epochs": 0.5},
    {"type": "step", "step_epochs": 2, "gamma": 0.5},
    {"type": "step", "step_epochs": 1, "gamma": 0.3, "warmup_epochs": 1},
    {"type": "cosine"},
    {"type": "cosine", "min_lr": 0.001},
    {"type": "cosine", "warmup_epochs": 1},
    {"type": "cosine", "min_lr": 0.01, "warmup_epochs": 0.5},
]
BASE_LR = 0.1


def schedule_id(config: dict) -> str:
    parts = [config["type"]]
    if config.get("stages") is not None:
        parts.append("geometric" if config["stages"] is GEOMETRIC_STAGES else "stages")
    parts += [f"{key}={value}" for key, value in config.items() if key not in ("type", "stages")]
    return "-".join(parts)


def torch_scheduler(optimizer, config: dict):
    """torch's scheduler for a graphnet schedule, stepped once per training step. Warm-up is
    LinearLR from 1/W to 1 over W steps (rate (s + 1) / W at step s); a cosine starts its
    decay after it (SequentialLR), every other schedule is multiplied by it (ChainedScheduler).
    The optimizer's initial rate is the base rate (a piecewise schedule's first stage)."""
    lr = torch.optim.lr_scheduler
    spe, total = STEPS_PER_EPOCH, EPOCHS * STEPS_PER_EPOCH
    warmup = math.ceil(config.get("warmup_epochs", 0) * spe)
    assert warmup != 1, "a one-step warm-up is no warm-up: LinearLR needs at least 2 steps"
    kind = config["type"]
    if kind == "constant":
        main = lr.ConstantLR(optimizer, factor=1.0, total_iters=0)
    elif kind == "piecewise" and config["stages"] is GEOMETRIC_STAGES:
        ends = list(itertools.accumulate(stage["epochs"] for stage in config["stages"]))[:-1]
        main = lr.MultiStepLR(optimizer, milestones=[end * spe for end in ends], gamma=0.1)
    elif kind == "piecewise":
        # no torch scheduler takes arbitrary rates: the documented rule, "the rate of the stage
        # holding the epoch", as a factor of the first stage's rate
        def factor(step):
            end = 0
            for stage in config["stages"]:
                end += stage["epochs"]
                if step // spe < end:
                    return stage["lr"] / config["stages"][0]["lr"]
            return config["stages"][-1]["lr"] / config["stages"][0]["lr"]

        main = lr.LambdaLR(optimizer, factor)
    elif kind == "step":
        main = lr.StepLR(optimizer, step_size=config["step_epochs"] * spe, gamma=config["gamma"])
    else:
        main = lr.CosineAnnealingLR(optimizer, T_max=total - warmup, eta_min=config.get("min_lr", 0.0))
    if warmup == 0:
        return main
    ramp = lr.LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1)
    if kind == "cosine":
        return lr.SequentialLR(optimizer, [ramp, main], milestones=[warmup])
    return lr.ChainedScheduler([ramp, main], optimizer=optimizer)


def graphnet_rates(config: dict) -> list[float]:
    schedule = TrainSpec.model_validate({"schedule": config}).schedule
    return [
        learning_rate(schedule, BASE_LR, step // STEPS_PER_EPOCH, step % STEPS_PER_EPOCH,
                      STEPS_PER_EPOCH, EPOCHS)
        for step in range(EPOCHS * STEPS_PER_EPOCH)
    ]


def first_rate(config: dict) -> float:
    return config["stages"][0]["lr"] if config["type"] == "piecewise" else BASE_LR


@pytest.mark.parametrize("config", SCHEDULES, ids=schedule_id)
def test_schedule_matches_torch_scheduler(config):
    param = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=first_rate(config))
    scheduler = torch_scheduler(optimizer, config)
    expected = []
    for _ in range(EPOCHS * STEPS_PER_EPOCH):
        expected.append(optimizer.param_groups[0]["lr"])
        param.grad = torch.zeros(1, dtype=torch.float64)
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(graphnet_rates(config), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "optimizer_config",
    [{"type": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, {"type": "adamw", "weight_decay": 0.1}],
    ids=optimizer_id,
)
@pytest.mark.parametrize("config", SCHEDULES, ids=schedule_id)
def test_scheduled_optimizer_matches_torch(config, optimizer_config):
    """The training loop's pairing: the scheduled rate of each step, then the optimizer step."""
    rng = np.random.default_rng(5)
    size = 8
    mask = np.array([1.0, 1.0, 1.0, 0.0] * 2)
    p0 = rng.standard_normal(size)
    spec = TrainSpec.model_validate({"optimizer": optimizer_config}).optimizer
    opt = make_optimizer(spec, size, np.float64, mask)
    params = p0.copy()

    decayed = mask == 1.0
    tensors = [torch.tensor(p0[decayed], requires_grad=True), torch.tensor(p0[~decayed], requires_grad=True)]
    oracle = torch_optimizer(optimizer_config, decay_groups(optimizer_config, [tensors[0]], [tensors[1]]),
                             first_rate(config))
    scheduler = torch_scheduler(oracle, config)
    for step, lr in enumerate(graphnet_rates(config)):
        grad = rng.standard_normal(size)
        opt.step(params, grad, lr)
        tensors[0].grad, tensors[1].grad = torch.tensor(grad[decayed]), torch.tensor(grad[~decayed])
        oracle.step()
        scheduler.step()
        expected = np.empty(size)
        expected[decayed], expected[~decayed] = to_numpy(tensors[0]), to_numpy(tensors[1])
        close(params, expected, np.float64, f"parameters after step {step + 1}")


# ----------------------------------------------------------------------------------------------
# A few training steps of a whole graph
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "optimizer_config",
    [{"type": "sgd", "momentum": 0.9, "weight_decay": 0.01}, {"type": "adam", "weight_decay": 0.01},
     {"type": "adamw", "weight_decay": 0.1}],
    ids=optimizer_id,
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_steps_of_a_random_dag_match_torch(seed, optimizer_config):
    """Forward, backward, scheduled optimizer step, five times: graphnet's Model with its flat
    buffers and decay mask against torch autograd and torch.optim with two parameter groups."""
    spec = random_dag(seed)
    model = build_model(spec, np.float64, seed)
    schedule = {"type": "cosine", "warmup_epochs": 1}
    steps_per_epoch, epochs = 2, 3
    train = TrainSpec.model_validate({"optimizer": optimizer_config, "schedule": schedule})
    opt = make_optimizer(train.optimizer, model.size, np.float64, model.decay_mask)

    params = {name: torch.tensor(model.params[name].copy(), requires_grad=True) for name in model.param_names}
    decayed = [p for name, p in params.items() if name.endswith(".w")]
    not_decayed = [p for name, p in params.items() if not name.endswith(".w")]
    for name in model.param_names:  # graphnet decays weights, not biases
        mask_values = np.unique(decay_view(model, name))
        assert mask_values.tolist() == ([1.0] if name.endswith(".w") else [0.0]), name
    oracle = torch_optimizer(optimizer_config, decay_groups(optimizer_config, decayed, not_decayed), 1.0)
    # NOTE: a parameter off the loss's path (the generator leaves some) gets a zero gradient in
    # graphnet, and is still decayed and moved by momentum. torch skips a parameter whose grad is
    # None; zero tensors (zero_grad(set_to_none=False)) give graphnet's behaviour.
    for param in params.values():
        param.grad = torch.zeros_like(param)
    rng = np.random.default_rng(seed)
    for step in range(steps_per_epoch * epochs):
        lr = learning_rate(train.schedule, train.optimizer.lr, step // steps_per_epoch,
                           step % steps_per_epoch, steps_per_epoch, epochs)
        data = random_batch(spec, 5, rng)
        model.forward(data, outputs=["loss"], training=True)
        model.backward("loss")
        opt.step(model.flat_params, model.flat_grads, lr)

        oracle.zero_grad(set_to_none=False)
        loss = torch_forward(spec, params, {"x": torch.tensor(data["x"]), "label": torch.tensor(data["label"])})["loss"]
        loss.backward()
        for group in oracle.param_groups:
            group["lr"] = lr
        oracle.step()
        for name, param in params.items():
            close(model.params[name], to_numpy(param), np.float64, f"{name} after step {step + 1}")


def decay_view(model: Model, name: str) -> np.ndarray:
    """The decay mask's values over one parameter: the mask is laid out as flat_params, of which
    model.params[name] is a view."""
    view = model.params[name]
    start = (view.ctypes.data - model.flat_params.ctypes.data) // view.itemsize
    return model.decay_mask[start:start + view.size]
