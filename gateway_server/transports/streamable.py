"""Streamable HTTP transport (``P/mcp``): POST messages, GET the server stream, DELETE the session.

JSON responses by default (clients reject SSE events over 1 MiB and JSON is
cheaper). Sessions come from the gateway's session store, so any process
sharing that store can answer. Each POST is routed to its era first
(:func:`gateway_server.mcp.modern.is_modern`): legacy requests belong to a session,
modern (2026-07-28) ones are served statelessly and never get a session.
"""

from __future__ import annotations

import itertools
import queue
import time
from typing import Any

from ..mcp import core, jsonrpc, modern, versions
from ..mcp.jsonrpc import INVALID_REQUEST, JsonRpcError
from ..sessions import Session, SessionsFull, new_id
from . import detached
from .base import (
    SSE_HEADERS,
    StartResponse,
    admit,
    attach,
    backend_request_headers,
    client_gone,
    create_session,
    extra_headers,
    forbidden_session,
    initialize_refusal,
    make_context,
    not_owner,
    owner_of,
    pause,
    read_message,
    request_headers,
    respond,
    respond_error,
    respond_json,
    settled_route,
    sse_event,
)

ALLOW = [("Allow", "GET, POST, DELETE, OPTIONS")]
MODERN_ALLOW = [("Allow", "POST")]


def handle(gateway: Any, route: Any, environ: dict[str, Any], start_response: StartResponse) -> Any:
    """Serve one request to ``P/mcp``."""
    principal, refused = admit(gateway, route, environ, start_response)
    if refused is not None:
        return refused
    method = environ["REQUEST_METHOD"]
    if method == "POST":
        return post(gateway, route, environ, start_response, principal)
    if method in ("GET", "DELETE") and modern.is_modern(request_headers(environ), None):
        # 2026-07-28 has no server stream and no session to delete: POST is the only method.
        return respond_error(start_response, 405, INVALID_REQUEST,
                             f"method {method} not allowed on {route.prefix}/mcp for protocol version "
                             f"{environ.get('HTTP_MCP_PROTOCOL_VERSION')} (POST only)",
                             headers=[*MODERN_ALLOW, *extra_headers(route, environ)])
    if method == "GET":
        return get(gateway, route, environ, start_response, principal)
    if method == "DELETE":
        return delete(gateway, route, environ, start_response, principal)
    return respond_error(start_response, 405, INVALID_REQUEST, f"method {method} not allowed on {route.prefix}/mcp",
                         headers=ALLOW)


def _session(gateway: Any, route: Any, environ: dict[str, Any], start_response: StartResponse,
             msg_id: Any = None, principal: Any = None) -> tuple[Session | None, Any]:
    sid = environ.get("HTTP_MCP_SESSION_ID")
    if not sid:
        return None, respond_error(start_response, 400, INVALID_REQUEST,
                                   "Bad Request: the Mcp-Session-Id header is required (initialize first)",
                                   msg_id=msg_id)
    session = gateway.sessions.get(sid)
    if session is None or session.prefix != route.prefix:
        return None, respond_error(start_response, 404, INVALID_REQUEST,
                                   "Session not found: it expired or was deleted; initialize again", msg_id=msg_id)
    if not_owner(session, principal):
        return None, forbidden_session(start_response, msg_id)
    return session, None


def _version_error(environ: dict[str, Any], start_response: StartResponse, msg_id: Any = None) -> Any:
    version = environ.get("HTTP_MCP_PROTOCOL_VERSION")
    if version and not versions.supported(version):
        return respond_error(start_response, 400, INVALID_REQUEST,
                             f"Bad Request: unsupported MCP-Protocol-Version {version!r} "
                             f"(supported: {', '.join(versions.HANDSHAKE_VERSIONS)})", msg_id=msg_id)
    return None


def post(gateway: Any, route: Any, environ: dict[str, Any], start_response: StartResponse,
         principal: Any = None) -> Any:
    """POST: one JSON-RPC message (or a batch in 2025-03-26 sessions)."""
    started = time.perf_counter()
    cors = extra_headers(route, environ) if route.cors else []
    message, refused = read_message(gateway, environ, start_response, cors)
    if refused is not None:
        return refused
    if modern.is_modern(request_headers(environ), message):
        return _modern_post(gateway, route, environ, start_response, message, cors, principal, started)
    if isinstance(message, list):
        return _batch(gateway, route, environ, start_response, message, cors, principal)
    try:
        what = jsonrpc.kind(message)
    except JsonRpcError as exc:
        return respond_error(start_response, 400, exc.code, exc.message, msg_id=exc.msg_id, headers=cors)
    if what == jsonrpc.REQUEST and message["method"] == "initialize":
        return _initialize(gateway, route, environ, start_response, message, cors, principal)
    refused = _version_error(environ, start_response, message.get("id"))
    if refused is not None:
        return refused
    session, refused = _session(gateway, route, environ, start_response, message.get("id"), principal)
    if refused is not None:
        return refused
    ctx = attach(gateway, make_context(environ, session, backend_request_headers(route, environ)), session,
                 lambda note, sid=session.id: gateway.sessions.deliver(sid, note))
    if principal is not None:
        ctx.user, ctx.key_id = principal.user, principal.key_id
    gateway.count_method(message.get("method") or "response")
    if what == jsonrpc.RESPONSE:
        gateway.resolve(session.id, message)
        return respond(start_response, 202, headers=cors)
    if what == jsonrpc.REQUEST and message["method"] == "tools/list":
        route = settled_route(gateway, route)
    if what == jsonrpc.REQUEST and _may_notify(route, message, environ):
        return _streamed(gateway, route, session, message, ctx, principal, start_response, cors)
    ctx.stream_text = True  # answered below by respond_json, which writes a streamed text as it arrives
    reply = core.dispatch(route, session, message, ctx, gateway.observe, principal, what=what)
    if what != jsonrpc.REQUEST:
        return respond(start_response, 202, headers=cors)
    if message["method"] == "logging/setLevel":
        gateway.sessions.save(session)
    gateway.metrics.request_latency.observe(time.perf_counter() - started)
    return respond_json(start_response, 200, reply, headers=cors)


def _modern_post(gateway: Any, route: Any, environ: dict[str, Any], start_response: StartResponse,
                 message: Any, cors: list, principal: Any, started: float) -> Any:
    """A 2026-07-28 POST: one request checked and answered on its own, as JSON (no session, none minted)."""
    if isinstance(message, list):
        return respond_error(start_response, 400, INVALID_REQUEST,
                             "invalid request: the body must be a single JSON-RPC request or notification "
                             "(no batches in 2026-07-28)", headers=cors)
    try:
        what = jsonrpc.kind(message)
    except JsonRpcError as exc:
        return respond_error(start_response, 400, exc.code, exc.message, msg_id=exc.msg_id, headers=cors)
    if what == jsonrpc.NOTIFICATION:
        return respond(start_response, 202, headers=cors)
    if what == jsonrpc.RESPONSE:
        return respond_error(start_response, 400, INVALID_REQUEST, "invalid request: the server sent no request "
                             "to answer (2026-07-28 servers send none)", msg_id=message.get("id"), headers=cors)
    gateway.count_method(message["method"])
    try:
        envelope = modern.classify(message, request_headers(environ))
    except JsonRpcError as exc:
        reply = jsonrpc.error(exc.msg_id, exc.code, exc.message, exc.data)
        return respond(start_response, modern.http_status(exc.code), jsonrpc.dumps(reply), headers=cors)
    if message["method"] == "subscriptions/listen":
        return _listen(gateway, route, environ, start_response, message, cors, principal)
    ctx = make_context(environ, None, backend_request_headers(route, environ))
    ctx.protocol_version = envelope.protocol_version
    ctx.request_id = f"modern-{next(_modern_ids)}"  # unique in this process: upstreams map cancellations by it
    if principal is not None:
        ctx.user, ctx.key_id = principal.user, principal.key_id
    if message["method"] == "tools/list":
        route = settled_route(gateway, route)
    if message["method"] in _MODERN_STREAMED \
            and core.modern_may_notify(route, envelope, message["method"], message.get("params") or {}):
        return _modern_streamed(gateway, route, environ, start_response, message, envelope, ctx, principal, cors,
                                started)
    # Nothing can notify before the answer (e.g. a REST tool without progress or logs): run inline and
    # answer with JSON, no greenlet and no queue. The tool timeout bounds the call.
    ctx.stream_text = True  # respond_json writes a streamed text as it arrives
    reply = core.dispatch_modern(route, message, envelope, ctx, gateway.observe, principal)
    gateway.metrics.request_latency.observe(time.perf_counter() - started)
    return respond_json(start_response, modern.status_of(reply), reply, headers=cors)


_modern_ids = itertools.count(1)
#: Modern methods that call a backend: when they may notify (progress, logs; ``core.modern_may_notify``) they run
#: beside their answer and are cancelled when the client hangs up.
_MODERN_STREAMED = frozenset({"tools/call", "prompts/get", "resources/read", "completion/complete"})
#: How often a waiting modern request checks whether its client hung up.
WATCH_INTERVAL = 0.2
#: How often an idle ``subscriptions/listen`` stream checks whether its client hung up.
LISTEN_WATCH = 1.0


def _modern_streamed(gateway: Any, route: Any, environ: dict[str, Any], start_response: StartResponse,
                     message: dict[str, Any], envelope: modern.Envelope, ctx: Any, principal: Any,
                     cors: list, started: float) -> Any:
    """Run a modern request beside its answer: JSON (with its mapped status) when it ends before notifying,
    else an SSE stream of its notifications and then its response. A client that closes the connection
    (before or during the stream) cancels the request (:meth:`Gateway.abandon`). ``request_latency``
    counts answered requests (up to the JSON answer, or to the response event ending the stream)."""
    events: queue.Queue = queue.Queue()
    wants_sse = "text/event-stream" in environ.get("HTTP_ACCEPT", "")

    def notify(note: dict[str, Any]) -> None:
        if wants_sse and modern.relates(envelope, note):
            events.put(note)

    ctx.notify = notify
    ctx.log_level = envelope.log_level  # a modern upstream hop may ask its server for the same level

    def work():
        try:
            reply = core.dispatch_modern(route, message, envelope, ctx, gateway.observe, principal)
        except BaseException as exc:  # noqa: BLE001 - the waiter must always get an answer (a kill included)
            reply = jsonrpc.error_response(message["id"], exc)
        events.put((_DONE, reply))

    worker = gateway.spawn(work)
    tool = (message.get("params") or {}).get("name") if message["method"] == "tools/call" else None

    def next_event(heartbeat: float | None = None) -> Any:
        """The next event; ``None`` once the client hung up; ``b""`` when ``heartbeat`` seconds passed."""
        waited = 0.0
        while True:
            try:
                return events.get(timeout=WATCH_INTERVAL)
            except queue.Empty:
                if client_gone(environ):
                    gateway.abandon(route, ctx, worker, tool=tool)
                    return None
                waited += WATCH_INTERVAL
                if heartbeat is not None and waited >= heartbeat:
                    return b""

    first = next_event()
    if first is None:  # nobody reads this answer: the connection is closed after it
        return respond_error(start_response, 200, -32800, "request cancelled: the client closed the connection",
                         msg_id=message["id"], headers=[("Connection", "close"), *cors])
    if isinstance(first, tuple) and first[0] is _DONE:
        gateway.metrics.request_latency.observe(time.perf_counter() - started)
        return respond_json(start_response, modern.status_of(first[1]), first[1], headers=cors)
    start_response("200 OK", [*SSE_HEADERS, *cors])

    def stream():
        item, finished = first, False
        try:
            while item is not None:
                if isinstance(item, tuple) and item[0] is _DONE:
                    finished = True
                    gateway.metrics.request_latency.observe(time.perf_counter() - started)
                    yield sse_event(item[1])
                    return
                yield b": ping\n\n" if item == b"" else sse_event(item)
                item = next_event(gateway.sse_heartbeat)
            finished = True  # next_event already abandoned the request
        finally:
            if not finished:  # the server could not write to the client: it is gone
                gateway.abandon(route, ctx, worker, tool=tool)

    return stream()


def _listen(gateway: Any, route: Any, environ: dict[str, Any], start_response: StartResponse,
            message: dict[str, Any], cors: list, principal: Any = None) -> Any:
    """``subscriptions/listen``: an SSE stream that acknowledges the honoured filter, then carries
    list-changed notifications of this prefix and updates of its subscribed resources until the client
    closes it (or the gateway ends it)."""
    from ..app import CLOSED

    if "text/event-stream" not in environ.get("HTTP_ACCEPT", ""):
        return respond_error(start_response, 406, INVALID_REQUEST,
                             "subscriptions/listen answers with an SSE stream: Accept must list text/event-stream",
                             msg_id=message["id"], headers=cors)
    sub_id = message["id"]
    try:
        accepted = core.listen_filter(route, message.get("params") or {})
    except JsonRpcError as exc:
        reply = jsonrpc.error(sub_id, exc.code, exc.message, exc.data)
        return respond(start_response, modern.http_status(exc.code), jsonrpc.dumps(reply), headers=cors)
    # Resource subscriptions are in place upstream before the acknowledgement is sent.
    try:
        listener = gateway.listen(route.prefix, sub_id, accepted, core.subscribable(route), owner_of(principal))
    except SessionsFull as exc:
        return respond_error(start_response, exc.status, jsonrpc.SERVER_BUSY, str(exc), msg_id=sub_id,
                             headers=[("Retry-After", "10"), *cors])
    tag = {modern.SUBSCRIPTION_ID: sub_id}
    start_response("200 OK", [*SSE_HEADERS, *cors])

    def final() -> bytes:
        result = modern.with_server_meta({}, core.SERVER_INFO)
        result["_meta"].update(tag)
        return sse_event(jsonrpc.result(sub_id, result))

    def encode(item: Any) -> tuple[bytes, bool]:
        if item is CLOSED:
            return final(), True
        return (b": ping\n\n", False) if item is detached.HEARTBEAT else (sse_event(item), False)

    def stream():
        handed_off = False
        try:
            yield sse_event({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                             "params": {"_meta": tag, "notifications": accepted}})
            sock = detached.detach(environ)
            if sock is not None:  # idle from here: no greenlet, no per-stream timer (transports.detached)
                handed_off = True
                detached.interval = gateway.sse_heartbeat
                sink = detached.DetachedStream(sock, encode, lambda: gateway.unlisten(listener))
                waiting, listener.queue = listener.queue, sink
                while not waiting.empty():
                    sink.put(waiting.get_nowait())
                sink.start()
                return
            quiet = 0.0
            while True:
                try:
                    item = listener.queue.get(timeout=LISTEN_WATCH)
                except queue.Empty:
                    if client_gone(environ):
                        return
                    quiet += LISTEN_WATCH
                    if quiet >= gateway.sse_heartbeat:
                        quiet = 0.0
                        yield b": ping\n\n"
                    continue
                if item is CLOSED:
                    yield final()
                    return
                yield sse_event(item)
        finally:
            if not handed_off:
                gateway.unlisten(listener)

    return stream()


def _may_notify(route: Any, message: dict[str, Any], environ: dict[str, Any]) -> bool:
    """Whether a request may produce progress or log notifications before its result (upstream MCP tools)."""
    if message["method"] not in ("tools/call", "prompts/get", "resources/read", "completion/complete"):
        return False
    if "text/event-stream" not in environ.get("HTTP_ACCEPT", ""):
        return False
    if message["method"] == "tools/call":
        entry = route.tools.get((message.get("params") or {}).get("name"))
        return entry is not None and hasattr(entry.backend, "set_logging_level")
    return any(hasattr(b, "set_logging_level") for b in route.backends)


_DONE = object()


def _streamed(gateway: Any, route: Any, session: Session, message: dict[str, Any], ctx: Any, principal: Any,
              start_response: StartResponse, cors: list) -> Any:
    """Answer with JSON when the call finishes before notifying, else with an SSE stream of its notifications."""
    events: queue.Queue = queue.Queue()
    attach(gateway, ctx, session, events.put)

    def work():
        try:
            events.put((_DONE, core.dispatch(route, session, message, ctx, gateway.observe, principal)))
        except BaseException as exc:  # noqa: BLE001 - the waiter must always get an answer
            events.put((_DONE, jsonrpc.error_response(message["id"], exc)))

    gateway.spawn(work)
    first = events.get()
    if isinstance(first, tuple) and first[0] is _DONE:
        return respond_json(start_response, 200, first[1], headers=cors)
    start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"), *cors])

    def stream():
        item = first
        while True:
            if isinstance(item, tuple) and item[0] is _DONE:
                yield sse_event(item[1])
                return
            yield sse_event(item)
            item = events.get()

    return stream()


def _initialize(gateway: Any, route: Any, environ: dict[str, Any], start_response: StartResponse,
                message: dict[str, Any], cors: list, principal: Any = None) -> Any:
    gateway.count_method("initialize")
    refusal = initialize_refusal(gateway, message)
    if refusal is not None:
        return respond(start_response, 413, jsonrpc.dumps(refusal), headers=cors)
    session = Session(id=new_id(), prefix=route.prefix, transport="streamable", owner=owner_of(principal))
    ctx = make_context(environ, session, backend_request_headers(route, environ))
    reply = core.dispatch(route, session, message, ctx, gateway.observe)
    if "result" not in reply:
        return respond_json(start_response, 200, reply, headers=cors)
    refused = create_session(gateway, session, start_response, msg_id=message["id"], headers=cors)
    if refused is not None:
        return refused
    gateway.metrics.sessions.inc()
    headers = [("Mcp-Session-Id", session.id), *cors]
    return respond_json(start_response, 200, reply, headers=headers)


def _batch(gateway: Any, route: Any, environ: dict[str, Any], start_response: StartResponse,
           messages: list, cors: list, principal: Any = None) -> Any:
    if not messages:
        return respond_error(start_response, 400, INVALID_REQUEST, "invalid request: empty batch", headers=cors)
    if any(isinstance(m, dict) and m.get("method") == "initialize" for m in messages):
        return respond_error(start_response, 400, INVALID_REQUEST,
                             "invalid request: initialize must not be part of a batch", headers=cors)
    session, refused = _session(gateway, route, environ, start_response, principal=principal)
    if refused is not None:
        return refused
    if not versions.allows_batch(session.protocol_version):
        return respond_error(start_response, 400, INVALID_REQUEST,
                             f"invalid request: JSON-RPC batches are not part of protocol version "
                             f"{session.protocol_version} (only 2025-03-26)", headers=cors)
    replies = []
    headers = backend_request_headers(route, environ)
    for position, message in enumerate(messages):
        if position:
            pause()  # one client's batch must not hold the other clients' requests
        ctx = attach(gateway, make_context(environ, session, headers), session,
                     lambda note, sid=session.id: gateway.sessions.deliver(sid, note))
        if principal is not None:
            ctx.user, ctx.key_id = principal.user, principal.key_id
        if isinstance(message, dict):
            gateway.count_method(message.get("method") or "response")
            if "method" not in message and ("result" in message or "error" in message):
                gateway.resolve(session.id, message)
                continue
        reply = core.dispatch(route, session, message, ctx, gateway.observe, principal)
        if reply is not None:
            replies.append(reply)
    if not replies:
        return respond(start_response, 202, headers=cors)
    return respond(start_response, 200, jsonrpc.dumps(replies), headers=cors)


def get(gateway: Any, route: Any, environ: dict[str, Any], start_response: StartResponse,
        principal: Any = None) -> Any:
    """GET: the server-to-client stream of a session (list_changed and other notifications)."""
    if "text/event-stream" not in environ.get("HTTP_ACCEPT", ""):
        return respond_error(start_response, 405, INVALID_REQUEST,
                             "GET needs Accept: text/event-stream (the server-to-client stream)", headers=ALLOW)
    refused = _version_error(environ, start_response)
    if refused is not None:
        return refused
    session, refused = _session(gateway, route, environ, start_response, principal=principal)
    if refused is not None:
        return refused
    headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
               ("X-Accel-Buffering", "no"), *extra_headers(route, environ)]
    start_response("200 OK", headers)
    return gateway.stream(session.id, first=b": stream open\n\n", environ=environ)


def delete(gateway: Any, route: Any, environ: dict[str, Any], start_response: StartResponse,
           principal: Any = None) -> Any:
    """DELETE: end the session."""
    session, refused = _session(gateway, route, environ, start_response, principal=principal)
    if refused is not None:
        return refused
    gateway.end_session(session, route)
    return respond(start_response, 200, headers=extra_headers(route, environ))
