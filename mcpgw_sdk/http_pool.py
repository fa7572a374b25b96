"""Keep-alive HTTP/1.1 connections to one origin: the POSTs of the Streamable HTTP transport.

Every request of a Streamable HTTP connection is a POST to one fixed URL, so the general
machinery of urllib3 (a pool manager, URL parsing, header merging, retries, per-call timeout
objects) costs more CPU than the exchange itself: about 1 ms per small POST under gevent, against
about 0.2 ms here. :class:`Pool` writes the request line and headers in one ``sendall`` and reads
the answer with :class:`http.client.HTTPResponse` (chunked bodies, ``read1`` for event streams)
whose headers are parsed without the email package. It is safe across threads and greenlets.

New connections go through ``connector(scheme, host, port)`` (the gateway's outbound guard), which
names the addresses to dial or raises to refuse; ``Host`` and TLS SNI keep the URL's name, so a name
cannot resolve to one address for the check and another for the connection. A pooled connection
the server has closed meanwhile is dropped before reuse, and a request is never sent twice.

>>> pool = Pool("http://127.0.0.1:8123/mcp", connect_timeout=10)  # doctest: +SKIP
>>> resp = pool.request("POST", {"Content-Type": "application/json"}, b"{}", read_timeout=30)  # doctest: +SKIP
>>> resp.status, resp.read(), resp.release_conn()  # doctest: +SKIP
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any

from urllib3.util import parse_url

__all__ = ["Pool", "PooledResponse", "Refused", "dropped", "parse_headers"]

#: ``(scheme, host, port) -> addresses``; raises to refuse the destination.
Connector = Callable[[str, str, int], "list[str]"]
# What may not appear in a header name or value: a rendered header must not start another header or request.
_BAD_NAME = re.compile(r"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
#: Sent unless the caller gives its own, as urllib3 did: no compressed answers (nothing here inflates one).
DEFAULT_HEADERS = {"accept-encoding": "Accept-Encoding: identity\r\n", "user-agent": "User-Agent: mcpgw-sdk\r\n"}


class Refused(ConnectionRefusedError):
    """Raised when the connector refuses a destination; the text is its reason alone."""


def parse_headers(fp, message_class: type = http.client.HTTPMessage) -> http.client.HTTPMessage:
    """``http.client.parse_headers`` without the email parser (a third of the client's CPU per call).

    Same limits (line length, header count) and result type (``message_class``); obsolete
    folded lines are joined to the header before them. The gateway's
    backends and server use it too.
    """
    items: list[tuple[str, str]] = []
    for raw in http.client._read_headers(fp):
        line = raw.decode("iso-8859-1").rstrip("\r\n")
        if not line:
            break
        if line[0] in " \t":
            if items:
                items[-1] = (items[-1][0], f"{items[-1][1]} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if sep and name:
            items.append((name, value.strip(" \t")))
    message = message_class()
    message._headers = items
    return message


class _Response(http.client.HTTPResponse):
    """``HTTPResponse`` whose headers are parsed line by line (the email parser is most of its CPU)."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)  # the 100 response's headers
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        message = parse_headers(self.fp)
        self.headers = self.msg = message
        encoding = message.get("transfer-encoding")
        self.chunked = bool(encoding) and encoding.lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = message.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200:
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class PooledResponse:
    """An answer on a pooled connection: ``status``, ``headers`` (any case), ``read()``, ``read1(n)``.

    :meth:`release_conn` hands the connection back when the body was read to its end (else closes
    it); :meth:`shutdown` stops a read blocked in another thread; :meth:`close` drops the connection.
    """

    __slots__ = ("_pool", "_sock", "_resp", "status", "headers")

    def __init__(self, pool: Pool, sock: socket.socket, resp: _Response):
        self._pool = pool
        self._sock: socket.socket | None = sock
        self._resp = resp
        self.status = resp.status
        self.headers = resp.headers

    def read(self, amt: int | None = None) -> bytes:
        return self._resp.read(amt)

    def read1(self, n: int = -1) -> bytes:
        return self._resp.read1(n)

    def shutdown(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._resp.close()
        if sock is not None:
            sock.close()

    def release_conn(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._resp.isclosed() and not self._resp.will_close:
            self._pool._checkin(sock)
        else:
            self._resp.close()
            sock.close()


_original_poll: Any = None


def dropped(sock: socket.socket) -> bool:
    """Whether an idle pooled socket has data or EOF waiting: the server closed it (or broke the protocol)."""
    global _original_poll
    if _original_poll is None:
        # gevent's poll would yield to its hub; the original one with a zero timeout is a plain check (poll, not
        # select: a busy gateway's descriptors go past select's 1024).
        monkey = sys.modules.get("gevent.monkey")
        if monkey is not None and monkey.is_module_patched("select"):
            _original_poll = monkey.get_original("select", "poll")
        else:
            import select

            _original_poll = select.poll
    try:
        poller = _original_poll()
        poller.register(sock.fileno(), 1)  # POLLIN; errors and hang-ups are reported anyway
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class Pool:
    """Keep-alive connections to the origin of ``url`` (``http`` or ``https``), at most ``max_idle`` kept idle.

    ``connector`` checks each new connection's destination (see the module); ``connect_timeout``
    bounds dialling and the TLS handshake.
    """

    def __init__(self, url: str, *, connector: Connector | None = None, connect_timeout: float = 10.0,
                 max_idle: int = 16):
        parts = parse_url(url)  # as urllib3 reads it: "host:port/path" is plain http
        self.scheme = (parts.scheme or "http").lower()
        self.host = (parts.host or "").strip("[]")
        default = 443 if self.scheme == "https" else 80
        self.port = parts.port or default
        name = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = name if self.port == default else f"{name}:{self.port}"
        self.connector = connector
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._context: ssl.SSLContext | None = ssl.create_default_context() if self.scheme == "https" else None

    def _dial(self) -> socket.socket:
        if self.scheme not in ("http", "https") or not self.host:
            raise ConnectionError(f"not an http(s) URL with a host (scheme {self.scheme!r}, host {self.host!r})")
        if self.connector is not None:
            try:
                addresses = self.connector(self.scheme, self.host, self.port)
            except Exception as exc:  # noqa: BLE001 - any refusal or resolution failure stops this connection
                raise Refused(str(exc)) from None
        else:
            addresses = [self.host]
        last: OSError | None = None
        for address in addresses:
            try:
                sock = socket.create_connection((address, self.port), self.connect_timeout)
            except TimeoutError:
                raise TimeoutError(f"connecting to {self.host}:{self.port} timed out "
                                   f"({self.connect_timeout:g}s)") from None
            except OSError as exc:
                last = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                try:
                    sock = self._context.wrap_socket(sock, server_hostname=self.host)
                except BaseException:
                    sock.close()
                    raise
            return sock
        raise ConnectionError(f"cannot connect to {self.host}:{self.port}: {last or 'no address'}")

    def _checkout(self) -> socket.socket:
        while True:
            with self._lock:
                sock = self._idle.pop() if self._idle else None
            if sock is None:
                return self._dial()
            if not dropped(sock):
                return sock
            sock.close()

    def _checkin(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_idle:
                self._idle.append(sock)
                return
        sock.close()

    def request(self, method: str, target: str, headers: dict[str, str], body: bytes, *,
                read_timeout: float | None) -> PooledResponse:
        """Send one request and read the answer's status line and headers; the body is left to the caller.

        ``read_timeout`` bounds each wait for bytes (``None``: none). Raises :class:`OSError` (a
        :class:`Refused`, a :class:`TimeoutError`, a :class:`ConnectionError`) or ``ValueError`` for a
        header that would break the request.
        """
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        defaults = {"host": f"Host: {self.host_header}\r\n", **DEFAULT_HEADERS}
        for name, value in headers.items():
            value = str(value)
            if _BAD_NAME.search(name) or _BAD_VALUE.search(value):
                raise ValueError(f"header {name!r}: not a valid header name and value")
            lowered = name.lower()
            if lowered in ("content-length", "transfer-encoding", "connection"):
                continue  # the framing is this pool's
            defaults.pop(lowered, None)
            lines.append(f"{name}: {value}\r\n")
        lines.extend(defaults.values())
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        data = "".join(lines).encode("latin-1") + body
        sock = self._checkout()
        try:
            sock.settimeout(read_timeout)
            sock.sendall(data)
            resp = _Response(sock, method=method)
            resp.begin()
        except http.client.HTTPException as exc:
            sock.close()
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            sock.close()
            raise
        return PooledResponse(self, sock, resp)

    def close(self) -> None:
        """Close the idle connections (answers being read close theirs when released)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()
