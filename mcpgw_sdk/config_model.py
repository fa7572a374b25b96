"""The typed config document: what a validated document means, with every default decided here.

:func:`mcpgw_sdk.documents.validate` checks a document and returns its normalised dict (the stored
form, whose hash identifies a version); :func:`mcpgw_sdk.documents.load` also builds these frozen
types from it. Consumers (the snapshot, the backends, the builders) read attributes instead of
re-defaulting dicts with ``.get(key, default)``, so a default cannot drift between modules.

Each field's default is the dataclass field's default. A field marked *stored* is one the validator
writes into the normalised dict (``tools[].method: GET``, ``mcpServers[].policy: onDemand``, …): the
validator reads that default from here (:func:`stored_defaults`). The other defaults apply when a
key is absent and are never written, so stored documents and their hashes stay as they were. A few
defaults depend on another field (``args[].position`` on the tool's method, ``mcpServers[].era`` on
the type): :func:`default_position` and :func:`default_era` decide them.

>>> doc = Document.from_dict({"name": "users", "tools": [{"name": "get", "endpoint": "http://x",
...                                                        "args": [{"name": "id"}]}]})
>>> doc.tenant, doc.tools[0].method, doc.tools[0].args[0].position, doc.tools[0].args[0].type
('default', 'GET', 'query', 'string')
>>> McpServer.from_dict({"type": "stdio", "name": "fs", "command": "fs"}).policy
'onDemand'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ARG_TYPES", "AUTH_MODES", "BODYLESS", "DEFAULT_TENANT", "METHODS", "MCP_ERAS", "MCP_TYPES", "POLICIES", "POSITIONS",
    "PROMPT_ROLES", "PROXY_TYPES", "Annotations", "Arg", "Auth", "Cache", "Cors", "Document", "Elicit",
    "McpServer", "Prompt", "PromptArg", "PromptContent", "PromptMessage", "Proxy", "RestServer", "Router",
    "Shape", "ShapeArg", "TokenExchange", "Tool", "default", "default_era", "default_position", "model_fields",
    "stored_defaults",
]

#: ``tools[].args[].position``: where an argument goes in the HTTP request.
POSITIONS = ("header", "query", "path", "body", "form-data", "file")
#: ``tools[].method``.
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: Methods whose arguments default to the query string (the others: the body).
BODYLESS = ("GET", "HEAD", "DELETE", "OPTIONS")
#: ``tools[].args[].type`` (JSON-schema types).
ARG_TYPES = ("string", "number", "integer", "boolean", "array", "object")
#: ``mcpServers[].type``.
MCP_TYPES = ("stdio", "sse", "streamable-http")
#: ``mcpServers[].policy``: connect when the snapshot is built, or at first use.
POLICIES = ("onStart", "onDemand")
#: ``mcpServers[].era``: ``auto`` probes ``server/discover``, or one era forced (see :func:`default_era`).
MCP_ERAS = ("auto", "2026-07-28", "legacy")
#: ``routers[].auth.mode``.
AUTH_MODES = ("apikey", "oauth2", "none")
#: ``tools[].proxy.type``.
PROXY_TYPES = ("http", "https", "socks5")
#: ``prompts[].promptResponse[].role``.
PROMPT_ROLES = ("user", "assistant")
#: The tenant of a document that names none.
DEFAULT_TENANT = "default"

_EMPTY: dict[str, Any] = {}  # a map field's default: each instance gets a new empty dict


def default_position(method: str) -> str:
    """An argument's position when it names none: ``query`` for GET/HEAD/DELETE/OPTIONS tools, else ``body``.

    >>> default_position("GET"), default_position("POST")
    ('query', 'body')
    """
    return "query" if method.upper() in BODYLESS else "body"


def default_era(kind: str) -> str:
    """An upstream's era when it names none: ``auto`` for streamable-http, ``legacy`` for stdio and sse.

    >>> default_era("streamable-http"), default_era("stdio")
    ('auto', 'legacy')
    """
    return "auto" if kind == "streamable-http" else "legacy"


def _f(key: str, default: Any = None, *, required: bool = False, stored: bool = False, sub: type | None = None,
       many: bool = False, keyed: bool = False, strings: bool = False, computed: str = "", raw: bool = False) -> Any:
    """A model field: its document ``key``, its one ``default`` and how it is read.

    ``required``: a valid document always has it (the default is then only the type's empty value).
    ``stored``: the validator writes the default into the normalised dict. ``sub``: a nested type
    (``many``: a list of them, kept as a tuple; ``keyed``: a map of names to them, kept as a dict).
    ``strings``: a list of strings, kept as a tuple.
    ``computed``: the default depends on another field (the docs say so in these words).
    """
    meta = {"key": key, "required": required, "stored": stored, "sub": sub, "many": many, "keyed": keyed,
            "strings": strings, "computed": computed}
    if raw:  # the entry's dict itself: for digests and templates, not a document key
        return field(default=None, compare=False, repr=False, metadata={"key": None})
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


def model_fields(cls: type) -> list[dataclasses.Field]:
    """The document fields of a model type, in document order (the ``raw`` slot left out)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("key")]


def stored_defaults(cls: type) -> dict[str, Any]:
    """``{document key: default}`` of the fields the validator writes into the normalised dict (a list
    where the model keeps a tuple: the stored form is JSON). A computed default (``args[].position``) is
    left out: the validator writes it through :func:`default_position`.

    >>> stored_defaults(Arg)
    {'required': False, 'type': 'string'}
    """
    return {f.metadata["key"]: list(f.default) if isinstance(f.default, tuple) else f.default
            for f in model_fields(cls) if f.metadata["stored"] and not f.metadata["computed"]}


def _default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def default(cls: type, key: str) -> Any:
    """The default of ``cls``'s field with document key ``key`` (slots classes do not keep it as an attribute).

    >>> default(McpServer, "policy")
    'onDemand'
    """
    return next(_default_of(f) for f in model_fields(cls) if f.metadata["key"] == key)


_PLANS: dict[type, tuple[list, list, list, list, Any]] = {}
_RAW_TYPES: set[type] = set()


def _plan(cls: type) -> tuple[list, list, list, list, Any]:
    """How :func:`_build` fills ``cls``'s slots: plain fields ``(setter, key, default)``, map fields
    ``(setter, key, factory)``, fields read with a conversion ``(setter, key, default, sub, many)`` and
    maps of nested types ``(setter, key, sub)``."""
    plain, maps, read, keyed = [], [], [], []
    for f in model_fields(cls):
        setter, key, meta = getattr(cls, f.name).__set__, f.metadata["key"], f.metadata
        if meta["keyed"]:
            keyed.append((setter, key, meta["sub"]))
        elif f.default_factory is not dataclasses.MISSING:
            maps.append((setter, key, f.default_factory))
        elif meta["sub"] is not None or meta["strings"]:
            read.append((setter, key, f.default, meta["sub"], meta["many"]))
        else:
            plain.append((setter, key, f.default))
    raw = cls.raw.__set__ if cls in _RAW_TYPES else None
    _PLANS[cls] = plan = (plain, maps, read, keyed, raw)
    return plan


def _build(cls: type, data: Mapping[str, Any]) -> Any:
    """An instance of ``cls`` from a (normalised) dict, without checking it: absent keys take the defaults.

    A snapshot builds one per tool of a catalog, so this fills the slots directly: a frozen dataclass's
    ``__init__`` costs a guarded ``setattr`` per field, about three times as much.
    """
    plain, maps, read, keyed, raw = _PLANS.get(cls) or _plan(cls)
    obj = object.__new__(cls)
    get = data.get
    for setter, key, value in plain:
        given = get(key)
        setter(obj, value if given is None else given)
    for setter, key, factory in maps:
        given = get(key)
        setter(obj, factory() if given is None else given)
    for setter, key, value, sub, many in read:
        given = get(key)
        if given is not None:
            if sub is None:  # a list of strings (or one string), kept as a tuple
                value = (given,) if isinstance(given, str) else tuple(given)
            elif many:
                value = tuple(sub.from_dict(item) for item in given if isinstance(item, dict))
            elif isinstance(given, dict) and given:  # an empty block is no block, as dict readers saw it
                value = sub.from_dict(given)
        setter(obj, value)
    for setter, key, sub in keyed:
        given = get(key)
        setter(obj, {name: sub.from_dict(item) for name, item in given.items() if isinstance(item, dict)}
               if isinstance(given, dict) else {})
    if raw is not None:
        raw(obj, data)
    return obj


def _with_raw(cls: type) -> type:
    _RAW_TYPES.add(cls)
    return cls


class _Model:
    """Shared constructor of the model types."""

    __slots__ = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """Build from a dict, normally :func:`~mcpgw_sdk.documents.validate`'s output; nothing is checked."""
        return _build(cls, data)


# -- routers --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Cors(_Model):
    """``routers[].cors``: which browser origins may call the router, and what they may send and read.

    An empty ``allowMethods``, ``allowHeaders`` or ``exposeHeaders`` means its default, as an absent one does.
    """

    allow_origins: tuple[str, ...] = _f("allowOrigins", (), strings=True)
    allow_methods: tuple[str, ...] = _f("allowMethods", ("GET", "POST", "DELETE", "OPTIONS"), strings=True)
    allow_headers: tuple[str, ...] = _f("allowHeaders", ("Content-Type", "Authorization", "Mcp-Session-Id",
                                                         "MCP-Protocol-Version", "Last-Event-ID"), strings=True)
    expose_headers: tuple[str, ...] = _f("exposeHeaders", ("Mcp-Session-Id", "MCP-Protocol-Version"), strings=True)
    allow_credentials: bool = _f("allowCredentials", False)


@dataclass(frozen=True, slots=True)
class Auth(_Model):
    """``routers[].auth``: how callers of the router authenticate (``mode``) and, for OAuth, what is accepted."""

    mode: str = _f("mode", "none")
    issuer: str | None = _f("issuer")
    jwks_uri: str | None = _f("jwksUri")
    audience: tuple[str, ...] = _f("audience", (), strings=True)
    scopes: str | tuple[str, ...] | None = _f("scopes")


@dataclass(frozen=True, slots=True)
class Cache(_Model):
    """``routers[].cache``: the ``ttlMs`` hints of modern-era (2026-07-28) results, in milliseconds."""

    ttl_ms: int = _f("ttlMs", 60000)
    read_ttl_ms: int = _f("readTtlMs", 0)


@dataclass(frozen=True, slots=True)
class Annotations(_Model):
    """``tools[].annotations`` (and a shaping's): hints about a tool's behaviour, passed to clients."""

    title: str | None = _f("title")
    read_only_hint: bool | None = _f("readOnlyHint")
    destructive_hint: bool | None = _f("destructiveHint")
    idempotent_hint: bool | None = _f("idempotentHint")
    open_world_hint: bool | None = _f("openWorldHint")


@dataclass(frozen=True, slots=True)
class ShapeArg(_Model):
    """``routers[].tools.<name>.arguments.<arg>``: one argument's new description, default or fixed value."""

    description: str | None = _f("description")
    default: Any = _f("default")
    fixed: Any = _f("fixed")


@dataclass(frozen=True, slots=True)
class Shape(_Model):
    """``routers[].tools.<name>``: how a router reshapes a tool it exposes (docs/tool-shaping.md)."""

    name: str | None = _f("name")
    title: str | None = _f("title")
    description: str | None = _f("description")
    hidden: bool = _f("hidden", False)
    arguments: Mapping[str, ShapeArg] = _f("arguments", _EMPTY, sub=ShapeArg, keyed=True)
    annotations: Annotations | None = _f("annotations", sub=Annotations)


@_with_raw
@dataclass(frozen=True, slots=True)
class Router(_Model):
    """``routers[]``: a URL prefix and the backends (REST servers, upstream MCP servers) served under it."""

    server: str | None = _f("server")
    servers: tuple[str, ...] | None = _f("servers", strings=True)
    prefix: str = _f("prefix", "", required=True)
    sse_prefix: str = _f("ssePrefix", "")
    cors: Cors | None = _f("cors", sub=Cors)
    auth: Auth | None = _f("auth", sub=Auth)
    disabled: bool = _f("disabled", False)
    cache: Cache = _f("cache", Cache(), sub=Cache)
    tools: Mapping[str, Shape] = _f("tools", _EMPTY, sub=Shape, keyed=True)
    raw: Mapping[str, Any] | None = _f("", raw=True)

    @property
    def backends(self) -> tuple[str, ...]:
        """The names of the servers behind the prefix (``servers``, else the one ``server``)."""
        if self.servers is not None:
            return self.servers
        return (self.server,) if self.server else ()

    @property
    def mode(self) -> str:
        """The auth mode (``none`` without an ``auth`` block)."""
        return self.auth.mode if self.auth is not None else _NO_AUTH.mode


_NO_AUTH = Auth()


# -- REST servers, tools and prompts --------------------------------------------------

@dataclass(frozen=True, slots=True)
class TokenExchange(_Model):
    """``tokenExchange``: trade the caller's OAuth token (RFC 8693) for one meant for the server."""

    token_endpoint: str = _f("tokenEndpoint", "", required=True)
    client_id: str | None = _f("clientId")
    client_secret: str | None = _f("clientSecret")
    audience: tuple[str, ...] = _f("audience", (), strings=True)
    resource: tuple[str, ...] = _f("resource", (), strings=True)
    scope: str | tuple[str, ...] = _f("scope", ())
    header: str = _f("header", "Authorization")
    scheme: str = _f("scheme", "Bearer")
    timeout: float = _f("timeout", 10.0)


@_with_raw
@dataclass(frozen=True, slots=True)
class RestServer(_Model):
    """``servers[]``: a REST server exposing tools of the document, with its per-call ``config`` templates."""

    name: str = _f("name", "", required=True)
    description: str = _f("description", "")
    namespace: str = _f("namespace", "")
    allowed_tools: tuple[str, ...] | None = _f("allowedTools", strings=True)
    denied_tools: tuple[str, ...] = _f("deniedTools", (), strings=True)
    tool_prefix: str | None = _f("toolPrefix")
    config: Mapping[str, str] = _f("config", _EMPTY)
    token_exchange: TokenExchange | None = _f("tokenExchange", sub=TokenExchange)
    raw: Mapping[str, Any] | None = _f("", raw=True)


@dataclass(frozen=True, slots=True)
class Proxy(_Model):
    """``tools[].proxy``: a proxy the tool's requests would go through (mcpgw refuses such calls)."""

    host: str | None = _f("host")
    port: int | None = _f("port")
    type: str = _f("type", "http")


@dataclass(frozen=True, slots=True)
class Elicit(_Model):
    """``tools[].elicit``: a question put to the user before the call, and which answers fill arguments."""

    message: str = _f("message", "", required=True)
    requested_schema: Mapping[str, Any] = _f("requestedSchema", _EMPTY, required=True)
    fill: Mapping[str, str] = _f("fill", _EMPTY)


@dataclass(frozen=True, slots=True)
class Arg(_Model):
    """``tools[].args[]``: one argument of a REST tool, where it goes and its JSON-schema type.

    ``position`` has no fixed default: :func:`default_position` decides it from the tool's method.
    """

    name: str = _f("name", "", required=True)
    position: str = _f("position", "", stored=True, computed="by method")
    required: bool = _f("required", False, stored=True)
    type: str = _f("type", "string", stored=True)
    description: str = _f("description", "")
    default: str | None = _f("default")
    enum: tuple[Any, ...] | None = _f("enum", strings=True)
    items: Mapping[str, Any] | None = _f("items")
    raw: bool = _f("raw", False)
    field: str | None = _f("field")

    @property
    def wire(self) -> str:
        """The name the argument is sent under: ``field``, else its ``name``."""
        return self.field or self.name


@_with_raw
@dataclass(frozen=True, slots=True)
class Tool(_Model):
    """``tools[]``: a REST tool: the HTTP request it makes from its arguments, and how its answer reads."""

    name: str = _f("name", "", required=True)
    description: str = _f("description", "")
    method: str = _f("method", "GET", stored=True)
    endpoint: str = _f("endpoint", "", required=True)
    proxy: Proxy | None = _f("proxy", sub=Proxy)
    headers: Mapping[str, str] = _f("headers", _EMPTY)
    args: tuple[Arg, ...] = _f("args", (), sub=Arg, many=True)
    request_body: str | None = _f("requestBody")
    response_body: str | None = _f("responseBody")
    input_schema: Mapping[str, Any] | None = _f("inputSchema")
    output_schema: Mapping[str, Any] | None = _f("outputSchema")
    annotations: Annotations | None = _f("annotations", sub=Annotations)
    meta: Mapping[str, Any] | None = _f("meta")
    timeout: float | None = _f("timeout", computed="setting tool_timeout")
    retries: int = _f("retries", 0)
    max_response_bytes: int | None = _f("maxResponseBytes", computed="setting max_response_bytes")
    elicit: Elicit | None = _f("elicit", sub=Elicit)
    raw: Mapping[str, Any] | None = _f("", raw=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tool:
        """Build from a ``tools[]`` entry; arguments without a position get :func:`default_position`."""
        tool = _build(cls, data)
        if any(not arg.position for arg in tool.args):
            position = default_position(tool.method)
            args = tuple(arg if arg.position else dataclasses.replace(arg, position=position) for arg in tool.args)
            tool = dataclasses.replace(tool, args=args)
        return tool


@dataclass(frozen=True, slots=True)
class PromptArg(_Model):
    """``prompts[].arguments[]``: an argument the prompt's texts may use as ``{name}``."""

    name: str = _f("name", "", required=True)
    description: str = _f("description", "")
    required: bool = _f("required", False)


@dataclass(frozen=True, slots=True)
class PromptContent(_Model):
    """``prompts[].promptResponse[].content``: a message's text."""

    type: str = _f("type", "text")
    text: str = _f("text", "")


@dataclass(frozen=True, slots=True)
class PromptMessage(_Model):
    """``prompts[].promptResponse[]``: one message of the prompt."""

    role: str = _f("role", "user")
    content: PromptContent = _f("content", PromptContent(), sub=PromptContent)


@_with_raw
@dataclass(frozen=True, slots=True)
class Prompt(_Model):
    """``prompts[]``: a prompt template served by the REST servers of the document."""

    name: str = _f("name", "", required=True)
    description: str = _f("description", "")
    arguments: tuple[PromptArg, ...] = _f("arguments", (), sub=PromptArg, many=True)
    prompt_response: tuple[PromptMessage, ...] = _f("promptResponse", (), sub=PromptMessage, many=True)
    raw: Mapping[str, Any] | None = _f("", raw=True)


# -- upstream MCP servers -------------------------------------------------

@_with_raw
@dataclass(frozen=True, slots=True)
class McpServer(_Model):
    """``mcpServers[]``: an upstream MCP server proxied by the gateway.

    ``era`` has no fixed default: :func:`default_era` decides it from the ``type``.
    """

    type: str = _f("type", "", required=True)
    name: str = _f("name", "", required=True)
    command: str | None = _f("command")
    args: tuple[str, ...] = _f("args", (), strings=True)
    env: Mapping[str, str] = _f("env", _EMPTY)
    url: str | None = _f("url")
    headers: Mapping[str, str] = _f("headers", _EMPTY)
    policy: str = _f("policy", "onDemand", stored=True)
    preinstalled: bool = _f("preinstalled", False)
    allow_authorization_pass_through: bool = _f("allowAuthorizationPassThrough", False)
    allowed_tools: tuple[str, ...] | None = _f("allowedTools", strings=True)
    denied_tools: tuple[str, ...] = _f("deniedTools", (), strings=True)
    tool_prefix: str | None = _f("toolPrefix")
    timeout: float = _f("timeout", 30.0)
    era: str = _f("era", "", computed="by type")
    token_exchange: TokenExchange | None = _f("tokenExchange", sub=TokenExchange)
    raw: Mapping[str, Any] | None = _f("", raw=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> McpServer:
        """Build from an ``mcpServers[]`` entry; a missing ``type`` is ``stdio`` with a command (else
        ``streamable-http``), a missing ``era`` is :func:`default_era` of the type."""
        server = _build(cls, data)
        kind = server.type or ("stdio" if server.command else "streamable-http")
        return dataclasses.replace(server, type=kind, era=server.era or default_era(kind)) \
            if kind != server.type or not server.era else server


# -- the document ---------------------------------------------------------

@_with_raw
@dataclass(frozen=True, slots=True)
class Document(_Model):
    """One config document: a tenant's named set of routers, REST servers, tools, prompts and upstreams.

    ``raw`` is the normalised dict it was built from (the stored form; templates read dicts).
    """

    name: str = _f("name", "", required=True)
    tenant: str = _f("tenant", DEFAULT_TENANT, stored=True)
    routers: tuple[Router, ...] = _f("routers", (), stored=True, sub=Router, many=True)
    servers: tuple[RestServer, ...] = _f("servers", (), stored=True, sub=RestServer, many=True)
    tools: tuple[Tool, ...] = _f("tools", (), stored=True, sub=Tool, many=True)
    prompts: tuple[Prompt, ...] = _f("prompts", (), stored=True, sub=Prompt, many=True)
    mcp_servers: tuple[McpServer, ...] = _f("mcpServers", (), stored=True, sub=McpServer, many=True)
    raw: Mapping[str, Any] | None = _f("", raw=True)

    @property
    def key(self) -> str:
        """``tenant/name``."""
        return f"{self.tenant}/{self.name}"

    def server(self, name: str) -> RestServer | McpServer | None:
        """The REST or upstream MCP server called ``name``, or ``None``."""
        return next((s for s in (*self.servers, *self.mcp_servers) if s.name == name), None)
