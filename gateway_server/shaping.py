"""Tool shaping: a router's ``tools`` block reshapes the tools its backends offer (docs/tool-shaping.md).

``routers[].tools.<name>`` names a tool as the router would expose it (after ``toolPrefix``) and may
rename it, set its ``title`` and ``description``, add or override ``annotations``, hide it, and change
its arguments: rewrite a ``description``, set a ``default``, or ``fixed`` a value (the argument
leaves the schema the client sees and the backend always receives that value). REST and upstream MCP
tools alike; the backend keeps its own names and sees the original tool name.

>>> shaped = shape({"name": "t", "inputSchema": {"type": "object", "properties": {"a": {}, "b": {}},
...                 "required": ["a", "b"]}}, Shape.from_dict({"name": "u", "arguments": {"b": {"fixed": 1}}}))
>>> shaped.descriptor["name"], shaped.descriptor["inputSchema"]["required"], shaped.fixed
('u', ['a'], {'b': 1})
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from mcpgw_sdk.config_model import Annotations, Shape, model_fields


@dataclass
class Shaped:
    """A tool after shaping: what the client sees, the values the backend always gets, what did not apply."""

    descriptor: dict[str, Any]
    fixed: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _annotations(given: Annotations) -> dict[str, Any]:
    """The annotations a shaping sets, under their document keys (a validated document has no nulls)."""
    return {f.metadata["key"]: getattr(given, f.name) for f in model_fields(Annotations)
            if getattr(given, f.name) is not None}


def shape(descriptor: dict[str, Any], change: Shape) -> Shaped:
    """``descriptor`` reshaped by one ``routers[].tools`` entry (never mutates ``descriptor``)."""
    out = dict(descriptor)
    for key, value in (("name", change.name), ("title", change.title), ("description", change.description)):
        if value is not None:
            out[key] = value
    if change.annotations is not None:
        out["annotations"] = {**(descriptor.get("annotations") or {}), **_annotations(change.annotations)}
    arguments = change.arguments
    if not arguments:
        return Shaped(out)
    schema = copy.deepcopy(descriptor.get("inputSchema") or {"type": "object"})
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    fixed: dict[str, Any] = {}
    problems: list[str] = []
    for arg, edit in arguments.items():
        if arg not in properties:
            problems.append(f"arguments.{arg}: tool {descriptor.get('name')!r} has no argument {arg!r} "
                            f"(its arguments: {', '.join(properties) or 'none'}); not applied")
            continue
        if edit.fixed is not None:  # the validator drops nulls: None is "not set"
            fixed[arg] = edit.fixed
            del properties[arg]
            if isinstance(schema.get("required"), list):
                schema["required"] = [r for r in schema["required"] if r != arg]
            continue
        prop = properties[arg] = dict(properties[arg]) if isinstance(properties[arg], dict) else {}
        if edit.description is not None:
            prop["description"] = edit.description
        if edit.default is not None:
            prop["default"] = edit.default
    if isinstance(schema.get("required"), list) and not schema["required"]:
        del schema["required"]
    out["inputSchema"] = schema
    return Shaped(out, fixed, problems)
