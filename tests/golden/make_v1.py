"""How the format-1 golden files were made (kept for the record; they are never regenerated).

They were written on 2026-11-30 by graphnet's format-1 writer, graphnet/modelfile.py of commit
6171adf, before format 2 replaced it::

    git show 6171adf:graphnet/modelfile.py > modelfile_v1_src.py
    .venv/bin/python tests/golden/make_v1.py modelfile_v1_src.py

The weights are k/16 - 1 for k = 0, 1, 2, ... in parameter order: exact in float32 and float64,
so tests/test_modelfile.py can state them literally.
"""

import sys
from pathlib import Path

import numpy as np

from graphnet import Model
from graphnet.graph import build_graph
from graphnet.spec import validate_spec_data

HERE = Path(__file__).resolve().parent

SPEC = {
    "format": 1, "name": "golden-tiny",
    "description": "a tiny two-layer net whose weights are k/16 - 1, for golden model files",
    "inputs": {"x": {"shape": [4], "dtype": "float32"}, "label": {"shape": [], "dtype": "int64"}},
    "nodes": {
        "fc1": {"op": "linear", "inputs": {"x": "x"}, "attrs": {"units": 3}},
        "act": {"op": "relu", "inputs": {"x": "fc1"}},
        "fc2": {"op": "linear", "inputs": {"x": "act"}, "attrs": {"units": 2}},
        "loss": {"op": "softmax_cross_entropy", "inputs": {"logits": "fc2", "labels": "label"}},
    },
    "outputs": ["fc2", "loss"],
    "train": {"data": {"dataset": "npz", "path": "data/tiny.npz", "validation": 2}, "epochs": 2,
              "batch_size": 2, "optimizer": {"type": "sgd", "lr": 0.1}},
}
LOG = {
    "epochs": [
        {"epoch": 1, "lr": 0.1, "train_loss": 0.75, "val_loss": 0.625, "val_error": 0.5,
         "val_accuracy": 0.5, "seconds": 0.25, "samples_per_second": 32.0},
        {"epoch": 2, "lr": 0.1, "train_loss": 0.5, "val_loss": 0.375, "val_error": 0.0,
         "val_accuracy": 1.0, "seconds": 0.25, "samples_per_second": 32.0},
    ],
    "best_epoch": 2, "stopped": None, "data": "npz data/tiny.npz", "seconds": 0.5,
    "spec_dir": "/home/someone/project",
}
METRICS = {"test_loss": 0.4375, "test_error": 0.25, "test_accuracy": 0.75}


def golden_model(dtype: str) -> Model:
    model = Model(build_graph(validate_spec_data(SPEC)), seed=0, dtype=dtype)
    k = 0
    for name in model.param_names:
        value = model.params[name]
        model.set_param(name, np.arange(k, k + value.size).reshape(value.shape) / 16 - 1)
        k += value.size
    return model


if __name__ == "__main__":
    source = Path(sys.argv[1]).read_text()
    source = source.replace("from . import", "from graphnet import").replace("from .", "from graphnet.")
    module = type(sys)("modelfile_v1")
    sys.modules["modelfile_v1"] = module
    exec(compile(source, "modelfile_v1", "exec"), module.__dict__)
    assert module.FORMAT == 1
    for dtype in ("float32", "float64"):
        out = HERE / f"v1-tiny-{dtype}.gnm"
        if out.exists():
            sys.exit(f"{out} exists: golden files are never regenerated")
        module.save_model(out, golden_model(dtype), log=LOG, metrics=METRICS)
