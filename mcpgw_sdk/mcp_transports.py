"""The transports of :class:`~mcpgw_sdk.client.McpClient`: stdio, Streamable HTTP and HTTP+SSE.

Each transport moves JSON-RPC messages and nothing more: a reader thread hands
every message it receives to ``deliver`` and reports a dropped connection to
``closed``; correlation of answers with requests stays in the client.
"""

from __future__ import annotations

import _thread
import base64
import collections
import http.client
import json
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin

import urllib3

from . import http_pool
from .errors import McpConnectionError, McpSessionExpired, McpTimeout

# A stdio server inherits nothing of our environment (a gateway's holds its database URL and secrets): it
# gets this fixed PATH (where a bare command name is looked up unless its ``env`` sets PATH), a HOME and a
# LANG, then the ``env`` it is given.
STDIO_PATH = "/usr/local/bin:/usr/bin:/bin"
STDIO_LANG = "C.UTF-8"

log = logging.getLogger("mcpgw.client")
Message = dict[str, Any]

class Slot:
    """Where the answer to one request lands; the waiting caller blocks on ``event``."""

    __slots__ = ("event", "message")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.message: Message | None = None

    def set(self, message: Message) -> None:
        self.message = message
        self.event.set()


Deliver = Callable[[Any, Any], None]
Closed = Callable[[BaseException], None]

#: The stateless revision and the reserved ``_meta`` keys its requests carry (the spec's names).
MODERN_VERSION = "2026-07-28"
META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
RESERVED_META_PREFIX = "io.modelcontextprotocol/"
#: The body field a modern request repeats in ``Mcp-Name``.
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_PLAIN_HEADER = re.compile(r"^[\x20-\x7E]*$")
_SENTINEL = re.compile(r"^=\?base64\?.*\?=$", re.S)


def encode_header_value(value: str) -> str:
    """A header value as 2026-07-28 sends it: as is when plain ASCII, else ``=?base64?…?=`` of its UTF-8.

    Values with control characters, leading/trailing whitespace, or that look like the
    sentinel themselves are encoded too.

    >>> encode_header_value("get_user")
    'get_user'
    >>> encode_header_value("Hello, 世界")
    '=?base64?SGVsbG8sIOS4lueVjA==?='
    >>> encode_header_value(" padded ")
    '=?base64?IHBhZGRlZCA=?='
    """
    if _PLAIN_HEADER.match(value) and value == value.strip() and not _SENTINEL.match(value):
        return value
    return "=?base64?" + base64.b64encode(value.encode()).decode("ascii") + "?="


def modern_headers(message: Message) -> dict[str, str]:
    """``MCP-Protocol-Version``, ``Mcp-Method`` and ``Mcp-Name`` for a request carrying the modern envelope.

    Empty for a message without ``params._meta[io.modelcontextprotocol/protocolVersion]`` (legacy).
    """
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get(META_PROTOCOL_VERSION), str):
        return {}
    headers = {"MCP-Protocol-Version": meta[META_PROTOCOL_VERSION], "Mcp-Method": str(message.get("method"))}
    field = NAME_BEARING.get(str(message.get("method")))
    if field is not None and isinstance(params.get(field), str):
        headers["Mcp-Name"] = encode_header_value(params[field])
    return headers


# ---------------------------------------------------------------------------------------------------- transports


class StdioTransport:
    """A subprocess speaking newline-delimited JSON on stdin/stdout; stderr goes to a logger line by line.

    The child's environment is :data:`STDIO_PATH` as ``PATH``, its user's home as ``HOME``, ``LANG``
    :data:`STDIO_LANG`, then ``env``: nothing of this process's environment. A bare ``command`` is found in
    the ``PATH`` that ``env`` sets, else in :data:`STDIO_PATH` (the policy lets only admins and the CLI set
    ``PATH``: a member's allow-listed command cannot). ``user`` (default: the ``stdio_user``
    setting; empty for this process's user) runs the child as that OS user with its primary group and no
    supplementary groups, which needs root.
    """

    def __init__(self, command: str, *, args: list[str], env: dict[str, str] | None, cwd: str | None,
                 grace: float, name: str, user: str | None = None):
        self.command = command
        self.args = list(args)
        self.env = dict(env or {})
        self.cwd = cwd
        self.grace = grace
        self.name = name
        self.user = user
        self.popen: subprocess.Popen | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._write_lock = threading.Lock()
        self._closing = False

    def _identity(self) -> tuple[dict[str, Any], str]:
        """Popen's ``user``/``group``/``extra_groups`` for the configured OS user, and that user's home."""
        from .settings import resolve

        name = self.user if self.user is not None else resolve().stdio_user
        if not name:
            try:
                return {}, pwd.getpwuid(os.getuid()).pw_dir
            except KeyError:
                return {}, "/"
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise McpConnectionError(f"cannot start {self.command!r}: stdio_user (MCPGW_STDIO_USER): "
                                     f"no OS user {name!r}") from None
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}, entry.pw_dir

    def _executable(self) -> str:
        if "/" in self.command:
            return self.command
        path = self.env.get("PATH", STDIO_PATH)
        found = shutil.which(self.command, path=path)
        if found is None:
            raise McpConnectionError(f"cannot start {self.command!r}: not found in PATH {path} (give an absolute "
                                     "path, or set PATH in env)")
        return found

    def start(self, deliver: Deliver, closed: Closed) -> None:
        identity, home = self._identity()
        env = {"PATH": STDIO_PATH, "HOME": home, "LANG": STDIO_LANG}
        env.update(self.env)
        try:
            self.popen = subprocess.Popen([self.command, *self.args], executable=self._executable(),
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          env=env, cwd=self.cwd, start_new_session=True, **identity)
        except (OSError, subprocess.SubprocessError) as exc:
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


TRANSPORT_ERROR = {"mcpgw": "transport"}
EXPIRED_ERROR = {"mcpgw": "expired"}


def error_reply(request_id: Any, message: str, code: int = -32000, *, status: int | None = None) -> Message:
    """A local error answer; code -32000 marks a transport failure (raised as McpConnectionError).

    ``status`` is the HTTP status of an error answer that carried no JSON-RPC error
    (``McpConnectionError.data["status"]``; the client's era probe falls back on a 4xx).
    """
    error: dict[str, Any] = {"code": code, "message": message}
    if code == -32000:
        error["data"] = TRANSPORT_ERROR if status is None else {**TRANSPORT_ERROR, "status": status}
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


#: ``(scheme, host, port) -> addresses``: checks a destination and names the addresses to connect to;
#: raises (an ``OSError``) to refuse it. The gateway passes its outbound guard here.
Connector = Callable[[str, str, int], "list[str]"]


class _RefusedConnection(urllib3.exceptions.NewConnectionError):
    """A destination the connector refused; its text is the connector's reason alone."""

    def __init__(self, conn: Any, reason: str):
        super().__init__(conn, reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _connect(conn: Any, scheme: str, connector: Connector) -> Any:
    """``HTTPConnection._new_conn`` through ``connector``: only the addresses it checked are dialled.

    ``Host`` and TLS SNI keep the original name, so a name cannot resolve to one address
    for the check and another for the connection.
    """
    from urllib3.util import connection as util

    port = conn.port or (443 if scheme == "https" else 80)
    try:
        addresses = connector(scheme, conn.host, port)
    except Exception as exc:  # noqa: BLE001 - any refusal or resolution failure stops this connection
        raise _RefusedConnection(conn, str(exc)) from None
    last: BaseException | None = None
    for address in addresses:
        try:
            return util.create_connection((address, port), conn.timeout, source_address=conn.source_address,
                                          socket_options=conn.socket_options)
        except TimeoutError as exc:
            raise urllib3.exceptions.ConnectTimeoutError(
                conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})") from exc
        except OSError as exc:
            last = exc
    raise urllib3.exceptions.NewConnectionError(conn, f"Failed to establish a new connection: {last}")


def _pool(connector: Connector | None) -> urllib3.PoolManager:
    """A pool manager whose new connections go through ``connector`` (when given)."""
    pool = urllib3.PoolManager(num_pools=4, maxsize=16, block=False, retries=False)
    if connector is None:
        return pool
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Connection(HTTPConnection):
        def _new_conn(self) -> Any:
            return _connect(self, "http", connector)

    class TlsConnection(HTTPSConnection):
        def _new_conn(self) -> Any:
            return _connect(self, "https", connector)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class TlsPool(HTTPSConnectionPool):
        ConnectionCls = TlsConnection

    pool.pool_classes_by_scheme = {"http": Pool, "https": TlsPool}
    return pool


class _HttpBase:
    def __init__(self, url: str, *, headers: dict[str, str] | None, timeout: float, name: str,
                 connector: Connector | None = None):
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.name = name
        # Redirects are never followed (redirect=False everywhere): a 3xx is an error, not a new destination.
        self.pool = _pool(connector)
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


class StreamableHttpTransport(_HttpBase):
    """Streamable HTTP: POST each message; JSON or SSE answers; a GET stream for server→client messages."""

    def __init__(self, url: str, *, connector: Connector | None = None, **kwargs: Any):
        super().__init__(url, connector=connector, **kwargs)
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self._deliver: Deliver | None = None
        self._closed: Closed | None = None
        self._answers: dict[Any, Any] = {}
        self._path = urllib3.util.parse_url(url).request_uri
        # The POSTs (every message) on lean keep-alive connections of their own (http_pool explains why);
        # the rare GET streams and the DELETE stay on urllib3.
        self._posts = http_pool.Pool(url, connector=connector, connect_timeout=min(self.timeout, 10.0))

    def start(self, deliver: Deliver, closed: Closed) -> None:
        self._deliver, self._closed = deliver, closed

    def _request_headers(self, accept: str, message: Message | None = None) -> dict[str, str]:
        headers = dict(self.headers)
        headers["Accept"] = accept
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version and self.protocol_version >= "2025-06-18":
            headers["MCP-Protocol-Version"] = self.protocol_version
        if message is not None:
            # A request with the 2026-07-28 envelope names its version, method and name in headers too.
            headers.update(modern_headers(message))
        return headers

    def abort(self, request_id: Any) -> bool:
        """Close the answer stream of ``request_id`` (how 2026-07-28 cancels over HTTP); whether one was open."""
        resp = self._answers.pop(request_id, None)
        if resp is None:
            return False
        try:
            resp.shutdown()
        except Exception:  # noqa: BLE001 - closing best-effort
            pass
        return True

    def send(self, message: Message, timeout: float | None = None) -> None:
        if "method" in message and "id" in message:
            # A request's answer may stream for a while: read it on a thread of its own, and give up
            # reading a silent stream a little after the caller stopped waiting. A bare one (a greenlet under
            # gevent): threading.Thread's start handshake costs more, once per call, than the POST's bookkeeping.
            read = None if timeout is None else timeout + 5.0
            _thread.start_new_thread(self._post, (message, read))
        else:
            self._post(message, self.timeout)

    def _post(self, message: Message, read_timeout: float | None) -> None:
        request_id = message.get("id") if "method" in message else None
        is_request = "method" in message and "id" in message
        headers = self._request_headers("application/json, text/event-stream", message)
        headers["Content-Type"] = "application/json"
        body = json.dumps(message, separators=(",", ":")).encode()
        try:
            resp = self._posts.request("POST", self._path, headers, body, read_timeout=read_timeout)
        except (OSError, ValueError) as exc:
            return self._fail(request_id, is_request, f"POST {self.url} failed: {exc}")
        clean = False
        if is_request:
            self._answers[request_id] = resp
        try:
            clean = self._handle_post_response(resp, message, request_id, is_request)
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            if not self._closing:
                self._fail(request_id, is_request, f"reading the answer from {self.url} failed: {exc}")
        finally:
            if is_request and self._answers.get(request_id) is resp:
                self._answers.pop(request_id, None)
            self._drop_stream(resp, clean=clean)

    def _fail(self, request_id: Any, is_request: bool, reason: str, *, expired: bool = False,
              status: int | None = None) -> None:
        if is_request:
            reply = error_reply(request_id, reason, status=status)
            if expired:
                reply["error"]["data"] = EXPIRED_ERROR
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
                self._fail(request_id, is_request, f"HTTP {resp.status} from {self.url}: {text[:200]}",
                           status=resp.status)
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
        if version == MODERN_VERSION:
            # Stateless: every request names its version in its own headers; no session, no GET stream.
            return
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
        self._posts.close()
        self.pool.clear()


class SseTransport(_HttpBase):
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
