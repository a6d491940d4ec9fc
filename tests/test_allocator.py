"""graphnet/allocator.py: once a model exists, a batch's arrays reuse the memory the previous
batch freed instead of faulting in fresh pages (counted as minor page faults, never timed); the
user's own malloc settings are left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt, Linux only")

# Evaluates a 784-800-800-10 network (the recipe's) on batches of 1,000: each forward makes
# arrays of 3 MiB, which glibc by default serves from fresh pages every time.
SCRIPT = """
import json, resource, sys
import numpy as np
import graphnet.allocator as allocator
if sys.argv[1] == "untuned":
    allocator._applied = False  # as if tuning were not possible: malloc's defaults
from graphnet import Model, parse_spec
spec = '''
name: big
inputs: {image: {shape: [784]}, label: {shape: [], dtype: int64}}
layers: {input: image, sizes: [784, 800, 800, 10], activation: relu, loss: softmax_cross_entropy, labels: label}
'''
model = Model.from_spec(parse_spec(spec), seed=0)
batch = {"image": np.random.default_rng(0).random((1000, 784), dtype=np.float32),
         "label": np.zeros(1000, np.int64)}
for _ in range(3):  # warm up
    model.forward(batch)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    model.forward(batch)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"faults": faults, "tuned": allocator.keep_freed_memory()}))
"""


def _run(mode: str, **env) -> dict:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    environ.update(env)
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                          env=environ, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_batches_reuse_freed_memory_once_a_model_exists():
    tuned, untuned = _run("tuned"), _run("untuned")
    assert tuned["tuned"] is True and untuned["tuned"] is False
    # malloc's defaults: every 3 MiB array is fresh pages (about 750 faults each, several per
    # forward); kept memory: the same pages again
    assert untuned["faults"] > 5 * 1000
    assert tuned["faults"] < 200


def test_the_user_s_malloc_settings_win():
    result = _run("tuned", MALLOC_TRIM_THRESHOLD_="131072")
    assert result["tuned"] is False
