"""Forms generated from a tool's JSON input schema, and the typed arguments their raw values become.

Widgets hand back text (numbers and JSON too, so an optional field can stay
empty); :func:`arguments` turns that text into typed values and names every
field that is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FormField:
    """One input of a generated form."""

    name: str
    type: str = "string"
    required: bool = False
    description: str = ""
    enum: tuple[Any, ...] = ()
    default: Any = None

    @property
    def widget(self) -> str:
        """``select``, ``checkbox``, ``json`` or ``text``."""
        if self.enum:
            return "select"
        if self.type == "boolean":
            return "checkbox" if self.required else "select"
        if self.type in ("object", "array"):
            return "json"
        return "text"

    @property
    def options(self) -> list[str]:
        """Choices of a ``select`` widget, as text (an empty choice first when optional)."""
        values = [_text(v) for v in self.enum] if self.enum else ["true", "false"]
        return values if self.required else [""] + values

    @property
    def label(self) -> str:
        """The field's label: name, type and a star when required."""
        return f"{self.name}{' *' if self.required else ''} ({self.type})"

    def initial(self) -> Any:
        """The widget's starting value (the schema's default when there is one)."""
        if self.widget == "checkbox":
            return bool(self.default)
        return "" if self.default is None else _text(self.default)


@dataclass
class Parsed:
    """Typed arguments and the errors of fields that could not be converted."""

    arguments: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _type_of(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return kind


def fields(schema: dict[str, Any] | None) -> list[FormField]:
    """The form of an object schema: one field per property, required ones first."""
    schema = schema or {}
    required = set(schema.get("required") or [])
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        out.append(FormField(name=name, type=_type_of(prop), required=name in required,
                             description=prop.get("description", ""), enum=tuple(prop.get("enum") or ()),
                             default=prop.get("default")))
    return sorted(out, key=lambda f: not f.required)


def convert(form_field: FormField, raw: Any) -> Any:
    """One raw widget value to its typed value; ValueError saying why when it does not fit."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    if form_field.enum:
        for value in form_field.enum:
            if _text(value) == text:
                return value
        raise ValueError(f"must be one of {', '.join(_text(v) for v in form_field.enum)}")
    kind = form_field.type
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        return int(number) if number.is_integer() and "." not in text else number
    if kind == "boolean":
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise ValueError(f"{text!r} is not true or false")
    if kind in ("object", "array"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        expected = dict if kind == "object" else list
        if not isinstance(value, expected):
            raise ValueError(f"must be a JSON {kind}")
        return value
    return str(raw)


def arguments(form: list[FormField], raw: dict[str, Any]) -> Parsed:
    """Typed arguments from raw widget values; empty optional fields are left out."""
    parsed = Parsed()
    for form_field in form:
        value = raw.get(form_field.name)
        empty = value is None or (isinstance(value, str) and not value.strip())
        if empty:
            if form_field.required:
                parsed.errors[form_field.name] = "required"
            continue
        try:
            parsed.arguments[form_field.name] = convert(form_field, value)
        except ValueError as exc:
            parsed.errors[form_field.name] = str(exc)
    return parsed
