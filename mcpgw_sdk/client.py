"""A small synchronous MCP client over stdio, Streamable HTTP and HTTP+SSE.

It uses threads and blocking IO only (no asyncio), so the same code runs in a
notebook, a test, Streamlit and the gevent-patched gateway, where its threads
become greenlets. One reader thread per connection hands each response to the
caller waiting for its id; notifications go to ``on_notification`` and
server→client requests (sampling, elicitation, roots) to ``on_request``.

Try a gateway from a notebook:

>>> from mcpgw_sdk.client import McpClient
>>> with McpClient("http://127.0.0.1:5235/gateway/user/mcp") as client:  # doctest: +SKIP
...     [tool["name"] for tool in client.list_tools()]
...     client.call_tool("get_user", {"email": "ada@example.com"})

Or a local stdio server:

>>> McpClient("npx", transport="stdio", args=["-y", "@modelcontextprotocol/server-everything"])  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin

import urllib3

from .errors import McpgwError

__all__ = ["McpClient", "McpConnectionError", "McpError", "McpSessionExpired", "McpTimeout", "PROTOCOL_VERSION",
           "SUPPORTED_VERSIONS"]

PROTOCOL_VERSION = "2025-11-25"
SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
TRANSPORTS = ("stdio", "streamable-http", "sse")
# What a stdio server inherits from our environment besides the ``env`` it is given:
# enough to find interpreters and home directories, never the gateway's secrets.
INHERITED_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")

log = logging.getLogger("mcpgw.client")
Message = dict[str, Any]


class McpError(McpgwError):
    """Raised when the server answers a request with a JSON-RPC error; carries ``code``, ``message`` and ``data``."""

    def __init__(self, code: int, message: str, data: Any = None):
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{message} (code {code})")


class McpTimeout(McpError, TimeoutError):
    """Raised when a request gets no answer within its timeout (the request is cancelled upstream)."""

    def __init__(self, message: str):
        super().__init__(-32001, message)


class McpConnectionError(McpError, ConnectionError):
    """Raised when the connection fails or closes: process exited, HTTP error, session expired."""

    def __init__(self, message: str, data: Any = None):
        super().__init__(-32000, message, data)


class McpSessionExpired(McpConnectionError):
    """Raised when a Streamable HTTP server no longer knows the session (HTTP 404): reconnect and retry."""


class _Slot:
    __slots__ = ("event", "message")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.message: Message | None = None

    def set(self, message: Message) -> None:
        self.message = message
        self.event.set()


Deliver = Callable[[Any, Any], None]
Closed = Callable[[BaseException], None]


# ---------------------------------------------------------------------------------------------------- transports


class _StdioTransport:
    """A subprocess speaking newline-delimited JSON on stdin/stdout; stderr goes to a logger line by line."""

    def __init__(self, command: str, *, args: list[str], env: dict[str, str] | None, cwd: str | None,
                 grace: float, name: str):
        self.command = command
        self.args = list(args)
        self.env = dict(env or {})
        self.cwd = cwd
        self.grace = grace
        self.name = name
        self.popen: subprocess.Popen | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._write_lock = threading.Lock()
        self._closing = False

    def start(self, deliver: Deliver, closed: Closed) -> None:
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        env.update(self.env)
        try:
            self.popen = subprocess.Popen([self.command, *self.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=env, cwd=self.cwd, start_new_session=True)
        except OSError as exc:
            raise McpConnectionError(f"cannot start {self.command!r}: {exc}") from exc
        stderr_log = logging.getLogger(f"mcpgw.upstream.{self.name}")
        threading.Thread(target=self._read_stderr, args=(stderr_log,), daemon=True,
                         name=f"mcp-stderr-{self.name}").start()
        threading.Thread(target=self._read, args=(deliver, closed), daemon=True, name=f"mcp-stdio-{self.name}").start()

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def _read(self, deliver: Deliver, closed: Closed) -> None:
        assert self.popen and self.popen.stdout
        for line in self.popen.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                log.warning("%s: ignoring a stdout line that is not JSON: %.200r", self.name, line)
                continue
            deliver(message, None)
        try:
            code = self.popen.wait(self.grace)
        except subprocess.TimeoutExpired:
            code = None
        if not self._closing:
            tail = f": {self.stderr_tail[-1]}" if self.stderr_tail else ""
            closed(McpConnectionError(f"process {self.command!r} exited with code {code}{tail}"))

    def _read_stderr(self, stderr_log: logging.Logger) -> None:
        assert self.popen and self.popen.stderr
        for raw in self.popen.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self.stderr_tail.append(line)
                stderr_log.info("%s", line)

    def send(self, message: Message, timeout: float | None = None) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        assert self.popen and self.popen.stdin
        try:
            with self._write_lock:
                self.popen.stdin.write(data)
                self.popen.stdin.flush()
        except (OSError, ValueError) as exc:
            raise McpConnectionError(f"cannot write to {self.command!r}: {exc}") from exc

    def negotiated(self, version: str, deliver: Deliver, closed: Closed) -> None:
        """Nothing to do on stdio once the handshake is done."""

    def close(self) -> None:
        # The spec's order: close stdin, give the server a moment, then SIGTERM, then SIGKILL.
        self._closing = True
        popen = self.popen
        if popen is None or popen.poll() is not None:
            return
        try:
            with self._write_lock:
                popen.stdin.close()
        except OSError:
            pass
        for sig, wait in ((None, min(self.grace, 1.0)), (signal.SIGTERM, self.grace), (signal.SIGKILL, 5.0)):
            if sig is not None:
                try:
                    os.killpg(popen.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                popen.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


class _SseEvent:
    __slots__ = ("event", "data", "id", "retry")

    def __init__(self, event: str, data: str, event_id: str | None, retry: int | None):
        self.event, self.data, self.id, self.retry = event, data, event_id, retry


def _sse_events(resp: urllib3.BaseHTTPResponse) -> Iterator[_SseEvent]:
    """Yield the events of a text/event-stream response as they complete (also data-less ones with an id)."""
    buf = bytearray()
    event, data, event_id, retry = "message", [], None, None
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            return
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(buf[:nl]).rstrip(b"\r").decode(errors="replace")
            del buf[:nl + 1]
            if not line:
                if data or event_id is not None or retry is not None:
                    yield _SseEvent(event, "\n".join(data), event_id, retry)
                event, data, event_id, retry = "message", [], None, None
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)
                elif field == "id":
                    event_id = value
                elif field == "retry" and value.isdigit():
                    retry = int(value)


_TRANSPORT = {"mcpgw": "transport"}
_EXPIRED = {"mcpgw": "expired"}


def _error_reply(request_id: Any, message: str, code: int = -32000) -> Message:
    """A local error answer; code -32000 marks a transport failure (raised as McpConnectionError)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if code == -32000:
        error["data"] = _TRANSPORT
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


class _HttpBase:
    def __init__(self, url: str, *, headers: dict[str, str] | None, timeout: float, name: str):
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.name = name
        self.pool = urllib3.PoolManager(num_pools=4, maxsize=16, block=False, retries=False)
        self._streams: set[urllib3.BaseHTTPResponse] = set()
        self._closing = False
        self.pid = None

    def _timeout(self, read: float | None) -> urllib3.Timeout:
        return urllib3.Timeout(connect=min(self.timeout, 10.0), read=read)

    def _open_stream(self, method: str, url: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        resp = self.pool.request(method, url, headers=headers, preload_content=False, redirect=False,
                                 timeout=self._timeout(None))
        self._streams.add(resp)
        return resp

    def _drop_stream(self, resp: urllib3.BaseHTTPResponse, *, clean: bool = False) -> None:
        self._streams.discard(resp)
        if not clean:
            # Unread bytes would corrupt the next request on this connection: close it instead.
            resp.close()
        resp.release_conn()

    def _shutdown_streams(self) -> None:
        for resp in list(self._streams):
            try:
                resp.shutdown()
            except Exception:  # noqa: BLE001 - closing best-effort
                pass
        self._streams.clear()


class _StreamableHttpTransport(_HttpBase):
    """Streamable HTTP: POST each message; JSON or SSE answers; a GET stream for server→client messages."""

    def __init__(self, url: str, **kwargs: Any):
        super().__init__(url, **kwargs)
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self._deliver: Deliver | None = None
        self._closed: Closed | None = None

    def start(self, deliver: Deliver, closed: Closed) -> None:
        self._deliver, self._closed = deliver, closed

    def _request_headers(self, accept: str) -> dict[str, str]:
        headers = dict(self.headers)
        headers["Accept"] = accept
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version and self.protocol_version >= "2025-06-18":
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    def send(self, message: Message, timeout: float | None = None) -> None:
        if "method" in message and "id" in message:
            # A request's answer may stream for a while: read it on a thread of its own, and give up
            # reading a silent stream a little after the caller stopped waiting.
            read = None if timeout is None else timeout + 5.0
            threading.Thread(target=self._post, args=(message, read), daemon=True,
                             name=f"mcp-post-{self.name}").start()
        else:
            self._post(message, self.timeout)

    def _post(self, message: Message, read_timeout: float | None) -> None:
        request_id = message.get("id") if "method" in message else None
        is_request = "method" in message and "id" in message
        headers = self._request_headers("application/json, text/event-stream")
        headers["Content-Type"] = "application/json"
        body = json.dumps(message, separators=(",", ":")).encode()
        try:
            resp = self.pool.request("POST", self.url, body=body, headers=headers, preload_content=False,
                                     redirect=False, timeout=self._timeout(read_timeout))
        except urllib3.exceptions.HTTPError as exc:
            return self._fail(request_id, is_request, f"POST {self.url} failed: {exc}")
        clean = False
        try:
            clean = self._handle_post_response(resp, message, request_id, is_request)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if not self._closing:
                self._fail(request_id, is_request, f"reading the answer from {self.url} failed: {exc}")
        finally:
            self._drop_stream(resp, clean=clean)

    def _fail(self, request_id: Any, is_request: bool, reason: str, *, expired: bool = False) -> None:
        if is_request:
            reply = _error_reply(request_id, reason)
            if expired:
                reply["error"]["data"] = _EXPIRED
            self._deliver(reply, request_id)
        elif expired:
            raise McpSessionExpired(reason)
        else:
            raise McpConnectionError(reason)

    def _handle_post_response(self, resp: urllib3.BaseHTTPResponse, message: Message, request_id: Any,
                              is_request: bool) -> bool:
        """Dispatch what a POST answered; return whether the body was read to its end."""
        self._streams.add(resp)
        session = resp.headers.get("mcp-session-id")
        if session and message.get("method") == "initialize":
            self.session_id = session
        if resp.status == 404 and self.session_id:
            resp.read()
            reason = f"{self.url}: session {self.session_id} expired (HTTP 404)"
            try:
                self._fail(request_id, is_request, reason, expired=True)
            finally:
                self._closed(McpSessionExpired(reason))
            return True
        ctype = (resp.headers.get("content-type") or "").split(";")[0].strip().lower()
        if resp.status >= 400:
            text = resp.read().decode(errors="replace")
            try:
                reply = json.loads(text)
            except ValueError:
                reply = None
            if is_request and isinstance(reply, dict) and isinstance(reply.get("error"), dict):
                reply["id"] = request_id
                self._deliver(reply, request_id)
            else:
                self._fail(request_id, is_request, f"HTTP {resp.status} from {self.url}: {text[:200]}")
            return True
        if not is_request or resp.status == 202:
            resp.read()
            if is_request:
                self._fail(request_id, True, f"{self.url} answered a request with HTTP 202 and no result")
            return True
        if ctype == "text/event-stream":
            answered, last_id, retry = self._read_stream(resp, request_id)
            if answered:
                return False
            if last_id is not None and not self._closing:
                # The server closed the stream early but numbered its events: resume it (SEP-1699).
                answered = self._resume(request_id, last_id, retry)
            if not answered and not self._closing:
                self._fail(request_id, True, f"{self.url} closed the stream before answering")
            return True
        text = resp.read().decode(errors="replace")
        try:
            self._deliver(json.loads(text), request_id)
        except ValueError:
            self._fail(request_id, True, f"{self.url} answered with {ctype or 'no content type'}, not JSON")
        return True

    def _read_stream(self, resp: urllib3.BaseHTTPResponse, request_id: Any) -> tuple[bool, str | None, int | None]:
        """Deliver a response stream's messages; return (answered, last event id, retry ms)."""
        last_id, retry = None, None
        for ev in _sse_events(resp):
            last_id = ev.id if ev.id is not None else last_id
            retry = ev.retry if ev.retry is not None else retry
            if ev.event != "message" or not ev.data.strip():
                continue
            try:
                reply = json.loads(ev.data)
            except ValueError:
                continue
            self._deliver(reply, request_id)
            if isinstance(reply, dict) and reply.get("id") == request_id and "method" not in reply:
                return True, last_id, retry
        return False, last_id, retry

    def _resume(self, request_id: Any, last_id: str, retry: int | None) -> bool:
        for _ in range(5):
            if self._closing or threading.Event().wait(min((retry or 500) / 1000, 5.0)) or self._closing:
                return False
            headers = self._request_headers("text/event-stream")
            headers["Last-Event-ID"] = last_id
            try:
                resp = self._open_stream("GET", self.url, headers)
            except urllib3.exceptions.HTTPError:
                continue
            try:
                if resp.status != 200:
                    return False
                answered, new_id, new_retry = self._read_stream(resp, request_id)
            except (urllib3.exceptions.HTTPError, OSError):
                answered, new_id, new_retry = False, None, None
            finally:
                self._drop_stream(resp)
            if answered:
                return True
            last_id, retry = new_id or last_id, new_retry or retry
        return False

    def negotiated(self, version: str, deliver: Deliver, closed: Closed) -> None:
        self.protocol_version = version
        threading.Thread(target=self._listen, daemon=True, name=f"mcp-get-{self.name}").start()

    def _listen(self) -> None:
        """The optional GET stream; stops quietly when the server does not offer one."""
        delay = 0.5
        while not self._closing:
            try:
                resp = self._open_stream("GET", self.url, self._request_headers("text/event-stream"))
            except urllib3.exceptions.HTTPError:
                return
            try:
                if resp.status == 404 and self.session_id:
                    self._closed(McpSessionExpired(f"{self.url}: session {self.session_id} expired (HTTP 404)"))
                    return
                if resp.status != 200:
                    return
                delay = 0.5
                for ev in _sse_events(resp):
                    if ev.event == "message" and ev.data.strip():
                        try:
                            self._deliver(json.loads(ev.data), None)
                        except ValueError:
                            continue
            except (urllib3.exceptions.HTTPError, OSError):
                pass
            finally:
                self._drop_stream(resp)
            if self._closing:
                return
            threading.Event().wait(delay)
            delay = min(delay * 2, 10.0)

    def close(self) -> None:
        self._closing = True
        self._shutdown_streams()
        if self.session_id:
            try:
                self.pool.request("DELETE", self.url, headers=self._request_headers("application/json"),
                                  timeout=self._timeout(2.0), redirect=False)
            except urllib3.exceptions.HTTPError:
                pass
        self.pool.clear()


class _SseTransport(_HttpBase):
    """HTTP+SSE (2024-11-05): GET the stream, wait for the ``endpoint`` event, POST messages there."""

    def __init__(self, url: str, **kwargs: Any):
        super().__init__(url, **kwargs)
        self.endpoint: str | None = None
        self._ready = threading.Event()
        self._closed: Closed | None = None

    def start(self, deliver: Deliver, closed: Closed) -> None:
        self._closed = closed
        headers = dict(self.headers)
        headers["Accept"] = "text/event-stream"
        try:
            resp = self._open_stream("GET", self.url, headers)
        except urllib3.exceptions.HTTPError as exc:
            raise McpConnectionError(f"GET {self.url} failed: {exc}") from exc
        if resp.status != 200:
            text = resp.read(500).decode(errors="replace")
            self._drop_stream(resp)
            raise McpConnectionError(f"GET {self.url} answered HTTP {resp.status}: {text}")
        threading.Thread(target=self._read, args=(resp, deliver), daemon=True, name=f"mcp-sse-{self.name}").start()
        if not self._ready.wait(self.timeout):
            self.close()
            raise McpTimeout(f"{self.url} sent no endpoint event within {self.timeout:g}s")
        if self.endpoint is None:
            raise McpConnectionError(f"{self.url} closed the stream before sending its endpoint")

    def _read(self, resp: urllib3.BaseHTTPResponse, deliver: Deliver) -> None:
        reason = "the server closed the SSE stream"
        try:
            for ev in _sse_events(resp):
                if ev.event == "endpoint":
                    self.endpoint = urljoin(self.url, ev.data.strip())
                    self._ready.set()
                elif ev.event == "message" and ev.data.strip():
                    try:
                        deliver(json.loads(ev.data), None)
                    except ValueError:
                        continue
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = f"the SSE stream failed: {exc}"
        finally:
            self._drop_stream(resp)
            self._ready.set()
        if not self._closing:
            self._closed(McpConnectionError(f"{self.url}: {reason}"))

    def send(self, message: Message, timeout: float | None = None) -> None:
        body = json.dumps(message, separators=(",", ":")).encode()
        headers = dict(self.headers)
        headers["Content-Type"] = "application/json"
        try:
            resp = self.pool.request("POST", self.endpoint, body=body, headers=headers, redirect=False,
                                     timeout=self._timeout(self.timeout))
        except urllib3.exceptions.HTTPError as exc:
            raise McpConnectionError(f"POST {self.endpoint} failed: {exc}") from exc
        if resp.status >= 300:
            raise McpConnectionError(f"POST {self.endpoint} answered HTTP {resp.status}: "
                                     f"{resp.data[:200].decode(errors='replace')}")

    def negotiated(self, version: str, deliver: Deliver, closed: Closed) -> None:
        """The SSE stream is already open."""

    def close(self) -> None:
        self._closing = True
        self._shutdown_streams()
        self.pool.clear()


# ---------------------------------------------------------------------------------------------------- the client


class McpClient:
    """A synchronous MCP client; ``connect()`` (or ``with``) performs the initialize handshake.

    ``url_or_command`` is a URL for ``streamable-http`` (e.g. ``http://127.0.0.1:5235/P/mcp``) and ``sse``
    (``…/P/sse``), or the program for ``stdio`` (with ``args``; ``env`` adds to a minimal inherited
    environment). ``timeout`` (seconds) bounds each request unless a call passes its own.
    ``on_notification(msg)`` runs on the reader thread for server notifications: keep it quick and do
    not wait there for answers from this client. ``on_request(msg)`` answers server→client requests
    (``sampling/createMessage``, ``elicitation/create``, ``roots/list``) on its own thread: return the
    result dict or raise :class:`McpError`. ``on_close(exc)`` runs when the connection drops by itself.

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
                 name: str = "mcp", grace: float = 5.0):
        if transport not in TRANSPORTS:
            raise ValueError(f"transport: {transport!r} is not one of {', '.join(TRANSPORTS)}")
        self.target = url_or_command
        self.transport = transport
        self.timeout = timeout
        self.on_notification = on_notification
        self.on_request = on_request
        self.on_close = on_close
        self.client_capabilities = dict(client_capabilities or {})
        self.client_info = client_info or {"name": "mcpgw", "version": _version()}
        self.protocol_version: str | None = None
        self.server_info: dict[str, Any] = {}
        self.server_capabilities: dict[str, Any] = {}
        self.instructions: str | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[Any, _Slot] = {}
        self._related: dict[Any, Callable[[Message], None]] = {}
        self._related_requests: dict[Any, Callable[[Message], dict[str, Any]]] = {}
        self._progress: dict[Any, Callable[[Message], None]] = {}
        self._closed = False
        self._started = False
        self.close_reason: BaseException | None = None
        if transport == "stdio":
            self._transport: Any = _StdioTransport(url_or_command, args=args or [], env=env, cwd=cwd, grace=grace,
                                                   name=name)
        elif transport == "sse":
            self._transport = _SseTransport(url_or_command, headers=headers, timeout=timeout, name=name)
        else:
            self._transport = _StreamableHttpTransport(url_or_command, headers=headers, timeout=timeout, name=name)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.protocol_version else "new")
        return f"<McpClient {self.transport} {self.target!r} {state}>"

    def __enter__(self) -> McpClient:
        return self.connect() if not self._started else self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- connection

    def connect(self) -> McpClient:
        """Start the transport, send ``initialize`` and ``notifications/initialized``; return ``self``.

        Asks for protocol ``2025-11-25`` and accepts any older version the server answers with
        that this client speaks; anything else closes the connection with :class:`McpError`.
        """
        self._started = True
        self._transport.start(self._deliver, self._transport_closed)
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
        self.protocol_version = version
        self.server_info = result.get("serverInfo") or {}
        self.server_capabilities = result.get("capabilities") or {}
        self.instructions = result.get("instructions")
        self.notify("notifications/initialized")
        self._transport.negotiated(version, self._deliver, self._transport_closed)
        return self

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
        """End the session: DELETE it (Streamable HTTP) or stop the process (stdio); fail waiting calls."""
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
            slot.set(_error_reply(request_id, f"connection closed: {reason}"))

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
                on_request: Callable[[Message], dict[str, Any]] | None = None) -> dict[str, Any]:
        """Send a request and wait for its result; raise :class:`McpError` for an error answer.

        ``on_message`` receives this request's own notifications (progress for its
        ``_meta.progressToken``; on Streamable HTTP also the logs sent on its stream), and
        ``on_request`` answers the server→client requests sent on its Streamable HTTP stream
        (others go to the client's ``on_request``).
        On timeout the request is cancelled at the server and :class:`McpTimeout` is raised.

        >>> client.request("tools/list")["tools"]  # doctest: +SKIP
        """
        request_id = self.next_id() if request_id is None else request_id
        message: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        token = ((params or {}).get("_meta") or {}).get("progressToken")
        slot = _Slot()
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
            if error.get("data") == _TRANSPORT:
                raise McpConnectionError(text)
            if error.get("data") == _EXPIRED:
                raise McpSessionExpired(text)
            raise McpError(code, text, error.get("data"))
        return reply.get("result") or {}

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
            slot.set(_error_reply(request_id, f"request cancelled: {reason or 'no reason given'}", -32800))
        self.notify("notifications/cancelled", params)

    def _cancel_quietly(self, request_id: Any, reason: str) -> None:
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
        """Check the server answers (``ping``)."""
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
                  on_request: Callable[[Message], dict[str, Any]] | None = None) -> dict[str, Any]:
        """Call a tool and return its ``CallToolResult`` dict (a failing tool gives ``isError: true``).

        With ``progress_token``, progress notifications go to ``on_message`` (or ``on_notification``).

        >>> client.call_tool("echo", {"text": "hi"})  # doctest: +SKIP
        {'content': [{'type': 'text', 'text': 'hi'}], 'isError': False}
        """
        params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
        meta = dict(meta or {})
        if progress_token is not None:
            meta["progressToken"] = progress_token
        if meta:
            params["_meta"] = meta
        return self.request("tools/call", params, timeout=timeout, request_id=request_id, on_message=on_message,
                            on_request=on_request)

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
        """Ask for ``notifications/resources/updated`` about ``uri``."""
        return self.request("resources/subscribe", {"uri": uri})

    def unsubscribe(self, uri: str) -> dict[str, Any]:
        """Stop the updates :meth:`subscribe` asked for."""
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
        """Ask the server for log notifications at ``level`` and above (``debug`` … ``emergency``)."""
        return self.request("logging/setLevel", {"level": level})


def _ignore(message: Message) -> None:
    return None


def _version() -> str:
    try:
        from . import __version__

        return __version__
    except ImportError:  # pragma: no cover - during partial imports
        return "0"
