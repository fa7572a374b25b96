"""OpenAPI import: one REST tool per operation of a Swagger 2.0, OpenAPI 3.0 or 3.1 spec.

>>> doc = from_openapi(load_spec("petstore.yaml"), name="pets")  # doctest: +SKIP
>>> [t["name"] for t in doc["tools"]]  # doctest: +SKIP
['listPets', 'createPet', 'showPetById']

Each operation becomes a tool named from its ``operationId`` (sanitized to ``[A-Za-z0-9_.-]``; one longer
than 64 characters is cut and given a short hash of the whole id), else from the method and path; clashes
get ``_2``, ``_3``… in spec order. The endpoint is the operation's server URL (operation, path item, then
top level; variables filled with their defaults) plus the path, with path parameters as ``{{ args.x }}``
(each one percent-encoded path segment, ``style: simple``; ``allowReserved: true`` makes it ``raw``; a
``{x}`` the spec does not declare becomes a required string argument). Path, query and header parameters
become arguments of those positions; a parameter or body property whose name is taken is renamed
(``query_id``, ``body_id``) and keeps its name on the wire (``field``). The request body by media type:
JSON properties become ``body`` arguments, form-urlencoded and ``multipart/form-data`` properties
``form-data`` (binary ones ``file``), a text or binary body one argument ``body``. Schemas that the
argument fields cannot say (``oneOf``, ``nullable``, several types…) are kept whole in ``inputSchema``.
``securitySchemes`` become ``servers[].config`` values read by headers (or the query). Local ``$ref``s
are resolved, cycles cut. See docs/openapi.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urljoin

import yaml

from .config_model import DEFAULT_TENANT
from .documents import TOOL_NAME_RE, validate
from .errors import ConfigError

__all__ = ["from_openapi", "load_spec", "parse_spec_text"]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_MAX_DEPTH = 8
_POSITIONS = {"path": "path", "query": "query", "header": "header", "formData": "form-data"}
#: libyaml's loader when PyYAML was built with it: the pure-Python one is ~10x slower on large specs.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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

    Text that starts with ``{`` is read as JSON first (the YAML parser takes ~50x longer and far more
    memory on a multi-megabyte description); YAML uses libyaml when it is present. ``where`` names the
    source in errors. ConfigError when the text is too large, does not parse, or is not an
    OpenAPI/Swagger document.
    """
    if not isinstance(text, str):
        raise ConfigError(f"{where}: expected the spec as text")
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ConfigError(f"{where}: the spec is larger than {max_bytes // (1024 * 1024)} MiB")
    spec: Any = None
    if text.lstrip().startswith("{"):
        try:
            spec = json.loads(text)
        except ValueError:  # not JSON after all (YAML flow style, or broken): the YAML parser says where
            spec = None
    if spec is None:
        try:
            spec = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader (C or Python)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            at = f": line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{where}{at}: {exc.problem}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if not isinstance(spec, dict) or not ("openapi" in spec or "swagger" in spec):
        raise ConfigError(f"{where}: not an OpenAPI or Swagger document (no 'openapi' or 'swagger' key)")
    return spec


#: OpenAPI keywords that say nothing to a JSON Schema validator (dropped from ``inputSchema``).
_NOT_JSON_SCHEMA = frozenset({"discriminator", "xml", "externalDocs", "example", "nullable"})
_SUB_SCHEMA = frozenset({"items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
                         "unevaluatedProperties", "unevaluatedItems", "additionalItems"})
_SCHEMA_LISTS = frozenset({"allOf", "oneOf", "anyOf", "prefixItems"})
#: What an argument's ``type``/``enum``/``items`` cannot say: such a schema goes whole into ``inputSchema``.
_COMPOUND = frozenset({"oneOf", "anyOf", "allOf", "not", "const", "if", "prefixItems", "patternProperties"})


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

    def json_schema(self, node: Any, seen: tuple = (), depth: int = 0) -> Any:
        """The schema as JSON Schema 2020-12 (what the gateway validates with), meaning kept.

        ``$ref``s inlined (cycles cut to ``type: object``), ``allOf``/``oneOf``/``anyOf`` kept as they are,
        3.0's ``nullable`` and boolean ``exclusiveMinimum``/``Maximum`` rewritten, ``type: file`` a string,
        read-only properties no longer required (a request does not send them), OpenAPI-only keywords dropped.
        """
        node, seen = self.deref(node, seen)
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return {}
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k in _NOT_JSON_SCHEMA or k.startswith("x-"):
                continue
            if k in ("properties", "patternProperties", "$defs") and isinstance(v, dict):
                out[k] = {name: self.json_schema(sub, seen, depth + 1) for name, sub in v.items()}
            elif k in _SUB_SCHEMA and isinstance(v, (dict, bool)):
                out[k] = self.json_schema(v, seen, depth + 1)
            elif k in _SCHEMA_LISTS and isinstance(v, list):
                out[k] = [self.json_schema(sub, seen, depth + 1) for sub in v]
            elif k in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(v, bool):
                bound = "minimum" if k == "exclusiveMinimum" else "maximum"
                if v and isinstance(node.get(bound), (int, float)):
                    out[k] = node[bound]
            elif k == "type" and v == "file":
                out[k] = "string"
            else:
                out[k] = v
        for k in ("exclusiveMinimum", "exclusiveMaximum"):  # 3.0: the bound moved into the keyword
            if out.get(k) is not None and node.get(k) is True:
                out.pop("minimum" if k == "exclusiveMinimum" else "maximum", None)
        props = out.get("properties")
        if isinstance(props, dict) and isinstance(out.get("required"), list):
            out["required"] = [r for r in out["required"]
                               if not (isinstance(props.get(r), dict) and props[r].get("readOnly") is True)]
            if not out["required"]:
                del out["required"]
        if "oneOf" in out and (isinstance(node.get("discriminator"), dict) or _open_objects(out["oneOf"])):
            # A discriminator picks the alternative, and open object schemas (Cat, Dog) overlap: as plain
            # JSON Schema a value would match several and "exactly one" would refuse what the API accepts.
            out["anyOf"] = out.pop("oneOf")
        if node.get("nullable") is True:
            out = _with_null(out)
        return out


def _with_null(schema: dict) -> dict:
    """``schema`` that also accepts ``null`` (3.0's ``nullable: true``)."""
    t = schema.get("type")
    if isinstance(t, str):
        schema = {**schema, "type": [t, "null"]}
    elif isinstance(t, list):
        schema = {**schema, "type": list(dict.fromkeys([*t, "null"]))}
    elif any(k in schema for k in ("oneOf", "anyOf", "allOf", "not", "const")):
        return {"anyOf": [schema, {"type": "null"}]}
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema = {**schema, "enum": [*schema["enum"], None]}
    return schema


def _open_objects(alternatives: list) -> bool:
    """True when two or more alternatives are object schemas that allow other properties (they overlap)."""
    open_ = [a for a in alternatives if isinstance(a, dict) and "object" in _types(a)
             and a.get("additionalProperties") is not False and a.get("unevaluatedProperties") is not False]
    return len(open_) > 1


def _compound(schema: Any, depth: int = 0) -> bool:
    """True when argument fields (``type``, ``enum``, ``items``) would lose part of ``schema``'s meaning."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return False
    if _COMPOUND.intersection(schema) or isinstance(schema.get("type"), list):
        return True
    if isinstance(schema.get("enum"), list) and None in schema["enum"]:
        return True
    subs = [v for k, v in schema.items() if k in _SUB_SCHEMA]
    subs += list((schema.get("properties") or {}).values()) if isinstance(schema.get("properties"), dict) else []
    return any(_compound(sub, depth + 1) for sub in subs)


def _types(schema: Any) -> set[str]:
    """The JSON types a schema admits at its top (``null`` left out); empty when it does not say."""
    if not isinstance(schema, dict):
        return set()
    t = schema.get("type")
    if isinstance(t, str):
        return {"string" if t == "file" else t} - {"null"}
    if isinstance(t, list):
        return {x for x in t if isinstance(x, str)} - {"null"}
    found: set[str] = set()
    for key in ("oneOf", "anyOf"):
        for alt in schema.get(key) or []:
            found |= _types(alt)
    return found


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


#: A ``file`` argument's value: base64 text, or the file with its name and type (one or several).
_FILE = {"anyOf": [{"type": "string", "contentEncoding": "base64"},
                   {"type": "object", "required": ["content"], "properties": {
                       "name": {"type": "string"}, "content": {"type": "string", "contentEncoding": "base64"},
                       "contentType": {"type": "string"}}}]}


def _file_schema(description: Any) -> dict:
    return {**_FILE, "description": str(description or "The file: base64 text, or {name, content (base64), "
                                                          "contentType}").strip()}


def _arg(name: str, position: str, schema: dict, *, required: bool, description: str | None) -> dict:
    """An argument from a merged schema; ``_faithful`` (popped by the caller) its whole JSON Schema when
    the argument's fields cannot say it."""
    faithful = schema.pop("_faithful", None)
    type_ = _type_of(schema)
    several = len(_types(faithful if faithful is not None else schema)) > 1
    if several:
        type_ = "string"  # one of several types: the value is passed on as the caller gave it, never converted
    if position == "form-data" and (schema.get("format") == "binary" or schema.get("type") == "file"):
        position = "file"
    arg: dict[str, Any] = {"name": name, "position": position, "required": bool(required), "type": type_}
    text = description or schema.get("description") or schema.get("title")
    if text:
        arg["description"] = str(text).strip()
    if "default" in schema and schema["default"] is not None and not several:
        arg["default"] = _default_text(schema["default"])
    if several:
        pass
    elif type_ == "array":
        arg["items"] = _items(schema.get("items") or {})
    elif type_ == "object" and schema.get("properties"):
        arg["items"] = _items(schema)
    elif schema.get("enum"):
        arg["enum"] = [v for v in schema["enum"] if v is not None]
    if faithful is not None and (several or _compound(faithful)):
        arg["_schema"] = faithful
    if position == "file":
        arg["type"] = "string"
        arg.pop("default", None)
        arg["_schema"] = _file_schema(arg.get("description"))
    return arg


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "operation"


def _shorten(name: str, limit: int = 64) -> str:
    """``name`` within ``limit`` characters: a long one keeps its beginning and gets a hash of the whole,
    so two long ids that share their first 57 characters still get different, stable names."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]  # noqa: S324 - a name, not security
    return f"{name[:limit - 7].rstrip('_.-')}_{digest}"


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
    declared = {a["name"] for a in args if a["position"] == "path"}
    kept = [a for a in args if a["position"] != "path" or a["name"] in used]
    return kept + [{"name": name, "position": "path", "required": True, "type": "string"}
                   for name in dict.fromkeys(used) if name not in declared]


def _arg_ref(name: str) -> str:
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        return f"{{{{ args.{name} }}}}"
    return f"{{{{ args[{json.dumps(name)}] }}}}"


def _server_url(entry: Any) -> str | None:
    """A ``servers[]`` entry's URL with its variables filled: the default, else the first ``enum`` value."""
    if not isinstance(entry, dict) or not entry.get("url"):
        return None
    url = str(entry["url"])
    for var, info in (entry.get("variables") or {}).items():
        info = info if isinstance(info, dict) else {}
        value = info.get("default")
        if value is None and info.get("enum"):
            value = info["enum"][0]
        url = url.replace("{" + var + "}", "" if value is None else str(value))
    return url


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
    url = _server_url(servers[0]) if servers else None
    if url:
        if re.match(r"^https?://", url):
            return url.rstrip("/")
        raise ConfigError(f"the spec's server URL {url!r} is relative; pass base_url")
    raise ConfigError("the spec has no servers[0].url; pass base_url")


def _operation_base(base: str, *levels: Any) -> str:
    """The server of one operation: its own ``servers``, else its path item's, else ``base`` (the top level
    or ``base_url``). A relative URL is resolved against ``base``."""
    for servers in levels:
        url = _server_url(servers[0]) if isinstance(servers, list) and servers else None
        if url:
            if not re.match(r"^https?://", url):
                url = urljoin(base + "/", url.lstrip("/") if not url.startswith("/") else url)
            return url.rstrip("/")
    return base


def _operations(spec: dict, resolver: _Resolver):
    for path, item in (spec.get("paths") or {}).items():
        item, _ = resolver.deref(item)
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                yield path, method, item, op


_JSON = re.compile(r"^(application/json|\*/\*|application/[^;]*\+json)$")
_BINARY = re.compile(r"^(application/(octet-stream|pdf|zip|gzip)|image/.*|audio/.*|video/.*)$")


def _media(content: dict) -> tuple[str, Any] | None:
    """The request body's media type to use (JSON, then forms, then text, then binary) and its entry."""
    types = {str(mt).split(";")[0].strip().lower(): mt for mt in content}
    ranked = ([t for t in types if _JSON.match(t)]
              + [t for t in ("application/x-www-form-urlencoded", "multipart/form-data") if t in types]
              + [t for t in types if not _BINARY.match(t) and not _JSON.match(t) and "form" not in t]
              + [t for t in types if _BINARY.match(t)])
    if not ranked:
        return None
    return ranked[0], content[types[ranked[0]]]


def _body_args(op: dict, resolver: _Resolver) -> tuple[list[dict], str | None, dict[str, str]]:
    """Arguments from the request body, a ``requestBody`` template, and the headers the body needs."""
    body, _ = resolver.deref(op.get("requestBody"))
    if not isinstance(body, dict):
        return [], None, {}
    picked = _media(body.get("content") or {})
    if picked is None:
        return [], None, {}
    media_type, media = picked
    raw_schema = (media or {}).get("schema") or {}
    schema = resolver.schema(raw_schema)
    required, description = bool(body.get("required")), body.get("description")
    if _JSON.match(media_type):
        schema["_faithful"] = resolver.json_schema(raw_schema)
        return (*_schema_args(schema, "body", required, description, resolver, raw_schema), {})
    if media_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        args, _ = _schema_args(schema, "form-data", required, description, resolver, raw_schema)
        if media_type == "application/x-www-form-urlencoded":
            for arg in args:  # a urlencoded form carries no files: a binary property is a plain field
                arg["position"] = "form-data"
            return args, None, {}
        # Multipart even when the call sends no file (the gateway adds the boundary).
        return args, None, {"Content-Type": "multipart/form-data"}
    if _BINARY.match(media_type) or schema.get("format") in ("binary", "byte"):
        arg = {"name": "body", "position": "file", "required": required, "type": "string",
               "_schema": _file_schema(description or f"The {media_type} body: base64 text, or {{name, "
                                                      "content (base64), contentType}")}
        return [arg], None, {"Content-Type": media_type}
    arg = _arg("body", "body", {**schema, "type": "string"}, required=required, description=description)
    return [arg], "{{ args.body }}", {"Content-Type": media_type}


def _schema_args(schema: dict, position: str, required: bool, description: Any, resolver: _Resolver,
                 raw: Any) -> tuple[list[dict], str | None]:
    faithful = schema.pop("_faithful", None)
    if _type_of(schema) == "object" and schema.get("properties") and not ({"oneOf", "anyOf"} & set(schema)):
        needed = set(schema.get("required") or [])
        raw_props = _raw_properties(raw, resolver)
        args = []
        for name, sub in schema["properties"].items():
            if sub.get("readOnly"):
                continue
            if name in raw_props:
                sub = {**sub, "_faithful": resolver.json_schema(raw_props[name])}
            args.append(_arg(name, position, sub, required=name in needed, description=None))
        return args, None
    if position != "body" or not schema:
        return [], None
    # A body that is not an object of properties (an array, a string, a oneOf) is passed whole as "body".
    if faithful is not None:
        schema = {**schema, "_faithful": faithful}
    arg = _arg("body", "body", schema, required=required, description=description)
    return [arg], "{{ args.body | tojson }}"


def _raw_properties(raw: Any, resolver: _Resolver, depth: int = 0) -> dict[str, Any]:
    """The unresolved property schemas of an object schema, ``allOf`` parts included."""
    node, _ = resolver.deref(raw)
    if not isinstance(node, dict) or depth > _MAX_DEPTH:
        return {}
    out: dict[str, Any] = {}
    for part in node.get("allOf") or []:
        out.update(_raw_properties(part, resolver, depth + 1))
    if isinstance(node.get("properties"), dict):
        out.update(node["properties"])
    return out


def _config_key(text: str, taken: Mapping[str, Any]) -> str:
    key = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "auth"
    if key[0].isdigit():
        key = "_" + key
    base, n = key, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


def _env_name(name: str, scheme: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{name}_{scheme}").strip("_").upper()


def _schemes(spec: dict, resolver: _Resolver) -> dict[str, dict]:
    found = (spec.get("components") or {}).get("securitySchemes") or spec.get("securityDefinitions") or {}
    out = {}
    for key, scheme in found.items():
        scheme, _ = resolver.deref(scheme)
        if isinstance(scheme, dict):
            out[str(key)] = scheme
    return out


def _supported(scheme: dict) -> bool:
    kind = scheme.get("type")
    if kind == "apiKey":
        return scheme.get("in") in ("header", "query", "cookie") and bool(scheme.get("name"))
    if kind == "http":
        return str(scheme.get("scheme") or "").lower() in ("bearer", "basic")
    return kind in ("oauth2", "openIdConnect", "basic")  # 2.0's "basic"


class _Security:
    """Turns an operation's security requirement into headers (or a query) that read ``config`` values.

    Each scheme used gets one ``config`` entry holding the whole credential as sent (``Bearer …``), by
    default read from an environment variable; replacing that one value (with ``{{ secrets.NAME }}``, a
    literal, another variable) changes what every tool sends.
    """

    def __init__(self, spec: dict, resolver: _Resolver, *, name: str, config: dict[str, str]):
        self.schemes = _schemes(spec, resolver)
        self.default = spec.get("security") or []
        self.name = name
        self.config = config
        self.keys: dict[str, str] = {}  # scheme name -> config key

    def _key(self, scheme_name: str, scheme: dict) -> str:
        if scheme_name not in self.keys:
            key = _config_key(scheme_name, self.config)
            env = f'{{{{ env("{_env_name(self.name, scheme_name)}") }}}}'
            kind = scheme.get("type")
            if kind == "apiKey":
                value = env
            elif kind == "basic" or str(scheme.get("scheme") or "").lower() == "basic":
                value = f"Basic {env}"  # the variable holds base64("user:password")
            else:
                value = f"Bearer {env}"
            self.config[key] = value
            self.keys[scheme_name] = key
        return self.keys[scheme_name]

    def apply(self, op: dict, headers: dict[str, str]) -> str:
        """Add the operation's credentials to ``headers``; return a query suffix (``?key=…``) or ``""``."""
        requirements = op["security"] if isinstance(op.get("security"), list) else self.default
        for requirement in requirements:
            if not isinstance(requirement, dict) or not requirement:
                continue  # {} means "no credentials needed": prefer a requirement we can fill
            if not all(n in self.schemes and _supported(self.schemes[n]) for n in requirement):
                continue
            query, cookies = [], []
            for scheme_name in requirement:
                scheme = self.schemes[scheme_name]
                ref = f"{{{{ config.{self._key(scheme_name, scheme)} }}}}"
                where = scheme.get("in") if scheme.get("type") == "apiKey" else "header"
                if where == "query":
                    query.append(f"{quote(str(scheme['name']), safe='')}="
                                 f"{{{{ config.{self.keys[scheme_name]} | urlencode }}}}")
                elif where == "cookie":
                    cookies.append(f"{scheme['name']}={ref}")
                elif scheme.get("type") == "apiKey":
                    headers[str(scheme["name"])] = ref
                else:
                    headers["Authorization"] = ref
            if cookies:
                headers["Cookie"] = "; ".join(cookies)
            return "&".join(query)
        return ""


def _option_map(value: Mapping[str, Any] | None, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        raise ConfigError(f"{what}: expected a map of names to strings")
    return {k: str(v) for k, v in value.items()}


def from_openapi(spec: dict | str, *, name: str, tenant: str = DEFAULT_TENANT, prefix: str | None = None,
                 base_url: str | None = None, headers: Mapping[str, str] | None = None,
                 config: Mapping[str, str] | None = None) -> dict:
    """Convert an OpenAPI spec (a dict, or text/path/URL for :func:`load_spec`) into a validated document.

    The document has one REST server named ``name`` exposing every tool, and one router at
    ``prefix`` (default ``/{tenant}/{name}``). ``base_url`` overrides the spec's top-level server URL
    (path- and operation-level servers are kept; relative ones resolve against it). The spec's
    ``securitySchemes`` become ``config`` values (``env("NAME_SCHEME")`` by default) sent by each tool
    as its operation requires. ``headers`` (name → template) are sent by every tool, each through a
    ``config`` value of its own; ``config`` (name → template) sets or replaces ``config`` values.

    >>> doc = from_openapi(spec, name="pets", config={"api_key": "{{ secrets.PETS_KEY }}"})  # doctest: +SKIP
    """
    if isinstance(spec, str):
        spec = load_spec(spec)
    if not isinstance(spec, dict) or not ("openapi" in spec or "swagger" in spec):
        raise ConfigError("not an OpenAPI or Swagger document (no 'openapi' or 'swagger' key)")
    extra_headers = _option_map(headers, "headers")
    overrides = _option_map(config, "config")
    resolver = _Resolver(spec)
    base = _base_url(spec, base_url)
    swagger = "swagger" in spec
    server_config: dict[str, str] = {}
    security = _Security(spec, resolver, name=name, config=server_config)
    header_refs = {}
    for header in extra_headers:
        key = _config_key(header, server_config)
        server_config[key] = extra_headers[header]
        header_refs[header] = f"{{{{ config.{key} }}}}"
    used: set[str] = set()
    tools = []
    for path, method, item, op in _operations(spec, resolver):
        raw_id = op.get("operationId")
        tool_name = _shorten(_sanitize(str(raw_id))) if raw_id else _shorten(_sanitize(f"{method}_{path.strip('/')}"))
        if not TOOL_NAME_RE.match(tool_name):
            tool_name = _shorten(_sanitize(f"{method}_{path.strip('/')}"))
        tool_name = _unique(tool_name, used)
        params: dict[tuple[str, str], dict] = {}
        for p in list(item.get("parameters") or []) + list(op.get("parameters") or []):
            p, _ = resolver.deref(p)
            if isinstance(p, dict) and p.get("name") and p.get("in"):
                params[(p["name"], p["in"])] = p
        args: list[dict] = []
        request_body = None
        tool_headers: dict[str, str] = {}
        for (pname, where_in), p in params.items():
            if where_in == "body" and swagger:
                schema = resolver.schema(p.get("schema") or {})
                schema["_faithful"] = resolver.json_schema(p.get("schema") or {})
                body_args, request_body = _schema_args(schema, "body", bool(p.get("required")),
                                                       p.get("description"), resolver, p.get("schema") or {})
                args += body_args
                continue
            position = _POSITIONS.get(where_in)
            if position is None:  # cookie parameters have no position
                continue
            if "schema" in p:
                schema = resolver.schema(p.get("schema") or {})
                schema["_faithful"] = resolver.json_schema(p.get("schema") or {})
            else:
                schema = {k: v for k, v in p.items() if k in ("type", "format", "enum", "default", "items")}
            if swagger and "items" in schema:
                schema["items"] = resolver.schema(schema["items"])
            arg = _arg(pname, position, schema, required=bool(p.get("required")) or where_in == "path",
                       description=p.get("description"))
            if position == "path" and p.get("allowReserved") is True:
                arg["raw"] = True  # the spec lets its value hold '/' and other reserved characters
            args.append(arg)
        if swagger:
            consumes = op.get("consumes") or spec.get("consumes") or []
            if any(a["position"] == "form-data" for a in args) and "multipart/form-data" in consumes and \
                    "application/x-www-form-urlencoded" not in consumes:
                tool_headers["Content-Type"] = "multipart/form-data"
        else:
            body_args, request_body, body_headers = _body_args(op, resolver)
            args += body_args
            tool_headers.update(body_headers)
        args = _rename_clashes(_path_args(path, args))
        server = base if swagger else _operation_base(base, op.get("servers"), item.get("servers"))
        endpoint = server + re.sub(r"\{([^}]+)\}", lambda m: _arg_ref(m.group(1)), path)
        auth_query = security.apply(op, tool_headers)
        if auth_query:
            endpoint += ("&" if "?" in endpoint else "?") + auth_query
        tool_headers = {**header_refs, **tool_headers}
        tool: dict[str, Any] = {"name": tool_name}
        description = "\n\n".join(str(t).strip() for t in (op.get("summary"), op.get("description")) if t)
        if description:
            tool["description"] = description
        tool.update({"method": method.upper(), "endpoint": endpoint})
        if tool_headers:
            tool["headers"] = tool_headers
        schemas = {a["name"]: a.pop("_schema") for a in args if "_schema" in a}
        if args:
            tool["args"] = args
        if schemas:
            tool["inputSchema"] = {"type": "object", "properties": schemas}
        if request_body:
            tool["requestBody"] = request_body
        if method in ("get", "head", "options"):
            tool["annotations"] = {"readOnlyHint": True}
        elif method == "delete":
            tool["annotations"] = {"destructiveHint": True}
        tools.append(tool)
    server_config.update(overrides)
    info = spec.get("info") or {}
    server: dict[str, Any] = {"name": name}
    if info.get("title") or info.get("description"):
        server["description"] = str(info.get("title") or info.get("description"))
    server["allowedTools"] = [t["name"] for t in tools]
    if server_config:
        server["config"] = server_config
    content = {
        "name": name,
        "tenant": tenant,
        "routers": [{"server": name, "prefix": prefix or f"/{tenant}/{name}"}],
        "servers": [server],
        "tools": tools,
    }
    return validate(content)


def _rename_clashes(args: list[dict]) -> list[dict]:
    """``args`` with unique names: a later argument whose name is taken (``id`` in the path and the query, a
    body property named like a parameter) becomes ``<position>_<name>`` and keeps its name on the wire
    (``field``). Path arguments keep their names: the endpoint names them."""
    taken = {a["name"] for a in args if a["position"] == "path"}
    out = []
    for arg in args:
        if arg["position"] == "path":
            out.append(arg)
            continue
        if arg["name"] in taken:
            prefix = "body" if arg["position"] in ("body", "form-data", "file") else arg["position"]
            new, n = f"{prefix}_{arg['name']}", 2
            while new in taken:
                new, n = f"{prefix}_{arg['name']}_{n}", n + 1
            arg = {"name": new, **{k: v for k, v in arg.items() if k != "name"}, "field": arg["name"]}
        taken.add(arg["name"])
        out.append(arg)
    return out
