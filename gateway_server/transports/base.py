"""WSGI plumbing the transports share: responses, bodies, request checks, call contexts."""

from __future__ import annotations

import errno
import logging
import sys
import time
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

from ..backends import CallContext
from ..mcp import jsonrpc
from ..mcp.sealing import principal_id as owner_of  # who a session belongs to
from ..origin import cors_headers, host_allowed, origin_allowed
from ..sessions import Session, SessionsFull
from ..statuses import status_line

StartResponse = Callable[..., Any]
JSON = "application/json"
log = logging.getLogger("mcpgw.gateway")


def respond(start_response: StartResponse, code: int, body: bytes = b"", *, content_type: str | None = JSON,
            headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    """Send a complete response."""
    out = list(headers)
    if body and content_type:
        out.append(("Content-Type", content_type))
    out.append(("Content-Length", str(len(body))))
    start_response(status_line(code), out)
    return [body]


#: JSON answers longer than this many characters are encoded and sent a slice at a time (see respond_json).
SLICE = 1 << 20


def respond_json(start_response: StartResponse, code: int, message: Any, *,
                 headers: Iterable[tuple[str, str]] = ()) -> Iterable[bytes]:
    """Send a JSON-RPC message as a complete JSON response.

    A large answer (a 20 MB backend result) is encoded to UTF-8 one slice at a time as it is
    sent, so its whole encoded copy never sits beside its text. A text still arriving from its
    backend (:class:`~gateway_server.mcp.jsonrpc.Streamed`) is escaped and sent as it comes, with
    chunked encoding (its length is not known): see :class:`_Streaming` for what a failure then does.
    """
    parts = _big_texts(message)
    if parts is None:
        text = jsonrpc.dumps_text(message)
        if len(text) <= SLICE:
            try:
                body = text.encode()
            except UnicodeEncodeError:  # a lone surrogate in a short answer
                body = jsonrpc.dumps(message)
            return respond(start_response, code, body, headers=headers)
        parts = [text]
    if any(isinstance(part, jsonrpc.Streamed) for part in parts):
        start_response(status_line(code), [*headers, ("Content-Type", JSON)])
        return _Streaming(parts)
    size = sum(len(part) if part.isascii() else _utf8_size(part) for part in parts)
    start_response(status_line(code), [*headers, ("Content-Type", JSON), ("Content-Length", str(size))])
    return _slices(parts)


def _utf8_size(text: str) -> int:
    return sum(len(text[i:i + SLICE].encode()) for i in range(0, len(text), SLICE))


def _slices(parts: list[str]) -> Iterable[bytes]:
    while parts:
        part = parts.pop(0)  # sent parts are freed as the body goes out
        for i in range(0, len(part), SLICE):
            yield part[i:i + SLICE].encode()


def _escaped(text: str) -> str:
    """``text`` as the inside of a JSON string, as :func:`jsonrpc.dumps` writes it (no quotes)."""
    import json

    if jsonrpc.has_surrogates(text):
        text = jsonrpc.strict_text(text)
    return json.encoder.encode_basestring(text)[1:-1]


class _Streaming:
    """The body of a JSON answer holding texts still arriving from their backends (``jsonrpc.Streamed``).

    Each piece is escaped and sent as it arrives; what the gateway holds at once is one piece, not
    the answer. Once bytes went out, a failure (the backend resets, is too slow, or exceeds
    ``maxResponseBytes``) can no longer become a JSON-RPC error: it is logged and the connection is
    cut without the final chunk, so the client sees a truncated, invalid response, never a complete
    wrong one. Closed early (the client hung up), the backend connections are closed, not pooled.
    """

    def __init__(self, parts: list[Any]):
        self._parts = parts
        self._body = self._run()

    def __iter__(self) -> _Streaming:
        return self

    def __next__(self) -> bytes:
        return next(self._body)

    def _run(self) -> Iterable[bytes]:
        parts = self._parts
        while parts:
            part = parts[0]
            if not isinstance(part, jsonrpc.Streamed):
                parts.pop(0)
                yield from _slices([part])
                continue
            try:
                quote = '"'
                for piece in part.pieces():
                    yield (quote + _escaped(piece)).encode()
                    quote = ""
            except Exception as exc:  # noqa: BLE001 - any failure: bytes are out, only cutting is left
                log.warning("answer cut off after it began: %s", exc)
                # gevent's server closes the connection quietly on this error (as when a client resets)
                raise ConnectionResetError(errno.ECONNRESET, f"answer cut off: {exc}") from None
            parts.pop(0)
            yield (quote + '"').encode()

    def close(self) -> None:
        """Stop: every text not read to its end gives up its backend connection."""
        self._body.close()
        for part in self._parts:
            if isinstance(part, jsonrpc.Streamed):
                part.close()
        self._parts = []


def _big(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    text = item.get("text")
    return isinstance(text, jsonrpc.Streamed) or (isinstance(text, str) and len(text) > SLICE)


def _big_texts(message: Any) -> list[Any] | None:
    """The JSON text of a result whose content holds texts over :data:`SLICE` characters, as parts
    (the envelope's pieces and each big text escaped on its own), so that the big texts are
    escaped once and never copied into one whole document; ``None`` for any other message.
    A text still arriving (``jsonrpc.Streamed``) stays a part of its own, escaped as it is sent.

    json.dumps of a 20 MB text holds its pieces and their joined copy at once: here the text, its
    escaped copy and one slice are the most that exist together.
    """
    result = message.get("result") if isinstance(message, dict) else None
    content = result.get("content") if isinstance(result, dict) else None
    if not isinstance(content, list) or not any(_big(item) for item in content):
        return None
    import secrets

    mark = f"mcpgw-slice-{secrets.token_hex(8)}-"
    big: list[Any] = []
    items = []
    for item in content:
        if _big(item):
            items.append({**item, "text": f"{mark}{len(big)}"})
            big.append(item["text"])
        else:
            items.append(item)
    text = jsonrpc.dumps_text({**message, "result": {**result, "content": items}})
    parts: list[Any] = []
    for index, value in enumerate(big):
        head, _, text = text.partition(f'"{mark}{index}"')
        parts.append(head)
        parts.append(value if isinstance(value, jsonrpc.Streamed) else f'"{_escaped(value)}"')
    parts.append(text)
    return parts


def respond_error(start_response: StartResponse, code: int, rpc_code: int, message: str, *, msg_id: Any = None,
                  headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    """An HTTP error whose body is a JSON-RPC error."""
    return respond(start_response, code, jsonrpc.dumps(jsonrpc.error(msg_id, rpc_code, message)), headers=headers)


class BodyTooLarge(Exception):
    """The request body exceeds the configured limit."""


class BodyIncomplete(Exception):
    """The request body ended, or stopped arriving, before its declared length (or its deadline passed)."""


def _gevent_active() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


class _BodyTimedOut(BodyIncomplete):
    """Thrown by :func:`_arm`'s timer: read_body gives it its message (none is formatted per request)."""


_gevent_hooks: Any = None  # (gevent.get_hub, greenlet.getcurrent) once gevent is known to be active


def _arm(seconds: float) -> Any:
    """A started timer that interrupts this greenlet's blocking read after ``seconds`` (under gevent), else
    ``None``; the caller closes it. A bare loop timer: a ``gevent.Timeout`` costs about twice as much, per request.
    """
    global _gevent_hooks
    if not seconds or seconds <= 0:
        return None
    if _gevent_hooks is None:
        if not _gevent_active():
            return None
        from gevent import get_hub, getcurrent

        _gevent_hooks = (get_hub, getcurrent)
    get_hub, getcurrent = _gevent_hooks
    timer = get_hub().loop.timer(seconds)
    timer.start(getcurrent().throw, _BodyTimedOut)
    return timer


def read_body(environ: dict[str, Any], limit: int, *, timeout: float = 0) -> bytes:
    """The request body; raise BodyTooLarge above ``limit`` bytes (checked before reading when declared).

    Raises BodyIncomplete when the body ends before its ``Content-Length`` or, under gevent,
    has not fully arrived ``timeout`` seconds after reading began (a client that declares more
    than it sends must not hold the request forever). The connection is then marked for closing.
    """
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    size = None
    if length:
        try:
            size = int(length)
        except ValueError:
            size = 0
        if size > limit:
            raise BodyTooLarge
        if not size:
            return b""
    timer = _arm(timeout)
    try:
        data = stream.read(size) if size is not None else stream.read(limit + 1)
    except (OSError, ValueError, BodyIncomplete) as exc:
        environ["mcpgw.body_abandoned"] = True
        if isinstance(exc, _BodyTimedOut):
            raise BodyIncomplete(f"the request body did not arrive within {timeout:g} s") from None
        if isinstance(exc, BodyIncomplete):
            raise
        raise BodyIncomplete("the request body ended before its Content-Length") from None
    finally:
        if timer is not None:
            timer.close()
    if size is not None and len(data) < size:
        environ["mcpgw.body_abandoned"] = True
        raise BodyIncomplete(f"the request body ended after {len(data)} of its {size} bytes (Content-Length)")
    if size is None and len(data) > limit:
        raise BodyTooLarge
    return data


def pause() -> None:
    """Let other requests run between the items of a batch (a greenlet switch under gevent)."""
    time.sleep(0)


def check_request(gateway: Any, route: Any, environ: dict[str, Any],
                  start_response: StartResponse) -> list[bytes] | None:
    """Host and Origin checks: an error response, or ``None`` when the request may proceed."""
    if not host_allowed(environ.get("HTTP_HOST"), local_bind=gateway.local_bind):
        return respond_error(start_response, 421, jsonrpc.INVALID_REQUEST,
                             f"Host {environ.get('HTTP_HOST')!r} is not served by this gateway")
    origin = environ.get("HTTP_ORIGIN")
    if origin and not origin_allowed(origin, gateway.own_origins(environ), route.cors):
        return respond_error(start_response, 403, jsonrpc.INVALID_REQUEST,
                             f"Origin {origin!r} is not allowed for {route.prefix}")
    return None


def extra_headers(route: Any, environ: dict[str, Any]) -> list[tuple[str, str]]:
    """CORS headers to add to a response (none unless the router configures CORS and the origin is allowed)."""
    origin = environ.get("HTTP_ORIGIN")
    return cors_headers(origin, route.cors) if origin and route.cors else []


def request_headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers with lower-case names (built once per request: auth and the call both read them)."""
    out = environ.get("mcpgw.headers")
    if out is not None:
        return out
    out = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key[:5] == "HTTP_"}
    if environ.get("CONTENT_TYPE"):
        out["content-type"] = environ["CONTENT_TYPE"]
    environ["mcpgw.headers"] = out
    return out


def not_owner(session: Any, principal: Any) -> bool:
    """True when ``principal`` is not the caller that opened ``session`` (a session is not a bearer token)."""
    return session.owner != owner_of(principal)


def forbidden_session(start_response: StartResponse, msg_id: Any = None,
                      headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    """The 403 for a session used with another credential than the one that opened it."""
    return respond_error(start_response, 403, jsonrpc.INVALID_REQUEST,
                         "Forbidden: this session was opened with another credential; initialize a new session",
                         msg_id=msg_id, headers=headers)


_backend_headers: Any = None  # mcp_auth.backend_headers, imported at first use (mcp_auth loads PyJWT)


def backend_request_headers(route: Any, environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers as backends and templates may see them: never the gateway credential."""
    global _backend_headers
    if _backend_headers is None:
        from ..mcp_auth import backend_headers as _backend_headers
    return _backend_headers(route.auth, request_headers(environ))


def make_context(environ: dict[str, Any], session: Any, headers: dict[str, str] | None = None) -> CallContext:
    """The :class:`CallContext` of a call made by this request in this session."""
    headers = headers if headers is not None else request_headers(environ)
    cookies: dict[str, str] = {}
    if headers.get("cookie"):
        jar = SimpleCookie()
        try:
            jar.load(headers["cookie"])
            cookies = {k: m.value for k, m in jar.items()}
        except Exception:  # noqa: BLE001 - a malformed cookie header is ignored, not fatal
            cookies = {}
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""))) if environ.get("QUERY_STRING") else {}
    return CallContext(headers=headers, query=query, cookies=cookies, session_id=session.id if session else None,
                       protocol_version=(session.protocol_version if session else "") or "2025-11-25",
                       request_id=headers.get("x-request-id"))


#: How long ``tools/list`` waits, at most, for upstreams that are still making their first connection.
FIRST_CONNECT_WAIT = 5.0


def _first_connecting(route: Any) -> list[Any]:
    # Only the very first attempt: never connected and never failed (a broken upstream is not waited for).
    return [b for b in route.backends if getattr(b, "first_connect_pending", False)]


def settled_route(gateway: Any, route: Any, *, limit: float = FIRST_CONNECT_WAIT) -> Any:
    """``route`` once its upstreams' first connection is over, waiting at most ``limit`` seconds.

    A ``tools/list`` answered while an upstream still starts would show a list without its
    tools (until ``list_changed``, which some clients ignore). The wait ends when the
    snapshot holds a rebuilt route for the prefix (the upstream's tools arrived), when the
    upstream leaves ``connecting``, or at ``min(limit, its connect timeout)``.
    """
    waiting = _first_connecting(route)
    if not waiting:
        return route
    limit = min([limit, *(float(getattr(b, "connect_timeout", limit)) for b in waiting)])
    deadline = time.monotonic() + limit
    while True:
        current = gateway.snapshot.routes.get(route.prefix) or route
        if current is not route or time.monotonic() >= deadline:
            return current
        if not _first_connecting(route):
            # Connected (or failed): the rebuilt route follows the upstream's tools_changed at once.
            deadline = min(deadline, time.monotonic() + 1.0)
        time.sleep(0.05)  # the upstream connects in its own thread; this request just waits its turn


def client_gone(environ: dict[str, Any]) -> bool:
    """Whether the client of this request closed its connection (checked without blocking or reading data).

    Needs the connection's socket in the environ (``mcpgw.socket`` from ``mcpgw serve``,
    ``gunicorn.socket`` from gunicorn); ``False`` when the server gives none.
    """
    import select
    import socket

    sock = environ.get("mcpgw.socket") or environ.get("gunicorn.socket")
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


SSE_HEADERS = (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no"))


def sse_event(message: Any, event: str = "message") -> bytes:
    """One SSE event carrying a JSON-RPC message."""
    return b"event: " + event.encode() + b"\ndata: " + jsonrpc.dumps(message) + b"\n\n"


def authenticate(gateway: Any, route: Any, environ: dict[str, Any],
                 start_response: StartResponse) -> tuple[Any, list[bytes] | None]:
    """The caller's principal (``None`` for an open router), or the 401/403 response to send."""
    if route.auth_mode == "none":
        if gateway.local_bind or gateway.allow_anonymous:
            return None, None
        return None, respond_error(
            start_response, 401, jsonrpc.INVALID_REQUEST,
            f"{route.prefix} has no auth and this gateway listens beyond loopback: configure routers[].auth "
            f"or set MCPGW_ALLOW_ANONYMOUS=true", headers=extra_headers(route, environ))
    from ..mcp_auth import AuthFailure

    try:
        return gateway.authenticate(route, environ), None
    except AuthFailure as exc:
        body = jsonrpc.dumps(exc.body)
        return None, respond(start_response, exc.status, body,
                             headers=[("WWW-Authenticate", exc.www_authenticate), *extra_headers(route, environ)])


def attach(gateway: Any, ctx: CallContext, session: Any, send: Callable[[dict[str, Any]], Any]) -> CallContext:
    """Give a call its ways back to the client: ``notify`` and, when the client declared callbacks, ``request``.

    ``request(method, params)`` sends a server-to-client request (sampling, elicitation, roots) through
    ``send`` and waits for the client's response.
    """
    ctx.notify = send
    caps = session.client_capabilities or {}
    ctx.client_capabilities = caps
    if any(k in caps for k in ("sampling", "elicitation", "roots")):
        ctx.request = lambda method, params, timeout=None: gateway.client_request(session.id, send, method, params,
                                                                                   timeout=timeout)
    return ctx


def admit(gateway: Any, route: Any, environ: dict[str, Any],
          start_response: StartResponse) -> tuple[Any, list[bytes] | None]:
    """Host, Origin and auth checks of every transport request: ``(principal, None)`` or ``(None, response)``."""
    refused = check_request(gateway, route, environ, start_response)
    if refused is not None:
        return None, refused
    return authenticate(gateway, route, environ, start_response)


def read_message(gateway: Any, environ: dict[str, Any], start_response: StartResponse,
                 cors: list) -> tuple[Any, list[bytes] | None]:
    """The request's JSON-RPC message (or batch), or the 413/400 response to send.

    A batch longer than ``gateway.max_batch`` is refused here (-32600), before any item runs.
    """
    try:
        body = read_body(environ, gateway.max_body_bytes, timeout=gateway.body_timeout)
    except BodyTooLarge:
        return None, respond_error(start_response, 413, jsonrpc.INVALID_REQUEST,
                                   f"request body larger than {gateway.max_body_bytes} bytes", headers=cors)
    except BodyIncomplete as exc:
        return None, respond_error(start_response, 400, jsonrpc.PARSE_ERROR, f"Bad Request: {exc}",
                                   headers=[("Connection", "close"), *cors])
    try:
        message = jsonrpc.parse(body)
    except jsonrpc.JsonRpcError as exc:
        return None, respond_error(start_response, 400, exc.code, exc.message, headers=cors)
    if isinstance(message, list) and len(message) > gateway.max_batch:
        return None, respond_error(start_response, 400, jsonrpc.INVALID_REQUEST,
                                   f"invalid request: a batch of {len(message)} messages exceeds the limit of "
                                   f"{gateway.max_batch} (max_batch); send fewer per request", headers=cors)
    return message, None


def initialize_refusal(gateway: Any, message: dict[str, Any]) -> dict[str, Any] | None:
    """The error answer to an ``initialize`` whose params exceed ``gateway.max_initialize_bytes``, else ``None``."""
    size = len(jsonrpc.dumps(message.get("params")))
    if size <= gateway.max_initialize_bytes:
        return None
    return jsonrpc.error(message.get("id"), jsonrpc.INVALID_PARAMS,
                         f"initialize params are {size} bytes of JSON; the limit is {gateway.max_initialize_bytes} "
                         f"(max_initialize_bytes): declare only the capabilities and client info MCP defines")


def create_session(gateway: Any, session: Session, start_response: StartResponse, *, msg_id: Any = None,
                   headers: Iterable[tuple[str, str]] = ()) -> list[bytes] | None:
    """Store a new session within the gateway's session limits, or return the 503/429 answer (nothing evicted)."""
    try:
        gateway.sessions.create(session, gateway.session_limits)
    except SessionsFull as exc:
        return respond_error(start_response, exc.status, jsonrpc.SERVER_BUSY, str(exc), msg_id=msg_id,
                             headers=[("Retry-After", "10"), *headers])
    return None
