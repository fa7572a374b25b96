"""``mcpgw serve``: run the gateway on gevent's WSGI server.

gevent must patch the standard library before peewee, requests or psycopg2 are
imported. When another plugin of the ``mcpgw`` command already imported one of
them, ``serve`` re-executes itself as ``python -m gateway_server`` (which
patches first) instead of patching too late.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from mcpgw_sdk import settings

if TYPE_CHECKING:
    from .snapshot import Snapshot

_SENSITIVE = ("peewee", "psycopg2", "pymysql", "requests", "urllib3", "ssl", "redis")


def patch() -> None:
    """Patch the standard library for gevent, and psycopg2 when it is installed (entry points only)."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    try:
        from psycogreen.gevent import patch_psycopg
    except ImportError:
        return
    try:
        patch_psycopg()
    except ImportError:  # psycopg2 itself is not installed
        pass


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit (entry points only); return ``(soft, hard)``.

    Every client connection holds a descriptor: the usual soft limit of 1024 lets a thousand
    idle clients stop the gateway from accepting, ``/healthz`` included.
    """
    try:
        import resource
    except ImportError:  # not on this platform
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or (soft >= target):
        return soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # e.g. above the kernel's nr_open: keep what we have
        return soft, hard
    return target, hard


def listen_error(host: str, port: int, exc: OSError) -> str:
    """``cannot listen on 127.0.0.1:5235: address already in use`` for a failed bind."""
    import errno

    reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc)).lower()
    return f"cannot listen on {host}:{port}: {reason}"


def gunicorn_workers() -> int | None:
    """How many workers the gunicorn importing the gateway runs; ``None`` outside gunicorn.

    gunicorn imports the WSGI module from ``BaseApplication.wsgi()`` (in each worker, or once in the
    master with ``--preload``), so the application, and its final configuration (command line,
    config file, ``GUNICORN_CMD_ARGS``, ``WEB_CONCURRENCY``), is on the call stack: its
    ``cfg.workers`` is what gunicorn itself uses. Call it while the module is being imported.
    """
    if "gunicorn" not in sys.modules:
        return None
    from gunicorn.app.base import BaseApplication

    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, BaseApplication):
            workers = getattr(owner.cfg, "workers", None)
            return workers if isinstance(workers, int) else None
        frame = frame.f_back
    return None


def shared_sessions_warning(workers: int | None, redis_url: str) -> str | None:
    """The start-up warning for several workers without Redis (legacy sessions stay in one worker), or None."""
    if not workers or workers < 2 or redis_url:
        return None
    return (f"{workers} gunicorn workers keep legacy MCP sessions (protocol 2024-11-05 to 2025-11-25) each in "
            "its own memory: a client whose next request reaches another worker gets 404 and re-initializes, and "
            "answers to SSE POSTs can miss their stream. Set MCPGW_REDIS_URL to share sessions, or run "
            "-w 1 (docs/scale-out.md). 2026-07-28 clients are stateless and unaffected.")


def base_url(host: str, port: int) -> str:
    """The URL a local client reaches a server bound to ``host:port`` at (loopback for a wildcard address)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def endpoints(base: str, snapshot: Snapshot) -> list[str]:
    """The Streamable HTTP endpoint (``P/mcp``) of every router ``snapshot`` serves, by prefix."""
    return [f"{base}{prefix.rstrip('/')}/mcp" for prefix in sorted(snapshot.routes)]


def start_lines(base: str, snapshot: Snapshot, *, listening: str, reload_interval: float) -> list[str]:
    """What ``mcpgw serve`` prints at start in plain words: where it listens and the MCP endpoints it serves."""
    where = base if listening == base else f"{base} (listening on {listening})"
    lines = [f"mcpgw gateway serving {where} — config revision {snapshot.revision}"]
    if snapshot.routes:
        lines.append("MCP endpoints (Streamable HTTP; HTTP+SSE clients use …/sse instead of …/mcp):")
        for prefix in sorted(snapshot.routes):
            mode = snapshot.routes[prefix].auth_mode
            lines.append(f"  {base}{prefix.rstrip('/')}/mcp" + ("" if mode == "none" else f"  ({mode})"))
    else:
        lines.append("No MCP endpoints yet: add a config document (`mcpgw import FILE`, the console or the "
                     f"management API); the gateway serves it within {reload_interval:g} s.")
    lines.append(f"Health {base}/healthz, readiness {base}/readyz, metrics {base}/metrics. Ctrl-C stops.")
    return lines


def run(*, db: str | None, host: str | None, port: int | None, reload_interval: float | None) -> None:
    """Serve the gateway until SIGTERM/SIGINT (call :func:`patch` first)."""
    import http.client
    import signal
    import socket
    import time
    import weakref

    from gevent.pywsgi import Input, OldMessage, WSGIHandler, WSGIServer

    from . import logs
    from .app import create_app
    from .backends.http import parse_headers

    resolved = settings.resolve({"database_url": db, "host": host, "port": port, "reload_interval": reload_interval})
    fmt = logs.setup(level=resolved.log_level, fmt=resolved.log_format)
    import logging

    log = logging.getLogger("mcpgw.gateway")
    files, _ = raise_fd_limit()
    header_timeout = resolved.header_timeout
    body_timeout = resolved.body_timeout
    host = resolved.host
    port = resolved.port
    app = create_app(settings=resolved)
    app.start()
    import gevent

    class HeaderTimeout(ValueError):
        """The request line and headers did not arrive within ``header_timeout`` (answered 408, then closed)."""

    class DeadlineInput(Input):
        """gevent's request body, whose discard of an unread rest gives up after ``body_timeout``."""

        __slots__ = ()

        def _discard(self):
            if self._chunked_input_error:
                return
            if not self.chunked_input and self.position >= (self.content_length or 0):
                return  # the body was read in full (the usual case): nothing to discard, no timer to arm
            try:
                with gevent.Timeout(body_timeout, TimeoutError("request body timed out")):
                    super()._discard()
            except TimeoutError:
                self._chunked_input_error = True  # gevent's mark for "state unknown": the connection closes
                raise

    class NoDelayHandler(WSGIHandler):
        """Sets TCP_NODELAY: without it keep-alive responses stall ~40 ms (Nagle + delayed ACK).

        Also sends the status line, headers and a small body in one write (gevent sends
        the headers first, then the body: two syscalls and two packets per JSON answer).
        Bounds in time what a client may hold: the request line and headers must arrive
        within ``header_timeout`` (which is also the keep-alive idle time), and a body the
        application left unread is discarded for at most ``body_timeout`` before closing.
        """

        def __init__(self, sock, address, server, rfile=None):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            self._header_deadline = 0.0
            super().__init__(sock, address, server, rfile)

        def read_requestline(self):
            self._header_deadline = time.monotonic() + header_timeout
            with gevent.Timeout(header_timeout, TimeoutError("request line timed out")):
                return super().read_requestline()

        def read_request(self, raw_requestline):
            left = self._header_deadline - time.monotonic()
            if left <= 0:
                raise HeaderTimeout("request headers timed out")
            with gevent.Timeout(left, HeaderTimeout("request headers timed out")):
                return super().read_request(raw_requestline)

        def _handle_client_error(self, ex):
            if isinstance(ex, HeaderTimeout):
                return ("408", b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            return super()._handle_client_error(ex)

        def get_environ(self):
            environ = super().get_environ()
            self.wsgi_input.__class__ = DeadlineInput
            environ["mcpgw.socket"] = self.socket  # modern requests watch it for a client that hung up
            # Idle SSE streams take the connection over (transports.detached). A weak reference: the handler
            # holds the environ, and a bound method in it would make a cycle that only the GC frees.
            environ["mcpgw.detach"] = weakref.WeakMethod(self.detach)
            return environ

        def detach(self):
            """A duplicate of this connection's socket for a streamed response that continues on its own.

            Only after the response's headers and first chunk went out with chunked encoding; the
            request then ends without the final chunk, and this handler closes its own socket only.
            """
            if not self.headers_sent or not self.response_use_chunked:
                return None
            sock = self.socket.dup()
            self.response_use_chunked = False  # the zero-length chunk is the detached stream's to send
            self.close_connection = True
            return sock

        def run_application(self):
            try:
                super().run_application()
            finally:
                if self.environ.get("mcpgw.body_abandoned"):  # the app gave up on the body: do not wait again
                    self.wsgi_input._chunked_input_error = True

        def handle_one_response(self):
            super().handle_one_response()
            if self.wsgi_input is not None and self.wsgi_input._chunked_input_error:
                self.close_connection = True  # the stream's state is unknown: never read a next request from it

        def MessageClass(self, fp, *args):
            # gevent parses request headers with the email package; this reads the same lines, ~5x cheaper.
            try:
                return parse_headers(fp, OldMessage)
            except http.client.LineTooLong:
                message = OldMessage()
                message.status = "Line too long"
                return message

        def _write_with_headers(self, data):
            if not data or len(data) > 65536 or (self.provided_content_length is None
                                                 and not hasattr(self.result, "__len__")):
                return super()._write_with_headers(data)  # streams (SSE) and large bodies: gevent's way
            self.headers_sent = True
            self.finalize_headers()
            out = bytearray(b"HTTP/1.1 ")
            out += self.status
            out += b"\r\n"
            for header, value in self.response_headers:
                out += header + b": " + value + b"\r\n"
            out += b"\r\n"
            out += data
            self._sendall(out)

    server = WSGIServer((host, port), app, handler_class=NoDelayHandler, log=None,
                        error_log=logging.getLogger("mcpgw.http"))
    try:
        server.init_socket()
    except OSError as exc:
        app.stop()
        raise click.ClickException(listen_error(host, port, exc)) from None

    def shutdown(*_):
        log.info("shutting down")
        app.gateway.close_listeners()  # subscriptions/listen streams get their final result first
        server.stop(timeout=2)

    gevent.signal_handler(signal.SIGTERM, shutdown)
    gevent.signal_handler(signal.SIGINT, shutdown)
    port = server.server_port  # the port bound (--port 0 picks a free one)
    base = base_url(host, port)
    snapshot = app.gateway.snapshot
    if fmt == "text":  # a person at a terminal: plain lines, not log records
        listening = base if host not in ("", "0.0.0.0", "::") else f"every address, port {port}"
        for line in start_lines(base, snapshot, listening=listening,
                                reload_interval=resolved.reload_interval):
            click.echo(line, err=True)
    else:  # a log collector: one record with the URLs as fields
        log.info("gateway listening on %s (config revision %s, %d MCP endpoint(s), open files limit %s)", base,
                 snapshot.revision, len(snapshot.routes), files,
                 extra={"url": base, "endpoints": endpoints(base, snapshot)})
    try:
        server.serve_forever()
    finally:
        app.stop()


def serve_options(func):
    """The options of ``serve`` (shared with ``python -m gateway_server``)."""
    func = settings.option("reload_interval")(func)
    func = settings.option("port", show_default=True)(func)
    func = settings.option("host", show_default=True)(func)
    # mcpgw_sdk.cli's --db, made here: wsgi imports this module before it patches, and the CLI imports more
    return settings.option("database_url", "--db", "db", metavar="URL")(func)


@click.command("serve")
@serve_options
def serve(db, host, port, reload_interval):
    """Serve MCP endpoints for every stored config (the gateway)."""
    if any(name in sys.modules for name in _SENSITIVE):
        argv = [sys.executable, "-m", "gateway_server"]
        for flag, value in (("--db", db), ("--host", host), ("--port", port), ("--reload-interval", reload_interval)):
            if value is not None:
                argv += [flag, str(value)]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)
    patch()
    run(db=db, host=host, port=port, reload_interval=reload_interval)


def register(cli):
    """Add ``serve`` to the ``mcpgw`` click group."""
    cli.add_command(serve)
