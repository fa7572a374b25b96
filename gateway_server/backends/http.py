"""A lean, pooled keep-alive HTTP/1.1 client for the gateway's hot path.

Built on :mod:`http.client` because the per-call cost matters here (pooled
``http.client`` ~0.2 ms, ``urllib3`` ~0.4 ms, ``requests`` ~1 ms; see the
performance notes). One pool per (scheme, host, port); it is safe across
threads and greenlets (a lock-protected list). Every request and every
redirect hop goes through the :class:`~gateway_server.backends.guard.Guard`
after DNS resolution, and the socket connects to the checked address while
``Host`` (and TLS SNI) keep the original name.

>>> client = HttpClient()
>>> resp = client.request("GET", "http://127.0.0.1:5236/users", literal=True)  # doctest: +SKIP
>>> resp.status, resp.json()  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import http.client
import io
import json
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from mcpgw_sdk.errors import McpgwError
from mcpgw_sdk.http_pool import dropped, parse_headers
from mcpgw_sdk.redact import redact_text, redact_url

from .guard import Guard, Refused

__all__ = ["HttpClient", "HttpError", "TimedOut", "ConnectFailed", "TooLarge", "Refused", "Response", "BodyStream",
           "default_client", "decode_body", "parse_headers"]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
ACCEPT_ENCODING = "gzip, deflate, br, zstd"
#: Headers that follow a redirect to another origin (scheme, host or port); every other one (Authorization,
#: Cookie, API keys, whatever a tool's ``headers`` or header arguments set) stays with the origin it was meant for.
CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-encoding", "accept-language", "content-language", "content-type",
                                  "user-agent"})
_STALE_ERRORS = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError, BrokenPipeError,
                 ConnectionAbortedError)
#: Bytes asked of the socket per body read.
READ_SIZE = 65536


class HttpError(McpgwError, OSError):
    """Raised when a backend request fails before a complete response; ``method`` and ``url`` say which."""

    def __init__(self, message: str, *, method: str = "", url: str = ""):
        self.method = method
        self.url = redact_url(url) if url else url
        super().__init__(redact_text(message))  # URLs in the text may carry credentials


class TimedOut(HttpError, TimeoutError):
    """Raised when the backend does not answer within the timeout."""


class ConnectFailed(HttpError, ConnectionError):
    """Raised when the backend cannot be resolved or reached, or drops the connection."""


class TooLarge(HttpError):
    """Raised when the response body exceeds the byte limit."""


@dataclass
class Response:
    """A backend response: ``headers`` have lower-case names; ``body`` is already decoded.

    Complete, unless it was asked for with a ``window`` (:meth:`HttpClient.request`) and its body is
    longer: then ``body`` is the first part and ``more`` the rest, still on the connection
    (:meth:`finish` reads it into ``body``).
    """

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    url: str
    method: str
    _json: Any = field(default=None, repr=False)
    more: BodyStream | _Inflating | None = field(default=None, repr=False)

    def finish(self) -> Response:
        """Read the rest of the body (``more``) into ``body``, within the call's limits; returns ``self``.

        Raises :class:`TooLarge`, :class:`TimedOut` or :class:`ConnectFailed` as :meth:`HttpClient.request` does.
        """
        more, self.more = self.more, None
        if more is not None:
            chunks = [self.body]
            while chunk := more.read():
                chunks.append(chunk)
            self.body = b"".join(chunks)
        return self

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-case (``application/json``)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str:
        """The charset parameter of Content-Type, ``utf-8`` when absent."""
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip('"')
        return "utf-8"

    @property
    def text(self) -> str:
        """The body as text (undecodable bytes replaced)."""
        try:
            return self.body.decode(self.charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not)."""
        if self._json is None:
            self._json = json.loads(self.text)
        return self._json


def _inflate(raw: bytes, coding: str, limit: int) -> bytes:
    """gzip (every member), zlib or raw deflate; ValueError when the stream is cut short."""
    out = b""
    data = raw
    while True:
        if coding == "deflate" and raw[:1] != b"\x78":
            dec = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send it
        else:
            dec = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header, detected
        out += dec.decompress(data, limit + 1 - len(out))
        if len(out) > limit:
            return out
        if not dec.eof:
            raise ValueError(f"the {coding} stream is truncated")
        data = dec.unused_data
        if not data or coding == "deflate":
            if data.strip(b"\0"):
                raise ValueError(f"unexpected bytes after the end of the {coding} stream")
            return out


def decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate, br, zstd; chains too).

    Raises ValueError above ``limit`` bytes and when a stream is truncated or damaged:
    a partial body is never taken for the whole one.
    """
    for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
        if coding in ("identity", ""):
            continue
        if coding in ("gzip", "x-gzip", "deflate"):
            out = _inflate(raw, "deflate" if coding == "deflate" else "gzip", limit)
        elif coding == "br":
            import brotli

            dec = brotli.Decompressor()
            try:
                out = dec.process(raw, output_buffer_limit=limit + 1)
            except TypeError:  # brotli < 1.2 has no output limit
                out = dec.process(raw)
            if len(out) <= limit and not dec.is_finished():
                raise ValueError("the br stream is truncated")
        elif coding == "zstd":
            import io

            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)) as reader:
                out = reader.read(limit + 1)
            if len(out) <= limit:  # bounded now: check that the frame was complete
                check = zstandard.ZstdDecompressor().decompressobj()
                check.decompress(raw)
                if not check.eof:
                    raise ValueError("the zstd stream is truncated")
        else:
            raise ValueError(f"unsupported Content-Encoding {coding!r}")
        if len(out) > limit:
            raise ValueError(f"decoded body exceeds {limit} bytes")
        raw = out
    return raw


class _DeadlineReader(io.RawIOBase):
    """Socket reads that all end by one ``deadline``: a backend dripping its status line or headers byte by
    byte cannot stretch a call past its timeout (a per-receive socket timeout alone would let it)."""

    def __init__(self, sock: socket.socket, deadline: float):
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self.deadline = deadline  # a BodyStream moves it on: only the time spent waiting counts

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the call's time is up")
        self._sock.settimeout(remaining)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _MadeFile:
    """Stands in for the socket given to ``HTTPResponse``, whose ``makefile()`` is the file already made."""

    __slots__ = ("_file",)

    def __init__(self, file: Any):
        self._file = file

    def makefile(self, *_args: Any, **_kwargs: Any) -> Any:
        return self._file


class _Response(http.client.HTTPResponse):
    """``HTTPResponse`` whose header parsing is :func:`parse_headers` (``begin`` as in the standard library),
    reading through a :class:`_DeadlineReader` when given a ``deadline``."""

    def __init__(self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: str | None = None,
                 deadline: float | None = None):
        if deadline is not None:  # HTTPResponse.__init__ only calls sock.makefile("rb"): no plain file first
            sock = _MadeFile(io.BufferedReader(_DeadlineReader(sock, deadline)))
        super().__init__(sock, debuglevel, method, url)

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)  # skip the 100 response's headers
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = parse_headers(self.fp)
        tr_enc = self.headers.get("transfer-encoding")
        self.chunked = bool(tr_enc) and tr_enc.lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200 \
                or self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class _Connection(http.client.HTTPConnection):
    """An HTTP connection to checked ``addresses`` (tried in order) that keeps ``host`` for the Host header."""

    response_class = _Response

    def __init__(self, host: str, port: int, addresses: list[str], timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses
        self.ip = addresses[0]
        self.idle_since = 0.0

    def connect(self) -> None:
        for index, ip in enumerate(self.addresses):
            try:
                self.sock = socket.create_connection((ip, self.port), self.timeout)
            except ConnectionRefusedError:
                if index == len(self.addresses) - 1:
                    raise
                continue
            self.ip = ip
            break
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _TlsConnection(_Connection):
    """HTTPS to a checked address, verifying the certificate of the original host name."""

    default_port = 443

    def __init__(self, host: str, port: int, addresses: list[str], timeout: float, context: ssl.SSLContext):
        super().__init__(host, port, addresses, timeout)
        self.context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


class BodyStream:
    """The body of a response as it arrives: :meth:`read` returns the next bytes, ``b""`` at its end.

    Each read is one receive, checked against ``max_bytes``. The call's time left is spent only
    while waiting for the backend: a consumer that takes its time between reads (a client reading
    a streamed answer slowly) does not run the backend's clock. Read to its end, the connection goes
    back to the pool; :meth:`close` before that, or any error (which closes it too), drops it.
    """

    __slots__ = ("_client", "_key", "_conn", "_sock", "_raw", "_reader", "_left", "timeout", "max_bytes", "method",
                 "url", "size", "done")

    def __init__(self, client: HttpClient, key: tuple[str, str, int], conn: _Connection, sock: socket.socket,
                 raw: http.client.HTTPResponse, deadline: float, timeout: float, max_bytes: int, method: str,
                 url: str):
        self._client, self._key, self._conn, self._sock, self._raw = client, key, conn, sock, raw
        reader = getattr(raw.fp, "raw", None)
        self._reader = reader if isinstance(reader, _DeadlineReader) else None
        self._left = deadline - time.monotonic()
        self.timeout, self.max_bytes, self.method, self.url = timeout, max_bytes, method, url
        self.size = 0  # bytes read so far
        self.done = False  # read to its end, or closed

    def too_large(self) -> TooLarge:  # built only when raised: HttpError redacts its URL and text
        return TooLarge(f"response from {self.method} {self.url} exceeds the limit of {self.max_bytes} bytes "
                        "(maxResponseBytes)", method=self.method, url=self.url)

    @property
    def ended(self) -> bool:
        """Whether every byte of the body was read (the next :meth:`read` gives ``b""``)."""
        return self.done or self._raw.length == 0

    def read(self) -> bytes:
        """The next bytes of the body (at most :data:`READ_SIZE`), ``b""`` once it is complete."""
        if self.done:
            return b""
        raw = self._raw
        started = time.monotonic()
        left = self._left
        try:
            if left <= 0:
                raise TimeoutError
            # At most one receive per read1(), bounded by what is left of the call's time: a backend
            # dripping its body cannot stretch the call past the tool's timeout.
            if self._reader is not None:
                self._reader.deadline = started + left
            self._sock.settimeout(left)
            chunk = raw.read1(READ_SIZE)
            if chunk:
                self.size += len(chunk)
                if self.size > self.max_bytes:
                    raise self.too_large()
                return chunk
            if raw.length:  # the connection ended before Content-Length bytes arrived
                raise http.client.IncompleteRead(b"", raw.length)
            raw.close()  # a finished response: the connection may take the next request
        except TimeoutError:
            self.close()
            method, url = self.method, self.url
            raise TimedOut(f"timed out after {round(self.timeout, 2):g} s calling {method} {url}", method=method,
                           url=url) from None
        except (http.client.HTTPException, OSError) as exc:
            self.close()
            if isinstance(exc, HttpError):
                raise
            method, url = self.method, self.url
            raise ConnectFailed(f"connection broken reading the response of {method} {url}", method=method,
                                url=url) from None
        finally:
            self._left = left - (time.monotonic() - started)
        self.done = True
        if raw.will_close:
            self._conn.close()
        else:
            self._client._checkin(self._key, self._conn)
        return b""

    def close(self) -> None:
        """Drop the connection unless the body was read to its end (then it is already pooled)."""
        if not self.done:
            self.done = True
            self._conn.close()


class _Inflating:
    """A :class:`BodyStream` of a gzip (every member) or deflate body, decoded as it arrives.

    Reads give at most :data:`READ_SIZE` decoded bytes (a small compressed read may hold a lot), the
    decoded size is checked against ``max_bytes`` too, and a stream cut short or damaged is an error,
    as :func:`decode_body` has it: a partial body is never taken for the whole one.
    """

    __slots__ = ("_stream", "_coding", "_dec", "_pending", "size", "method", "url")

    def __init__(self, stream: BodyStream, coding: str):
        self._stream, self._coding = stream, coding
        self._dec: Any = None
        self._pending = b""  # compressed bytes not given to a decoder yet
        self.size = 0  # decoded bytes so far
        self.method, self.url = stream.method, stream.url

    @property
    def ended(self) -> bool:
        """Whether the decoded body is complete (nothing more to read or decode)."""
        dec = self._dec
        return self._stream.ended and not self._pending and (dec is None or (dec.eof and not dec.unconsumed_tail))

    def read(self) -> bytes:
        """The next decoded bytes, ``b""`` once the body is complete."""
        stream, coding = self._stream, self._coding
        try:
            while True:
                dec = self._dec
                if dec is not None and dec.unconsumed_tail:
                    data, self._pending = dec.unconsumed_tail, b""
                elif self._pending:
                    data, self._pending = self._pending, b""
                else:
                    data = stream.read()
                    if not data:
                        if dec is not None and not dec.eof:
                            out = dec.decompress(b"", READ_SIZE)  # what the decoder may still hold
                            if not out:
                                raise ValueError(f"the {coding} stream is truncated")
                            self.size += len(out)
                            if self.size > stream.max_bytes:
                                raise stream.too_large()
                            return out
                        return b""
                if dec is None or dec.eof:
                    if dec is not None and (coding == "deflate" or not data.strip(b"\0")):
                        if data.strip(b"\0"):
                            raise ValueError(f"unexpected bytes after the end of the {coding} stream")
                        continue  # padding after the end
                    raw_deflate = coding == "deflate" and data[:1] != b"\x78"  # as some servers send it
                    dec = self._dec = zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS | 32)
                out = dec.decompress(data, READ_SIZE)
                if dec.eof and dec.unused_data:
                    self._pending = dec.unused_data  # the next gzip member, or what follows the end
                if out:
                    self.size += len(out)
                    if self.size > stream.max_bytes:
                        raise stream.too_large()
                    return out
        except HttpError:
            stream.close()
            raise
        except Exception as exc:  # noqa: BLE001 - zlib raises its own error type
            stream.close()
            raise ConnectFailed(f"cannot decode the {coding} body of {self.method} {self.url}: {exc}",
                                method=self.method, url=self.url) from None

    def close(self) -> None:
        """Drop the connection unless the body was read to its end."""
        self._stream.close()


class HttpClient:
    """Pooled HTTP/1.1 client with the outbound guard, timeouts, redirects and a byte limit.

    ``max_idle`` idle connections are kept per (scheme, host, port), each for at
    most ``idle_timeout`` seconds.
    """

    def __init__(self, *, guard: Guard | None = None, max_idle: int = 64, idle_timeout: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None):
        self.guard = guard or Guard()
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._pools: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()

    # -- pool ----------------------------------------------------------------
    def _checkout(self, key: tuple[str, str, int], addresses: list[str], timeout: float) -> tuple[_Connection, bool]:
        now = time.monotonic()
        with self._lock:
            pool = self._pools.get(key)
            while pool:
                conn = pool.pop()
                if conn.ip in addresses and now - conn.idle_since < self.idle_timeout and conn.sock is not None \
                        and not dropped(conn.sock):
                    return conn, True
                conn.close()
        scheme, host, port = key
        if scheme == "https":
            return _TlsConnection(host, port, addresses, timeout, self.ssl_context), False
        return _Connection(host, port, addresses, timeout), False

    def _checkin(self, key: tuple[str, str, int], conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        with self._lock:
            pool = self._pools.setdefault(key, [])
            if len(pool) < self.max_idle:
                pool.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            pools, self._pools = self._pools, {}
        for pool in pools.values():
            for conn in pool:
                conn.close()

    # -- requests ------------------------------------------------------------
    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None,
                timeout: float = 30.0, max_bytes: int = 10 * 1024 * 1024, literal: bool | None = None,
                literal_hosts: Iterable[Any] = (), max_redirects: int = 5, retries: int = 0,
                window: int | None = None) -> Response:
        """Send a request and return the complete :class:`Response` (redirects followed).

        ``literal`` says whether the first URL's host was written in the operator's
        config (see :mod:`~gateway_server.backends.guard`); when ``None`` it is decided
        by ``literal_hosts``, whose items are ``(scheme, host, port)`` authorities (or
        bare host names, any port). Redirect hops are literal only when their authority
        is in ``literal_hosts`` or equals the previous literal hop's. ``retries``
        repeats idempotent requests on connection errors. Raises :class:`TimedOut`,
        :class:`ConnectFailed`, :class:`TooLarge` or :class:`Refused`.

        ``window``: read at most about this many bytes of the body (decoded: gzip and deflate are decoded
        as they come; a body in another coding is read whole); when more follows, the response's ``more``
        is a :class:`BodyStream` of the rest, still on its connection, which the caller must read to its
        end or close (or :meth:`Response.finish`).
        """
        method = method.upper()
        deadline = time.monotonic() + timeout
        literal_hosts = literal_hosts if isinstance(literal_hosts, (set, frozenset)) else set(literal_hosts)
        send_headers = {"Accept-Encoding": ACCEPT_ENCODING}
        send_headers.update(headers or {})
        previous = None
        for _hop in range(max_redirects + 1):
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme not in ("http", "https"):
                raise ConnectFailed(f"unsupported URL scheme {parts.scheme!r} in {url!r}", method=method, url=url)
            host = (parts.hostname or "").lower()
            if not host:
                raise ConnectFailed(f"no host in URL {url!r}", method=method, url=url)
            try:
                port = parts.port or (443 if scheme == "https" else 80)
            except ValueError:
                raise ConnectFailed(f"invalid port in URL {url!r}", method=method, url=url) from None
            authority = (scheme, host, port)
            named = authority in literal_hosts or host in literal_hosts
            if previous is None:
                hop_literal = named if literal is None else literal
            else:
                hop_literal = named or (authority == previous and hop_literal)
            try:
                addresses = self.guard.check(host, port, literal=hop_literal)
            except OSError as exc:
                if isinstance(exc, Refused):
                    raise
                raise ConnectFailed(f"{exc} calling {method} {url}", method=method, url=url) from None
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            resp = self._send(method, url, (scheme, host, port), addresses, target, send_headers, body, deadline,
                              timeout, max_bytes, retries if method in IDEMPOTENT else 0, window)
            location = resp.headers.get("location")
            if resp.status not in REDIRECTS or not location or max_redirects == 0:
                return resp
            if resp.more is not None:  # a long redirect body: not worth reading
                resp.more.close()
            new_url = urljoin(url, location)
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method = "GET" if method != "HEAD" else method
                body = None
                send_headers = {k: v for k, v in send_headers.items()
                                if k.lower() not in ("content-type", "content-length")}
            if _origin(new_url) != authority:
                send_headers = {k: v for k, v in send_headers.items() if k.lower() in CROSS_ORIGIN_HEADERS}
            previous, url = authority, new_url
        raise ConnectFailed(f"more than {max_redirects} redirects calling {method} {url}", method=method, url=url)

    def _send(self, method: str, url: str, key: tuple[str, str, int], addresses: list[str], target: str,
              headers: dict[str, str], body: bytes | None, deadline: float, timeout: float, max_bytes: int,
              retries: int, window: int | None = None) -> Response:
        stale_retry = method in IDEMPOTENT
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimedOut(f"timed out after {round(timeout, 2):g} s calling {method} {url}", method=method, url=url)
            conn, reused = self._checkout(key, addresses, remaining)
            try:
                conn.timeout = remaining
                if conn.sock is not None:
                    conn.sock.settimeout(remaining)
                conn.request(method, target, body=body, headers=headers)
                sock = conn.sock  # getresponse() drops it from conn when the response will close
                conn.response_class = functools.partial(_Response, deadline=deadline)
                raw = conn.getresponse()
            except TimeoutError:
                conn.close()
                raise TimedOut(f"timed out after {round(timeout, 2):g} s calling {method} {url}", method=method,
                               url=url) from None
            except _STALE_ERRORS:
                conn.close()
                if reused and stale_retry:
                    stale_retry = False  # a keep-alive socket the server had closed: reconnect once
                    continue
                if attempt < retries:
                    attempt += 1
                    continue
                raise ConnectFailed(f"connection closed by the backend calling {method} {url}", method=method,
                                    url=url) from None
            except OSError as exc:
                conn.close()
                if attempt < retries:
                    attempt += 1
                    continue
                what = "connection refused" if isinstance(exc, ConnectionRefusedError) else \
                    f"connection failed ({exc.strerror or exc})"
                raise ConnectFailed(f"{what} calling {method} {url}", method=method, url=url) from None
            return self._read(conn, sock, raw, key, method, url, deadline, timeout, max_bytes, window)

    def _read(self, conn: _Connection, sock: socket.socket, raw: http.client.HTTPResponse, key: tuple[str, str, int],
              method: str, url: str, deadline: float, timeout: float, max_bytes: int,
              window: int | None = None) -> Response:
        headers: dict[str, str] = {}
        for name, value in raw.getheaders():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        stream = BodyStream(self, key, conn, sock, raw, deadline, timeout, max_bytes, method, url)
        if raw.length is not None and raw.length > max_bytes:
            stream.close()
            raise stream.too_large()
        encoding = headers.get("content-encoding")
        body: BodyStream | _Inflating = stream
        if window is not None and encoding and encoding.strip().lower() != "identity":
            coding = encoding.strip().lower()
            if coding in ("gzip", "x-gzip", "deflate"):  # one coding zlib decodes as it comes
                body, encoding = _Inflating(stream, "deflate" if coding == "deflate" else "gzip"), None
            else:
                window = None  # decoding needs the whole body (br, zstd, chains)
        chunks: list[bytes] = []
        while chunk := body.read():
            chunks.append(chunk)
            if window is not None and body.size >= window and not body.ended:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                return Response(raw.status, raw.reason, headers, data, url, method, more=body)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if encoding:
            try:
                data = decode_body(data, encoding, max_bytes)
            except ValueError as exc:
                if "exceeds" in str(exc):
                    raise stream.too_large() from None
                raise ConnectFailed(f"cannot decode the {encoding} body of {method} {url}: {exc}", method=method,
                                    url=url) from None
            except Exception as exc:  # noqa: BLE001 - zlib/brotli/zstd raise their own error types
                raise ConnectFailed(f"cannot decode the {encoding} body of {method} {url}: {exc}", method=method,
                                    url=url) from None
        return Response(raw.status, raw.reason, headers, data, url, method)


def _origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of ``url`` with the default port filled in; ``None`` when it has no valid one."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return None
    return (scheme, (parts.hostname or "").lower(), port)


_default: HttpClient | None = None
_default_lock = threading.Lock()


def default_client() -> HttpClient:
    """The process-wide client (created on first use, so pools outlive config reloads)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = HttpClient()
    return _default
