"""A small synchronous MCP client over stdio, Streamable HTTP and HTTP+SSE, in both eras of MCP.

It uses threads and blocking IO only (no asyncio), so the same code runs in a
notebook, a test, Streamlit and the gevent-patched gateway, where its threads
become greenlets. One reader thread per connection hands each response to the
caller waiting for its id; notifications go to ``on_notification`` and
server→client requests (sampling, elicitation, roots) to ``on_request``.

Two eras (``mode``): the handshake revisions (``legacy``: ``initialize``, a session) and the
stateless 2026-07-28 (every request carries its version, capabilities and client info in
``_meta`` and, on HTTP, in headers). ``mode="auto"`` (the default) probes ``server/discover``
first and falls back to ``initialize``, like the official SDK's client.

Try a gateway from a notebook:

>>> from mcpgw_sdk.client import McpClient
>>> with McpClient("http://127.0.0.1:5235/gateway/user/mcp") as client:  # doctest: +SKIP
...     [tool["name"] for tool in client.list_tools()]
...     client.call_tool("get_user", {"email": "ada@example.com"})

Or a local stdio server:

>>> McpClient("npx", transport="stdio", args=["-y", "@modelcontextprotocol/server-everything"])  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from .errors import McpConnectionError, McpError, McpSessionExpired, McpTimeout
from .mcp_transports import (
    EXPIRED_ERROR,
    META_CLIENT_CAPABILITIES,
    META_CLIENT_INFO,
    META_PROTOCOL_VERSION,
    META_SERVER_INFO,
    MODERN_VERSION,
    TRANSPORT_ERROR,
    Message,
    Slot,
    SseTransport,
    StdioTransport,
    StreamableHttpTransport,
    error_reply,
)
from .redact import redact_text, redact_url

__all__ = ["MODERN_VERSION", "MODES", "McpClient", "McpConnectionError", "McpError", "McpSessionExpired",
           "McpTimeout", "PROTOCOL_VERSION", "SUPPORTED_VERSIONS"]

PROTOCOL_VERSION = "2025-11-25"
SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
TRANSPORTS = ("stdio", "streamable-http", "sse")
#: ``auto`` probes ``server/discover`` and falls back to ``initialize``; the others pick one era.
MODES = ("auto", MODERN_VERSION, "legacy")
#: Legacy methods 2026-07-28 removed: calling them on a modern connection raises at once.
REMOVED_METHODS = ("initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe")

log = logging.getLogger("mcpgw.client")


# ---------------------------------------------------------------------------------------------------- the client


class McpClient:
    """A synchronous MCP client of either era; ``connect()`` (or ``with``) settles the era and connects.

    ``url_or_command`` is a URL for ``streamable-http`` (e.g. ``http://127.0.0.1:5235/P/mcp``) and ``sse``
    (``…/P/sse``), or the program for ``stdio`` (with ``args``; the process gets ``env`` plus a fixed
    ``PATH``, ``HOME`` and ``LANG``, nothing of this process's environment). ``timeout`` (seconds) bounds
    each request unless a call passes its own. ``connector(scheme, host, port)`` (HTTP transports) checks each
    new connection's destination and returns the addresses to dial, or raises to refuse it.
    ``on_notification(msg)`` runs on the reader thread for server notifications: keep it quick and do
    not wait there for answers from this client. ``on_request(msg)`` answers server→client requests
    (``sampling/createMessage``, ``elicitation/create``, ``roots/list``) on its own thread: return the
    result dict or raise :class:`McpError`. ``on_close(exc)`` runs when the connection drops by itself.

    ``mode`` picks the era: ``"auto"`` (default) sends ``server/discover`` with the 2026-07-28 envelope
    and goes modern when the answer's ``supportedVersions`` holds ``2026-07-28``; any JSON-RPC error or
    HTTP 4xx falls back to ``initialize`` (network errors and timeouts fail). ``"2026-07-28"`` is
    modern only, ``"legacy"`` the handshake only. :attr:`era` tells the outcome (``modern``/``legacy``).
    A modern connection has no session: each request carries ``_meta``
    ``io.modelcontextprotocol/protocolVersion``, ``clientCapabilities`` (``client_capabilities``, or a
    call's own) and ``clientInfo`` and, on HTTP, the ``MCP-Protocol-Version``, ``Mcp-Method`` and
    ``Mcp-Name`` headers. Server→client requests do not exist there (a result may be
    ``resultType: "input_required"``, returned as is); ``ping``, ``subscribe``, ``unsubscribe`` and
    ``set_logging_level`` raise :class:`McpError` (-32601); cancelling closes the request's stream.
    HTTP+SSE (``sse``) is legacy only.

    >>> client = McpClient("http://127.0.0.1:5235/gateway/user/mcp").connect()  # doctest: +SKIP
    >>> client.call_tool("echo", {"text": "hi"})["content"][0]["text"]  # doctest: +SKIP
    'hi'
    >>> client.close()  # doctest: +SKIP
    """

    def __init__(self, url_or_command: str, *, transport: str = "streamable-http",
                 headers: dict[str, str] | None = None, env: dict[str, str] | None = None,
                 args: list[str] | None = None, timeout: float = 30,
                 on_notification: Callable[[Message], None] | None = None,
                 on_request: Callable[[Message], dict[str, Any]] | None = None,
                 client_capabilities: dict[str, Any] | None = None,
                 on_close: Callable[[BaseException], None] | None = None,
                 client_info: dict[str, Any] | None = None, cwd: str | None = None,
                 name: str = "mcp", grace: float = 5.0, connector: Callable[[str, str, int], list[str]] | None = None,
                 mode: str = "auto"):
        if transport not in TRANSPORTS:
            raise ValueError(f"transport: {transport!r} is not one of {', '.join(TRANSPORTS)}")
        if mode not in MODES:
            raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
        if transport == "sse" and mode == MODERN_VERSION:
            raise ValueError("mode: HTTP+SSE (transport 'sse') speaks the legacy revisions only")
        self.mode = "legacy" if transport == "sse" else mode
        #: ``modern`` or ``legacy`` once connected (``None`` before).
        self.era: str | None = None
        self.target = url_or_command
        self.transport = transport
        self.timeout = timeout
        self.on_notification = on_notification
        self.on_request = on_request
        self.on_close = on_close
        self.client_capabilities = dict(client_capabilities or {})
        self.client_info = client_info or {"name": "mcpgw", "version": _version()}
        self.protocol_version: str | None = None
        self.supported_versions: list[str] = []
        self.server_info: dict[str, Any] = {}
        self.server_capabilities: dict[str, Any] = {}
        self.instructions: str | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[Any, Slot] = {}
        self._related: dict[Any, Callable[[Message], None]] = {}
        self._related_requests: dict[Any, Callable[[Message], dict[str, Any]]] = {}
        self._progress: dict[Any, Callable[[Message], None]] = {}
        self._closed = False
        self._started = False
        self.close_reason: BaseException | None = None
        if transport == "stdio":
            self._transport: Any = StdioTransport(url_or_command, args=args or [], env=env, cwd=cwd, grace=grace,
                                                   name=name)
        elif transport == "sse":
            self._transport = SseTransport(url_or_command, headers=headers, timeout=timeout, name=name,
                                           connector=connector)
        else:
            self._transport = StreamableHttpTransport(url_or_command, headers=headers, timeout=timeout, name=name,
                                                      connector=connector)

    def __repr__(self) -> str:
        state = "closed" if self._closed else (f"connected, {self.era}" if self.protocol_version else "new")
        return f"<McpClient {self.transport} {self.target!r} {state}>"

    def __enter__(self) -> McpClient:
        return self.connect() if not self._started else self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- connection

    def connect(self) -> McpClient:
        """Start the transport and settle the era (see ``mode``); return ``self``.

        Modern: ``server/discover`` gives the server's capabilities, info and instructions.
        Legacy: ``initialize`` asks for protocol ``2025-11-25`` and accepts any older version the
        server answers with that this client speaks (anything else closes the connection with
        :class:`McpError`), then ``notifications/initialized``.
        """
        self._started = True
        self._transport.start(self._deliver, self._transport_closed)
        if self.mode != "legacy":
            try:
                if self._discover():
                    return self
            except BaseException:
                self.close()
                raise
        self._initialize()
        return self

    def _discover(self) -> bool:
        """Probe ``server/discover``; ``True`` when the connection is now modern, ``False`` to fall back."""
        try:
            result = self.request("server/discover", self._with_envelope({}, None))
        except McpConnectionError as exc:
            status = exc.data.get("status") if isinstance(exc.data, dict) else None
            if self.mode == "auto" and isinstance(status, int) and 400 <= status < 500:
                log.info("%s: server/discover answered HTTP %s; using initialize", redact_url(self.target), status)
                return False
            raise
        except McpTimeout:
            raise
        except McpError as exc:
            if self.mode == "auto":
                log.info("%s: server/discover failed (%s); using initialize", redact_url(self.target),
                         redact_text(str(exc)))
                return False
            raise
        versions = result.get("supportedVersions")
        if not isinstance(versions, list) or MODERN_VERSION not in versions:
            if self.mode == "auto":
                return False
            raise McpError(-32022, f"the server does not support {MODERN_VERSION} (it supports {versions!r})",
                           {"supported": versions, "requested": MODERN_VERSION})
        meta = result.get("_meta") if isinstance(result.get("_meta"), dict) else {}
        self.era = "modern"
        self.protocol_version = MODERN_VERSION
        self.supported_versions = [str(v) for v in versions]
        self.server_info = meta.get(META_SERVER_INFO) or result.get("serverInfo") or {}
        self.server_capabilities = result.get("capabilities") or {}
        self.instructions = result.get("instructions")
        self._transport.negotiated(MODERN_VERSION, self._deliver, self._transport_closed)
        return True

    def _initialize(self) -> None:
        try:
            result = self.request("initialize", {"protocolVersion": PROTOCOL_VERSION,
                                                 "capabilities": self.client_capabilities,
                                                 "clientInfo": self.client_info})
            version = result.get("protocolVersion")
            if version not in SUPPORTED_VERSIONS:
                raise McpError(-32602, f"the server answered protocol version {version!r}; this client speaks "
                                       f"{', '.join(SUPPORTED_VERSIONS)}")
        except BaseException:
            self.close()
            raise
        self.era = "legacy"
        self.protocol_version = version
        self.server_info = result.get("serverInfo") or {}
        self.server_capabilities = result.get("capabilities") or {}
        self.instructions = result.get("instructions")
        self.notify("notifications/initialized")
        self._transport.negotiated(version, self._deliver, self._transport_closed)

    @property
    def modern(self) -> bool:
        """Whether this connection speaks the stateless 2026-07-28 revision."""
        return self.era == "modern"

    def _with_envelope(self, params: dict[str, Any] | None, capabilities: dict[str, Any] | None,
                       ) -> dict[str, Any]:
        """``params`` with the 2026-07-28 ``_meta`` envelope (this client's keys replace any given)."""
        params = dict(params or {})
        meta = dict(params.get("_meta") or {})
        meta[META_PROTOCOL_VERSION] = MODERN_VERSION
        meta[META_CLIENT_CAPABILITIES] = dict(self.client_capabilities if capabilities is None else capabilities)
        meta[META_CLIENT_INFO] = dict(self.client_info)
        params["_meta"] = meta
        return params

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by :meth:`close` or because it dropped)."""
        return self._closed

    @property
    def pid(self) -> int | None:
        """The process id of a stdio server (``None`` on HTTP)."""
        return self._transport.pid

    @property
    def session_id(self) -> str | None:
        """The ``Mcp-Session-Id`` the server gave (Streamable HTTP only)."""
        return getattr(self._transport, "session_id", None)

    def close(self) -> None:
        """End the session: DELETE it (legacy Streamable HTTP) or stop the process (stdio); fail waiting calls."""
        if self._closed:
            return
        self._closed = True
        try:
            self._transport.close()
        finally:
            self._fail_pending("the client closed the connection")

    def _transport_closed(self, exc: BaseException) -> None:
        if self._closed:
            return
        self._closed = True
        self.close_reason = exc
        log.info("%s: connection closed: %s", self.target, exc)
        self._fail_pending(str(exc))
        try:
            self._transport.close()
        except Exception:  # noqa: BLE001 - already broken
            pass
        if self.on_close:
            self.on_close(exc)

    def _fail_pending(self, reason: str) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for request_id, slot in pending.items():
            slot.set(error_reply(request_id, f"connection closed: {reason}"))

    # -- messages

    def next_id(self) -> int:
        """A fresh request id (pass it to :meth:`request` to know the id before the call returns)."""
        with self._lock:
            return next(self._ids)

    def _deliver(self, message: Any, related: Any) -> None:
        if isinstance(message, list):
            for item in message:
                self._deliver(item, related)
            return
        if not isinstance(message, dict):
            return
        method = message.get("method")
        if method is None:
            with self._lock:
                slot = self._pending.pop(message.get("id"), None)
            if slot is not None:
                slot.set(message)
            return
        if "id" in message:
            answer = self._related_requests.get(related) if related is not None else None
            threading.Thread(target=self._answer, args=(message, answer or self.on_request), daemon=True,
                             name="mcp-server-request").start()
            return
        handler = None
        if method == "notifications/progress":
            handler = self._progress.get((message.get("params") or {}).get("progressToken"))
        if handler is None and related is not None:
            handler = self._related.get(related)
        try:
            (handler or self.on_notification or _ignore)(message)
        except Exception:  # noqa: BLE001 - a failing callback must not kill the reader
            log.exception("%s: notification handler failed for %s", self.target, method)

    def _answer(self, message: Message, answer: Callable[[Message], dict[str, Any]] | None) -> None:
        reply: Message = {"jsonrpc": "2.0", "id": message["id"]}
        try:
            if message["method"] == "ping":
                reply["result"] = {}
            elif answer is None:
                raise McpError(-32601, f"this client does not handle {message['method']}")
            else:
                reply["result"] = answer(message) or {}
        except McpError as exc:
            reply["error"] = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                reply["error"]["data"] = exc.data
        except Exception as exc:  # noqa: BLE001 - every request gets an answer
            log.exception("%s: answering %s failed", self.target, message["method"])
            reply["error"] = {"code": -32603, "message": f"{type(exc).__name__}: {exc}"}
        try:
            self._send(reply)
        except McpError as exc:
            log.warning("%s: could not answer %s: %s", self.target, message["method"], exc)

    def _send(self, message: Message, timeout: float | None = None) -> None:
        if self._closed:
            raise McpConnectionError(f"{self.target}: the connection is closed"
                                     + (f" ({self.close_reason})" if self.close_reason else ""))
        self._transport.send(message, timeout)

    def request(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None,
                request_id: Any = None, on_message: Callable[[Message], None] | None = None,
                on_request: Callable[[Message], dict[str, Any]] | None = None,
                client_capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and wait for its result; raise :class:`McpError` for an error answer.

        On a modern connection the request gets the 2026-07-28 ``_meta`` envelope, declaring
        ``client_capabilities`` when given (else the client's own); the result's ``resultType``
        must be ``complete`` (or absent) or ``input_required``, anything else raises
        :class:`McpError`. The legacy-only methods raise :class:`McpError` (-32601) there.

        ``on_message`` receives this request's own notifications (progress for its
        ``_meta.progressToken``; on Streamable HTTP also the logs sent on its stream), and
        ``on_request`` answers the server→client requests sent on its Streamable HTTP stream
        (others go to the client's ``on_request``).
        On timeout the request is cancelled at the server and :class:`McpTimeout` is raised.

        >>> client.request("tools/list")["tools"]  # doctest: +SKIP
        """
        if self.era == "modern":
            if method in REMOVED_METHODS:
                raise McpError(-32601, f"{method} does not exist in MCP {MODERN_VERSION} (this connection is "
                                       "modern; use mode='legacy' for it)")
            params = self._with_envelope(params, client_capabilities)
        request_id = self.next_id() if request_id is None else request_id
        message: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        token = ((params or {}).get("_meta") or {}).get("progressToken")
        slot = Slot()
        with self._lock:
            self._pending[request_id] = slot
            if on_message is not None:
                self._related[request_id] = on_message
                if token is not None:
                    self._progress[token] = on_message
            if on_request is not None:
                self._related_requests[request_id] = on_request
        wait = self.timeout if timeout is None else timeout
        try:
            self._send(message, wait)
            if not slot.event.wait(wait):
                with self._lock:
                    self._pending.pop(request_id, None)
                if method != "initialize":
                    self._cancel_quietly(request_id, f"timed out after {wait:g}s")
                raise McpTimeout(f"{method} got no answer from {self.target} within {wait:g}s")
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
                self._related.pop(request_id, None)
                self._related_requests.pop(request_id, None)
                if token is not None:
                    self._progress.pop(token, None)
        reply = slot.message or {}
        if "error" in reply:
            error = reply["error"] or {}
            code, text = error.get("code", -32603), error.get("message", "error")
            if error.get("data") == TRANSPORT_ERROR:
                raise McpConnectionError(text)
            if isinstance(error.get("data"), dict) and error["data"].get("mcpgw") == TRANSPORT_ERROR["mcpgw"]:
                raise McpConnectionError(text, error["data"])
            if error.get("data") == EXPIRED_ERROR:
                raise McpSessionExpired(text)
            raise McpError(code, text, error.get("data"))
        result = reply.get("result") or {}
        if self.era == "modern" or method == "server/discover":
            kind = result.get("resultType", "complete")
            if kind not in ("complete", "input_required"):
                raise McpError(-32603, f"{method}: {self.target} answered an unknown resultType {kind!r}")
        return result

    def listen(self, notifications: dict[str, Any], on_message: Callable[[Message], None], *,
               on_end: Callable[[Message | None], None] | None = None) -> Any:
        """Open a ``subscriptions/listen`` stream (modern only); return its request id.

        ``notifications`` is the filter (``{"toolsListChanged": True, "resourceSubscriptions": [...]}``).
        Its messages (``notifications/subscriptions/acknowledged`` first) go to ``on_message`` on
        Streamable HTTP, to ``on_notification`` on stdio. ``on_end(answer)`` runs once the stream ends
        (the server's final answer, an error answer, or ``None``). :meth:`cancel` with the id closes it.
        """
        if self.era != "modern":
            raise McpError(-32601, "subscriptions/listen needs a 2026-07-28 connection")
        request_id = f"listen-{self.next_id()}"
        message: Message = {"jsonrpc": "2.0", "id": request_id, "method": "subscriptions/listen",
                            "params": self._with_envelope({"notifications": dict(notifications)}, None)}
        slot = Slot()
        with self._lock:
            self._pending[request_id] = slot
            self._related[request_id] = on_message

        def wait() -> None:
            slot.event.wait()
            with self._lock:
                self._pending.pop(request_id, None)
                self._related.pop(request_id, None)
            if on_end is not None:
                try:
                    on_end(slot.message)
                except Exception:  # noqa: BLE001 - a failing callback must not kill the waiter
                    log.exception("%s: the end-of-listen callback failed", self.target)

        threading.Thread(target=wait, daemon=True, name="mcp-listen").start()
        try:
            self._send(message, None)
        except McpError as exc:
            slot.set(error_reply(request_id, str(exc)))
            raise
        return request_id

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        """Send a notification (no answer expected)."""
        message: Message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)

    def cancel(self, request_id: Any, reason: str | None = None) -> None:
        """Tell the server to stop working on ``request_id`` (``notifications/cancelled``).

        A caller of this client still waiting for that request gets :class:`McpError` with code
        -32800 at once (servers do not answer cancelled requests).
        """
        params: dict[str, Any] = {"requestId": request_id}
        if reason:
            params["reason"] = reason
        with self._lock:
            slot = self._pending.pop(request_id, None)
        if slot is not None:
            slot.set(error_reply(request_id, f"request cancelled: {reason or 'no reason given'}", -32800))
        if self.era == "modern" and hasattr(self._transport, "abort"):
            # 2026-07-28 over HTTP has no client notifications: closing the answer stream cancels.
            self._transport.abort(request_id)
            return
        self.notify("notifications/cancelled", params)

    def _cancel_quietly(self, request_id: Any, reason: str) -> None:
        if self.era == "modern" and hasattr(self._transport, "abort"):
            self._transport.abort(request_id)
            return
        try:
            self.notify("notifications/cancelled", {"requestId": request_id, "reason": reason})
        except McpError:
            pass

    # -- MCP methods

    def _list(self, method: str, key: str, timeout: float | None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(1000):
            result = self.request(method, {"cursor": cursor} if cursor else None, timeout=timeout)
            items.extend(result.get(key) or [])
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return items

    def ping(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Check the server answers (``ping``; legacy only: modern connections raise :class:`McpError`)."""
        return self.request("ping", timeout=timeout)

    def list_tools(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every tool the server offers (all pages of ``tools/list``).

        >>> [t["name"] for t in client.list_tools()]  # doctest: +SKIP
        ['echo', 'get_user']
        """
        return self._list("tools/list", "tools", timeout)

    def call_tool(self, name: str, arguments: dict[str, Any] | None = None, *, progress_token: Any = None,
                  timeout: float | None = None, meta: dict[str, Any] | None = None, request_id: Any = None,
                  on_message: Callable[[Message], None] | None = None,
                  on_request: Callable[[Message], dict[str, Any]] | None = None,
                  client_capabilities: dict[str, Any] | None = None,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a tool and return its ``CallToolResult`` dict (a failing tool gives ``isError: true``).

        With ``progress_token``, progress notifications go to ``on_message`` (or ``on_notification``).
        ``client_capabilities`` (modern only) declares other capabilities than the client's for this call.
        ``extra`` adds params (a 2026-07-28 retry's ``inputResponses`` and ``requestState``); a modern
        server may answer ``resultType: "input_required"``, returned as is.

        >>> client.call_tool("echo", {"text": "hi"})  # doctest: +SKIP
        {'content': [{'type': 'text', 'text': 'hi'}], 'isError': False}
        """
        params: dict[str, Any] = {**(extra or {}), "name": name, "arguments": arguments or {}}
        meta = dict(meta or {})
        if progress_token is not None:
            meta["progressToken"] = progress_token
        if meta:
            params["_meta"] = meta
        return self.request("tools/call", params, timeout=timeout, request_id=request_id, on_message=on_message,
                            on_request=on_request, client_capabilities=client_capabilities)

    def list_prompts(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every prompt the server offers."""
        return self._list("prompts/list", "prompts", timeout)

    def get_prompt(self, name: str, arguments: dict[str, str] | None = None, *,
                   timeout: float | None = None) -> dict[str, Any]:
        """Render a prompt: ``{"description": …, "messages": [...]}``."""
        params: dict[str, Any] = {"name": name}
        if arguments:
            params["arguments"] = arguments
        return self.request("prompts/get", params, timeout=timeout)

    def list_resources(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every concrete resource the server lists."""
        return self._list("resources/list", "resources", timeout)

    def list_resource_templates(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every resource template (``uriTemplate``) the server lists."""
        return self._list("resources/templates/list", "resourceTemplates", timeout)

    def read_resource(self, uri: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Read a resource: ``{"contents": [{"uri", "mimeType", "text" | "blob"}]}``."""
        return self.request("resources/read", {"uri": uri}, timeout=timeout)

    def subscribe(self, uri: str) -> dict[str, Any]:
        """Ask for ``notifications/resources/updated`` about ``uri`` (legacy only)."""
        return self.request("resources/subscribe", {"uri": uri})

    def unsubscribe(self, uri: str) -> dict[str, Any]:
        """Stop the updates :meth:`subscribe` asked for (legacy only)."""
        return self.request("resources/unsubscribe", {"uri": uri})

    def complete(self, ref: dict[str, Any], argument: dict[str, Any], context: dict[str, Any] | None = None,
                 ) -> dict[str, Any]:
        """Argument completion: ``ref`` is ``{"type": "ref/prompt", "name": …}`` or a ``ref/resource``.

        >>> client.complete({"type": "ref/prompt", "name": "p"}, {"name": "city", "value": "Pa"})  # doctest: +SKIP
        {'completion': {'values': ['Paris'], 'total': 1, 'hasMore': False}}
        """
        params: dict[str, Any] = {"ref": ref, "argument": argument}
        if context:
            params["context"] = context
        return self.request("completion/complete", params)

    def set_logging_level(self, level: str) -> dict[str, Any]:
        """Ask the server for log notifications at ``level`` and above (``debug`` … ``emergency``; legacy only)."""
        return self.request("logging/setLevel", {"level": level})


def _ignore(message: Message) -> None:
    return None


def _version() -> str:
    try:
        from . import __version__

        return __version__
    except ImportError:  # pragma: no cover - during partial imports
        return "0"
