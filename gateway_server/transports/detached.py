"""Idle SSE streams without a greenlet each: the connection handed over by the server, written on demand.

An open SSE stream spends most of its life idle. Served as a WSGI generator it keeps the
server's request greenlet (its saved C stack and Python frames), the WSGI environ, the
request's buffered reader, a queue and a heartbeat timer: about 20 KiB each, so 10,000
streams held about 200 MiB. Under ``mcpgw serve`` the handler offers ``environ["mcpgw.detach"]``:
after the stream's first event the transport takes a duplicate of the connection's socket and
lets the request end. What remains per stream is this :class:`DetachedStream` (the socket, a
readiness watcher that notices a client hanging up, a short list of pending chunks) registered
where its messages arrive (the session store, a listen stream). A writer greenlet exists only
while there is something to send, and one shared timer sends every stream's heartbeat.

The response keeps its chunked transfer encoding: each event is one chunk and the stream's
end is the zero-length chunk, as when the server wrote the generator's items itself.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mcpgw.gateway")

#: What :meth:`DetachedStream.put` receives for a heartbeat (the shared timer's tick).
HEARTBEAT = None


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class DetachedStream:
    """One detached SSE stream: ``put(item)`` queues what ``encode(item)`` makes of it and sends it.

    ``encode(item)`` returns ``(bytes, last)``: the event to send (``b""``: nothing) and whether
    the stream ends after it. ``on_end()`` runs once, in its own greenlet, when the stream ends
    (its end was encoded, a write failed, or the client hung up).
    """

    __slots__ = ("sock", "encode", "on_end", "pending", "writing", "ended", "watcher", "__weakref__")

    def __init__(self, sock: socket.socket, encode: Callable[[Any], tuple[bytes, bool]],
                 on_end: Callable[[], None]):
        self.sock = sock
        self.encode = encode
        self.on_end = on_end
        self.pending: list[bytes] | None = None
        self.writing = False
        self.ended = False
        self.watcher: Any = None

    def start(self) -> None:
        """Watch for the client hanging up and join the shared heartbeat."""
        import gevent

        self.watcher = gevent.get_hub().loop.io(self.sock.fileno(), 1)
        self.watcher.start(self._readable)
        _streams.add(self)
        _ensure_ticker()

    def put(self, item: Any) -> None:
        """Queue ``item`` (a message, :data:`HEARTBEAT` or the owner's end marker) for sending."""
        if self.ended:
            return
        try:
            data, last = self.encode(item)
        except Exception:  # noqa: BLE001 - an unencodable message must not take the others down
            log.exception("encoding a stream message failed")
            return
        chunk = (_chunk(data) if data else b"") + (b"0\r\n\r\n" if last else b"")
        if self.pending is None:
            self.pending = []
        self.pending.append(chunk)
        if last:
            self.pending.append(b"")  # the marker: close after what precedes
        if not self.writing:
            import gevent

            self.writing = True
            gevent.spawn(self._write)

    def _write(self) -> None:
        try:
            while self.pending:
                chunks, self.pending = self.pending, None
                for chunk in chunks:
                    if chunk == b"":
                        self.end()
                        return
                    self.sock.sendall(chunk)
        except OSError:
            self.end()
        finally:
            self.writing = False

    def _readable(self) -> None:
        # Runs in the hub, which must not block: look in a greenlet, and stop watching meanwhile (a
        # readable socket would call this again on every turn of the loop).
        import gevent

        self.watcher.stop()
        gevent.spawn(self._check)

    def _check(self) -> None:
        # The client never writes on a stream: readable means it hung up (EOF or reset).
        try:
            data = self.sock.recv(1, socket.MSG_PEEK)
        except OSError:
            data = b""
        if not data:
            self.end()
        # else the client sent something: ignore it, and notice its end on a write

    def end(self) -> None:
        """Close the connection and run ``on_end`` (once)."""
        if self.ended:
            return
        self.ended = True
        _streams.discard(self)
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher.close()
            self.watcher = None
        self.pending = None
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            self.on_end()
        except Exception:  # noqa: BLE001
            log.exception("ending a detached stream failed")


def detach(environ: dict[str, Any]) -> socket.socket | None:
    """The connection's socket when the server lets this response take it over (``mcpgw serve``), else ``None``.

    Call it after the response's first item was sent; the request then ends without closing the
    connection, and the zero-length chunk that ends the body is the caller's to send.
    """
    ref = environ.get("mcpgw.detach")  # a weak reference to the server's method (no environ/handler cycle)
    take = ref() if ref is not None else None
    return take() if take is not None else None


# -- the shared heartbeat ------------------------------------------------------------

_streams: set[DetachedStream] = set()
_ticker: Any = None
#: Seconds between heartbeats of detached streams (the gateway sets its ``sse_heartbeat``).
interval = 15.0


def _tick() -> None:
    global _ticker
    import gevent

    try:
        while _streams:
            gevent.sleep(interval)
            for stream in list(_streams):
                stream.put(HEARTBEAT)
    finally:
        _ticker = None


def _ensure_ticker() -> None:
    global _ticker
    if _ticker is None:
        import gevent

        _ticker = gevent.spawn(_tick)


def count() -> int:
    """How many detached streams are open in this process."""
    return len(_streams)
