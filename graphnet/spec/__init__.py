"""The spec: a network (and how to train it) declared in YAML or JSON.

``models`` holds the pydantic models of the format; ``files`` reads a spec file (refusing, with
what it is, a model file, an image, a directory, a FIFO, a file too large or not UTF-8);
``text`` parses YAML or JSON into data and the line of every key, within limits (nesting, alias
expansion, size, integer length), and ``syntax`` explains syntax errors at the line of the
mistake; ``load`` validates and turns pydantic's errors into located ones (all of them, reported
at once); ``overrides`` applies ``--set``. Loading validates the structure; the graph module then
validates what needs the op registry (ops, roles, attributes, references, cycles, shapes). Every
error names the spec path (``nodes.fc2.inputs.x``) and the line in the file, or the ``--set`` it
came from.

A minimal spec::

    format: 1
    name: tiny
    inputs:
      image: {shape: [784]}
      label: {shape: [], dtype: int64}
    nodes:
      fc1:  {op: linear, inputs: {x: image}, attrs: {units: 10}}
      loss: {op: softmax_cross_entropy, inputs: {logits: fc1, labels: label}}
    outputs: [fc1, loss]
"""

from __future__ import annotations

from .load import load_spec, parse_spec, validate_spec_data
from .models import (
    FORMAT_VERSION,
    NAME_PATTERN,
    AdamSpec,
    AugmentSpec,
    ConstantSchedule,
    CosineSchedule,
    DataSpec,
    InputSpec,
    KeepBestSpec,
    LayersSpec,
    Name,
    NodeSpec,
    OptimizerSpec,
    PiecewiseSchedule,
    PreprocessSpec,
    ScheduleSpec,
    SGDSpec,
    Spec,
    SpecRule,
    Stage,
    StepSchedule,
    StrictModel,
    TrainSpec,
    ValidationFile,
    dotted,
    expand_layers,
)
from .overrides import apply_override

__all__ = [
    "FORMAT_VERSION",
    "NAME_PATTERN",
    "AdamSpec",
    "AugmentSpec",
    "ConstantSchedule",
    "CosineSchedule",
    "DataSpec",
    "InputSpec",
    "KeepBestSpec",
    "LayersSpec",
    "Name",
    "NodeSpec",
    "OptimizerSpec",
    "PiecewiseSchedule",
    "PreprocessSpec",
    "ScheduleSpec",
    "SGDSpec",
    "Spec",
    "SpecRule",
    "Stage",
    "StepSchedule",
    "StrictModel",
    "TrainSpec",
    "ValidationFile",
    "apply_override",
    "dotted",
    "expand_layers",
    "load_spec",
    "parse_spec",
    "validate_spec_data",
]
