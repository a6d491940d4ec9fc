"""How the format-2 golden files were made (kept for the record; they are never regenerated).

    .venv/bin/python tests/golden/make_v2.py

The same tiny model as the format-1 files (weights k/16 - 1), saved by format 2's writer with
every header field filled in (float32: preprocessing, classes, data, resume with a PCG64 state,
optimizer tensors) or left empty (float64).
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_v1 import LOG, METRICS, golden_model  # noqa: E402

from graphnet.modelfile import rng_state_to_plain, save_model  # noqa: E402

HERE = Path(__file__).resolve().parent

PREPROCESS = {
    "input": "x", "raw_shape": [4], "raw_dtype": "uint8", "scale": 255.0, "mean": 0.5, "std": 0.25,
    "flatten": False, "labels": {"input": "label", "one_hot": False, "classes": 2, "names": ["no", "yes"]},
}
CLASSES = {"count": 2, "names": ["no", "yes"]}
DATA = "tiny.npz (8 examples: 4 train, 2 validation, 2 test)"


def resume() -> dict:
    rng = np.random.default_rng(20261130)
    rng.standard_normal(3)  # a generator part way through its stream
    return {"epoch": 2, "step": 4, "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.0},
            "rng": {"shuffle": rng_state_to_plain(rng)}}


def optimizer(model) -> dict:
    return {f"velocity/{name}": value * 0.5 for name, value in model.params.items()}


if __name__ == "__main__":
    outputs = {"float32": HERE / "v2-tiny-float32.gnm", "float64": HERE / "v2-tiny-float64.gnm"}
    for out in outputs.values():
        if out.exists():
            sys.exit(f"{out} exists: golden files are never regenerated")
    model = golden_model("float32")
    save_model(outputs["float32"], model, LOG, METRICS, preprocess=PREPROCESS, classes=CLASSES,
               data=DATA, resume=resume(), optimizer=optimizer(model))
    save_model(outputs["float64"], golden_model("float64"))
