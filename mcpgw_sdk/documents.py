"""Config documents: parse, validate, normalize, hash and dump them.

A document is a plain dict with Unla's shape plus mcpgw's additions (see
``docs/config-format.md``). :func:`validate` checks one document and returns a
normalized deep copy; :func:`validate_set` checks what only a set of documents
can reveal (prefixes shared between documents, prefixes outside a tenant's).

>>> doc = validate({"name": "users", "routers": [{"server": "u", "prefix": "/default/users/"}],
...                 "servers": [{"name": "u"}], "tools": []})
>>> doc["tenant"], prefixes(doc)
('default', ['/default/users'])

Normalization (what :func:`validate` fills or rewrites; the defaults are :mod:`.config_model`'s "stored" ones):

- ``tenant`` defaults to ``"default"``; Unla's ``createdAt``/``updatedAt``/``deletedAt`` are dropped;
  missing top-level lists become ``[]``.
- ``routers[].prefix`` loses its trailing ``/`` and doubled slashes.
- ``tools[].method`` is upper-cased and defaults to ``GET``.
- ``tools[].args[].type`` defaults to ``string``, ``required`` to ``false``, ``position`` to ``query``
  for GET/HEAD/DELETE/OPTIONS tools and ``body`` otherwise; a non-string ``default`` becomes its
  string form (JSON text for arrays/objects, ``true``/``false`` for booleans).
- ``servers[].config``, ``tools[].headers``, ``mcpServers[].env``/``headers`` values become strings.
- ``mcpServers[].policy`` defaults to ``onDemand``.

``routers[].disabled: true`` keeps a router in the document but off the gateway: it is not served,
yet its prefix stays reserved (:func:`prefixes` lists it, so :func:`validate_set` still refuses
another document the same prefix). Absent means enabled, so old documents keep their hash.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import config_model as model
from .config_model import (
    ARG_TYPES,
    AUTH_MODES,
    MCP_ERAS,
    MCP_TYPES,
    METHODS,
    POLICIES,
    POSITIONS,
    PROMPT_ROLES,
    PROXY_TYPES,
    default_position,
)
from .errors import ConfigError
from .names import account_problem, name_problem, shown, text_errors
from .templates import argument_refs, check_template, forbidden_env

__all__ = [
    "AUTH_MODES", "POSITIONS", "PREFIX_MAX", "TOOL_NAME_RE", "Problems", "auth_errors", "canonical_json", "check_prefix",
    "content_hash", "disabled_prefixes", "iter_templates", "key", "load", "parse_text", "prefix_problem", "prefixes",
    "tenant_prefix_conflicts", "to_yaml", "tool_input_schema", "tool_prefix", "validate", "validate_set",
    "validated_mark", "validator_fingerprint", "visible_tools", "warnings",
]

TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TOP_ORDER = ("name", "tenant", "routers", "servers", "tools", "prompts", "mcpServers")
UNLA_DROPPED = ("createdAt", "updatedAt", "deletedAt")
_NO_TENANT = model.default(model.Document, "tenant")
_ARG_TYPE = model.default(model.Arg, "type")
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")
PREFIX_MAX = 255  #: characters in a prefix (the router_prefix and tenant columns hold 255)
_TOOL_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{0,63}$")


# -- schema --------------------------------------------------------------

class _F:
    """One field of the schema: its kind, and what to check or fill."""

    __slots__ = ("kind", "required", "choices", "template", "sub", "default", "upper")

    def __init__(self, kind: str, *, required: bool = False, choices: tuple | None = None,
                 template: bool = False, sub: dict | None = None, default: Any = None, upper: bool = False):
        self.kind, self.required, self.choices = kind, required, choices
        self.template, self.sub, self.default, self.upper = template, sub, default, upper


_STRLIST = _F("strlist")
_CORS = {"allowOrigins": _STRLIST, "allowMethods": _STRLIST, "allowHeaders": _STRLIST,
         "exposeHeaders": _STRLIST, "allowCredentials": _F("bool")}
_AUTH = {"mode": _F("str", choices=AUTH_MODES), "issuer": _F("url"), "jwksUri": _F("url"),
         "audience": _F("strs"), "scopes": _F("strs")}
_CACHE = {"ttlMs": _F("count"), "readTtlMs": _F("count")}  # modern-era cache hints (docs/eras.md)
_ROUTER = {"server": _F("str"), "servers": _STRLIST, "prefix": _F("str", required=True),
           "ssePrefix": _F("str"), "cors": _F("obj", sub=_CORS), "auth": _F("obj", sub=_AUTH),
           "disabled": _F("bool"), "cache": _F("obj", sub=_CACHE)}  # "tools" (shaping) is added below
#: *ours*: RFC 8693 token exchange of the caller's OAuth token for the backend (docs/token-exchange.md).
_TOKEN_EXCHANGE = {"tokenEndpoint": _F("url", required=True), "clientId": _F("str"),
                   "clientSecret": _F("str", template=True), "audience": _F("strs"), "resource": _F("strs"),
                   "scope": _F("strs"), "header": _F("str"), "scheme": _F("str"), "timeout": _F("posnum")}
_SERVER = {"name": _F("str", required=True), "description": _F("str"), "namespace": _F("str"),
           "allowedTools": _STRLIST, "deniedTools": _STRLIST, "toolPrefix": _F("str"),
           "config": _F("strmap", template=True), "tokenExchange": _F("obj", sub=_TOKEN_EXCHANGE)}
_PROXY = {"host": _F("str"), "port": _F("int"), "type": _F("str", choices=PROXY_TYPES)}
_ANNOTATIONS = {"title": _F("str"), "readOnlyHint": _F("bool"), "destructiveHint": _F("bool"),
                "idempotentHint": _F("bool"), "openWorldHint": _F("bool")}
_ITEMS: dict[str, _F] = {"type": _F("str", choices=ARG_TYPES), "enum": _F("list"), "properties": _F("object"),
                         "required": _STRLIST, "description": _F("str")}
_ITEMS["items"] = _F("obj", sub=_ITEMS)
_ARG = {"name": _F("str", required=True), "position": _F("str", choices=POSITIONS),
        "required": _F("bool"), "type": _F("str", choices=ARG_TYPES),
        "description": _F("str"), "default": _F("default"), "enum": _F("list"), "items": _F("obj", sub=_ITEMS),
        "raw": _F("bool"), "field": _F("str")}
#: *ours*: a question to the user before the call (docs/rest-tools.md, "Asking first").
_ELICIT = {"message": _F("str", required=True, template=True), "requestedSchema": _F("object", required=True),
           "fill": _F("strmap")}
#: The property types an elicitation's ``requestedSchema`` may use (MCP: a flat object of primitives).
ELICIT_TYPES = ("string", "number", "integer", "boolean", "array")
_TOOL = {"name": _F("str", required=True), "description": _F("str"),
         "method": _F("str", choices=METHODS, upper=True), "endpoint": _F("str", required=True, template=True),
         "proxy": _F("obj", sub=_PROXY), "headers": _F("strmap", template=True), "args": _F("list", sub=_ARG),
         "requestBody": _F("str", template=True), "responseBody": _F("str", template=True),
         "inputSchema": _F("object"), "outputSchema": _F("object"), "annotations": _F("obj", sub=_ANNOTATIONS),
         "meta": _F("object"), "timeout": _F("posnum"), "retries": _F("count"), "maxResponseBytes": _F("posint"),
         "elicit": _F("obj", sub=_ELICIT)}
#: *ours*: tool shaping per router (docs/tool-shaping.md): ``routers[].tools.<name>`` reshapes the tool the
#: router would expose as ``<name>``; ``arguments.<arg>`` rewrites one argument of its ``inputSchema``.
_SHAPE_ARG = {"description": _F("str"), "default": _F("value"), "fixed": _F("value")}
_SHAPE = {"name": _F("str"), "title": _F("str"), "description": _F("str"), "hidden": _F("bool"),
          "arguments": _F("objmap", sub=_SHAPE_ARG), "annotations": _F("obj", sub=_ANNOTATIONS)}
_ROUTER["tools"] = _F("objmap", sub=_SHAPE)
_PROMPT_ARG = {"name": _F("str", required=True), "description": _F("str"), "required": _F("bool")}
_PROMPT_CONTENT = {"type": _F("str"), "text": _F("str")}
_PROMPT_RESPONSE = {"role": _F("str", choices=PROMPT_ROLES), "content": _F("obj", sub=_PROMPT_CONTENT)}
_PROMPT = {"name": _F("str", required=True), "description": _F("str"), "arguments": _F("list", sub=_PROMPT_ARG),
           "promptResponse": _F("list", sub=_PROMPT_RESPONSE)}
_MCP = {"type": _F("str", required=True, choices=MCP_TYPES), "name": _F("str", required=True),
        "command": _F("str"), "args": _STRLIST, "env": _F("strmap", template=True),
        "url": _F("str", template=True), "headers": _F("strmap", template=True),
        "policy": _F("str", choices=POLICIES), "preinstalled": _F("bool"),
        "allowAuthorizationPassThrough": _F("bool"), "allowedTools": _STRLIST, "deniedTools": _STRLIST,
        "toolPrefix": _F("str"), "timeout": _F("posnum"), "era": _F("str", choices=MCP_ERAS),
        "tokenExchange": _F("obj", sub=_TOKEN_EXCHANGE)}
_DOC = {"name": _F("str", required=True), "tenant": _F("str"),
        "routers": _F("list", sub=_ROUTER), "servers": _F("list", sub=_SERVER),
        "tools": _F("list", sub=_TOOL), "prompts": _F("list", sub=_PROMPT),
        "mcpServers": _F("list", sub=_MCP)}
#: Which model type each table of the schema describes: the schema checks, the model decides the defaults.
SCHEMAS: dict[type, dict[str, _F]] = {
    model.Document: _DOC, model.Router: _ROUTER, model.Cors: _CORS, model.Auth: _AUTH, model.Cache: _CACHE,
    model.Shape: _SHAPE, model.ShapeArg: _SHAPE_ARG, model.Annotations: _ANNOTATIONS,
    model.RestServer: _SERVER, model.TokenExchange: _TOKEN_EXCHANGE, model.Tool: _TOOL, model.Arg: _ARG,
    model.Proxy: _PROXY, model.Elicit: _ELICIT, model.Prompt: _PROMPT, model.PromptArg: _PROMPT_ARG,
    model.PromptMessage: _PROMPT_RESPONSE, model.PromptContent: _PROMPT_CONTENT, model.McpServer: _MCP,
}


def _take_stored_defaults() -> None:
    """Give each schema field the default the model stores for it: the schema checks, the model decides."""
    for cls, table in SCHEMAS.items():
        for key, value in model.stored_defaults(cls).items():
            spec = table[key]  # a new _F: some are shared between tables
            table[key] = _F(spec.kind, required=spec.required, choices=spec.choices, template=spec.template,
                            sub=spec.sub, default=value, upper=spec.upper)


_take_stored_defaults()

_TYPE_NAMES = {"objmap": "a mapping of names to mappings", "value": "a JSON value", "str": "a string", "bool": "true or false", "int": "an integer", "posnum": "a number > 0",
               "posint": "an integer > 0", "count": "an integer >= 0", "strlist": "a list of strings",
               "strmap": "a mapping of names to strings", "object": "a mapping", "obj": "a mapping",
               "list": "a list", "url": "an http(s) URL", "strs": "a string or a list of strings"}


def _kind_of(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _scalar_text(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


_IMMUTABLE = frozenset({str, int, float, bool})  # defaults shared as they are, not deep-copied


class _Checker:
    """Walks one document against the schema, collecting every problem."""

    def __init__(self, label: str):
        self.label = label
        self.errors: list[str] = []

    def err(self, path: str, reason: str) -> None:
        text = f"{path}: {reason}" if path else reason
        self.errors.append(f"{self.label}: {text}" if self.label else text)

    def obj(self, value: Any, schema: dict[str, _F], path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.err(path, f"expected a mapping, got {_kind_of(value)}")
            return {}
        unknown = [k for k in value if k not in schema]
        for k in unknown:
            self.err(path, f"unknown key {k!r}; allowed keys: {', '.join(schema)}")
        out: dict[str, Any] = {}
        for name, spec in schema.items():
            given = value.get(name)
            if given is None:
                if spec.required:
                    self.err(f"{path}.{name}" if path else name, "required")
                elif spec.default is not None:
                    default = spec.default
                    out[name] = default if type(default) in _IMMUTABLE else copy.deepcopy(default)
                continue
            checked = self.field(given, spec, f"{path}.{name}" if path else name)
            if checked is not _BAD:
                out[name] = checked
        return out

    def field(self, value: Any, spec: _F, path: str) -> Any:
        kind = spec.kind
        ok = True
        if kind == "str":
            ok = isinstance(value, str)
        elif kind == "url":
            ok = isinstance(value, str)
            if ok and not _is_http_url(value):
                # kept (the document fails anyway) so rules across fields do not also call it missing
                self.err(path, f"{value!r} is not an http(s) URL")
                return value
        elif kind == "strs":
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if not isinstance(item, str) or not item.strip():
                        self.err(f"{path}[{i}]", f"expected a non-empty string, got {_kind_of(item)}"
                                 + (f" {item!r}" if isinstance(item, str) else ""))
                        return _BAD
                return list(value)
            ok = isinstance(value, str)
        elif kind == "bool":
            ok = isinstance(value, bool)
        elif kind in ("int", "posint", "count"):
            ok = isinstance(value, int) and not isinstance(value, bool)
            if ok and ((kind == "posint" and value <= 0) or (kind == "count" and value < 0)):
                self.err(path, f"must be {_TYPE_NAMES[kind]}, got {value}")
                return _BAD
        elif kind == "posnum":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and value <= 0:
                self.err(path, f"must be > 0, got {value}")
                return _BAD
        elif kind == "strlist":
            if not isinstance(value, list):
                ok = False
            else:
                for i, item in enumerate(value):
                    if not isinstance(item, str):
                        self.err(f"{path}[{i}]", f"expected a string, got {_kind_of(item)}")
                        return _BAD
                return list(value)
        elif kind == "strmap":
            return self.strmap(value, spec, path)
        elif kind == "object":
            ok = isinstance(value, dict)
            if ok:
                return copy.deepcopy(value)
        elif kind == "obj":
            if not isinstance(value, dict):
                ok = False
            else:
                return self.obj(value, spec.sub, path)
        elif kind == "list":
            if not isinstance(value, list):
                ok = False
            elif spec.sub is None:
                return copy.deepcopy(value)
            else:
                return [self.obj(item, spec.sub, f"{path}[{i}]") for i, item in enumerate(value)]
        elif kind == "value":
            return copy.deepcopy(value)
        elif kind == "objmap":
            if not isinstance(value, dict):
                ok = False
            else:
                return {str(k): self.obj(v, spec.sub, f"{path}.{k}") for k, v in value.items()}
        elif kind == "default":
            text = _scalar_text(value)
            if text is None:
                text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            return text
        if not ok:
            self.err(path, f"expected {_TYPE_NAMES[kind]}, got {_kind_of(value)}")
            return _BAD
        if spec.upper:
            value = value.upper()
        if spec.choices and value not in spec.choices:
            self.err(path, f"{value!r} is not one of {', '.join(spec.choices)}")
            return _BAD
        if spec.template:
            self.template(value, path)
        return value

    def strmap(self, value: Any, spec: _F, path: str) -> Any:
        if not isinstance(value, dict):
            self.err(path, f"expected {_TYPE_NAMES['strmap']}, got {_kind_of(value)}")
            return _BAD
        out = {}
        for k, v in value.items():
            text = _scalar_text(v)
            if text is None:
                self.err(f"{path}.{k}", f"expected a string, got {_kind_of(v)}")
                continue
            if spec.template:
                self.template(text, f"{path}.{k}")
            out[str(k)] = text
        return out

    def template(self, text: str, path: str) -> None:
        reason = check_template(text)
        if reason:
            self.err(path, f"template does not parse: {reason}")


_BAD = object()


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _check_auth(auth: dict, path: str, checker: _Checker) -> None:
    """Rules across an ``auth`` block's fields (each field's own type is checked by the schema)."""
    if auth.get("mode") == "oauth2" and not auth.get("issuer") and not auth.get("jwksUri"):
        checker.err(f"{path}.issuer", f"required for mode oauth2 (or give {path}.jwksUri)")


def auth_errors(auth: Any, where: str = "auth") -> list[str]:
    """Problems of a router's ``auth`` block, each ``path: reason`` (empty when it is usable).

    The same rules :func:`validate` applies to ``routers[].auth``: ``mode`` is one of
    :data:`AUTH_MODES`; ``issuer``/``jwksUri`` are http(s) URLs, one of them required for
    ``oauth2``; ``audience`` and ``scopes`` are a string or a list of strings (a string of
    scopes is split on spaces).

    >>> auth_errors({"mode": "oauth2"})
    ['auth.issuer: required for mode oauth2 (or give auth.jwksUri)']
    """
    if auth is None:
        return []
    checker = _Checker("")
    checked = checker.field(auth, _F("obj", sub=_AUTH), where)
    if isinstance(checked, dict):
        _check_auth(checked, where, checker)
    return checker.errors


# -- parsing -------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings, so documents stay JSON-compatible."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_text(text: str, *, source: str = "<string>") -> list[dict]:
    """Parse YAML or JSON text into documents.

    A YAML stream may hold several documents (``---``); a JSON (or YAML) list holds
    several too. Malformed text raises :class:`ConfigError` naming ``source``, the
    line and the column.
    """
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            loaded = [json.loads(text)]
        except ValueError as exc:
            json_error = exc
        except RecursionError:
            raise ConfigError(f"{source}: the text is nested too deeply") from None
        else:
            return _documents(loaded, source)
    else:
        json_error = None
    try:
        loaded = list(yaml.load_all(text, Loader=_Loader))
    except RecursionError:
        raise ConfigError(f"{source}: the text is nested too deeply") from None
    except yaml.MarkedYAMLError as exc:
        if isinstance(json_error, json.JSONDecodeError):  # it looked like JSON: say where JSON broke
            raise ConfigError(f"{source}: line {json_error.lineno}, column {json_error.colno}: "
                              f"{json_error.msg}") from None
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}: line {mark.line + 1}, column {mark.column + 1}" if mark else source
        reason = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(f"{where}: {reason}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return _documents(loaded, source)


def _documents(loaded: list, source: str) -> list[dict]:
    docs: list[dict] = []
    for n, item in enumerate(loaded, 1):
        if item is None:
            continue
        items = item if isinstance(item, list) else [item]
        for m, doc in enumerate(items, 1):
            if not isinstance(doc, dict):
                where = f"document {n}" + (f", item {m}" if isinstance(item, list) else "")
                raise ConfigError(f"{source}: {where} is {_kind_of(doc)}, expected a mapping with name and tenant")
            docs.append(doc)
    return docs


# -- one document --------------------------------------------------------

def key(content: dict) -> tuple[str, str]:
    """The document's identity: ``(tenant, name)`` (tenant ``default`` when missing)."""
    return (content.get("tenant") or _NO_TENANT, content.get("name") or "")


def _label(content: Any) -> str:
    if not isinstance(content, dict):
        return "?/?"
    tenant = content.get("tenant") if isinstance(content.get("tenant"), str) and content.get("tenant") else _NO_TENANT
    name = content.get("name") if isinstance(content.get("name"), str) and content.get("name") else "?"
    # a bad name is shown escaped and cut, so it cannot break the error's line or flood it
    tenant = shown(tenant) if account_problem(tenant) else tenant
    name = shown(name) if name != "?" and name_problem(name) else name
    return f"{tenant}/{name}"


def normalize_prefix(prefix: str) -> str:
    """``'gateway//users/'`` → ``'/gateway/users'``."""
    parts = [p for p in prefix.strip().split("/") if p]
    return "/" + "/".join(parts)


def prefix_problem(prefix: Any, *, root: bool = False) -> str | None:
    """Why ``prefix`` is not a usable URL prefix, or ``None``; it is judged after :func:`normalize_prefix`.

    A prefix starts with ``/``; each segment holds ``A-Z a-z 0-9 . _ ~ -`` and is not ``.`` or ``..``;
    at most :data:`PREFIX_MAX` characters. ``/`` itself is allowed only with ``root`` (a tenant's prefix).
    """
    if not isinstance(prefix, str):
        return f"must be a string, got {_kind_of(prefix)}"
    if not prefix.startswith("/"):
        return f"{shown(prefix)} must start with '/'"
    norm = normalize_prefix(prefix)
    if norm == "/":
        return None if root else "must name a path below '/', e.g. /default/users"
    if len(norm) > PREFIX_MAX:
        return f"must be at most {PREFIX_MAX} characters (got {len(norm)})"
    for seg in norm.split("/")[1:]:
        if not _PREFIX_SEGMENT.match(seg):
            return f"segment {shown(seg)} may only hold A-Z a-z 0-9 . _ ~ -"
        if seg in (".", ".."):
            return f"segment {seg!r} is not allowed (no '.' or '..' segments)"
    return None


def check_prefix(field: str, prefix: Any, *, root: bool = True) -> str:
    """The normalized ``prefix`` (``//`` collapsed, no trailing ``/``), or ConfigError naming ``field``.

    >>> check_prefix("prefix", "/acme//crm/")
    '/acme/crm'
    """
    problem = prefix_problem(prefix, root=root)
    if problem:
        raise ConfigError(f"{field}: {problem}")
    return normalize_prefix(prefix)


def _within(path: str, base: str) -> bool:
    """True when ``path`` equals ``base`` or lies under it (``/`` contains everything)."""
    return base == "/" or path == base or path.startswith(base + "/")


def tenant_prefix_conflicts(name: str, prefix: str, tenants: dict[str, str]) -> list[str]:
    """Why tenant ``name`` may not have ``prefix`` next to ``tenants`` (name → prefix): one line per clash.

    Tenants' URL spaces are disjoint: a prefix may not equal, contain or lie inside another tenant's.
    The root ``/`` is the exception: one tenant (by convention ``default``) may hold it as the
    catch-all, and every other prefix nests in it; a path then belongs to the tenant with the longest
    prefix containing it (see :func:`validate_set`), so the root tenant never reaches into another's.

    >>> tenant_prefix_conflicts("b", "/acme/b", {"default": "/", "acme": "/acme"})
    ["prefix: '/acme/b' lies inside tenant 'acme''s prefix '/acme'"]
    """
    errors = []
    for other, theirs in sorted(tenants.items()):
        if other == name:
            continue
        theirs = normalize_prefix(theirs)
        if prefix == theirs:
            errors.append(f"prefix: {prefix!r} is already tenant {other!r}'s prefix")
        elif prefix == "/" or theirs == "/":
            continue
        elif _within(prefix, theirs):
            errors.append(f"prefix: {prefix!r} lies inside tenant {other!r}'s prefix {theirs!r}")
        elif _within(theirs, prefix):
            errors.append(f"prefix: {prefix!r} contains tenant {other!r}'s prefix {theirs!r}")
    return errors


def prefixes(content: dict) -> list[str]:
    """The document's router prefixes, normalized (``/a/b``, no trailing ``/``)."""
    return [normalize_prefix(r["prefix"]) for r in content.get("routers") or []
            if isinstance(r, dict) and isinstance(r.get("prefix"), str)]


def disabled_prefixes(content: dict) -> list[str]:
    """The prefixes of the document's routers marked ``disabled: true`` (normalized); they stay reserved."""
    return [normalize_prefix(r["prefix"]) for r in content.get("routers") or []
            if isinstance(r, dict) and isinstance(r.get("prefix"), str) and r.get("disabled") is True]


def validate(content: dict) -> dict:
    """Check one document; return a normalized deep copy, or raise :class:`ConfigError`.

    ``ConfigError.errors`` lists every problem as ``tenant/name: path: reason``, e.g.
    ``default/users: tools[2].args[0].position: 'bdy' is not one of header, query, path, body, form-data, file``.
    """
    checker = _Checker(_label(content))
    if not isinstance(content, dict):
        checker.err("", f"a document is a mapping, got {_kind_of(content)}")
        raise ConfigError(checker.errors[0], checker.errors)
    content = {k: v for k, v in content.items() if k not in UNLA_DROPPED}
    for line in text_errors(content):
        checker.err("", line)
    doc = checker.obj(content, _DOC, "")
    _check_identity(doc, checker)
    _check_tools(doc, checker)
    _check_names(doc, checker)
    _check_routers(doc, checker)
    _check_token_exchange(doc, checker)
    if checker.errors:
        raise ConfigError(checker.errors[0], checker.errors)
    return doc


def load(content: dict) -> model.Document:
    """Validate one document (see :func:`validate`) and return it as a typed :class:`~.config_model.Document`.

    ``Document.raw`` is the normalised dict :func:`validate` returns, the stored form.

    >>> load({"name": "users", "mcpServers": [{"type": "stdio", "name": "fs", "command": "fs"}]}).mcp_servers[0].policy
    'onDemand'
    """
    return model.Document.from_dict(validate(content))


class Problems(list):
    """What a check found: a list of problems (``tenant/name: path: reason``), each making a document invalid,
    and :attr:`warnings`: what is valid but fails when used until the operator acts (``env()`` names the
    ``template_env`` setting does not allow). ``mcpgw check`` prints the warnings and the same problems.

    >>> found = Problems(["default/a: tools[0].endpoint: ..."], warnings=[])
    >>> len(found), found.warnings
    (1, [])
    """

    def __init__(self, problems: Any = (), *, warnings: list[str] | None = None):
        super().__init__(problems)
        self.warnings: list[str] = list(warnings or [])

    def __repr__(self) -> str:
        shown_list = list.__repr__(self)
        return f"Problems({shown_list}, warnings={self.warnings!r})" if self.warnings else shown_list


def warnings(content: dict) -> list[str]:
    """Warnings of one document, each ``tenant/name: path: reason``: what validates but fails when used.

    Today: template fields that read an ``env()`` name the ``template_env`` setting (``MCPGW_TEMPLATE_ENV``)
    does not allow. They depend on this process's settings, so they are not problems of the document.
    """
    tenant, name = key(content) if isinstance(content, dict) else (_NO_TENANT, "?")
    lines = []
    for path, container, k in iter_templates(content if isinstance(content, dict) else {}):
        reason = forbidden_env(str(container[k]), field=path)
        if reason:
            lines.append(f"{tenant}/{name}: {reason} (what reads it fails until then)")
    return lines


def _check_identity(doc: dict, checker: _Checker) -> None:
    """The name rule (:mod:`mcpgw_sdk.names`) on what is stored under a name: the document, its tenant, servers."""
    if isinstance(doc.get("name"), str):
        problem = name_problem(doc["name"])
        if problem:
            checker.err("name", f"{shown(doc['name'])} {problem}")
    if isinstance(doc.get("tenant"), str):
        problem = account_problem(doc["tenant"])
        if problem:
            checker.err("tenant", f"{shown(doc['tenant'])} {problem}")
    for field in ("servers", "mcpServers"):
        for i, server in enumerate(doc.get(field) or []):
            if isinstance(server, dict) and isinstance(server.get("name"), str):
                problem = name_problem(server["name"])
                if problem:
                    checker.err(f"{field}[{i}].name", f"{shown(server['name'])} {problem}")


def _check_tools(doc: dict, checker: _Checker) -> None:
    for i, tool in enumerate(doc.get("tools", [])):
        name = tool.get("name")
        if isinstance(name, str) and not TOOL_NAME_RE.match(name):
            checker.err(f"tools[{i}].name", f"{name!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
        _dupes(checker, tool.get("args", []), f"tools[{i}].args", "argument")
        for j, arg in enumerate(tool.get("args", [])):
            if "position" not in arg:
                arg["position"] = default_position(tool["method"]) if isinstance(tool.get("method"), str) \
                    else default_position(model.default(model.Tool, "method"))
            _check_default(arg, f"tools[{i}].args[{j}]", checker)
            _reorder(arg, _ARG)
        if isinstance(tool.get("elicit"), dict):
            _check_elicit(tool, f"tools[{i}].elicit", checker)
        _check_endpoint(doc, tool, f"tools[{i}]", checker)


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _declared(tool: dict) -> set[str]:
    """The tool's argument names: ``args[]`` and the properties of its ``inputSchema``."""
    names = {a.get("name") for a in tool.get("args") or [] if isinstance(a, dict)}
    extra = tool.get("inputSchema")
    if isinstance(extra, dict):
        names |= set(extra.get("properties") if isinstance(extra.get("properties"), dict) else extra)
    return names


def _check_endpoint(doc: dict, tool: dict, path: str, checker: _Checker) -> None:
    """The endpoint's ``{name}`` placeholders and ``args.NAME`` reads name the tool's arguments, every path
    argument is placed somewhere, and no ``{`` or ``}`` is left unpaired (docs/rest-tools.md, "The URL")."""
    endpoint = tool.get("endpoint")
    refs = argument_refs(endpoint) if isinstance(endpoint, str) else None
    if refs is None:
        return  # missing, or a template that does not parse: reported already
    literals, names, dynamic = refs
    where = f"{path}.endpoint"
    declared = _declared(tool)
    positions = {a.get("name"): a.get("position") for a in tool.get("args") or [] if isinstance(a, dict)}
    placeholders: list[str] = []
    for text in literals:
        rest = _PLACEHOLDER.sub("", text)
        if "{" in rest or "}" in rest:
            checker.err(where, f"unbalanced '{{' or '}}' in {text!r}; a path argument is placed with {{name}}")
        placeholders += _PLACEHOLDER.findall(text)
    for name in dict.fromkeys(placeholders):
        if name not in declared:
            checker.err(where, f"placeholder {{{name}}} names no argument of the tool"
                               f" (arguments: {', '.join(sorted(map(str, declared))) or 'none'})")
        elif positions.get(name) != "path":
            checker.err(where, f"placeholder {{{name}}} is filled only by a path argument; {name!r} has position "
                               f"{positions.get(name) or 'none (inputSchema)'}")
    for name in names:
        if name not in declared:
            checker.err(where, f"args.{name} is not an argument of the tool"
                               f" (arguments: {', '.join(sorted(map(str, declared))) or 'none'})")
    if dynamic:
        return  # args read by computed names: any argument may be used
    # servers[].config values render per call with args, and {name} in what they render is filled too.
    used = set(placeholders) | set(names)
    for server in doc.get("servers") or []:
        for value in (server.get("config") or {}).values() if isinstance(server, dict) else ():
            refs = argument_refs(str(value))
            if refs is None or refs[2]:
                return
            used |= set(refs[1]) | {n for text in refs[0] for n in _PLACEHOLDER.findall(text)}
    for j, arg in enumerate(tool.get("args") or []):
        if isinstance(arg, dict) and arg.get("position") == "path" and arg.get("name") not in used:
            checker.err(where, f"path argument {arg.get('name')!r} (args[{j}]) is not placed: write "
                               f"{{{arg.get('name')}}} or {{{{ args.{arg.get('name')} }}}} in the endpoint")


def _check_elicit(tool: dict, path: str, checker: _Checker) -> None:
    """``requestedSchema`` is a flat object schema of primitives; ``fill`` maps its fields to the tool's arguments."""
    schema = tool["elicit"].get("requestedSchema")
    if not isinstance(schema, dict):
        return  # missing or not a mapping: reported already
    where = f"{path}.requestedSchema"
    if schema.get("type") != "object":
        checker.err(f"{where}.type", "must be 'object'")
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        checker.err(f"{where}.properties", "must be a non-empty mapping of field names to schemas")
        props = {}
    for name, prop in props.items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        if kind not in ELICIT_TYPES:
            checker.err(f"{where}.properties.{name}.type",
                        f"{kind!r} is not one of {', '.join(ELICIT_TYPES)} (elicitation asks for flat values)")
    required = schema.get("required")
    if required is not None:
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            checker.err(f"{where}.required", "must be a list of field names")
        else:
            for name in required:
                if name not in props:
                    checker.err(f"{where}.required", f"{name!r} is not in properties")
    arguments = _declared(tool)
    for field, arg in (tool["elicit"].get("fill") or {}).items():
        if field not in props:
            checker.err(f"{path}.fill.{field}", "is not a field of requestedSchema.properties")
        if arg not in arguments:
            checker.err(f"{path}.fill.{field}", f"{arg!r} is not an argument of the tool")


def _check_default(arg: dict, path: str, checker: _Checker) -> None:
    default = arg.get("default")
    if default in (None, ""):
        return
    try:
        parse_default(default, arg.get("type", model.default(model.Arg, "type")))
    except ValueError as exc:
        checker.err(f"{path}.default", str(exc))


def parse_default(text: str, type_: str) -> Any:
    """An argument's default (always written as a string) as a value of its JSON-schema ``type_``."""
    if type_ == "string":
        return text
    if type_ == "boolean":
        if text.strip().lower() in ("true", "false"):
            return text.strip().lower() == "true"
        raise ValueError(f"{text!r} is not a boolean (true or false)")
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"{text!r} is not {'an' if type_[0] in 'aeiou' else 'a'} {type_}") from None
    expected = {"integer": int, "number": (int, float), "array": list, "object": dict}[type_]
    if not isinstance(value, expected) or isinstance(value, bool):
        raise ValueError(f"{text!r} is not {'an' if type_[0] in 'aeiou' else 'a'} {type_}")
    return value


def _reorder(obj: dict, schema: dict) -> None:
    items = [(k, obj[k]) for k in schema if k in obj]
    obj.clear()
    obj.update(items)


def _dupes(checker: _Checker, items: list, path: str, what: str, seen: dict | None = None,
           attr: str = "name") -> dict:
    seen = {} if seen is None else seen
    for i, item in enumerate(items):
        name = item.get(attr)
        if not isinstance(name, str):
            continue
        here = f"{path}[{i}]"
        if name in seen:
            checker.err(f"{here}.{attr}", f"duplicate {what} name {name!r} (also {seen[name]})")
        else:
            seen[name] = here
    return seen


def _check_names(doc: dict, checker: _Checker) -> None:
    _dupes(checker, doc.get("tools", []), "tools", "tool")
    _dupes(checker, doc.get("prompts", []), "prompts", "prompt")
    backends = _dupes(checker, doc.get("servers", []), "servers", "server")
    _dupes(checker, doc.get("mcpServers", []), "mcpServers", "server", seen=backends)
    tool_names = {t.get("name") for t in doc.get("tools", [])}
    for i, server in enumerate(doc.get("servers", [])):
        for field in ("allowedTools", "deniedTools"):
            for j, name in enumerate(server.get(field) or []):
                if name not in tool_names:
                    checker.err(f"servers[{i}].{field}[{j}]", f"{name!r} is not a tool of this document")
    for i, server in enumerate(doc.get("servers", []) + doc.get("mcpServers", [])):
        prefix = server.get("toolPrefix")
        where = f"servers[{i}]" if i < len(doc.get("servers", [])) else f"mcpServers[{i - len(doc.get('servers', []))}]"
        if isinstance(prefix, str) and not _TOOL_PREFIX_RE.match(prefix):
            checker.err(f"{where}.toolPrefix", f"{prefix!r} must be at most 63 characters of A-Z a-z 0-9 _ . -")
    for i, mcp in enumerate(doc.get("mcpServers", [])):
        kind = mcp.get("type")
        if kind == "stdio" and not mcp.get("command"):
            checker.err(f"mcpServers[{i}].command", "required for type stdio")
        if kind in ("sse", "streamable-http") and not mcp.get("url"):
            checker.err(f"mcpServers[{i}].url", f"required for type {kind}")


def _check_routers(doc: dict, checker: _Checker) -> None:
    rest = {s.get("name") for s in doc.get("servers", [])}
    mcp = {s.get("name") for s in doc.get("mcpServers", [])}
    known = sorted(n for n in rest | mcp if isinstance(n, str))
    seen_prefix: dict[str, str] = {}
    for i, router in enumerate(doc.get("routers", [])):
        path = f"routers[{i}]"
        if isinstance(router.get("auth"), dict):
            _check_auth(router["auth"], f"{path}.auth", checker)
        prefix = router.get("prefix")
        if isinstance(prefix, str):
            problem = prefix_problem(prefix)
            if problem:
                checker.err(f"{path}.prefix", problem)
            norm = normalize_prefix(prefix)
            if norm in seen_prefix:
                checker.err(f"{path}.prefix", f"{norm!r} is already used by {seen_prefix[norm]}")
            else:
                seen_prefix[norm] = f"{path}.prefix"
            router["prefix"] = norm
        if "server" in router and "servers" in router:
            checker.err(path, "use either server or servers, not both")
            continue
        if "server" not in router and "servers" not in router:
            checker.err(path, "needs server (one backend) or servers (several aggregated)")
            continue
        names = [(f"{path}.server", router["server"])] if "server" in router else \
            [(f"{path}.servers[{j}]", n) for j, n in enumerate(router["servers"])]
        if not names:
            checker.err(f"{path}.servers", "must name at least one server")
        missing = False
        for where, name in names:
            if name not in rest and name not in mcp:
                checker.err(where, f"{name!r} is not a server or mcpServer of this document"
                                   f" (known: {', '.join(known) or 'none'})")
                missing = True
        if not missing:
            _check_visible(doc, router, path, checker, mcp)
            _check_shaping(doc, router, path, checker, mcp)


_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
#: Headers the HTTP client sets itself: a token exchange may not put its token there.
_RESERVED_HEADERS = ("host", "content-length", "content-type", "transfer-encoding", "connection", "cookie")
#: A template that reads the caller's credential headers (``request.headers.authorization``, ``['x-api-key']``).
_READS_CREDENTIAL = re.compile(r"(?is)(\{\{|\{%)[^}%]*\brequest\b[^}%]*(authorization|x-api-key)")
#: A template reading anything but ``env()`` (a client secret is the operator's, never the caller's).
_READS_CALL = re.compile(r"(\{\{|\{%)[^}%]*\b(request|args|config|response)\b")


def _exchange_templates(doc: dict, kind: str, index: int, server: dict) -> Iterator[tuple[str, str]]:
    """``(path, text)`` of the templates that build one server's requests (its tools' too, for a REST server)."""
    if kind == "mcpServers":
        if isinstance(server.get("url"), str):
            yield f"mcpServers[{index}].url", server["url"]
        for field in ("headers", "env"):
            for k, v in (server.get(field) or {}).items():
                yield f"mcpServers[{index}].{field}.{k}", str(v)
        return
    for k, v in (server.get("config") or {}).items():
        yield f"servers[{index}].config.{k}", str(v)
    allowed = server.get("allowedTools")
    for i, tool in enumerate(doc.get("tools") or []):
        if allowed is not None and tool.get("name") not in allowed:
            continue
        for k in ("endpoint", "requestBody", "responseBody"):
            if isinstance(tool.get(k), str):
                yield f"tools[{i}].{k}", tool[k]
        for k, v in (tool.get("headers") or {}).items():
            yield f"tools[{i}].headers.{k}", str(v)


def _check_token_exchange(doc: dict, checker: _Checker) -> None:
    """``tokenExchange`` rules across fields: the caller's token may reach the exchange only, never the backend.

    Its routers must all check OAuth tokens (``auth.mode: oauth2``: there is no token to exchange
    otherwise); no template of the server may read the caller's ``Authorization``/``X-API-Key``;
    an upstream must speak HTTP and may not set ``allowAuthorizationPassThrough``; the client secret
    is a template reading ``env()``, never a secret written in the document.
    """
    routers = [(i, r) for i, r in enumerate(doc.get("routers") or []) if isinstance(r, dict)]
    for kind in ("servers", "mcpServers"):
        for index, server in enumerate(doc.get(kind) or []):
            block = server.get("tokenExchange")
            if not isinstance(block, dict):
                continue
            path = f"{kind}[{index}].tokenExchange"
            name = server.get("name")
            secret = block.get("clientSecret")
            if isinstance(secret, str) and secret:
                if "{{" not in secret:
                    checker.err(f"{path}.clientSecret", "a secret must not be written in the document: give a "
                                                        "template such as {{ env('AS_CLIENT_SECRET') }}")
                elif _READS_CALL.search(secret):
                    checker.err(f"{path}.clientSecret", "may only read env() (the operator's), not the call's "
                                                        "request, args, config or response")
                if not block.get("clientId"):
                    checker.err(f"{path}.clientId", "required with clientSecret (sent as HTTP Basic)")
            header = block.get("header")
            if isinstance(header, str) and (not _HEADER_NAME.match(header) or header.lower() in _RESERVED_HEADERS):
                checker.err(f"{path}.header", f"{header!r} is not a header name the token may go in")
            scheme = block.get("scheme")
            if isinstance(scheme, str) and scheme and not _HEADER_NAME.match(scheme):
                checker.err(f"{path}.scheme", f"{scheme!r} is not an auth scheme such as Bearer ('' sends the token "
                                              "alone)")
            if kind == "mcpServers":
                if server.get("type") == "stdio":
                    checker.err(path, "only sse and streamable-http upstreams take tokenExchange (a stdio process "
                                      "gets no HTTP request to carry the token)")
                if server.get("allowAuthorizationPassThrough") is True:
                    checker.err(f"{kind}[{index}].allowAuthorizationPassThrough",
                                "cannot be true with tokenExchange: the caller's token must not reach the upstream")
            for where, text in _exchange_templates(doc, kind, index, server):
                if _READS_CREDENTIAL.search(text):
                    checker.err(where, f"reads the caller's credential header, which server {name!r} replaces by "
                                       "the exchanged token (tokenExchange): the caller's token must not reach "
                                       "it; remove it")
            for i, router in routers:
                served = router.get("servers") if "servers" in router else [router.get("server")]
                mode = (router.get("auth") or {}).get("mode") if isinstance(router.get("auth"), dict) else None
                if name in (served or []) and mode != "oauth2":
                    checker.err(f"routers[{i}].auth.mode", f"server {name!r} uses tokenExchange, which needs the "
                                                           f"caller's OAuth token: set mode oauth2 (now "
                                                           f"{mode or 'none'})")


def _check_shaping(doc: dict, router: dict, path: str, checker: _Checker, mcp: set) -> None:
    """``routers[].tools``: each name a tool of the router, each argument one of its own, names unique.

    REST tools are known now and checked fully; a name no REST tool has is left to the router's upstream
    MCP servers (their tools are known only at run time: the gateway reports what does not match in
    ``/readyz``), and refused when the router has none.
    """
    shapes = router.get("tools")
    if not shapes:
        return
    rest = {visible: tool for visible, _backend, tool in visible_tools(doc, router)}
    upstreams = [n for n in _backends(router) if n in mcp]
    tools = {t.get("name"): t for t in doc.get("tools") or [] if isinstance(t, dict)}
    final: dict[str, list[str]] = {}  # the name the client sees -> the tools that would have it
    for visible in rest:
        shape = shapes.get(visible) or {}
        if not shape.get("hidden"):
            final.setdefault(shape.get("name") or visible, []).append(visible)
    for name, shape in shapes.items():
        where = f"{path}.tools.{name}"
        if name not in rest:
            if not upstreams:
                checker.err(where, f"this router exposes no tool {name!r} (its tools: {', '.join(rest) or 'none'})")
            continue
        new = shape.get("name")
        if new is not None and not TOOL_NAME_RE.match(new):
            checker.err(f"{where}.name", f"{new!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
        elif new is not None and not shape.get("hidden") and len(final.get(new, ())) > 1:
            other = next(v for v in final[new] if v != name)
            checker.err(f"{where}.name", f"{new!r} is already the name of tool {other!r} on this router")
        properties = tool_input_schema(tools[rest[name]]).get("properties") or {}
        for arg, change in (shape.get("arguments") or {}).items():
            if arg not in properties:
                checker.err(f"{where}.arguments.{arg}", f"tool {name!r} has no argument {arg!r} "
                                                        f"(its arguments: {', '.join(properties) or 'none'})")
            elif "fixed" in change and "default" in change:
                checker.err(f"{where}.arguments.{arg}", "set fixed (hidden, always this value) or default, not both")


def tool_prefix(backend: dict, aggregated: bool) -> str:
    """The prefix of a backend's tool names on a router: its ``toolPrefix``, else ``name_`` when aggregated."""
    prefix = backend.get("toolPrefix")
    if isinstance(prefix, str):
        return prefix
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(backend.get("name"))) + "_" if aggregated else ""


def _backends(router: dict) -> list[str]:
    return list(router["servers"]) if "servers" in router else [router["server"]]


def _check_visible(doc: dict, router: dict, path: str, checker: _Checker, mcp: set) -> None:
    seen: dict[str, str] = {}
    for visible, backend, _tool in visible_tools(doc, router):
        if not TOOL_NAME_RE.match(visible):
            checker.err(path, f"exposed tool name {visible!r} (from server {backend!r}) must be 1-64 characters"
                              " of A-Z a-z 0-9 _ . -; shorten toolPrefix or the tool name")
        if visible in seen:
            checker.err(path, f"tool name {visible!r} is exposed by both {seen[visible]!r} and {backend!r};"
                              " set distinct toolPrefix values")
        seen.setdefault(visible, backend)
    names = _backends(router)
    if len(names) < 2:
        return
    by_name = {b.get("name"): b for b in doc.get("servers", []) + doc.get("mcpServers", [])}
    prefix_of: dict[str, str] = {}
    for name in names:
        prefix = tool_prefix(by_name[name], True)
        other = prefix_of.get(prefix)
        if other is not None and (name in mcp or other in mcp):
            checker.err(f"{path}.servers", f"servers {other!r} and {name!r} share the tool prefix {prefix!r}, so"
                                           " their tools may collide; set distinct toolPrefix values")
        prefix_of.setdefault(prefix, name)


def visible_tools(content: dict, router: dict) -> list[tuple[str, str, str]]:
    """``[(visible_name, backend_name, tool_name)]`` a router exposes from its REST servers, in document order.

    Applies each server's ``allowedTools`` (absent: every tool of the document) and ``deniedTools``,
    and the tool prefix (``toolPrefix``; by default ``<server name>_`` when the router aggregates several
    backends, nothing for one). Upstream MCP servers' tools are known only at run time and are not listed.
    """
    names = _backends(router) if ("server" in router or "servers" in router) else []
    aggregated = len(names) > 1
    servers = {s.get("name"): s for s in content.get("servers") or []}
    tools = [t for t in content.get("tools") or [] if isinstance(t.get("name"), str)]
    out: list[tuple[str, str, str]] = []
    for name in names:
        server = servers.get(name)
        if server is None:
            continue
        allowed = server.get("allowedTools")
        denied = set(server.get("deniedTools") or ())
        prefix = tool_prefix(server, aggregated)
        for tool in tools:
            tname = tool["name"]
            if (allowed is None or tname in allowed) and tname not in denied:
                out.append((prefix + tname, name, tname))
    return out


def tool_input_schema(tool: dict) -> dict:
    """The tool's JSON Schema: an object with ``properties`` and ``required`` from ``args``, merged with ``inputSchema``.

    Each argument contributes ``type``, ``description``, ``default`` (parsed from its string form;
    an empty default is no default), ``enum`` and, for arrays, ``items``. An ``inputSchema`` that is
    an object schema (has ``properties`` or ``type: object``) merges its properties, required names
    and other keywords; otherwise (Unla's form) it is a map of extra properties.
    """
    properties: dict[str, Any] = {}
    required: list[str] = []
    for arg in tool.get("args") or []:
        type_ = arg.get("type") or _ARG_TYPE
        prop: dict[str, Any] = {"type": type_}
        if arg.get("description"):
            prop["description"] = arg["description"]
        if arg.get("enum"):
            prop["enum"] = list(arg["enum"])
        if type_ == "array":
            prop["items"] = _items_schema(arg.get("items") or {})
        elif type_ == "object" and arg.get("items", {}).get("properties"):
            prop["properties"] = copy.deepcopy(arg["items"]["properties"])
        default = arg.get("default")
        if default not in (None, ""):
            try:
                prop["default"] = parse_default(default, type_)
            except ValueError:
                pass
        properties[arg["name"]] = prop
        if arg.get("required"):
            required.append(arg["name"])
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    extra = tool.get("inputSchema")
    if isinstance(extra, dict) and extra:
        if "properties" in extra or extra.get("type") == "object":
            for k, v in extra.items():
                if k not in ("type", "properties", "required"):
                    schema[k] = copy.deepcopy(v)
            properties.update(copy.deepcopy(extra.get("properties") or {}))
            required += [r for r in extra.get("required") or [] if r not in required]
        else:
            properties.update(copy.deepcopy(extra))
    if required:
        schema["required"] = required
    return schema


def _items_schema(items: dict) -> dict:
    out: dict[str, Any] = {}
    if items.get("type"):
        out["type"] = items["type"]
    if items.get("enum"):
        out["enum"] = list(dict.fromkeys(items["enum"]))
    if items.get("description"):
        out["description"] = items["description"]
    if items.get("properties"):
        out["properties"] = copy.deepcopy(items["properties"])
    if items.get("required"):
        out["required"] = list(items["required"])
    if items.get("items"):
        out["items"] = _items_schema(items["items"])
    return out


def iter_templates(content: dict) -> Iterator[tuple[str, dict, str]]:
    """Every template field as ``(path, container, key)``: read or replace it with ``container[key]``.

    The fields: ``tools[].endpoint``, ``tools[].headers.*``, ``tools[].requestBody``,
    ``tools[].responseBody``, ``tools[].elicit.message``, ``servers[].config.*``, ``mcpServers[].env.*``,
    ``mcpServers[].headers.*``, ``mcpServers[].url`` and ``servers[]``/``mcpServers[]``
    ``.tokenExchange.clientSecret``. Parts of the wrong shape are skipped (:func:`validate` reports them).
    """
    def items(key: str) -> Iterator[tuple[int, dict]]:
        value = content.get(key)
        for i, item in enumerate(value if isinstance(value, list) else []):
            if isinstance(item, dict):
                yield i, item

    def strings(where: str, mapping: Any) -> Iterator[tuple[str, dict, str]]:
        if isinstance(mapping, dict):
            for k in list(mapping):
                if isinstance(mapping[k], str):
                    yield f"{where}.{k}", mapping, k

    for i, server in items("servers"):
        yield from strings(f"servers[{i}].config", server.get("config"))
    for i, tool in items("tools"):
        for k in ("endpoint", "requestBody", "responseBody"):
            if isinstance(tool.get(k), str):
                yield f"tools[{i}].{k}", tool, k
        yield from strings(f"tools[{i}].headers", tool.get("headers"))
        elicit = tool.get("elicit")
        if isinstance(elicit, dict) and isinstance(elicit.get("message"), str):
            yield f"tools[{i}].elicit.message", elicit, "message"
    for i, mcp in items("mcpServers"):
        if isinstance(mcp.get("url"), str):
            yield f"mcpServers[{i}].url", mcp, "url"
        for field in ("env", "headers"):
            yield from strings(f"mcpServers[{i}].{field}", mcp.get(field))
    for kind in ("servers", "mcpServers"):
        for i, server in items(kind):
            block = server.get("tokenExchange")
            if isinstance(block, dict) and isinstance(block.get("clientSecret"), str):
                yield f"{kind}[{i}].tokenExchange.clientSecret", block, "clientSecret"


# -- several documents ---------------------------------------------------

def validate_set(contents: list[dict], tenants: dict[str, str]) -> dict[tuple[str, str], list[str]]:
    """Checks across documents: a prefix used by two documents, a prefix outside its tenant's prefix or
    inside another tenant's, a tenant missing from ``tenants`` (tenant name → prefix).

    A path belongs to the tenant with the longest prefix containing it, so a document of the root
    tenant (prefix ``/``) cannot serve under another tenant's prefix.

    Returns ``{(tenant, name): [errors]}`` for the documents with problems; empty when all is well.
    """
    problems: dict[tuple[str, str], list[str]] = {}
    owners: dict[str, list[tuple[tuple[str, str], int]]] = {}
    bases = sorted(((normalize_prefix(p), t) for t, p in tenants.items()), key=lambda item: -len(item[0]))
    for content in contents:
        ident = key(content)
        label = f"{ident[0]}/{ident[1]}"
        errs: list[str] = []
        tenant_prefix = tenants.get(ident[0])
        if ident[0] not in tenants:
            errs.append(f"{label}: tenant: tenant {ident[0]!r} does not exist"
                        f" (known: {', '.join(sorted(tenants)) or 'none'})")
        for i, prefix in enumerate(prefixes(content)):
            owners.setdefault(prefix, []).append((ident, i))
            if tenant_prefix is not None:
                base = normalize_prefix(tenant_prefix)
                if not _within(prefix, base):
                    errs.append(f"{label}: routers[{i}].prefix: {prefix!r} is outside tenant {ident[0]!r}'s"
                                f" prefix {base!r}")
                else:
                    # only a strictly longer prefix is another tenant's space (equal ones are legacy twins)
                    owner = next((t for p, t in bases if len(p) > len(base) and _within(prefix, p)), None)
                    if owner is not None and owner != ident[0]:
                        errs.append(f"{label}: routers[{i}].prefix: {prefix!r} lies inside tenant {owner!r}'s"
                                    f" prefix {normalize_prefix(tenants[owner])!r}")
        if errs:
            problems.setdefault(ident, []).extend(errs)
    for prefix, users in owners.items():
        idents = {u[0] for u in users}
        if len(idents) < 2:
            continue
        for ident, i in users:
            others = ", ".join(f"{t}/{n}" for t, n in sorted(idents - {ident}))
            problems.setdefault(ident, []).append(
                f"{ident[0]}/{ident[1]}: routers[{i}].prefix: {prefix!r} is also used by {others}")
    return problems


# -- serialization -------------------------------------------------------

def canonical_json(content: dict) -> str:
    """Compact JSON with sorted keys: the same content always gives the same text."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(content: dict) -> str:
    """SHA-256 (hex) of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


#: The modules whose code decides what :func:`validate` accepts and returns.
_VALIDATOR_MODULES = ("documents", "config_model", "names", "templates")


@functools.lru_cache(maxsize=1)
def validator_fingerprint() -> str:
    """What identifies this process's :func:`validate`: a hash of its modules' source, Jinja's and Python's versions.

    Any change to the validator's code gives another fingerprint, so nobody has to remember to bump a
    constant. ``""`` when the source cannot be read: then no :func:`validated_mark` is made or trusted.
    """
    import importlib
    import sys

    import jinja2

    digest = hashlib.sha256(f"{sys.version}\0{jinja2.__version__}".encode())
    try:
        for name in _VALIDATOR_MODULES:
            digest.update(Path(importlib.import_module(f"{__package__}.{name}").__file__ or "").read_bytes())
    except (OSError, TypeError):
        return ""
    return digest.hexdigest()


def validated_mark(text: str | bytes) -> str:
    """The mark a store keeps beside a document's stored JSON ``text`` when :func:`validate` returned it (hex).

    It is tied to the exact text and to :func:`validator_fingerprint`: text written by another tool, an
    older version or by hand in the database does not match its mark, so the gateway validates it again;
    text this validator already accepted is used as it is (``validate`` of its own output returns it
    unchanged). ``""`` when there is no fingerprint.
    """
    fingerprint = validator_fingerprint()
    if not fingerprint:
        return ""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    return hashlib.sha256(fingerprint.encode() + b"\0" + data).hexdigest()


# libyaml's emitter writes the same text about four times faster (a 1,500-tool document: 0.7 s -> 0.18 s),
# which the console's YAML mode feels; the pure-Python one is the fallback where PyYAML was built without it.
class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    """SafeDumper writing multi-line strings as ``|`` blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def to_yaml(content: dict) -> str:
    """YAML text of a document, keys in the order of the format (name, tenant, routers, servers, tools,
    prompts, mcpServers); empty top-level lists are left out."""
    ordered = {k: content[k] for k in TOP_ORDER if k in content and content[k] != []}
    ordered.update((k, v) for k, v in content.items() if k not in TOP_ORDER)
    return yaml.dump(ordered, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=120)
