"""Describing the spec format and the ops for tools: the JSON Schema of a spec (for editor
autocompletion), with every registered op's attributes, and the op listing behind ``graphnet ops``.
"""

from __future__ import annotations

from typing import Any

from .errors import OpError
from .op import Op
from .registry import Registry, default_registry
from .spec import Spec


def spec_json_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The spec's JSON Schema; a node's ``attrs`` are checked against its op's attributes model."""
    registry = registry or default_registry()
    schema = Spec.model_json_schema()
    defs = schema.setdefault("$defs", {})
    node = defs["NodeSpec"]
    names, branches = [], []
    for name in registry.names():
        try:
            op = registry.get(name)
        except OpError:
            continue  # `graphnet ops` reports broken plugins
        names.append(name)
        attrs = op.Attrs.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(attrs.pop("$defs", {}))
        attrs["additionalProperties"] = False
        roles = {"type": "object", "required": list(op.inputs),
                 "properties": {r: node["properties"]["inputs"]["additionalProperties"] for r in op.inputs},
                 "additionalProperties": False}
        branches.append({
            "if": {"properties": {"op": {"const": name}}},
            "then": {"properties": {"attrs": attrs, "inputs": roles}},
        })
    node["properties"]["op"] = {"enum": names, "description": node["properties"]["op"].get("description", "")}
    node["allOf"] = branches
    # TrainSpec's `schedule` validator also takes a list of stages (piecewise) and a mapping
    # without `type` (constant), which pydantic's generated schema does not know about.
    train_props = defs["TrainSpec"]["properties"]
    tagged = train_props["schedule"]
    train_props["schedule"] = {
        "title": tagged.get("title", "Schedule"),
        "anyOf": [
            {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/Stage"}},
            {"allOf": [{"type": "object", "not": {"required": ["type"]}},
                       {"$ref": "#/$defs/ConstantSchedule"}]},
            {"allOf": [{"type": "object", "required": ["type"]}, tagged]},
        ],
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def describe_op(op: Op, distribution: str) -> dict[str, Any]:
    attributes = []
    for field_name, field in op.Attrs.model_fields.items():
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        attributes.append({
            "name": field_name,
            "required": field.is_required(),
            "default": default,
            "description": field.description or "",
        })
    return {
        "name": op.name,
        "version": op.version,
        "distribution": distribution,
        "inputs": list(op.inputs),
        "no_grad": list(op.no_grad),
        "variadic": list(op.variadic),
        "params": [p.name for p in op.params],
        "attributes": attributes,
        "summary": op.summary(),
        "doc": (type(op).__doc__ or "").strip(),
    }


def describe_ops(registry: Registry | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every usable op described, and the problems (op name -> message) of the others."""
    registry = registry or default_registry()
    problems = {name: str(error) for name, error in registry.problems().items()}
    described = [
        describe_op(registry.get(name), registry.source(name).distribution)
        for name in registry.names()
        if name not in problems
    ]
    return described, problems
