"""The IO-free MCP core: (route, session, message, context) -> response.

Transports parse and frame; backends do the work; this module decides what a
message means. It never touches sockets, gevent or the session store: it reads
and updates the :class:`~gateway_server.sessions.Session` object it is given and
the transport saves it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcpgw_sdk.client import McpError
from mcpgw_sdk.config_model import Cache, default

from ..backends import CallContext, InputRefused, credentials, may_notify, static_capabilities
from . import jsonrpc, modern, mrtr, versions
from .jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND, JsonRpcError

PAGE_SIZE = 100
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
SERVER_INFO = {"name": "mcpgw", "version": "0.1.0"}

#: called after every tool call: (route, entry_or_None, tool name, outcome, seconds, ctx, error text)
Observer = Callable[[Any, Any, str, str, float, CallContext, "str | None"], None]


def capabilities(route: Any) -> dict[str, Any]:
    """The server capabilities a route offers."""
    caps: dict[str, Any] = {"tools": {"listChanged": True}, "logging": {}}
    if route.prompts:
        caps["prompts"] = {"listChanged": True}
    for backend in route.backends:
        offered = getattr(backend, "capabilities", None)
        if offered is None:  # a backend without the attribute offers what its methods say
            offered = {}
            if hasattr(backend, "list_prompts"):
                offered["prompts"] = {"listChanged": True}
            if hasattr(backend, "list_resources"):
                offered["resources"] = {"listChanged": True, "subscribe": hasattr(backend, "subscribe")}
            if hasattr(backend, "complete"):
                offered["completions"] = {}
        for key, value in offered.items():
            if key == "resources" and "resources" in caps:
                caps[key] = {**caps[key], "subscribe": bool(caps[key].get("subscribe") or value.get("subscribe"))}
            else:
                caps.setdefault(key, dict(value))
    return caps


def _cursor_offset(params: dict[str, Any]) -> int:
    cursor = params.get("cursor")
    if cursor is None:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(str(cursor).encode()))
        offset = int(data["o"])
        if offset < 0:
            raise ValueError
        return offset
    except Exception:  # noqa: BLE001 - any undecodable cursor is the client's error
        raise JsonRpcError(INVALID_PARAMS, f"invalid cursor {cursor!r}") from None


def _page(items: list[Any], params: dict[str, Any], key: str) -> dict[str, Any]:
    offset = _cursor_offset(params)
    if offset > len(items):
        raise JsonRpcError(INVALID_PARAMS, f"invalid cursor {params.get('cursor')!r}: past the end")
    out: dict[str, Any] = {key: items[offset:offset + PAGE_SIZE]}
    if offset + PAGE_SIZE < len(items):
        out["nextCursor"] = base64.urlsafe_b64encode(json.dumps({"o": offset + PAGE_SIZE}).encode()).decode()
    return out


def _tools_for(route: Any, version: str) -> list[dict[str, Any]]:
    cached = route._by_version.get(version)
    if cached is None:
        cached = [versions.adapt_tool(t, version) for t in route.tool_list]
        route._by_version[version] = cached
    return cached


def error_result(text: str) -> dict[str, Any]:
    """A ``CallToolResult`` reporting a failure."""
    return {"content": [{"type": "text", "text": text}], "isError": True}


def _validation_error(entry: Any, arguments: dict[str, Any]) -> str | None:
    if entry.surely_valid(arguments):
        return None
    validator = entry.validator
    if validator.is_valid(arguments):
        return None
    err = min(validator.iter_errors(arguments), key=lambda e: (len(e.path), str(e.path)))
    where = ".".join(str(p) for p in err.path)
    if where:
        return f"invalid arguments for tool {entry.name}: argument {where!r}: {err.message}"
    return f"invalid arguments for tool {entry.name}: {err.message}"


def call_tool(route: Any, session: Any, params: dict[str, Any], ctx: CallContext,
              observer: Observer | None = None, principal: Any = None, *, version: str | None = None,
              ) -> dict[str, Any]:
    """Run ``tools/call``: look the tool up, validate and default the arguments, call its backend.

    The result is shaped for ``version`` (default: the session's negotiated version).
    """
    name = params.get("name")
    if not isinstance(name, str):
        problem = "params.name: required" if name is None else "params.name: must be a string"
        if observer:
            observer(route, None, str(name), "unknown", 0.0, ctx, problem)
        raise JsonRpcError(INVALID_PARAMS, problem)
    entry = route.tools.get(name)
    if entry is None:
        if observer:
            observer(route, None, str(name), "unknown", 0.0, ctx, "unknown tool")
        starting = [b for b in route.backends if getattr(b, "state", None) == "connecting"]
        if starting:  # its tools may simply not be known yet: say so instead of "unknown tool"
            return error_result(f"tool {name} is not available yet: " + "; ".join(
                f"upstream {b.name} is still connecting"
                + (f" (last error: {b.last_error})" if getattr(b, "last_error", None) else " (no answer yet)")
                for b in starting))
        raise JsonRpcError(INVALID_PARAMS, f"unknown tool {name!r}")
    if principal is not None and not principal.allows(entry.server, name):
        if observer:
            observer(route, entry, name, "denied", 0.0, ctx, "not allowed for this credential")
        return error_result(f"tool {name} is not allowed for this credential")
    arguments = params.get("arguments")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise JsonRpcError(INVALID_PARAMS, f"tool {name}: 'arguments' must be an object")
    if entry.defaults:
        arguments = {**entry.defaults, **arguments}
    problem = _validation_error(entry, arguments)
    if problem:
        if observer:
            observer(route, entry, name, "invalid", 0.0, ctx, problem)
        return error_result(problem)
    if entry.fixed:  # shaped: the router fixed these (the client neither sees nor sets them)
        arguments = {**arguments, **entry.fixed}
    meta = params.get("_meta")
    if isinstance(meta, dict) and "progressToken" in meta:
        ctx.progress_token = meta["progressToken"]
    started = time.perf_counter()
    try:
        result = entry.backend.call_tool(entry.backend_name, arguments, ctx)
    except InputRefused as exc:  # a refused MRTR retry is a protocol error, not a tool failure
        if observer:
            observer(route, entry, name, "invalid", time.perf_counter() - started, ctx, exc.message[:500])
        raise JsonRpcError(exc.code, exc.message, exc.data) from None
    except Exception as exc:  # noqa: BLE001 - a backend bug is the call's failure, not the session's
        result = error_result(f"tool {name} failed: {type(exc).__name__}: {exc}")
    if getattr(ctx, "secrets", None) is not None:  # an error text may quote a URL or header holding the caller's secret
        result = credentials.scrub(result, ctx)
    elapsed = time.perf_counter() - started
    if observer:
        failed = bool(result.get("isError"))
        text = None
        if failed:
            content = result.get("content") or [{}]
            text = str(content[0].get("text", ""))[:500]
        observer(route, entry, name, "error" if failed else "ok", elapsed, ctx, text)
    return versions.adapt_result(result, version or session.protocol_version or versions.LATEST)


def initialize(route: Any, session: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Answer ``initialize`` and record what the client declared on the session."""
    for name in ("capabilities", "clientInfo"):
        if params.get(name) is not None and not isinstance(params[name], dict):
            raise JsonRpcError(INVALID_PARAMS, f"initialize: '{name}' must be an object")
    version = versions.negotiate(params.get("protocolVersion"))
    session.protocol_version = version
    session.client_info = params.get("clientInfo") or {}
    session.client_capabilities = params.get("capabilities") or {}
    session.tools_digest = route.digest
    return {"protocolVersion": version, "capabilities": capabilities(route), "serverInfo": SERVER_INFO}


def _first(route: Any, method: str) -> Any:
    for backend in route.backends:
        if hasattr(backend, method):
            return backend
    raise JsonRpcError(METHOD_NOT_FOUND, f"method not found: this server offers no {method.replace('_', ' ')}")


def _prompts_list(route: Any, params: dict[str, Any]) -> dict[str, Any]:
    from ..prompts import describe

    items = [describe(p) for p in route.prompts.values()]
    seen = set(route.prompts)
    for backend in route.backends:
        if hasattr(backend, "list_prompts"):
            for prompt in backend.list_prompts():
                if prompt.get("name") not in seen:  # REST servers also serve their document's prompts
                    seen.add(prompt.get("name"))
                    items.append(prompt)
    return _page(items, params, "prompts")


def _prompts_get(route: Any, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    from ..prompts import render

    name = params.get("name")
    if name in route.prompts:
        return render(route.prompts[name], params.get("arguments"))
    for backend in route.backends:
        if hasattr(backend, "list_prompts") and any(p.get("name") == name for p in backend.list_prompts()):
            return backend.get_prompt(name, params.get("arguments") or {}, ctx)
    raise JsonRpcError(INVALID_PARAMS, f"unknown prompt {name!r}")


def _gather(route: Any, method: str, key: str, params: dict[str, Any]) -> dict[str, Any]:
    items: list[Any] = []
    for backend in route.backends:
        if hasattr(backend, method):
            items.extend(getattr(backend, method)())
    return _page(items, params, key)


def _read_resource(route: Any, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    uri = params.get("uri")
    if not isinstance(uri, str):
        raise JsonRpcError(INVALID_PARAMS, "resources/read: 'uri' must be a string")
    readers = [b for b in route.backends if hasattr(b, "read_resource")]
    if not readers:
        raise JsonRpcError(METHOD_NOT_FOUND, "method not found: this server offers no resources")
    if len(readers) > 1:
        for backend in readers:
            if hasattr(backend, "list_resources") and any(r.get("uri") == uri for r in backend.list_resources()):
                return backend.read_resource(uri, ctx)
    return readers[0].read_resource(uri, ctx)


def _set_level(route: Any, session: Any, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    level = params.get("level")
    if level not in LOG_LEVELS:
        raise JsonRpcError(INVALID_PARAMS, f"logging/setLevel: 'level' must be one of {', '.join(LOG_LEVELS)}")
    session.log_level = level
    for backend in route.backends:
        if hasattr(backend, "set_logging_level"):
            backend.set_logging_level(level, ctx)
    return {}


def _visible(route: Any, tools: list[dict[str, Any]], principal: Any) -> list[dict[str, Any]]:
    if principal is None or (principal.tools is None and principal.servers is None):
        return tools
    return [t for t in tools if principal.allows(route.tools[t["name"]].server, t["name"])]


@dataclass
class Call:
    """One request as its handler sees it: where it goes, who asks, in which protocol version."""

    route: Any
    session: Any  # the legacy session; ``None`` in the modern era (stateless)
    params: dict[str, Any]
    ctx: CallContext
    version: str
    observer: Observer | None = None
    principal: Any = None


Handler = Callable[[Call], dict[str, Any]]


def _tools_list(call: Call) -> dict[str, Any]:
    return _page(_visible(call.route, _tools_for(call.route, call.version), call.principal), call.params, "tools")


def _tools_call(call: Call) -> dict[str, Any]:
    return call_tool(call.route, call.session, call.params, call.ctx, call.observer, call.principal,
                     version=call.version)


def _resources_list(call: Call) -> dict[str, Any]:
    _first(call.route, "list_resources")
    return _gather(call.route, "list_resources", "resources", call.params)


def _templates_list(call: Call) -> dict[str, Any]:
    _first(call.route, "list_resources")
    return _gather(call.route, "list_resource_templates", "resourceTemplates", call.params)


def _subscription(verb: str) -> Handler:
    def handler(call: Call) -> dict[str, Any]:
        getattr(_first(call.route, verb), verb)(call.params.get("uri"), call.ctx)
        return {}

    return handler


#: Methods both eras share, by name.
_COMMON: dict[str, Handler] = {
    "tools/list": _tools_list,
    "tools/call": _tools_call,
    "prompts/list": lambda call: _prompts_list(call.route, call.params),
    "prompts/get": lambda call: versions.adapt_prompt(_prompts_get(call.route, call.params, call.ctx), call.version),
    "resources/list": _resources_list,
    "resources/templates/list": _templates_list,
    "resources/read": lambda call: _read_resource(call.route, call.params, call.ctx),
    "completion/complete": lambda call: _first(call.route, "complete").complete(call.params, call.ctx),
}

#: The handshake era (2024-11-05 … 2025-11-25): sessions, ``initialize``, ``ping``, subscriptions.
LEGACY: dict[str, Handler] = {
    **_COMMON,
    "ping": lambda call: {},
    "initialize": lambda call: initialize(call.route, call.session, call.params),
    "resources/subscribe": _subscription("subscribe"),
    "resources/unsubscribe": _subscription("unsubscribe"),
    "logging/setLevel": lambda call: _set_level(call.route, call.session, call.params, call.ctx),
}


def _bind_token(ctx: CallContext, principal: Any) -> None:
    """Hand backends this request's verified OAuth token (``tokenExchange`` trades it; nothing else reads it)."""
    ctx.subject_token = getattr(principal, "token", None)


def handle_request(route: Any, session: Any, method: str, params: dict[str, Any], ctx: CallContext,
                   observer: Observer | None = None, principal: Any = None) -> dict[str, Any]:
    """The result of one legacy-session request; raises JsonRpcError for protocol errors.

    ``principal`` (from :mod:`gateway_server.mcp_auth`) narrows the visible and callable tools.
    """
    if method == "tools/call":  # the hot path: straight to call_tool, no Call built
        _bind_token(ctx, principal)
        return call_tool(route, session, params, ctx, observer, principal,
                         version=session.protocol_version or versions.LATEST)
    handler = LEGACY.get(method)
    if handler is None:
        raise JsonRpcError(METHOD_NOT_FOUND, f"method not found: {method}")
    _bind_token(ctx, principal)
    return handler(Call(route, session, params, ctx, session.protocol_version or versions.LATEST, observer,
                        principal))


# -- the modern era (2026-07-28): stateless, one request at a time -------------------------------------

#: Default cache lifetimes (``routers[].cache`` overrides them): lists and discover may be reused for a
#: minute; a resource read is stale at once unless the router says otherwise.
DEFAULT_TTL_MS = default(Cache, "ttlMs")
DEFAULT_READ_TTL_MS = default(Cache, "readTtlMs")
_NO_CACHE = Cache()
#: Results that carry ``ttlMs``/``cacheScope``.
CACHEABLE = frozenset({"server/discover", "tools/list", "prompts/list", "resources/list",
                       "resources/templates/list", "resources/read"})


def subscribable(route: Any) -> list[Any]:
    """The backends of ``route`` that serve ``resourceSubscriptions`` on listen streams: upstreams
    offering ``resources.subscribe`` (:meth:`~gateway_server.backends.upstream.UpstreamServer.watch_resources`)."""
    return [b for b in route.backends if hasattr(b, "watch_resources") and getattr(b, "subscribable", False)]


def _derive_modern_capabilities(route: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in capabilities(route).items():
        if key == "resources" and isinstance(value, dict):
            value = {**value, "subscribe": bool(subscribable(route))}
        out[key] = dict(value) if isinstance(value, dict) else value
    return out


def _offered(route: Any) -> dict[str, Any]:
    """:func:`modern_capabilities` for reading only: derived once per route when every backend's
    capabilities are fixed (REST), else per request (an upstream's arrive when it connects)."""
    cached = route._memo.get("capabilities")
    if cached is not None:
        return cached
    caps = _derive_modern_capabilities(route)
    if all(static_capabilities(b) for b in route.backends):
        route._memo["capabilities"] = caps
    return caps


def modern_capabilities(route: Any) -> dict[str, Any]:
    """The capabilities ``server/discover`` declares: :func:`capabilities`, as the modern era serves them.

    ``listChanged`` and per-resource updates are served through ``subscriptions/listen``;
    ``resources.subscribe`` is true when some backend serves the latter (:func:`subscribable`).
    A fresh copy the caller may keep.
    """
    return {k: dict(v) if isinstance(v, dict) else v for k, v in _offered(route).items()}


def modern_may_notify(route: Any, envelope: modern.Envelope, method: str, params: dict[str, Any]) -> bool:
    """Whether a modern request may produce notifications before its answer or need cancelling on close.

    True when it asks for progress (``_meta.progressToken``) or log messages (the envelope's log
    level), or when a backend it may reach may notify (:func:`~gateway_server.backends.may_notify`:
    upstreams do, REST servers do not). Other requests run inline and are answered with JSON.
    """
    if envelope.log_level is not None:
        return True
    meta = params.get("_meta")
    if isinstance(meta, dict) and "progressToken" in meta:
        return True
    if method == "tools/call":  # an unknown tool is answered without calling any backend
        entry = route.tools.get(params.get("name"))
        return entry is not None and may_notify(entry.backend)
    memo = route._memo
    cached = memo.get("may_notify")
    if cached is None:
        cached = memo["may_notify"] = any(may_notify(b) for b in route.backends)
    return cached


MAX_LISTEN_URIS = 100
MAX_URI_LENGTH = 2048

#: ``subscriptions/listen`` filter keys -> the capability that must be offered for them to be honoured.
LISTEN_KINDS = {"toolsListChanged": "tools", "promptsListChanged": "prompts", "resourcesListChanged": "resources"}


def listen_filter(route: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The honoured subset of a ``subscriptions/listen`` filter; raises -32602 for a malformed one.

    Kinds the prefix does not offer and ``false`` flags are left out, as the acknowledgement must.
    ``resourceSubscriptions`` (an array of strings) is accepted whole, duplicates dropped, when some
    backend of the prefix serves resource subscriptions (:func:`subscribable`; a URI that upstream
    does not know simply never updates), and left out otherwise.
    """
    wanted = params.get("notifications")
    if not isinstance(wanted, dict):
        raise JsonRpcError(INVALID_PARAMS, "subscriptions/listen: params.notifications must be an object")
    offered = _offered(route)
    accepted: dict[str, Any] = {key: True for key, cap in LISTEN_KINDS.items()
                                if wanted.get(key) is True and cap in offered}
    uris = wanted.get("resourceSubscriptions")
    if uris is not None and (not isinstance(uris, list) or not all(isinstance(u, str) for u in uris)):
        raise JsonRpcError(INVALID_PARAMS,
                           "subscriptions/listen: params.notifications.resourceSubscriptions must be an array of strings")
    # Each URI becomes an upstream subscribe before the acknowledgement: bound how many, and how long.
    if uris and (len(uris) > MAX_LISTEN_URIS or any(len(u) > MAX_URI_LENGTH for u in uris)):
        raise JsonRpcError(INVALID_PARAMS, f"subscriptions/listen: params.notifications.resourceSubscriptions may "
                                           f"hold at most {MAX_LISTEN_URIS} URIs of at most {MAX_URI_LENGTH} characters")
    if uris and subscribable(route):
        accepted["resourceSubscriptions"] = list(dict.fromkeys(uris))
    return accepted


def offer_fingerprint(route: Any, kind: str, names: dict[int, str]) -> str:
    """What a prefix offers of ``kind`` (tools, prompts, resources) as a comparable string.

    ``names`` maps ``id(backend)`` to the backend's definition hash in its snapshot (stable
    across reloads that keep the backend). Upstream list changes arrive as backend events instead.
    """
    if kind == "tools":
        return route.digest
    method = "list_prompts" if kind == "prompts" else "list_resources"
    own = json.dumps(route.prompts, sort_keys=True, default=str) if kind == "prompts" else ""
    return own + "|" + ",".join(names.get(id(b), str(id(b))) for b in route.backends if hasattr(b, method))


def cache_hints(route: Any, principal: Any, method: str) -> dict[str, Any]:
    """``ttlMs`` and ``cacheScope`` for a cacheable result of ``method`` on ``route``.

    ``private`` when the answer may depend on the caller: the router authenticates (the
    principal may be scoped to some tools), or an upstream is connected per request with the
    caller's headers. ``public`` otherwise. Every page of a list gets the same scope.
    """
    cache = getattr(route, "cache", None) or _NO_CACHE
    ttl = cache.read_ttl_ms if method == "resources/read" else cache.ttl_ms
    per_route = route._memo.get("per_caller")
    if per_route is None:
        per_route = route._memo["per_caller"] = route.auth_mode != "none" \
            or any(getattr(b, "per_request", False) for b in route.backends)
    per_caller = principal is not None or per_route
    return {"ttlMs": int(ttl), "cacheScope": "private" if per_caller else "public"}


def discover(call: Call) -> dict[str, Any]:
    """Answer ``server/discover``: the versions and capabilities of this prefix."""
    result: dict[str, Any] = {"supportedVersions": list(modern.SUPPORTED_VERSIONS),
                              "capabilities": modern_capabilities(call.route)}
    instructions = getattr(call.route, "instructions", None)
    if instructions:
        result["instructions"] = instructions
    return result


#: The modern era: no ``initialize``, ``ping``, ``logging/setLevel`` or ``resources/(un)subscribe``.
MODERN: dict[str, Handler] = {"server/discover": discover, **_COMMON}
#: The server capability a modern method needs; without it the method does not exist (-32601).
_NEEDS = {"tools/list": "tools", "tools/call": "tools", "prompts/list": "prompts", "prompts/get": "prompts",
          "resources/list": "resources", "resources/templates/list": "resources", "resources/read": "resources",
          "completion/complete": "completions"}
_INPUT_KINDS = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}


def _input_requests(ctx: CallContext, declared: dict[str, Any], missing: dict[str, Any]) -> None:
    """Make ``ctx.request`` record what a backend asks of the client (modern clients get no server requests)."""

    def request(method: str, params: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        kind = _INPUT_KINDS.get(method)
        if kind is not None and kind not in declared:
            missing[kind] = {}
            raise McpError(modern.MISSING_CLIENT_CAPABILITY, f"the client did not declare the {kind} capability")
        raise McpError(METHOD_NOT_FOUND, f"{method} is not forwarded to 2026-07-28 clients yet")

    ctx.client_capabilities = declared
    ctx.request = request


def handle_modern(route: Any, envelope: modern.Envelope, method: str, params: dict[str, Any], ctx: CallContext,
                  observer: Observer | None = None, principal: Any = None) -> dict[str, Any]:
    """The result of one modern request (its envelope already checked); raises JsonRpcError.

    Unknown and removed methods, and methods of a capability the prefix does not offer, are -32601.
    A backend that needed a client capability the request did not declare makes it -32021.
    """
    handler = MODERN.get(method)
    need = _NEEDS.get(method)
    if handler is None or (need is not None and need not in _offered(route)):
        raise JsonRpcError(METHOD_NOT_FOUND, f"method not found: {method}"
                           + (" (removed in 2026-07-28)" if method in modern.REMOVED_METHODS else ""))
    missing: dict[str, Any] = {}
    _input_requests(ctx, envelope.client_capabilities, missing)
    _bind_token(ctx, principal)
    call = Call(route, None, modern.without_envelope(params), ctx, envelope.protocol_version, observer, principal)
    if method in mrtr.METHODS:  # a retry's inputResponses and sealed requestState (docs/eras.md, MRTR)
        mrtr.take_retry(route, principal, method, call.params, ctx)
    try:
        result = handler(call)
    except McpError:  # prompts/get, resources/read: the upstream's failure may be the refused request's
        if not missing:
            raise
        result = {}
    if missing:
        raise JsonRpcError(modern.MISSING_CLIENT_CAPABILITY,
                           f"{method} needs client capabilities the request did not declare: {', '.join(missing)}",
                           {"requiredCapabilities": missing})
    if result.get("resultType") == "input_required":  # relayed with the gateway's sealed state, no cache hints
        return modern.with_server_meta(
            mrtr.relay(route, principal, method, call.params, ctx, envelope.client_capabilities, result), SERVER_INFO)
    result = modern.with_server_meta(result, SERVER_INFO)
    if method in CACHEABLE:
        result.update(cache_hints(route, principal, method))
    return result


def dispatch_modern(route: Any, message: dict[str, Any], envelope: modern.Envelope, ctx: CallContext,
                    observer: Observer | None = None, principal: Any = None) -> dict[str, Any]:
    """Answer one modern request with a JSON-RPC response (errors included, echoing the request id)."""
    try:
        value = handle_modern(route, envelope, message["method"], message.get("params") or {}, ctx, observer,
                              principal)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON-RPC error in one place
        return jsonrpc.error_response(message["id"], exc)
    return jsonrpc.result(message["id"], value)


def handle_notification(route: Any, session: Any, method: str, params: dict[str, Any]) -> None:
    """Accept a client notification (initialized, cancelled, roots changes, progress)."""
    if method == "notifications/cancelled":
        for backend in route.backends:
            if hasattr(backend, "cancel"):
                backend.cancel(params.get("requestId"), session_id=session.id, reason=params.get("reason"))


def dispatch(route: Any, session: Any, message: dict[str, Any], ctx: CallContext,
             observer: Observer | None = None, principal: Any = None, *, what: str | None = None,
             ) -> dict[str, Any] | None:
    """Answer one JSON-RPC message: a response for a request, ``None`` for notifications and responses.

    ``what``: the message's :func:`jsonrpc.kind` when the transport already classified it.
    """
    if what is None:
        try:
            what = jsonrpc.kind(message)
        except JsonRpcError as exc:
            return jsonrpc.error(exc.msg_id, exc.code, exc.message)
    if what == jsonrpc.RESPONSE:
        return None
    method = message["method"]
    params = message.get("params") or {}
    if what == jsonrpc.NOTIFICATION:
        handle_notification(route, session, method, params)
        return None
    msg_id = message["id"]
    ctx.request_id = msg_id  # backends map cancellations by (session, JSON-RPC id)
    try:
        return jsonrpc.result(msg_id, handle_request(route, session, method, params, ctx, observer, principal))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON-RPC error in one place
        return jsonrpc.error_response(msg_id, exc)
