"""For the modelfile owner: a model file saved with an op's version 1 keeps loading on version 1
after the plugin adds version 2 (and keeps it when saved again)."""

import numpy as np
import pytest

from graphnet import Model, build_graph, parse_spec
from graphnet.errors import ModelFileError
from graphnet.modelfile import load_model, read_header, save_model
from graphnet.op import Elementwise
from graphnet.registry import default_registry


class ScaleV1(Elementwise):
    """y = 2 x"""

    def forward(self, attrs, ctx, x):
        return 2 * x, None

    def backward(self, attrs, saved, dy):
        return {"x": 2 * dy}


class Scale(ScaleV1):
    """y = 3 x"""

    version = 2
    previous = (ScaleV1,)

    def forward(self, attrs, ctx, x):
        return 3 * x, None

    def backward(self, attrs, saved, dy):
        return {"x": 3 * dy}


SPEC = """
name: v
inputs: {x: {shape: [3]}}
nodes:
  fc: {op: linear, inputs: {x: x}, attrs: {units: 3}}
  s: {op: scale, inputs: {x: fc}}
"""


def test_a_model_saved_with_version_1_loads_on_version_1_after_version_2_is_installed(tmp_path):
    before = default_registry().copy()
    before.register(ScaleV1, "scale")  # the plugin as released: version 1 only
    model = Model(build_graph(parse_spec(SPEC), before), seed=0)
    path = tmp_path / "v1.gnm"
    save_model(path, model, registry=before)
    assert read_header(path).ops["scale"].version == 1
    x = np.ones((2, 3), np.float32)
    expected = model.forward({"x": x})["s"]

    after = default_registry().copy()
    after.register(Scale, "scale")  # the plugin upgraded: version 2, version 1 kept in previous
    loaded = load_model(path, registry=after).model
    assert loaded.graph.op_versions()["scale"] == 1
    np.testing.assert_array_equal(loaded.forward({"x": x})["s"], expected)
    save_model(tmp_path / "again.gnm", loaded, registry=after)
    assert read_header(tmp_path / "again.gnm").ops["scale"].version == 1
    # a new model gets version 2
    assert Model(build_graph(parse_spec(SPEC), after)).graph.op_versions()["scale"] == 2

    only_v2 = default_registry().copy()
    only_v2.register(type("ScaleOnly2", (Scale,), {"previous": ()}), "scale")
    with pytest.raises(ModelFileError) as info:
        load_model(path, registry=only_v2)
    assert "the model was saved with op 'scale' version 1" in str(info.value)
    assert "provides version 2" in str(info.value)
