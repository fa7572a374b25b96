"""OpenAPI import: one REST tool per operation of a Swagger 2.0, OpenAPI 3.0 or 3.1 spec.

>>> doc = from_openapi(load_spec("petstore.yaml"), name="pets")  # doctest: +SKIP
>>> [t["name"] for t in doc["tools"]]  # doctest: +SKIP
['listPets', 'createPet', 'showPetById']

Each operation becomes a tool named from its ``operationId`` (sanitized to
``[A-Za-z0-9_.-]{1,64}``), else from the method and path; clashes get ``_2``, ``_3``…
in spec order. The endpoint is the server URL plus the path, with path parameters
as ``{{ args.x }}`` (each one percent-encoded path segment, ``style: simple``; ``allowReserved: true``
makes it ``raw``; a ``{x}`` the spec does not declare becomes a required string argument). Path, query and header parameters become arguments of those
positions; JSON body properties become ``body`` arguments (the gateway builds the
JSON body from them); ``multipart/form-data`` properties become ``form-data``
(binary ones ``file``). Local ``$ref``s are resolved, cycles cut.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

import yaml

from .documents import TOOL_NAME_RE, validate
from .errors import ConfigError

__all__ = ["from_openapi", "load_spec", "parse_spec_text"]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_MAX_DEPTH = 8
_POSITIONS = {"path": "path", "query": "query", "header": "header", "formData": "form-data"}


MAX_SPEC_BYTES = 4 * 1024 * 1024
_MAX_OPERATOR_SPEC_BYTES = 64 * 1024 * 1024  # the operator's own file or URL: larger, still bounded


def load_spec(source: str, *, fetch: Callable[[str], str] | None = None) -> dict:
    """Read a spec from a file path, an ``http(s)://`` URL (10 s timeout) or raw YAML/JSON text.

    For the operator (CLI, SDK): it reads files and fetches URLs as its caller. Servers never pass
    client input here; they call :func:`parse_spec_text` on text and fetch URLs through their guard.
    ``fetch(url) -> text`` replaces the plain download; whatever it raises is reported as the reason.
    """
    where = source if len(source) < 200 and "\n" not in source else "<text>"
    if re.match(r"^https?://", source.strip()) and fetch is not None:
        try:
            text = fetch(source.strip())
        except Exception as exc:  # noqa: BLE001 - the fetcher's refusal or failure is the reason
            raise ConfigError(f"{source}: cannot fetch the spec: {exc}") from None
    elif re.match(r"^https?://", source.strip()):
        import requests

        try:
            resp = requests.get(source.strip(), timeout=10)
            resp.raise_for_status()
        except requests.RequestException as exc:
            raise ConfigError(f"{source}: cannot fetch the spec: {exc}") from None
        text = resp.text
    elif "\n" not in source and len(source) < 4096 and os.path.exists(source):
        try:
            with open(source, encoding="utf-8") as fh:
                text = fh.read(_MAX_OPERATOR_SPEC_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    else:
        text = source
    return parse_spec_text(text, where=where, max_bytes=_MAX_OPERATOR_SPEC_BYTES)


def parse_spec_text(text: str, *, where: str = "<text>", max_bytes: int = MAX_SPEC_BYTES) -> dict:
    """Parse YAML or JSON text (at most ``max_bytes``, 4 MiB) into a spec; never reads a file or fetches a URL.

    ``where`` names the source in errors. ConfigError when the text is too large, does not parse,
    or is not an OpenAPI/Swagger document.
    """
    if not isinstance(text, str):
        raise ConfigError(f"{where}: expected the spec as text")
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ConfigError(f"{where}: the spec is larger than {max_bytes // (1024 * 1024)} MiB")
    try:
        spec = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f": line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{where}{at}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not isinstance(spec, dict) or not ("openapi" in spec or "swagger" in spec):
        raise ConfigError(f"{where}: not an OpenAPI or Swagger document (no 'openapi' or 'swagger' key)")
    return spec


class _Resolver:
    """Resolves local ``$ref``s (``#/components/...``, ``#/definitions/...``), guarding against cycles."""

    def __init__(self, spec: dict):
        self.spec = spec

    def lookup(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ConfigError(f"$ref {ref!r} is not local; only '#/...' references are supported")
        node: Any = self.spec
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, list) and part.isdigit():
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise ConfigError(f"$ref {ref!r} points to nothing")
        return node

    def deref(self, node: Any, seen: tuple = ()) -> tuple[Any, tuple]:
        """Follow ``$ref`` chains; return the target and the refs followed (for cycle checks)."""
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:  # a cycle: stop at "some object"
                return {"type": "object"}, seen
            seen = seen + (ref,)
            target = self.lookup(ref)
            if len(node) > 1 and isinstance(target, dict):  # 3.1 allows siblings next to $ref
                target = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            node = target
        return node, seen

    def schema(self, node: Any, seen: tuple = (), depth: int = 0) -> dict:
        """A schema with every local ``$ref`` inlined, ``allOf`` merged, recursion cut at cycles."""
        node, seen = self.deref(node, seen)
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return {}
        out: dict[str, Any] = {}
        for part in node.get("allOf") or []:
            merged = self.schema(part, seen, depth + 1)
            props = {**out.get("properties", {}), **merged.get("properties", {})}
            required = list(dict.fromkeys(out.get("required", []) + merged.get("required", [])))
            out.update(merged)
            if props:
                out["properties"] = props
            if required:
                out["required"] = required
        for k, v in node.items():
            if k == "allOf":
                continue
            if k == "properties" and isinstance(v, dict):
                props = {name: self.schema(sub, seen, depth + 1) for name, sub in v.items()}
                out["properties"] = {**out.get("properties", {}), **props}
            elif k == "required" and isinstance(v, list):
                out["required"] = list(dict.fromkeys(out.get("required", []) + v))
            elif k == "items":
                out["items"] = self.schema(v, seen, depth + 1)
            elif k in ("oneOf", "anyOf") and isinstance(v, list):
                out[k] = [self.schema(sub, seen, depth + 1) for sub in v]
            elif k == "additionalProperties" and isinstance(v, dict):
                out[k] = self.schema(v, seen, depth + 1)
            else:
                out[k] = v
        return out


def _type_of(schema: dict) -> str:
    t = schema.get("type")
    if isinstance(t, list):  # 3.1: ["string", "null"]
        t = next((x for x in t if x != "null"), None)
    if t == "file":
        return "string"
    if t in ("string", "number", "integer", "boolean", "array", "object"):
        return t
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    for alt in schema.get("oneOf") or schema.get("anyOf") or []:
        found = _type_of(alt)
        if found != "string" or alt.get("type") == "string":
            return found
    enum = schema.get("enum")
    if enum:
        first = next((v for v in enum if v is not None), "")
        return {bool: "boolean", int: "integer", float: "number"}.get(type(first), "string")
    return "string"


def _default_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _items(schema: dict) -> dict:
    """Unla's ``items`` block for an array (or object) schema."""
    out: dict[str, Any] = {"type": _type_of(schema)}
    if schema.get("enum"):
        out["enum"] = [v for v in schema["enum"] if v is not None]
    if schema.get("description"):
        out["description"] = str(schema["description"])
    if out["type"] == "object" and schema.get("properties"):
        out["properties"] = schema["properties"]
        if schema.get("required"):
            out["required"] = list(schema["required"])
    if out["type"] == "array":
        out["items"] = _items(schema.get("items") or {})
    return out


def _arg(name: str, position: str, schema: dict, *, required: bool, description: str | None) -> dict:
    type_ = _type_of(schema)
    if position == "form-data" and (schema.get("format") == "binary" or schema.get("type") == "file"):
        position = "file"
    arg: dict[str, Any] = {"name": name, "position": position, "required": bool(required), "type": type_}
    text = description or schema.get("description") or schema.get("title")
    if text:
        arg["description"] = str(text).strip()
    if "default" in schema and schema["default"] is not None:
        arg["default"] = _default_text(schema["default"])
    if type_ == "array":
        arg["items"] = _items(schema.get("items") or {})
    elif type_ == "object" and schema.get("properties"):
        arg["items"] = _items(schema)
    elif schema.get("enum"):
        arg["enum"] = [v for v in schema["enum"] if v is not None]
    return arg


def _sanitize(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")
    return name[:64] or "operation"


def _unique(name: str, used: set[str]) -> str:
    if name not in used:
        used.add(name)
        return name
    n = 2
    while True:
        suffix = f"_{n}"
        candidate = name[:64 - len(suffix)] + suffix
        if candidate not in used:
            used.add(candidate)
            return candidate
        n += 1


def _path_args(path: str, args: list[dict]) -> list[dict]:
    """``args`` with a path argument for each ``{name}`` of ``path`` the spec forgot to declare (a required
    string), and without declared path parameters ``path`` does not use (they could never be sent).

    Each becomes ``{{ args.name }}`` in the endpoint, one percent-encoded path segment (``style: simple``).
    """
    used = re.findall(r"\{([^}]+)\}", path)
    declared = {a["name"] for a in args}
    kept = [a for a in args if a["position"] != "path" or a["name"] in used]
    return kept + [{"name": name, "position": "path", "required": True, "type": "string"}
                   for name in dict.fromkeys(used) if name not in declared]


def _arg_ref(name: str) -> str:
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        return f"{{{{ args.{name} }}}}"
    return f"{{{{ args[{json.dumps(name)}] }}}}"


def _base_url(spec: dict, base_url: str | None) -> str:
    if base_url:
        return base_url.rstrip("/")
    if "swagger" in spec:
        host = spec.get("host")
        if host:
            scheme = (spec.get("schemes") or ["https"])[0]
            return f"{scheme}://{host}{spec.get('basePath') or ''}".rstrip("/")
        raise ConfigError("the spec names no host; pass base_url")
    servers = spec.get("servers") or []
    if servers and isinstance(servers[0], dict) and servers[0].get("url"):
        url = str(servers[0]["url"])
        for var, info in (servers[0].get("variables") or {}).items():
            url = url.replace("{" + var + "}", str((info or {}).get("default", "")))
        if re.match(r"^https?://", url):
            return url.rstrip("/")
        raise ConfigError(f"the spec's server URL {url!r} is relative; pass base_url")
    raise ConfigError("the spec has no servers[0].url; pass base_url")


def _operations(spec: dict, resolver: _Resolver):
    for path, item in (spec.get("paths") or {}).items():
        item, _ = resolver.deref(item)
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                yield path, method, item, op


def _body_args(op: dict, resolver: _Resolver) -> tuple[list[dict], str | None]:
    """Arguments from the request body, and a ``requestBody`` template when the body is not an object."""
    body, _ = resolver.deref(op.get("requestBody"))
    if not isinstance(body, dict):
        return [], None
    content = body.get("content") or {}
    position, media = "body", None
    for mt in content:
        if mt.split(";")[0].strip() in ("application/json", "*/*") or mt.endswith("+json"):
            media = content[mt]
            break
    if media is None:
        for mt in ("multipart/form-data", "application/x-www-form-urlencoded"):
            if mt in content:
                media, position = content[mt], "form-data"
                break
    if media is None:
        return [], None
    schema = resolver.schema((media or {}).get("schema") or {})
    return _schema_args(schema, position, bool(body.get("required")), body.get("description"))


def _schema_args(schema: dict, position: str, required: bool, description: Any) -> tuple[list[dict], str | None]:
    if _type_of(schema) == "object" and schema.get("properties"):
        needed = set(schema.get("required") or [])
        return [_arg(name, position, sub, required=name in needed, description=None)
                for name, sub in schema["properties"].items()
                if not sub.get("readOnly")], None
    if position != "body" or not schema:
        return [], None
    # A body that is not an object (an array, a string) is passed whole as the argument "body".
    arg = _arg("body", "body", schema, required=required, description=description)
    return [arg], "{{ args.body | tojson }}"


def from_openapi(spec: dict | str, *, name: str, tenant: str = "default", prefix: str | None = None,
                 base_url: str | None = None) -> dict:
    """Convert an OpenAPI spec (a dict, or text/path/URL for :func:`load_spec`) into a validated document.

    The document has one REST server named ``name`` exposing every tool, and one router at
    ``prefix`` (default ``/{tenant}/{name}``). ``base_url`` overrides the spec's server URL.
    """
    if isinstance(spec, str):
        spec = load_spec(spec)
    if not isinstance(spec, dict) or not ("openapi" in spec or "swagger" in spec):
        raise ConfigError("not an OpenAPI or Swagger document (no 'openapi' or 'swagger' key)")
    resolver = _Resolver(spec)
    base = _base_url(spec, base_url)
    swagger = "swagger" in spec
    used: set[str] = set()
    tools = []
    for path, method, item, op in _operations(spec, resolver):
        raw = op.get("operationId")
        tool_name = _sanitize(str(raw)) if raw else _sanitize(f"{method}_{path.strip('/')}")
        if not TOOL_NAME_RE.match(tool_name):
            tool_name = _sanitize(f"{method}_{path.strip('/')}")
        tool_name = _unique(tool_name, used)
        params: dict[tuple[str, str], dict] = {}
        for p in list(item.get("parameters") or []) + list(op.get("parameters") or []):
            p, _ = resolver.deref(p)
            if isinstance(p, dict) and p.get("name") and p.get("in"):
                params[(p["name"], p["in"])] = p
        args: list[dict] = []
        request_body = None
        for (pname, where_in), p in params.items():
            if where_in == "body" and swagger:
                body_args, request_body = _schema_args(resolver.schema(p.get("schema") or {}), "body",
                                                       bool(p.get("required")), p.get("description"))
                args += body_args
                continue
            position = _POSITIONS.get(where_in)
            if position is None:  # cookie parameters have no position
                continue
            schema = resolver.schema(p.get("schema") or {}) if "schema" in p else \
                {k: v for k, v in p.items() if k in ("type", "format", "enum", "default", "items")}
            if swagger and "items" in schema:
                schema["items"] = resolver.schema(schema["items"])
            arg = _arg(pname, position, schema, required=bool(p.get("required")) or where_in == "path",
                       description=p.get("description"))
            if position == "path" and p.get("allowReserved") is True:
                arg["raw"] = True  # the spec lets its value hold '/' and other reserved characters
            args.append(arg)
        if not swagger:
            body_args, request_body = _body_args(op, resolver)
            args += body_args
        seen_args: set[str] = set()
        args = [a for a in args if not (a["name"] in seen_args or seen_args.add(a["name"]))]
        args = _path_args(path, args)
        endpoint = base + re.sub(r"\{([^}]+)\}", lambda m: _arg_ref(m.group(1)), path)
        tool: dict[str, Any] = {"name": tool_name}
        description = "\n\n".join(str(t).strip() for t in (op.get("summary"), op.get("description")) if t)
        if description:
            tool["description"] = description
        tool.update({"method": method.upper(), "endpoint": endpoint})
        if args:
            tool["args"] = args
        if request_body:
            tool["requestBody"] = request_body
        if method in ("get", "head", "options"):
            tool["annotations"] = {"readOnlyHint": True}
        elif method == "delete":
            tool["annotations"] = {"destructiveHint": True}
        tools.append(tool)
    info = spec.get("info") or {}
    server: dict[str, Any] = {"name": name}
    if info.get("title") or info.get("description"):
        server["description"] = str(info.get("title") or info.get("description"))
    server["allowedTools"] = [t["name"] for t in tools]
    content = {
        "name": name,
        "tenant": tenant,
        "routers": [{"server": name, "prefix": prefix or f"/{tenant}/{name}"}],
        "servers": [server],
        "tools": tools,
    }
    return validate(content)
