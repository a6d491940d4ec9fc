"""Describing the spec format and the ops for tools: the JSON Schema of a spec (for editor
autocompletion), with every registered op's attributes, and the op listing behind ``graphnet ops``.

Both describe what is installed: the ops the registry can load (a plugin's as well as the
built-ins), the `layers:` shorthand's choices among them, and, where an op cannot be loaded, the
problem (a schema lists them in its ``$comment``; ``Registry.problems()`` has them as errors).
"""

from __future__ import annotations

from typing import Any

from .graph import shorthand_misfit
from .op import Op
from .registry import Registry, default_registry
from .spec import Spec
from .spec.models import NO_OP


def spec_json_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The spec's JSON Schema; a node's ``attrs`` are checked against its op's attributes model."""
    registry = registry or default_registry()
    schema = Spec.model_json_schema()
    defs = schema.setdefault("$defs", {})
    node = defs["NodeSpec"]
    names, branches = [], []
    usable: list[Op] = []
    problems = registry.problems()
    for name in registry.names():
        if name in problems:
            continue  # listed in $comment below; `graphnet ops` reports them too
        op = registry.get(name)
        usable.append(op)
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
    _shorthand_choices(defs["LayersSpec"]["properties"], usable)
    if problems:
        schema["$comment"] = "ops left out because they cannot be loaded: " + "; ".join(
            str(error) for error in problems.values()
        )
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


def _shorthand_choices(properties: dict[str, Any], ops: list[Op]) -> None:
    """The `layers:` shorthand's activation, output activation and loss as the installed ops that
    fit there (the same rule graph building applies)."""
    for field_name in ("activation", "output_activation", "loss"):
        choices = [op.name for op in ops if shorthand_misfit(op, field_name) is None]
        if field_name != "activation":
            choices.append(NO_OP)
        before = properties[field_name]
        properties[field_name] = {
            "title": before.get("title", field_name), "description": before.get("description", ""),
            "default": before.get("default"), "enum": choices,
        }


def describe_op(op: Op, distribution: str, versions: list[int] | None = None) -> dict[str, Any]:
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
        "versions": list(versions or [op.version]),
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
        describe_op(registry.get(name), registry.source(name).distribution, registry.versions(name))
        for name in registry.names()
        if name not in problems
    ]
    return described, problems
