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
from typing import Any

from ..backends import CallContext
from . import jsonrpc, versions
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
              observer: Observer | None = None, principal: Any = None) -> dict[str, Any]:
    """Run ``tools/call``: look the tool up, validate and default the arguments, call its backend."""
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
    meta = params.get("_meta")
    if isinstance(meta, dict) and "progressToken" in meta:
        ctx.progress_token = meta["progressToken"]
    started = time.perf_counter()
    try:
        result = entry.backend.call_tool(entry.backend_name, arguments, ctx)
    except Exception as exc:  # noqa: BLE001 - a backend bug is the call's failure, not the session's
        result = error_result(f"tool {name} failed: {type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - started
    if observer:
        failed = bool(result.get("isError"))
        text = None
        if failed:
            content = result.get("content") or [{}]
            text = str(content[0].get("text", ""))[:500]
        observer(route, entry, name, "error" if failed else "ok", elapsed, ctx, text)
    return versions.adapt_result(result, session.protocol_version or versions.LATEST)


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


def handle_request(route: Any, session: Any, method: str, params: dict[str, Any], ctx: CallContext,
                   observer: Observer | None = None, principal: Any = None) -> dict[str, Any]:
    """The result of one request; raises JsonRpcError for protocol errors.

    ``principal`` (from :mod:`gateway_server.mcp_auth`) narrows the visible and callable tools.
    """
    if method == "tools/call":
        return call_tool(route, session, params, ctx, observer, principal)
    if method == "tools/list":
        tools = _tools_for(route, session.protocol_version or versions.LATEST)
        return _page(_visible(route, tools, principal), params, "tools")
    if method == "ping":
        return {}
    if method == "initialize":
        return initialize(route, session, params)
    if method == "prompts/list":
        return _prompts_list(route, params)
    if method == "prompts/get":
        return versions.adapt_prompt(_prompts_get(route, params, ctx), session.protocol_version or versions.LATEST)
    if method == "resources/list":
        _first(route, "list_resources")
        return _gather(route, "list_resources", "resources", params)
    if method == "resources/templates/list":
        _first(route, "list_resources")
        return _gather(route, "list_resource_templates", "resourceTemplates", params)
    if method == "resources/read":
        return _read_resource(route, params, ctx)
    if method in ("resources/subscribe", "resources/unsubscribe"):
        verb = method.split("/")[1]
        getattr(_first(route, verb), verb)(params.get("uri"), ctx)
        return {}
    if method == "completion/complete":
        return _first(route, "complete").complete(params, ctx)
    if method == "logging/setLevel":
        return _set_level(route, session, params, ctx)
    raise JsonRpcError(METHOD_NOT_FOUND, f"method not found: {method}")


def handle_notification(route: Any, session: Any, method: str, params: dict[str, Any]) -> None:
    """Accept a client notification (initialized, cancelled, roots changes, progress)."""
    if method == "notifications/cancelled":
        for backend in route.backends:
            if hasattr(backend, "cancel"):
                backend.cancel(params.get("requestId"), session_id=session.id, reason=params.get("reason"))


def dispatch(route: Any, session: Any, message: dict[str, Any], ctx: CallContext,
             observer: Observer | None = None, principal: Any = None) -> dict[str, Any] | None:
    """Answer one JSON-RPC message: a response for a request, ``None`` for notifications and responses."""
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
