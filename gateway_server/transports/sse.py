"""HTTP+SSE transport (2024-11-05): ``GET P/sse`` opens a session's stream, ``POST P/message`` feeds it.

Every well-formed POST is answered 202 and its response goes out on the stream,
including the error for the modern-era ``server/discover`` probe (an HTTP 400
there would make the Python SSE client drop the connection).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from ..mcp import core
from ..mcp.jsonrpc import INVALID_REQUEST
from ..sessions import Session, new_id
from .base import (
    StartResponse,
    admit,
    attach,
    backend_request_headers,
    create_session,
    extra_headers,
    forbidden_session,
    initialize_refusal,
    make_context,
    not_owner,
    owner_of,
    pause,
    read_message,
    respond,
    respond_error,
    settled_route,
)


def handle_stream(gateway: Any, route: Any, environ: dict[str, Any], start_response: StartResponse) -> Any:
    """``GET P/sse``: create a session and stream its messages, starting with the ``endpoint`` event."""
    principal, refused = admit(gateway, route, environ, start_response)
    if refused is not None:
        return refused
    if environ["REQUEST_METHOD"] != "GET":
        return respond_error(start_response, 405, INVALID_REQUEST, f"use GET on {route.prefix}/sse",
                             headers=[("Allow", "GET, OPTIONS")])
    # The connect request's headers serve every call of the session: without the gateway credential.
    headers = backend_request_headers(route, environ)
    session = Session(id=new_id(), prefix=route.prefix, transport="sse", protocol_version="2024-11-05",
                      headers=headers, tools_digest=route.digest, owner=owner_of(principal))
    refused = create_session(gateway, session, start_response, headers=extra_headers(route, environ))
    if refused is not None:
        return refused
    gateway.metrics.sessions.inc()
    endpoint = f"{route.sse_prefix}{route.prefix}/message?sessionId={session.id}"
    headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
               ("X-Accel-Buffering", "no"), *extra_headers(route, environ)]
    start_response("200 OK", headers)
    first = b"event: endpoint\ndata: " + endpoint.encode() + b"\n\n"
    return gateway.stream(session.id, first=first, end_session=route, environ=environ)


def handle_message(gateway: Any, route: Any, environ: dict[str, Any], start_response: StartResponse) -> Any:
    """``POST P/message?sessionId=…``: accept a message (202); its response goes on the session's stream."""
    principal, refused = admit(gateway, route, environ, start_response)
    if refused is not None:
        return refused
    if environ["REQUEST_METHOD"] != "POST":
        return respond_error(start_response, 405, INVALID_REQUEST, f"use POST on {route.prefix}/message",
                             headers=[("Allow", "POST, OPTIONS")])
    cors = extra_headers(route, environ)
    sid = (parse_qs(environ.get("QUERY_STRING", "")).get("sessionId") or [""])[0]
    if not sid:
        return respond_error(start_response, 400, INVALID_REQUEST, "Bad Request: the sessionId parameter is required",
                             headers=cors)
    session = gateway.sessions.get(sid)
    if session is None or session.prefix != route.prefix:
        return respond_error(start_response, 404, INVALID_REQUEST, "Session not found: connect to the SSE stream again",
                             headers=cors)
    if not_owner(session, principal):
        return forbidden_session(start_response, headers=cors)
    message, refused = read_message(gateway, environ, start_response, cors)
    if refused is not None:
        return refused
    messages = message if isinstance(message, list) else [message]
    if not messages:
        return respond_error(start_response, 400, INVALID_REQUEST, "invalid request: empty batch", headers=cors)
    headers = session.headers
    for position, item in enumerate(messages):
        if position:
            pause()  # one client's batch must not hold the other clients' requests
        ctx = attach(gateway, make_context(environ, session, headers=headers), session,
                     lambda note, sid=session.id: gateway.sessions.deliver(sid, note))
        if isinstance(item, dict) and "method" not in item and ("result" in item or "error" in item):
            gateway.resolve(session.id, item)
            continue
        if principal is not None:
            ctx.user, ctx.key_id = principal.user, principal.key_id
        if isinstance(item, dict) and "id" in item and isinstance(item.get("method"), str):
            refusal = initialize_refusal(gateway, item) if item["method"] == "initialize" else None
            if refusal is not None:
                gateway.sessions.deliver(session.id, refusal)
                continue
            gateway.spawn(_answer, gateway, route, session, item, ctx, principal)
        else:
            if isinstance(item, dict):
                gateway.count_method(item.get("method") or "response")
            reply = core.dispatch(route, session, item, ctx, gateway.observe, principal)
            if reply is not None:
                gateway.sessions.deliver(session.id, reply)
    return respond(start_response, 202, b"Accepted", content_type="text/plain", headers=cors)


def _answer(gateway: Any, route: Any, session: Session, message: dict[str, Any], ctx: Any,
            principal: Any = None) -> None:
    gateway.count_method(message["method"])
    if message["method"] == "tools/list":
        route = settled_route(gateway, route)
    reply = core.dispatch(route, session, message, ctx, gateway.observe, principal)
    if message["method"] in ("initialize", "logging/setLevel"):
        gateway.sessions.save(session)
    if reply is not None:
        gateway.sessions.deliver(session.id, reply)
